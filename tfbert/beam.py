"""`python -m tfbert.beam`: the Beam pipeline's command line, kept at this path; the code is `tfbert.jobs.beam`."""

import logging
import sys

from tfbert.jobs.beam import main

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())

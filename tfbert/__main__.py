"""`python -m tfbert`, the same as the `tfbert` console script."""

import sys

from tfbert.cli import main

sys.exit(main())

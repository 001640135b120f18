"""The `tfbert` command line: a thin layer over the library. The library logs; the commands print.

    commands.py  one function a sub-command
    parser.py    the argument parser, shared options declared once, defaults from tfbert.defaults
"""

import logging
import sys

from tfbert.cli.commands import quiet_tensorflow
from tfbert.checkpoints.model_card import set_cli_command
from tfbert.cli.parser import build_parser
from tfbert.errors import TfbertError

__all__ = ["build_parser", "main"]


def main(argv=None):
    args = build_parser().parse_args(argv)
    set_cli_command(sys.argv[1:] if argv is None else argv)  # the model cards of what the command writes
    quiet_tensorflow()
    logging.basicConfig(level=logging.WARNING, format="tfbert: %(message)s")
    try:
        status = args.run(args)
    except TfbertError as e:
        print(f"tfbert: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tfbert: interrupted", file=sys.stderr)
        return 130
    return status or 0

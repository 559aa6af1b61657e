"""``python -m bench NAME ...``: the same as ``lifeline bench NAME ...``."""

import sys

from lifeline.cli import main

raise SystemExit(main(["bench", *sys.argv[1:]]))

"""``python -m dctoon.train {prepare,distill,ttn,export,ccn,evaluate} ...`` is ``dctoon train ...``: the same
parser, output and errors."""

import sys

from dctoon.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["train", *sys.argv[1:]]))

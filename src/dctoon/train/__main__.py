"""``python -m dctoon.train {prepare,ttn,export,ccn,evaluate} ...`` (the same entry points the CLI wires)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())

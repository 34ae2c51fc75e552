"""Allows `python -m loraforge ...`, the same as the `loraforge` console script."""

from loraforge.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

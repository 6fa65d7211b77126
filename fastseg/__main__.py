"""``python -m fastseg``: the command line."""

from fastseg.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

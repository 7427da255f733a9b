"""``python -m stream.demo``: the same as ``python -m stream.tools.demo`` (the live demo; ``--monitor``
also opens the live web page)."""

from stream.tools.demo import main

if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m stream.bench``: the same as ``python -m stream.tools.bench`` (every benchmark, one JSON
object; ``--only NAME`` for one part, docs/PERFORMANCE.md)."""

from stream.tools.bench import main

if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m stream.fuzz``: see the package's docstring."""

from stream.fuzz.runner import main

raise SystemExit(main())

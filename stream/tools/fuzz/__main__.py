"""``python -m stream.tools.fuzz``: see the package's docstring."""

from stream.tools.fuzz.runner import main

raise SystemExit(main())

"""``python -m stream.soak``: see the package's docstring."""

from stream.soak.runner import main

raise SystemExit(main())

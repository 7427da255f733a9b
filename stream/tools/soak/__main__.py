"""``python -m stream.tools.soak``: see the package's docstring."""

from stream.tools.soak.runner import main

raise SystemExit(main())

"""`python -m edge.cli`: the `edge` command without its console script."""

from . import main

raise SystemExit(main())

"""``python -m sgmlab``: the command line (``sgmlab --help``)."""

from .cli import main

raise SystemExit(main())

"""``python -m emorec``: see ``emorec.cli``."""

import emorec  # noqa: F401  (bootstrap import order first)
from emorec.cli import main

raise SystemExit(main())

"""``python -m lightd_coordinator`` is ``lightd-coordinator``."""

from lightd_coordinator.cli import main

raise SystemExit(main())

"""``python -m lightd_agent`` is ``lightd``."""

from lightd_agent.cli import main

raise SystemExit(main())

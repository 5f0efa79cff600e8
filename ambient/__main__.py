"""``python -m ambient``."""

import sys

from ambient.cli.main import main

sys.exit(main())

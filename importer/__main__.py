"""``python -m importer`` is ``ti-import``."""

import sys

from importer.cli import main

sys.exit(main())

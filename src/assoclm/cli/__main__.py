"""``python -m assoclm.cli COMMAND ...``, the same as ``assoclm COMMAND ...``."""

import sys

from assoclm.cli import main

sys.exit(main())

"""``python -m lamb_edu`` runs the same command line as ``lamb-edu``."""

import sys

from lamb_edu.cli import main

sys.exit(main())

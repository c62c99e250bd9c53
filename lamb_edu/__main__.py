"""``python -m lamb_edu`` runs the same command line as ``lamb-edu``.

A Ctrl-C while the modules load (a second or so) ends with one line and exit code 130, as one
during a command does, not with the traceback of the import it stopped.
"""

import sys

try:
    from lamb_edu.cli import main
except KeyboardInterrupt:
    print("lamb-edu: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())

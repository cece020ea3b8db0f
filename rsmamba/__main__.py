"""``python -m rsmamba``: the same command line as the ``rsmamba`` script."""

import sys

from rsmamba.cli import main

sys.exit(main())

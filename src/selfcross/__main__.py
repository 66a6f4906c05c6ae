"""``python -m selfcross`` runs the command line."""

import sys

from selfcross.cli import main

sys.exit(main())

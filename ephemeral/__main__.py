"""`python -m ephemeral` is the CLI."""

import sys

from ephemeral.cli import main

sys.exit(main())

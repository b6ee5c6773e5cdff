"""`python -m emoapp` runs the `emoapp` command."""

import sys

from emoapp.cli import main

sys.exit(main())

"""`python -m kilnc` runs the `kiln` command."""

import sys

from kilnc.cli import main

sys.exit(main())

"""`python -m kilnc` runs the `kiln` command."""

import sys

from kilnc.cli.entry import main

sys.exit(main())

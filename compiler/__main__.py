"""`python -m compiler`: the same as the `netpolc` command."""

import sys

from .cli import main

sys.exit(main())

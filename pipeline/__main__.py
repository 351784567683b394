"""`python -m pipeline ...` is the same as the `facecascade` command."""

import sys

from .cli import main

sys.exit(main())

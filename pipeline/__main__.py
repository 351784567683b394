"""`python -m pipeline ...` is the same as the `facecascade` command."""

import sys

from pipeline.cli.main import main

sys.exit(main())

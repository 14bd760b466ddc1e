"""Entry point: ``python -m client echo|filedrop …``."""

import sys

from .cli import main

sys.exit(main())

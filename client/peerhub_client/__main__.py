"""Entry point: ``python -m peerhub_client echo|filedrop …`` (also the ``peerhub-bot`` script)."""

import sys

from .cli import main

sys.exit(main())

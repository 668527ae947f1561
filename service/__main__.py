"""``python -m service``: the same as the ``sanet-serve`` console script."""

import sys

from service.cli import main

sys.exit(main())

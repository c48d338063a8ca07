"""``python -m ovito_atomclass``: the ``atomclass`` command line."""

import sys

from .cli import main

sys.exit(main())

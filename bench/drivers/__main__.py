"""``python -m bench.drivers``: see :mod:`bench.drivers.run`."""

import sys

from bench.drivers.run import main

sys.exit(main())

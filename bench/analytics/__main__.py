"""``python -m bench.analytics``: see :mod:`bench.analytics.run`."""

import sys

from bench.analytics.run import main

sys.exit(main())

"""``python -m bench.interventions``: see :mod:`bench.interventions.run`."""

import sys

from bench.interventions.run import main

sys.exit(main())

"""``python -m bench.qc``: see :mod:`bench.qc.run`."""

import sys

from bench.qc.run import main

sys.exit(main())

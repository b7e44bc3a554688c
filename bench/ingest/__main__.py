"""``python -m bench.ingest``: see :mod:`bench.ingest.run`."""

import sys

from bench.ingest.run import main

sys.exit(main())

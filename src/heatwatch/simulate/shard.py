"""Child process of a multi-worker simulation: ``python -m heatwatch.simulate.shard``.

A subprocess rather than a multiprocessing pool: spawn-based pools re-import the caller's
``__main__``, which breaks benchmark scripts without an ``if __name__ == "__main__"`` guard.
Arguments and result travel pickled over stdin/stdout between processes of one heatwatch install.
"""

from __future__ import annotations

import pickle
import sys


def main() -> int:
    from .publisher import simulate

    url, options, sensors, now = pickle.load(sys.stdin.buffer)
    result = simulate(url, options, sensors=sensors, now=now)
    pickle.dump(result, sys.stdout.buffer)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

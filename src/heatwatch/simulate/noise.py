"""Counter-based pseudo-random numbers: a value is a pure function of (seed, key, stream, t).

A sequential RNG would make a reading depend on where the run started and on how it was
chunked; hashing the timestamp instead gives the same value for a sensor at a given instant in
a replay, in live mode and in a test that asks for a single day. SplitMix64 is enough here: the
numbers drive weather, not cryptography.
"""

from __future__ import annotations

import zlib

import numpy as np
from numpy.typing import ArrayLike, NDArray

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix_int(x: int) -> int:
    x = (x + _GOLDEN) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _mix_array(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    # uint64 array arithmetic wraps modulo 2**64, which is what SplitMix64 wants.
    x = x + np.uint64(_GOLDEN)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def key_of(name: str) -> int:
    """A stable integer key for a sensor or town id (``hash()`` is salted per process)."""
    return zlib.crc32(name.encode("utf-8"))


def _base(seed: int, key: int, stream: int) -> int:
    return _mix_int(_mix_int(_mix_int(seed & _MASK) ^ (key & _MASK)) ^ (stream & _MASK))


def uniform(seed: int, key: int, stream: int, t: ArrayLike) -> NDArray[np.float64]:
    """Uniform numbers in [0, 1), one per element of the integer array ``t``."""
    x = np.asarray(t, dtype=np.int64).astype(np.uint64)
    h = _mix_array(_mix_array(x ^ np.uint64(_base(seed, key, stream))))
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def uniform1(seed: int, key: int, stream: int, t: int = 0) -> float:
    """One uniform number in [0, 1)."""
    h = _mix_int(_mix_int((t & _MASK) ^ _base(seed, key, stream)))
    return (h >> 11) * (1.0 / (1 << 53))


def bits1(seed: int, key: int, stream: int, t: int = 0) -> int:
    """64 pseudo-random bits, for identifiers (EUIs, tokens) that must be stable."""
    return _mix_int(_mix_int((t & _MASK) ^ _base(seed, key, stream)))


def triangular(seed: int, key: int, stream: int, t: ArrayLike, half_width: float) -> NDArray[np.float64]:
    """Bounded noise in (-half_width, half_width), peaked at 0.

    Bounded on purpose: the heat-wave thresholds are documented with margins, and a Gaussian
    tail could push one day across them for some seed.
    """
    t = np.asarray(t, dtype=np.int64)
    u1 = uniform(seed, key, stream, t)
    u2 = uniform(seed, key, stream + 0x5EED, t)
    return (u1 + u2 - 1.0) * half_width

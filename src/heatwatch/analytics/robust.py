"""Robust scale: the Qn estimator of Rousseeuw & Croux (1993), row-wise over a matrix with holes.

statsmodels has ``qn_scale`` but neither NaN handling nor the finite-sample correction that
matters at a few dozen sensors, and it runs one Python call per row; the spatial QC needs
thousands of hourly rows of 5–50 sensors at once, so the O(n²) definition is vectorised here
(for n ≤ 50 a sorted pairwise-difference matrix is cheaper than the O(n log n) algorithm).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# 1 / (√2 · Φ⁻¹(5/8)): makes Qn consistent for the standard deviation of a normal law.
QN_CONSISTENCY = 2.219144465985076
# Finite-sample bias factors d_n for n = 2…9 (Croux & Rousseeuw 1992, as in R robustbase);
# above 9 the paper's fits n/(n+1.4) for odd n and n/(n+3.8) for even n.
_QN_SMALL_N = np.array([np.nan, np.nan, 0.399, 0.994, 0.512, 0.844, 0.611, 0.857, 0.669, 0.872])
# Rows per chunk keep the pairwise matrix near 50 MB even for 100 sensors.
_CHUNK_CELLS = 6_000_000


def qn_correction(n: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The finite-sample factor d_n by which the consistent Qn is multiplied (NaN for n < 2)."""
    n = np.asarray(n, dtype=np.int64)
    small = _QN_SMALL_N[np.clip(n, 0, 9)]
    large = np.where(n % 2 == 1, n / (n + 1.4), n / (n + 3.8))
    return np.where(n < 2, np.nan, np.where(n <= 9, small, large))


def qn_rows(x: npt.ArrayLike, *, finite_correction: bool = True) -> npt.NDArray[np.float64]:
    """Qn of each row of a 2-D array, ignoring NaN; NaN where a row has fewer than 2 values."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError("qn_rows expects a 2-D array")
    rows, cols = a.shape
    out = np.full(rows, np.nan)
    if cols < 2 or rows == 0:
        return out
    i, j = np.triu_indices(cols, k=1)
    n = np.isfinite(a).sum(axis=1)
    h = n // 2 + 1
    k = h * (h - 1) // 2  # the k-th smallest pairwise distance, 1-based
    step = max(1, _CHUNK_CELLS // len(i))
    for start in range(0, rows, step):
        block = a[start : start + step]
        d = np.abs(block[:, i] - block[:, j])
        kk = np.clip(k[start : start + step] - 1, 0, None)
        ok = n[start : start + step] >= 2
        picked = np.full(len(block), np.nan)
        # NaN pairs sort last, so the k-th smallest finite distance is at index k-1. Rows with the
        # same count share k: one partial sort (O(n²)) per distinct count instead of a full sort.
        for kth in np.unique(kk[ok]):
            rows_k = np.flatnonzero(ok & (kk == kth))
            picked[rows_k] = np.partition(d[rows_k], int(kth), axis=1)[:, int(kth)]
        out[start : start + step] = picked
    out *= QN_CONSISTENCY
    if finite_correction:
        out *= qn_correction(n)
    return out


def qn_scale(x: npt.ArrayLike, *, finite_correction: bool = True) -> float:
    """Qn of a 1-D sample, ignoring NaN."""
    return float(qn_rows(np.asarray(x, dtype=np.float64).reshape(1, -1), finite_correction=finite_correction)[0])

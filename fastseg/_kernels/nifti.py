"""Where the non-zero values of a flat array begin and end, for writing sparse NIfTI files."""

from __future__ import annotations

import numpy as np

from fastseg._jit import kernel


@kernel()
def nonzero_span(flat: np.ndarray) -> tuple[int, int]:
    """Index of the first and the last non-zero element (``(n, n - 1)`` when all are 0)."""
    n = flat.size
    first = 0
    while first < n and flat[first] == 0:
        first += 1
    last = n - 1
    while last > first and flat[last] == 0:
        last -= 1
    return first, last

"""Splitting a flat array into per-thread chunks.

Chunk ``c`` of ``chunks`` over ``n`` elements is the half-open range
``(c * n) // chunks .. ((c + 1) * n) // chunks``, written out in every chunk kernel: a
helper kernel for it would cost one more compilation in every process.
"""

from __future__ import annotations

import numpy as np

from fastseg._jit import kernel, run_chunks


@kernel()
def _range_of_chunk(
    src: np.ndarray, lows: np.ndarray, highs: np.ndarray, c: int, chunks: int
) -> None:
    start, stop = (c * src.size) // chunks, ((c + 1) * src.size) // chunks
    low = np.uint64(src[start])
    high = low
    for i in range(start, stop):
        v = np.uint64(src[i])
        if v < low:
            low = v
        if v > high:
            high = v
    lows[c] = low
    highs[c] = high


def value_range(src: np.ndarray, chunks: int) -> tuple[np.uint64, np.uint64]:
    """Minimum and maximum of a non-empty flat unsigned array, as uint64."""
    lows = np.empty(chunks, np.uint64)
    highs = np.empty(chunks, np.uint64)
    run_chunks(_range_of_chunk, chunks, src, lows, highs)
    return lows.min(), highs.max()


@kernel(helper=True)
def run_end(src: np.ndarray, i: int, stop: int) -> int:
    """End (exclusive) of the run of equal values starting at ``i``, at most ``stop``."""
    v = src[i]
    j = i + 1
    while j < stop and src[j] == v:
        j += 1
    return j

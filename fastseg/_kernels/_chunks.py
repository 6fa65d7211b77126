"""Splitting a flat array into per-thread chunks."""

from __future__ import annotations

import numpy as np

from fastseg._jit import kernel, run_chunks


@kernel()
def chunk_bounds(n: int, chunks: int, c: int) -> tuple[int, int]:
    """Half-open element range of chunk ``c`` of ``chunks``."""
    return (c * n) // chunks, ((c + 1) * n) // chunks


@kernel()
def _range_of_chunk(
    src: np.ndarray, lows: np.ndarray, highs: np.ndarray, c: int, chunks: int
) -> None:
    start, stop = chunk_bounds(src.size, chunks, c)
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


@kernel()
def run_end(src: np.ndarray, i: int, stop: int) -> int:
    """End (exclusive) of the run of equal values starting at ``i``, at most ``stop``."""
    v = src[i]
    j = i + 1
    while j < stop and src[j] == v:
        j += 1
    return j

"""Where each id lies, as runs of the flat array: one pass, then a mask per id on demand."""

from __future__ import annotations

import numpy as np

from fastseg._jit import kernel
from fastseg._kernels._chunks import run_end


@kernel()
def runs_by_id(flat: np.ndarray, n_ids: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The runs of every id ``1 .. n_ids - 1`` in a flat array of ids below ``n_ids``.

    Returns ``(offsets, starts, stops)``: the runs of id ``k`` are
    ``starts[offsets[k]:offsets[k + 1]]`` (with their ``stops``), in ascending order.
    Two run scans (count, then fill) and memory for the runs only, never per voxel.
    """
    n = flat.size
    counts = np.zeros(n_ids + 1, np.int64)
    i = 0
    while i < n:
        j = run_end(flat, i, n)
        counts[np.int64(flat[i]) + 1] += 1
        i = j
    counts[1] = 0  # id 0, the background, keeps no runs
    offsets = np.cumsum(counts)
    starts = np.empty(offsets[-1], np.int64)
    stops = np.empty(offsets[-1], np.int64)
    cursor = offsets[:-1].copy()
    i = 0
    while i < n:
        j = run_end(flat, i, n)
        k = np.int64(flat[i])
        if k:
            starts[cursor[k]] = i
            stops[cursor[k]] = j
            cursor[k] += 1
        i = j
    return offsets, starts, stops


@kernel()
def fill_runs(mask: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> None:
    """Set ``mask[start:stop] = True`` for every run."""
    for r in range(starts.size):
        mask[starts[r] : stops[r]] = True

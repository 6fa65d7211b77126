"""Per-id bounding boxes and value consistency checks over 3-D views of label maps."""

from __future__ import annotations

import numba
import numpy as np

from fastseg._jit import kernel
from fastseg._kernels._chunks import chunk_bounds

_BIG = np.iinfo(np.int64).max


@kernel(parallel=True)
def bounding_boxes(view: np.ndarray, n_ids: int, chunks: int) -> np.ndarray:
    """Half-open box ``[min0, min1, min2, stop0, stop1, stop2]`` of each id ``1..n_ids - 1``.

    ``view`` is a C-contiguous 3-D array of ids below ``n_ids``; id 0 is skipped. Absent
    ids keep ``min > stop``. Each chunk of rows fills its own table, merged at the end,
    so the result does not depend on the number of chunks.
    """
    n0, n1, n2 = view.shape
    rows = n0 * n1
    flat = view.reshape(rows, n2)
    partial = np.empty((chunks, n_ids, 6), np.int64)
    for c in numba.prange(chunks):
        box = partial[c]
        for k in range(n_ids):
            box[k, 0] = _BIG
            box[k, 1] = _BIG
            box[k, 2] = _BIG
            box[k, 3] = -1
            box[k, 4] = -1
            box[k, 5] = -1
        first, last = chunk_bounds(rows, chunks, c)
        for r in range(first, last):
            p = r // n1
            y = r % n1
            row = flat[r]
            x = 0
            while x < n2:
                v = row[x]
                stop = x + 1
                while stop < n2 and row[stop] == v:
                    stop += 1
                if v != 0:
                    b = box[np.int64(v)]
                    b[0] = min(b[0], p)
                    b[1] = min(b[1], y)
                    b[2] = min(b[2], x)
                    b[3] = max(b[3], p + 1)
                    b[4] = max(b[4], y + 1)
                    b[5] = max(b[5], stop)
                x = stop
    result = partial[0].copy()
    for c in range(1, chunks):
        for k in range(n_ids):
            for a in range(3):
                result[k, a] = min(result[k, a], partial[c, k, a])
                result[k, a + 3] = max(result[k, a + 3], partial[c, k, a + 3])
    return result


@kernel()
def values_per_id(
    ids: np.ndarray, values: np.ndarray, n_ids: int
) -> tuple[np.ndarray, np.ndarray, int, np.uint64, np.uint64]:
    """The value under each id of a flat id map (0 skipped) and whether it is unique.

    Returns ``(value, seen, conflict_id, first, second)``: ``conflict_id`` is -1 when
    every id covers a single value, otherwise an id that covers both ``first`` and
    ``second``.
    """
    value = np.zeros(n_ids, np.uint64)
    seen = np.zeros(n_ids, np.bool_)
    previous_id = np.uint64(0)
    previous_value = np.uint64(0)
    for i in range(ids.size):
        c = np.uint64(ids[i])
        v = np.uint64(values[i])
        if c == previous_id and v == previous_value:
            continue
        previous_id = c
        previous_value = v
        if c == 0:
            continue
        k = np.int64(c)
        if not seen[k]:
            seen[k] = True
            value[k] = v
        elif value[k] != v:
            return value, seen, k, value[k], v
    return value, seen, -1, np.uint64(0), np.uint64(0)

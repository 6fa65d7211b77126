"""Which ids touch which, and over how many voxel faces.

Works on the C-contiguous 3-D view ``(S0, S1, S2)`` of dense ids (0 is background).
Every pair of neighbouring voxels is looked at once, from the later voxel; pairs of
different non-zero ids go into per-chunk hash tables keyed by ``low * n_ids + high``,
with one counter per axis for face contacts and one for edge and corner contacts.
"""

from __future__ import annotations

import numpy as np

from fastseg._jit import kernel, run_chunks
from fastseg._kernels._hashing import find_slot

# Counter columns: faces perpendicular to view axes 0, 1, 2, then edges and corners.
N_COUNTERS = 4
EDGE_OR_CORNER = 3


@kernel()
def _contacts_chunk(
    flat: np.ndarray,
    n1: int,
    connectivity: int,
    n_ids: np.uint64,
    keys_of_chunks: np.ndarray,
    counts_of_chunks: np.ndarray,
    used_of_chunks: np.ndarray,
    complete: np.ndarray,
    bits: int,
    c: int,
    chunks: int,
) -> None:
    """Count the contacts of the rows of chunk ``c`` with earlier voxels in the chunk's
    hash table; ``complete[c] = False`` when the table filled up."""
    first, last = (c * flat.shape[0]) // chunks, ((c + 1) * flat.shape[0]) // chunks
    keys = keys_of_chunks[c]
    counts = counts_of_chunks[c]
    used = used_of_chunks[c]
    limit = keys.size // 2
    filled = 0
    n2 = flat.shape[1]
    for r in range(first, last):
        p = r // n1
        y = r % n1
        row = flat[r]
        # The earlier neighbours of (p, y, x): (p, y, x-1) in the row itself (n = -1),
        # then the rows (p, y-1) and (p-1, y-1 .. y+1). An offset with one non-zero step
        # is a face, two an edge (18 and 26), three a corner (26).
        for n in range(-1, 4):
            dp = 0 if n <= 0 else -1
            dy = 0 if n < 0 else (-1 if n <= 1 else n - 2)
            if p + dp < 0 or not 0 <= y + dy < n1:
                continue
            other = flat[r + dp * n1 + dy]
            for dx in range(-1, 2):
                if n < 0 and dx != -1:
                    continue  # the voxel itself and the later one
                steps = (dp != 0) + (dy != 0) + (dx != 0)
                if (steps == 2 and connectivity == 6) or (steps == 3 and connectivity != 26):
                    continue
                face = 0 if dp != 0 else (1 if dy != 0 else 2)
                column = face if steps == 1 else EDGE_OR_CORNER
                # Columns whose neighbour at x + dx exists. (Comparisons are written
                # out: the builtin min and max would be functions of their own to
                # compile on a first run.)
                for x in range(1 if dx < 0 else 0, n2 - 1 if dx > 0 else n2):
                    a = np.uint64(row[x])
                    b = np.uint64(other[x + dx])
                    if a == b or a == 0 or b == 0:
                        continue
                    key = a * n_ids + b if a < b else b * n_ids + a
                    slot = find_slot(keys, used, bits, key)
                    if not used[slot]:
                        if filled >= limit:
                            complete[c] = False
                            return
                        used[slot] = True
                        keys[slot] = key
                        filled += 1
                    counts[slot, column] += 1


def count_contacts(
    view: np.ndarray, connectivity: int, n_ids: int, bits: int, chunks: int
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Pair keys (``low * n_ids + high``) and their counters (``N_COUNTERS`` columns),
    one entry per chunk a pair occurs in, and whether a table overflowed."""
    n0, n1, n2 = view.shape
    flat = view.reshape(n0 * n1, n2)
    capacity = 1 << bits
    keys = np.zeros((chunks, capacity), np.uint64)
    counts = np.zeros((chunks, capacity, N_COUNTERS), np.int64)
    used = np.zeros((chunks, capacity), np.bool_)
    complete = np.ones(chunks, np.bool_)
    run_chunks(
        _contacts_chunk, chunks, flat, n1, connectivity, np.uint64(n_ids), keys, counts, used,
        complete, bits,
    )  # fmt: skip
    # Chunk by chunk, slot by slot: the order the tables were filled in does not matter.
    return keys[used], counts[used], not complete.all()

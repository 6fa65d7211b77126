"""Which ids touch which, and over how many voxel faces.

Works on the C-contiguous 3-D view ``(S0, S1, S2)`` of dense ids (0 is background).
Every pair of neighbouring voxels is looked at once, from the later voxel; pairs of
different non-zero ids go into per-chunk hash tables keyed by ``low * n_ids + high``,
with one counter per axis for face contacts and one for edge and corner contacts.
"""

from __future__ import annotations

import numpy as np

from fastseg._jit import kernel, run_chunks
from fastseg._kernels._chunks import chunk_bounds
from fastseg._kernels._hashing import find_slot

# Counter columns: faces perpendicular to view axes 0, 1, 2, then edges and corners.
N_COUNTERS = 4
EDGE_OR_CORNER = 3


@kernel()
def _add(
    keys: np.ndarray,
    counts: np.ndarray,
    used: np.ndarray,
    bits: int,
    filled: np.ndarray,
    a: np.uint64,
    b: np.uint64,
    n_ids: np.uint64,
    column: int,
) -> bool:
    """Count one contact between ids ``a`` and ``b``; False when the table is full."""
    if a == b or a == 0 or b == 0:
        return True
    low = min(a, b)
    high = max(a, b)
    key = low * n_ids + high
    slot = find_slot(keys, used, bits, key)
    if not used[slot]:
        if filled[0] >= keys.size // 2:
            return False
        used[slot] = True
        keys[slot] = key
        filled[0] += 1
    counts[slot, column] += 1
    return True


@kernel()
def _contacts_block(
    flat: np.ndarray,
    n1: int,
    connectivity: int,
    n_ids: np.uint64,
    first: int,
    last: int,
    keys: np.ndarray,
    counts: np.ndarray,
    used: np.ndarray,
    bits: int,
) -> bool:
    """Count the contacts of rows ``first .. last - 1`` with earlier voxels; False when
    the hash table filled up."""
    n2 = flat.shape[1]
    filled = np.zeros(1, np.int64)
    for r in range(first, last):
        p = r // n1
        y = r % n1
        row = flat[r]
        for x in range(1, n2):
            a = row[x]
            b = row[x - 1]
            if a != b and not _add(keys, counts, used, bits, filled, a, b, n_ids, 2):
                return False
        # The earlier rows next to (p, y): (p, y-1) and (p-1, y-1 .. y+1). An offset
        # with one non-zero step is a face, two an edge (18 and 26), three a corner (26).
        for n in range(4):
            dp = 0 if n == 0 else -1
            dy = -1 if n <= 1 else n - 2
            if p + dp < 0 or not 0 <= y + dy < n1:
                continue
            other = flat[r + dp * n1 + dy]
            for dx in range(-1, 2):
                steps = (dp != 0) + (dy != 0) + (dx != 0)
                if (steps == 2 and connectivity == 6) or (steps == 3 and connectivity != 26):
                    continue
                column = (0 if dp != 0 else 1) if steps == 1 else EDGE_OR_CORNER
                for x in range(max(0, -dx), min(n2, n2 - dx)):
                    a = row[x]
                    b = other[x + dx]
                    if a != b and not _add(keys, counts, used, bits, filled, a, b, n_ids, column):
                        return False
    return True


@kernel()
def _contacts_chunk(
    flat: np.ndarray,
    n1: int,
    connectivity: int,
    n_ids: np.uint64,
    keys: np.ndarray,
    counts: np.ndarray,
    used: np.ndarray,
    complete: np.ndarray,
    bits: int,
    c: int,
    chunks: int,
) -> None:
    first, last = chunk_bounds(flat.shape[0], chunks, c)
    complete[c] = _contacts_block(
        flat, n1, connectivity, n_ids, first, last, keys[c], counts[c], used[c], bits
    )


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

"""Bottom-k sampling of each id's voxels in one pass over a 3-D view of a label map.

Every voxel gets a 64-bit key computed from the seed and its row-major (C-order) index in
the caller's array: a bijective mix, so keys are distinct and the voxel can be recovered
from its key. The sample of an id is the set of its voxels with the ``k`` smallest keys:
a uniform sample without replacement, and a set that does not depend on the order the
voxels are visited in (memory order, row blocks, thread count). Memory is one max-heap of
``k`` keys per id and block, never a table of voxels.

The view ``(S0, S1, S2)`` is C-contiguous with ids below ``slots.size``; ``slots[v]`` is
the heap of id ``v`` (-1: not sampled).
"""

from __future__ import annotations

import numpy as np

from fastseg._jit import kernel, run_chunks
from fastseg._kernels._chunks import chunk_bounds, run_end

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
# Multiplicative inverses modulo 2^64, which undo the multiplications above.
_GOLDEN_INV = np.uint64(pow(0x9E3779B97F4A7C15, -1, 1 << 64))
_M1_INV = np.uint64(pow(0xBF58476D1CE4E5B9, -1, 1 << 64))
_M2_INV = np.uint64(pow(0x94D049BB133111EB, -1, 1 << 64))
_ALL_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)

_S27 = np.uint64(27)
_S30 = np.uint64(30)
_S31 = np.uint64(31)
_S54 = np.uint64(54)
_S60 = np.uint64(60)
_S62 = np.uint64(62)


@kernel()
def mix(z: np.uint64) -> np.uint64:
    """splitmix64's finaliser: a bijection of uint64 with full avalanche."""
    z = np.uint64(z)  # shifts of a signed argument would be arithmetic
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@kernel()
def unmix(z: np.uint64) -> np.uint64:
    """The inverse of :func:`mix`."""
    z = np.uint64(z)
    z = z ^ (z >> _S31) ^ (z >> _S62)
    z = z * _M2_INV
    z = z ^ (z >> _S27) ^ (z >> _S54)
    z = z * _M1_INV
    return z ^ (z >> _S30) ^ (z >> _S60)


@kernel()
def voxel_key(index: np.uint64, seed_key: np.uint64) -> np.uint64:
    """The key of the voxel at C-order ``index``; distinct indices get distinct keys."""
    return mix(index * _GOLDEN + seed_key)


@kernel()
def voxel_index(key: np.uint64, seed_key: np.uint64) -> np.uint64:
    """The C-order index whose key is ``key`` (the inverse of :func:`voxel_key`)."""
    return (unmix(key) - seed_key) * _GOLDEN_INV


@kernel()
def _sift_down(heap: np.ndarray, start: int, size: int) -> None:
    """Restore the max-heap ``heap[start:start + size]`` after its top was replaced."""
    i = 0
    value = heap[start]
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and heap[start + child + 1] > heap[start + child]:
            child += 1
        if heap[start + child] <= value:
            break
        heap[start + i] = heap[start + child]
        i = child
    heap[start + i] = value


@kernel()
def _push(heap: np.ndarray, start: int, size: int, key: np.uint64) -> None:
    """Add ``key`` to the max-heap ``heap[start:start + size]`` (room for one more)."""
    i = size
    while i > 0:
        parent = (i - 1) // 2
        if heap[start + parent] >= key:
            break
        heap[start + i] = heap[start + parent]
        i = parent
    heap[start + i] = key


@kernel()
def _insert(
    heap: np.ndarray,
    start: int,
    sizes: np.ndarray,
    s: int,
    cap: int,
    key: np.uint64,
    limits: np.ndarray,
) -> None:
    """Offer ``key`` to the heap of slot ``s`` (``key`` is below its limit)."""
    size = sizes[s]
    if size < cap:
        _push(heap, start, size, key)
        sizes[s] = size + 1
        if size + 1 == cap:
            limits[s] = heap[start]
    else:
        heap[start] = key
        _sift_down(heap, start, size)
        limits[s] = heap[start]


@kernel()
def _sample_block(
    flat: np.ndarray,
    n1: int,
    first: int,
    last: int,
    slots: np.ndarray,
    offsets: np.ndarray,
    capacity: np.ndarray,
    plane_stride: np.uint64,
    row_stride: np.uint64,
    column_stride: np.uint64,
    seed_key: np.uint64,
    heap: np.ndarray,
    sizes: np.ndarray,
    limits: np.ndarray,
) -> None:
    n2 = flat.shape[1]
    for r in range(first, last):
        base = np.uint64(r // n1) * plane_stride + np.uint64(r % n1) * row_stride
        row = flat[r]
        x = 0
        while x < n2:
            stop = run_end(row, x, n2)
            s = slots[np.int64(row[x])]
            if s >= 0:
                limit = limits[s]
                # Most keys lie above the limit: a branch-free look first, which the
                # compiler can vectorise, then the few keys below it one by one.
                below = 0
                for i in range(x, stop):
                    key = voxel_key(base + np.uint64(i) * column_stride, seed_key)
                    below += key < limit
                if below:
                    start = offsets[s]
                    cap = capacity[s]
                    for i in range(x, stop):
                        key = voxel_key(base + np.uint64(i) * column_stride, seed_key)
                        if key < limits[s]:
                            _insert(heap, start, sizes, s, cap, key, limits)
            x = stop


@kernel()
def _sample_chunk(
    flat: np.ndarray,
    n1: int,
    slots: np.ndarray,
    offsets: np.ndarray,
    capacity: np.ndarray,
    strides: np.ndarray,
    seed_key: np.uint64,
    heaps: np.ndarray,
    sizes: np.ndarray,
    limits: np.ndarray,
    b: int,
    blocks: int,
) -> None:
    first, last = chunk_bounds(flat.shape[0], blocks, b)
    _sample_block(
        flat, n1, first, last, slots, offsets, capacity,
        np.uint64(strides[0]), np.uint64(strides[1]), np.uint64(strides[2]), seed_key,
        heaps[b], sizes[b], limits[b],
    )  # fmt: skip


@kernel()
def _merge_heaps(
    heaps: np.ndarray, sizes: np.ndarray, offsets: np.ndarray, capacity: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per slot, the smallest ``capacity`` keys of every block's heap, ascending."""
    blocks, n_slots = sizes.shape
    keys = np.empty(offsets[n_slots], np.uint64)
    found = np.zeros(n_slots, np.int64)
    for s in range(n_slots):
        start = offsets[s]
        gathered = 0
        for b in range(blocks):
            gathered += sizes[b, s]
        merged = np.empty(gathered, np.uint64)
        j = 0
        for b in range(blocks):
            for i in range(sizes[b, s]):
                merged[j] = heaps[b, start + i]
                j += 1
        merged.sort()
        n = min(gathered, capacity[s])
        keys[start : start + n] = merged[:n]
        found[s] = n
    return keys, found


def bottom_k(
    view: np.ndarray,
    slots: np.ndarray,
    offsets: np.ndarray,
    capacity: np.ndarray,
    initial_limits: np.ndarray,
    strides: np.ndarray,
    seed_key: np.uint64,
    blocks: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The smallest ``capacity[s]`` keys below ``initial_limits[s]`` of the voxels of
    each slot ``s``, ascending, and how many there are.

    ``offsets`` (one more entry than slots) places slot ``s`` at
    ``keys[offsets[s]:offsets[s] + found[s]]``; ``strides`` turns view coordinates
    (plane, row, column) into the caller's C-order index. Row blocks keep heaps of their
    own, merged at the end: the result does not depend on ``blocks``. A limit only
    skips keys that cannot be among the smallest when at least ``capacity[s]`` keys lie
    below it; the caller checks that and runs again without limit otherwise.
    """
    n0, n1, n2 = view.shape
    flat = view.reshape(n0 * n1, n2)
    n_slots = capacity.size
    heaps = np.empty((blocks, int(offsets[n_slots])), np.uint64)
    sizes = np.zeros((blocks, n_slots), np.int64)
    limits = np.repeat(initial_limits[None, :], blocks, axis=0)
    run_chunks(
        _sample_chunk, blocks, flat, n1, slots, offsets, capacity, strides, seed_key,
        heaps, sizes, limits,
    )  # fmt: skip
    return _merge_heaps(heaps, sizes, offsets, capacity)


@kernel()
def _count_chunk(flat: np.ndarray, tables: np.ndarray, b: int, blocks: int) -> None:
    first, last = chunk_bounds(flat.shape[0], blocks, b)
    counts = tables[b]
    n2 = flat.shape[1]
    for r in range(first, last):
        row = flat[r]
        x = 0
        while x < n2:
            stop = run_end(row, x, n2)
            counts[np.int64(row[x])] += stop - x
            x = stop


def count_ids(view: np.ndarray, n_ids: int, blocks: int) -> np.ndarray:
    """Voxels of each id below ``n_ids``, counted run by run."""
    n0, n1, n2 = view.shape
    tables = np.zeros((blocks, n_ids), np.int64)
    run_chunks(_count_chunk, blocks, view.reshape(n0 * n1, n2), tables)
    counts: np.ndarray = tables.sum(axis=0)
    return counts


@kernel()
def keys_to_coordinates(
    keys: np.ndarray, seed_key: np.uint64, shape: np.ndarray, out: np.ndarray
) -> None:
    """Write the caller's coordinates of each key's voxel into the rows of ``out``."""
    ndim = shape.size
    for j in range(keys.size):
        index = voxel_index(keys[j], seed_key)
        for d in range(ndim - 1, -1, -1):
            extent = np.uint64(shape[d])
            out[j, d] = index % extent
            index = index // extent

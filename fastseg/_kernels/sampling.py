"""Bottom-k sampling of each id's voxels in one pass over a 3-D view of a label map.

Every voxel gets a 64-bit key computed from the seed and its row-major (C-order) index in
the caller's array: a bijective mix, so keys are distinct and the voxel can be recovered
from its key. The sample of an id is the set of its voxels with the ``k`` smallest keys:
a uniform sample without replacement, and a set that does not depend on the order the
voxels are visited in (memory order, row blocks, thread count).

The caller gives each id a key limit below which a little more than ``k`` of its keys
lie, and each row block room for about its share of them (from the block's count of
the id's voxels): :func:`collect` stores every key at or below the limit, :func:`finish`
sorts an id's keys and writes the coordinates of the ``k`` smallest, in the memory of
the result when the keys fit there. Memory is the result, never a table of voxels.

The view ``(S0, S1, S2)`` is C-contiguous with ids below ``slots.size``; ``slots[v]`` is
the slot of id ``v`` (-1: not sampled).
"""

from __future__ import annotations

import numpy as np

from fastseg._jit import current_threads, kernel, run_chunks
from fastseg._kernels._chunks import run_end

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


@kernel(helper=True)
def mix(z: np.uint64) -> np.uint64:
    """splitmix64's finaliser: a bijection of uint64 with full avalanche."""
    z = np.uint64(z)  # shifts of a signed argument would be arithmetic
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@kernel(helper=True)
def unmix(z: np.uint64) -> np.uint64:
    """The inverse of :func:`mix`."""
    z = np.uint64(z)
    z = z ^ (z >> _S31) ^ (z >> _S62)
    z = z * _M2_INV
    z = z ^ (z >> _S27) ^ (z >> _S54)
    z = z * _M1_INV
    return z ^ (z >> _S30) ^ (z >> _S60)


@kernel(helper=True)
def voxel_key(index: np.uint64, seed_key: np.uint64) -> np.uint64:
    """The key of the voxel at C-order ``index``; distinct indices get distinct keys."""
    return mix(index * _GOLDEN + seed_key)


@kernel(helper=True)
def voxel_index(key: np.uint64, seed_key: np.uint64) -> np.uint64:
    """The C-order index whose key is ``key`` (the inverse of :func:`voxel_key`)."""
    return (unmix(key) - seed_key) * _GOLDEN_INV


@kernel()
def _collect_chunk(
    flat: np.ndarray,
    n1: int,
    slots: np.ndarray,
    limits: np.ndarray,
    strides: np.ndarray,
    seed_key: np.uint64,
    store: np.ndarray,
    side: np.ndarray,
    in_side: np.ndarray,
    starts_of_blocks: np.ndarray,
    caps_of_blocks: np.ndarray,
    fills_of_blocks: np.ndarray,
    b: int,
    blocks: int,
) -> None:
    first, last = (b * flat.shape[0]) // blocks, ((b + 1) * flat.shape[0]) // blocks
    plane_stride, row_stride = np.uint64(strides[0]), np.uint64(strides[1])
    column_stride = np.uint64(strides[2])
    starts, caps, fills = starts_of_blocks[b], caps_of_blocks[b], fills_of_blocks[b]
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
                # compiler can vectorise, then the few keys at or below it one by one.
                below = 0
                for i in range(x, stop):
                    key = voxel_key(base + np.uint64(i) * column_stride, seed_key)
                    below += key <= limit
                if below:
                    buffer = side if in_side[s] else store
                    start = starts[s]
                    cap = caps[s]
                    filled = fills[s]
                    for i in range(x, stop):
                        key = voxel_key(base + np.uint64(i) * column_stride, seed_key)
                        if key <= limit:
                            if filled < cap:
                                buffer[start + filled] = key
                            filled += 1
                    fills[s] = filled
            x = stop


# Below this many keys a range is sorted by insertion; the stack holds ranges still to
# sort, the larger side of each split, so it never needs more than log2(n) entries.
_SMALL_SORT = 15
_SORT_STACK = 64


@kernel(helper=True)
def _sort_keys(keys: np.ndarray, start: int, stop: int) -> None:
    """Sort ``keys[start:stop]`` in place, ascending: the quicksort of numba's
    ``ndarray.sort`` (median of three, insertion sort for short ranges), written out
    because numba's generic one costs seconds to compile in every process."""
    if stop - start < 2:
        return
    stack = np.empty((_SORT_STACK, 2), np.int64)
    stack[0, 0] = start
    stack[0, 1] = stop - 1
    n = 1
    while n > 0:
        n -= 1
        low = stack[n, 0]
        high = stack[n, 1]
        while high - low >= _SMALL_SORT:
            # Never false: tells the compiler that indices need no wraparound for < 0.
            assert low >= 0
            mid = (low + high) >> 1
            if keys[mid] < keys[low]:
                keys[low], keys[mid] = keys[mid], keys[low]
            if keys[high] < keys[mid]:
                keys[high], keys[mid] = keys[mid], keys[high]
            if keys[mid] < keys[low]:
                keys[low], keys[mid] = keys[mid], keys[low]
            pivot = keys[mid]
            keys[high], keys[mid] = keys[mid], keys[high]
            i = low
            j = high - 1
            while True:
                while i < high and keys[i] < pivot:
                    i += 1
                while j >= low and pivot < keys[j]:
                    j -= 1
                if i >= j:
                    break
                keys[i], keys[j] = keys[j], keys[i]
                i += 1
                j -= 1
            keys[i], keys[high] = keys[high], keys[i]
            # Keep sorting the smaller side, push the larger.
            if high - i > i - low:
                if high > i:
                    stack[n, 0] = i + 1
                    stack[n, 1] = high
                    n += 1
                high = i - 1
            else:
                if i > low:
                    stack[n, 0] = low
                    stack[n, 1] = i - 1
                    n += 1
                low = i + 1
        assert low >= 0
        for i in range(low + 1, high + 1):
            v = keys[i]
            j = i
            while j > low and v < keys[j - 1]:
                keys[j] = keys[j - 1]
                j -= 1
            keys[j] = v


@kernel()
def _finish_chunk(
    store: np.ndarray,
    side: np.ndarray,
    in_side: np.ndarray,
    starts: np.ndarray,
    caps: np.ndarray,
    fills: np.ndarray,
    sizes: np.ndarray,
    out: np.ndarray,
    out_starts: np.ndarray,
    shape: np.ndarray,
    seed_key: np.uint64,
    done: np.ndarray,
    c: int,
    chunks: int,
) -> None:
    blocks = starts.shape[0]
    ndim = shape.size
    first, last = (c * sizes.size) // chunks, ((c + 1) * sizes.size) // chunks
    for s in range(first, last):
        buffer = side if in_side[s] else store
        base = starts[0, s]
        total = 0
        overflow = False
        for b in range(blocks):
            filled = fills[b, s]
            if filled > caps[b, s]:
                overflow = True
                break
            source = starts[b, s]
            target = base + total
            if source != target:
                for i in range(filled):
                    buffer[target + i] = buffer[source + i]
            total += filled
        k = sizes[s]
        if overflow or total < k:
            done[s] = False
            continue
        _sort_keys(buffer, base, base + total)
        # Coordinates from the last to the first: in a class's own region, row j starts
        # at or after key j's bytes, so it only overwrites keys already turned into rows.
        position = out_starts[s] + ndim * (k - 1)
        for j in range(k - 1, -1, -1):
            index = voxel_index(buffer[base + j], seed_key)
            for d in range(ndim - 1, -1, -1):
                extent = np.uint64(shape[d])
                out[position + d] = index % extent
                index = index // extent
            position -= ndim
        done[s] = True


def collect(
    view: np.ndarray,
    slots: np.ndarray,
    limits: np.ndarray,
    strides: np.ndarray,
    seed_key: np.uint64,
    store: np.ndarray,
    side: np.ndarray,
    in_side: np.ndarray,
    starts: np.ndarray,
    caps: np.ndarray,
    blocks: int,
) -> np.ndarray:
    """Write the keys at most ``limits[s]`` of the voxels of each slot ``s`` into
    ``side`` (when ``in_side[s]``) or ``store``, row block ``b``'s at ``starts[b, s]``,
    at most ``caps[b, s]`` of them; return how many each block found (above its cap:
    it overflowed). ``strides`` turns view coordinates (plane, row, column) into the
    caller's C-order index."""
    n0, n1, n2 = view.shape
    flat = view.reshape(n0 * n1, n2)
    fills = np.zeros(caps.shape, np.int64)
    run_chunks(
        _collect_chunk, blocks, flat, n1, slots, limits, strides, seed_key, store, side,
        in_side, starts, caps, fills,
    )  # fmt: skip
    return fills


def finish(
    store: np.ndarray,
    side: np.ndarray,
    in_side: np.ndarray,
    starts: np.ndarray,
    caps: np.ndarray,
    fills: np.ndarray,
    sizes: np.ndarray,
    out: np.ndarray,
    out_starts: np.ndarray,
    shape: np.ndarray,
    seed_key: np.uint64,
) -> np.ndarray:
    """Per slot ``s``, the coordinates of the voxels of its ``sizes[s]`` smallest
    collected keys, in ascending key order, written at ``out[out_starts[s]:]`` (``ndim``
    values per voxel); False where a block overflowed or fewer keys were collected (the
    slot must be drawn again). ``out`` may share ``store``'s memory when each slot's keys
    lie in its own rows of ``out``: keys are sorted in place, then turned into rows from
    the last."""
    done = np.zeros(sizes.size, np.bool_)
    chunks = max(1, min(current_threads(), sizes.size))
    run_chunks(
        _finish_chunk, chunks, store, side, in_side, starts, caps, fills, sizes, out,
        out_starts, shape, seed_key, done,
    )  # fmt: skip
    return done


@kernel()
def _count_chunk(flat: np.ndarray, tables: np.ndarray, b: int, blocks: int) -> None:
    first, last = (b * flat.shape[0]) // blocks, ((b + 1) * flat.shape[0]) // blocks
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
    """Voxels of each id below ``n_ids`` in each row block, counted run by run:
    ``(blocks, n_ids)``."""
    n0, n1, n2 = view.shape
    tables = np.zeros((blocks, n_ids), np.int64)
    run_chunks(_count_chunk, blocks, view.reshape(n0 * n1, n2), tables)
    return tables

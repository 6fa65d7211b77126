"""Bottom-k sampling of each id's voxels in one pass over a 3-D view of a label map.

Every voxel gets a 64-bit key computed from the seed and its row-major (C-order) index in
the caller's array: a bijective mix, so keys are distinct and the voxel can be recovered
from its key. The sample of an id is the set of its voxels with the ``k`` smallest keys:
a uniform sample without replacement, and a set that does not depend on the order the
voxels are visited in (memory order, row blocks, thread count).

One pass counts every id's voxels and keeps, per wanted id, a buffer of candidate keys:
at least its ``cap`` smallest keys and, for a fraction of its voxels, every key below a
limit that the rank-``fraction * n`` key stays under whatever ``n`` turns out to be. A
full buffer is compacted (quickselect) and its limit lowered, so most keys are rejected
by one comparison and memory follows the sample, never the voxel count. The caller
merges the blocks' buffers once the counts, and so the sample sizes, are known, and
checks that every block kept all the keys below the largest one chosen.

The view ``(S0, S1, S2)`` is C-contiguous with ids below ``wanted.size``.
"""

from __future__ import annotations

import numpy as np

from fastseg._jit import kernel, run_chunks
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
def _select(keys: np.ndarray, low: int, high: int, rank: int) -> None:
    """Reorder ``keys[low:high]`` (distinct) so that ``keys[low + rank]`` is the one of
    that rank, smaller keys before it and larger ones after (quickselect)."""
    target = low + rank
    left = low
    right = high - 1
    while left < right:
        middle = (left + right) >> 1
        a, b, c = keys[left], keys[middle], keys[right]
        pivot = max(min(a, b), min(max(a, b), c))
        i = left
        j = right
        while i <= j:
            while keys[i] < pivot:
                i += 1
            while keys[j] > pivot:
                j -= 1
            if i <= j:
                keys[i], keys[j] = keys[j], keys[i]
                i += 1
                j -= 1
        if target <= j:
            right = j
        elif target >= i:
            left = i
        else:
            break


@kernel()
def _fraction_limit(fraction: float, count: int) -> np.uint64:
    """A key below which, but for a chance of about 1e-15, lie at least the
    ``ceil(fraction * n)`` smallest keys of any ``n >= count`` voxels of one id (of which
    ``count`` were seen here): keys are uniform, so the rank-``fraction * n`` key lies
    within ``8 sqrt(fraction / n)`` of ``fraction`` (in units of 2^64)."""
    if fraction <= 0.0:
        return np.uint64(0)
    q = fraction + 8.0 * np.sqrt(fraction / count) + 16.0 / count
    if q >= 0.999:
        return _ALL_ONES
    return np.uint64(q * 18446744073709551616.0)


@kernel()
def _relocated(
    pool: np.ndarray,
    starts: np.ndarray,
    sizes: np.ndarray,
    reserved: np.ndarray,
    n_slots: int,
    need: int,
) -> tuple[np.ndarray, int]:
    """A larger pool holding every slot's keys, slot after slot, each with its reserved
    room, and room for ``need`` more keys at its end (returned). Keys of regions left
    behind are dropped; room never filled is never copied, so it costs no memory."""
    total = need
    for s in range(n_slots):
        total += reserved[s]
    grown = np.empty(max(2 * pool.size, total + total // 2), np.uint64)
    position = 0
    for s in range(n_slots):
        grown[position : position + sizes[s]] = pool[starts[s] : starts[s] + sizes[s]]
        starts[s] = position
        position += reserved[s]
    return grown, position


# What _sample_rows returns: done, or the room it needs before it can go on.
_DONE, _MORE_SLOTS, _MORE_POOL = 0, 1, 2
# Its state: where it goes on (row, position in the row), slots in use, end of the used
# pool, pool room it needs.
_ROW, _COLUMN, _SLOTS, _END, _NEED = 0, 1, 2, 3, 4


@kernel()
def _compact(
    pool: np.ndarray,
    s: int,
    starts: np.ndarray,
    sizes: np.ndarray,
    limits: np.ndarray,
    complete: np.ndarray,
    cap: int,
    fraction_limit: np.uint64,
) -> None:
    """Keep slot ``s``'s ``cap`` smallest keys and every key below ``fraction_limit``;
    the smallest key dropped becomes its limit."""
    start = starts[s]
    size = sizes[s]
    below = 0
    if fraction_limit == _ALL_ONES:
        below = size
    elif fraction_limit > 0:
        for i in range(start, start + size):
            below += pool[i] < fraction_limit
    keep = max(cap, below)
    if keep < size:
        _select(pool, start, start + size, keep)
        # Everything from position keep on is larger than what is kept.
        dropped = pool[start + keep]
        sizes[s] = keep
        limits[s] = dropped
        if dropped < complete[s]:
            complete[s] = dropped


@kernel()
def _sample_rows(
    flat: np.ndarray,
    n1: int,
    step: int,
    wanted: np.ndarray,
    caps: np.ndarray,
    fraction: float,
    strides: np.ndarray,
    seed_key: np.uint64,
    counts: np.ndarray,
    slot_of: np.ndarray,
    ids: np.ndarray,
    starts: np.ndarray,
    sizes: np.ndarray,
    reserved: np.ndarray,
    limits: np.ndarray,
    complete: np.ndarray,
    pool: np.ndarray,
    state: np.ndarray,
) -> int:
    """Go on with one pass over rows ``r, r + step, ...`` of ``flat`` (the view's rows)
    from ``state``: count every id's voxels, and for each wanted id keep a buffer of keys
    holding at least its ``caps[id]`` smallest keys in these rows and, with
    ``fraction``, every key below :func:`_fraction_limit`.

    Per slot (one per wanted id met): its id, where its keys start in the pool, how many
    there are, the room reserved for them, the limit below which keys are taken, and
    the key below which every key of its voxels here was kept. A buffer without room
    for the next run is compacted to the keys it must hold (quickselect) or moved to
    twice the room at the end of the pool. Returns ``_DONE``, or ``_MORE_SLOTS`` /
    ``_MORE_POOL`` (``state[_NEED]`` keys) when the caller must grow those arrays
    first: no array is replaced here, which would cost reference counting in the loop.
    """
    n_rows, n2 = flat.shape
    plane_stride = np.uint64(strides[0])
    row_stride = np.uint64(strides[1])
    column_stride = np.uint64(strides[2])
    keys = np.empty(n2, np.uint64)
    n_slots = state[_SLOTS]
    end = state[_END]
    x = state[_COLUMN]
    for r in range(state[_ROW], n_rows, step):
        base = np.uint64(r // n1) * plane_stride + np.uint64(r % n1) * row_stride
        row = flat[r]
        while x < n2:
            stop = run_end(row, x, n2)
            v = np.int64(row[x])
            if not wanted[v]:
                counts[v] += stop - x
                x = stop
                continue
            length = stop - x
            s = slot_of[v]
            if s < 0:
                first_room = 256 if caps[v] > (1 << 40) else max(16, caps[v] + caps[v] // 2)
                if n_slots == ids.size or end + first_room > pool.size:
                    state[_ROW], state[_COLUMN], state[_SLOTS], state[_END] = r, x, n_slots, end
                    state[_NEED] = first_room
                    return _MORE_SLOTS if n_slots == ids.size else _MORE_POOL
                s = n_slots
                n_slots += 1
                slot_of[v] = s
                ids[s] = v
                starts[s] = end
                sizes[s] = 0
                reserved[s] = first_room
                end += first_room
                limits[s] = _ALL_ONES
                complete[s] = _ALL_ONES
            if sizes[s] + length > reserved[s]:
                _compact(
                    pool, s, starts, sizes, limits, complete, caps[v],
                    _fraction_limit(fraction, counts[v] + length),
                )  # fmt: skip
                if 4 * (sizes[s] + length) > 3 * reserved[s]:
                    room = 2 * reserved[s]
                    while 4 * (sizes[s] + length) > 3 * room:
                        room *= 2
                    if starts[s] + reserved[s] == end and starts[s] + room <= pool.size:
                        end = starts[s] + room  # the last buffer grows in place
                    elif end + room <= pool.size:
                        pool[end : end + sizes[s]] = pool[starts[s] : starts[s] + sizes[s]]
                        starts[s] = end
                        end += room
                    else:
                        state[_ROW], state[_COLUMN], state[_SLOTS] = r, x, n_slots
                        state[_END], state[_NEED] = end, room
                        return _MORE_POOL
                    reserved[s] = room
            counts[v] += length
            limit = limits[s]
            if limit == _ALL_ONES:
                below = length
                for i in range(x, stop):
                    keys[i] = voxel_key(base + np.uint64(i) * column_stride, seed_key)
            else:
                # Most keys lie above the limit: a branch-free look first, which the
                # compiler can vectorise, then the few keys below it one by one.
                below = 0
                for i in range(x, stop):
                    key = voxel_key(base + np.uint64(i) * column_stride, seed_key)
                    keys[i] = key
                    below += key < limit
                if below < length and limit < complete[s]:
                    complete[s] = limit
            if below:
                at = starts[s] + sizes[s]
                for i in range(x, stop):
                    key = keys[i]
                    if key < limit or limit == _ALL_ONES:
                        pool[at] = key
                        at += 1
                sizes[s] = at - starts[s]
            x = stop
        x = 0
    state[_ROW], state[_COLUMN], state[_SLOTS], state[_END] = n_rows, 0, n_slots, end
    return _DONE


def sample_rows(
    view: np.ndarray,
    wanted: np.ndarray,
    caps: np.ndarray,
    fraction: float,
    strides: np.ndarray,
    seed_key: np.uint64,
    blocks: int,
) -> list[tuple[np.ndarray, ...]]:
    """:func:`_sample_rows` over the rows of ``view`` in ``blocks`` interleaved blocks
    (row ``r`` in block ``r % blocks``, so that each id's voxels spread evenly), one
    result per block: (counts per id, slot of each id, then per slot: its id, start,
    size, complete limit, and the pool); ``wanted`` and ``caps`` are tables over the
    ids."""
    n0, n1, n2 = view.shape
    flat = view.reshape(n0 * n1, n2)
    results: list[tuple[np.ndarray, ...]] = [()] * blocks

    def block(b: int, chunks: int) -> None:
        counts = np.zeros(wanted.size, np.int64)
        slot_of = np.full(wanted.size, -1, np.int64)
        slots = [np.empty(16, np.int64) for _ in range(4)]
        slots += [np.empty(16, np.uint64) for _ in range(2)]
        pool = np.empty(1 << 12, np.uint64)
        state = np.array([b, 0, 0, 0, 0], np.int64)
        while True:
            done = _sample_rows(
                flat, n1, chunks, wanted, caps, fraction, strides, seed_key, counts, slot_of,
                *slots, pool, state,
            )  # fmt: skip
            if done == _DONE:
                break
            if done == _MORE_SLOTS:
                slots = [np.concatenate((a, np.empty_like(a))) for a in slots]
            else:
                _, starts, sizes, reserved = slots[:4]
                pool, state[_END] = _relocated(
                    pool, starts, sizes, reserved, int(state[_SLOTS]), int(state[_NEED])
                )
        n = int(state[_SLOTS])
        ids, starts, sizes, _, _, complete = (a[:n] for a in slots)
        results[b] = (counts, slot_of, ids, starts, sizes, complete, pool)

    run_chunks(block, blocks)
    return results


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


def merge(results: list[tuple[np.ndarray, ...]], v: int, size: int) -> np.ndarray | None:
    """The ``size`` smallest keys of id ``v`` over the blocks' buffers (results of
    :func:`sample_rows`), ascending, or None when a block may have dropped one of them
    (or kept fewer): the caller samples that id again with ``cap = size``."""
    parts = []
    complete = []
    for _, slot_of, _, starts, sizes, kept_below, pool in results:
        s = slot_of[v]
        if s >= 0:
            parts.append(pool[starts[s] : starts[s] + sizes[s]])
            complete.append(kept_below[s])
    if size == 0:
        return np.zeros(0, np.uint64)
    gathered = np.concatenate(parts) if len(parts) != 1 else parts[0].copy()
    if gathered.size < size:
        return None
    chosen = np.partition(gathered, size - 1)[:size]
    largest = chosen[size - 1]
    # Every block kept all its keys below ``complete``: the ``size`` smallest are here.
    if any(largest > c for c in complete):
        return None
    chosen.sort()
    return chosen

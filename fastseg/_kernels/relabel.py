"""Relabeling kernels: counting values and mapping them through a table or a hash table.

All kernels take flat, contiguous, native unsigned arrays (the wrapper views bool and
non-negative signed labels as unsigned of the same width). Label maps are mostly long
runs of one value, so every kernel walks the array run by run: one lookup per run, then
a tight fill loop the compiler can vectorise.
"""

from __future__ import annotations

import numpy as np

from fastseg._jit import kernel, run_chunks
from fastseg._kernels._chunks import run_end
from fastseg._kernels._hashing import find_slot

# What a remap does with a value that has no entry in the mapping.
KEEP = 0
FILL = 1
ERROR = 2


@kernel()
def _count_chunk(src: np.ndarray, low: np.uint64, partial: np.ndarray, c: int, chunks: int) -> None:
    start, stop = (c * src.size) // chunks, ((c + 1) * src.size) // chunks
    counts = partial[c]
    i = start
    while i < stop:
        j = run_end(src, i, stop)
        counts[np.int64(np.uint64(src[i]) - low)] += j - i
        i = j


def count_in_table(src: np.ndarray, low: np.uint64, size: int, chunks: int) -> np.ndarray:
    """Occurrences of each value ``low .. low + size - 1`` (all values must be in range)."""
    partial = np.zeros((chunks, size), np.int64)
    run_chunks(_count_chunk, chunks, src, low, partial)
    return partial[0] if chunks == 1 else partial.sum(axis=0)


@kernel()
def _count_hashed_chunk(
    src: np.ndarray,
    bits: int,
    keys: np.ndarray,
    counts: np.ndarray,
    used: np.ndarray,
    overflow: np.ndarray,
    c: int,
    chunks: int,
) -> None:
    start, stop = (c * src.size) // chunks, ((c + 1) * src.size) // chunks
    limit = (1 << bits) // 2
    chunk_keys = keys[c]
    chunk_used = used[c]
    chunk_counts = counts[c]
    filled = 0
    i = start
    while i < stop:
        j = run_end(src, i, stop)
        v = np.uint64(src[i])
        slot = find_slot(chunk_keys, chunk_used, bits, v)
        if not chunk_used[slot]:
            if filled >= limit:
                overflow[c] = True
                return
            chunk_used[slot] = True
            chunk_keys[slot] = v
            filled += 1
        chunk_counts[slot] += j - i
        i = j


def count_hashed(
    src: np.ndarray, bits: int, chunks: int
) -> tuple[np.ndarray, np.ndarray, np.bool_]:
    """Distinct values and their counts through per-chunk hash tables of ``2**bits`` slots.

    Returns unsorted keys (one entry per chunk a key occurs in), counts and an overflow
    flag: when a chunk meets more distinct values than fit in half its table the result
    is incomplete and the caller retries with more bits.
    """
    capacity = 1 << bits
    keys = np.zeros((chunks, capacity), np.uint64)
    counts = np.zeros((chunks, capacity), np.int64)
    used = np.zeros((chunks, capacity), np.bool_)
    overflow = np.zeros(chunks, np.bool_)
    run_chunks(_count_hashed_chunk, chunks, src, bits, keys, counts, used, overflow)
    return keys[used], counts[used], overflow.any()


def merge_counts(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort ``keys`` and add up the counts of equal keys.

    numpy, not a kernel: a sort inside a kernel compiles numba's generic sort, about 4 s
    on a first call, for a step that takes milliseconds.
    """
    if keys.size == 0:
        return keys.copy(), counts.copy()
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
    return sorted_keys[starts], np.add.reduceat(counts[order], starts)


# The two chunk kernels below differ only in their lookup. They are written out twice on
# purpose: the hot loop is a load, a compare and a store, and folding both lookups into
# one function made numba's code three times slower (measured on connectomics).


@kernel()
def _table_chunk(
    src: np.ndarray,
    low: np.uint64,
    table: np.ndarray,
    known: np.ndarray,
    out: np.ndarray,
    mode: int,
    fill: np.uint64,
    missing_of_chunks: np.ndarray,
    largest_of_chunks: np.ndarray,
    c: int,
    chunks: int,
) -> None:
    start, stop = (c * src.size) // chunks, ((c + 1) * src.size) // chunks
    if start >= stop:
        return
    size = np.uint64(table.size)
    previous = np.uint64(src[start]) + np.uint64(1)  # differs from src[start]: forces a lookup
    value = np.uint64(0)
    absent = False
    run_start = start
    missing = 0
    largest = np.uint64(0)
    for i in range(start, stop):
        v = np.uint64(src[i])
        if v != previous:
            # Account for the run that just ended, then look the new value up.
            if absent:
                missing += i - run_start
            run_start = i
            previous = v
            offset = v - low
            absent = not (v >= low and offset < size and known[offset])
            if not absent:
                value = np.uint64(table[offset])
            elif mode == KEEP:
                value = v
                if v > largest:  # (the builtin max: one more function to compile)
                    largest = v
            else:
                value = fill
        out[i] = value
    if absent:
        missing += stop - run_start
    missing_of_chunks[c] = missing
    largest_of_chunks[c] = largest


def remap_through_table(
    src: np.ndarray,
    low: np.uint64,
    table: np.ndarray,
    known: np.ndarray,
    out: np.ndarray,
    mode: int,
    fill: np.uint64,
    chunks: int,
) -> tuple[int, np.uint64]:
    """``out[i] = table[src[i] - low]`` where ``known``; unmapped values follow ``mode``.

    ``fill`` and the values written travel as uint64 bit patterns and are truncated to
    ``out``'s dtype on store, so two's complement keeps negative values intact. Returns
    the number of voxels whose value had no entry and the largest such value (what
    ``KEEP`` copied, so the caller can check that it fits ``out``).
    """
    missing = np.zeros(chunks, np.int64)
    largest = np.zeros(chunks, np.uint64)
    run_chunks(_table_chunk, chunks, src, low, table, known, out, mode, fill, missing, largest)
    return int(missing.sum()), largest.max()


@kernel()
def _hash_chunk(
    src: np.ndarray,
    keys: np.ndarray,
    values: np.ndarray,
    used: np.ndarray,
    bits: int,
    out: np.ndarray,
    mode: int,
    fill: np.uint64,
    missing_of_chunks: np.ndarray,
    largest_of_chunks: np.ndarray,
    c: int,
    chunks: int,
) -> None:
    start, stop = (c * src.size) // chunks, ((c + 1) * src.size) // chunks
    if start >= stop:
        return
    previous = np.uint64(src[start]) + np.uint64(1)
    value = np.uint64(0)
    absent = False
    run_start = start
    missing = 0
    largest = np.uint64(0)
    for i in range(start, stop):
        v = np.uint64(src[i])
        if v != previous:
            if absent:
                missing += i - run_start
            run_start = i
            previous = v
            slot = find_slot(keys, used, bits, v)
            absent = not used[slot]
            if not absent:
                value = np.uint64(values[slot])
            elif mode == KEEP:
                value = v
                if v > largest:  # (the builtin max: one more function to compile)
                    largest = v
            else:
                value = fill
        out[i] = value
    if absent:
        missing += stop - run_start
    missing_of_chunks[c] = missing
    largest_of_chunks[c] = largest


def remap_through_hash(
    src: np.ndarray,
    keys: np.ndarray,
    values: np.ndarray,
    used: np.ndarray,
    bits: int,
    out: np.ndarray,
    mode: int,
    fill: np.uint64,
    chunks: int,
) -> tuple[int, np.uint64]:
    """Like :func:`remap_through_table`, with the mapping in a hash table of ``2**bits`` slots."""
    missing = np.zeros(chunks, np.int64)
    largest = np.zeros(chunks, np.uint64)
    run_chunks(
        _hash_chunk, chunks, src, keys, values, used, bits, out, mode, fill, missing, largest
    )
    return int(missing.sum()), largest.max()


@kernel()
def _dense_chunk(
    src: np.ndarray,
    low: np.uint64,
    table: np.ndarray,
    out: np.ndarray,
    mode: int,
    fill: np.uint64,
    missing_of_chunks: np.ndarray,
    largest_of_chunks: np.ndarray,
    c: int,
    chunks: int,
) -> None:
    start, stop = (c * src.size) // chunks, ((c + 1) * src.size) // chunks
    size = np.uint64(table.size)
    missing = 0
    largest = np.uint64(0)
    for i in range(start, stop):
        v = np.uint64(src[i])
        offset = v - low
        if offset < size:
            out[i] = table[offset]
        else:
            missing += 1
            if mode == KEEP:
                if v > largest:  # (the builtin max: one more function to compile)
                    largest = v
                out[i] = v
            else:
                out[i] = fill
    missing_of_chunks[c] = missing
    largest_of_chunks[c] = largest


def remap_dense(
    src: np.ndarray,
    low: np.uint64,
    table: np.ndarray,
    out: np.ndarray,
    mode: int,
    fill: np.uint64,
    chunks: int,
) -> tuple[int, np.uint64]:
    """``out[i] = table[src[i] - low]`` for a table with an entry for every value in range.

    Without holes in the table the in-range case needs no branch, so this is a plain
    gather running at close to memory speed; values outside the table follow ``mode``
    as in :func:`remap_through_table`.
    """
    missing = np.zeros(chunks, np.int64)
    largest = np.zeros(chunks, np.uint64)
    run_chunks(_dense_chunk, chunks, src, low, table, out, mode, fill, missing, largest)
    return int(missing.sum()), largest.max()


@kernel()
def _hash_slots_chunk(
    src: np.ndarray,
    bits: int,
    out: np.ndarray,
    keys_of_chunks: np.ndarray,
    used_of_chunks: np.ndarray,
    overflow: np.ndarray,
    c: int,
    chunks: int,
) -> None:
    """Write each voxel's slot in the chunk's hash table, inserting new values; flag
    ``overflow[c]`` when the table got more than half full."""
    start, stop = (c * src.size) // chunks, ((c + 1) * src.size) // chunks
    if start >= stop:
        return
    keys = keys_of_chunks[c]
    used = used_of_chunks[c]
    limit = keys.size // 2
    filled = 0
    previous = np.uint64(src[start]) + np.uint64(1)  # differs from src[start]: forces a lookup
    slot = np.int64(0)
    for i in range(start, stop):
        v = np.uint64(src[i])
        if v != previous:
            previous = v
            slot = find_slot(keys, used, bits, v)
            if not used[slot]:
                if filled >= limit:
                    overflow[c] = True
                    return
                used[slot] = True
                keys[slot] = v
                filled += 1
        out[i] = slot


def hash_slots(
    src: np.ndarray, bits: int, out: np.ndarray, chunks: int
) -> tuple[np.ndarray, np.ndarray, np.bool_]:
    """First pass of a one-read renumbering: ``out[i]`` = slot of ``src[i]`` in its chunk's
    hash table of ``2**bits`` slots. Returns the tables' keys and used flags (one row per
    chunk) and whether any table overflowed (the caller retries with more bits)."""
    capacity = 1 << bits
    keys = np.zeros((chunks, capacity), np.uint64)
    used = np.zeros((chunks, capacity), np.bool_)
    overflow = np.zeros(chunks, np.bool_)
    run_chunks(_hash_slots_chunk, chunks, src, bits, out, keys, used, overflow)
    return keys, used, overflow.any()


@kernel()
def _translate_chunk(
    slots: np.ndarray, tables: np.ndarray, out: np.ndarray, c: int, chunks: int
) -> None:
    start, stop = (c * slots.size) // chunks, ((c + 1) * slots.size) // chunks
    table = tables[c]
    for i in range(start, stop):
        out[i] = table[slots[i]]


def translate_slots(slots: np.ndarray, tables: np.ndarray, out: np.ndarray, chunks: int) -> None:
    """Second pass: ``out[i] = tables[chunk of i, slots[i]]`` (``out`` may be ``slots``)."""
    run_chunks(_translate_chunk, chunks, slots, tables, out)


@kernel()
def _present_chunk(src: np.ndarray, bits: np.ndarray, c: int, chunks: int) -> None:
    start, stop = (c * src.size) // chunks, ((c + 1) * src.size) // chunks
    seen = bits[c]
    i = start
    while i < stop:
        j = run_end(src, i, stop)
        v = np.uint64(src[i])
        seen[v >> np.uint64(6)] |= np.uint64(1) << (v & np.uint64(63))
        i = j


def count_present(src: np.ndarray, size: int, chunks: int) -> int:
    """Number of distinct values in a flat array whose values are all below ``size``.

    One bit per possible value and chunk (``size / 8`` bytes each), set once per run:
    the caller keeps ``size`` small, so this costs a read of the array and little memory.
    """
    bits = np.zeros((chunks, (size + 63) // 64), np.uint64)
    run_chunks(_present_chunk, chunks, src, bits)
    seen = np.bitwise_or.reduce(bits, axis=0) if chunks > 1 else bits[0]
    # Set bits per byte through a 256-entry table: no array of one entry per bit.
    return int(_BITS_IN_BYTE[seen.view(np.uint8)].sum(dtype=np.int64))


_BITS_IN_BYTE = np.array([bin(b).count("1") for b in range(256)], np.uint8)

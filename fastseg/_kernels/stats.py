"""Per-id statistics in one pass over a 3-D view of a label map.

The view ``(S0, S1, S2)`` is C-contiguous with ids below ``n_ids`` (0 is background);
an intensity image, when given, has the same layout. Rows along the last axis are
walked run by run, so counts, boxes and coordinate sums cost one update per run.

Determinism: rows are split into a number of blocks that depends only on the input
(never on the thread count); each block accumulates into its own table and the tables
are added up in block order, so float sums come out bit-identical with any threads.
"""

from __future__ import annotations

import numpy as np

from fastseg._jit import kernel, run_chunks
from fastseg._kernels._chunks import run_end

_BIG = np.iinfo(np.int64).max

# Integer columns per id.
COUNT = 0
SUM0, SUM1, SUM2 = 1, 2, 3
MIN0, MIN1, MIN2 = 4, 5, 6
STOP0, STOP1, STOP2 = 7, 8, 9
FACES0, FACES1, FACES2 = 10, 11, 12
N_INT = 13
# Float columns per id (with an image); SQUARES is filled by centered_squares.
TOTAL, SQUARES, LOWEST, HIGHEST = 0, 1, 2, 3
N_FLOAT = 4


@kernel(helper=True)
def _exposed_faces(
    row: np.ndarray, other: np.ndarray, table: np.ndarray, column: int, n2: int
) -> None:
    """Count faces between ``row`` and a neighbouring row where the ids differ."""
    for x in range(n2):
        a = row[x]
        b = other[x]
        if a != b:
            if a:
                table[np.int64(a), column] += 1
            if b:
                table[np.int64(b), column] += 1


@kernel(helper=True)
def _add_run(t: np.ndarray, p: int, y: int, x: int, stop: int, surface: bool) -> None:
    """Add the run ``x .. stop-1`` of row ``(p, y)`` to its id's integer columns ``t``."""
    length = stop - x
    t[COUNT] += length
    t[SUM0] += length * p
    t[SUM1] += length * y
    # Sum of x .. stop-1.
    t[SUM2] += (x + stop - 1) * length // 2
    # Comparisons written out: the builtin min and max are functions numba compiles on
    # their own, once per pair of argument types, on a first run.
    if p < t[MIN0]:
        t[MIN0] = p
    if y < t[MIN1]:
        t[MIN1] = y
    if x < t[MIN2]:
        t[MIN2] = x
    if p + 1 > t[STOP0]:
        t[STOP0] = p + 1
    if y + 1 > t[STOP1]:
        t[STOP1] = y + 1
    if stop > t[STOP2]:
        t[STOP2] = stop
    if surface:
        # Runs end where the value changes, so both ends are exposed.
        t[FACES2] += 2


@kernel()
def _measure_chunk(
    flat: np.ndarray,
    outside: np.ndarray,
    runs: bool,
    surface: bool,
    n1: int,
    ints: np.ndarray,
    b: int,
    blocks: int,
) -> None:
    """Block ``b``'s integer columns: with ``runs`` those of every run (counts, sums,
    boxes and with ``surface`` the faces across the last axis), with ``surface`` the
    faces across the other two axes. ``outside`` is a row of background: the faces on
    the volume's surface are those against it."""
    table = ints[b]
    first, last = (b * flat.shape[0]) // blocks, ((b + 1) * flat.shape[0]) // blocks
    n2 = flat.shape[1]
    rows = flat.shape[0]
    for r in range(first, last):
        p = r // n1
        y = r % n1
        row = flat[r]
        x = 0
        while runs and x < n2:
            v = row[x]
            stop = run_end(row, x, n2)
            if v:
                _add_run(table[np.int64(v)], p, y, x, stop, surface)
            x = stop
        if surface:
            # Faces across axis 1 (rows of the same plane) and axis 0 (planes): each
            # pair of rows is looked at once, from the later row.
            if y == 0:
                _exposed_faces(row, outside, table, FACES1, n2)
            else:
                _exposed_faces(row, flat[r - 1], table, FACES1, n2)
            if y == n1 - 1:
                _exposed_faces(row, outside, table, FACES1, n2)
            if p == 0:
                _exposed_faces(row, outside, table, FACES0, n2)
            else:
                _exposed_faces(row, flat[r - n1], table, FACES0, n2)
            if r + n1 >= rows:
                _exposed_faces(row, outside, table, FACES0, n2)


@kernel()
def _image_chunk(
    flat: np.ndarray,
    image: np.ndarray,
    means: np.ndarray,
    surface: bool,
    squares: bool,
    n1: int,
    ints: np.ndarray,
    floats: np.ndarray,
    b: int,
    blocks: int,
) -> None:
    """Block ``b``'s integer columns of every run (as :func:`_measure_chunk` with
    ``runs``) and its TOTAL, LOWEST and HIGHEST intensity columns (which start at 0,
    inf and -inf); with ``squares``, a second pass given each id's mean, only the
    squared deviations, into SQUARES."""
    table = ints[b]
    block_floats = floats[b]
    first, last = (b * flat.shape[0]) // blocks, ((b + 1) * flat.shape[0]) // blocks
    n2 = flat.shape[1]
    for r in range(first, last):
        p = r // n1
        y = r % n1
        row = flat[r]
        values = image[r]
        x = 0
        while x < n2:
            v = row[x]
            stop = run_end(row, x, n2)
            if v:
                k = np.int64(v)
                f = block_floats[k]
                if squares:
                    mean = means[k]
                    total = 0.0
                    for i in range(x, stop):
                        d = np.float64(values[i]) - mean
                        total += d * d
                    f[SQUARES] += total
                else:
                    _add_run(table[k], p, y, x, stop, surface)
                    total = 0.0
                    low = f[LOWEST]
                    high = f[HIGHEST]
                    for i in range(x, stop):
                        value = np.float64(values[i])
                        total += value
                        # Written so that a NaN intensity propagates, as it does to the mean.
                        if value < low or value != value:
                            low = value
                        if value > high or value != value:
                            high = value
                    f[TOTAL] += total
                    f[LOWEST] = low
                    f[HIGHEST] = high
            x = stop


_NO_MEANS = np.zeros(1, np.float64)  # the first intensity pass reads no means


def _merge_blocks(ints: np.ndarray, floats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Add the blocks' tables up in block order (numpy: nothing here to compile)."""
    total_ints = ints[0].copy()
    total_floats = floats[0].copy()
    if ints.shape[0] == 1:
        return total_ints, total_floats
    sums = [COUNT, SUM0, SUM1, SUM2, FACES0, FACES1, FACES2]
    total_ints[:, sums] = ints[:, :, sums].sum(axis=0)
    total_ints[:, [MIN0, MIN1, MIN2]] = ints[:, :, [MIN0, MIN1, MIN2]].min(axis=0)
    total_ints[:, [STOP0, STOP1, STOP2]] = ints[:, :, [STOP0, STOP1, STOP2]].max(axis=0)
    for b in range(1, floats.shape[0]):  # block order: float sums come out the same
        total_floats[:, TOTAL] += floats[b, :, TOTAL]
    # np.minimum / np.maximum propagate NaN, as a NaN intensity must.
    total_floats[:, LOWEST] = np.minimum.reduce(floats[:, :, LOWEST], axis=0)
    total_floats[:, HIGHEST] = np.maximum.reduce(floats[:, :, HIGHEST], axis=0)
    return total_ints, total_floats


def _tables(blocks: int, n_ids: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-block integer and float columns, ready to be added to."""
    ints = np.zeros((blocks, n_ids, N_INT), np.int64)
    ints[:, :, [MIN0, MIN1, MIN2]] = _BIG
    ints[:, :, [STOP0, STOP1, STOP2]] = -1
    floats = np.zeros((blocks, n_ids, N_FLOAT), np.float64)
    floats[:, :, LOWEST] = np.inf
    floats[:, :, HIGHEST] = -np.inf
    return ints, floats


def measure(
    view: np.ndarray,
    image: np.ndarray,
    with_image: bool,
    surface: bool,
    n_ids: int,
    blocks: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Integer columns ``(n_ids, N_INT)`` and float columns ``(n_ids, N_FLOAT)`` per id.

    Integer sums are exact; float sums (intensities) are added block by block in block
    order. ``image`` is ignored unless ``with_image``.
    """
    n0, n1, n2 = view.shape
    rows = n0 * n1
    flat = view.reshape(rows, n2)
    ints, floats = _tables(blocks, n_ids)
    outside = np.zeros(n2, flat.dtype)
    if with_image:
        # The runs are measured with the intensities, in one pass, by a kernel without
        # the face counting: the kernels compiled per label and image dtype stay small,
        # the large one depends on the label dtype only.
        run_chunks(
            _image_chunk, blocks, flat, image.reshape(rows, n2), _NO_MEANS, surface, False,
            n1, ints, floats,
        )  # fmt: skip
        if surface:
            run_chunks(_measure_chunk, blocks, flat, outside, False, True, n1, ints)
    else:
        run_chunks(_measure_chunk, blocks, flat, outside, True, surface, n1, ints)
    return _merge_blocks(ints, floats)


def centered_squares(
    view: np.ndarray, image: np.ndarray, means: np.ndarray, blocks: int
) -> np.ndarray:
    """Sum of squared deviations from each id's mean: the second pass of a two-pass
    variance, which keeps full precision where sums of squares would cancel."""
    n0, n1, n2 = view.shape
    rows = n0 * n1
    no_ints = np.zeros((blocks, 1, N_INT), np.int64)  # the second pass counts nothing
    partial = np.zeros((blocks, means.size, N_FLOAT), np.float64)
    run_chunks(
        _image_chunk, blocks, view.reshape(rows, n2), image.reshape(rows, n2),
        np.ascontiguousarray(means, np.float64), False, True, n1, no_ints, partial,
    )  # fmt: skip
    total = partial[0, :, SQUARES].copy()
    # Block order, whatever the thread count.
    for b in range(1, blocks):
        total += partial[b, :, SQUARES]
    return total


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

"""Connected-component labeling of multilabel volumes by runs and union-find.

The volume arrives as a C-contiguous 3-D view ``(S0, S1, S2)`` of unsigned labels whose
last axis is the one contiguous in memory (2-D and 1-D inputs get leading axes of size
1; Fortran-ordered inputs arrive transposed). Every row along the last axis is cut into
runs of equal values (background runs included, so a run ends where the next begins);
runs, not voxels, are the union-find elements. Label maps have long runs (28 voxels on
average in the connectomics volume), so union-find works on a few million elements
instead of a hundred million voxels.

Passes: count runs per row, noting the rows that repeat the row before them (parallel)
-> record run starts, copied for repeated rows without reading them again (parallel) ->
link runs with the touching runs of earlier rows, in parallel slabs of rows and then
serially across the seams between slabs (a row with the same runs as an earlier
neighbour is joined to it run by run) -> number the components -> paint them (parallel;
the wrapper paints in pieces of rows and hands back the run tables behind them).

Union-find invariant: ``parent[x] <= x`` (the smaller root always wins), so every root
is the first run of its component in memory order and one ascending sweep numbers the
components whatever order the unions ran in: results do not depend on the thread count.
Background runs have ``parent == -1`` and are never linked.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastseg._jit import kernel, run_chunks, run_tasks
from fastseg._kernels._chunks import chunk_bounds

_NO_KEY = np.iinfo(np.int64).max

# Indices computed from data (run indices, run starts) are unsigned in the hot loops:
# numba wraps negative signed indices around, an extra sign test and add on every load
# and store, which lengthened the load -> compare -> advance chain of the row walks by
# a fifth and made painting twice as slow.
_ONE = np.uint64(1)


# Pieces per thread of the passes over the volume: each thread takes the next piece when
# it is free, so the threads finish together even when other processes take turns on the
# cores. Each piece writes only its own rows.
_PIECES_PER_THREAD = 4


def _run_pieces(chunk_kernel: Any, chunks: int, *args: Any) -> None:
    """Run ``chunk_kernel(*args, c, pieces)`` over ``chunks`` threads' worth of rows, cut
    into more pieces than threads."""
    pieces = 1 if chunks == 1 else chunks * _PIECES_PER_THREAD
    run_tasks(lambda c: chunk_kernel(*args, c, pieces), pieces)


@kernel()
def _count_runs_chunk(
    flat: np.ndarray, per_row: np.ndarray, repeats: np.ndarray, c: int, chunks: int
) -> None:
    rows = flat.shape[0]
    n2 = flat.shape[1]
    first, last = chunk_bounds(rows, chunks, c)
    previous_changes = -1
    for r in range(first, last):
        row = flat[r]
        changes = 0
        for x in range(1, n2):
            changes += row[x] != row[x - 1]
        per_row[r + 1] = changes + 2
        # A row can only repeat the row before it if it has as many runs (unknown for
        # the first row of a chunk); the row before was just read, so the comparison
        # costs no second read of memory.
        same = r >= 1 and (changes == previous_changes or r == first)
        if same:
            before = flat[r - 1]
            differ = False
            for x in range(n2):
                differ |= row[x] != before[x]
            same = not differ
        repeats[r] = same
        previous_changes = changes


def count_runs(volume: np.ndarray, chunks: int) -> tuple[np.ndarray, np.ndarray]:
    """Index of each row's first run in the run arrays (length rows + 1), and whether
    each row holds the same values as the row before it in memory (bool per row).

    Each row holds its runs followed by one sentinel entry (start ``n2``), so that the
    stop of run ``k`` is always ``run_start[k + 1]``.
    """
    n0, n1, n2 = volume.shape
    rows = n0 * n1
    per_row = np.zeros(rows + 1, np.int64)
    repeats = np.empty(rows, np.bool_)
    _run_pieces(_count_runs_chunk, chunks, volume.reshape(rows, n2), per_row, repeats)
    return np.cumsum(per_row), repeats


@kernel()
def _find_runs_chunk(
    flat: np.ndarray,
    row_offsets: np.ndarray,
    repeats: np.ndarray,
    run_start: np.ndarray,
    run_value: np.ndarray,
    c: int,
    chunks: int,
) -> None:
    rows, n2 = flat.shape
    first, last = chunk_bounds(rows, chunks, c)
    # Branch-free compaction into a row buffer: every column is written and the cursor
    # advances only where the value changes.
    starts = np.empty(n2 + 1, run_start.dtype)
    for r in range(first, last):
        offset = np.uint64(row_offsets[r])
        if repeats[r] and r > first:
            # The runs of the row before, recorded by this chunk: copied without
            # reading the row itself.
            before = np.uint64(row_offsets[r - 1])
            for i in range(offset - before):
                run_start[offset + i] = run_start[before + i]
                run_value[offset + i] = run_value[before + i]
            continue
        row = flat[r]
        starts[0] = 0
        k = _ONE
        for x in range(1, n2):
            starts[k] = x
            k += np.uint64(row[x] != row[x - 1])
        starts[k] = n2
        for i in range(k + _ONE):
            run_start[offset + i] = starts[i]
        for i in range(k):
            run_value[offset + i] = row[np.uint64(starts[i])]
        run_value[offset + k] = 0


def find_runs(
    volume: np.ndarray,
    row_offsets: np.ndarray,
    repeats: np.ndarray,
    run_start: np.ndarray,
    run_value: np.ndarray,
    chunks: int,
) -> None:
    """Record the first column and the value of every run, and each row's sentinel;
    a row that repeats the row before it (``repeats``) copies its runs."""
    n0, n1, n2 = volume.shape
    flat = volume.reshape(n0 * n1, n2)
    _run_pieces(_find_runs_chunk, chunks, flat, row_offsets, repeats, run_start, run_value)


@kernel()
def _find(parent: np.ndarray, x: np.uint64) -> np.uint64:
    # Path halving keeps trees flat without a second pass.
    x = np.uint64(x)
    while np.uint64(parent[x]) != x:
        parent[x] = parent[np.uint64(parent[x])]
        x = np.uint64(parent[x])
    return x


@kernel()
def _union(parent: np.ndarray, i: np.uint64, j: np.uint64) -> None:
    """Join the trees of ``i`` and ``j``; the smaller root wins (``parent[x] <= x``).

    ``i`` and ``j`` are pointed straight at the root as well: the walks compare parent
    entries to tell whether two runs are already together, and stale pointers would
    send them here again.
    """
    root_i = _find(parent, i)
    root_j = _find(parent, j)
    root = min(root_i, root_j)
    parent[max(root_i, root_j)] = root
    parent[i] = root
    parent[j] = root


@kernel()
def _link_pair(
    n2: int,
    background: np.uint64,
    run_start: np.ndarray,
    run_value: np.ndarray,
    parent: np.ndarray,
    i: np.uint64,
    j: np.uint64,
    diagonal: bool,
) -> None:
    """Union the runs of the row starting at run ``i`` with the touching runs of an
    earlier row starting at run ``j`` that hold the same value.

    Both rows are tiled by their runs, so walking them like a merge (advance whichever
    run ends first) visits exactly the pairs of overlapping runs. With ``diagonal``,
    runs that only touch at a corner meet where both rows have a boundary at the same
    column: the run ending there in one row touches the run starting there in the other.

    Every step is free of unpredictable branches; only a union that really joins two
    trees leaves the straight path. A run of the row being linked that is still a root
    (``parent[i] == i``) joins by taking the other run's parent, a select rather than a
    branch: roots are the smallest index of their tree, so no run of an earlier row is
    in ``i``'s tree yet and hanging ``i`` below ``j``'s parent is a valid union. That
    first attachment happens for nearly every run and used to be the most mispredicted
    branch of the walk.
    """
    while True:
        stop_i = run_start[i + _ONE]
        stop_j = run_start[j + _ONE]
        v = run_value[i]
        foreground = np.uint64(v) != background
        same = (v == run_value[j]) & foreground
        parent_i = parent[i]
        parent_j = parent[j]
        alone = np.uint64(parent_i) == i
        parent_i = parent_j if same & alone else parent_i
        parent[i] = parent_i
        join = same & (parent_i != parent_j)
        if diagonal:
            # Corner contacts, where both rows have a boundary at the same column.
            corner = (stop_i == stop_j) & (stop_i < n2)
            u = run_value[i + _ONE]
            join_ahead = corner & (v == run_value[j + _ONE]) & foreground
            join_ahead &= parent_i != parent[j + _ONE]
            join_behind = corner & (u == run_value[j]) & (np.uint64(u) != background)
            join_behind &= parent[i + _ONE] != parent_j
            if join | join_ahead | join_behind:
                if join:
                    _union(parent, i, j)
                if join_ahead and parent[i] != parent[j + _ONE]:
                    _union(parent, i, j + _ONE)
                if join_behind and parent[i + _ONE] != parent[j]:
                    _union(parent, i + _ONE, j)
        elif join:
            _union(parent, i, j)
        if (stop_i >= n2) & (stop_j >= n2):
            return
        i += np.uint64(stop_i <= stop_j)
        j += np.uint64(stop_j <= stop_i)


@kernel()
def _same_runs(
    row_offsets: np.ndarray, run_start: np.ndarray, run_value: np.ndarray, a: int, b: int
) -> bool:
    """Whether rows ``a`` and ``b`` have the same runs: the same starts and values."""
    i = np.uint64(row_offsets[a])
    j = np.uint64(row_offsets[b])
    n = np.uint64(row_offsets[a + 1]) - i
    if np.uint64(row_offsets[b + 1]) - j != n:
        return False
    for k in range(n - _ONE):
        if (run_start[i + k] != run_start[j + k]) | (run_value[i + k] != run_value[j + k]):
            return False
    return True


@kernel()
def _link_same(
    background: np.uint64,
    run_value: np.ndarray,
    parent: np.ndarray,
    i: np.uint64,
    j: np.uint64,
    n: np.uint64,
) -> None:
    """Union the ``n`` runs from ``i`` one to one with those from ``j``, a touching row
    with the same runs (:func:`_same_runs`).

    Neighbouring runs of a row hold different values, so run ``i + k`` touches no run
    of the other row but ``j + k``, at any connectivity. A run still alone takes the
    other's parent, as in :func:`_link_pair`.
    """
    for k in range(n):
        if np.uint64(run_value[i + k]) != background:
            parent_i = parent[i + k]
            parent_j = parent[j + k]
            if np.uint64(parent_i) == i + k:
                parent[i + k] = parent_j
            elif parent_i != parent_j:
                _union(parent, i + k, j + k)


@kernel()
def _link_row(
    n1: int,
    n2: int,
    background: np.uint64,
    row_offsets: np.ndarray,
    repeats: np.ndarray,
    run_start: np.ndarray,
    run_value: np.ndarray,
    parent: np.ndarray,
    connectivity: int,
    row: int,
    lowest: int,
    before_same_c: bool,
) -> bool:
    """Union the runs of ``row`` with the touching runs of earlier rows ``>= lowest``;
    return whether the row has the same runs as C (below). ``before_same_c`` is what
    this returned for the row before, linked just before in the same pass, or False.

    Rows are ``plane * n1 + y``; the earlier neighbours of A = (plane, y) are
    B = (plane, y-1), C = (plane-1, y), D = (plane-1, y-1) and E = (plane-1, y+1).
    ``connectivity`` is 6, 18 or 26: face neighbour rows (B, C) reach diagonally for 18
    and 26, edge neighbour rows (D, E) only for 26.

    A row with the same runs as B or C (label maps of smooth or blocky objects repeat
    most rows) is joined to it run by run, and the walks that row's own links already
    answer are skipped. A row the same as B touches D and, at 26, C exactly as B does
    (B reaches D through a face, C through an edge); a row the same as C touches D and E
    as C does (C's face neighbours, linked with C itself or, for E, when E was linked)
    and, at 26, B as well; a row the same as both is joined to B only (B and C touch
    run by run through their edge at 18 and 26). Every skipped contact is thus a union of
    contacts linked at some point, in this slab or at the seams, so the components are
    the same. A row the same as B, where B was the same as its own C (that is D) and C
    repeats D, is the same as C without comparing them.
    """
    y = row % n1
    face = connectivity != 6
    edge = connectivity == 26
    i = np.uint64(row_offsets[row])
    n = np.uint64(row_offsets[row + 1]) - i - _ONE
    has_b = y >= 1 and row - 1 >= lowest
    has_c = row - n1 >= lowest
    # Rows that hold the same values have the same runs.
    same_b = has_b and repeats[row]
    same_c = has_c and (
        (same_b and before_same_c and repeats[row - n1])
        or _same_runs(row_offsets, run_start, run_value, row, row - n1)
    )
    # Arguments spelled out: passing them as a packed tuple made this loop 25% slower.
    if same_b:
        _link_same(background, run_value, parent, i, np.uint64(row_offsets[row - 1]), n)
    elif has_b and not (same_c and edge):
        _link_pair(
            n2, background, run_start, run_value, parent, i, np.uint64(row_offsets[row - 1]), face
        )
    if not has_c:
        return False
    if same_c:
        if not (same_b and face):
            _link_same(background, run_value, parent, i, np.uint64(row_offsets[row - n1]), n)
    elif not (same_b and edge):
        _link_pair(
            n2, background, run_start, run_value, parent, i, np.uint64(row_offsets[row - n1]), face
        )
    if connectivity != 6 and not same_c:
        if y >= 1 and row - n1 - 1 >= lowest and not same_b:
            _link_pair(
                n2, background, run_start, run_value, parent,
                i, np.uint64(row_offsets[row - n1 - 1]), edge,
            )  # fmt: skip
        if y + 1 < n1:
            _link_pair(
                n2, background, run_start, run_value, parent,
                i, np.uint64(row_offsets[row - n1 + 1]), edge,
            )  # fmt: skip
    return same_c


def link_runs(
    n1: int,
    n2: int,
    background: np.uint64,
    row_offsets: np.ndarray,
    repeats: np.ndarray,
    run_start: np.ndarray,
    run_value: np.ndarray,
    parent: np.ndarray,
    connectivity: int,
    slabs: int,
) -> None:
    """Union every foreground run with the touching runs of earlier rows (``repeats``
    from :func:`count_runs` tells which rows have the same runs as the row before them).

        Slabs of consecutive rows are linked in parallel; their runs occupy disjoint index
        ranges, so no two threads touch the same trees. The seams, where a row's neighbours
        lie in the previous slab, are linked serially afterwards.
    """
    args = (n1, n2, background, row_offsets, repeats, run_start, run_value, parent, connectivity)
    run_chunks(_link_slab, slabs, *args)
    _link_seams(*args, slabs)  # nothing to do for one slab; called anyway, so compiled


@kernel()
def _link_seams(
    n1: int,
    n2: int,
    background: np.uint64,
    row_offsets: np.ndarray,
    repeats: np.ndarray,
    run_start: np.ndarray,
    run_value: np.ndarray,
    parent: np.ndarray,
    connectivity: int,
    slabs: int,
) -> None:
    for s in range(1, slabs):
        first, last = _slab_rows(row_offsets, slabs, s)
        # Neighbours reach back at most n1 + 1 rows.
        same_c = False
        for r in range(first, min(last, first + n1 + 1)):
            same_c = _link_row(
                n1, n2, background, row_offsets, repeats, run_start, run_value, parent,
                connectivity, r, 0, same_c,
            )  # fmt: skip


@kernel()
def _slab_rows(row_offsets: np.ndarray, slabs: int, s: int) -> tuple[int, int]:
    """Rows of slab ``s``: slabs hold equal numbers of runs rather than of rows, because
    linking costs per run and label maps are often busier in one part than another."""
    return _rows_by_runs(row_offsets, 0, row_offsets.size - 1, slabs, s)


@kernel()
def _rows_by_runs(row_offsets: np.ndarray, lo: int, hi: int, parts: int, s: int) -> tuple[int, int]:
    """Rows of part ``s`` of ``parts`` of rows ``lo .. hi - 1``, cut into equal numbers of
    runs."""
    base = row_offsets[lo]
    total = row_offsets[hi] - base
    first = lo if s == 0 else _first_at_least(row_offsets, base + (s * total) // parts)
    last = hi if s == parts - 1 else _first_at_least(row_offsets, base + ((s + 1) * total) // parts)
    return min(max(first, lo), hi), min(max(last, lo), hi)


@kernel()
def _first_at_least(sorted_values: np.ndarray, value: int) -> int:
    """``np.searchsorted(sorted_values, value)`` (left), by hand: numba's own takes
    longer to compile than everything else the slab split needs."""
    low = 0
    high = sorted_values.size
    while low < high:
        middle = (low + high) // 2
        if sorted_values[middle] < value:
            low = middle + 1
        else:
            high = middle
    return low


@kernel()
def _link_slab(
    n1: int,
    n2: int,
    background: np.uint64,
    row_offsets: np.ndarray,
    repeats: np.ndarray,
    run_start: np.ndarray,
    run_value: np.ndarray,
    parent: np.ndarray,
    connectivity: int,
    s: int,
    slabs: int,
) -> None:
    first, last = _slab_rows(row_offsets, slabs, s)
    same_c = False
    for r in range(first, last):
        # Each row is set up just before it is linked, while its entries are in cache;
        # linking it touches only it and earlier rows.
        end = row_offsets[r + 1] - 1
        for k in range(row_offsets[r], end):
            parent[k] = -1 if np.uint64(run_value[k]) == background else k
        parent[end] = -1
        same_c = _link_row(
            n1, n2, background, row_offsets, repeats, run_start, run_value, parent,
            connectivity, r, first, same_c,
        )  # fmt: skip


@kernel()
def number_components(parent: np.ndarray, run_value: np.ndarray) -> np.ndarray:
    """Replace each run's parent by its component number (1, 2, ... by first run; 0 for
    background) and return the input value of each component (index 0 left at 0).

    Relies on ``parent[x] <= x``: a root is met before the rest of its tree, and the
    parent of a non-root has already been replaced by its number when ``x`` is reached.
    """
    # Sized for the worst case but only written where components start, so the pages
    # beyond the count are never touched.
    values = np.empty(parent.size + 1, run_value.dtype)
    values[0] = 0
    count = 0
    for x in range(parent.size):
        p = parent[x]
        if p < 0:
            parent[x] = 0
        elif p == x:
            count += 1
            parent[x] = count
            values[count] = run_value[x]
        else:
            parent[x] = parent[p]
    return values[: count + 1].copy()


def renumber_row_major(
    shape: tuple[int, int, int],
    row_offsets: np.ndarray,
    run_start: np.ndarray,
    labels: np.ndarray,
    repeats: np.ndarray,
    count: int,
    chunks: int,
) -> np.ndarray:
    """New numbers of the components: by their first voxel in the caller's row-major order.

    For a Fortran-ordered input the view is the transpose, so memory order is column-
    major for the caller. The first voxel of a run at view position (p, y, x) has caller
    index (x, y, p), whose row-major rank is ``(x * n1 + y) * n0 + p``. Each chunk of
    rows keeps its own minimum per component; the minima are merged afterwards. A row
    that repeats the row before it in its plane (``repeats``) has the same components
    at larger ranks, and is skipped.
    """
    n0, n1, _ = shape
    first = np.full((chunks, count + 1), _NO_KEY, np.int64)
    run_chunks(_first_keys, chunks, n0, n1, row_offsets, run_start, labels, repeats, first)
    keys = first.min(axis=0)
    new = np.empty(count + 1, np.int64)
    new[0] = 0
    new[np.argsort(keys[1:]) + 1] = np.arange(1, count + 1)
    return new


@kernel()
def _first_keys(
    n0: int,
    n1: int,
    row_offsets: np.ndarray,
    run_start: np.ndarray,
    labels: np.ndarray,
    repeats: np.ndarray,
    first_of_chunks: np.ndarray,
    c: int,
    chunks: int,
) -> None:
    """Lower ``first[label]`` to the caller's row-major index of each run of the rows of
    chunk ``c`` (see :func:`renumber_row_major`)."""
    first = first_of_chunks[c]
    row_first, row_last = _slab_rows(row_offsets, chunks, c)
    for r in range(row_first, row_last):
        p = r // n1
        y = r % n1
        if repeats[r] and y != 0:
            continue
        for k in range(np.uint64(row_offsets[r]), np.uint64(row_offsets[r + 1])):
            lab = np.uint64(labels[k])
            key = (np.int64(run_start[k]) * n1 + y) * n0 + p
            # Background (label 0) writes into the unused slot 0.
            first[lab] = min(first[lab], key)


# Bytes written per block in :func:`paint`: one cache line.
_PAINT_BYTES = 64


def paint(
    out: np.ndarray,
    row_offsets: np.ndarray,
    run_start: np.ndarray,
    labels: np.ndarray,
    numbers: np.ndarray,
    chunks: int,
    rows: tuple[int, int] | None = None,
    repeats: np.ndarray | None = None,
) -> None:
    """Write ``numbers[label]`` of each run into ``out`` (3-D view; background runs get
    ``numbers[0]``, which is 0): every row, or rows ``rows[0] .. rows[1] - 1``.

    A row that repeats the row before it in its plane (``repeats``, from
    :func:`count_runs`) has the same runs in the same components: when this thread
    painted that row, the row is copied from it.
    """
    n0, n1, n2 = out.shape
    lo, hi = (0, n0 * n1) if rows is None else rows
    flat = out.reshape(n0 * n1 * n2)
    copy = repeats is not None
    repeated = repeats if repeats is not None else np.zeros(0, np.bool_)
    run_chunks(
        _paint_chunk, chunks, flat, n1, n2, row_offsets, run_start, labels, numbers,
        repeated, copy, lo, hi,
    )  # fmt: skip


@kernel()
def _paint_chunk(
    flat: np.ndarray,
    n1: int,
    n2: int,
    row_offsets: np.ndarray,
    run_start: np.ndarray,
    labels: np.ndarray,
    numbers: np.ndarray,
    repeats: np.ndarray,
    copy: bool,
    lo: int,
    hi: int,
    c: int,
    chunks: int,
) -> None:
    first, last = _rows_by_runs(row_offsets, lo, hi, chunks, c)
    width = np.uint64(n2)
    for r in range(first, last):
        base = np.uint64(r) * width
        if copy and repeats[r] and r > first and r % n1 != 0:
            for x in range(width):
                flat[base + x] = flat[base - width + x]
            continue
        _paint_row(
            flat, base, width, row_offsets[r], row_offsets[r + 1] - 1,
            run_start, labels, numbers,
        )  # fmt: skip


@kernel()
def _paint_row(
    flat: np.ndarray,
    base: np.uint64,
    n2: np.uint64,
    first_run: int,
    end_run: int,
    run_start: np.ndarray,
    labels: np.ndarray,
    numbers: np.ndarray,
) -> None:
    """Paint runs ``first_run .. end_run - 1``, the runs of the row starting at ``base``.

    Runs are written in whole blocks of ``_PAINT_BYTES`` that may overshoot into the
    next run, which is written afterwards and covers the overshoot with its own first
    block: fixed-size stores instead of a loop whose length changes every run (label
    maps have runs of a few dozen voxels, where that loop's overhead dominates).
    Blocks never cross the end of the row, which another thread may be writing.
    Positions are unsigned so that the stores carry no negative-index wraparound.
    """
    block = np.uint64(_PAINT_BYTES // flat.itemsize)
    row_end = base + n2
    for k in range(first_run, end_run):
        v = flat.dtype.type(numbers[labels[k]])
        x = base + np.uint64(run_start[k])
        stop = base + np.uint64(run_start[k + 1])
        while x < stop and x + block <= row_end:
            for t in range(block):
                flat[x + t] = v
            x += block
        while x < stop:
            flat[x] = v
            x += _ONE

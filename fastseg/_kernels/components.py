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
Background runs have the largest value of ``parent``'s unsigned dtype, above every run
index, and are never linked. Parents are unsigned like the run indices they are
compared with: numba compares a signed with an unsigned integer as floats, and the
casts that avoid it cost compile time in every labeling.
"""

from __future__ import annotations

import numpy as np

from fastseg._jit import kernel, run_chunks

_NO_KEY = np.iinfo(np.int64).max

# Indices computed from data (run indices, run starts) are unsigned in the hot loops:
# numba wraps negative signed indices around, an extra sign test and add on every load
# and store, which lengthened the load -> compare -> advance chain of the row walks by
# a fifth and made painting twice as slow.
_ONE = np.uint64(1)


def run_value_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype of the run values of a volume of unsigned ``dtype``: uint32 up to 32
    bits, so that the kernels after the first pass are compiled once for uint8, uint16
    and uint32 labels (the values only need to compare equal), uint64 beyond."""
    return np.dtype(np.uint32 if dtype.itemsize <= 4 else np.uint64)


def slab_bounds(row_offsets: np.ndarray, slabs: int) -> np.ndarray:
    """First row of each slab and the row count (length ``slabs + 1``): slabs hold equal
    numbers of runs rather than of rows, because linking costs per run and label maps
    are often busier in one part than another."""
    rows = row_offsets.size - 1
    total = row_offsets[rows]
    targets = (np.arange(slabs + 1, dtype=np.int64) * total) // slabs
    bounds = np.searchsorted(row_offsets, targets, side="left").astype(np.int64)
    bounds[0] = 0
    bounds[slabs] = rows
    return np.minimum(bounds, rows)


def run_start_dtype(n2: int) -> np.dtype:
    """The dtype of the run starts of rows of ``n2`` voxels."""
    return np.dtype(np.int32 if n2 < 2**31 else np.int64)


def parent_dtype(n_runs: int) -> np.dtype:
    """The dtype of the union-find parents of ``n_runs`` runs: unsigned, and wide enough
    that its largest value, which marks background runs, is no run index."""
    return np.dtype(np.uint32 if n_runs < 2**32 - 1 else np.uint64)


@kernel()
def _runs_chunk(
    flat: np.ndarray,
    row_offsets: np.ndarray,
    repeats: np.ndarray,
    run_start: np.ndarray,
    run_value: np.ndarray,
    buffers: np.ndarray,
    counting: bool,
    c: int,
    chunks: int,
) -> None:
    """The rows of chunk ``c``: with ``counting``, the number of runs of each row plus
    its sentinel into ``row_offsets[r + 1]`` and whether the row holds the same values
    as the row before it into ``repeats[r]`` (the other arrays unused); without, the
    first column and value of each run and each row's sentinel, copied from the row
    before for a repeated row (one pass, one kernel to compile for both)."""
    rows, n2 = flat.shape
    first, last = (c * rows) // chunks, ((c + 1) * rows) // chunks
    if counting:
        previous_changes = -1
        for r in range(first, last):
            row = flat[r]
            changes = 0
            for x in range(1, n2):
                changes += row[x] != row[x - 1]
            row_offsets[r + 1] = changes + 2
            # A row can only repeat the row before it if it has as many runs (unknown
            # for the first row of a chunk); the row before was just read, so the
            # comparison costs no second read of memory.
            same = r >= 1 and (changes == previous_changes or r == first)
            if same:
                before = flat[r - 1]
                differ = False
                for x in range(n2):
                    differ |= row[x] != before[x]
                same = not differ
            repeats[r] = same
            previous_changes = changes
        return
    # Branch-free compaction into a row buffer: every column is written and the cursor
    # advances only where the value changes.
    starts = buffers[c]
    for r in range(first, last):
        if repeats[r] and r > first:
            # The runs of the row before, recorded by this chunk: copied without
            # reading the row itself.
            offset = np.uint64(row_offsets[r])
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
        offset = np.uint64(row_offsets[r])
        for i in range(k + _ONE):
            run_start[offset + i] = starts[i]
        for i in range(k):
            run_value[offset + i] = row[np.uint64(starts[i])]
        run_value[offset + k] = 0


def count_runs(volume: np.ndarray, chunks: int) -> tuple[np.ndarray, np.ndarray]:
    """Index of each row's first run in the run arrays (length rows + 1), and whether
    each row holds the same values as the row before it in memory (bool per row).

    Each row holds its runs followed by one sentinel entry (start ``n2``), so that the
    stop of run ``k`` is always ``run_start[k + 1]``.
    """
    n0, n1, n2 = volume.shape
    rows = n0 * n1
    per_row = np.zeros(rows + 1, np.int64)
    # Unused while counting; typed as find_runs passes them, so that both passes share
    # one specialisation.
    starts = np.empty(0, run_start_dtype(n2))
    values = np.empty(0, run_value_dtype(volume.dtype))
    buffers = np.empty((chunks, 0), starts.dtype)
    repeats = np.empty(rows, np.bool_)
    flat = volume.reshape(rows, n2)
    run_chunks(_runs_chunk, chunks, flat, per_row, repeats, starts, values, buffers, True)
    return np.cumsum(per_row), repeats


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
    # One row buffer per chunk, allocated here: numpy calls in a kernel cost compile time.
    buffers = np.empty((chunks, n2 + 1), run_start.dtype)
    run_chunks(
        _runs_chunk, chunks, flat, row_offsets, repeats, run_start, run_value, buffers, False
    )


@kernel(helper=True)
def _find(parent: np.ndarray, x: np.uint64) -> np.uint64:
    # Path halving keeps trees flat without a second pass. (Written out again in
    # :func:`_union`, its hot caller: one kernel less to compile for every labeling.)
    x = np.uint64(x)
    while np.uint64(parent[x]) != x:
        parent[x] = parent[np.uint64(parent[x])]
        x = np.uint64(parent[x])
    return x


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
    lie in the previous slab, are linked serially afterwards by the same kernel.
    """
    bounds = slab_bounds(row_offsets, slabs)
    args = (
        n1, n2, background, row_offsets, repeats, run_start, run_value, parent, connectivity,
        bounds,
    )  # fmt: skip
    run_chunks(_link_slab, slabs, *args)
    _link_slab(*args, slabs, slabs)  # the seams: nothing to do for one slab


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
    bounds: np.ndarray,
    s: int,
    slabs: int,
) -> None:
    """Slab ``s < slabs``: start every run of its rows as its own tree (background runs
    and sentinels at the dtype's largest value) and union its runs with the touching
    runs of earlier rows of the slab. ``s == slabs``: the seams, the first rows of every
    slab after the first with their neighbours in the slab before (neighbours reach back
    at most n1 + 1 rows).

    Rows are ``plane * n1 + y``; the earlier neighbours of (plane, y) are (plane, y-1)
    and (plane-1, y-1 .. y+1). ``connectivity`` is 6, 18 or 26: face neighbour rows
    reach diagonally for 18 and 26, edge neighbour rows only for 26.

    The runs of a row (from run ``i``) are joined with the touching runs of an earlier
    row (from run ``j``) that hold the same value. Both rows are tiled by their runs, so
    walking them like a merge (advance whichever run ends first) visits exactly the
    pairs of overlapping runs. Reaching diagonally, runs that only touch at a corner
    meet where both rows have a boundary at the same column: the run ending there in
    one row touches the run starting there in the other.

    Every step is free of unpredictable branches; only a union that really joins two
    trees leaves the straight path. A run of the row being linked that is still a root
    (``parent[i] == i``) joins by taking the other run's parent, a select rather than a
    branch: roots are the smallest index of their tree, so no run of an earlier row is
    in ``i``'s tree yet and hanging ``i`` below ``j``'s parent is a valid union. That
    first attachment happens for nearly every run and used to be the most mispredicted
    branch of the walk. The walk and the union are written into this kernel rather than
    called: each kernel called costs a compilation on first use.

    Call the neighbour rows of A = (plane, y) B = (plane, y-1), C = (plane-1, y),
    D = (plane-1, y-1) and E = (plane-1, y+1). A row with the same runs as B or C (label
    maps of smooth or blocky objects repeat most rows) is joined to it run by run
    (neighbouring runs of a row hold different values, so run k touches no run of the
    other row but its run k), and the walks that row's own links already answer are
    skipped. A row the same as B touches D and, at 26, C exactly as B
    does (B reaches D through a face, C through an edge); a row the same as C touches D
    and E as C does (C's face neighbours, linked with C itself or, for E, when E was
    linked) and, at 26, B as well; a row the same as both is joined to B only (B and C
    touch run by run through their edge at 18 and 26). Every skipped contact is thus a
    union of contacts linked at some point, in this slab or at the seams, so the
    components are the same. A row the same as B, where B was the same as its own C
    (that is D) and C repeats D, is the same as C without comparing them.
    """
    seams = s == slabs
    if not seams:
        for r in range(bounds[s], bounds[s + 1]):
            end = row_offsets[r + 1] - 1
            for k in range(row_offsets[r], end):
                # -1 wraps to the dtype's largest value: background.
                parent[k] = -1 if run_value[k] == background else k
            parent[end] = -1
    face = connectivity != 6
    edge = connectivity == 26
    for t in range(slabs - 1 if seams else 1):
        if seams:
            first = bounds[t + 1]
            last = bounds[t + 2]
            if first + n1 + 1 < last:
                last = first + n1 + 1
            lowest = 0
        else:
            first = bounds[s]
            last = bounds[s + 1]
            lowest = first
        before_same_c = False
        for row in range(first, last):
            y = row % n1
            has_b = y >= 1 and row - 1 >= lowest
            has_c = row - n1 >= lowest
            # Rows that hold the same values have the same runs.
            same_b = has_b and repeats[row]
            same_c = has_c and same_b and before_same_c and repeats[row - n1]
            if has_c and not same_c:
                a0 = row_offsets[row]
                c0 = row_offsets[row - n1]
                length = row_offsets[row + 1] - a0
                same_c = row_offsets[row - n1 + 1] - c0 == length
                for k in range(length - 1):
                    if not same_c:
                        break
                    same_c = (run_start[a0 + k] == run_start[c0 + k]) & (
                        run_value[a0 + k] == run_value[c0 + k]
                    )
            before_same_c = same_c
            for n in range(4):
                # The earlier neighbour rows, in this order: (plane, y-1), (plane-1, y),
                # (plane-1, y-1), (plane-1, y+1).
                # A row the same as the other is joined run by run, and walks answered
                # by the links of B or C are skipped (see above).
                if n == 0:
                    other = row - 1
                    diagonal = face
                    touching = has_b and (same_b or not (same_c and edge))
                elif n == 1:
                    other = row - n1
                    diagonal = face
                    touching = has_c and (
                        not (same_b and face) if same_c else not (same_b and edge)
                    )
                elif n == 2:
                    other = row - n1 - 1
                    diagonal = edge
                    touching = connectivity != 6 and y >= 1 and other >= lowest
                    touching = touching and not same_b and not same_c
                else:
                    other = row - n1 + 1
                    diagonal = edge
                    touching = connectivity != 6 and y + 1 < n1 and row - n1 >= lowest
                    touching = touching and not same_c
                if not touching:
                    continue
                i = np.uint64(row_offsets[row])
                j = np.uint64(row_offsets[other])
                if (n == 0 and same_b) or (n == 1 and same_c):
                    # The same runs: run by run, a run still alone taking the other's
                    # parent as in the walk, a union written out where two trees meet.
                    for k in range(np.uint64(row_offsets[row + 1]) - i - _ONE):
                        a = i + k
                        b = j + k
                        if run_value[a] == background:
                            continue
                        parent_a = parent[a]
                        parent_b = parent[b]
                        if parent_a == a:
                            parent[a] = parent_b
                        elif parent_a != parent_b:
                            root_a = a
                            while parent[root_a] != root_a:
                                parent[root_a] = parent[parent[root_a]]
                                root_a = parent[root_a]
                            root_b = b
                            while parent[root_b] != root_b:
                                parent[root_b] = parent[parent[root_b]]
                                root_b = parent[root_b]
                            if root_a < root_b:
                                parent[root_b] = root_a
                                root = root_a
                            else:
                                parent[root_a] = root_b
                                root = root_b
                            parent[a] = root
                            parent[b] = root
                    continue
                # Walk the two rows like a merge (see the docstring).
                while True:
                    stop_i = run_start[i + _ONE]
                    stop_j = run_start[j + _ONE]
                    v = run_value[i]
                    foreground = v != background
                    same = (v == run_value[j]) & foreground
                    parent_i = parent[i]
                    parent_j = parent[j]
                    alone = parent_i == i
                    parent_i = parent_j if same & alone else parent_i
                    parent[i] = parent_i
                    join = same & (parent_i != parent_j)
                    join_ahead = False
                    join_behind = False
                    if diagonal:
                        # Corner contacts, where both rows have a boundary at the same column.
                        corner = (stop_i == stop_j) & (stop_i < n2)
                        u = run_value[i + _ONE]
                        join_ahead = corner & (v == run_value[j + _ONE]) & foreground
                        join_ahead &= parent_i != parent[j + _ONE]
                        join_behind = corner & (u == run_value[j]) & (u != background)
                        join_behind &= parent[i + _ONE] != parent_j
                    if join | join_ahead | join_behind:
                        # At most three unions, each checked after the one before: (i, j),
                        # then the corner contacts (i, j + 1) and (i + 1, j).
                        for k in range(3):
                            if k == 0:
                                a = i
                                b = j
                                needed = join
                            elif k == 1:
                                a = i
                                b = j + _ONE
                                needed = join_ahead and parent[i] != parent[j + _ONE]
                            else:
                                a = i + _ONE
                                b = j
                                needed = join_behind and parent[i + _ONE] != parent[j]
                            if not needed:
                                continue
                            # Union: find both roots (path halving keeps trees flat
                            # without a second pass), the smaller root wins
                            # (parent[x] <= x), and a and b point straight at it: the
                            # walk compares parent entries to tell whether two runs are
                            # already together, and stale pointers would send it here
                            # again.
                            root_a = a
                            while parent[root_a] != root_a:
                                parent[root_a] = parent[parent[root_a]]
                                root_a = parent[root_a]
                            root_b = b
                            while parent[root_b] != root_b:
                                parent[root_b] = parent[parent[root_b]]
                                root_b = parent[root_b]
                            if root_a < root_b:
                                parent[root_b] = root_a
                                root = root_a
                            else:
                                parent[root_a] = root_b
                                root = root_b
                            parent[a] = root
                            parent[b] = root
                    if (stop_i >= n2) & (stop_j >= n2):
                        break
                    i += np.uint64(stop_i <= stop_j)
                    j += np.uint64(stop_j <= stop_i)


def number_components(parent: np.ndarray, run_value: np.ndarray) -> np.ndarray:
    """Replace each run's parent by its component number (1, 2, ... by first run; 0 for
    background) and return the input value of each component (index 0 left at 0)."""
    # Sized for the worst case but only written where components start, so the pages
    # beyond the count are never touched.
    values = np.empty(parent.size + 1, run_value.dtype)
    count = _number_components(parent, run_value, values)
    return values[: count + 1].copy()


@kernel()
def _number_components(parent: np.ndarray, run_value: np.ndarray, values: np.ndarray) -> int:
    """:func:`number_components` into ``values``; returns the number of components.

    Relies on ``parent[x] <= x``: a root is met before the rest of its tree, and the
    parent of a non-root has already been replaced by its number when ``x`` is reached.
    """
    values[0] = 0
    count = 0
    for x in range(np.uint64(parent.size)):
        p = parent[x]
        if p > x:  # background
            parent[x] = 0
        elif p == x:
            count += 1
            parent[x] = count
            values[count] = run_value[x]
        else:
            parent[x] = parent[p]
    return count


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
    bounds = slab_bounds(row_offsets, chunks)
    run_chunks(_first_keys, chunks, n0, n1, row_offsets, run_start, labels, repeats, first, bounds)
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
    bounds: np.ndarray,
    c: int,
    chunks: int,
) -> None:
    """Lower ``first[label]`` to the caller's row-major index of each run of the rows of
    chunk ``c`` (rows ``bounds[c] .. bounds[c + 1] - 1``; see :func:`renumber_row_major`)."""
    first = first_of_chunks[c]
    for r in range(bounds[c], bounds[c + 1]):
        p = r // n1
        y = r % n1
        if repeats[r] and y != 0:
            continue
        for k in range(np.uint64(row_offsets[r]), np.uint64(row_offsets[r + 1])):
            lab = np.uint64(labels[k])
            key = (np.int64(run_start[k]) * n1 + y) * n0 + p
            # Background (label 0) writes into the unused slot 0. (The builtin min
            # would be one more function to compile on a first run.)
            if key < first[lab]:
                first[lab] = key


# Bytes written per block in :func:`paint`: one cache line.
_PAINT_BYTES = 64


def paint(
    out: np.ndarray,
    row_offsets: np.ndarray,
    run_start: np.ndarray,
    labels: np.ndarray,
    numbers: np.ndarray,
    chunks: int,
) -> None:
    """Write ``numbers[label]`` of each run into ``out`` (3-D view; background runs get
    ``numbers[0]``, which is 0)."""
    n0, n1, n2 = out.shape
    flat = out.reshape(n0 * n1 * n2)
    bounds = slab_bounds(row_offsets, chunks)
    no_repeats = np.zeros(0, np.bool_)
    run_chunks(
        _paint_chunk, chunks, flat, n1, n2, row_offsets, run_start, labels, numbers,
        no_repeats, False, bounds,
    )  # fmt: skip


def paint_piece(
    out: np.ndarray,
    row_offsets: np.ndarray,
    run_start: np.ndarray,
    labels: np.ndarray,
    numbers: np.ndarray,
    repeats: np.ndarray,
    bounds: np.ndarray,
    t: int,
) -> None:
    """:func:`paint` for rows ``bounds[t] .. bounds[t + 1] - 1`` only, in the calling
    thread. A row that repeats the row before it in its plane (``repeats``, from
    :func:`count_runs`) has the same runs in the same components: unless it is the
    piece's first row, it is copied from the row painted before it."""
    n0, n1, n2 = out.shape
    flat = out.reshape(n0 * n1 * n2)
    _paint_chunk(
        flat, n1, n2, row_offsets, run_start, labels, numbers, repeats, True, bounds, t,
        bounds.size - 1,
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
    bounds: np.ndarray,
    c: int,
    chunks: int,
) -> None:
    """Paint the runs of rows ``bounds[c] .. bounds[c + 1] - 1`` (with ``copy``, rows
    that repeat the row before them in their plane are copied from it).

    Runs are written in whole blocks of ``_PAINT_BYTES`` that may overshoot into the
    next run, which is written afterwards and covers the overshoot with its own first
    block: fixed-size stores instead of a loop whose length changes every run (label
    maps have runs of a few dozen voxels, where that loop's overhead dominates).
    Blocks never cross the end of the row, which another thread may be writing.
    Positions are unsigned so that the stores carry no negative-index wraparound.
    """
    block = np.uint64(_PAINT_BYTES // flat.itemsize)
    width = np.uint64(n2)
    for r in range(bounds[c], bounds[c + 1]):
        base = np.uint64(r * n2)
        if copy and repeats[r] and r > bounds[c] and r % n1 != 0:
            for x in range(width):
                flat[base + x] = flat[base - width + x]
            continue
        row_end = base + width
        for k in range(row_offsets[r], row_offsets[r + 1] - 1):
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


@kernel()
def group_runs(
    row_offsets: np.ndarray,
    run_start: np.ndarray,
    run_value: np.ndarray,
    n1: int,
    bounds: np.ndarray,
    fill: np.ndarray,
    order: np.ndarray,
    rows: np.ndarray,
    boxes: np.ndarray,
) -> None:
    """The runs of every id together, for painting one id's mask at a time.

    ``bounds`` (zeros, ids + 1 entries) becomes the offsets of each id's runs in
    ``order`` (run indices) and ``rows`` (their rows), in memory order within an id;
    ``boxes[6 * v : 6 * v + 6]`` (flat; the lower corners preset to the largest int64,
    the stops to -1) the bounding box of id ``v`` in the view's axes: lower corner, then
    stops.
    ``fill`` is scratch (one entry per id). Background runs (value 0) are left out.
    """
    for k in range(run_value.size):
        bounds[np.uint64(run_value[k]) + _ONE] += 1
    bounds[1] = 0  # background
    for v in range(1, bounds.size):
        bounds[v] += bounds[v - 1]
    for v in range(fill.size):
        fill[v] = bounds[v]
    for r in range(row_offsets.size - 1):
        p = r // n1
        y = r % n1
        # The row's last entry is its sentinel (value 0).
        for k in range(row_offsets[r], row_offsets[r + 1] - 1):
            v = np.uint64(run_value[k])
            if v == 0:
                continue
            j = fill[v]
            fill[v] = j + 1
            order[j] = k
            rows[j] = r
            # Comparisons written out: the builtin min and max would be functions of
            # their own to compile on a first run.
            b = v * np.uint64(6)
            x0 = np.int64(run_start[k])
            x1 = np.int64(run_start[k + 1])
            if p < boxes[b]:
                boxes[b] = p
            if y < boxes[b + _ONE]:
                boxes[b + _ONE] = y
            if x0 < boxes[b + np.uint64(2)]:
                boxes[b + np.uint64(2)] = x0
            if p + 1 > boxes[b + np.uint64(3)]:
                boxes[b + np.uint64(3)] = p + 1
            if y + 1 > boxes[b + np.uint64(4)]:
                boxes[b + np.uint64(4)] = y + 1
            if x1 > boxes[b + np.uint64(5)]:
                boxes[b + np.uint64(5)] = x1


@kernel()
def paint_mask(
    mask: np.ndarray,
    run_start: np.ndarray,
    order: np.ndarray,
    rows: np.ndarray,
    first: int,
    last: int,
    n1: int,
    p0: int,
    y0: int,
    x0: int,
    m1: int,
    m2: int,
) -> None:
    """Set the voxels of the runs ``order[first:last]`` (rows ``rows[first:last]``) in
    ``mask``, the flat C-ordered box of their id (``m1`` rows of ``m2`` per plane) whose
    lower corner is ``(p0, y0, x0)`` in the view's axes."""
    for j in range(first, last):
        k = np.uint64(order[j])
        r = np.int64(rows[j])
        line = ((r // n1 - p0) * m1 + (r % n1 - y0)) * m2 - x0
        for x in range(np.int64(run_start[k]), np.int64(run_start[k + _ONE])):
            mask[np.uint64(line + x)] = True


@kernel()
def component_sizes(
    row_offsets: np.ndarray, run_start: np.ndarray, parent: np.ndarray, sizes: np.ndarray
) -> None:
    """Add the length of every run to ``sizes[parent[run]]`` (components numbered by
    :func:`number_components`; background into ``sizes[0]``)."""
    for r in range(row_offsets.size - 1):
        # The row's last entry is its sentinel.
        for k in range(np.uint64(row_offsets[r]), np.uint64(row_offsets[r + 1] - 1)):
            sizes[parent[k]] += run_start[k + _ONE] - run_start[k]

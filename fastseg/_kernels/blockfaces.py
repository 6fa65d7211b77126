"""Joining the components of separately labelled blocks of a chunked volume.

Each block of a chunked volume is labelled on its own, so one object crossing block
boundaries arrives as several *pieces*, one per block. A block is labelled by the runs
and union-find of :mod:`fastseg._kernels.components` (:func:`block_runs`), and never
painted whole until its final numbers are known; these kernels work on its runs:

- :func:`block_runs`: the runs of a block and the piece each run belongs to, on one
  thread (the pieces are numbered by their first run in memory order, the same way
  every time the block is labelled);
- :func:`piece_first_keys`: where each piece starts, as a row-major (C order) index into the
  whole volume;
- :func:`run_layers`: the first and last layer of piece ids along each axis, painted
  from the runs;
- :func:`face_pairs`: the pairs of pieces that touch across one boundary plane, from
  the layers of voxels on either side of it;
- :func:`join_pieces`: union-find over the pairs, numbering every component by its
  first voxel, the numbering of a labeling of the whole volume;
- :func:`paint_runs`, :func:`paint_transposed`: a block's final numbers painted from
  its runs in C order, for a C- or a Fortran-ordered block, into a new block or
  straight into its place in the whole output (a strided view).

Pieces are identified by *provisional ids*: 0 for background, otherwise a block's
offset plus the piece's id within the block, with offsets far enough apart that no two
blocks share an id and no block needs to know another's piece count.
"""

from __future__ import annotations

import numpy as np

from fastseg._jit import kernel
from fastseg._kernels import components
from fastseg._kernels.components import _find

_NO_KEY = np.iinfo(np.int64).max


def block_runs(
    view: np.ndarray, background: int, connectivity: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Runs and pieces of a non-empty block on one thread: ``(row_offsets, run_start,
    pieces, values)``.

    ``view`` is the block as :meth:`fastseg._arrays.LabelArray.view_3d` gives it;
    ``pieces[k]`` is the piece of run ``k`` (0 for background and for each row's
    sentinel), numbered 1, 2, ... by first run in memory order; ``values[i]`` is the
    value of piece ``i`` (index 0 left at 0). The same kernels as
    :func:`fastseg.label`, with the same argument types, so no specialisation of
    their own.
    """
    _, n1, n2 = view.shape
    row_offsets, repeats = components.count_runs(view, 1)
    n_runs = int(row_offsets[-1])
    run_start = np.empty(n_runs, components.run_start_dtype(n2))
    run_value = np.empty(n_runs, components.run_value_dtype(view.dtype))
    pieces = np.empty(n_runs, components.parent_dtype(n_runs))
    components.find_runs(view, row_offsets, repeats, run_start, run_value, 1)
    components.link_runs(
        n1, n2, np.uint64(background), row_offsets, repeats, run_start, run_value, pieces,
        connectivity, 1,
    )  # fmt: skip
    values = components.number_components(pieces, run_value)
    return row_offsets, run_start, pieces, values


@kernel()
def piece_first_keys(
    n1: int,
    transposed: bool,
    row_offsets: np.ndarray,
    run_start: np.ndarray,
    pieces: np.ndarray,
    count: int,
    start: tuple[int, int, int],
    shape: tuple[int, int, int],
) -> np.ndarray:
    """Row-major index into the whole volume of the first voxel of each piece (0..count).

    The runs are those of :func:`block_runs` on a block's 3-D view of ``n1`` rows per
    plane (the transpose of the block for a Fortran-ordered one, ``transposed``);
    ``start`` is the block's corner and ``shape`` the whole volume's, both in the
    block's (caller's) axes. Translation keeps the lexicographic order of indices, so
    the first voxel of a piece within its block is also the first among its voxels in
    the whole volume. Index 0 (background) is left at the largest int64.
    """
    first = np.full(count + 1, _NO_KEY, np.int64)
    s0, s1, s2 = start
    _, m1, m2 = shape
    for r in range(row_offsets.size - 1):
        p = r // n1
        y = r % n1
        # Only the start of a run can be a piece's first voxel.
        for k in range(row_offsets[r], row_offsets[r + 1] - 1):
            piece = pieces[k]
            x = np.int64(run_start[k])
            if transposed:
                key = ((s0 + x) * m1 + s1 + y) * m2 + s2 + p
            else:
                key = ((s0 + p) * m1 + s1 + y) * m2 + s2 + x
            if key < first[piece]:
                first[piece] = key
    first[0] = _NO_KEY
    return first


@kernel(helper=True)
def _paint_row(
    out: np.ndarray, row: int, row_offsets: np.ndarray, run_start: np.ndarray, pieces: np.ndarray
) -> None:
    """Write the pieces of the runs of ``row`` into the 1-D ``out``."""
    for k in range(row_offsets[row], row_offsets[row + 1] - 1):
        piece = pieces[k]
        for x in range(run_start[k], run_start[k + 1]):
            out[x] = piece


@kernel()
def run_layers(
    n0: int, n1: int, n2: int, row_offsets: np.ndarray, run_start: np.ndarray, pieces: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The first and last layer of piece ids of a non-empty 3-D view along each of its
    axes, ``(first0, last0, first1, last1, first2, last2)``, each in the view's
    remaining axes: painted from the runs, never the whole block."""
    first0 = np.empty((n1, n2), pieces.dtype)
    last0 = np.empty((n1, n2), pieces.dtype)
    first1 = np.empty((n0, n2), pieces.dtype)
    last1 = np.empty((n0, n2), pieces.dtype)
    first2 = np.empty((n0, n1), pieces.dtype)
    last2 = np.empty((n0, n1), pieces.dtype)
    for y in range(n1):
        _paint_row(first0[y], y, row_offsets, run_start, pieces)
        _paint_row(last0[y], (n0 - 1) * n1 + y, row_offsets, run_start, pieces)
    for p in range(n0):
        _paint_row(first1[p], p * n1, row_offsets, run_start, pieces)
        _paint_row(last1[p], p * n1 + n1 - 1, row_offsets, run_start, pieces)
        for y in range(n1):
            r = p * n1 + y
            first2[p, y] = pieces[row_offsets[r]]
            # Every row ends with a sentinel entry: its last run is the one before.
            last2[p, y] = pieces[row_offsets[r + 1] - 2]
    return first0, last0, first1, last1, first2, last2


@kernel()
def face_pairs(
    lower_ids: np.ndarray,
    lower_values: np.ndarray,
    upper_ids: np.ndarray,
    upper_values: np.ndarray,
    reach: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of provisional ids ``(lower, upper)`` that touch across a boundary plane.

    The four arrays are 2-D layers of the same shape: the last layer of voxels before
    the plane and the first layer after it (provisional ids, 0 for background, and the
    input values). A voxel touches the voxels of the other layer whose position differs
    by at most one step per axis and at most ``reach`` steps in all: 0 for 6-, 1 for
    18- and 2 for 26-connectivity. Pairs join only where the values are equal; a pair
    repeating the one found just before it is left out.
    """
    n0, n1 = lower_ids.shape
    steps = 1 if reach == 0 else (5 if reach == 1 else 9)
    left = np.empty(n0 * n1 * steps, np.uint64)
    right = np.empty(n0 * n1 * steps, np.uint64)
    found = 0
    last_u = np.uint64(0)
    last_v = np.uint64(0)
    for y in range(n0):
        for x in range(n1):
            u = lower_ids[y, x]
            if u == 0:
                continue
            value = lower_values[y, x]
            for dy in range(-1, 2):
                yy = y + dy
                if yy < 0 or yy >= n0:
                    continue
                for dx in range(-1, 2):
                    xx = x + dx
                    if xx < 0 or xx >= n1 or abs(dy) + abs(dx) > reach:
                        continue
                    v = upper_ids[yy, xx]
                    if v == 0 or upper_values[yy, xx] != value:
                        continue
                    if u == last_u and v == last_v:
                        continue
                    left[found] = u
                    right[found] = v
                    found += 1
                    last_u = u
                    last_v = v
    return left[:found].copy(), right[:found].copy()


def join_pieces(first_keys: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Component number (1, 2, ...) of every piece, from the pairs of pieces that touch.

    Pieces are ``0 .. n-1`` with distinct ``first_keys`` (row-major index of their first
    voxel); ``left[i]`` touches ``right[i]``. Every tree's root is the piece with the
    smallest key, so components are numbered by their first voxel in the whole volume,
    whatever order the pairs come in. The numbering is numpy: a sort inside a kernel
    compiles numba's generic sort, about 3 s on a first call.
    """
    root = _piece_roots(first_keys, left, right)
    root_nodes = np.flatnonzero(root == np.arange(root.size))
    order = np.argsort(first_keys[root_nodes], kind="stable")
    number = np.empty(root.size, np.int64)
    number[root_nodes[order]] = np.arange(1, root_nodes.size + 1)
    return number[root]


@kernel()
def _piece_roots(first_keys: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Union-find over the pairs: the root of every piece, the piece of smallest key of
    its component."""
    n = first_keys.size
    parent = np.arange(n)
    for i in range(left.size):
        a = _find(parent, np.int64(left[i]))
        b = _find(parent, np.int64(right[i]))
        if a != b:
            if first_keys[a] < first_keys[b]:
                parent[b] = a
            else:
                parent[a] = b
    root = np.empty(n, np.int64)
    for x in range(n):
        root[x] = _find(parent, np.int64(x))
    return root


@kernel()
def paint_transposed(
    out: np.ndarray,
    row_offsets: np.ndarray,
    run_start: np.ndarray,
    pieces: np.ndarray,
    numbers: np.ndarray,
) -> None:
    """``out[x, y, p] = numbers[piece at (p, y, x)]``: a Fortran-ordered block's final
    numbers, painted from the runs of its view ``(p, y, x)`` into C order.

    dask assembles computed blocks into a C-ordered array (and zarr stores C order),
    where a Fortran-ordered block would cost a transposing copy several times slower
    than painting. Each plane ``y`` is painted into a small buffer first, whose rows
    are one element longer than a plane's rows so that its columns do not fall into
    the same cache sets, and copied from there row by row.
    """
    n2, n1, n0 = out.shape
    buffer = np.empty((n2, n0 + 1), out.dtype)
    for y in range(n1):
        for p in range(n0):
            row = p * n1 + y
            for k in range(row_offsets[row], row_offsets[row + 1] - 1):
                value = out.dtype.type(numbers[pieces[k]])
                for x in range(run_start[k], run_start[k + 1]):
                    buffer[x, p] = value
        for x in range(n2):
            plane = out[x, y]
            for p in range(n0):
                plane[p] = buffer[x, p]


@kernel()
def paint_runs(
    out: np.ndarray,
    row_offsets: np.ndarray,
    run_start: np.ndarray,
    pieces: np.ndarray,
    numbers: np.ndarray,
) -> None:
    """``out[i, j, x] = numbers[piece at (i, j, x)]``: a C-ordered block's final numbers,
    painted from its runs into ``out``, whose rows (last axis) are contiguous but which
    may be a view of a larger array (the block's place in the whole output)."""
    n0, n1, _ = out.shape
    for i in range(n0):
        for j in range(n1):
            line = out[i, j]
            row = i * n1 + j
            for k in range(row_offsets[row], row_offsets[row + 1] - 1):
                value = out.dtype.type(numbers[pieces[k]])
                for x in range(run_start[k], run_start[k + 1]):
                    line[x] = value

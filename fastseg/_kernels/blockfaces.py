"""Joining the components of separately labelled blocks of a chunked volume.

Each block of a chunked volume is labelled on its own (:mod:`fastseg._kernels.components`),
so one object crossing block boundaries arrives as several *pieces*, one per block.
These kernels find which pieces touch across the boundaries between blocks and join
them into components numbered like a labeling of the whole volume:

- :func:`first_voxels`: where each piece of a block starts, as a row-major (C order)
  index into the whole volume;
- :func:`face_pairs`: the pairs of pieces that touch across one boundary plane, from
  the layers of voxels on either side of it;
- :func:`join_pieces`: union-find over the pairs, numbering every component by its
  first voxel, the numbering of a labeling of the whole volume;
- :func:`number_transposed`: each block's final numbers, written in C order whatever
  the block's memory order.

Pieces are identified by *provisional ids*: 0 for background, otherwise a block's
offset plus the piece's id within the block, with offsets far enough apart that no two
blocks share an id and no block needs to know another's piece count.
"""

from __future__ import annotations

import numpy as np

from fastseg._jit import kernel
from fastseg._kernels.components import _find

_NO_KEY = np.iinfo(np.int64).max


@kernel()
def first_voxels(
    view: np.ndarray,
    transposed: bool,
    count: int,
    start: tuple[int, int, int],
    shape: tuple[int, int, int],
) -> np.ndarray:
    """Row-major index into the whole volume of the first voxel of each piece (0..count).

    ``view`` is a block's piece map as a C-contiguous 3-D view (the transpose of the
    block for a Fortran-ordered one, ``transposed``); ``start`` is the block's corner and
    ``shape`` the whole volume's, both in the block's (caller's) axes. Translation keeps
    the lexicographic order of indices, so the first voxel of a piece within its block
    is also the first among its voxels in the whole volume. Index 0 (background) is
    left at the largest int64.
    """
    first = np.full(count + 1, _NO_KEY, np.int64)
    n0, n1, n2 = view.shape
    s0, s1, s2 = start
    _, m1, m2 = shape
    for p in range(n0):
        for y in range(n1):
            row = view[p, y]
            previous = 0
            for x in range(n2):
                piece = np.int64(row[x])
                # Along a row only the start of a run can be a piece's first voxel: the
                # row axis is the last caller axis, or (transposed) the first one.
                if piece != previous and piece != 0:
                    if transposed:
                        key = ((s0 + x) * m1 + s1 + y) * m2 + s2 + p
                    else:
                        key = ((s0 + p) * m1 + s1 + y) * m2 + s2 + x
                    if key < first[piece]:
                        first[piece] = key
                previous = piece
    return first


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


@kernel()
def join_pieces(first_keys: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Component number (1, 2, ...) of every piece, from the pairs of pieces that touch.

    Pieces are ``0 .. n-1`` with distinct ``first_keys`` (row-major index of their first
    voxel); ``left[i]`` touches ``right[i]``. Every tree's root is the piece with the
    smallest key, so components are numbered by their first voxel in the whole volume,
    whatever order the pairs come in.
    """
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
    roots = 0
    for x in range(n):
        root[x] = _find(parent, np.int64(x))
        roots += root[x] == x
    root_nodes = np.empty(roots, np.int64)
    k = 0
    for x in range(n):
        if root[x] == x:
            root_nodes[k] = x
            k += 1
    order = np.argsort(first_keys[root_nodes])
    number = np.empty(n, np.int64)
    for rank in range(roots):
        number[root_nodes[order[rank]]] = rank + 1
    for x in range(n):
        number[x] = number[root[x]]
    return number


# Side of the square tiles of :func:`number_transposed`: 32 x 32 elements of the source
# and of the output stay in L1 while they are read across and written along.
_TILE = 32


@kernel()
def number_transposed(pieces: np.ndarray, table: np.ndarray, out: np.ndarray) -> None:
    """``out[i, j, k] = table[pieces[k, j, i]]``: a block's final numbers in C order.

    ``pieces`` is the C-contiguous view of a Fortran-ordered block (axes reversed).
    dask assembles computed blocks into a C-ordered array, where Fortran-ordered blocks
    (nibabel's volumes give them) cost a transposing copy several times slower than the
    whole labeling; writing the numbers transposed here, in tiles that keep both sides
    in cache, does that copy at the cost of a plain lookup.
    """
    n2, n1, n0 = pieces.shape
    for j in range(n1):
        for i0 in range(0, n0, _TILE):
            i1 = min(i0 + _TILE, n0)
            for k0 in range(0, n2, _TILE):
                k1 = min(k0 + _TILE, n2)
                for i in range(i0, i1):
                    for k in range(k0, k1):
                        out[i, j, k] = table[pieces[k, j, i]]

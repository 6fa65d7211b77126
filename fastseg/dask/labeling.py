"""Connected components of a chunked volume, equal to :func:`fastseg.label` on the whole.

Every block is labelled on its own; pieces touching across the boundaries between blocks
are joined by a union-find over pairs found in the boundary layers; every block is then
numbered through its own lookup table.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, NamedTuple

import dask.array as da
import numpy as np
import numpy.typing as npt
from dask.base import compute, get_scheduler, tokenize
from dask.delayed import Delayed
from dask.graph_manipulation import bind
from dask.highlevelgraph import HighLevelGraph

import fastseg
from fastseg._arrays import as_label_array, is_fortran
from fastseg._connectivity import AS_3D, resolve_connectivity
from fastseg.components import Components, Connectivity
from fastseg.dask._graph import Tasks, check_labels, compact, corners, lifted
from fastseg.dtypes import check_dtype_holds, fit_dtype

__all__ = ["KEEP_RUNS_VOXELS", "DaskComponents", "label"]

KEEP_RUNS_VOXELS = 2**27
"""Up to this many voxels (512³), :func:`label` keeps every block's runs from its first
pass for its second by default, instead of reading and labelling the block again: the
component map of such a volume (512 MB of uint32 at most) is about what a caller who
computes it holds anyway, and the runs of real label volumes take much less (65 MB for
the 512³ connectomics volume; at most 8 bytes per voxel, for noise)."""


class DaskComponents(NamedTuple):
    """Result of :func:`label`: lazy, like every dask collection.

    ``labels`` is a dask array; ``count`` and ``values`` are ``dask.delayed`` objects that
    share their work with it. Compute them together, ``dask.compute(*result)``, or get a
    :class:`fastseg.Components` with :meth:`compute`; to store a large map and count in
    one go, ``dask.compute(labels.to_zarr(path, compute=False), count)`` (computing
    them one after the other runs the first pass over the volume twice).

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> import fastseg.dask
    >>> result = fastseg.dask.label(da.from_array(np.array([1, 1, 0, 1, 2]), chunks=2))
    >>> cc, count, values = result.compute(scheduler="sync")
    >>> cc.tolist(), count, values.tolist()
    ([1, 1, 0, 2, 3], 3, [0, 1, 1, 2])
    """

    labels: da.Array
    """Component map, chunked like the input: 0 for background, components 1..count."""
    count: Delayed  # the field shadows tuple.count on purpose
    """Number of components (an int once computed)."""
    values: Delayed
    """``values[k]``: the input value of component ``k`` (a numpy array once computed)."""

    def compute(self, **kwargs: Any) -> Components:
        """Compute labels, count and values in one pass (keyword arguments go to
        :func:`dask.compute`, e.g. ``scheduler``). The whole component map comes into
        memory: for large volumes store ``labels`` instead, e.g. with ``to_zarr``.

        On the threaded and the synchronous scheduler, every block is painted straight
        into its place in one new array, instead of into a block of its own that dask
        then copies into the whole (twice the memory of the map, and a copy that takes
        about as long as painting it); the map is then Fortran-ordered if the blocks
        are (as from :func:`fastseg.dask.from_nifti`, and as :func:`fastseg.label`
        numbers a Fortran-ordered volume), so that blocks are painted along their runs.
        Otherwise, and for ``dask.compute(*result)``, the map is C-ordered. Here the
        count is known before the map is allocated, so unless ``label`` was given an
        ``out_dtype``, the map has the smallest unsigned dtype that holds the count, as
        :func:`fastseg.label`'s (``labels.dtype`` holds one id per voxel)."""
        filled = _filled(self.labels, kwargs.get("scheduler"))
        if filled is None:
            labels, count, values = compute(self.labels, self.count, self.values, **kwargs)
        else:
            labels, count, values = compute(filled, self.count, self.values, **kwargs)
        return Components(labels, count, values)


def _filled(labels: da.Array, scheduler: Any) -> Delayed | None:
    """``labels`` computed by painting every block into its place in one new numpy array,
    when the scheduler runs tasks in this process (threads or synchronous) and the
    labels are the second pass of :func:`label` (not an array derived from them);
    None otherwise."""
    import dask.local
    import dask.threaded

    collections: list[Any] = [labels]  # dask's annotations do not list da.Array
    if get_scheduler(scheduler=scheduler, collections=collections) not in (
        dask.threaded.get,
        dask.local.get_sync,
    ):
        return None
    lift = (1,) * (3 - labels.ndim)
    name: str = labels.name
    if lift:  # a 1-D or 2-D map is the 3-D one of label, indexed
        below = labels.dask.dependencies.get(name, set())
        if len(below) != 1:
            return None
        (name,) = below
    layer = labels.dask.layers.get(name)
    if layer is None:
        return None
    chunks = tuple((1,) for _ in lift) + labels.chunks
    starts = [np.concatenate([[0], np.cumsum(sizes)]).astype(int) for sizes in chunks]
    prefix = f"fastseg-fill-{tokenize(labels.name)}"
    allocated = f"{prefix}-allocate"
    tasks = []
    for index in np.ndindex(*(len(sizes) for sizes in chunks)):
        task = layer.get((name, *index))
        if not (isinstance(task, tuple) and task and task[0] in _SECOND_PASS):
            return None
        tasks.append((index, task))
    fit = tasks[0][1][-1]
    numberings = [task[-3] for _, task in tasks]
    graph: dict[Any, Any] = {
        allocated: (_allocate, labels.shape, str(labels.dtype), fit, *numberings)
    }
    for index, task in tasks:
        where = tuple(slice(int(s[i]), int(s[i + 1])) for s, i in zip(starts, index, strict=True))
        key = (prefix, *index)
        graph[key] = (_fill, allocated, where, *task)
    graph[prefix] = (_whole, allocated, *[key for key in graph if key != allocated])
    return Delayed(prefix, HighLevelGraph.from_collections(prefix, graph, collections))


@dataclass(frozen=True)
class _Pieces:
    """What joining needs to know of a labelled block, without its voxels."""

    offset: int
    """Added to the block's own ids to make its provisional ids."""
    values: np.ndarray
    """Input value of each piece (index 0: background)."""
    first: np.ndarray
    """Row-major index into the whole volume of each piece's first voxel."""
    transposed: bool
    """Whether the block was labelled as its transpose (it was Fortran-ordered)."""


class _Kept(NamedTuple):
    """A block's runs, kept from the first pass for the second (:func:`_paint_block`)."""

    shape: tuple[int, ...]
    """The block's shape (3-D)."""
    transposed: bool
    row_offsets: np.ndarray
    run_start: np.ndarray
    pieces: np.ndarray


class _Runs(NamedTuple):
    """A block labelled by runs (:func:`fastseg._kernels.blockfaces.block_runs`)."""

    view: np.ndarray
    """The block as a C-contiguous 3-D view (its transpose if ``transposed``)."""
    transposed: bool
    row_offsets: np.ndarray
    run_start: np.ndarray
    pieces: np.ndarray
    """Piece of each run, numbered by first run in memory order: the same every time."""
    values: np.ndarray
    """Input value of each piece, in the block's dtype (index 0: background)."""


def _runs(
    block: np.ndarray, connectivity: int, background: int, transposed: bool | None = None
) -> _Runs:
    """Label a (3-D) block by runs, without painting it; as its transpose (Fortran order)
    or not as ``transposed`` says, or as its memory order says when it is None.

    Pieces are numbered by their first run in the order the runs are read, so the
    second pass has to read a block in the first pass's order. The same block may come
    in another memory order the second time: a slice of a Fortran-ordered volume is
    copied as such where it is read, but dask.distributed sends non-contiguous arrays
    between workers in C order.
    """
    from fastseg._kernels import blockfaces as blockfaces_kernels
    from fastseg._kernels.components import parent_dtype

    block = compact(block)
    if transposed is not None and transposed != is_fortran(block):
        block = np.asfortranarray(block) if transposed else np.ascontiguousarray(block)
    source = as_label_array(block)
    view, transposed = source.view_3d()
    if source.size:
        row_offsets, run_start, pieces, flat_values = blockfaces_kernels.block_runs(
            view, background, connectivity
        )
    else:
        row_offsets = np.zeros(view.shape[0] * view.shape[1] + 1, np.int64)
        run_start = np.zeros(0, np.int32)
        pieces = np.zeros(0, parent_dtype(0))
        flat_values = np.zeros(1, view.dtype)
    flat_values[0] = background
    if source.dtype.kind == "b":
        values = flat_values.astype(np.uint8).view(source.dtype)
    else:
        values = flat_values.astype(source.dtype)
    return _Runs(view, transposed, row_offsets, run_start, pieces, values)


def _label_block(
    block: np.ndarray,
    connectivity: int,
    background: int,
    corner: tuple[int, int, int],
    shape: tuple[int, int, int],
    offset: int,
    keep: bool,
) -> tuple[_Pieces, tuple[np.ndarray, ...], _Kept | None]:
    """Label a block on its own: its summary, its first and last layer of piece ids
    along each axis (``sides[2 * axis + last]``) and, if ``keep``, its runs. The block
    is labelled by runs and only its boundary layers are painted: without ``keep`` it
    is labelled again when it is numbered, so no task keeps its runs meanwhile."""
    from fastseg._kernels import blockfaces as blockfaces_kernels

    runs = _runs(block, connectivity, background)
    count = runs.values.size - 1
    first = blockfaces_kernels.piece_first_keys(
        runs.view.shape[1], runs.transposed, runs.row_offsets, runs.run_start, runs.pieces,
        count, corner, shape,
    )  # fmt: skip
    layers: tuple[np.ndarray, ...]
    if block.size:
        n0, n1, n2 = runs.view.shape
        layers = blockfaces_kernels.run_layers(
            n0, n1, n2, runs.row_offsets, runs.run_start, runs.pieces
        )
    else:  # no boundary asks for the layers of an empty volume
        layers = tuple(
            np.zeros([n for a, n in enumerate(runs.view.shape) if a != axis], runs.pieces.dtype)
            for axis in range(3)
            for _ in (0, 1)
        )
    # Layers along the view's axes, in its remaining axes; the transpose (a Fortran-
    # ordered block) reverses both.
    if runs.transposed:
        sides = tuple(layers[2 * (2 - axis) + last].T for axis in range(3) for last in (0, 1))
    else:
        sides = layers
    kept = (
        _Kept(block.shape, runs.transposed, runs.row_offsets, runs.run_start, runs.pieces)
        if keep
        else None
    )
    return _Pieces(offset, runs.values, first, runs.transposed), sides, kept


Near = tuple[Any, ...]
"""A block's sides and summary, and those of the next blocks along a boundary plane,
flat: ``near[2 * (r + 2 * s)]`` the sides and ``near[2 * (r + 2 * s) + 1]`` the summary
of the block ``r``, ``s`` steps along the plane's two axes (None: absent)."""


def _extended(near: Near, axis: int, last: bool) -> tuple[np.ndarray, np.ndarray]:
    """A block's layer beside a boundary normal to ``axis`` (provisional ids and input
    values), extended by one row and one column from the next blocks' layers."""
    n0, n1 = near[0][2 * axis + last].shape
    rows = n0 + (near[2] is not None)
    columns = n1 + (near[4] is not None)
    ids = np.zeros((rows, columns), np.uint64)
    values = np.zeros((rows, columns), np.uint64)
    for r in (0, 1):
        for s in (0, 1):
            sides, summary = near[2 * (r + 2 * s)], near[2 * (r + 2 * s) + 1]
            if sides is None:
                continue
            # Of the next blocks, only the row or column beside this block's layer.
            layer = sides[2 * axis + last][: 1 if r else n0, : 1 if s else n1]
            target = (
                slice(n0, n0 + 1) if r else slice(0, n0),
                slice(n1, n1 + 1) if s else slice(0, n1),
            )
            offset = np.uint64(summary.offset)
            ids[target] = np.where(layer != 0, layer.astype(np.uint64) + offset, np.uint64(0))
            values[target] = summary.values[layer]
    return ids, values


def _face(axis: int, reach: int, *near: Any) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of provisional ids touching across one boundary between two blocks, from
    the lower and the upper block's :data:`Near` (``near[:8]``, ``near[8:]``; a pair
    repeats where it touches in places far apart, :func:`_gathered` keeps it once).

    Each side is extended by one row and column into the next blocks along the plane,
    so that diagonal contacts reaching into them are found; contacts reaching back into
    the previous blocks are found by the boundaries of those.
    """
    from fastseg._kernels import blockfaces as blockfaces_kernels

    lower_ids, lower_values = _extended(near[:8], axis, True)
    upper_ids, upper_values = _extended(near[8:], axis, False)
    return blockfaces_kernels.face_pairs(lower_ids, lower_values, upper_ids, upper_values, reach)


def _gathered(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of provisional ids from several boundaries, each pair once: a pair of pieces
    touches in many places, and kept once, the pairs waiting for the join grow with the
    pieces, not with the area of the boundaries."""
    left = np.concatenate([np.empty(0, np.uint64)] + [p[0] for p in pairs])
    right = np.concatenate([np.empty(0, np.uint64)] + [p[1] for p in pairs])
    order = np.lexsort((right, left))
    left, right = left[order], right[order]
    keep = np.ones(left.size, bool)
    keep[1:] = (left[1:] != left[:-1]) | (right[1:] != right[:-1])
    return left[keep], right[keep]


def _resolve(
    summaries: list[_Pieces],
    pairs: list[tuple[np.ndarray, np.ndarray]],
    stride: int,
    dtype: np.dtype[Any],
    values_dtype: np.dtype[Any],
    background: int,
) -> tuple[list[tuple[np.ndarray, bool]], int, np.ndarray]:
    """Join the pieces of every block: per block, a table from its own ids to the final
    ids and the order it was labelled in; the number of components; the input value of
    each component."""
    from fastseg._kernels import blockfaces as blockfaces_kernels

    counts = np.array([s.values.size - 1 for s in summaries], np.int64)
    node_start = np.zeros(len(summaries) + 1, np.int64)
    node_start[1:] = np.cumsum(counts)
    first = np.concatenate([s.first[1:] for s in summaries])

    def nodes(provisional: np.ndarray) -> np.ndarray:
        block = (provisional // np.uint64(stride)).astype(np.int64)
        return node_start[block] + (provisional % np.uint64(stride)).astype(np.int64) - 1

    left = np.concatenate([np.empty(0, np.uint64)] + [p[0] for p in pairs])
    right = np.concatenate([np.empty(0, np.uint64)] + [p[1] for p in pairs])
    number = blockfaces_kernels.join_pieces(first, nodes(left), nodes(right))
    count = int(number.max()) if number.size else 0
    check_dtype_holds(dtype, 0, count, "out_dtype")
    values = np.empty(count + 1, values_dtype)
    values[0] = background
    values[number] = np.concatenate([s.values[1:] for s in summaries])
    tables = [
        (
            np.concatenate([np.zeros(1, np.int64), number[node_start[b] : node_start[b + 1]]]),
            summaries[b].transposed,
        )
        for b in range(len(summaries))
    ]
    return tables, count, values


def _painted(
    kept: _Kept, table: np.ndarray, dtype: str, out: np.ndarray | None, flipped: bool
) -> np.ndarray:
    """A block's final numbers painted from its runs through its table into ``out``: a
    new C-ordered block if None (dask joins blocks into a C-ordered array and zarr
    stores them so, where Fortran-ordered ones would be transposed), else the block's
    place in the whole output, or its transpose if ``flipped``."""
    from fastseg._kernels import blockfaces as blockfaces_kernels

    if out is None:
        out = np.empty(kept.shape, dtype)
    if not out.size:
        return out
    # Runs along the output's rows are painted as they are, others across them.
    if kept.transposed == flipped:
        paint = blockfaces_kernels.paint_runs
    else:
        paint = blockfaces_kernels.paint_transposed
    paint(out, kept.row_offsets, kept.run_start, kept.pieces, table)
    return out


def _number_block(
    block: np.ndarray,
    connectivity: int,
    background: int,
    numbering: tuple[np.ndarray, bool],
    dtype: str,
    fit: bool,
    out: np.ndarray | None = None,
    flipped: bool = False,
) -> np.ndarray:
    """A block's final numbers (:func:`_painted`): labelled again, in the first pass's
    order, so the same pieces as the first time. (``fit``: whether ``dtype`` is the
    default, which :meth:`DaskComponents.compute` narrows to the count.)"""
    table, transposed = numbering
    runs = _runs(block, connectivity, background, transposed)
    kept = _Kept(block.shape, runs.transposed, runs.row_offsets, runs.run_start, runs.pieces)
    return _painted(kept, table, dtype, out, flipped)


def _paint_block(
    kept: _Kept,
    numbering: tuple[np.ndarray, bool],
    dtype: str,
    fit: bool,
    out: np.ndarray | None = None,
    flipped: bool = False,
) -> np.ndarray:
    """A block's final numbers (:func:`_painted`) from the runs the first pass kept (as
    :func:`_number_block`)."""
    return _painted(kept, numbering[0], dtype, out, flipped)


_SECOND_PASS = (_number_block, _paint_block)
"""The tasks of the second pass; the last three arguments of each are the block's
numbering (table, transposed), the dtype and whether it is the default."""


def _allocate(
    shape: tuple[int, ...], dtype: str, fit: bool, *numberings: tuple[np.ndarray, bool]
) -> np.ndarray:
    """The whole component map, uninitialised, as :func:`fastseg.label` would return it:
    of the smallest dtype that holds the count if ``fit`` (the default dtype), and
    Fortran-ordered if every block was labelled as its transpose (Fortran-ordered
    blocks, as from a NIfTI file), so that every block is painted along its runs."""
    if fit:  # every component has a piece, so the largest number is the count
        count = max((int(table.max()) for table, _ in numberings if table.size), default=0)
        dtype = str(fit_dtype(count))
    fortran = bool(numberings) and all(t for _, t in numberings)
    return np.empty(shape, dtype, order="F" if fortran else "C")


def _fill(out: np.ndarray, where: tuple[slice, ...], function: Any, *arguments: Any) -> None:
    """Run a second-pass task, ``function(*arguments)``, painting straight into the
    block's place ``where`` in the whole map ``out`` (through its 3-D view; in the
    transposed view if ``out`` is Fortran-ordered, where rows run along the first
    axis)."""
    lifted = out[(None,) * (3 - out.ndim)]
    if out.flags.c_contiguous:
        function(*arguments, out=lifted[where])
    else:
        function(*arguments, out=lifted[where].T, flipped=True)


def _whole(out: np.ndarray, *_filled: None) -> np.ndarray:
    """``out``, once every block is painted into it."""
    return out


def label(
    darr: da.Array,
    *,
    connectivity: Connectivity | None = None,
    background: int = 0,
    out_dtype: npt.DTypeLike | None = None,
    keep_runs: bool | None = None,
) -> DaskComponents:
    """Label the connected components of a chunked binary or multilabel dask array.

    The result equals :func:`fastseg.label` on the whole array, ids included:
    components are numbered 1, 2, ... in the order of their first voxel in row-major
    (C) order of the whole array, whatever the chunking.

    How: every block is labelled on its own by the runs and union-find of
    :func:`fastseg.label`, on one thread (one task per block; each block's ids are
    offset by its index times the largest block's voxel count, so no block waits for
    another's count), without painting it: only its six boundary layers are painted,
    and the first voxel of each piece is found from the runs. Pairs of pieces that
    touch across a boundary between blocks (across faces, and for 18/26 and 8
    connectivity also across edges and corners) are found from the layers on either
    side, one task per pair of neighbouring blocks; one task joins them with a
    union-find and numbers the components by their first voxel; every block is then
    labelled again and painted straight into its final numbers (in C order, also for
    Fortran-ordered blocks: dask assembles C-ordered arrays and zarr stores them).
    Only block-sized arrays, boundary layers and per-component tables are ever in one
    task.

    Memory stays bounded by the blocks in flight, the boundary layers not yet compared
    and the per-component tables, whatever the size of the volume: no block's component
    map is kept until the join (unless ``keep_runs``, by default up to 512³ voxels, keeps
    every block's runs until its second pass, which then only paints). Instead every
    block is read and labelled a second time once the join is done (the same pieces,
    labelling is deterministic); the input is read twice, and its reads for the second
    pass wait for the join (:func:`dask.graph_manipulation.bind`), so they never pile
    up in memory.
    In the first pass, the blocks of each slab along the first axis are read once the
    pairs of the slab two before are found, so that the layers waiting for their
    neighbours are those of about three slabs.
    To store a volume larger than memory, write ``labels`` block by block:
    ``dask.compute(labels.to_zarr(path, compute=False), count)`` to a new zarr array,
    or ``dask.compute(dask.array.store(labels, array, lock=False, compute=False),
    count)`` into an existing one chunked like ``darr``. (``labels.to_zarr(array)``
    with an existing zarr array first merges the blocks into pieces of dask's
    ``array.chunk-size``, 128 MiB by default, each of which waits in one worker's
    memory for all its blocks.)

    Parameters
    ----------
    darr : dask.array.Array
        1-D, 2-D or 3-D integer or bool labels, any chunking (chunk sizes known).
    connectivity : int, optional
        As for :func:`fastseg.label`: 4 or 8 in 2-D, 6, 18 or 26 in 3-D, or the number
        of hops; default full (8 / 26).
    background : int, optional
        The value that is not labelled (default 0).
    out_dtype : dtype, optional
        Integer dtype of the component map. It has to be fixed before anything is
        computed, so by default it is the smallest unsigned type that holds one id
        per voxel (uint32 up to 4 G voxels), narrowed to the smallest that holds the
        count by :meth:`DaskComponents.compute` on a local scheduler, as
        :func:`fastseg.label` chooses; a dtype too small for the count raises
        ``ValueError`` when computed.
    keep_runs : bool, optional
        Keep every block's runs (its labelling without its voxels: 65 MB for a 512³
        uint32 connectomics volume of 512 MB, at most 8 bytes per voxel) from the first
        pass until its second, which then only paints, instead of reading and labelling
        every block again. Faster, but what is kept grows with the volume: by default
        only up to :data:`fastseg.dask.labeling.KEEP_RUNS_VOXELS` voxels (512³), where
        the map a caller computes is larger; beyond, the second pass reads the input
        again and memory stays bounded by the blocks in flight.

    Returns
    -------
    DaskComponents
        ``(labels, count, values)``, lazy.

    Raises
    ------
    TypeError
        For anything but an integer or bool dask array, a float array, a non-integer
        ``out_dtype``.
    ValueError
        For an invalid connectivity or background, more than 3 dimensions or unknown
        chunk sizes; when computed, for negative labels or an ``out_dtype`` too small.

    Examples
    --------
    >>> import dask, dask.array as da, numpy as np
    >>> import fastseg.dask
    >>> organs = np.array([[1, 1, 0, 2],
    ...                    [0, 0, 0, 2],
    ...                    [1, 0, 2, 2]], dtype=np.uint8)
    >>> cc, count, values = fastseg.dask.label(da.from_array(organs, chunks=2), connectivity=4)
    >>> cc.compute(scheduler="sync")
    array([[1, 1, 0, 2],
           [0, 0, 0, 2],
           [3, 0, 2, 2]], dtype=uint8)
    >>> dask.compute(count, values, scheduler="sync")
    (3, array([0, 1, 2, 1], dtype=uint8))
    """
    array = check_labels(darr, "darr")
    # The connectivity and background checks of fastseg.label, and its messages.
    fastseg.label(
        np.zeros((1,) * array.ndim, array.dtype), connectivity=connectivity, background=background
    )
    kind = AS_3D[resolve_connectivity(connectivity, array.ndim)]
    keep = array.size <= KEEP_RUNS_VOXELS if keep_runs is None else bool(keep_runs)
    dtype = fit_dtype(max(array.size, 1)) if out_dtype is None else np.dtype(out_dtype)
    if dtype.kind not in "iu":
        raise TypeError(f"out_dtype must be an integer dtype, got {dtype}")
    fit = out_dtype is None

    volume = lifted(array)
    grid = volume.numblocks
    options = {"kind": kind, "background": int(background), "dtype": str(dtype)}
    stride = int(np.prod([max(sizes) for sizes in volume.chunks])) + 1
    reach = {6: 0, 18: 1, 26: 2}[kind]
    starts = corners(volume)
    sides: dict[tuple[int, ...], Any] = {}
    summaries: dict[tuple[int, ...], Any] = {}
    kept: dict[tuple[int, ...], Any] = {}

    def near(index: tuple[int, ...], axis: int) -> list[Any]:
        """The keys of the sides and summary of block ``index`` and, where contacts reach
        diagonally across a boundary normal to ``axis``, of the next blocks along it
        (a flat :data:`Near`)."""
        first_axis, second_axis = (a for a in range(3) if a != axis)
        found: list[Any] = [None] * 8
        for r, s in ((0, 0), (1, 0), (0, 1), (1, 1)):
            other = list(index)
            other[first_axis] += r
            other[second_axis] += s
            if (
                r + s <= reach
                and other[first_axis] < grid[first_axis]
                and other[second_axis] < grid[second_axis]
            ):
                at = tuple(other)
                found[2 * (r + 2 * s)] = sides[at]
                found[2 * (r + 2 * s) + 1] = summaries[at]
        return found

    # Slab by slab along the first axis: the blocks of slab s, then the boundaries of slab
    # s - 1 (with their neighbours in slab s), gathered into that slab's pairs. The
    # blocks of slab s are read only once the pairs of slab s - 2 are found (bind), so
    # the layers waiting for their neighbours are those of about three slabs, whatever
    # the number of slabs or the scheduler.
    pairs: list[Any] = []
    done: list[Delayed] = []  # per slab: its pairs, once found
    previous: Delayed | None = None
    for slab in range(grid[0] + 1):
        inputs: list[Any] = [] if previous is None else [previous]
        if slab < grid[0]:
            blocks = volume.blocks[slab]
            if slab >= 2:
                blocks = bind(blocks, done[slab - 2])
            inputs.append(blocks)
        tasks = Tasks(*inputs, what="label", slab=slab, **options)
        for rest in np.ndindex(*grid[1:]) if slab < grid[0] else ():
            index = (slab, *rest)
            offset = int(np.ravel_multi_index(index, grid)) * stride
            read = (blocks.name, 0, *rest)
            task = (
                _label_block, read, kind, int(background), starts[index], volume.shape, offset,
                keep,
            )  # fmt: skip
            labelled = tasks.add("block", index, task)
            summaries[index] = tasks.add("summary", index, (operator.getitem, labelled, 0))
            sides[index] = tasks.add("sides", index, (operator.getitem, labelled, 1))
            if keep:
                kept[index] = tasks.add("runs", index, (operator.getitem, labelled, 2))
        if slab >= 1:
            faces = []
            for axis in range(3):
                for rest in np.ndindex(*grid[1:]):
                    index = (slab - 1, *rest)
                    if index[axis] + 1 < grid[axis]:
                        after = tuple(i + (a == axis) for a, i in enumerate(index))
                        face = (_face, axis, reach, *near(index, axis), *near(after, axis))
                        faces.append(tasks.add("face", (axis, *index), face))
            pairs.append(tasks.add("pairs", (slab - 1,), (_gathered, faces)))
        anchor = pairs[-1] if slab >= 1 else next(iter(summaries.values()))
        previous = tasks.delayed(anchor)
        if slab >= 1:
            done.append(previous)

    assert previous is not None  # every array has at least one block along each axis
    tasks = Tasks(previous, what="label", **options)
    resolved = tasks.add(
        "resolve",
        (),
        (_resolve, list(summaries.values()), pairs, stride, dtype, array.dtype, int(background)),
    )
    count_key = tasks.add("count", (), (operator.getitem, resolved, 1))
    values_key = tasks.add("values", (), (operator.getitem, resolved, 2))
    joined = tasks.delayed(resolved)

    if keep:
        numbering = Tasks(joined, what="label", kept=True, dtype=str(dtype))
    else:
        # The second pass reads its own copy of the input, which waits for the join.
        again = bind(volume, joined)
        numbering = Tasks(again, joined, what="label", kind=kind, background=int(background))
    for index in np.ndindex(*grid):
        table = (
            operator.getitem,
            (operator.getitem, joined.key, 0),
            int(np.ravel_multi_index(index, grid)),
        )
        number: tuple[Any, ...]
        if keep:
            number = (_paint_block, kept[index], table, str(dtype), fit)
        else:
            read = (again.name, *index)
            number = (_number_block, read, kind, int(background), table, str(dtype), fit)
        numbering.add("labels", index, number)
    labels = numbering.array("labels", volume, dtype)[(0,) * (3 - array.ndim)]
    count, values = tasks.delayed(count_key), tasks.delayed(values_key)
    return DaskComponents(labels, count, values)

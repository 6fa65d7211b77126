"""Connected-component labeling of label maps (binary or multilabel), 1-D to 3-D.

Thin wrapper over :mod:`fastseg._kernels.components`: validates input, views the array
in the order it lies in memory (Fortran-ordered volumes are labelled transposed, without
a copy), picks the union-find index width and output dtype, and returns typed results.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from fastseg._arrays import LabelArray, as_label_array
from fastseg._connectivity import AS_3D, resolve_connectivity
from fastseg._jit import current_threads, run_tasks, thread_limit
from fastseg._pages import MIN_BYTES, Scratch
from fastseg._tensors import accepts_tensors
from fastseg.dtypes import check_dtype_holds, fit_dtype
from fastseg.relabel import dense_ids, id_table_size

__all__ = ["Components", "component_values", "each", "label"]

Connectivity = Literal[1, 2, 3, 4, 6, 8, 18, 26]

# Below this many rows per thread, labeling in one slab is faster than waking threads.
_MIN_ROWS_PER_SLAB = 64


class Components(NamedTuple):
    """Result of :func:`label`; unpacks as ``cc, count, values = fastseg.label(x)``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastseg
    >>> result = fastseg.label(np.array([3, 3, 0, 3, 5], dtype=np.uint8))
    >>> result.count, result.values.tolist(), result.labels.tolist()
    (3, [0, 3, 3, 5], [1, 1, 0, 2, 3])
    """

    labels: npt.NDArray[np.unsignedinteger[Any]]
    """Component map: 0 for background, components numbered 1..count."""
    count: int  # type: ignore[assignment]  # the field shadows tuple.count on purpose
    """Number of components."""
    values: npt.NDArray[Any]
    """``values[k]``: the input value component ``k`` came from; ``values[0]`` is the background."""


@accepts_tensors
def label(
    labels: npt.NDArray[Any],
    *,
    connectivity: Connectivity | None = None,
    background: int = 0,
    out_dtype: npt.DTypeLike | None = None,
    threads: int | None = None,
) -> Components:
    """Label the connected components of a binary or multilabel array.

    Two voxels belong to one component when they are neighbours under ``connectivity``
    and hold the same value; every value except ``background`` is foreground. A bool
    array is a binary image.

    Components are numbered 1, 2, ... in the order of their first voxel in row-major
    (C) order of the array's indices, the numbering scipy.ndimage.label and
    skimage.measure.label use. The numbering does not depend on the memory order of the
    input or on the number of threads.

    Parameters
    ----------
    labels : numpy.ndarray
        1-D, 2-D or 3-D integer or bool array, C or F order; values must be non-negative.
    connectivity : int, optional
        Which neighbours touch: 4 or 8 in 2-D, 6, 18 or 26 in 3-D (2 in 1-D); or, as in
        scipy and skimage, the number of hops 1..ndim. Default: full connectivity
        (8 in 2-D, 26 in 3-D), like cc3d and MONAI.
    background : int, optional
        The value that is not labelled (default 0).
    out_dtype : dtype, optional
        Integer dtype of the component map; by default the smallest unsigned type that
        holds ``count``. Too small raises ``ValueError``.
    threads : int, optional
        Threads to use; by default :func:`fastseg.get_threads`. ``1`` runs serially.

    Returns
    -------
    Components
        ``(labels, count, values)``: the component map (same shape and memory order as
        the input), the number of components and the input value of each component.

    Raises
    ------
    TypeError
        For a non-array or float input.
    ValueError
        For negative labels, more than 3 dimensions, an invalid connectivity, a
        background the dtype cannot hold, or an ``out_dtype`` too small for the count.

    Examples
    --------
    >>> import numpy as np
    >>> import fastseg
    >>> organs = np.array([[1, 1, 0, 2],
    ...                    [0, 0, 0, 2],
    ...                    [1, 0, 2, 2]], dtype=np.uint8)
    >>> cc, count, values = fastseg.label(organs, connectivity=4)
    >>> cc
    array([[1, 1, 0, 2],
           [0, 0, 0, 2],
           [3, 0, 2, 2]], dtype=uint8)
    >>> count, values
    (3, array([0, 1, 2, 1], dtype=uint8))
    """
    source = as_label_array(labels, ndims=(1, 2, 3))
    kind = AS_3D[resolve_connectivity(connectivity, source.original.ndim)]
    if isinstance(background, bool) or not isinstance(background, int | np.integer):
        raise TypeError(f"background must be an integer, got {background!r}")
    lowest, highest = (0, 1) if source.dtype.kind == "b" else (0, np.iinfo(source.dtype).max)
    if not lowest <= background <= highest:
        raise ValueError(
            f"background must be a value a {source.dtype} array can hold ({lowest} to "
            f"{highest}), got {background}"
        )
    with thread_limit(threads):
        linked = _link(source, kind, background)
        dtype: np.dtype[Any]
        if out_dtype is None:
            dtype = fit_dtype(linked.count)
        else:
            dtype = np.dtype(out_dtype)
            if dtype.kind not in "iu":
                raise TypeError(f"out_dtype must be an integer dtype, got {dtype}")
            check_dtype_holds(dtype, 0, linked.count, "out_dtype")
        out = _painted(source, linked, linked.numbers, np.empty(linked.view.shape, dtype))
    values_flat = linked.values
    values = (
        values_flat.astype(np.uint8).view(source.dtype)
        if source.dtype.kind == "b"
        else values_flat.astype(source.dtype)
    )
    return Components(out, linked.count, values)


class _Linked(NamedTuple):
    """A volume's runs linked into components, before painting."""

    view: np.ndarray
    """The labels' C-contiguous 3-D view (see ``LabelArray.view_3d``)."""
    transposed: bool
    row_offsets: np.ndarray
    repeats: np.ndarray
    run_start: Scratch
    parent: Scratch
    """Each run's component, numbered by first run in memory order (0: background)."""
    numbers: np.ndarray
    """Memory-order number -> number by first voxel in the caller's row-major order."""
    values: np.ndarray
    """Input value of each component by row-major number (``values[0]``: background),
    in the run value dtype."""
    count: int  # type: ignore[assignment]  # the field shadows tuple.count on purpose
    chunks: int


def _link(source: LabelArray, kind: int, background: int, row_major: bool = True) -> _Linked:
    """Runs of ``source`` linked into components under connectivity ``kind`` (of
    ``AS_3D``) and numbered, on the current thread count: by first voxel in the caller's
    row-major order, or with ``row_major=False`` by first run in memory order (the same
    for C-ordered inputs; for Fortran-ordered ones it saves a pass over the runs)."""
    from fastseg._kernels import components as components_kernels

    view, transposed = source.view_3d()
    _, n1, n2 = view.shape
    chunks, row_offsets, repeats, start_scratch, run_value = _read_runs(view)
    n_runs = run_value.size
    # The run starts and the runs' components stay until painting, which hands
    # them back as it passes them (see _paint_in_pieces).
    parent_scratch = Scratch(n_runs, components_kernels.parent_dtype(n_runs))
    run_start, parent = start_scratch.array, parent_scratch.array
    if n_runs:
        components_kernels.link_runs(
            n1, n2, np.uint64(background), row_offsets, repeats, run_start, run_value, parent,
            kind, chunks,
        )  # fmt: skip
        values_flat = components_kernels.number_components(parent, run_value)
    else:
        values_flat = np.zeros(1, run_value.dtype)
    count = values_flat.size - 1
    del run_value
    numbers = np.arange(count + 1, dtype=np.int64)
    if row_major and transposed and count > 1:
        # One table of first voxels per chunk: parallel only while the tables stay
        # small next to the run arrays.
        numbers = components_kernels.renumber_row_major(
            view.shape, row_offsets, run_start, parent, repeats, count,
            chunks if count * chunks <= n_runs else 1,
        )  # fmt: skip
        values_flat[numbers] = values_flat.copy()
    values_flat[0] = background
    return _Linked(
        view, transposed, row_offsets, repeats, start_scratch, parent_scratch, numbers,
        values_flat, count, chunks,
    )  # fmt: skip


def _read_runs(view: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, Scratch, np.ndarray]:
    """The runs of a 3-D view: ``(chunks, row_offsets, repeats, run starts, run values)``,
    with the number of row chunks the passes use on the current thread count."""
    from fastseg._kernels import components as components_kernels

    n0, n1, n2 = view.shape
    rows = n0 * n1
    chunks = max(1, min(current_threads(), rows // _MIN_ROWS_PER_SLAB))
    if view.size:
        row_offsets, repeats = components_kernels.count_runs(view, chunks)
    else:
        row_offsets, repeats = np.zeros(rows + 1, np.int64), np.zeros(rows, np.bool_)
    n_runs = int(row_offsets[-1])
    run_start = Scratch(n_runs, components_kernels.run_start_dtype(n2))
    run_value = np.empty(n_runs, components_kernels.run_value_dtype(view.dtype))
    if n_runs:
        components_kernels.find_runs(view, row_offsets, repeats, run_start.array, run_value, chunks)
    return chunks, row_offsets, repeats, run_start, run_value


def _painted(
    source: LabelArray, linked: _Linked, table: np.ndarray, out_view: np.ndarray
) -> np.ndarray:
    """``table[component]`` (by memory-order number) painted into ``out_view`` (3-D, the
    view's shape), returned in the caller's shape and axes. Hands back the run tables."""
    if out_view.size:
        _paint_in_pieces(
            out_view, linked.row_offsets, linked.repeats, linked.run_start, linked.parent,
            table, linked.chunks,
        )  # fmt: skip
    out = out_view.reshape(linked.view.shape[3 - source.original.ndim :])
    return out.T if linked.transposed else out


def keep_components(
    source: LabelArray,
    connectivity: Connectivity | None,
    in_place: bool,
    choose: Callable[[npt.NDArray[np.int64], npt.NDArray[Any]], npt.NDArray[np.bool_]],
) -> npt.NDArray[Any]:
    """The labels of ``source`` where their connected component (of one value) is kept,
    0 elsewhere: the cleanup operations' shared path.

    ``choose(sizes, values)`` gets the voxel count and the input value of every
    component (numbered by first voxel in row-major order, index 0 the background) and
    returns which to keep. Sizes come from the run tables and the result is painted
    from them, kept components with their value, so the map of component numbers is
    never written.
    """
    kind = AS_3D[resolve_connectivity(connectivity, source.original.ndim)]
    if in_place:
        source.writable_flat("labels")  # a clear error for read-only or copied inputs
    linked = _link(source, kind, 0)
    sizes = np.empty(linked.count + 1, np.int64)
    sizes[linked.numbers] = _sizes_in_memory_order(linked)
    keep = np.asarray(choose(sizes, linked.values), np.bool_)
    keep[0] = False
    # Painted as the int64 bit pattern of the unsigned values (uint64 ids above 2**63
    # included); the kernel stores them at the labels' width.
    kept = np.where(keep, linked.values, 0).astype(np.uint64).view(np.int64)
    out_view = linked.view if in_place else np.empty(linked.view.shape, linked.view.dtype)
    out = _painted(source, linked, kept[linked.numbers], out_view)
    if in_place:
        return source.original
    return out.view(source.dtype.newbyteorder("="))


def label_regions(
    source: LabelArray, kind: int, background: int
) -> tuple[np.ndarray, np.ndarray, npt.NDArray[np.int64]]:
    """The connected regions of ``source`` under connectivity ``kind`` (of ``AS_3D``):
    ``(map, values, sizes)``, the map of region numbers, and the input value and voxel
    count of every region (index 0: ``background``, counted where it occurs).

    Regions are numbered by first run in memory order, not by first voxel in the
    caller's order as :func:`label` numbers them: for callers to whom the numbers are
    only names, this saves renumbering, and the sizes come from the run tables.
    """
    linked = _link(source, kind, background, row_major=False)
    sizes = _sizes_in_memory_order(linked)
    out_view = np.empty(linked.view.shape, fit_dtype(linked.count))
    return _painted(source, linked, linked.numbers, out_view), linked.values, sizes


def _sizes_in_memory_order(linked: _Linked) -> npt.NDArray[np.int64]:
    """Voxels of every component of ``linked`` by memory-order number, background at 0,
    from its run tables (before painting hands them back)."""
    from fastseg._kernels import components as components_kernels

    sizes = np.zeros(linked.count + 1, np.int64)
    if linked.row_offsets[-1]:
        components_kernels.component_sizes(
            linked.row_offsets, linked.run_start.array, linked.parent.array, sizes
        )
    return sizes


# Painting hands the run tables back in pieces of about this many bytes of them.
_PIECE_BYTES = 16 << 20
# Pieces per thread at least: threads that take the next piece when they are free keep
# pace with each other even when other processes take turns on the cores.
_PIECES_PER_THREAD = 4


def _paint_in_pieces(
    out_view: np.ndarray,
    row_offsets: np.ndarray,
    repeats: np.ndarray,
    run_start: Scratch,
    parent: Scratch,
    numbers: np.ndarray,
    chunks: int,
) -> None:
    """Paint the output in pieces of consecutive rows, each thread taking the next piece
    when it is free, and hand back the run tables behind the pieces painted so far: the
    output's pages are touched as the tables' are released, so the peak stays near the
    output's size plus a few pieces of tables."""
    from fastseg._kernels import components as components_kernels

    n_runs = int(row_offsets[-1])
    rows = row_offsets.size - 1
    table_bytes = n_runs * (run_start.array.itemsize + parent.array.itemsize)
    pieces = 1 if chunks == 1 else _PIECES_PER_THREAD * chunks
    if table_bytes >= MIN_BYTES:
        pieces = max(pieces, -(-table_bytes // _PIECE_BYTES))
    pieces = min(pieces, rows)
    bounds = components_kernels.slab_bounds(row_offsets, pieces)
    cuts = bounds.tolist()
    done = [False] * pieces
    painted = 0  # pieces 0 .. painted - 1 are all done
    lock = threading.Lock()

    def paint_piece(t: int) -> None:
        nonlocal painted
        if cuts[t + 1] > cuts[t]:
            components_kernels.paint_piece(
                out_view, row_offsets, run_start.array, parent.array, numbers, repeats,
                bounds, t,
            )  # fmt: skip
        with lock:
            done[t] = True
            reached = painted
            while reached < pieces and done[reached]:
                reached += 1
            if reached > painted:
                painted = reached
                stop = int(row_offsets[cuts[reached]])
                run_start.release_before(stop)
                parent.release_before(stop)

    run_tasks(paint_piece, pieces)


def _caller_box(box: np.ndarray, ndim: int, transposed: bool) -> tuple[slice, ...]:
    """Slices in the caller's axes from a box ``[min0, min1, min2, stop0, stop1, stop2]``
    of the 3-D view."""
    slices = [slice(int(box[a]), int(box[a + 3])) for a in range(3)][3 - ndim :]
    return tuple(reversed(slices)) if transposed else tuple(slices)


@accepts_tensors
def each(
    components: npt.NDArray[Any], *, crop: bool = True
) -> Iterator[tuple[int, npt.NDArray[np.bool_], tuple[slice, ...]]]:
    """Iterate over the components (or instances) of a label map, one mask at a time.

    One pass over the map cuts its rows into runs of equal ids and gathers each id's
    runs and bounding box; each step then paints one id's runs into a new mask of its
    box. Iterating costs about one pass plus the ids' voxels: not one pass per id, nor
    the volume of the boxes (thin, sprawling components such as neurites have boxes
    tens of times their size). The run tables take 16 bytes per run while iterating.

    Parameters
    ----------
    components : numpy.ndarray
        1-D, 2-D or 3-D integer map of ids, 0 for background (e.g. ``label(...).labels``).
    crop : bool, optional
        Yield the mask cropped to the id's bounding box (default); with ``False``, a
        full-size mask (one pass over the map per id).

    Yields
    ------
    id : int
        Each id present, in ascending order.
    mask : numpy.ndarray of bool
        Where ``components == id``, cropped to ``bbox`` unless ``crop=False``. Each
        mask is a new array.
    bbox : tuple of slice
        Half-open bounding box per axis; ``components[bbox]`` is the crop.

    Examples
    --------
    >>> import numpy as np
    >>> import fastseg
    >>> cc = np.array([[1, 1, 0], [0, 0, 2]], dtype=np.uint8)
    >>> for k, mask, bbox in fastseg.each(cc):
    ...     print(k, mask.tolist(), bbox)
    1 [[True, True]] (slice(0, 1, None), slice(0, 2, None))
    2 [[True]] (slice(1, 2, None), slice(2, 3, None))
    """
    source = as_label_array(components, name="components", ndims=(1, 2, 3))
    if source.size == 0:
        return
    dense, old_ids = dense_ids(source)
    _, high = dense.value_range()
    view, transposed = dense.view_3d()

    from fastseg._kernels import components as components_kernels

    n0, n1, _ = view.shape
    _, row_offsets, _, start_scratch, run_value = _read_runs(view)
    run_start = start_scratch.array
    n_runs = run_value.size
    index = np.int32 if max(n_runs, n0 * n1) < 2**31 else np.int64
    order, run_rows = np.empty(n_runs, index), np.empty(n_runs, index)
    bounds = np.zeros(high + 2, np.int64)
    boxes = np.empty((high + 1, 6), np.int64)
    boxes[:, :3] = np.iinfo(np.int64).max
    boxes[:, 3:] = -1
    components_kernels.group_runs(
        row_offsets, run_start, run_value, n1, bounds, np.empty(high + 1, np.int64),
        order, run_rows, boxes.reshape(-1),
    )  # fmt: skip
    del run_value, row_offsets
    ndim = source.original.ndim
    original = source.original
    for k in range(1, high + 1):
        first, last = int(bounds[k]), int(bounds[k + 1])
        if first == last:
            continue
        identity = int(old_ids[k]) if old_ids is not None else k
        bbox = _caller_box(boxes[k], ndim, transposed)
        if not crop:
            yield identity, original == identity, bbox
            continue
        p0, y0, x0, stop0, stop1, stop2 = (int(b) for b in boxes[k])
        mask = np.zeros((stop0 - p0, stop1 - y0, stop2 - x0), np.bool_)
        components_kernels.paint_mask(
            mask.reshape(-1), run_start, order, run_rows, first, last, n1, p0, y0, x0,
            stop1 - y0, stop2 - x0,
        )  # fmt: skip
        # The view's axes are the reverse of a Fortran-ordered map's, with leading axes
        # of size 1 for 1-D and 2-D maps.
        mask = mask.T if transposed else mask
        yield identity, mask.reshape([b.stop - b.start for b in bbox]), bbox


@accepts_tensors
def component_values(components: npt.NDArray[Any], labels: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The value of ``labels`` under each component of ``components``.

    The job of fastremap's ``component_map``: after labeling (with fastseg, cc3d, scipy
    or anything else), find which input value, e.g. which category, each component
    came from, in one pass.

    Parameters
    ----------
    components : numpy.ndarray
        Integer map of component ids, 0 for background.
    labels : numpy.ndarray
        The map the components were computed from; same shape.

    Returns
    -------
    numpy.ndarray
        ``values[k]`` is the value of ``labels`` under component ``k``, in the dtype
        of ``labels``; ``values[0]`` and ids absent from ``components`` are 0. Its
        length is the largest id plus one.

    Raises
    ------
    ValueError
        If the shapes differ, a component covers more than one value of ``labels``
        (it cannot have come from them), or the ids are so sparse that the result would
        be many times longer than the number of components (the largest id at least four
        times the number of distinct ids, and at least 16384): renumber them first.

    Examples
    --------
    >>> import numpy as np
    >>> import fastseg
    >>> organs = np.array([3, 3, 0, 5, 3], dtype=np.uint8)
    >>> cc = np.array([1, 1, 0, 2, 3], dtype=np.uint8)
    >>> fastseg.component_values(cc, organs)
    array([0, 3, 5, 3], dtype=uint8)
    """
    ids = as_label_array(components, name="components")
    values = as_label_array(labels, name="labels")
    if ids.shape != values.shape:
        raise ValueError(
            f"components and labels must have the same shape, got {ids.shape} and {values.shape}"
        )
    if values.order != ids.order:
        aligned = np.asarray(values.original, order=ids.order)
        values = as_label_array(aligned, name="labels")
    n_ids = id_table_size(ids, count_any=True)
    if n_ids is None:
        _, high = ids.value_range()
        raise ValueError(
            f"component ids reach {high}, far more than there are distinct ids; renumber "
            f"them first (fastseg.renumber) so that the result, one entry per id up to the "
            f"largest, stays small"
        )

    from fastseg._kernels import stats as stats_kernels

    result, _, conflict, first, second = stats_kernels.values_per_id(ids.flat, values.flat, n_ids)
    if conflict >= 0:
        raise ValueError(
            f"component {conflict} covers more than one value of labels ({int(first)} and "
            f"{int(second)}); the components were not computed from these labels"
        )
    if values.dtype.kind == "b":
        return result.astype(np.bool_)
    return result.astype(values.dtype)

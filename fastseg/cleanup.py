"""Post-processing: removing small components, keeping the largest ones, filling holes.

The jobs of MONAI's RemoveSmallObjects / KeepLargestConnectedComponent / FillHoles,
nnU-Net's "remove all but the largest component" and cc3d's ``dust`` / ``largest_k``, on
multilabel maps: one labeling of all labels, whose run tables give every component's size
and are painted into the result (kept components with their value), without a map of
component numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from fastseg import _geometry
from fastseg._arrays import LabelArray, as_label_array
from fastseg._connectivity import AS_3D, resolve_connectivity
from fastseg._tensors import accepts_tensors
from fastseg.components import Components, Connectivity, keep_components, label, label_regions
from fastseg.relabel import dense_ids, remap, unique
from fastseg.stats import contact_table

__all__ = ["dust", "fill_holes", "largest_k"]


def _component_sizes(components: Components) -> npt.NDArray[np.int64]:
    """Voxel count of every component, indexed by component number (0: background)."""
    ids, counts = unique(components.labels, return_counts=True)
    sizes = np.zeros(components.count + 1, np.int64)
    sizes[ids.astype(np.int64)] = counts
    return sizes


def _apply_keep(
    source: LabelArray, components: Components, keep: npt.NDArray[np.bool_], in_place: bool
) -> npt.NDArray[Any]:
    """The labels where their component is kept, 0 elsewhere (background is never kept)."""
    keep[0] = False
    kept = remap(components.labels, keep.astype(np.uint8)).view(np.bool_)
    labels = source.original
    if in_place:
        source.writable_flat("labels")  # a clear error for read-only or copied inputs
        labels[~kept] = 0
        return labels
    result = np.zeros(source.shape, source.dtype.newbyteorder("="), order=source.order)
    np.copyto(result, labels, where=kept)
    return result


@accepts_tensors
def dust(
    labels: npt.NDArray[Any],
    min_size: float,
    *,
    connectivity: Connectivity | None = None,
    spacing: npt.ArrayLike | None = None,
    in_place: bool = False,
) -> npt.NDArray[Any]:
    """Remove connected components smaller than ``min_size``.

    Each label's components are judged on their own (a component is a connected region
    of one value), so neighbouring organs do not shield each other's specks.

    Parameters
    ----------
    labels : numpy.ndarray
        1-D to 3-D label map.
    min_size : float
        Smallest size kept: voxels, or physical volume (e.g. mm³) with ``spacing``.
    connectivity : int, optional
        As in :func:`fastseg.label` (default: full).
    spacing : sequence of float, optional
        Voxel size per axis; ``min_size`` is then a volume.
    in_place : bool, optional
        Zero the removed voxels in ``labels`` itself.

    Returns
    -------
    numpy.ndarray
        Same shape, dtype and memory order as ``labels``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastseg
    >>> fastseg.dust(np.array([1, 1, 1, 0, 2, 0, 1]), 2)
    array([1, 1, 1, 0, 0, 0, 0])
    """
    if isinstance(min_size, bool) or not isinstance(min_size, int | float | np.number):
        raise TypeError(f"min_size must be a number, got {min_size!r}")
    if not min_size >= 0:
        raise ValueError(f"min_size must be non-negative, got {min_size}")
    source = as_label_array(labels, ndims=(1, 2, 3))
    voxel = _geometry.resolve(source.original.ndim, spacing, None).voxel_volume
    return keep_components(
        source, connectivity, in_place, lambda sizes, _: sizes * voxel >= min_size
    )


@accepts_tensors
def largest_k(
    labels: npt.NDArray[Any],
    k: int = 1,
    *,
    connectivity: Connectivity | None = None,
    per_label: bool = True,
    in_place: bool = False,
) -> npt.NDArray[Any]:
    """Keep the ``k`` largest connected components of every label (or of the foreground).

    nnU-Net's "remove all but the largest component" is ``largest_k(seg, 1)``. Ties are
    broken by component number (first voxel in row-major order), so results are
    deterministic.

    Parameters
    ----------
    labels : numpy.ndarray
        1-D to 3-D label map.
    k : int, optional
        Components kept per label (default 1).
    connectivity : int, optional
        As in :func:`fastseg.label` (default: full).
    per_label : bool, optional
        Keep ``k`` components of every label (default), or the ``k`` largest regions of
        the foreground as a whole (touching labels then count as one region).
    in_place : bool, optional
        Zero the removed voxels in ``labels`` itself.

    Returns
    -------
    numpy.ndarray
        Same shape, dtype and memory order as ``labels``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastseg
    >>> fastseg.largest_k(np.array([1, 1, 0, 1, 0, 2, 0, 2, 2]), 1)
    array([1, 1, 0, 0, 0, 0, 0, 2, 2])
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    source = as_label_array(labels, ndims=(1, 2, 3))
    if per_label:
        return keep_components(
            source, connectivity, in_place, lambda sizes, values: _ranks(sizes, values) < k
        )
    foreground = (source.flat != 0).reshape(source.shape, order=source.order)
    components = label(foreground, connectivity=connectivity)
    ranks = _ranks(_component_sizes(components), components.values)
    return _apply_keep(source, components, ranks < k, in_place)


def _ranks(sizes: npt.NDArray[np.int64], values: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """Rank of every component among those of its value: larger first, then by
    component number (0 for the largest)."""
    group = values.astype(np.uint64)
    order = np.lexsort((np.arange(sizes.size), -sizes, group))
    rank = np.empty(sizes.size, np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(group[order])) + 1]
    position = np.arange(order.size) - np.repeat(starts, np.diff(np.r_[starts, order.size]))
    rank[order] = position
    return rank


@accepts_tensors
def fill_holes(
    labels: npt.NDArray[Any],
    *,
    per_label: bool = True,
    connectivity: Connectivity | None = None,
    in_place: bool = False,
) -> npt.NDArray[Any]:
    """Fill the background enclosed by a label with that label.

    A hole of label ``L`` is a connected region of voxels other than ``L`` that does not
    touch the border of the volume (as ``scipy.ndimage.binary_fill_holes`` on
    ``labels == L``). Only its background (0) voxels are filled: other labels inside the
    hole (a tumour inside an organ) are kept, and the gap around them is filled. A
    background voxel inside holes of several labels (one label nested inside another's
    hole) takes the label whose hole is smallest, the innermost one.

    Every region is labeled once and the holes of all labels are then found on the
    graph of touching regions, so the cost does not grow with a pass per label.

    Parameters
    ----------
    labels : numpy.ndarray
        1-D to 3-D label map, 0 for background.
    per_label : bool, optional
        Fill the holes of every label's own mask (default). With ``False`` only the
        holes of the foreground as a whole are filled (background not connected to the
        border at all), each with the label it shares the most faces with (ties: the
        lower value).
    connectivity : int, optional
        Connectivity of the holes, as in :func:`fastseg.label`. Default: neighbours
        across faces (4 in 2-D, 6 in 3-D), so a label connected only through an edge or a
        corner still encloses, as ``scipy.ndimage.binary_fill_holes`` does.
    in_place : bool, optional
        Fill the holes in ``labels`` itself.

    Returns
    -------
    numpy.ndarray
        Same shape, dtype and memory order as ``labels``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastseg
    >>> ring = np.array([[1, 1, 1, 0],
    ...                  [1, 0, 1, 0],
    ...                  [1, 1, 1, 0]], dtype=np.uint8)
    >>> fastseg.fill_holes(ring)
    array([[1, 1, 1, 0],
           [1, 1, 1, 0],
           [1, 1, 1, 0]], dtype=uint8)
    """
    source = as_label_array(labels, ndims=(1, 2, 3))
    ndim = source.original.ndim
    hole_connectivity = resolve_connectivity(1 if connectivity is None else connectivity, ndim)
    filled = _filled(source, hole_connectivity, per_label) if source.size else None
    if filled is None:
        if in_place:
            source.writable_flat("labels")
            return labels
        return source.original.astype(source.dtype.newbyteorder("="), order=source.order)
    result: npt.NDArray[Any] = filled.astype(source.flat.dtype, copy=False).view(
        source.dtype.newbyteorder("=")
    )
    if in_place:
        source.writable_flat("labels")
        np.copyto(labels, result)
        return labels
    return result


def _filled(source: LabelArray, hole_connectivity: int, per_label: bool) -> npt.NDArray[Any] | None:
    """The unsigned label map with its holes filled, or ``None`` when there are none."""
    low, _ = source.value_range()
    if low != 0:
        return None  # no background at all
    # Small ids keep the per-region tables small and leave room for an unused value.
    dense, old_ids = dense_ids(source)
    plain = dense.flat.reshape(dense.shape, order=dense.order)
    _, high = dense.value_range()
    if high == np.iinfo(plain.dtype).max:
        plain = plain.astype(np.uint64 if plain.dtype.itemsize >= 4 else np.uint32)
    # A value absent from the map as the labeling "background" makes every voxel part of
    # a region, background regions included.
    regions, values, sizes = label_regions(
        as_label_array(plain), AS_3D[hole_connectivity], int(high) + 1
    )
    region_value = values.astype(np.uint64)
    region_value[0] = high + 1  # region 0 does not occur
    is_background = region_value == 0
    on_border = np.zeros(region_value.size, np.bool_)
    on_border[_border_regions(regions)] = True
    hole = is_background & ~on_border
    if not hole.any():
        return None
    ones = (1.0,) * plain.ndim
    low_ids, high_ids, areas = contact_table(
        as_label_array(regions), AS_3D[hole_connectivity], ones
    )
    low_ids, high_ids = low_ids.astype(np.int64), high_ids.astype(np.int64)
    table = region_value.copy()
    if per_label:
        _fill_enclosed(table, region_value, sizes, is_background, on_border, low_ids, high_ids)
    else:
        _fill_by_contact(table, region_value, hole, low_ids, high_ids, areas)
    table[0] = 0  # region 0 does not occur
    if old_ids is not None:
        table = old_ids[table]
    return remap(regions, table.astype(source.flat.dtype))


def _border_regions(regions: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """Numbers of the regions with a voxel on the border of the volume."""
    faces = []
    for axis in range(regions.ndim):
        for end in (0, -1):
            face: list[slice | int] = [slice(None)] * regions.ndim
            face[axis] = end
            faces.append(np.unique(regions[tuple(face)]))
    return np.unique(np.concatenate(faces)).astype(np.int64)


def _fill_enclosed(
    table: npt.NDArray[np.uint64],
    region_value: npt.NDArray[np.uint64],
    sizes: npt.NDArray[np.int64],
    is_background: npt.NDArray[np.bool_],
    on_border: npt.NDArray[np.bool_],
    low_ids: npt.NDArray[Any],
    high_ids: npt.NDArray[Any],
) -> None:
    """Set ``table`` of background regions in a hole of some label to that label."""
    n_regions = region_value.size
    sources = np.concatenate([low_ids, high_ids])
    targets = np.concatenate([high_ids, low_ids])
    order = np.argsort(sources, kind="stable")
    neighbour = targets[order]
    first_edge = np.zeros(n_regions + 1, np.int64)
    np.cumsum(np.bincount(sources, minlength=n_regions), out=first_edge[1:])
    # Only a label next to a region holding background away from the border can enclose
    # it; a label inside another's hole may enclose without touching background itself,
    # so every non-background label is a candidate and the kernel prunes cheaply.
    candidate_nodes = np.flatnonzero(region_value != 0)
    candidate_nodes = candidate_nodes[candidate_nodes != 0]  # region 0 does not occur
    by_value = candidate_nodes[np.argsort(region_value[candidate_nodes], kind="stable")]
    candidates, first_node = np.unique(region_value[by_value], return_index=True)
    first_node = np.r_[first_node, by_value.size].astype(np.int64)

    from fastseg._kernels import cleanup as cleanup_kernels

    choice = np.full(n_regions, -1, np.int64)
    cleanup_kernels.enclosing_labels(
        region_value,
        sizes,
        is_background,
        on_border,
        first_edge,
        neighbour,
        candidates,
        first_node,
        by_value,
        choice,
        np.full(n_regions, np.iinfo(np.int64).max, np.int64),
        np.zeros(n_regions, np.int64),
        np.empty(n_regions, np.int64),
    )
    chosen = choice >= 0
    table[chosen] = candidates[choice[chosen]]


def _fill_by_contact(
    table: npt.NDArray[np.uint64],
    region_value: npt.NDArray[np.uint64],
    hole: npt.NDArray[np.bool_],
    low_ids: npt.NDArray[Any],
    high_ids: npt.NDArray[Any],
    areas: npt.NDArray[np.float64],
) -> None:
    """Set ``table`` of every hole region to the label it shares the most faces with."""
    pairs = np.concatenate([np.stack([low_ids, high_ids]), np.stack([high_ids, low_ids])], 1)
    shared = np.concatenate([areas, areas])
    into_hole = hole[pairs[0]] & (region_value[pairs[1]] != 0)
    holes, values, shared = (
        pairs[0][into_hole],
        region_value[pairs[1][into_hole]],
        shared[into_hole],
    )
    # A label may touch the hole through several of its regions: the faces are the label's,
    # summed over them.
    order = np.lexsort((values, holes))
    holes, values, shared = holes[order], values[order], shared[order]
    if holes.size == 0:
        return
    starts = np.flatnonzero(np.r_[True, (holes[1:] != holes[:-1]) | (values[1:] != values[:-1])])
    holes, values, shared = holes[starts], values[starts], np.add.reduceat(shared, starts)
    # Per hole: the largest shared area first, then the lower label value.
    order = np.lexsort((values, -shared, holes))
    holes, values = holes[order], values[order]
    first = np.r_[True, holes[1:] != holes[:-1]]
    table[holes[first]] = values[first]

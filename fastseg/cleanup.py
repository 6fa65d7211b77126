"""Post-processing: removing small components and keeping the largest ones.

The jobs of MONAI's RemoveSmallObjects / KeepLargestConnectedComponent, nnU-Net's
"remove all but the largest component" and cc3d's ``dust`` / ``largest_k``, on
multilabel maps: one labeling pass for all labels, then one lookup pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from fastseg import _geometry
from fastseg._arrays import LabelArray, as_label_array
from fastseg.components import Components, Connectivity, label
from fastseg.relabel import remap, unique

__all__ = ["dust", "largest_k"]


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
    components = label(labels, connectivity=connectivity)
    keep = _component_sizes(components) * voxel >= min_size
    return _apply_keep(source, components, keep, in_place)


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
    grouping = labels if per_label else (source.flat != 0).reshape(source.shape, order=source.order)
    components = label(grouping, connectivity=connectivity)
    sizes = _component_sizes(components)
    group = components.values.astype(np.int64)
    # Within each group (label value), rank components by size, larger first, then by
    # component number.
    order = np.lexsort((np.arange(sizes.size), -sizes, group))
    rank = np.empty(sizes.size, np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(group[order])) + 1]
    position = np.arange(order.size) - np.repeat(starts, np.diff(np.r_[starts, order.size]))
    rank[order] = position
    return _apply_keep(source, components, rank < k, in_place)

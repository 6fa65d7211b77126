"""Per-instance statistics of a chunked label map: :func:`fastseg.stats` block by block.

Every block is measured on its own into a partial table; the partial tables are merged
in a tree of small tasks and the merged sums become one :class:`fastseg.InstanceStats`
through the same table builder as :func:`fastseg.stats`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import numpy.typing as npt
from dask.base import compute

from fastseg import _geometry
from fastseg._arrays import as_label_array
from fastseg._jit import thread_limit
from fastseg._tables import (
    HIGHEST,
    LOWEST,
    SQUARES,
    TOTAL,
    IdSums,
    image_array,
    instance_columns,
    requested_ids,
)
from fastseg.dask._graph import Tasks, check_labels, compact, corners, lifted
from fastseg.relabel import dense_ids
from fastseg.stats import InstanceStats

__all__ = ["stats"]

# Partial statistics tables are merged this many at a time (a tree of merge tasks).
_MERGE_FAN_IN = 16


@dataclass(frozen=True)
class _Partial:
    """Statistics of the ids of some blocks, to be merged with those of other blocks."""

    ids: np.ndarray
    count: np.ndarray
    sums: np.ndarray
    """``(n, 3)`` sum of the voxels' indices per axis (exact, int64)."""
    lows: np.ndarray
    stops: np.ndarray
    intensity: np.ndarray
    """``(n, 4)``: sum, squared deviations from the mean, min and max (the columns of
    :attr:`fastseg._tables.IdSums.intensity`)."""
    faces: np.ndarray
    """``(n, 3)`` exposed faces normal to each axis, the block's own border included."""
    layers: tuple[tuple[np.ndarray, np.ndarray], ...] = ()
    """The block's first and last layer along each axis (for surfaces; merges drop them)."""


def _measure_block(
    labels: np.ndarray, image: np.ndarray | None, corner: tuple[int, int, int], surface: bool
) -> _Partial:
    from fastseg._kernels import stats as stats_kernels

    with thread_limit(1):
        dense, old_ids = dense_ids(as_label_array(compact(labels)))
        n_ids = dense.value_range()[1] + 1
        view, transposed = dense.view_3d()
        image_view = np.zeros((1, 1, 1)) if image is None else image_array(image, dense, None)
        if dense.size:
            ints, floats = stats_kernels.measure(
                view, image_view, image is not None, surface, n_ids, 1
            )
        else:
            ints = np.zeros((n_ids, stats_kernels.N_INT), np.int64)
            floats = np.zeros((n_ids, stats_kernels.N_FLOAT))
        counts = ints[:, stats_kernels.COUNT]
        squares = np.zeros(n_ids)
        if image is not None and dense.size:
            with np.errstate(invalid="ignore", divide="ignore"):
                means = np.nan_to_num(floats[:, stats_kernels.TOTAL] / counts)
            squares = stats_kernels.centered_squares(view, image_view, means, 1)
    present = np.flatnonzero(counts[1:]) + 1
    axes = [2 - axis if transposed else axis for axis in range(3)]
    rows = ints[present]
    count = counts[present]
    start = np.array(corner, np.int64)
    return _Partial(
        ids=present.astype(np.uint64) if old_ids is None else old_ids[present],
        count=count,
        sums=rows[:, [stats_kernels.SUM0 + a for a in axes]] + count[:, None] * start,
        lows=rows[:, [stats_kernels.MIN0 + a for a in axes]] + start,
        stops=rows[:, [stats_kernels.STOP0 + a for a in axes]] + start,
        intensity=np.column_stack(
            [
                floats[present, stats_kernels.TOTAL],
                squares[present],
                floats[present, stats_kernels.LOWEST],
                floats[present, stats_kernels.HIGHEST],
            ]
        ),
        faces=rows[:, [stats_kernels.FACES0 + a for a in axes]],
        layers=tuple((np.take(labels, 0, axis), np.take(labels, -1, axis)) for axis in range(3))
        if surface and labels.size
        else (),
    )


def _shared_faces(before: _Partial, after: _Partial, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Ids facing themselves across the boundary between two blocks along ``axis``, and
    in how many places: each block counted those faces as exposed (its own border)."""
    if not before.layers or not after.layers:  # empty blocks
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    last, first = before.layers[axis][1], after.layers[axis][0]
    same = last[(last == first) & (last != 0)]
    ids, counts = np.unique(same, return_counts=True)
    return ids.astype(np.uint64), counts.astype(np.int64)


def _merge(parts: list[_Partial]) -> _Partial:
    """One table from several: sums add up, boxes widen, and the squared deviations
    combine through each part's distance from the merged mean (Chan et al.), which
    keeps the precision of a two-pass variance in one pass over the data."""
    ids, inverse = np.unique(np.concatenate([p.ids for p in parts]), return_inverse=True)
    n = ids.size

    def gather(name: str) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts])

    counts = gather("count")
    count = np.zeros(n, np.int64)
    np.add.at(count, inverse, counts)
    sums = np.zeros((n, 3), np.int64)
    np.add.at(sums, inverse, gather("sums"))
    lows = np.full((n, 3), np.iinfo(np.int64).max)
    np.minimum.at(lows, inverse, gather("lows"))
    stops = np.full((n, 3), -1, np.int64)
    np.maximum.at(stops, inverse, gather("stops"))
    parts_intensity = gather("intensity")
    intensity = np.zeros((n, 4))
    intensity[:, LOWEST] = np.inf
    intensity[:, HIGHEST] = -np.inf
    np.add.at(intensity[:, TOTAL], inverse, parts_intensity[:, TOTAL])
    np.minimum.at(intensity[:, LOWEST], inverse, parts_intensity[:, LOWEST])
    np.maximum.at(intensity[:, HIGHEST], inverse, parts_intensity[:, HIGHEST])
    with np.errstate(invalid="ignore"):
        shift = parts_intensity[:, TOTAL] / counts - (intensity[:, TOTAL] / count)[inverse]
        spread = parts_intensity[:, SQUARES] + counts * shift * shift
    np.add.at(intensity[:, SQUARES], inverse, spread)
    faces = np.zeros((n, 3), np.int64)
    np.add.at(faces, inverse, gather("faces"))
    return _Partial(ids, count, sums, lows, stops, intensity, faces)


def _intensity_array(image: object, labels: da.Array) -> da.Array:
    """The intensity image as a dask array chunked like the labels."""
    if not isinstance(image, da.Array | np.ndarray) or image.dtype.kind not in "biuf":
        kind = getattr(image, "dtype", type(image).__name__)
        raise TypeError(f"image must be a dask or numpy array of numbers, got {kind}")
    if image.shape != labels.shape:
        raise ValueError(
            f"image and labels must have the same shape, got image {image.shape} and "
            f"labels {labels.shape}"
        )
    if isinstance(image, np.ndarray):
        return da.from_array(image, chunks=labels.chunks)
    return image.rechunk(labels.chunks)


def stats(
    darr: da.Array,
    image: da.Array | npt.NDArray[Any] | None = None,
    *,
    spacing: npt.ArrayLike | None = None,
    affine: npt.ArrayLike | None = None,
    ids: Iterable[int] | None = None,
    surface: bool = False,
) -> InstanceStats:
    """Measure every instance of a chunked label map: :func:`fastseg.stats` block by block.

    Every block is measured on its own (counts, sums of voxel indices, boxes, exposed
    faces, and with an image the sum, minimum, maximum and squared deviations from the
    block's mean); the partial tables are merged in a tree of small tasks. A block counts
    the faces on its own border as exposed; where the voxels on both sides of a
    boundary between blocks hold the same id, a task comparing the two layers takes
    those faces back. Counts, boxes, centroids and surfaces equal :func:`fastseg.stats`
    exactly (integer sums); means, sums and standard deviations agree to rounding
    (float sums are added in another order); minimum and maximum exactly. Computes with
    the current dask scheduler (a ``dask.distributed`` client when one is active).

    Parameters
    ----------
    darr : dask.array.Array
        1-D to 3-D integer map of instance ids, 0 for background.
    image : dask.array.Array or numpy.ndarray, optional
        Intensities of the same shape (rechunked like ``darr`` when needed); adds
        ``mean``, ``std``, ``min``, ``max`` and ``sum``.
    spacing : sequence of float, optional
        Voxel size per axis; by default from ``affine``, else 1.
    affine : array_like, optional
        4 x 4 voxel-to-world matrix; adds ``centroid_world``.
    ids : iterable of int, optional
        Report exactly these ids, in ascending order; absent ids get a count of 0 and
        NaN centroids and intensities. By default every id present.
    surface : bool, optional
        Add ``surface``: the area of the faces between an instance and anything else
        (other ids, background, the volume's border), with anisotropic spacing.

    Returns
    -------
    fastseg.InstanceStats
        One row per id present (or requested), ascending.

    Examples
    --------
    >>> import dask, dask.array as da, numpy as np
    >>> import fastseg.dask
    >>> labels = np.zeros((4, 4, 4), np.uint8)
    >>> labels[1:3, 1:3, 1:3] = 7
    >>> with dask.config.set(scheduler="sync"):
    ...     table = fastseg.dask.stats(da.from_array(labels, chunks=2), spacing=(0.5, 0.5, 2))
    >>> table.ids, table.voxel_count, table.volume
    (array([7], dtype=uint64), array([8]), array([4.]))
    >>> table.slices(7)
    (slice(1, 3, None), slice(1, 3, None), slice(1, 3, None))
    >>> with dask.config.set(scheduler="sync"):
    ...     fastseg.dask.stats(da.from_array(labels, chunks=2), surface=True, ids=[7, 9]).surface
    array([24.,  0.])
    """
    array = check_labels(darr, "darr")
    ndim = array.ndim
    geometry = _geometry.resolve(ndim, spacing, affine)
    wanted = None if ids is None else requested_ids(ids)
    volume = lifted(array)
    inputs = [volume]
    if image is not None:
        inputs.append(lifted(_intensity_array(image, array)))
    tasks = Tasks(*inputs, what="stats", surface=bool(surface))
    blocks = {
        index: tasks.add(
            "block",
            index,
            (
                _measure_block,
                (volume.name, *index),
                (inputs[-1].name, *index) if image is not None else None,
                corner,
                bool(surface),
            ),
        )
        for index, corner in corners(volume).items()
    }
    shared = []
    if surface:
        for axis in range(3):
            for index in blocks:
                if index[axis] + 1 < volume.numblocks[axis]:
                    after = tuple(i + (a == axis) for a, i in enumerate(index))
                    task = (_shared_faces, blocks[index], blocks[after], axis)
                    shared.append((axis, tasks.add("shared", (axis, *index), task)))
    partials = list(blocks.values())
    level = 0
    while len(partials) > 1:
        level += 1
        partials = [
            tasks.add("merge", (level, i), (_merge, partials[i : i + _MERGE_FAN_IN]))
            for i in range(0, len(partials), _MERGE_FAN_IN)
        ]
    merged, seams = compute(tasks.delayed(partials[0]), [tasks.delayed(k) for _, k in shared])
    faces = merged.faces.copy()
    for (axis, _), (seam_ids, seam_counts) in zip(shared, seams, strict=True):
        np.subtract.at(faces[:, axis], np.searchsorted(merged.ids, seam_ids), 2 * seam_counts)

    axes = list(range(3 - ndim, 3))
    sums = IdSums(
        ids=merged.ids,
        count=merged.count,
        index_sums=merged.sums[:, axes],
        starts=merged.lows[:, axes],
        stops=merged.stops[:, axes],
        intensity=merged.intensity if image is not None else None,
        faces=faces[:, axes] if surface else None,
    )
    return InstanceStats(**instance_columns(sums, geometry, wanted))

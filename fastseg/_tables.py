"""Per-instance statistics tables, shared by :func:`fastseg.stats` and
:func:`fastseg.dask.stats`: the intensity image and requested ids as both take them, and
the columns of :class:`fastseg.InstanceStats` built from per-id sums.

Whoever measures (one kernel pass over a whole volume, or per-block partial tables merged
together) reduces the voxels to :class:`IdSums`; :func:`instance_columns` turns those into
the table's columns. A new column is written here once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from fastseg import _geometry
from fastseg._arrays import LabelArray


def image_array(image: object, labels: LabelArray, labels_affine: np.ndarray | None) -> np.ndarray:
    """The intensity image as a native array laid out like the labels' 3-D view."""
    array, affine = _geometry.unpack_image(image, "image")
    if not isinstance(array, np.ndarray):
        raise TypeError(
            f"image must be a numpy array or a nibabel image, got {type(array).__name__}"
        )
    if array.dtype.kind not in "biuf":
        raise TypeError(f"image must hold numbers, got dtype {array.dtype}")
    if array.shape != labels.shape:
        raise ValueError(
            f"image and labels must have the same shape, got image {array.shape} and "
            f"labels {labels.shape}"
        )
    if affine is not None and labels_affine is not None and not np.allclose(affine, labels_affine):
        raise ValueError(
            "image and labels are in different spaces: their affines differ\n"
            f"labels:\n{labels_affine}\nimage:\n{affine}"
        )
    native = array.astype(array.dtype.newbyteorder("="), copy=False)
    if native.dtype.kind == "b":
        native = native.view(np.uint8)
    laid_out = np.asarray(native, order=labels.order)
    if not (laid_out.flags.f_contiguous if labels.order == "F" else laid_out.flags.c_contiguous):
        laid_out = laid_out.copy(order=labels.order)
    view = laid_out.T if labels.order == "F" else laid_out
    return view.reshape((1,) * (3 - view.ndim) + view.shape)


def requested_ids(ids: Iterable[int]) -> npt.NDArray[np.uint64]:
    """The ids a caller asked for, checked, unique and ascending."""
    values = list(np.asarray(ids).ravel()) if isinstance(ids, np.ndarray) else list(ids)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"ids must be integers, got {value!r}")
        if value < 0:
            raise ValueError(f"ids must be non-negative, got {value}")
    return np.unique(np.array([int(v) for v in values], dtype=np.uint64))


# Columns of IdSums.intensity.
TOTAL, SQUARES, LOWEST, HIGHEST = range(4)


@dataclass(frozen=True)
class IdSums:
    """What a statistics table is built from: one row per id present, ids ascending,
    vectors in the caller's axes (``ndim`` columns)."""

    ids: npt.NDArray[np.uint64]
    count: npt.NDArray[np.int64]
    """Voxels per id (all positive)."""
    index_sums: npt.NDArray[np.int64]
    """``(n, ndim)`` sum of the voxels' indices per axis (exact)."""
    starts: npt.NDArray[np.int64]
    """``(n, ndim)`` lowest index per axis."""
    stops: npt.NDArray[np.int64]
    """``(n, ndim)`` highest index per axis plus one."""
    intensity: npt.NDArray[np.float64] | None = None
    """``(n, 4)``: sum, squared deviations from the mean, minimum and maximum of the image
    (columns :data:`TOTAL`, :data:`SQUARES`, :data:`LOWEST`, :data:`HIGHEST`)."""
    faces: npt.NDArray[np.int64] | None = None
    """``(n, ndim)`` exposed faces normal to each axis."""


def intensity_columns(
    count: npt.NDArray[np.int64],
    total: npt.NDArray[np.float64],
    squares: npt.NDArray[np.float64],
    lowest: npt.NDArray[np.float64],
    highest: npt.NDArray[np.float64],
) -> dict[str, npt.NDArray[np.float64]]:
    """The intensity columns of :class:`InstanceStats` from per-id voxel counts, sums,
    squared deviations from the mean, minima and maxima. Absent ids (count 0) get NaN
    statistics and a sum of 0."""
    n = count.astype(np.float64)
    absent = count == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n
        std = np.where(n > 1, np.sqrt(squares / (n - 1)), 0.0)
    std[absent] = np.nan
    return {
        "mean": mean,
        "std": std,
        "min": np.where(absent, np.nan, lowest),
        "max": np.where(absent, np.nan, highest),
        "sum": np.where(absent, 0.0, total),
    }


def instance_columns(
    sums: IdSums,
    geometry: _geometry.Geometry,
    wanted: npt.NDArray[np.uint64] | None = None,
) -> dict[str, Any]:
    """The columns of :class:`fastseg.InstanceStats` (its keyword arguments) from per-id
    sums: one row per id of ``wanted`` (ascending), or per id present when None.

    Requested ids that are absent get a count of 0, an empty box, NaN centroids and
    intensity statistics, and a surface and sum of 0.

    Examples
    --------
    >>> import numpy as np
    >>> from fastseg import InstanceStats, _geometry
    >>> sums = IdSums(ids=np.array([4], np.uint64), count=np.array([2]),
    ...               index_sums=np.array([[0, 3]]), starts=np.array([[0, 1]]),
    ...               stops=np.array([[1, 3]]))
    >>> table = InstanceStats(**instance_columns(sums, _geometry.resolve(2, None, None),
    ...                                          wanted=np.array([4, 5], np.uint64)))
    >>> table.voxel_count.tolist(), table.centroid.tolist()
    ([2, 0], [[0.0, 1.5], [nan, nan]])
    """
    ndim = sums.index_sums.shape[1]
    if wanted is None:
        wanted = sums.ids
        rows = np.arange(1, sums.ids.size + 1)
    else:
        at = np.searchsorted(sums.ids, wanted)
        found = at < sums.ids.size
        found[found] = sums.ids[at[found]] == wanted[found]
        rows = np.where(found, at + 1, 0)

    def column(values: np.ndarray, absent_value: Any) -> np.ndarray:
        """``values`` for the rows of ``wanted``: row 0 stands for every absent id."""
        first = np.full((1, *values.shape[1:]), absent_value, values.dtype)
        return np.concatenate([first, values])[rows]

    count = column(sums.count.astype(np.int64, copy=False), 0)
    absent = count == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        centroid = column(sums.index_sums, 0) / count[:, None]
    centroid[absent] = np.nan
    columns: dict[str, Any] = {
        "ids": wanted,
        "voxel_count": count,
        "volume": count.astype(np.float64) * geometry.voxel_volume,
        "bbox": np.stack([column(sums.starts, 0), column(sums.stops, 0)], -1),
        "centroid": centroid,
        "spacing": geometry.spacing,
    }
    if geometry.affine is not None:
        columns["centroid_world"] = geometry.to_world(centroid)
    if sums.intensity is not None:
        intensity = column(sums.intensity, 0.0)
        columns.update(
            intensity_columns(
                count,
                intensity[:, TOTAL],
                intensity[:, SQUARES],
                intensity[:, LOWEST],
                intensity[:, HIGHEST],
            )
        )
    if sums.faces is not None:
        areas = geometry.face_areas()
        exposed = column(sums.faces, 0)
        columns["surface"] = sum(exposed[:, d] * areas[d] for d in range(ndim)) * np.where(
            absent, 0.0, 1.0
        )
    return columns

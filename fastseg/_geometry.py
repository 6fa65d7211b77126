"""Voxel geometry: spacing and affines, validated once for every function that measures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Geometry:
    """Voxel size per axis and, when known, the voxel-to-world affine (4 x 4)."""

    spacing: tuple[float, ...]
    affine: np.ndarray | None

    @property
    def voxel_volume(self) -> float:
        return float(np.prod(self.spacing))

    def face_areas(self) -> tuple[float, ...]:
        """Area of a voxel face perpendicular to each axis."""
        return tuple(self.voxel_volume / s for s in self.spacing)

    def to_world(self, points: np.ndarray) -> np.ndarray:
        """World coordinates (x, y, z) of voxel coordinates ``points`` (n, ndim)."""
        if self.affine is None:
            raise ValueError("world coordinates need an affine")
        padded = np.zeros((points.shape[0], 4))
        padded[:, : points.shape[1]] = points
        padded[:, 3] = 1.0
        world: np.ndarray = (padded @ self.affine.T)[:, :3]
        return world


def _is_image(obj: object) -> bool:
    return hasattr(obj, "dataobj") and hasattr(obj, "affine")


def unpack_image(obj: object, name: str) -> tuple[object, np.ndarray | None]:
    """The array and affine of a nibabel image, or ``obj`` itself and None.

    Label maps come from ``dataobj`` as stored (integers, and for NIfTI a Fortran-ordered
    array without a copy); intensity images too unless the file scales its values
    (scl_slope/scl_inter), in which case they are read scaled, as float64.
    """
    if not _is_image(obj):
        return obj, None
    image: Any = obj
    if name != "labels" and scaled(image.dataobj):
        array = np.asarray(image.get_fdata(dtype=np.float64))
    else:
        array = np.asanyarray(image.dataobj)
    return array, np.asarray(image.affine, dtype=np.float64)


def scaled(proxy: Any) -> bool:
    """Whether a nibabel ``dataobj`` scales its stored values on read (scl_slope/inter)."""
    slope = getattr(proxy, "slope", 1.0)
    inter = getattr(proxy, "inter", 0.0)
    return not (slope in (None, 1.0) and inter in (None, 0.0))


def resolve(
    ndim: int,
    spacing: npt.ArrayLike | None,
    affine: npt.ArrayLike | None,
) -> Geometry:
    """Check ``spacing`` and ``affine`` and derive one from the other.

    Without a spacing the voxel size is the length of the affine's columns (the voxel
    axes in world units), or 1 along every axis without an affine either.
    """
    matrix: np.ndarray | None = None
    if affine is not None:
        matrix = np.asarray(affine, dtype=np.float64)
        if matrix.shape != (4, 4):
            raise ValueError(f"affine must be a 4 x 4 matrix, got shape {matrix.shape}")
        if not np.isfinite(matrix).all():
            raise ValueError("affine contains NaN or infinite values")
        if ndim > 3:
            raise ValueError(f"an affine describes at most 3 axes, the labels have {ndim}")
    if spacing is not None:
        values = np.atleast_1d(np.asarray(spacing, dtype=np.float64))
        if values.ndim != 1 or values.size != ndim:
            raise ValueError(
                f"spacing must give one voxel size per axis ({ndim}), got {values.tolist()}"
            )
        if not (np.isfinite(values).all() and (values > 0).all()):
            raise ValueError(f"spacing must be positive and finite, got {values.tolist()}")
        return Geometry(tuple(float(v) for v in values), matrix)
    if matrix is not None:
        sizes = np.linalg.norm(matrix[:3, :ndim], axis=0)
        if not (sizes > 0).all():
            raise ValueError("affine has a zero-length voxel axis")
        return Geometry(tuple(float(v) for v in sizes), matrix)
    return Geometry((1.0,) * ndim, None)

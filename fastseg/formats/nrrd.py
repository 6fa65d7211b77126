"""NRRD label volumes (``.nrrd``, and detached ``.nhdr`` headers), through pynrrd.

NRRD states its world space: 3D Slicer and ITK write ``left-posterior-superior`` (LPS),
others ``right-anterior-superior`` (RAS). Reading turns ``space directions`` and
``space origin`` into fastseg's RAS+ affine (as nibabel gives for NIfTI); writing stores
LPS, as Slicer and ITK do, so that a file converted NIfTI -> NRRD -> NIfTI keeps its
world coordinates. A file without a ``space`` is taken as ITK takes it: LPS, with its
``spacings`` on the diagonal. Non-spatial axes (``kinds`` other than ``domain`` or
``space``, e.g. Slicer's ``list`` of layers) have no direction.

Needs pynrrd: ``pip install 'fastseg[slicer]'``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from fastseg._files import atomic_path
from fastseg.formats.registry import optional_module
from fastseg.io import LabelImage, labels_from_stored, stored_array

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
# Flips from each named 3D space to LPS (RAS and LPS differ in the sign of x and y).
_SPACES = {
    "left-posterior-superior": (1.0, 1.0, 1.0),
    "lps": (1.0, 1.0, 1.0),
    "right-anterior-superior": (-1.0, -1.0, 1.0),
    "ras": (-1.0, -1.0, 1.0),
    "left-anterior-superior": (1.0, -1.0, 1.0),
    "las": (1.0, -1.0, 1.0),
    "scanner-xyz": (1.0, 1.0, 1.0),
    "3d-right-handed": (1.0, 1.0, 1.0),
}
STRUCTURAL_FIELDS = frozenset(
    {
        "type", "dimension", "space dimension", "space", "sizes", "space directions", "kinds",
        "endian", "encoding", "min", "max", "oldmin", "old min", "oldmax", "old max",
        "spacings", "thicknesses", "axis mins", "axismins", "axis maxs", "axismaxs",
        "centerings", "labels", "units", "space units", "space origin", "measurement frame",
        "data file", "line skip", "byte skip", "content", "sample units",
    }
)  # fmt: skip


def pynrrd() -> Any:
    """The pynrrd module, or an ImportError naming the extra to install."""
    return optional_module("nrrd", "pynrrd", "slicer", "reading and writing NRRD files")


def read_nrrd(name: str) -> tuple[npt.NDArray[Any], dict[str, Any]]:
    """Voxels (first index fastest, as in the file) and header of an NRRD file."""
    nrrd = pynrrd()
    try:
        data, header = nrrd.read(name, index_order="F")
    except Exception as error:  # pynrrd raises many kinds for damaged files
        raise ValueError(f"{name}: not a readable NRRD file ({error})") from error
    return data, dict(header)


def spatial_axes(header: Mapping[str, Any], ndim: int) -> list[int]:
    """The axes of the file that are in space (not a list, vector, time ...)."""
    kinds = header.get("kinds")
    if kinds is None:
        return list(range(min(ndim, 3)))
    return [i for i, kind in enumerate(kinds) if str(kind).lower() in ("domain", "space")]


def affine_of(header: Mapping[str, Any], ndim: int, name: str) -> npt.NDArray[np.float64]:
    """The RAS+ affine of the spatial axes (in file order) of an NRRD header."""
    axes = spatial_axes(header, ndim)
    lps = np.eye(4)
    space = header.get("space")
    if space is None or "space directions" not in header:
        spacings = header.get("spacings")
        for column, axis in enumerate(axes[:3]):
            if spacings is not None and np.isfinite(spacings[axis]):
                lps[column, column] = float(spacings[axis])
        return RAS_TO_LPS @ lps
    key = str(space).lower()
    if key not in _SPACES:
        raise ValueError(
            f"{name}: space {space!r} is not a 3D anatomical space fastseg reads "
            "(left-posterior-superior, right-anterior-superior, left-anterior-superior)"
        )
    flips = np.diag([*_SPACES[key], 1.0])
    directions = np.asarray(header["space directions"], dtype=np.float64)
    for column, axis in enumerate(axes[:3]):
        lps[:3, column] = directions[axis]
    origin = header.get("space origin")
    if origin is not None:
        lps[:3, 3] = np.asarray(origin, dtype=np.float64)
    if not np.isfinite(lps).all():
        raise ValueError(f"{name}: space directions or origin are not finite numbers")
    return RAS_TO_LPS @ flips @ lps


def geometry_fields(affine: npt.NDArray[np.float64], ndim: int) -> dict[str, Any]:
    """``space``, ``space directions`` and ``space origin`` (LPS) for ``ndim`` spatial
    axes of a RAS+ ``affine``."""
    lps = RAS_TO_LPS @ affine
    return {
        "space": "left-posterior-superior",
        "space directions": lps[:3, :ndim].T.copy(),
        "space origin": lps[:3, 3].copy(),
    }


def read_volume(path: str | os.PathLike[str]) -> LabelImage:
    """Read an NRRD label map (see :func:`fastseg.load`)."""
    name = os.fspath(path)
    data, header = read_nrrd(name)
    array = labels_from_stored(data, None, None, data.dtype, name)
    return LabelImage(array, affine_of(header, array.ndim, name), header, format="nrrd")


def write_volume(
    path: str | os.PathLike[str],
    labels: npt.NDArray[Any],
    high: int,
    affine: npt.NDArray[np.float64],
    like: LabelImage | None,
    schema: Any = None,
) -> None:
    """Write an NRRD label map, gzip-encoded, in LPS space (see :func:`fastseg.save`)."""
    target = os.fspath(path)
    if schema is not None:
        raise ValueError(f"{target}: a plain NRRD has no segments; save as .seg.nrrd")
    data = stored_array(labels, high)
    spatial = min(data.ndim, 3)
    fields: dict[str, Any] = geometry_fields(affine, spatial)
    if data.ndim > 3:
        fields["space directions"] = np.vstack(
            [fields["space directions"], np.full((data.ndim - 3, 3), np.nan)]
        )
    fields["kinds"] = ["domain"] * spatial + ["list"] * (data.ndim - spatial)
    fields["encoding"] = "gzip"
    if like is not None and like.format in ("nrrd", "seg.nrrd") and like.header is not None:
        fields.update(
            {k: v for k, v in like.header.items() if k not in STRUCTURAL_FIELDS and k not in fields}
        )
    write_nrrd(target, data, fields, ".nrrd")


def write_nrrd(target: str, data: npt.NDArray[Any], fields: Mapping[str, Any], suffix: str) -> None:
    """Write through pynrrd atomically; a detached ``.nhdr`` is refused."""
    nrrd = pynrrd()
    if target.lower().endswith(".nhdr"):
        raise ValueError(
            f"{target}: fastseg writes NRRD as one file (.nrrd), not a detached header"
        )
    with atomic_path(target, suffix=suffix) as temporary:
        nrrd.write(temporary, np.asarray(data), dict(fields), index_order="F")

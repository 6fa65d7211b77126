"""MetaImage label volumes (``.mha``, and ``.mhd`` with a separate data file), through
SimpleITK — the format of Grand Challenge submissions.

MetaImage stores ITK's geometry: origin, spacing and a direction matrix in LPS. Reading
turns them into fastseg's RAS+ affine and the voxels into an ``(x, y, z)`` array in
Fortran order (a view of ITK's buffer, no copy); writing does the reverse, compressed,
in the smallest unsigned type (uint64 included).

Needs SimpleITK: ``pip install 'fastseg[metaimage]'``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fastseg.formats.nrrd import RAS_TO_LPS
from fastseg.formats.registry import optional_module
from fastseg.io import LabelImage, labels_from_stored, stored_array


def _sitk() -> Any:
    return optional_module(
        "SimpleITK", "SimpleITK", "metaimage", "reading and writing MetaImage files"
    )


def read_volume(path: str | os.PathLike[str]) -> LabelImage:
    """Read a MetaImage label map (see :func:`fastseg.load`)."""
    sitk = _sitk()
    name = os.fspath(path)
    try:
        reader = sitk.ImageFileReader()
        reader.SetImageIO("MetaImageIO")
        reader.SetFileName(name)
        image = reader.Execute()
    except RuntimeError as error:
        first = str(error).strip().splitlines()[-1] if str(error).strip() else ""
        raise ValueError(f"{name}: not a readable MetaImage file ({first})") from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(f"{name}: a label map has one value per voxel, this file has vectors")
    array = sitk.GetArrayFromImage(image).T
    ndim = image.GetDimension()
    spatial = min(ndim, 3)
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(ndim, ndim)
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    lps = np.eye(4)
    lps[:spatial, :spatial] = direction[:spatial, :spatial] * spacing[:spatial]
    lps[:spatial, 3] = np.asarray(image.GetOrigin(), dtype=np.float64)[:spatial]
    header = {key: image.GetMetaData(key) for key in image.GetMetaDataKeys()}
    array = labels_from_stored(array, None, None, array.dtype, name)
    return LabelImage(array, RAS_TO_LPS @ lps, header, format="metaimage")


def write_volume(
    path: str | os.PathLike[str],
    labels: npt.NDArray[Any],
    high: int,
    affine: npt.NDArray[np.float64],
    like: LabelImage | None,
    schema: Any = None,
) -> None:
    """Write a MetaImage label map, compressed (see :func:`fastseg.save`)."""
    sitk = _sitk()
    target = Path(path)
    if schema is not None:
        raise ValueError(f"{target}: MetaImage has no place for category names")
    if labels.ndim > 3 or labels.ndim == 0:
        raise ValueError(f"{target}: fastseg writes 1D to 3D MetaImage files, got {labels.ndim}D")
    if labels.size == 0:
        raise ValueError(f"{target}: MetaImage cannot hold an empty volume (shape {labels.shape})")
    data = stored_array(labels, high)
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.T))
    ndim = data.ndim
    lps = RAS_TO_LPS @ affine
    columns = lps[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    if not (spacing[:ndim] > 0).all():
        raise ValueError(f"{target}: the affine has a zero-length voxel axis")
    direction = columns / np.where(spacing > 0, spacing, 1.0)
    image.SetSpacing([float(s) for s in spacing[:ndim]])
    image.SetOrigin([float(o) for o in lps[:ndim, 3]])
    image.SetDirection([float(d) for d in direction[:ndim, :ndim].ravel()])
    # A separate data file (.mhd) is written beside its header in a private folder and
    # moved into place data first, so that the header never names a missing file.
    folder = tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        staged = Path(folder) / target.name
        sitk.WriteImage(image, str(staged), True)
        others = sorted(p for p in Path(folder).iterdir() if p != staged)
        for other in others:
            os.replace(other, target.parent / other.name)
        os.replace(staged, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(folder)

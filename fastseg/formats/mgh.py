"""FreeSurfer MGH volumes (``.mgh``, and gzip-compressed ``.mgz``), through nibabel.

MGH stores big-endian uint8, int16, int32 or float32 voxels; label maps are written in
the smallest integer type that holds their ids (uint8, int16, int32 — never float, which
FreeSurfer's own label volumes such as ``aseg.mgz`` do not use either), and ids above
int32's range are refused. Read maps come back in native byte order. A ``.mgz`` is
decompressed in one pass that checks its gzip CRC and length.
"""

from __future__ import annotations

import gzip
import os
import zlib
from typing import Any

import numpy as np
import numpy.typing as npt

from fastseg._files import atomic_path
from fastseg.io import LabelImage, labels_from_stored

_TYPES = (np.uint8, np.int16, np.int32)


def read_volume(path: str | os.PathLike[str]) -> LabelImage:
    """Read an MGH/MGZ label map (see :func:`fastseg.load`)."""
    from nibabel.freesurfer.mghformat import MGHImage

    name = os.fspath(path)
    try:
        if name.lower().endswith(".mgz"):
            with gzip.open(name, "rb") as stream:
                content = stream.read()  # to the end: gzip checks CRC and length
        else:
            with open(name, "rb") as stream:
                content = stream.read()
        image: Any = MGHImage.from_bytes(content)
        array = np.asanyarray(image.dataobj)
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"{name}: not a readable MGH image ({error})") from error
    except Exception as error:  # nibabel raises many kinds for damaged headers
        raise ValueError(f"{name}: not a readable MGH image ({error})") from error
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="), order="K")
    array = labels_from_stored(array, None, None, image.get_data_dtype(), name)
    return LabelImage(array, np.asarray(image.affine, np.float64), image.header, format="mgh")


def write_volume(
    path: str | os.PathLike[str],
    labels: npt.NDArray[Any],
    high: int,
    affine: npt.NDArray[np.float64],
    like: LabelImage | None,
    schema: Any = None,
) -> None:
    """Write an MGH/MGZ label map (see :func:`fastseg.save`)."""
    from nibabel.freesurfer.mghformat import MGHImage

    target = os.fspath(path)
    if schema is not None:
        raise ValueError(
            f"{target}: MGH has no place for category names; save the schema beside it"
        )
    if labels.ndim > 4:
        raise ValueError(f"{target}: MGH holds at most 4 axes, the labels have {labels.ndim}")
    dtype = next((np.dtype(t) for t in _TYPES if high <= np.iinfo(t).max), None)
    if dtype is None:
        raise ValueError(
            f"{target}: label {high} does not fit MGH's largest integer type (int32, up to "
            f"{np.iinfo(np.int32).max}); renumber the ids or save as NIfTI or NRRD"
        )
    data = labels if labels.dtype == dtype else labels.astype(dtype, order="K")
    while data.ndim < 3:
        data = data[..., np.newaxis]
    header = like.header.copy() if like is not None and like.format == "mgh" else None
    build: Any = MGHImage
    image: Any = build(data, affine, header=header)
    image.set_data_dtype(dtype)
    with atomic_path(target, suffix=".mgz" if target.lower().endswith(".mgz") else ".mgh") as tmp:
        image.to_filename(tmp)

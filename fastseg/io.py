"""Reading and writing label maps as NIfTI through nibabel.

Label maps are read as stored (``dataobj``, never ``get_fdata``): integers stay
integers and NIfTI's Fortran order is kept without a copy. Files are written atomically:
to a temporary file in the target folder, renamed into place only when complete.
"""

from __future__ import annotations

import functools
import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fastseg import _geometry
from fastseg._arrays import as_label_array, unsigned_of
from fastseg._files import atomic_path
from fastseg.dtypes import as_labels, fit_dtype

__all__ = ["LabelImage", "load", "save"]


@dataclass(frozen=True)
class LabelImage:
    """A label map with its voxel-to-world affine and the header it came with.

    Examples
    --------
    >>> import numpy as np
    >>> from fastseg import LabelImage
    >>> LabelImage(np.zeros((2, 2, 2), np.uint8), np.diag([0.5, 0.5, 2.0, 1.0])).spacing
    (0.5, 0.5, 2.0)
    """

    labels: npt.NDArray[Any]
    affine: npt.NDArray[np.float64]
    header: Any = None
    """The nibabel header of the file, or None for an image built in memory."""

    @property
    def spacing(self) -> tuple[float, ...]:
        """Voxel size per axis, from the header's zooms (or the affine's column lengths)."""
        if self.header is not None:
            return tuple(float(z) for z in self.header.get_zooms()[: self.labels.ndim])
        sizes = np.linalg.norm(self.affine[:3, : self.labels.ndim], axis=0)
        return tuple(float(s) for s in sizes)


def load(path: str | os.PathLike[str]) -> LabelImage:
    """Read a NIfTI label map.

    Integer maps come back as stored. Maps stored as floats, or scaled by
    ``scl_slope``/``scl_inter`` (some exporters do this), are converted to the smallest
    unsigned integer type when every value is a whole, non-negative number.

    Parameters
    ----------
    path : str or path-like
        A ``.nii`` or ``.nii.gz`` file.

    Returns
    -------
    LabelImage

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not a readable NIfTI image, or holds values that are not whole,
        non-negative numbers (the message names the file).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> import fastseg
    >>> folder = tempfile.mkdtemp()
    >>> fastseg.save(os.path.join(folder, "seg.nii.gz"), np.eye(3, dtype=np.int64))
    >>> image = fastseg.load(os.path.join(folder, "seg.nii.gz"))
    >>> image.labels.dtype, image.labels.shape
    (dtype('uint8'), (3, 3))
    """
    import nibabel

    name = os.fspath(path)
    if not os.path.exists(name):
        raise FileNotFoundError(f"{name}: no such file")
    try:
        image: Any = nibabel.load(name)
        proxy = image.dataobj
        stored = image.get_data_dtype()
        scaled = _geometry.scaled(proxy)
        array = np.asarray(image.get_fdata(dtype=np.float64)) if scaled else np.asanyarray(proxy)
    except Exception as error:  # nibabel raises many kinds for damaged files
        raise ValueError(f"{name}: not a readable NIfTI image ({error})") from error
    if array.dtype.kind not in "biu":
        try:
            array = as_labels(array)
        except ValueError as error:
            kind = "scaled " if scaled else ""
            raise ValueError(
                f"{name}: the {kind}{stored} values are not label ids: {error}"
            ) from None
    else:
        try:
            as_label_array(array)
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
    return LabelImage(array, np.asarray(image.affine, dtype=np.float64), image.header)


def save(
    path: str | os.PathLike[str],
    labels: npt.NDArray[Any],
    *,
    affine: npt.ArrayLike | None = None,
    like: LabelImage | Any | None = None,
) -> None:
    """Write a label map as NIfTI, atomically, in the smallest unsigned type.

    The stored type is uint8 when every label is below 256, else uint16, else the
    smallest unsigned type that holds the largest label; values are never scaled.

    Parameters
    ----------
    path : str or path-like
        Target ``.nii`` or ``.nii.gz`` file; its folder must exist. An existing file is
        replaced only once the new one is completely written.
    labels : numpy.ndarray
        Integer or bool label map (non-negative).
    affine : array_like, optional
        4 x 4 voxel-to-world matrix; by default ``like``'s, else the identity.
    like : LabelImage or nibabel image, optional
        The image whose header (orientation codes, zooms, units) the file takes.

    Raises
    ------
    TypeError, ValueError
        For labels that are not non-negative integers, or a malformed affine.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> import fastseg
    >>> path = os.path.join(tempfile.mkdtemp(), "mask.nii.gz")
    >>> fastseg.save(path, np.array([[True, False]]), affine=np.diag([0.8, 0.8, 3.0, 1.0]))
    >>> fastseg.load(path).labels
    array([[1, 0]], dtype=uint8)
    """
    import nibabel as _nibabel

    nibabel: Any = _nibabel  # partly annotated; treated as untyped here
    source = as_label_array(labels, ndims=(1, 2, 3, 4, 5, 6, 7))
    # A bool mask is stored as uint8 without a pass to find its largest value.
    high = 1 if source.dtype.kind == "b" else source.value_range()[1]
    dtype = fit_dtype(high)
    header = None
    if like is not None:
        header = like.header.copy() if like.header is not None else None
        if affine is None:
            affine = like.affine
    matrix = np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise ValueError(f"affine must be a 4 x 4 matrix, got shape {matrix.shape}")
    if source.dtype == dtype:
        data = source.original
    elif source.dtype.kind == "b" and not source.copied:
        data = source.original.view(np.uint8)
    else:
        data = source.original.astype(dtype, order="K")
    image = nibabel.Nifti1Image(data, matrix, header=header)
    image.set_data_dtype(dtype)
    image.header.set_slope_inter(1.0, 0.0)
    target = Path(path)
    compressed = target.name.lower().endswith(".gz")
    # The temporary name ends in .tmp, never in .nii.gz: tools listing *.nii.gz (nnU-Net's
    # subfiles) must not take a file that a killed process left half-written.
    if not target.name.lower().endswith((".nii", ".nii.gz")):
        # Another format by its ending (nibabel converts, e.g. to MGH for .mgz).
        with atomic_path(target, suffix="".join(target.suffixes[-2:])) as temporary:
            nibabel.save(image, temporary)
        return
    with atomic_path(target) as temporary:
        if not (compressed and _write_sparse_gzip(image, data, temporary)):
            _write_single_file(image, temporary, compressed=compressed)


def _write_single_file(image: Any, path: str, *, compressed: bool) -> None:
    """nibabel's save to a name without a NIfTI ending: gzip level 1, no name and no
    time in the gzip header (as nibabel writes them: equal images, equal files)."""
    import nibabel

    with open(path, "wb") as raw:
        stream: Any = gzip.GzipFile("", "wb", compresslevel=1, fileobj=raw, mtime=0)
        with stream if compressed else raw:
            image.to_file_map({"image": nibabel.FileHolder(fileobj=stream if compressed else raw)})


_ZERO_BLOCK = 1 << 20


@functools.cache
def _compressed_zeros(size: int) -> bytes:
    return gzip.compress(bytes(size), compresslevel=1, mtime=0)


def _write_sparse_gzip(image: Any, data: np.ndarray, path: str) -> bool:
    """Write a mostly-zero image as ``.nii.gz`` compressing only its non-zero span.

    A gzip file may hold several members one after another (RFC 1952), and every gzip
    reader (Python's gzip and so nibabel, zlib's gzread and so ITK) reads them as one
    stream: the zeros before and after the span are written as copies of one
    pre-compressed block of zeros. Per-instance masks, mostly background, are written
    several times faster than by compressing every byte. Returns False, writing
    nothing, when the image is not mostly zeros or not in Fortran order (NIfTI's).
    """
    if data.ndim > 1 and not data.flags.f_contiguous:
        return False
    from fastseg._kernels.masks import nonzero_span

    flat = data.reshape(-1, order="F")
    first, last = (int(i) for i in nonzero_span(flat.view(unsigned_of(flat.dtype))))
    if last - first + 1 > flat.size // 2:
        return False
    header = image.header.copy()
    header.set_data_offset(352)  # single file: 348-byte header and 4-byte extension flag
    itemsize = flat.dtype.itemsize
    with open(path, "wb") as stream:
        stream.write(gzip.compress(header.binaryblock + bytes(4), compresslevel=1, mtime=0))
        _write_zeros(stream, first * itemsize)
        if last >= first:
            span = flat[first : last + 1].tobytes()
            stream.write(gzip.compress(span, compresslevel=1, mtime=0))
        _write_zeros(stream, (flat.size - 1 - last) * itemsize)
    return True


def _write_zeros(stream: Any, count: int) -> None:
    blocks, rest = divmod(count, _ZERO_BLOCK)
    if blocks:
        block = _compressed_zeros(_ZERO_BLOCK)
        for _ in range(blocks):
            stream.write(block)
    if rest:
        stream.write(_compressed_zeros(rest))

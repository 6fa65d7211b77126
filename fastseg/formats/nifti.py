"""NIfTI-1 and NIfTI-2 label maps (``.nii``, ``.nii.gz``), through nibabel's headers.

Reading keeps integers as stored and NIfTI's Fortran order without a copy. A ``.nii.gz``
file is decompressed in one pass straight into the array, through Python's gzip reader,
which checks every member's CRC-32 and length: a damaged stream fails naming the file
(nibabel alone stops reading at the end of the voxels and never sees the trailer).
Spatial units other than millimetres (micrometres, metres) are converted to millimetres
in the affine and zooms. Writing stores the smallest unsigned type that holds the ids,
unscaled, uint64 included.
"""

from __future__ import annotations

import functools
import gzip
import io
import os
import zlib
from typing import Any

import numpy as np
import numpy.typing as npt

from fastseg._arrays import unsigned_of
from fastseg._files import atomic_path
from fastseg.io import LabelImage, labels_from_stored, stored_array

_TO_MM = {"mm": 1.0, "micron": 1e-3, "meter": 1e3, "unknown": 1.0}
_ZERO_BLOCK = 1 << 20
_NIFTI2_SIZE = 540


def read_volume(path: str | os.PathLike[str]) -> LabelImage:
    """Read a NIfTI label map (see :func:`fastseg.load`)."""
    import nibabel

    name = os.fspath(path)
    if not os.path.exists(name):
        raise FileNotFoundError(f"{name}: no such file")
    try:
        if name.lower().endswith(".gz"):
            header, array = _read_gzip_checked(name)
            affine = np.asarray(header.get_best_affine(), dtype=np.float64)
        else:
            image: Any = nibabel.load(name)
            header = image.header
            affine = np.asarray(image.affine, dtype=np.float64)
            array = np.asanyarray(image.dataobj.get_unscaled())
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise ValueError(f"{name}: damaged gzip stream ({error})") from error
    except (OSError, ValueError) as error:
        raise ValueError(f"{name}: not a readable NIfTI image ({error})") from error
    except Exception as error:  # nibabel raises many kinds for damaged headers
        raise ValueError(f"{name}: not a readable NIfTI image ({error})") from error
    slope, inter = header.get_slope_inter()
    array = labels_from_stored(array, slope, inter, header.get_data_dtype(), name)
    header, affine = _in_millimetres(header, affine, name)
    return LabelImage(array, affine, header, format="nifti")


def _in_millimetres(header: Any, affine: npt.NDArray[np.float64], name: str) -> tuple[Any, Any]:
    """The header and affine with the spatial unit converted to millimetres."""
    try:
        unit = header.get_xyzt_units()[0]
    except Exception as error:
        raise ValueError(
            f"{name}: the header's spatial unit is not a NIfTI unit ({error})"
        ) from None
    if unit not in _TO_MM:
        raise ValueError(
            f"{name}: the header's spatial unit is {unit!r}; fastseg reads mm, micron and meter"
        )
    factor = _TO_MM[unit]
    if factor == 1.0:
        return header, affine
    header = header.copy()
    zooms = list(header.get_zooms())
    spatial = min(3, len(zooms))
    zooms[:spatial] = [z * factor for z in zooms[:spatial]]
    header.set_zooms(zooms)
    header.set_xyzt_units("mm", header.get_xyzt_units()[1])
    scaled = affine.copy()
    scaled[:3, :] *= factor
    header.set_sform(scaled, int(header["sform_code"]))
    header.set_qform(scaled, int(header["qform_code"]))
    return header, scaled


class _CheckedGzip:
    """A gzip file read front to back, every member's CRC-32 and length checked by zlib
    (a stream that ends inside a member is an error too)."""

    _INPUT = 1 << 22
    _OUTPUT = 1 << 24

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.inflater = zlib.decompressobj(31)
        self.started = False
        self.pending = b""
        self.input = b""
        self.done = False

    def _more(self) -> bytes:
        """The next piece of decompressed data, b"" at the end of the file."""
        while True:
            if self.inflater.eof:
                rest = self.inflater.unused_data + self.input
                self.input = b""
                while rest and not rest.strip(b"\0"):
                    rest = self.stream.read(self._INPUT)  # zero padding after a member
                if not rest:
                    rest = self.stream.read(self._INPUT)
                    if not rest:
                        return b""
                self.inflater = zlib.decompressobj(31)
                self.started = False
                self.input = rest
            if not self.input:
                tail = self.inflater.unconsumed_tail
                self.input = tail if tail else self.stream.read(self._INPUT)
                if not self.input:
                    if self.started:
                        raise EOFError("the gzip stream ends inside a member (truncated)")
                    return b""
            data, self.input = self.input, b""
            out = self.inflater.decompress(data, self._OUTPUT)
            self.started = True
            if out:
                return out

    def read(self, count: int) -> bytes:
        """Up to ``count`` bytes (fewer only at the end of the stream)."""
        parts = [self.pending]
        have = len(self.pending)
        while have < count:
            more = self._more()
            if not more:
                break
            parts.append(more)
            have += len(more)
        joined = b"".join(parts)
        self.pending = joined[count:]
        return joined[:count]

    def readinto(self, target: memoryview) -> int:
        """Fill ``target``; the number of bytes written (fewer at the end of the stream)."""
        filled = 0
        size = len(target)
        while filled < size:
            piece = self.pending or self._more()
            self.pending = b""
            if not piece:
                break
            take = min(len(piece), size - filled)
            target[filled : filled + take] = memoryview(piece)[:take]
            if take < len(piece):
                self.pending = piece[take:]
            filled += take
        return filled

    def finish(self) -> None:
        """Read to the end, so that every remaining member is checked."""
        while self._more():
            pass


def _read_header(stream: Any, start: bytes, size: int) -> Any:
    """The NIfTI-1 or NIfTI-2 header (``size`` bytes, ``start`` its first four, already
    read) from ``stream``."""
    from nibabel.nifti1 import Nifti1Header
    from nibabel.nifti2 import Nifti2Header

    kind = Nifti2Header if size == _NIFTI2_SIZE else Nifti1Header
    rest = stream.read(size - 4)
    if len(rest) != size - 4:
        raise ValueError("the file ends inside the header")
    reader: Any = kind.from_fileobj
    return reader(io.BytesIO(start + rest), check=True)


def _header_size(start: bytes) -> int:
    """The header size a NIfTI file's first four bytes give, in either byte order."""
    if len(start) < 4:
        raise ValueError("the file ends before the header")
    size = int.from_bytes(start, "little")
    if size not in (348, _NIFTI2_SIZE):
        size = int.from_bytes(start, "big")
    if size not in (348, _NIFTI2_SIZE):
        raise ValueError("no NIfTI-1 or NIfTI-2 header at the start of the file")
    return size


def read_geometry(
    path: str | os.PathLike[str],
) -> tuple[tuple[int, ...], npt.NDArray[np.float64]]:
    """Shape and affine of a NIfTI label map as :func:`read_volume` gives them (affine in
    millimetres), from the header alone: a ``.nii.gz`` is decompressed only as far as
    its header, no voxel is read."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise FileNotFoundError(f"{name}: no such file")
    try:
        with open(name, "rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stream: Any = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
            start = stream.read(4)
            header = _read_header(stream, start, _header_size(start))
        shape = tuple(int(s) for s in header.get_data_shape())
        affine = np.asarray(header.get_best_affine(), dtype=np.float64)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise ValueError(f"{name}: damaged gzip stream ({error})") from error
    except Exception as error:  # nibabel raises many kinds for damaged headers
        raise ValueError(f"{name}: not a readable NIfTI header ({error})") from error
    _, affine = _in_millimetres(header, affine, name)
    return shape, affine


def _read_gzip_checked(name: str) -> tuple[Any, npt.NDArray[Any]]:
    """Header and voxels of a ``.nii.gz``, read to the end of the gzip stream."""
    with open(name, "rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        # A ".nii.gz" that is not compressed at all is read as it is.
        stream: Any = _CheckedGzip(raw) if compressed else raw
        start = stream.read(4)
        size = _header_size(start)
        header = _read_header(stream, start, size)
        offset = int(header.get_data_offset())
        skipped = stream.read(max(0, offset - size))
        if len(skipped) != max(0, offset - size):
            raise ValueError("the file ends before the voxels")
        shape = tuple(int(s) for s in header.get_data_shape())
        dtype = header.get_data_dtype()
        array = np.empty(shape, dtype=dtype, order="F")
        flat: Any = array.reshape(-1, order="A").view(np.uint8)
        view = memoryview(flat)
        got = stream.readinto(view) if array.size else 0
        if got != array.nbytes:
            raise ValueError(f"the file ends after {got} of {array.nbytes} voxel bytes")
        if compressed:
            stream.finish()
    return header, array


def write_volume(
    path: str | os.PathLike[str],
    labels: npt.NDArray[Any],
    high: int,
    affine: npt.NDArray[np.float64],
    like: LabelImage | None,
    schema: Any = None,
) -> None:
    """Write a label map as NIfTI (see :func:`fastseg.save`)."""
    import nibabel as _nibabel

    nibabel: Any = _nibabel  # partly annotated; treated as untyped here
    if schema is not None:
        raise ValueError(
            "NIfTI has no place for category names; write the schema beside it "
            "(Schema.save) or save as .seg.nrrd"
        )
    data = stored_array(labels, high)
    header = None
    if like is not None and like.format == "nifti" and like.header is not None:
        header = like.header.copy()
    image = nibabel.Nifti1Image(data, affine, header=header, dtype=data.dtype)
    image.header.set_slope_inter(1.0, 0.0)
    if header is None:
        image.header.set_xyzt_units("mm")
    target = os.fspath(path)
    gz = target.lower().endswith(".gz")
    # The temporary name ends in .tmp, never in .nii.gz: tools listing *.nii.gz (nnU-Net's
    # subfiles) must not take a file that a killed process left half-written.
    with atomic_path(target) as temporary:
        if not (gz and _write_sparse_gzip(image, data, temporary)):
            _write_single_file(image, temporary, compressed=gz)


def _write_single_file(image: Any, path: str, *, compressed: bool) -> None:
    """nibabel's save to a name without a NIfTI ending: gzip level 1, no name and no
    time in the gzip header (as nibabel writes them: equal images, equal files)."""
    import nibabel

    with open(path, "wb") as raw:
        stream: Any = gzip.GzipFile("", "wb", compresslevel=1, fileobj=raw, mtime=0)
        with stream if compressed else raw:
            image.to_file_map({"image": nibabel.FileHolder(fileobj=stream if compressed else raw)})


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
    nothing, when the image is empty, not mostly zeros or not in Fortran order
    (NIfTI's).
    """
    if data.size == 0 or (data.ndim > 1 and not data.flags.f_contiguous):
        return False
    from fastseg._kernels import nifti as nifti_kernels

    flat = data.reshape(-1, order="F")
    first, last = (int(i) for i in nifti_kernels.nonzero_span(flat.view(unsigned_of(flat.dtype))))
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

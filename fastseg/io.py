"""Reading and writing label volumes in every format of :mod:`fastseg.formats.registry`.

Label maps are read as stored: integers stay integers and the file's memory order is
kept without a copy. Files are written atomically: to a temporary file in the target
folder, renamed into place only when complete. The format follows the file name
(``.nii``, ``.nii.gz``, ``.mgz``, ``.mgh``, ``.nrrd``, ``.seg.nrrd``, ``.mha``, ``.mhd``)
unless ``format=`` says.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from fastseg._arrays import as_label_array
from fastseg.dtypes import as_labels, fit_dtype

if TYPE_CHECKING:
    from fastseg.schema import Schema

__all__ = ["LabelImage", "load", "save"]


@dataclass(frozen=True)
class LabelImage:
    """A label map with its voxel-to-world affine and the header it came with.

    Attributes
    ----------
    labels : numpy.ndarray
        The ids, as stored. A Slicer ``.seg.nrrd`` file with overlapping segments gives
        one 3D map per layer, stacked on a last axis: ``(x, y, z, layers)``.
    affine : numpy.ndarray
        4 x 4 voxel-to-world matrix in RAS+ millimetres (nibabel's convention), whatever
        the file stores (NRRD and MetaImage store LPS; NIfTI may store micrometres).
    header : object
        The format's own header: nibabel's for NIfTI and MGH, a dict of fields for NRRD
        and MetaImage; None for an image built in memory.
    format : str or None
        The registry name of the format it was read from (``"nifti"``, ``"mgh"``, ...).
    segments : mapping of int to Schema, or None
        For Slicer ``.seg.nrrd`` files: layer -> the segments on that layer.

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
    format: str | None = None
    segments: Mapping[int, Schema] | None = None

    @property
    def spacing(self) -> tuple[float, ...]:
        """Voxel size per spatial axis, from the header's zooms (or the affine)."""
        ndim = min(self.labels.ndim, 3)
        if self.header is not None and hasattr(self.header, "get_zooms"):
            return tuple(float(z) for z in self.header.get_zooms()[:ndim])
        sizes = np.linalg.norm(self.affine[:3, :ndim], axis=0)
        return tuple(float(s) for s in sizes)

    @property
    def schema(self) -> Schema | None:
        """The segments of a file with one layer (or no overlaps), else None."""
        if not self.segments:
            return None
        if len(self.segments) == 1:
            return next(iter(self.segments.values()))
        return None

    def relabeled(
        self,
        labels: npt.NDArray[Any],
        mapping: Mapping[int, int],
        *,
        missing: Literal["keep", "drop"] | int = "keep",
    ) -> LabelImage:
        """This image holding ``labels``, its own ids mapped through ``mapping``.

        For writing the result with ``fastseg.save(path, labels, like=...)``: what the
        header says about the ids follows them. A Slicer ``.seg.nrrd``'s segments take
        their new values (see :func:`fastseg.formats.slicer.remap_segments`); other
        formats say nothing about ids, and only the labels change.

        Parameters
        ----------
        labels : numpy.ndarray
            ``self.labels`` mapped (:func:`fastseg.remap`, :func:`fastseg.renumber`).
        mapping : mapping of int to int
            Old id -> new id.
        missing : {"keep", "drop"} or int, optional
            Segments whose value the mapping lacks keep it (default), are dropped
            (``"drop"``, for :func:`fastseg.renumber`'s mapping), or take this value.

        Raises
        ------
        ValueError
            If two segments of one Slicer layer would take the same value.

        Examples
        --------
        >>> import numpy as np
        >>> import fastseg
        >>> image = fastseg.LabelImage(np.array([0, 5, 9], np.uint8), np.eye(4))
        >>> labels, mapping = fastseg.renumber(image.labels)
        >>> image.relabeled(labels, mapping, missing="drop").labels
        array([0, 1, 2], dtype=uint8)
        """
        if self.format == "seg.nrrd" and self.segments and self.header is not None:
            from fastseg.formats.slicer import remap_segments

            return remap_segments(self, labels, mapping, missing=missing)
        return dataclasses.replace(self, labels=labels)


def load(path: str | os.PathLike[str], *, format: str | None = None) -> LabelImage:
    """Read a label map in any volume format fastseg knows.

    Integer maps come back as stored. Maps stored as floats, or scaled by
    ``scl_slope``/``scl_inter`` (some exporters do this), are converted to the smallest
    unsigned integer type when every value is a whole, non-negative number.

    Parameters
    ----------
    path : str or path-like
        A ``.nii``/``.nii.gz`` (NIfTI), ``.mgz``/``.mgh`` (FreeSurfer), ``.nrrd``,
        ``.seg.nrrd`` (3D Slicer; needs ``fastseg[slicer]``) or ``.mha``/``.mhd``
        (MetaImage; needs ``fastseg[metaimage]``) file.
    format : str, optional
        The format's name (``"nifti"``, ``"mgh"``, ``"nrrd"``, ``"seg.nrrd"``,
        ``"metaimage"``) when the file name does not say.

    Returns
    -------
    LabelImage
        The affine in RAS+ millimetres, whatever the file's convention and unit.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ImportError
        If the format needs an optional dependency that is missing (naming the extra).
    ValueError
        If the file is not readable in its format (a damaged gzip stream included), its
        spatial unit is unknown, or it holds values that are not whole, non-negative
        numbers (the message names the file).

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
    from fastseg.formats import registry

    name = os.fspath(path)
    entry = registry.volume_format(name, format)
    if not os.path.exists(name):
        raise FileNotFoundError(f"{name}: no such file")
    return registry.load_volume(name, entry.name)


def save(
    path: str | os.PathLike[str],
    labels: npt.NDArray[Any],
    *,
    affine: npt.ArrayLike | None = None,
    like: LabelImage | Any | None = None,
    schema: Schema | None = None,
    format: str | None = None,
) -> None:
    """Write a label map, atomically, in the smallest type its format holds the ids in.

    NIfTI, NRRD and MetaImage store the smallest unsigned type (uint8, uint16, uint32,
    uint64); MGH the smallest of its integer types (uint8, int16, int32). Values are
    never scaled.

    Parameters
    ----------
    path : str or path-like
        Target file; its name chooses the format (see :func:`load`) unless ``format``
        does. Its folder must exist. An existing file is replaced only once the new one
        is completely written.
    labels : numpy.ndarray
        Integer or bool label map (non-negative). For ``.seg.nrrd``, ``(x, y, z)`` or
        ``(x, y, z, layers)``.
    affine : array_like, optional
        4 x 4 voxel-to-world matrix in RAS+ millimetres; by default ``like``'s, else
        the identity.
    like : LabelImage or nibabel image, optional
        The image whose header the file takes where the formats agree (NIfTI's
        orientation codes and units, a Slicer file's segments and fields).
    schema : Schema, optional
        For ``.seg.nrrd``: the segments (names, colours, layers) of the label values.
    format : str, optional
        The format's name, when the file name does not say.

    Raises
    ------
    TypeError, ValueError
        For labels that are not non-negative integers, ids the format cannot hold, or
        a malformed affine.
    ImportError
        If the format needs an optional dependency that is missing (naming the extra).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> import fastseg
    >>> path = os.path.join(tempfile.mkdtemp(), "mask.nii.gz")
    >>> fastseg.save(path, np.array([[True, False]]), affine=np.diag([0.8, 0.8, 3.0, 1.0]))
    >>> fastseg.load(path).labels
    array([[1, 0]], dtype=uint8)
    """
    from fastseg.formats import registry

    entry = registry.volume_format(path, format)
    source = as_label_array(labels, ndims=(1, 2, 3, 4, 5, 6, 7))
    # A bool mask is stored as uint8 without a pass to find its largest value.
    high = 1 if source.dtype.kind == "b" else source.value_range()[1]
    template = _as_label_image(like) if like is not None else None
    if affine is None and template is not None:
        affine = template.affine
    matrix = np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise ValueError(f"affine must be a 4 x 4 matrix, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError("affine contains NaN or infinite values")
    entry.function("write_volume")(path, source.original, high, matrix, template, schema)


def _as_label_image(like: Any) -> LabelImage:
    """A LabelImage for ``like=``: itself, or a nibabel image's affine and header."""
    if isinstance(like, LabelImage):
        return like
    if hasattr(like, "affine") and hasattr(like, "header"):
        kind = type(like).__name__.lower()
        form = "nifti" if "nifti" in kind else "mgh" if "mgh" in kind else None
        shape = tuple(like.shape) if hasattr(like, "shape") else (0,)
        return LabelImage(
            np.zeros((0,) * len(shape)), np.asarray(like.affine, np.float64), like.header, form
        )
    raise TypeError(f"like must be a LabelImage or a nibabel image, got {type(like).__name__}")


def stored_array(labels: npt.NDArray[Any], high: int, dtype: Any = None) -> npt.NDArray[Any]:
    """``labels`` in ``dtype`` (default: the smallest unsigned type for ``high``), in
    its memory order; bool masks are viewed as uint8 without a copy."""
    target = fit_dtype(high) if dtype is None else np.dtype(dtype)
    if labels.dtype == target:
        return labels
    contiguous = labels.flags.c_contiguous or labels.flags.f_contiguous
    if labels.dtype.kind == "b" and target == np.uint8 and contiguous:
        return labels.view(np.uint8)
    return labels.astype(target, order="K")


def labels_from_stored(
    array: npt.NDArray[Any], slope: Any, inter: Any, stored: Any, name: str
) -> npt.NDArray[Any]:
    """Stored voxels as label ids: scaled by ``slope``/``inter`` when the file says,
    whole non-negative floats converted; ValueError naming the file otherwise."""
    scaled = not (slope in (None, 1.0) and inter in (None, 0.0))
    if scaled:
        array = array.astype(np.float64) * float(1.0 if slope is None else slope)
        array += float(0.0 if inter is None else inter)
    if array.dtype.kind not in "biu":
        try:
            return as_labels(array)
        except ValueError as error:
            kind = "scaled " if scaled else ""
            raise ValueError(
                f"{name}: the {kind}{stored} values are not label ids: {error}"
            ) from None
    try:
        as_label_array(array)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None
    return array

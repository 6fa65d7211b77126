"""The one input-normalisation helper every public function goes through.

Kernels see a single layout: a flat, contiguous, native-byte-order *unsigned* array.
Both memory orders become flat views without a copy (nibabel hands out Fortran-ordered
arrays); bool and non-negative signed labels are reinterpreted as unsigned of the same
width; only non-contiguous or byte-swapped inputs are copied. Outputs are allocated in
the caller's memory order so that flat kernel indices line up with the input.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

_UNSIGNED_OF_WIDTH = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _describe(obj: object) -> str:
    if isinstance(obj, np.ndarray):
        return f"a {obj.dtype} array of shape {obj.shape}"
    return f"{type(obj).__module__}.{type(obj).__qualname__}".removeprefix("builtins.")


@dataclass(frozen=True)
class LabelArray:
    """A validated label array and the flat unsigned view kernels work on."""

    original: np.ndarray
    flat: np.ndarray
    order: Literal["C", "F"]
    copied: bool
    _range: list[tuple[int, int]] = field(default_factory=list, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.original.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.original.dtype

    @property
    def size(self) -> int:
        return int(self.flat.size)

    def value_range(self) -> tuple[int, int]:
        """Smallest and largest label (one parallel pass, remembered)."""
        if not self._range:
            if self.size == 0:
                self._range.append((0, 0))
            else:
                from fastseg._jit import chunks_for
                from fastseg._kernels import _chunks as chunks_kernels

                low, high = chunks_kernels.value_range(self.flat, chunks_for(self.size))
                self._range.append((int(low), int(high)))
        return self._range[0]

    def empty(self, dtype: np.dtype[Any]) -> tuple[np.ndarray, np.ndarray]:
        """A new array shaped like the input in its memory order, and its flat view."""
        out = np.empty(self.shape, dtype=dtype, order=self.order)
        return out, flat_view(out)

    def view_3d(self) -> tuple[np.ndarray, bool]:
        """The labels as a C-contiguous 3-D view (1-D and 2-D get leading axes of size 1)
        whose last axis is contiguous in memory, and whether it is the caller's transpose
        (Fortran-ordered input). No copy."""
        array = self.flat.reshape(self.shape, order=self.order)
        transposed = self.order == "F"
        if transposed:
            array = array.T
        return array.reshape((1,) * (3 - array.ndim) + array.shape), transposed

    def caller_axis(self, view_axis: int, transposed: bool) -> int:
        """The caller's axis for an axis of :meth:`view_3d`."""
        return 2 - view_axis if transposed else view_axis - (3 - len(self.shape))

    def writable_flat(self, what: str) -> np.ndarray:
        """The flat view for writing results into the caller's own array (``in_place=True``)."""
        if not self.original.flags.writeable:
            reason = "read-only"
        elif self.copied:
            reason = "not contiguous in memory or not in native byte order"
        else:
            return self.flat
        raise ValueError(
            f"in_place=True needs a writeable, contiguous, native-byte-order array, but {what} "
            f"is {reason} ({_describe(self.original)}); call without in_place to get a new array"
        )


def flat_view(array: np.ndarray) -> np.ndarray:
    """Flat view of a C- or F-contiguous array in memory order (never copies)."""
    return array.reshape(-1, order="F" if is_fortran(array) else "C")


def is_fortran(array: np.ndarray) -> bool:
    """Whether a contiguous array is read in Fortran order (C order wins when it is both)."""
    return bool(array.flags.f_contiguous and not array.flags.c_contiguous)


def as_label_array(
    labels: object,
    *,
    name: str = "labels",
    ndims: tuple[int, ...] | None = None,
) -> LabelArray:
    """Validate ``labels`` and describe it for kernels.

    Raises TypeError for anything but an integer or bool numpy array (floats name the
    opt-in, :func:`fastseg.as_labels`), ValueError for negative labels or an ``ndim``
    outside ``ndims``.
    """
    if not isinstance(labels, np.ndarray):
        raise TypeError(f"{name} must be a numpy array of integer labels, got {_describe(labels)}")
    dtype = labels.dtype
    if dtype.kind == "f":
        raise TypeError(
            f"{name} must be an integer or bool array, got {dtype}; if every value is a whole "
            f"number (label maps saved as float), convert explicitly with fastseg.as_labels({name})"
        )
    if dtype.kind not in "biu":
        raise TypeError(f"{name} must be an integer or bool array, got dtype {dtype}")
    if ndims is not None and labels.ndim not in ndims:
        choices = ", ".join(str(d) for d in ndims)
        raise ValueError(
            f"{name} must have {choices} dimensions, got {labels.ndim} (shape {labels.shape})"
        )

    array = labels
    copied = False
    if not dtype.isnative:
        array = array.astype(dtype.newbyteorder("="), order="K")
        copied = True
    if array.flags.c_contiguous:
        order: Literal["C", "F"] = "C"
    elif array.flags.f_contiguous:
        order = "F"
    else:
        array = np.ascontiguousarray(array)
        order = "C"
        copied = True
    flat = flat_view(array).view(_UNSIGNED_OF_WIDTH[dtype.itemsize])
    result = LabelArray(original=labels, flat=flat, order=order, copied=copied)
    if dtype.kind == "i" and result.size:
        # A negative value has its top bit set in the unsigned view.
        _, high = result.value_range()
        if high >> (8 * dtype.itemsize - 1):
            raise ValueError(
                f"{name} must be non-negative ids; found {int(labels.min())} in the {dtype} array "
                f"(remap or shift negative values first)"
            )
    return result


@functools.cache
def unsigned_of(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The unsigned dtype kernels use for ``dtype`` (same width)."""
    return np.dtype(_UNSIGNED_OF_WIDTH[np.dtype(dtype).itemsize])

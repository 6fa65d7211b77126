"""Choosing output dtypes and turning other arrays into label arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from fastseg._tensors import accepts_tensors

__all__ = ["as_labels", "fit_dtype"]

_UNSIGNED = (np.uint8, np.uint16, np.uint32, np.uint64)
_SIGNED = (np.int8, np.int16, np.int32, np.int64)


def fit_dtype(max_value: int, min_value: int = 0) -> np.dtype[np.integer]:
    """Smallest integer dtype that holds every value in ``min_value .. max_value``.

    Unsigned types are preferred; a signed type is chosen only when ``min_value`` is
    negative.

    Parameters
    ----------
    max_value : int
        Largest value the dtype must hold.
    min_value : int, optional
        Smallest value the dtype must hold (default 0).

    Returns
    -------
    numpy.dtype
        One of uint8, uint16, uint32, uint64 (or int8 … int64 for negative values).

    Raises
    ------
    ValueError
        If no 64-bit integer type holds the range.

    Examples
    --------
    >>> from fastseg import fit_dtype
    >>> fit_dtype(255), fit_dtype(256), fit_dtype(98_340_797)
    (dtype('uint8'), dtype('uint16'), dtype('uint32'))
    >>> fit_dtype(5, min_value=-1)
    dtype('int8')
    """
    low, high = int(min_value), int(max_value)
    if low > high:
        raise ValueError(f"min_value {low} is larger than max_value {high}")
    for candidate in _UNSIGNED if low >= 0 else _SIGNED:
        info = np.iinfo(candidate)
        if info.min <= low and high <= info.max:
            return np.dtype(candidate)
    raise ValueError(f"no 64-bit integer dtype holds values from {low} to {high}")


def check_dtype_holds(dtype: np.dtype[Any], low: int, high: int, what: str) -> None:
    """Raise ValueError if ``dtype`` cannot hold ``low .. high`` (``what`` names its role)."""
    dtype = np.dtype(dtype)
    lowest, highest = (0, 1) if dtype.kind == "b" else (np.iinfo(dtype).min, np.iinfo(dtype).max)
    if low < lowest or high > highest:
        raise ValueError(
            f"{what} {dtype} cannot hold the result: values range from {low} to {high}, "
            f"{dtype} holds {lowest} to {highest}; pass a wider dtype or leave it as None"
        )


@accepts_tensors
def as_labels(
    array: npt.ArrayLike, *, dtype: npt.DTypeLike | None = None
) -> npt.NDArray[np.integer]:
    """Convert an array of whole, non-negative numbers to an unsigned integer label array.

    Label maps saved as floating point (``nibabel``'s ``get_fdata()`` always returns
    float64) are refused by every fastseg function; this is the explicit opt-in that
    converts them after checking that nothing is lost.

    Parameters
    ----------
    array : array_like
        Integer, bool or floating point values.
    dtype : dtype, optional
        Integer dtype of the result; by default the smallest unsigned type that fits.

    Returns
    -------
    numpy.ndarray
        A new integer array of the same shape (memory order preserved).

    Raises
    ------
    ValueError
        If a value is NaN, infinite, negative or not a whole number, or does not fit ``dtype``.
    TypeError
        If the values are not numbers, or ``dtype`` is not an integer dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from fastseg import as_labels
    >>> as_labels(np.array([0.0, 1.0, 300.0]))
    array([  0,   1, 300], dtype=uint16)
    """
    values = np.asarray(array)
    if values.dtype.kind not in "biuf":
        raise TypeError(f"labels must hold numbers, got an array of dtype {values.dtype}")
    if dtype is not None:
        target = np.dtype(dtype)
        if target.kind not in "iu":
            raise TypeError(f"dtype must be an integer dtype, got {target}")
    if values.dtype.kind == "f":
        if values.size and not np.isfinite(values).all():
            raise ValueError(
                "labels contain NaN or infinite values; they cannot be converted to ids"
            )
        if values.size and not (values == np.round(values)).all():
            bad = values[values != np.round(values)].flat[0].item()
            raise ValueError(f"labels must be whole numbers; found {bad}")
    if values.size == 0:
        return np.empty(values.shape, np.dtype(dtype) if dtype is not None else np.uint8)
    if values.dtype.kind == "b":
        values = values.view(np.uint8)
    low, high = values.min().item(), values.max().item()
    if low < 0:
        raise ValueError(f"labels must be non-negative; found {low}")
    if high > np.iinfo(np.uint64).max:
        raise ValueError(f"label {high} does not fit in 64 bits")
    target = fit_dtype(int(high)) if dtype is None else np.dtype(dtype)
    check_dtype_holds(target, 0, int(high), "dtype")
    return values.astype(target, order="K")

"""Inputs shared by the tests: label dtypes, memory layouts and hypothesis strategies.

Every strategy draws small arrays (a few hundred elements at most) so that the
references in ``reference.py`` stay fast; the dtypes and layouts are the ones the
public functions accept, so each test reaches every input normalisation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from reference import dtype_max

__all__ = [
    "INTEGER_DTYPES",
    "LABEL_DTYPES",
    "LAYOUTS",
    "any_label_arrays",
    "blocky_volume",
    "label_arrays",
    "layout",
    "small_volumes",
]

INTEGER_DTYPES = (
    np.uint8,
    np.int8,
    np.uint16,
    np.int16,
    np.uint32,
    np.int32,
    np.uint64,
    np.int64,
)
LABEL_DTYPES = (np.bool_, *INTEGER_DTYPES)


# -- memory layouts -------------------------------------------------------------------------

# Every way :func:`layout` can lay out the same values in memory.
LAYOUTS = ("C", "F", "strided", "strided_F", "swapped", "readonly")


def layout(values: np.ndarray, kind: str) -> np.ndarray:
    """``values`` (any order) laid out as ``kind``; the element values never change.

    ``"C"`` and ``"F"`` are contiguous copies. ``"strided"`` (``"strided_F"``) is a view of
    every other element, the last axis walked backwards, of a bigger C (F) ordered array
    whose other elements hold the dtype's largest value (NaN for floats), so a kernel
    that strays outside the view sees values that are not in it. ``"swapped"`` is a
    byte-swapped copy, ``"readonly"`` a copy that cannot be written.
    """
    if kind == "C":
        return np.array(values, order="C")  # (np.ascontiguousarray makes 0-d arrays 1-d)
    if kind == "F":
        return np.array(values, order="F")
    if kind in ("strided", "strided_F"):
        fill = np.nan if values.dtype.kind == "f" else dtype_max(values.dtype)
        big = np.full(
            tuple(2 * s for s in values.shape),
            fill,
            dtype=values.dtype,
            order="F" if kind == "strided_F" else "C",
        )
        index = (*(slice(1, None, 2) for _ in values.shape[:-1]), slice(None, None, -2))
        big[index] = values
        view = big[index]
        assert np.array_equal(view, values)
        assert values.size <= 1 or not (view.flags.c_contiguous or view.flags.f_contiguous)
        return view
    if kind == "swapped":
        swapped = values.astype(values.dtype.newbyteorder("S"))
        assert swapped.dtype.itemsize == 1 or not swapped.dtype.isnative
        return swapped
    if kind == "readonly":
        frozen = values.copy(order="K")
        frozen.flags.writeable = False
        return frozen
    raise AssertionError(kind)


# -- label arrays ---------------------------------------------------------------------------


def _id_values(dtype: np.dtype[Any]) -> st.SearchStrategy[int]:
    """Small ids, or ids at the top of the dtype's range."""
    top = dtype_max(dtype)
    return st.one_of(st.integers(1, min(6, top)), st.integers(max(1, top - 6), top))


@st.composite
def label_arrays(
    draw: st.DrawFn,
    dtypes: tuple[Any, ...] = LABEL_DTYPES,
    max_side: int = 7,
    layouts: tuple[str, ...] = ("C", "F", "strided"),
) -> np.ndarray:
    """A 1-D to 3-D label array (sides 0 to ``max_side``) holding background and up to
    four ids, each small or at the top of the dtype's range, in one of ``layouts``."""
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(0, max_side), min_size=ndim, max_size=ndim)))
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    if dtype.kind == "b":
        values = [True]
    else:
        values = draw(st.lists(_id_values(dtype), min_size=1, max_size=4, unique=True))
    codes = draw(hnp.arrays(np.uint8, shape, elements=st.integers(0, len(values))))
    lookup = np.array([0, *values], dtype=dtype)
    return layout(lookup[codes], draw(st.sampled_from(layouts)))


@st.composite
def any_label_arrays(draw: st.DrawFn) -> np.ndarray:
    """A 1-D to 4-D label array (sides 0 to 5) of any dtype holding any values it can:
    mostly a handful of small ids (so that ids repeat and runs form), sometimes anything
    up to the dtype's largest value; contiguous, strided or byte-swapped."""
    dtype = np.dtype(draw(st.sampled_from(LABEL_DTYPES)))
    if dtype.kind == "b":
        elements: st.SearchStrategy[Any] = st.booleans()
    else:
        top = dtype_max(dtype)
        elements = st.one_of(st.integers(0, 6), st.integers(0, top), st.just(top))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5))
    array = draw(hnp.arrays(dtype, shape, elements=elements))
    return layout(array, draw(st.sampled_from(["C", "F", "strided", "swapped"])))


def small_volumes(
    elements: st.SearchStrategy[int], max_side: int = 7
) -> st.SearchStrategy[np.ndarray]:
    """uint8 volumes of 1 to 3 dimensions (sides 1 to ``max_side``) with values drawn
    from ``elements``: few categories, for the operations that take them as given."""
    return hnp.arrays(
        np.uint8,
        hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=max_side),
        elements=elements,
    )


# -- deterministic volumes ------------------------------------------------------------------


def blocky_volume(shape: tuple[int, ...], ids: int, cell: int, seed: int) -> np.ndarray:
    """Random ids 0..ids on a coarse grid of ``cell``-voxel cubes, with scattered voxels."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, ids + 1, tuple(-(-n // cell) for n in shape))
    volume = coarse
    for axis in range(len(shape)):
        volume = np.repeat(volume, cell, axis=axis)
    volume = volume[tuple(slice(0, n) for n in shape)]
    scatter = rng.random(shape) < 0.01
    volume[scatter] = rng.integers(0, ids + 1, int(scatter.sum()))
    return volume.astype(np.min_scalar_type(ids))

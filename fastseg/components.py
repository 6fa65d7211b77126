"""Connected-component labeling of label maps (binary or multilabel), 1-D to 3-D.

Thin wrapper over :mod:`fastseg._kernels.components`: validates input, views the array
in the order it lies in memory (Fortran-ordered volumes are labelled transposed, without
a copy), picks the union-find index width and output dtype, and returns typed results.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from fastseg._arrays import LabelArray, as_label_array
from fastseg._jit import current_threads, thread_limit
from fastseg.dtypes import check_dtype_holds, fit_dtype

__all__ = ["Components", "label"]

Connectivity = Literal[1, 2, 3, 4, 6, 8, 18, 26]

# Valid connectivities per ndim: neighbour counts, and scipy/skimage "hops" 1..ndim.
_CONNECTIVITY: dict[int, dict[int, int]] = {
    1: {2: 2, 1: 2},
    2: {4: 4, 8: 8, 1: 4, 2: 8},
    3: {6: 6, 18: 18, 26: 26, 1: 6, 2: 18, 3: 26},
}
_FULL = {1: 2, 2: 8, 3: 26}
# The kernel always sees 3-D; a 1-D or 2-D neighbourhood is the 3-D one restricted to
# a single plane, where 6 gives 4 neighbours and 26 gives 8.
_AS_3D = {2: 6, 4: 6, 8: 26, 6: 6, 18: 18, 26: 26}

# Below this many rows per thread, labeling in one slab is faster than waking threads.
_MIN_ROWS_PER_SLAB = 64


class Components(NamedTuple):
    """Result of :func:`label`; unpacks as ``cc, count, values = fastseg.label(x)``."""

    labels: npt.NDArray[np.unsignedinteger[Any]]
    """Component map: 0 for background, components numbered 1..count."""
    count: int
    """Number of components."""
    values: npt.NDArray[Any]
    """``values[k]``: the input value component ``k`` came from; ``values[0]`` is the background."""


def _resolve_connectivity(connectivity: int | None, ndim: int) -> int:
    if connectivity is None:
        return _FULL[ndim]
    choices = _CONNECTIVITY[ndim]
    if isinstance(connectivity, bool) or connectivity not in choices:
        names = sorted(set(choices.values()))
        raise ValueError(
            f"connectivity {connectivity!r} is not valid for a {ndim}-D array; choose one of "
            f"{', '.join(map(str, names))} (or 1..{ndim} as the number of hops)"
        )
    return choices[connectivity]


def _view_3d(source: LabelArray) -> tuple[np.ndarray, bool]:
    """The labels as a C-contiguous 3-D view, and whether it is the caller's transpose."""
    array = source.flat.reshape(source.shape, order=source.order)
    transposed = source.order == "F"
    if transposed:
        array = array.T
    view = array.reshape((1,) * (3 - array.ndim) + array.shape)
    return view, transposed


def label(
    labels: npt.NDArray[Any],
    *,
    connectivity: Connectivity | None = None,
    background: int = 0,
    out_dtype: npt.DTypeLike | None = None,
    threads: int | None = None,
) -> Components:
    """Label the connected components of a binary or multilabel array.

    Two voxels belong to one component when they are neighbours under ``connectivity``
    and hold the same value; every value except ``background`` is foreground. A bool
    array is a binary image.

    Components are numbered 1, 2, ... in the order of their first voxel in row-major
    (C) order of the array's indices, the numbering scipy.ndimage.label and
    skimage.measure.label use. The numbering does not depend on the memory order of the
    input or on the number of threads.

    Parameters
    ----------
    labels : numpy.ndarray
        1-D, 2-D or 3-D integer or bool array, C or F order; values must be non-negative.
    connectivity : int, optional
        Which neighbours touch: 4 or 8 in 2-D, 6, 18 or 26 in 3-D (2 in 1-D); or, as in
        scipy and skimage, the number of hops 1..ndim. Default: full connectivity
        (8 in 2-D, 26 in 3-D), like cc3d and MONAI.
    background : int, optional
        The value that is not labelled (default 0).
    out_dtype : dtype, optional
        Integer dtype of the component map; by default the smallest unsigned type that
        holds ``count``. Too small raises ``ValueError``.
    threads : int, optional
        Threads to use; by default numba's configured count. ``1`` runs serially.

    Returns
    -------
    Components
        ``(labels, count, values)``: the component map (same shape and memory order as
        the input), the number of components and the input value of each component.

    Raises
    ------
    TypeError
        For a non-array or float input.
    ValueError
        For negative labels, more than 3 dimensions, an invalid connectivity or
        background, or an ``out_dtype`` too small for the count.

    Examples
    --------
    >>> import numpy as np
    >>> import fastseg
    >>> organs = np.array([[1, 1, 0, 2],
    ...                    [0, 0, 0, 2],
    ...                    [1, 0, 2, 2]], dtype=np.uint8)
    >>> cc, count, values = fastseg.label(organs, connectivity=4)
    >>> cc
    array([[1, 1, 0, 2],
           [0, 0, 0, 2],
           [3, 0, 2, 2]], dtype=uint8)
    >>> count, values
    (3, array([0, 1, 2, 1], dtype=uint8))
    """
    source = as_label_array(labels, ndims=(1, 2, 3))
    kind = _AS_3D[_resolve_connectivity(connectivity, source.original.ndim)]
    if isinstance(background, bool) or not isinstance(background, int | np.integer):
        raise TypeError(f"background must be an integer, got {background!r}")
    if background < 0:
        raise ValueError(f"background must be non-negative, got {background}")
    view, transposed = _view_3d(source)

    from fastseg._kernels import components as kernels

    with thread_limit(threads):
        n0, n1, n2 = view.shape
        rows = n0 * n1
        chunks = max(1, min(current_threads(), rows // _MIN_ROWS_PER_SLAB))
        bg = np.uint64(background)
        if source.size:
            row_offsets = kernels.count_runs(view, chunks)
        else:
            row_offsets = np.zeros(rows + 1, np.int64)
        n_runs = int(row_offsets[-1])
        run_start = np.empty(n_runs, np.int32 if n2 < 2**31 else np.int64)
        run_value = np.empty(n_runs, view.dtype)
        parent = np.empty(n_runs, np.int32 if n_runs < 2**31 else np.int64)
        if n_runs:
            kernels.find_runs(view, row_offsets, run_start, run_value, chunks)
            kernels.link_runs(n1, n2, bg, row_offsets, run_start, run_value, parent, kind, chunks)
        count = int(kernels.number_components(parent)) if n_runs else 0
        if transposed and count > 1:
            kernels.renumber_row_major(view.shape, row_offsets, run_start, parent, count)

        values_flat = np.empty(count + 1, source.flat.dtype)
        values_flat[0] = background if background <= np.iinfo(source.flat.dtype).max else 0
        if count:
            kernels.component_values(run_value, parent, values_flat)
        del run_value

        if out_dtype is None:
            dtype = fit_dtype(count)
        else:
            dtype = np.dtype(out_dtype)
            if dtype.kind not in "iu":
                raise TypeError(f"out_dtype must be an integer dtype, got {dtype}")
            check_dtype_holds(dtype, 0, count, "out_dtype")
        out_view = np.empty(view.shape, dtype)
        if out_view.size:
            kernels.paint(out_view, row_offsets, run_start, parent, chunks)

    out = out_view.reshape(view.shape[3 - source.original.ndim :])
    if transposed:
        out = out.T
    values = values_flat.view(source.dtype) if source.dtype.kind == "b" else values_flat.astype(source.dtype)
    return Components(out, count, values)

"""Block-wise relabeling of dask arrays: :func:`fastseg.remap` and
:func:`fastseg.to_semantic` on every block, lazily."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import dask.array as da
import numpy as np
import numpy.typing as npt
from dask.delayed import delayed

import fastseg
from fastseg._jit import thread_limit
from fastseg.dask._graph import check_labels
from fastseg.relabel import Missing
from fastseg.schema import Schema
from fastseg.segmap import SegmentMap

__all__ = ["remap", "to_semantic"]


def _apply_block(
    block: np.ndarray, function: Callable[..., Any], cast_to: np.dtype[Any], **kwargs: Any
) -> np.ndarray:
    with thread_limit(1):
        result: np.ndarray = function(block, **kwargs)
    return result.astype(cast_to, copy=False)


def _blockwise(
    darr: da.Array, func: Callable[..., Any], dtype: np.dtype[Any], **kwargs: Any
) -> da.Array:
    """``func(block, **kwargs)`` on every block, cast to one ``dtype``; each keyword
    argument is stored once in the graph, not once per block."""
    shared = {name: delayed(value, pure=True, traverse=False) for name, value in kwargs.items()}
    return da.map_blocks(
        _apply_block,
        darr,
        func,
        dtype,
        dtype=dtype,
        meta=np.empty((0,) * darr.ndim, dtype),
        **shared,
    )


def _kept_dtype(dtype: np.dtype[Any], labels: da.Array, keep: bool) -> np.dtype[Any]:
    """Blocks keep the values the mapping does not cover: the result's dtype must hold
    every value of the input's dtype too, whichever block holds them."""
    return np.promote_types(dtype, labels.dtype) if keep else dtype


def remap(
    darr: da.Array,
    mapping: Mapping[int, int] | npt.NDArray[np.integer],
    *,
    missing: Missing = "keep",
    out_dtype: npt.DTypeLike | None = None,
) -> da.Array:
    """:func:`fastseg.remap` on every block of a dask array, lazily.

    Parameters
    ----------
    darr : dask.array.Array
        Integer or bool labels, any shape and chunking.
    mapping, missing
        As for :func:`fastseg.remap`; the mapping is stored once in the graph.
    out_dtype : dtype, optional
        Integer dtype of the result. By default the smallest unsigned type holding
        every value the mapping produces, widened to the input's dtype with
        ``missing="keep"`` (unmapped values pass through, and no block can be asked
        in advance which ones it holds).

    Returns
    -------
    dask.array.Array
        Chunked like ``darr``.

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> import fastseg.dask
    >>> vertebrae = da.from_array(np.array([[0, 11, 12], [13, 13, 0]], np.uint32), chunks=2)
    >>> fastseg.dask.remap(vertebrae, {11: 1, 12: 1, 13: 1}, missing=0).compute(scheduler="sync")
    array([[0, 1, 1],
           [1, 1, 0]], dtype=uint8)
    """
    check_labels(darr, "darr", ndims=None)
    # fastseg.remap's argument checks and dtype rule, on one voxel; "error" would fail
    # on it, and adds no value of its own to the output range.
    probe_missing: Missing = 0 if missing == "error" else missing
    probe = fastseg.remap(
        np.zeros(1, darr.dtype), mapping, missing=probe_missing, out_dtype=out_dtype
    )
    dtype = (
        probe.dtype if out_dtype is not None else _kept_dtype(probe.dtype, darr, missing == "keep")
    )
    return _blockwise(darr, fastseg.remap, dtype, mapping=mapping, missing=missing, out_dtype=dtype)


def to_semantic(
    darr: da.Array,
    segment_map: SegmentMap,
    schema: Schema,
    *,
    unknown: Literal["error", "background", "keep"] = "error",
) -> da.Array:
    """:func:`fastseg.to_semantic` on every block of a dask instance map, lazily.

    The dtype is the smallest unsigned type holding every category value (widened
    to the input's dtype with ``unknown="keep"``).

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> import fastseg.dask
    >>> from fastseg import Category, Schema, Segment, SegmentMap
    >>> schema = Schema([Category("Vertebra", 1), Category("Disc", 2)])
    >>> spine = SegmentMap({1: Segment("Vertebra"), 2: Segment("Disc"), 3: Segment("Vertebra")})
    >>> instances = da.from_array(np.array([0, 1, 2, 3, 3], np.uint16), chunks=2)
    >>> fastseg.dask.to_semantic(instances, spine, schema).compute(scheduler="sync")
    array([0, 1, 2, 1, 1], dtype=uint8)
    """
    check_labels(darr, "darr", ndims=None)
    # fastseg.to_semantic's argument checks and dtype rule, on one voxel of value 0,
    # which every segment map maps (to background).
    probe = fastseg.to_semantic(np.zeros(1, darr.dtype), segment_map, schema, unknown=unknown)
    dtype = _kept_dtype(probe.dtype, darr, unknown == "keep")
    return _blockwise(
        darr, fastseg.to_semantic, dtype, segment_map=segment_map, schema=schema, unknown=unknown
    )

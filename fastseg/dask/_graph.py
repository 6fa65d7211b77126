"""Task graphs written out block by block, shared by the operations of :mod:`fastseg.dask`:
checking a dask label array, viewing it in 3-D, and the corners of its blocks."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from fastseg._arrays import as_label_array


def check_labels(darr: object, name: str, ndims: tuple[int, ...] | None = (1, 2, 3)) -> da.Array:
    """``darr`` as a dask array of integer or bool labels with known chunks (and
    ``ndims`` dimensions)."""
    if not isinstance(darr, da.Array):
        raise TypeError(
            f"{name} must be a dask array (dask.array.from_array, dask.array.from_zarr or "
            f"fastseg.dask.from_nifti), got {type(darr).__module__}.{type(darr).__qualname__}"
        )
    # The same dtype and dimension checks, and messages, as fastseg's functions.
    as_label_array(np.empty((0,) * darr.ndim, darr.dtype), name=name, ndims=ndims)
    if any(np.isnan(size) for sizes in darr.chunks for size in sizes):
        raise ValueError(
            f"{name} has unknown chunk sizes (shape {darr.shape}); call "
            f"{name}.compute_chunk_sizes() first"
        )
    return darr


def lifted(darr: da.Array) -> da.Array:
    """A 1-D or 2-D array as 3-D, with leading axes of size 1 (one block along them)."""
    return darr[(None,) * (3 - darr.ndim)]


def corners(volume: da.Array) -> dict[tuple[int, ...], tuple[int, int, int]]:
    """The first voxel of every block of a 3-D array, by block index."""
    starts = [np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64) for sizes in volume.chunks]
    corners = {}
    for index in np.ndindex(*volume.numblocks):
        a, b, c = (int(starts[axis][i]) for axis, i in enumerate(index))
        corners[index] = (a, b, c)
    return corners


class Tasks:
    """A task graph written out block by block: one dict entry per task (building one
    ``dask.delayed`` object per task costs about a millisecond, too slow for thousands
    of blocks). Keys stand for the results of their tasks in the arguments of others."""

    def __init__(self, *inputs: da.Array | Delayed, what: str, **options: Any) -> None:
        self.inputs = inputs
        self.prefix = f"fastseg-{what}-{tokenize(*inputs, options)}"
        self.graph: dict[Any, Any] = {}
        self._layers: HighLevelGraph | None = None
        self._layer = ""

    def add(self, kind: str, index: tuple[Any, ...], task: tuple[Any, ...]) -> Any:
        """Add ``task`` (a function and its arguments) under the key
        ``(<prefix>-<kind>, *index)`` (just the name without an index); return the key."""
        name = f"{self.prefix}-{kind}"
        key = (name, *index) if index else name
        self.graph[key] = task
        return key

    def _layered(self, layer: str) -> HighLevelGraph:
        """Every task so far, as one layer on top of the inputs' graphs."""
        if self._layers is None:
            self._layer = layer
            inputs: Any = self.inputs  # dask collections, which dask's annotations do not list
            self._layers = HighLevelGraph.from_collections(layer, self.graph, inputs)
        return self._layers

    def array(self, kind: str, like: da.Array, dtype: np.dtype[Any]) -> da.Array:
        """The tasks ``(<prefix>-<kind>, *block index)`` as a dask array chunked like ``like``."""
        name = f"{self.prefix}-{kind}"
        meta = np.empty((0,) * like.ndim, dtype)
        return da.Array(self._layered(name), name, chunks=like.chunks, dtype=dtype, meta=meta)

    def delayed(self, key: Any) -> Delayed:
        """The result of the task ``key`` as a delayed object."""
        return Delayed(key, self._layered(f"{self.prefix}-graph"), layer=self._layer)


def compact(block: np.ndarray) -> np.ndarray:
    """A block sliced from a larger array, copied in the memory order of its strides:
    a block of a Fortran-ordered volume (nibabel's) becomes Fortran-ordered, a copy
    several times faster than a transposing one into C order."""
    if block.flags.c_contiguous or block.flags.f_contiguous:
        return block
    return np.array(block, order="K")

"""fastseg on dask: chunked volumes and batches of files, on threads or a cluster.

For volumes that outgrow memory (or one machine) and datasets of many files. Needs the
optional extra: ``pip install 'fastseg[dask]'``; ``import fastseg`` never imports dask,
this package is imported explicitly:

- :func:`label`: connected components of a chunked (multilabel) dask array, equal to
  :func:`fastseg.label` on the whole array, ids included;
- :func:`stats`: per-instance statistics from per-block partial sums, one
  :class:`fastseg.InstanceStats` table;
- :func:`remap` and :func:`to_semantic`: block-wise relabeling, lazily;
- :func:`map_files`: one function over many files on a ``dask.distributed`` client (or
  any executor), every file's result or error kept;
- :func:`from_nifti`: a NIfTI file as a lazy dask array, read block by block
  (for zarr, ``dask.array.from_zarr`` is already lazy).

Every block is one task running fastseg's kernels on one thread: dask provides the
parallelism, across threads, processes or machines. One module per operation:
:mod:`~fastseg.dask.labeling`, :mod:`~fastseg.dask.statistics`,
:mod:`~fastseg.dask.relabeling`, :mod:`~fastseg.dask.nifti` and :mod:`~fastseg.dask.files`.
"""

from __future__ import annotations

try:
    import dask.array  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("fastseg.dask needs dask: pip install 'fastseg[dask]'") from error

from fastseg.dask.files import FileResult, map_files, nifti_files
from fastseg.dask.labeling import DaskComponents, label
from fastseg.dask.nifti import from_nifti
from fastseg.dask.relabeling import remap, to_semantic
from fastseg.dask.statistics import stats

__all__ = [
    "DaskComponents",
    "FileResult",
    "from_nifti",
    "label",
    "map_files",
    "nifti_files",
    "remap",
    "stats",
    "to_semantic",
]

"""Compile the common kernel specialisations ahead of time.

numba compiles a kernel the first time it meets a new combination of argument types and
caches it on disk. :func:`warmup` runs every public operation on small inputs of each
label dtype. Every kernel is a serial loop (parallel operations run the same kernels on
chunks from several threads), so small inputs compile everything large ones use, and a
process with a warm cache never compiles, whatever the size of its volumes.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["OPERATIONS", "WarmupReport", "warmup"]

DEFAULT_DTYPES: tuple[npt.DTypeLike, ...] = (np.uint8, np.uint16, np.uint32)


def _sample(dtype: np.dtype[Any]) -> np.ndarray:
    """A small 3-D label map with touching labels, a hole and a few components."""
    labels = np.zeros((3, 6, 7), dtype)
    labels[:, 1:4, 1:3] = 1
    labels[1, 4:6, 3:7] = 2
    labels[2, 0, 6] = 1
    labels[0, 5, 0] = 3
    return labels


def _many_components(dtype: np.dtype[Any], count: int) -> np.ndarray:
    """A 1-D map with ``count`` components (300: a uint16 component map; 70,000: uint32)."""
    labels = np.zeros(2 * count, dtype)
    labels[::2] = 1
    return labels


def _with_hole(dtype: np.dtype[Any]) -> np.ndarray:
    """A closed shell of label 1 around background, next to label 2."""
    labels = np.zeros((5, 5, 6), dtype)
    labels[1:4, 1:4, 1:4] = 1
    labels[2, 2, 2] = 0
    labels[:, :, 5] = 2
    return labels


def _sparse(dtype: np.dtype[Any]) -> np.ndarray | None:
    """Sparse ids (hash tables instead of lookup tables), for dtypes that hold them."""
    if dtype.itemsize < 4:
        return None
    labels = _sample(dtype)
    return np.where(labels > 0, labels.astype(np.uint64) * 1_000_003, 0).astype(dtype)


def _relabel(dtype: np.dtype[Any]) -> None:
    import fastseg

    for labels in (_sample(dtype), _sparse(dtype)):
        if labels is None:
            continue
        present = fastseg.unique(labels, return_counts=True)[0]
        fastseg.remap(labels, {int(v): 1 for v in present})  # complete: the dense kernel
        fastseg.remap(labels, {int(present[-1]): 300})  # partial, 16-bit output
        fastseg.remap(labels, {int(present[-1]): 1}, missing=0)
        fastseg.remap(labels, {int(present[0]): 5, int(present[-1]): 300})  # a table with gaps
        fastseg.renumber(labels)
        fastseg.mask(labels, present[:2])
    if dtype.itemsize >= 2:
        # An id too large for a table without counting the distinct ids first.
        stray = _sample(dtype)
        stray[0, 0, 0] = 20_000
        fastseg.stats(stray)
    if dtype.itemsize >= 4:
        # Many sparse ids: renumbering through wide hash-table slots.
        fastseg.renumber(np.arange(70_000, dtype=dtype) * 3)


def _label(dtype: np.dtype[Any]) -> None:
    import fastseg

    for labels in (
        _sample(dtype),
        _sample(dtype).T,
        _many_components(dtype, 300),
        _many_components(dtype, 70_000),
    ):
        for connectivity in (None, 1):
            fastseg.label(labels, connectivity=connectivity)


def _stats(dtype: np.dtype[Any]) -> None:
    import fastseg

    labels = _sample(dtype)
    fastseg.stats(labels)
    # Intensities as nibabel's get_fdata (float64) and MONAI or torch (float32) give
    # them; only the small intensity kernel depends on their dtype.
    fastseg.stats(labels, labels.astype(np.float64))
    fastseg.stats(labels, labels.astype(np.float32), surface=True)
    fastseg.contacts(labels)


def _cleanup(dtype: np.dtype[Any]) -> None:
    import fastseg

    labels = _sample(dtype)
    fastseg.largest_k(labels)
    fastseg.dust(labels, 2)
    fastseg.fill_holes(_with_hole(dtype))
    fastseg.fill_holes(_with_hole(dtype), per_label=False)


def _components(dtype: np.dtype[Any]) -> None:
    import fastseg

    labels = _sample(dtype)
    components = fastseg.label(labels).labels
    # Component maps of large volumes are wider than the labels they come from.
    for width in DEFAULT_DTYPES:
        fastseg.component_values(components.astype(width), labels)
    for _ in fastseg.each(components):
        pass
    for _ in fastseg.binary_masks(labels):
        pass


def _conversions(dtype: np.dtype[Any]) -> None:
    import fastseg

    schema = fastseg.Schema([fastseg.Category(name, value) for name, value in (("a", 1), ("b", 2))])
    segments = fastseg.SegmentMap({1: fastseg.Segment("a"), 2: fastseg.Segment("b")})
    labels = np.minimum(_sample(dtype), 2)
    fastseg.to_semantic(labels, segments, schema)
    fastseg.to_instances(labels, schema)
    fastseg.to_instances(labels, schema, split=False)


def _sampling(dtype: np.dtype[Any]) -> None:
    import fastseg

    labels = _sample(dtype)
    fastseg.locations(labels, per_class=3, per_instance=2, seed=0)
    fastseg.locations(labels.T, per_class=3, seed=0)


def _files(dtype: np.dtype[Any]) -> None:
    import tempfile

    import fastseg

    # Mostly background, as per-instance masks are: written through the span kernel.
    labels = np.zeros((40, 40, 40), dtype, order="F")
    labels[20, 20, 20] = 1
    with tempfile.TemporaryDirectory(prefix="fastseg-warmup-") as folder:
        path = f"{folder}/labels.nii.gz"
        fastseg.save(path, labels, affine=np.eye(4))
        fastseg.load(path)


def _dask(dtype: np.dtype[Any]) -> None:
    import dask
    import dask.array as da

    import fastseg.dask

    volume = da.from_array(_sample(dtype), chunks=(2, 3, 4))  # type: ignore[no-untyped-call]
    fortran = volume.map_blocks(np.asfortranarray)  # blocks as NIfTI files hold them
    with dask.config.set(scheduler="sync"):
        for blocks in (volume, fortran):
            # Painted into one array (compute) or block by block (dask.compute), from the
            # runs kept by the first pass or from a second reading, into every id width
            # (large volumes need uint16 or uint32 ids whatever their label dtype).
            fastseg.dask.label(blocks).compute()
            dask.compute(*fastseg.dask.label(blocks, keep_runs=False))
            fastseg.dask.label(blocks, out_dtype=dtype).compute()
            dask.compute(*fastseg.dask.label(blocks, out_dtype=dtype))
        fastseg.dask.stats(volume, surface=True)


def _evaluate(dtype: np.dtype[Any]) -> None:
    import fastseg

    reference = _sample(dtype)
    prediction = np.roll(reference, 1, axis=2)
    fastseg.evaluate(prediction, reference, metrics=["overlap", "distance", "instances"])
    # DeepMind's surfels have kernels of their own (compiled once, for every label dtype).
    fastseg.evaluate(prediction, reference, metrics=["distance"], surface="deepmind")


# Operation groups share kernels; each runs every public function of its group.
OPERATIONS: dict[str, Callable[[np.dtype[Any]], None]] = {
    "relabel": _relabel,
    "label": _label,
    "stats": _stats,
    "cleanup": _cleanup,
    "components": _components,
    "conversions": _conversions,
    "files": _files,
    "evaluate": _evaluate,
    "sampling": _sampling,
}
# fastseg.dask's own kernels (joining blocks), where the optional dask extra is installed.
if importlib.util.find_spec("dask") is not None:
    OPERATIONS["dask"] = _dask


@dataclass(frozen=True)
class WarmupReport:
    """What :func:`fastseg.warmup` did.

    Examples
    --------
    >>> import fastseg
    >>> report = fastseg.warmup(["relabel"], dtypes=["uint8"])
    >>> report.operations, report.dtypes, report.total_seconds > 0
    (('relabel',), (dtype('uint8'),), True)
    """

    operations: tuple[str, ...]
    """The operation groups warmed up."""
    dtypes: tuple[np.dtype[Any], ...]
    """The label dtypes warmed up."""
    seconds: dict[str, float]
    """Wall time per operation group."""
    compiled: int
    """Specialisations compiled (and written to the cache, where there is one)."""
    loaded: int
    """Specialisations loaded from the on-disk cache."""
    cache_dir: str | None
    """Where compiled kernels are cached; ``None`` when they compile in memory."""

    @property
    def total_seconds(self) -> float:
        """Wall time of the whole warm-up."""
        return sum(self.seconds.values())


def _dtype_list(dtypes: Iterable[npt.DTypeLike]) -> tuple[np.dtype[Any], ...]:
    result = []
    for item in dtypes:
        dtype = np.dtype(item)
        if dtype.kind not in "biu":
            raise TypeError(f"dtypes must be integer or bool label dtypes, got {dtype}")
        result.append(dtype)
    if not result:
        raise ValueError("dtypes must name at least one label dtype")
    return tuple(result)


def warmup(
    operations: Iterable[str] | None = None,
    *,
    dtypes: Iterable[npt.DTypeLike] = DEFAULT_DTYPES,
) -> WarmupReport:
    """Compile the kernels of common operations ahead of time.

    Runs each operation group on small inputs of every dtype in ``dtypes``, which
    compiles every kernel large inputs use as well. Compiled kernels land in the on-disk cache (see
    ``fastseg.cache_dir()``), so call this once where the cache is written, e.g. while
    building a container image, and every later process, data loader workers included,
    starts warm. Calling it in a process whose cache is warm only loads the kernels,
    which also makes the first real call fast.

    Signed and bool labels share the kernels of the unsigned dtype of the same width, so
    ``dtypes=["uint16"]`` covers int16 too.

    Parameters
    ----------
    operations : iterable of str, optional
        Groups from ``fastseg.warmup_operations()``: ``"relabel"`` (unique, remap,
        renumber, mask), ``"label"``, ``"stats"`` (and contacts), ``"cleanup"`` (dust,
        largest_k, fill_holes), ``"components"`` (each, component_values, binary_masks),
        ``"conversions"`` (to_semantic, to_instances), ``"files"`` (save, load),
        ``"evaluate"``, ``"sampling"`` (locations) and, where dask is installed, ``"dask"``
        (fastseg.dask's label and stats). Default: all.
    dtypes : iterable of dtype, optional
        Label dtypes to compile for (default uint8, uint16 and uint32).

    Returns
    -------
    WarmupReport
        Groups and dtypes warmed up, time per group, and how many specialisations were
        compiled or loaded from the cache.

    Raises
    ------
    ValueError
        For an unknown operation group or no dtypes.
    TypeError
        For a dtype that is not a label dtype, or a single string as ``operations``.

    Examples
    --------
    >>> import fastseg
    >>> report = fastseg.warmup(["relabel"], dtypes=["uint8"])
    >>> report.operations, report.seconds.keys() == {"relabel"}
    (('relabel',), True)
    """
    from fastseg._jit import cache_dir, compile_counts

    if isinstance(operations, str):
        raise TypeError(f"operations must be a list of names, got the string {operations!r}")
    names = tuple(OPERATIONS) if operations is None else tuple(operations)
    unknown = [name for name in names if name not in OPERATIONS]
    if unknown:
        raise ValueError(f"unknown operations {unknown}; choose from {', '.join(OPERATIONS)}")
    chosen = _dtype_list(dtypes)
    # Kernels see the unsigned dtype of each width; one sample per width suffices.
    widths = tuple(dict.fromkeys(np.dtype(f"u{d.itemsize}") for d in chosen))
    loaded_before, compiled_before = compile_counts()
    seconds: dict[str, float] = {}
    for name in names:
        started = time.perf_counter()
        for dtype in widths:
            OPERATIONS[name](dtype)
        seconds[name] = time.perf_counter() - started
    loaded, compiled = compile_counts()
    return WarmupReport(
        operations=names,
        dtypes=chosen,
        seconds=seconds,
        compiled=compiled - compiled_before,
        loaded=loaded - loaded_before,
        cache_dir=cache_dir(),
    )


def warmup_operations() -> tuple[str, ...]:
    """The operation groups :func:`fastseg.warmup` knows.

    Examples
    --------
    >>> import fastseg
    >>> fastseg.warmup_operations()[:8]
    ('relabel', 'label', 'stats', 'cleanup', 'components', 'conversions', 'files', 'evaluate')
    """
    return tuple(OPERATIONS)

"""Compile the common kernel specialisations ahead of time.

numba compiles a kernel the first time it meets a new combination of argument types and
caches it on disk. :func:`warmup` runs every public operation on small inputs of each
label dtype. Every kernel is a serial loop (parallel operations run the same kernels on
chunks from several threads), so small inputs compile everything large ones use, and a
process with a warm cache never compiles, whatever the size of its volumes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
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
    from dask.base import compute

    import fastseg.dask

    volume = da.from_array(_sample(dtype), chunks=(2, 3, 4))  # type: ignore[no-untyped-call]
    fortran = volume.map_blocks(np.asfortranarray)  # blocks as NIfTI files hold them
    with dask.config.set(scheduler="sync"):
        for blocks in (volume, fortran):
            # Painted into one array (compute) or block by block (dask.compute), from the
            # runs kept by the first pass or from a second reading, into every id width
            # (large volumes need uint16 or uint32 ids whatever their label dtype).
            fastseg.dask.label(blocks).compute()
            compute(*fastseg.dask.label(blocks, keep_runs=False))  # type: ignore[no-untyped-call]
            fastseg.dask.label(blocks, out_dtype=dtype).compute()
            compute(*fastseg.dask.label(blocks, out_dtype=dtype))  # type: ignore[no-untyped-call]
        fastseg.dask.stats(volume, surface=True)


def _evaluate(dtype: np.dtype[Any]) -> None:
    import fastseg

    reference = _sample(dtype)
    prediction = np.roll(reference, 1, axis=2)
    fastseg.evaluate(prediction, reference, metrics=["overlap", "distance", "instances"])
    # DeepMind's surfels have kernels of their own (compiled once, for every label dtype).
    # A 2-D section runs them with the same argument types as a volume, without the 3-D
    # surfel area table, which only optional packages provide.
    section = reference[1]
    fastseg.evaluate(np.roll(section, 1, axis=1), section, metrics=["distance"], surface="deepmind")


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
    """Time spent on each operation group, over its dtypes. With several processes, the
    sum of the times the group took in whichever processes ran it; groups run at the same
    time then, so these add up to more than :attr:`total_seconds`."""
    compiled: int
    """Specialisations compiled (and written to the cache, where there is one), summed
    over the processes. With several processes a kernel two of them needed at the same
    time may be compiled twice, so this can exceed the count of a single process."""
    loaded: int
    """Specialisations loaded from the on-disk cache, summed over the processes: those
    found in the cache, and with several processes, those one process loaded after
    another compiled them (the calling process loading the work of the others, which
    :func:`warmup` does last, is not counted)."""
    cache_dir: str | None
    """Where compiled kernels are cached; ``None`` when they compile in memory."""
    processes: int = 1
    """Processes that may have run operation groups: 1 is the calling process alone;
    more is the calling process and ``processes - 1`` worker processes (started only
    once the calling process had something to compile)."""
    elapsed: float | None = None
    """Wall time of the whole warm-up; ``None``: the sum of :attr:`seconds`."""

    @property
    def total_seconds(self) -> float:
        """Wall time of the whole warm-up."""
        return sum(self.seconds.values()) if self.elapsed is None else self.elapsed


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


def _process_count(processes: object, tasks: int) -> int:
    """How many processes to warm up in: ``processes``, or the CPUs this process may use,
    never more than there are tasks."""
    if processes is None:
        if hasattr(os, "sched_getaffinity"):
            available = len(os.sched_getaffinity(0))
        else:
            available = os.cpu_count() or 1
        return max(1, min(available, tasks))
    if isinstance(processes, bool) or not isinstance(processes, int):
        raise TypeError(f"processes must be an int or None, got {type(processes).__name__}")
    if processes < 1:
        raise ValueError(f"processes must be at least 1, got {processes}")
    return max(1, min(processes, tasks))


def _writable_cache_root() -> str | None:
    """The cache root, where this process can write it; ``None`` when kernels compile in
    memory or the cache is read-only, where compiling in other processes is wasted.

    Decided without importing numba, so that worker processes start before this process
    pays for that import.
    """
    from fastseg._jit import cache_root

    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".probe-warmup-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError:
        return None
    return str(root)


Task = tuple[str, str]  # (operation group, dtype name)


def _plan(names: tuple[str, ...], widths: tuple[np.dtype[Any], ...]) -> list[tuple[Task, ...]]:
    """The (group, width) tasks in the order processes take them: every group for one
    width before the next width.

    Processes running at the same time then work on different groups, and the kernels a
    group compiles for every width alike (the sorts behind sampling and dask, the
    distance transform of evaluate) are compiled by whichever process runs that group for
    the first width, and loaded from the cache for the others. Taking every width of a
    group in turn instead had two processes compile those at once: about 10 more
    specialisations compiled, a tenth more compile time in all.
    """
    return [((name, w.name),) for w in widths for name in names]


def _run_tasks(tasks: tuple[Task, ...], seconds: dict[str, float]) -> None:
    for name, width in tasks:
        started = time.perf_counter()
        OPERATIONS[name](np.dtype(width))
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started


class WarmupError(RuntimeError):
    """An operation group failed in a worker process of :func:`fastseg.warmup`."""


Result = tuple[dict[str, float], int, int]
"""Seconds per group, specialisations loaded and compiled."""

# Workers are fresh interpreters (``python -c``), never the caller's main module run
# again as multiprocessing's spawn and forkserver do: a script calling warmup() at top
# level, without an ``if __name__ == "__main__"`` guard, works as it did in one process.
_WORKER_COMMAND = "from fastseg._warmup import _serve; _serve()"


def _serve() -> None:
    """A worker process: one JSON list of (group, dtype) tasks per line on stdin, one JSON
    reply per line on stdout (its seconds, loaded and compiled counts, or the error)."""
    import json
    import signal
    import sys

    from fastseg._jit import compile_counts

    # Ctrl-C reaches the whole process group; the caller stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Replies go to the original stdout; anything else printed goes to stderr.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    for line in sys.stdin:
        tasks = tuple((str(name), str(width)) for name, width in json.loads(line))
        try:
            loaded_before, compiled_before = compile_counts()
            seconds: dict[str, float] = {}
            _run_tasks(tasks, seconds)
            loaded, compiled = compile_counts()
            reply: dict[str, Any] = {
                "seconds": seconds,
                "loaded": loaded - loaded_before,
                "compiled": compiled - compiled_before,
            }
        except Exception as error:  # reported by the caller, which stops the others
            reply = {"error": f"{type(error).__name__}: {error}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


class _Worker:
    """A worker process of :func:`warmup` compiling into the cache under ``root``."""

    def __init__(self, root: str) -> None:
        import subprocess
        import sys

        # The cache directory is read when the worker first imports a kernel module.
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WORKER_COMMAND],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "FASTSEG_CACHE_DIR": root},
        )

    def run(self, tasks: tuple[Task, ...]) -> Result:
        """Run ``tasks`` in the worker; its failure as a :class:`WarmupError`."""
        import json

        assert self.process.stdin is not None
        assert self.process.stdout is not None
        try:
            self.process.stdin.write(json.dumps(tasks) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except OSError:
            line = ""
        if not line:
            raise WarmupError(
                "a warm-up worker process ended unexpectedly (killed, or out of memory)"
            )
        reply = json.loads(line)
        if "error" in reply:
            groups = ", ".join(f"{name} ({width})" for name, width in tasks)
            raise WarmupError(f"warming up {groups} failed in a worker process: {reply['error']}")
        return reply["seconds"], reply["loaded"], reply["compiled"]

    def stop(self) -> None:
        """End the worker: at once if it is busy (the caller failed or was interrupted)."""
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except Exception:
            self.process.kill()
            self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()


def _warm_in_processes(
    plan: list[tuple[Task, ...]], processes: int, root: str, load: bool
) -> Result:
    """Run the tasks of ``plan`` in this process and ``processes - 1`` workers, each taking
    the next task in order when it is free; this process then loads what the workers
    compiled."""
    import threading

    from fastseg import _jit
    from fastseg._jit import compile_counts

    seconds: dict[str, float] = {}
    loaded = compiled = 0
    claim = threading.Lock()
    following = 0  # the next task nobody has taken
    elsewhere: list[tuple[Task, ...]] = []  # tasks a worker ran, to load here afterwards
    problems: list[BaseException] = []
    workers: list[_Worker] = []
    threads: list[threading.Thread] = []

    def take() -> int | None:
        nonlocal following
        if following == len(plan) or problems:
            return None
        following += 1
        return following - 1

    def add(result: Result) -> None:
        nonlocal loaded, compiled
        _add_times(seconds, result[0])
        loaded += result[1]
        compiled += result[2]

    def serve(worker: _Worker) -> None:
        # A worker gets its next task only once it is free, so that no process waits on
        # a task another could have run.
        while True:
            with claim:
                index = take()
            if index is None:
                return
            try:
                result = worker.run(plan[index])
            except BaseException as error:
                with claim:
                    problems.append(error)
                return
            with claim:
                add(result)
                elsewhere.append(plan[index])

    started = False

    def start_workers() -> None:
        # Only once this process compiles: on a warm cache it loads every kernel itself
        # faster than a worker process starts, and no worker starts.
        nonlocal started
        with claim:
            if started:
                return
            started = True
        if earlier_notice is not None:
            earlier_notice()
        try:
            for _ in range(processes - 1):
                workers.append(_Worker(root))
        except OSError as error:
            with claim:
                problems.append(WarmupError(f"could not start a warm-up worker process: {error}"))
            return
        for worker in workers:
            thread = threading.Thread(target=serve, args=(worker,), daemon=True)
            thread.start()
            threads.append(thread)

    earlier_notice = _jit._compile_notice
    _jit.on_first_compile(start_workers)
    try:
        try:
            while True:
                with claim:
                    index = take()
                if index is None:
                    break
                loaded_before, compiled_before = compile_counts()
                times: dict[str, float] = {}
                _run_tasks(plan[index], times)
                loaded_now, compiled_now = compile_counts()
                with claim:
                    add((times, loaded_now - loaded_before, compiled_now - compiled_before))
        finally:
            with claim:
                if not started:  # nothing compiled: the notice is not this function's
                    _jit.on_first_compile(earlier_notice)
                    started = True
        for thread in threads:
            thread.join()
    except BaseException:
        for worker in workers:  # interrupted or failed here: the workers' work is moot
            worker.process.kill()
        raise
    finally:
        for worker in workers:
            worker.stop()
    if problems:
        raise problems[0]
    if load:
        # The workers' kernels, from the cache into this process, so that its first real
        # call is as fast as after an in-process warm-up (only a failed cache write
        # compiles here).
        compiled_before = compile_counts()[1]
        for tasks in elsewhere:
            _run_tasks(tasks, {})
        compiled += compile_counts()[1] - compiled_before
    return seconds, loaded, compiled


def _add_times(total: dict[str, float], times: dict[str, float]) -> None:
    for name, value in times.items():
        total[name] = total.get(name, 0.0) + value


def warmup(
    operations: Iterable[str] | None = None,
    *,
    dtypes: Iterable[npt.DTypeLike] = DEFAULT_DTYPES,
    processes: int | None = None,
) -> WarmupReport:
    """Compile the kernels of common operations ahead of time.

    Runs each operation group on small inputs of every dtype in ``dtypes``, which
    compiles every kernel large inputs use as well. Compiled kernels land in the on-disk cache (see
    ``fastseg.cache_dir()``), so call this once where the cache is written, e.g. while
    building a container image, and every later process, data loader workers included,
    starts warm. Calling it in a process whose cache is warm only loads the kernels,
    which also makes the first real call fast.

    Compiling is single-threaded, so by default the groups and dtypes are shared out
    between this process and worker processes, one per further CPU. The workers compile
    into the same cache; this process then loads what they compiled, so that afterwards
    every kernel is loaded here as with ``processes=1``. Workers start only once this
    process has something to compile: on a warm cache everything is loaded here, as with
    ``processes=1``, without waiting for worker processes to start. Workers are fresh
    interpreters (``sys.executable``) that never run the calling script, so a script
    needs no ``if __name__ == "__main__":`` guard around this call.

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
    processes : int, optional
        Processes to compile in, this one included (default: one per CPU this process
        may use, at most one per group and dtype width). 1 runs everything in this
        process. Where the cache cannot be written (kernels compile in memory, or a
        read-only cache), everything runs in this process whatever this says, as
        kernels compiled elsewhere would not reach it.

    Returns
    -------
    WarmupReport
        Groups and dtypes warmed up, time per group, how many specialisations were
        compiled or loaded from the cache, and in how many processes.

    Raises
    ------
    ValueError
        For an unknown operation group, no dtypes, or ``processes`` below 1.
    TypeError
        For a dtype that is not a label dtype, a single string as ``operations``, or a
        ``processes`` that is not an int.
    RuntimeError
        (``fastseg._warmup.WarmupError``) When a group fails in a worker process, or a
        worker process dies; the workers are stopped first.

    Examples
    --------
    >>> import fastseg
    >>> report = fastseg.warmup(["relabel"], dtypes=["uint8"])
    >>> report.operations, report.seconds.keys() == {"relabel"}
    (('relabel',), True)
    """
    return _warmup(operations, dtypes=dtypes, processes=processes, load=True)


def _warmup(
    operations: Iterable[str] | None,
    *,
    dtypes: Iterable[npt.DTypeLike],
    processes: int | None,
    load: bool,
) -> WarmupReport:
    """:func:`warmup`; ``load=False`` leaves the kernels worker processes compiled in the
    cache only (for a process that ends right after, as the command line does)."""
    from fastseg._jit import cache_dir, compile_counts

    started = time.perf_counter()
    if isinstance(operations, str):
        raise TypeError(f"operations must be a list of names, got the string {operations!r}")
    names = tuple(OPERATIONS) if operations is None else tuple(operations)
    unknown = [name for name in names if name not in OPERATIONS]
    if unknown:
        raise ValueError(f"unknown operations {unknown}; choose from {', '.join(OPERATIONS)}")
    chosen = _dtype_list(dtypes)
    # Kernels see the unsigned dtype of each width; one sample per width suffices.
    widths = tuple(dict.fromkeys(np.dtype(f"u{d.itemsize}") for d in chosen))
    plan = _plan(names, widths)
    count = _process_count(processes, len(plan))
    root = _writable_cache_root() if count > 1 else None
    if root is None:
        loaded_before, compiled_before = compile_counts()
        seconds = {name: 0.0 for name in names}
        _run_tasks(tuple((name, w.name) for name in names for w in widths), seconds)
        loaded, compiled = compile_counts()
        return WarmupReport(
            operations=names,
            dtypes=chosen,
            seconds=seconds,
            compiled=compiled - compiled_before,
            loaded=loaded - loaded_before,
            cache_dir=cache_dir(),
        )
    seconds, loaded, compiled = _warm_in_processes(plan, count, root, load)
    return WarmupReport(
        operations=names,
        dtypes=chosen,
        seconds={name: seconds.get(name, 0.0) for name in names},
        compiled=compiled,
        loaded=loaded,
        cache_dir=cache_dir(),
        processes=count,
        elapsed=time.perf_counter() - started,
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

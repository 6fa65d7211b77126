"""The one place that decides how kernels are compiled and how many threads they use.

Kernel modules (``fastseg._kernels.*``) decorate their functions with :func:`kernel`.
Importing :mod:`fastseg` never imports numba: public wrappers import kernel modules on
their first call, and numba compiles a specialisation on its first use.

Where compiled kernels are cached is numba's own choice, which is already the one fastseg
wants: ``NUMBA_CACHE_DIR`` when set (and writable), else ``__pycache__`` beside the kernel
sources when the installation is writable, else the per-user cache directory
(``$XDG_CACHE_HOME/numba`` or ``~/.cache/numba``). Only the last resort is fastseg's:
when none of these is writable, kernels compile in memory instead of failing (numba
refuses ``cache=True`` then).

Threads: parallel kernels run in numba's thread pool, at most :func:`current_threads`
threads per call. Three things make that safe wherever data loaders call fastseg:

- a process forked after numba's GNU OpenMP pool started cannot use that pool (numba
  aborts the child), so such children run the serial twins;
- numba's ``workqueue`` layer aborts when two Python threads launch parallel kernels at
  once, so with that layer one call at a time runs in parallel and concurrent calls run
  the serial twin meanwhile;
- inside a PyTorch DataLoader worker (which already parallelises across samples), the
  default is one thread, like ``torch.set_num_threads(1)`` in workers.

Serial twins compute exactly what the parallel kernels do (same source, same chunks), so
none of this changes a result.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import types
import warnings
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# nogil lets thread-pool data loaders run kernels concurrently; the numpy error model
# drops the division-by-zero branches numba would otherwise insert into hot loops.
_COMMON_OPTIONS: dict[str, Any] = {"nogil": True, "error_model": "numpy"}

# Every dispatcher made here, in decoration order: what warmup compiles and what the
# compile statistics count.
_DISPATCHERS: list[Any] = []
_PARALLEL_KERNELS: list[ParallelKernel] = []


@functools.cache
def _numba() -> Any:
    import numba

    return numba


def _compile(func: Callable[..., Any], parallel: bool) -> Any:
    numba = _numba()
    options = dict(_COMMON_OPTIONS, parallel=parallel)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", numba.NumbaWarning)
            dispatcher = numba.njit(cache=True, **options)(func)
    except RuntimeError:
        # No writable cache directory anywhere: compile in memory, silently.
        dispatcher = numba.njit(cache=False, **options)(func)
    _DISPATCHERS.append(dispatcher)
    return dispatcher


class ParallelKernel:
    """A parallel kernel and its serial twin, compiled from the same source.

    The last argument of every parallel kernel is the number of chunks it splits its
    work into. The serial twin runs instead of the parallel version when there is one
    chunk (small arrays never wait for numba's thread pool: milliseconds on a busy
    machine), when one thread is in effect, when the thread pool cannot be used from
    this process (a fork of a process running GNU OpenMP) and, with numba's workqueue
    layer, while another thread runs a parallel kernel.
    """

    def __init__(self, func: Callable[..., Any]) -> None:
        self.parallel = _compile(func, parallel=True)
        # A distinct qualified name gives the twin its own on-disk cache entry.
        twin = types.FunctionType(
            func.__code__, func.__globals__, func.__name__, func.__defaults__, func.__closure__
        )
        twin.__qualname__ = f"{func.__qualname__}_serial"
        twin.__module__ = func.__module__
        self.serial = _compile(twin, parallel=False)
        functools.update_wrapper(self, func)
        _PARALLEL_KERNELS.append(self)

    def __call__(self, *args: Any) -> Any:
        if args[-1] != 1 and not _pool_unusable:
            threads = current_threads()
            if threads > 1:
                return _run_parallel(self, threads, args)
        return self.serial(*args)


def _run_parallel(kernel: ParallelKernel, threads: int, args: tuple[Any, ...]) -> Any:
    numba = _numba()
    previous = numba.get_num_threads()  # starts numba's thread pool on first use
    exclusive = _layer_is_workqueue()
    if exclusive and not _workqueue_lock.acquire(blocking=False):
        return kernel.serial(*args)
    try:
        if previous != threads:
            numba.set_num_threads(threads)
        try:
            return kernel.parallel(*args)
        finally:
            if previous != threads:
                numba.set_num_threads(previous)
    finally:
        if exclusive:
            _workqueue_lock.release()


@functools.cache
def _layer_is_workqueue() -> bool:
    """Whether numba's thread pool (started) is the workqueue layer, which is not
    threadsafe: two concurrent parallel launches abort the process."""
    return bool(_numba().threading_layer() == "workqueue")


_workqueue_lock = threading.Lock()
# Set in a child forked from a process whose GNU OpenMP thread pool had started: numba
# aborts such a child on its first parallel region.
_pool_unusable = False


def _after_fork_in_child() -> None:
    global _pool_unusable, _workqueue_lock
    # Another thread may have held the lock at the moment of the fork.
    _workqueue_lock = threading.Lock()
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    if parallel is None or not getattr(parallel, "_is_initialized", False):
        return
    if getattr(parallel, "_threading_layer", None) == "omp":
        omppool = sys.modules.get("numba.np.ufunc.omppool")
        if getattr(omppool, "openmp_vendor", "GNU") == "GNU":
            _pool_unusable = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def kernel(*, parallel: bool = False) -> Callable[[F], F]:
    """Decorate a kernel: ``numba.njit`` with an on-disk cache where one can be written.

    numba refuses ``cache=True`` at decoration time when neither the package directory
    nor a per-user cache directory (nor ``NUMBA_CACHE_DIR``) is writable; the kernel is
    then compiled in memory on every process start instead of failing to import.
    Parallel kernels become a :class:`ParallelKernel`.
    """

    def decorate(func: F) -> F:
        if parallel:
            return ParallelKernel(func)  # type: ignore[return-value]
        return _compile(func, parallel=False)  # type: ignore[no-any-return]

    return decorate


def dispatchers() -> list[Any]:
    """Every numba dispatcher of the kernel modules imported so far (serial twins and
    parallel versions alike)."""
    return list(_DISPATCHERS)


def parallel_kernels() -> list[ParallelKernel]:
    """The parallel kernels of the kernel modules imported so far."""
    return list(_PARALLEL_KERNELS)


def compile_counts() -> tuple[int, int]:
    """(specialisations loaded from the on-disk cache, specialisations compiled) in this
    process so far, over every kernel. A process started with a warm cache compiles none."""
    loaded = compiled = 0
    for dispatcher in _DISPATCHERS:
        hits = sum(dispatcher.stats.cache_hits.values())
        loaded += hits
        compiled += len(dispatcher.overloads) - hits
    return loaded, compiled


def cache_dir() -> str | None:
    """The directory compiled kernels are cached in, ``None`` when they compile in memory
    (no writable cache directory). Imports the kernel modules.

    Returns
    -------
    str or None
        ``NUMBA_CACHE_DIR``, the package's ``__pycache__`` or the per-user cache.

    Examples
    --------
    >>> import fastseg
    >>> folder = fastseg.cache_dir()
    >>> folder is None or isinstance(folder, str)
    True
    """
    import fastseg._kernels._chunks  # noqa: F401  (decorates, and so locates, a kernel)

    path = getattr(getattr(_DISPATCHERS[0], "_cache", None), "_cache_path", None)
    return None if path is None else str(path)


# -- thread counts ------------------------------------------------------------------------

# Below this many elements per chunk, waking threads costs more than the work saves.
MIN_CHUNK = 1 << 16

_local = threading.local()  # .threads: the count of an enclosing thread_limit, if any
_process_threads: int | None = None  # set_threads


def chunks_for(n: int) -> int:
    """How many chunks a parallel kernel splits ``n`` elements into: one per thread in
    effect for the calling thread, fewer for small arrays. Results never depend on it."""
    return max(1, min(current_threads(), n // MIN_CHUNK))


def max_threads() -> int:
    """The largest thread count kernels may use in this process."""
    return int(_numba().config.NUMBA_NUM_THREADS)


def _in_torch_worker() -> bool:
    data = sys.modules.get("torch.utils.data")
    return data is not None and data.get_worker_info() is not None


def default_threads() -> int | None:
    """The cap in effect without :func:`set_threads`: 1 inside a PyTorch DataLoader worker
    process (the loader parallelises across samples), else none."""
    return 1 if _in_torch_worker() else None


def current_threads() -> int:
    """The thread count parallel kernels use for calls from the current thread.

    A ``threads=`` argument (:func:`thread_limit`) wins; otherwise numba's count for this
    thread, capped by :func:`set_threads` (or, without it, by :func:`default_threads`).
    Does not start numba's thread pool.
    """
    explicit: int | None = getattr(_local, "threads", None)
    if explicit is not None:
        return explicit
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    if parallel is not None and getattr(parallel, "_is_initialized", True):
        threads = int(_numba().get_num_threads())
    else:
        # numba's count can only have been changed once its pool started.
        threads = max_threads()
    cap = _process_threads if _process_threads is not None else default_threads()
    return threads if cap is None else max(1, min(threads, cap))


def _check_threads(threads: object) -> int:
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise TypeError(f"threads must be an int or None, got {type(threads).__name__}")
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    return threads


@contextlib.contextmanager
def thread_limit(threads: int | None) -> Iterator[int]:
    """Run the enclosed kernels with ``threads`` threads (``None``: leave as configured).

    The per-call ``threads=`` argument of the public functions. Like numba's thread
    count it is per calling thread, so it does not affect kernels running concurrently
    in other Python threads; it overrides :func:`set_threads`. Yields the thread count
    in effect.
    """
    if threads is None:
        yield current_threads()
        return
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise TypeError(f"threads must be an int or None, got {type(threads).__name__}")
    limit = max_threads()
    if not 1 <= threads <= limit:
        raise ValueError(
            f"threads must be between 1 and {limit} (numba's thread pool size), got {threads}"
        )
    numba = _numba()
    previous, previous_explicit = numba.get_num_threads(), getattr(_local, "threads", None)
    numba.set_num_threads(threads)
    _local.threads = threads
    try:
        yield threads
    finally:
        _local.threads = previous_explicit
        numba.set_num_threads(previous)


class ThreadSetting:
    """The result of :func:`fastseg.set_threads`; as a context manager it restores the
    previous setting on exit.

    Examples
    --------
    >>> import fastseg
    >>> with fastseg.set_threads(1) as setting:
    ...     fastseg.get_threads(), setting.threads
    (1, 1)
    """

    def __init__(self, threads: int | None, previous: int | None) -> None:
        self.threads = threads
        """The cap now in effect (``None``: numba's thread count)."""
        self.previous = previous
        """The cap before the call."""

    def __enter__(self) -> ThreadSetting:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        global _process_threads
        _process_threads = self.previous

    def __repr__(self) -> str:
        return f"ThreadSetting(threads={self.threads}, previous={self.previous})"


def set_threads(threads: int | None) -> ThreadSetting:
    """Cap the threads fastseg's kernels use, for every thread of this process.

    Use it in a data loader's ``worker_init_fn``, or as a context manager. A ``threads=``
    argument of a single call still overrides it. fastseg uses one thread by default
    inside a PyTorch DataLoader worker process; ``set_threads(None)`` there lifts that
    cap too, back to numba's thread count (``NUMBA_NUM_THREADS``). Results never depend
    on the thread count.

    Parameters
    ----------
    threads : int or None
        At most this many threads (more than numba's pool holds means all of them);
        ``None`` restores the default.

    Returns
    -------
    ThreadSetting
        The new and the previous cap; leaving it as a context manager restores the
        previous one.

    Raises
    ------
    TypeError
        If ``threads`` is not an int or None.
    ValueError
        If ``threads`` is smaller than 1.

    Examples
    --------
    >>> import fastseg
    >>> with fastseg.set_threads(1):
    ...     fastseg.get_threads()
    1
    >>> def worker_init_fn(worker_id: int) -> None:
    ...     fastseg.set_threads(2)  # or 1, the default in DataLoader workers
    """
    global _process_threads
    if threads is not None:
        threads = _check_threads(threads)
    setting = ThreadSetting(threads, _process_threads)
    _process_threads = threads
    return setting


def get_threads() -> int:
    """The number of threads fastseg's kernels use for calls from the current thread.

    numba's thread count (``NUMBA_NUM_THREADS``, ``numba.set_num_threads``) capped by
    :func:`fastseg.set_threads`, or by 1 inside a PyTorch DataLoader worker.

    Examples
    --------
    >>> import fastseg
    >>> fastseg.get_threads() >= 1
    True
    """
    return current_threads()

"""The one place that decides how kernels are compiled, cached and run on threads.

Kernel modules (``fastseg._kernels.*``) decorate their loops with :func:`kernel`: a
``numba.njit`` function that releases the GIL. Importing :mod:`fastseg` never imports
numba: public wrappers import kernel modules on their first call, and numba compiles a
specialisation on its first use.

Compiled kernels are cached on disk in a per-user cache directory keyed by the fastseg
version (:func:`cache_root`): ``FASTSEG_CACHE_DIR`` when set, else ``NUMBA_CACHE_DIR``,
else the platform's cache directory (``$XDG_CACHE_HOME/fastseg/<version>`` or
``~/.cache/fastseg/<version>`` on Linux). Never inside the installed package, so that
uninstalling fastseg leaves nothing behind. A cache directory that exists but is not
writable (a container image warmed at build time and run read-only) is still read;
when there is none at all, kernels compile in memory instead of failing.

Threads: there are no parallel (``prange``) kernels. A parallel operation is a plain
Python driver in its kernel module that cuts the work into chunks and hands each chunk
to the same serial kernel through :func:`run_chunks`, which runs them on fastseg's own
thread pool (kernels release the GIL). Each kernel is therefore compiled once, not as a
serial and a parallel version, and nothing depends on numba's threading layers: no
OpenMP pool to break in forked data loader workers, no workqueue layer to abort on
concurrent launches. Chunks depend on the input size and the thread count only through
:func:`chunks_for`, and every driver combines chunk results in chunk order, so results do
not depend on the thread count.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

F = TypeVar("F", bound=Callable[..., Any])

# nogil lets kernels run concurrently on threads; the numpy error model drops the
# division-by-zero branches numba would otherwise insert into hot loops.
_COMMON_OPTIONS: dict[str, Any] = {"nogil": True, "error_model": "numpy"}

# Every dispatcher made here, in decoration order: what warmup checks and what the
# compile statistics count.
_DISPATCHERS: list[Any] = []


@functools.cache
def _numba() -> Any:
    import numba

    _listen_for_compiles()
    return numba


# -- where compiled kernels live ----------------------------------------------------------


def _platform_cache_home() -> Path:
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "fastseg" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "fastseg"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fastseg"


def cache_root() -> Path:
    """The directory compiled kernels are cached under (it may not exist yet).

    ``FASTSEG_CACHE_DIR`` when set, else ``NUMBA_CACHE_DIR``, else the platform's per-user
    cache directory with the fastseg version appended.
    """
    for variable in ("FASTSEG_CACHE_DIR", "NUMBA_CACHE_DIR"):
        value = os.environ.get(variable)
        if value:
            return Path(value).expanduser().absolute()
    from fastseg import __version__

    return _platform_cache_home() / __version__


@functools.cache
def _source_hash(path: str, mtime: float, size: int) -> bytes:
    import hashlib

    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).digest()


@functools.cache
def _cache_classes() -> tuple[type, type]:
    """numba cache classes that store fastseg's kernels under :func:`cache_root`."""

    # numba's cache classes, untyped here: fastseg's subclasses below are typed.
    caching: Any = importlib.import_module("numba.core.caching")

    class Locator(caching._CacheLocator):  # type: ignore[misc]
        """Cache files of one kernel module in ``cache_root()/<module folder>_<hash>``."""

        def __init__(self, py_func: Any, py_file: str, path: str, writable: bool) -> None:
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = path
            self.writable = writable

        def get_cache_path(self) -> str:
            return self._cache_path

        def get_source_stamp(self) -> bytes:
            # Content, not modification time: an image or wheel may reset mtimes.
            stat = os.stat(self._py_file)
            return _source_hash(self._py_file, stat.st_mtime, stat.st_size)

        def get_disambiguator(self) -> str:
            return str(self._lineno)

        @classmethod
        def from_function(cls, py_func: Any, py_file: str) -> Any:
            if not os.path.exists(py_file):
                return None
            path = os.path.join(str(cache_root()), cls.get_suitable_cache_subpath(py_file))
            try:
                os.makedirs(path, exist_ok=True)
                with open(os.path.join(path, f".probe-{os.getpid()}"), "wb") as probe:
                    probe.close()
                    os.unlink(probe.name)
                return cls(py_func, py_file, path, True)
            except OSError:
                # Read-only but filled (an image warmed at build time): load, never save.
                if os.path.isdir(path) and os.access(path, os.R_OK | os.X_OK):
                    return cls(py_func, py_file, path, False)
                return None

    class Impl(caching.CompileResultCacheImpl):  # type: ignore[misc]
        _locator_classes: ClassVar[list[type]] = [Locator]

    class CacheFile(caching.IndexDataCacheFile):  # type: ignore[misc]
        """numba's index and data files, safe when processes save at the same time.

        numba numbers a kernel's data files in the order signatures are saved, reading
        the index, picking the next free number and writing the index back. Two
        processes compiling the same kernel for different signatures (data loader
        workers or ``fastseg -j`` on a cold cache) could both pick one number: one's
        machine code then sits under the other's signature, to be loaded for arguments
        it was not compiled for. Here a data file is named by a hash of its signature,
        written before the index names it, and the index is read, merged and written
        under an exclusive lock, so no entry is lost or crossed.
        """

        def save(self, key: Any, data: Any) -> None:
            import hashlib

            digest = hashlib.sha256(repr(key).encode()).hexdigest()[:20]
            data_name = f"{self._index_name.removesuffix('.nbi')}.{digest}.nbc"
            self._save_data(data_name, data)
            with _exclusive_lock(self._index_path + ".lock"):
                overloads = self._load_index()
                overloads[key] = data_name
                self._save_index(overloads)

    class Cache(caching.FunctionCache):  # type: ignore[misc]
        _impl_class = Impl

        def __init__(self, py_func: Any) -> None:
            super().__init__(py_func)
            self._cache_file = CacheFile(
                cache_path=self._cache_path,
                filename_base=self._impl.filename_base,
                source_stamp=self._impl.locator.get_source_stamp(),
            )

        def _save_overload(self, sig: Any, data: Any) -> None:
            if not self._impl.locator.writable:
                return
            with contextlib.suppress(OSError):  # a full disk costs a recompile, no more
                super()._save_overload(sig, data)

    return Locator, Cache


@contextlib.contextmanager
def _exclusive_lock(path: str) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing); no lock where the
    platform has no ``fcntl`` (a lost index entry there costs a recompile, no more)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# A helper kernel is only called from other kernels: no wrapper for calls from Python
# (unboxing every argument is a sizeable share of a small kernel's compile time) and no
# cache entry of its own (its code is cached inside every kernel that calls it).
_HELPER_OPTIONS: dict[str, Any] = {"no_cpython_wrapper": True, "no_cfunc_wrapper": True}


def _compile(func: Callable[..., Any], helper: bool) -> Any:
    numba = _numba()
    options = {**_COMMON_OPTIONS, **(_HELPER_OPTIONS if helper else {})}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", numba.NumbaWarning)
        dispatcher = numba.njit(cache=False, **options)(func)
    if not helper:
        _, cache_class = _cache_classes()
        # RuntimeError: no cache directory can be created or read; compile in memory.
        with contextlib.suppress(RuntimeError):
            dispatcher._cache = cache_class(dispatcher.py_func)
    _compile_callees_without_literals(dispatcher)
    _DISPATCHERS.append(dispatcher)
    return dispatcher


def _compile_callees_without_literals(dispatcher: Any) -> None:
    """Make calls from other kernels compile ``dispatcher`` for plain argument types.

    A kernel called from another with a constant argument (``f(row, 0, n)``, or a loop
    counter before its first increment) would otherwise be compiled once more for the
    literal type ``Literal[int](0)``: a second specialisation per constant that costs a
    full compile and gains nothing, since LLVM folds constants after inlining anyway.
    """
    types = importlib.import_module("numba.core.types")
    unliteral = types.unliteral
    call_template = dispatcher.get_call_template

    def get_call_template(args: Any, kws: Any) -> Any:
        return call_template(
            tuple(unliteral(a) for a in args), {k: unliteral(v) for k, v in kws.items()}
        )

    dispatcher.get_call_template = get_call_template


def kernel(*, helper: bool = False) -> Callable[[F], F]:
    """Decorate a kernel: ``numba.njit(nogil=True)``, cached under :func:`cache_root`
    where that directory can be written or read, compiled in memory otherwise.

    ``helper=True`` marks a kernel that only other kernels call: Python cannot call it,
    and it compiles about 0.1 s faster, once per process where a kernel calling it
    compiles (never where they all load from the cache)."""

    def decorate(func: F) -> F:
        return _compile(func, helper)  # type: ignore[no-any-return]

    return decorate


def dispatchers() -> list[Any]:
    """Every numba dispatcher of the kernel modules imported so far."""
    return list(_DISPATCHERS)


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
    (no cache directory can be written or read). Imports a kernel module.

    Returns
    -------
    str or None
        ``FASTSEG_CACHE_DIR``, ``NUMBA_CACHE_DIR`` or the per-user cache directory
        (``~/.cache/fastseg/<version>`` on Linux).

    Examples
    --------
    >>> import fastseg
    >>> folder = fastseg.cache_dir()
    >>> folder is None or isinstance(folder, str)
    True
    """
    # Importing a kernel module decorates, and so locates, a kernel.
    from fastseg._kernels import _chunks as chunks_kernels  # noqa: F401

    cache = getattr(_DISPATCHERS[0], "_cache", None)
    if getattr(cache, "_cache_path", None) is None:
        return None
    return str(cache_root())


# -- saying that the first run compiles ---------------------------------------------------

_compile_notice: Callable[[], None] | None = None
_notice_lock = threading.Lock()


def on_first_compile(notice: Callable[[], None] | None) -> None:
    """Call ``notice()`` once, just before the first kernel of this process compiles
    (nothing when every kernel comes from the cache). The command line prints its
    'compiling ...' line this way, before the wait rather than after it."""
    global _compile_notice
    _compile_notice = notice


def _listen_for_compiles() -> None:

    event: Any = importlib.import_module("numba.core.event")

    class Listener(event.Listener):  # type: ignore[misc]
        def on_start(self, event: Any) -> None:
            global _compile_notice
            with _notice_lock:
                notice, _compile_notice = _compile_notice, None
            if notice is not None:
                notice()

        def on_end(self, event: Any) -> None:
            pass

    event.register("numba:compile", Listener())


# -- running chunks on threads ------------------------------------------------------------

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _thread_pool() -> ThreadPoolExecutor:
    from concurrent.futures import ThreadPoolExecutor

    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=max(1, max_threads() - 1), thread_name_prefix="fastseg"
            )
        return _pool


def _after_fork_in_child() -> None:
    # A forked child inherits the pool object but none of its threads, and the lock in
    # whatever state another thread held it.
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def run_chunks(chunk_kernel: Callable[..., Any], chunks: int, *args: Any) -> None:
    """Run ``chunk_kernel(*args, c, chunks)`` for every chunk ``c``.

    Chunk kernels write their results into arrays of the caller (row ``c`` of a per-chunk
    table, or their own part of an output). At most :func:`current_threads` chunks run
    at once: consecutive chunks are grouped per thread, the first group in the calling
    thread and the others on fastseg's thread pool (kernels release the GIL). With one
    thread nothing leaves the calling thread.
    """
    workers = min(chunks, current_threads())
    if workers <= 1:
        for c in range(chunks):
            chunk_kernel(*args, c, chunks)
        return

    def run_group(w: int) -> None:
        for c in range((w * chunks) // workers, ((w + 1) * chunks) // workers):
            chunk_kernel(*args, c, chunks)

    from concurrent.futures import wait

    pool = _thread_pool()
    futures: list[Future[None]] = [pool.submit(run_group, w) for w in range(1, workers)]
    try:
        run_group(0)
    finally:
        # Never return, nor raise, while a chunk still writes into the caller's arrays.
        wait(futures)
    for future in futures:
        future.result()


def run_tasks(task: Callable[[int], Any], tasks: int) -> None:
    """Run ``task(t)`` for every ``t`` in ``0 .. tasks - 1``, each on whichever thread is
    free next (at most :func:`current_threads` at once), in the order given.

    For independent tasks of very different cost (one class's box may be a hundred
    times another's): given largest first, threads stay busy until the end, where
    :func:`run_chunks`' fixed groups leave one thread with the big ones. Each task
    writes only its own results, so which thread ran it changes nothing.
    """
    workers = min(tasks, current_threads())
    if workers <= 1:
        for t in range(tasks):
            task(t)
        return
    import itertools

    claim = itertools.count()  # next() on a count is atomic under the GIL

    def work() -> None:
        for t in claim:
            if t >= tasks:
                return
            task(t)

    from concurrent.futures import wait

    pool = _thread_pool()
    futures: list[Future[None]] = [pool.submit(work) for _ in range(1, workers)]
    try:
        work()
    finally:
        wait(futures)  # never return while a task still writes into the caller's arrays
    for future in futures:
        future.result()


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
    """The largest thread count kernels may use in this process: ``NUMBA_NUM_THREADS``
    when set, else the CPUs this process may run on."""
    value = os.environ.get("NUMBA_NUM_THREADS")
    if value:
        with contextlib.suppress(ValueError):
            return max(1, int(value))
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _in_torch_worker() -> bool:
    data = sys.modules.get("torch.utils.data")
    return data is not None and data.get_worker_info() is not None


def default_threads() -> int | None:
    """The cap in effect without :func:`set_threads`: 1 inside a PyTorch DataLoader worker
    process (the loader parallelises across samples), else none."""
    return 1 if _in_torch_worker() else None


def current_threads() -> int:
    """The thread count kernels use for calls from the current thread.

    A ``threads=`` argument (:func:`thread_limit`) wins; otherwise :func:`max_threads`,
    capped by :func:`set_threads` (or, without it, by :func:`default_threads`).
    """
    explicit: int | None = getattr(_local, "threads", None)
    if explicit is not None:
        return explicit
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

    The per-call ``threads=`` argument of the public functions. It is per calling
    thread, so it does not affect kernels running concurrently in other Python threads;
    it overrides :func:`set_threads`. Yields the thread count in effect.
    """
    if threads is None:
        yield current_threads()
        return
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise TypeError(f"threads must be an int or None, got {type(threads).__name__}")
    limit = max_threads()
    if not 1 <= threads <= limit:
        raise ValueError(
            f"threads must be between 1 and {limit} (the CPUs this process may use, or "
            f"NUMBA_NUM_THREADS), got {threads}"
        )
    previous = getattr(_local, "threads", None)
    _local.threads = threads
    try:
        yield threads
    finally:
        _local.threads = previous


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
        """The cap now in effect (``None``: every CPU, or ``NUMBA_NUM_THREADS``)."""
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
    cap too, back to every CPU the process may use (or ``NUMBA_NUM_THREADS``). Results
    never depend on the thread count.

    Parameters
    ----------
    threads : int or None
        At most this many threads (more than the CPUs available means all of them);
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

    ``NUMBA_NUM_THREADS`` or the CPUs this process may run on, capped by
    :func:`fastseg.set_threads`, or by 1 inside a PyTorch DataLoader worker.

    Examples
    --------
    >>> import fastseg
    >>> fastseg.get_threads() >= 1
    True
    """
    return current_threads()

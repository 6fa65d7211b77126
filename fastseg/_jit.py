"""The one place that decides how kernels are compiled and how many threads they use.

Kernel modules (``fastseg._kernels.*``) decorate their functions with :func:`kernel`.
Importing :mod:`fastseg` never imports numba: public wrappers import kernel modules on
their first call, and numba compiles a specialisation on its first use.
"""

from __future__ import annotations

import contextlib
import functools
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# nogil lets thread-pool data loaders run kernels concurrently; the numpy error model
# drops the division-by-zero branches numba would otherwise insert into hot loops.
_COMMON_OPTIONS: dict[str, Any] = {"nogil": True, "error_model": "numpy"}


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
            return numba.njit(cache=True, **options)(func)
    except RuntimeError:
        return numba.njit(cache=False, **options)(func)


class ParallelKernel:
    """A parallel kernel and its serial twin, compiled from the same source.

    The last argument of every parallel kernel is the number of chunks it splits its
    work into; with one chunk the serial twin runs instead, so that small arrays never
    wait for numba's thread pool (milliseconds on a busy machine, e.g. in data loader
    workers).
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

    def __call__(self, *args: Any) -> Any:
        return (self.serial if args[-1] == 1 else self.parallel)(*args)


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


# Below this many elements per chunk, waking threads costs more than the work saves.
MIN_CHUNK = 1 << 16


def chunks_for(n: int) -> int:
    """How many chunks a parallel kernel splits ``n`` elements into: one per thread in
    effect for the calling thread, fewer for small arrays. Results never depend on it."""
    return max(1, min(current_threads(), n // MIN_CHUNK))


def max_threads() -> int:
    """The largest thread count kernels may use in this process."""
    return int(_numba().config.NUMBA_NUM_THREADS)


def current_threads() -> int:
    """The thread count parallel kernels use for calls from the current thread."""
    return int(_numba().get_num_threads())


@contextlib.contextmanager
def thread_limit(threads: int | None) -> Iterator[int]:
    """Run the enclosed kernels with ``threads`` threads (``None``: leave as configured).

    numba's thread count is per calling thread, so this does not affect kernels running
    concurrently in other Python threads. Yields the thread count in effect.
    """
    numba = _numba()
    if threads is None:
        yield int(numba.get_num_threads())
        return
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise TypeError(f"threads must be an int or None, got {type(threads).__name__}")
    limit = max_threads()
    if not 1 <= threads <= limit:
        raise ValueError(
            f"threads must be between 1 and {limit} (numba's thread pool size), got {threads}"
        )
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        yield threads
    finally:
        numba.set_num_threads(previous)

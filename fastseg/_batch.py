"""Batches of files: which files folders and patterns name, and one job per file.

Shared by the command line and :mod:`fastseg.dask`, so that both walk a folder the same
way and treat a failing file the same way:

- :func:`volume_suffixes`, :func:`is_volume`, :func:`split_suffix`: the file names of
  label volumes;
- :func:`walk` and :func:`expand`: the volumes below a folder and those that files,
  folders and glob patterns name (hidden files and folders, and the ``items/`` folder of
  a RedBrick export, are left out; an output folder can be left out too);
- :func:`attempt` and :func:`run_all`: run one job per item in this process or on an
  executor, catch and time each, survive a worker that dies;
- :func:`process_pool` and :func:`stop_pool`: worker processes that end with the process
  that started them, whatever ends it, and a pool stopped at once when interrupted.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import glob
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

__all__ = [
    "USER_ERRORS",
    "Attempt",
    "Input",
    "Outcome",
    "attempt",
    "describe_error",
    "describe_item",
    "expand",
    "is_volume",
    "one_line",
    "process_pool",
    "run_all",
    "split_suffix",
    "stop_pool",
    "volume_suffixes",
    "walk",
]

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741

# Exceptions that mean the input or the options are wrong (the library raises these
# with messages meant for users); anything else is a defect, reported with its type.
USER_ERRORS = (ValueError, TypeError, KeyError, OSError, ImportError, RecursionError)

EXPORT_ITEMS = "items"
"""The folder of a RedBrick export (beside its ``tasks.json``) that holds the images."""


def volume_suffixes() -> tuple[str, ...]:
    """The endings (lower case, longest first) of the label volume files a folder walk
    picks up: every volume format of the format registry.

    Examples
    --------
    >>> from fastseg._batch import volume_suffixes
    >>> volume_suffixes()[:2]
    ('.seg.nrrd', '.nii.gz')
    """
    from fastseg.formats import volume_suffixes as registered

    return registered()


def is_volume(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a label volume (by its ending, any case) that is not hidden.

    Examples
    --------
    >>> from fastseg._batch import is_volume
    >>> is_volume("a/CASE.NII.GZ"), is_volume("a/.case.nii.gz"), is_volume("a/b.json")
    (True, False, False)
    """
    name = os.path.basename(os.fspath(path))
    return name.lower().endswith(volume_suffixes()) and not name.startswith(".")


def split_suffix(path: str) -> tuple[str, str]:
    """``"a/b.nii.gz"`` -> ``("a/b", ".nii.gz")``; other names split at their last dot.

    Examples
    --------
    >>> from fastseg._batch import split_suffix
    >>> split_suffix("a/b.NII.GZ"), split_suffix("t.json")
    (('a/b', '.NII.GZ'), ('t', '.json'))
    """
    lowered = path.lower()
    for suffix in volume_suffixes():
        if lowered.endswith(suffix):
            return path[: -len(suffix)], path[-len(suffix) :]
    stem, suffix = os.path.splitext(path)
    return stem, suffix


def walk(folder: str | os.PathLike[str], *, exclude: Iterable[str] = ()) -> list[str]:
    """The label volumes below ``folder``, sorted folder by folder.

    Hidden files and folders (a leading dot: temporary files among them) are left out,
    as is the ``items/`` folder of a RedBrick export (the images beside ``tasks.json``)
    and every folder in ``exclude`` (e.g. where the outputs go). Symbolic links to
    folders are not followed.

    Parameters
    ----------
    folder : str or path-like
        The folder to walk.
    exclude : iterable of str
        Folders to leave out, compared by their real paths.

    Returns
    -------
    list of str
        Paths starting with ``folder``.

    Examples
    --------
    >>> import os, tempfile
    >>> from fastseg._batch import walk
    >>> root = tempfile.mkdtemp()
    >>> for name in ("b.nii.gz", "A.NII", ".hidden.nii", "notes.txt"):
    ...     open(os.path.join(root, name), "w").close()
    >>> [os.path.basename(p) for p in walk(root)]
    ['A.NII', 'b.nii.gz']
    """
    top = os.fspath(folder)
    skipped = {os.path.realpath(path) for path in exclude}
    found: list[str] = []
    for root, dirs, files in os.walk(top):
        export = "tasks.json" in files
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".")
            and not (export and d == EXPORT_ITEMS)
            and os.path.realpath(os.path.join(root, d)) not in skipped
        )
        found += [os.path.join(root, name) for name in sorted(files) if is_volume(name)]
    return found


# ----------------------------------------------------------------------------- inputs

Status = Literal["done", "failed", "skipped"]


@dataclass(frozen=True)
class Outcome:
    """What became of one input: its status, the reason when it was not done, and the
    job's result (plain data, e.g. the rows of a table)."""

    source: str
    status: Status
    reason: str = ""
    result: Any = None
    seconds: float = 0.0
    outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Input:
    """An input file and the folder argument it was found in (its outputs keep their
    path below that folder), or None for a file named directly or by a pattern."""

    path: str
    base: str | None = None

    @property
    def relative(self) -> str:
        """The path below the folder argument, or the file's name."""
        return os.path.relpath(self.path, self.base) if self.base else os.path.basename(self.path)


def expand(
    specs: Sequence[str], *, exclude: Iterable[str] = ()
) -> tuple[list[Input], list[Outcome]]:
    """Files, folders and glob patterns -> the volumes they name (each once, in argument
    order), and an outcome for every argument that names nothing (failed) and for every
    alias of a file already named (skipped, naming the file it repeats).

    Folders are walked with :func:`walk` (leaving out ``exclude``); a file named directly
    is taken whatever its name, and a missing one is left for its job to report.

    Examples
    --------
    >>> import os, tempfile
    >>> from fastseg._batch import expand
    >>> root = tempfile.mkdtemp()
    >>> open(os.path.join(root, "a.nii.gz"), "w").close()
    >>> os.symlink("a.nii.gz", os.path.join(root, "b.nii.gz"))
    >>> inputs, problems = expand([root])
    >>> [item.relative for item in inputs], [p.status for p in problems]
    (['a.nii.gz'], ['skipped'])
    """
    excluded = list(exclude)
    inputs: list[Input] = []
    problems: list[Outcome] = []
    seen: dict[str, str] = {}

    def add(path: str, base: str | None) -> None:
        key = os.path.realpath(path)
        if key not in seen:
            seen[key] = path
            inputs.append(Input(path, base))
        elif seen[key] != path:
            problems.append(Outcome(path, "skipped", f"the same file as {seen[key]}"))

    from fastseg.formats import volume_suffix_list

    suffixes = volume_suffix_list()
    for spec in specs:
        if os.path.isdir(spec):
            files = walk(spec, exclude=excluded)
            if not files:
                problems.append(
                    Outcome(spec, "failed", f"no label files ({suffixes}) in this folder")
                )
            for path in files:
                add(path, spec)
        elif os.path.lexists(spec) or not glob.has_magic(spec):
            # A missing file is the job's to report (the loader names it).
            add(spec, None)
        else:
            matches = sorted(glob.glob(spec, recursive=True))
            if not matches:
                problems.append(Outcome(spec, "failed", "no files match this pattern"))
            for match in matches:
                if os.path.isdir(match):
                    for path in walk(match, exclude=excluded):
                        add(path, match)
                elif is_volume(match) and not _inside(match, excluded):
                    add(match, None)
    return inputs, problems


def _inside(path: str, folders: Sequence[str]) -> bool:
    real = os.path.realpath(path)
    return any(
        os.path.commonpath([real, os.path.realpath(folder)]) == os.path.realpath(folder)
        for folder in folders
    )


# ------------------------------------------------------------------------------ running


def one_line(text: str) -> str:
    """A message folded to one line."""
    return " ".join(str(text).split())


def describe_error(error: BaseException, source: str = "") -> str:
    """One line saying what went wrong with ``source``, without repeating its name.

    Examples
    --------
    >>> from fastseg._batch import describe_error
    >>> describe_error(FileNotFoundError(2, "No such file or directory", "a.json"), "a.json")
    'No such file or directory'
    >>> describe_error(ZeroDivisionError("division by zero"))
    'internal error (ZeroDivisionError): division by zero'
    """
    if isinstance(error, KeyError) and error.args:
        text = str(error.args[0])
    elif isinstance(error, RecursionError):
        text = "nested too deeply"
    elif isinstance(error, OSError) and error.strerror:
        named = error.filename is not None and os.fspath(error.filename) != source
        text = f"{error.strerror}: {error.filename}" if named else error.strerror
    else:
        text = str(error) or type(error).__name__
    if not isinstance(error, USER_ERRORS):
        text = f"internal error ({type(error).__name__}): {text}"
    text = one_line(text)
    if source:
        # Library messages often start with the file's name; the line names it already.
        for prefix in (f"{source}: ", f"{os.path.abspath(source)}: "):
            text = text.removeprefix(prefix)
    return text


@dataclass(frozen=True)
class Attempt(Generic[T]):
    """How one job went: its value, or a one-line error; and its wall time."""

    value: T | None = None
    error: str | None = None
    seconds: float = 0.0


_in_job = False  # in a worker: whether a job runs (a stop request then unwinds it)


def describe_item(error: BaseException, item: object) -> str:
    """:func:`describe_error` for an item that is a path (else without one)."""
    source = os.fspath(item) if isinstance(item, (str, os.PathLike)) else ""
    return describe_error(error, str(source))


def attempt(
    work: Callable[[I], T],
    item: I,
    describe: Callable[[BaseException, I], str] = describe_item,
) -> Attempt[T]:
    """Run ``work(item)``; never raises for a failing item (``describe(error, item)``
    says why)."""
    global _in_job
    started = time.perf_counter()
    _in_job = True
    try:
        value = work(item)
    except Exception as error:  # any failure belongs to this item alone
        return Attempt(error=describe(error, item), seconds=time.perf_counter() - started)
    except _Stop:  # a worker told to stop: the job has cleaned up as it unwound
        os._exit(128 + signal.SIGTERM)
    finally:
        _in_job = False
    return Attempt(value=value, seconds=time.perf_counter() - started)


def run_all(
    work: Callable[[I], T],
    items: Sequence[I],
    executor: Executor | None,
    record: Callable[[int, Attempt[T]], None] = lambda index, result: None,
    describe: Callable[[BaseException, I], str] = describe_item,
    lost: Callable[[BaseException], str] | None = None,
) -> list[Attempt[T]]:
    """Run ``work`` on every item, in this process (``executor`` None) or on
    ``executor``; ``record(index, attempt)`` sees each as it arrives. Returns the
    attempts in the order of ``items``.

    A worker that dies fails its item (``lost(error)`` says so, by default "the worker
    failed: ..."); the others carry on.
    ``work``, the items and ``describe`` must pickle for an executor in other processes:
    module-level functions (or ``functools.partial`` of them with plain-data options).
    On any interruption the jobs not yet started are cancelled and the exception is
    raised again (:func:`stop_pool` ends the running ones).

    Examples
    --------
    >>> from fastseg._batch import run_all
    >>> [a.value if a.error is None else a.error for a in run_all(lambda x: 1 / x, [2, 0], None)]
    [0.5, 'internal error (ZeroDivisionError): division by zero']
    """
    done: dict[int, Attempt[T]] = {}
    if executor is None:
        for index, item in enumerate(items):
            done[index] = attempt(work, item, describe)
            record(index, done[index])
        return [done[i] for i in range(len(items))]
    futures = {
        executor.submit(attempt, work, item, describe): index for index, item in enumerate(items)
    }
    try:
        for future in concurrent.futures.as_completed(futures):
            index = futures[future]
            try:
                done[index] = future.result()
            except Exception as error:  # the worker died, or the cluster lost the task
                if lost is None:
                    reason = one_line(str(error)) or type(error).__name__
                    done[index] = Attempt(error=f"the worker failed: {reason}")
                else:
                    done[index] = Attempt(error=lost(error))
            record(index, done[index])
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    return [done[i] for i in range(len(items))]


# ---------------------------------------------------------------------------- processes

_PR_SET_PDEATHSIG = 1
_GRACE_SECONDS = 5.0


class _Stop(BaseException):
    """Raised in a worker's job when the worker is told to stop, so that the job's
    cleanup (temporary files) runs before the worker ends."""


def _on_terminate(signum: int, frame: Any) -> None:
    if _in_job:
        raise _Stop
    os._exit(128 + signum)


def _stop_when_gone(parent: int) -> None:
    """Wait for the process ``parent`` to end, then stop this worker."""
    try:
        handle = os.pidfd_open(parent)
    except ProcessLookupError:
        pass  # already gone
    except (AttributeError, OSError):  # no pidfd (not Linux, or an old kernel): poll
        with contextlib.suppress(ProcessLookupError):
            while True:
                os.kill(parent, 0)
                time.sleep(0.5)
    else:
        select.select([handle], [], [])
    # To the main thread, so that a job blocked in a system call is interrupted.
    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)
    time.sleep(_GRACE_SECONDS)  # a job unwinds; one stuck in compiled code does not
    os._exit(128 + signal.SIGTERM)


def _start_worker(threads: int, parent: int) -> None:
    """Worker process start: numba threads per worker (the workers together use the
    machine's cores instead of each starting a pool of them all), and ending with the
    process that started the pool."""
    if "NUMBA_NUM_THREADS" not in os.environ:
        os.environ["NUMBA_NUM_THREADS"] = str(threads)
    # Ctrl-C reaches the whole process group: the parent stops the pool and reports.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_terminate)
    if sys.platform.startswith("linux"):
        # The worker's parent is the forkserver; with it goes the worker.
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    # The forkserver lives while any worker does, so the worker watches the process that
    # started the pool itself: a parent killed by any signal (even SIGKILL) leaves no
    # worker, forkserver or resource tracker behind.
    threading.Thread(target=_stop_when_gone, args=(parent,), daemon=True).start()


def _start_method() -> str:
    # Never plain fork: a forked child inherits locks and half-done work of whatever
    # threads the parent ran (fastseg's pool among them). forkserver forks from a clean
    # server process.
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


@contextlib.contextmanager
def process_pool(workers: int) -> Iterator[concurrent.futures.ProcessPoolExecutor]:
    """A pool of ``workers`` processes (forkserver, else spawn) that end with this
    process; leaving the block by an exception (an interruption) stops them at once.

    Examples
    --------
    >>> from fastseg._batch import process_pool
    >>> with process_pool(2) as pool:
    ...     pool.submit(abs, -3).result()
    3
    """
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context(_start_method())
    pool = concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(threads, os.getpid())
    )
    try:
        yield pool
    except BaseException:
        stop_pool(pool)
        raise
    pool.shutdown(wait=True)


def stop_pool(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """Cancel the pool's waiting jobs and end its workers: asked first (their jobs
    remove their temporary files), killed after a grace period."""
    # shutdown() forgets the processes: take them first.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(OSError, ValueError):
            process.terminate()
    deadline = time.monotonic() + _GRACE_SECONDS
    for process in processes:
        with contextlib.suppress(OSError, ValueError, AssertionError):
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(1.0)

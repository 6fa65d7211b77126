"""Batches of files: one function over many files on a ``dask.distributed`` client (or
any executor), every file's result or error kept."""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from dask.base import compute
from dask.delayed import delayed

from fastseg._batch import Attempt, attempt, run_all, walk

__all__ = ["FileResult", "map_files", "nifti_files"]

T = TypeVar("T")


@dataclass(frozen=True)
class FileResult(Generic[T]):
    """What a function returned for one file of a batch, or the error it raised.

    Examples
    --------
    >>> from fastseg.dask import FileResult
    >>> FileResult("a.nii.gz", value=3).ok, FileResult("b.nii.gz", error="ValueError: bad").ok
    (True, False)
    """

    source: Any
    """The path (or item) the function was called with."""
    value: T | None = None
    """The function's result; None when it raised."""
    error: str | None = None
    """``"ExceptionType: message"`` when the function raised (or its worker died)."""
    seconds: float = 0.0
    """How long the call took on its worker."""

    @property
    def ok(self) -> bool:
        return self.error is None


def nifti_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The label volumes below ``folder`` (recursively), sorted: the folder walk of the
    command line (:func:`fastseg._batch.walk`), so ``.nii``/``.nii.gz`` and the other
    registered volume endings in any case, without hidden files and folders; a RedBrick
    AI export folder gives its segmentation files (not the images in its ``items/``).

    Examples
    --------
    >>> import tempfile
    >>> from fastseg.dask import nifti_files
    >>> nifti_files(tempfile.mkdtemp())
    []
    """
    root = Path(folder)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    return sorted(Path(path) for path in walk(root))


def _run_file(func: Callable[[Any], T], source: Any) -> FileResult[T]:
    return _result(source, attempt(func, source, _describe))


def _result(source: Any, done: Attempt[T]) -> FileResult[T]:
    return FileResult(source, value=done.value, error=done.error, seconds=done.seconds)


def _describe(error: BaseException, source: object = None) -> str:
    return f"{type(error).__name__}: {error}"


def map_files(
    func: Callable[[Any], T],
    paths: str | os.PathLike[str] | Iterable[Any],
    client: Any = None,
) -> list[FileResult[T]]:
    """Call ``func`` on every file of a batch, in parallel, keeping every file's result
    or error: one file that fails (or whose worker dies) never stops the others.

    Parameters
    ----------
    func : callable
        ``func(path)`` for one file, e.g. convert or measure it; it must pickle (a
        module-level function or a ``functools.partial`` of one) to run in other
        processes. Its return value must pickle too.
    paths : folder or iterable
        The files (any items ``func`` takes, e.g. the series of
        :func:`fastseg.formats.redbrick_export.read_export`), or a folder: its
        label volumes (:func:`nifti_files`).
    client : dask.distributed.Client or concurrent.futures.Executor, optional
        Where to run: a ``dask.distributed`` client (local or at a scheduler address),
        or any executor (``client.get_executor()``, a process pool). By default dask's
        current scheduler: the active distributed client if there is one, else threads.

    Returns
    -------
    list of FileResult
        One per file, in the order of ``paths``.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np, fastseg, fastseg.dask
    >>> folder = tempfile.mkdtemp()
    >>> fastseg.save(os.path.join(folder, "a.nii.gz"), np.eye(3, dtype=np.uint8))
    >>> open(os.path.join(folder, "b.nii.gz"), "w").close()
    >>> def count(path):
    ...     return len(fastseg.stats(fastseg.load(path).labels))
    >>> for result in fastseg.dask.map_files(count, folder):
    ...     print(os.path.basename(result.source), result.value, result.error is not None)
    a.nii.gz 1 False
    b.nii.gz None True
    """
    if isinstance(paths, str | os.PathLike):
        sources: list[Any] = list(nifti_files(paths))
    else:
        sources = list(paths)
    if client is None:
        tasks = [delayed(_run_file, pure=False)(func, source) for source in sources]
        return list(compute(*tasks))
    if isinstance(client, concurrent.futures.Executor):
        done = run_all(func, sources, client, describe=_describe, lost=_describe)
        return [_result(source, item) for source, item in zip(sources, done, strict=True)]
    from distributed import Client

    if not isinstance(client, Client):
        raise TypeError(
            "client must be a dask.distributed.Client or a concurrent.futures.Executor, "
            f"got {type(client).__name__}"
        )
    futures: list[Any] = client.map(_run_file, [func] * len(sources), sources, pure=False)
    results: list[FileResult[T]] = []
    for source, future in zip(sources, futures, strict=True):
        try:
            results.append(future.result())
        except Exception as error:  # the worker died or the result did not unpickle
            results.append(FileResult(source, error=_describe(error)))
    return results

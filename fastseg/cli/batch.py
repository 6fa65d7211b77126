"""Planning a batch command's jobs: inputs, the outputs they write, the executor.

Inputs are files, folders and glob patterns (:func:`fastseg._batch.expand`). Outputs are
planned before anything runs: never an input, never an existing file unless
``--overwrite`` (``--skip-existing`` skips such inputs), never the same file for two
inputs, and an output folder is never read as input. Jobs are plain data (paths and
options) so that they travel to worker processes, or to a dask.distributed cluster,
unchanged; running them is :func:`fastseg._batch.run_all`'s.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from fastseg._batch import (
    Attempt,
    Input,
    Outcome,
    describe_error,
    expand,
    is_volume,
    one_line,
    process_pool,
    run_all,
    split_suffix,
)


class UsageError(Exception):
    """Arguments that cannot work for any input; the command stops with exit status 2."""


@dataclass(frozen=True)
class Job:
    """One input, the files its job writes, and what else the job needs to know (plain
    data)."""

    source: str
    outputs: tuple[str, ...] = ()
    data: Any = None


# ---------------------------------------------------------------------------- outputs


def output_path(item: Input, out: str | None, suffix: str, single: bool) -> str:
    """Where the result for ``item`` goes.

    Without ``out``: beside the input, its name with ``suffix`` added before the
    extension. With ``out`` naming a volume file (one input only): that file. Otherwise
    ``out`` is a folder: the input's name, below ``out`` at the input's path relative to
    the folder argument it came from.
    """
    if out is None:
        stem, extension = split_suffix(item.path)
        return stem + suffix + extension
    if single and out_is_file(out):
        return out
    return os.path.join(out, item.relative)


def out_is_file(out: str) -> bool:
    """``-o`` names a file (a volume's name, not an existing folder) rather than a folder."""
    return is_volume(out) and not os.path.isdir(out)


@dataclass
class OutputPolicy:
    """What may be written: ``overwrite`` replaces existing files; ``skip_existing``
    skips the inputs whose outputs all exist."""

    overwrite: bool = False
    skip_existing: bool = False
    inputs: set[str] = field(default_factory=set)
    planned: dict[str, str] = field(default_factory=dict)

    def check(self, source: str, outputs: Sequence[str]) -> Outcome | None:
        """None when ``source`` may write ``outputs``, else the outcome that says why not."""
        for path in outputs:
            key = os.path.realpath(path)
            if key in self.inputs:
                return Outcome(source, "failed", f"the output {path} would replace an input")
            if key in self.planned:
                return Outcome(
                    source, "failed", f"{self.planned[key]} already writes the output {path}"
                )
        existing = [path for path in outputs if os.path.exists(path)]
        if existing and not self.overwrite:
            if self.skip_existing and len(existing) == len(outputs):
                return Outcome(source, "skipped", f"{existing[0]} exists")
            return Outcome(
                source,
                "failed",
                f"the output {existing[0]} exists (--overwrite replaces it, "
                "--skip-existing skips such inputs)",
            )
        for path in outputs:
            self.planned[os.path.realpath(path)] = source
        return None


def plan(
    specs: Sequence[str],
    out: str | None,
    suffix: str,
    policy: OutputPolicy,
    extra: Callable[[str], Sequence[str]] = lambda _: (),
) -> tuple[list[Job], list[Outcome]]:
    """Jobs for the inputs ``specs`` name, each writing ``output_path(...)`` and the files
    ``extra(output)`` names beside it; and the outcomes of inputs that cannot run.

    Raises
    ------
    UsageError
        If ``out`` names one file and the inputs are several.
    """
    exclude = [out] if out is not None and not out_is_file(out) else []
    inputs, problems = expand(specs, exclude=exclude)
    if out is not None and out_is_file(out) and len(inputs) > 1:
        raise UsageError(
            f"-o {out} names one file but the inputs are {len(inputs)} files "
            "(-o DIR writes each under its own name)"
        )
    policy.inputs.update(os.path.realpath(item.path) for item in inputs)
    jobs: list[Job] = []
    for item in inputs:
        target = output_path(item, out, suffix, single=len(inputs) == 1)
        outputs = (target, *extra(target))
        refused = policy.check(item.path, outputs)
        if refused is None:
            jobs.append(Job(item.path, outputs))
        else:
            problems.append(refused)
    return jobs, problems


def reading_jobs(specs: Sequence[str]) -> tuple[list[Job], list[Outcome]]:
    """Jobs that only read their input (no outputs), and the arguments that name nothing."""
    inputs, problems = expand(specs)
    return [Job(item.path) for item in inputs], problems


def prepare_folder(path: str) -> None:
    """Create the folder a job's output goes to."""
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)


# ------------------------------------------------------------------------------ running


def _attempted(job: Job, result: Attempt[Any]) -> Outcome:
    if result.error is not None:
        return Outcome(job.source, "failed", result.error, seconds=result.seconds)
    return Outcome(
        job.source, "done", result=result.value, seconds=result.seconds, outputs=job.outputs
    )


def _describe(error: BaseException, job: Job) -> str:
    return describe_error(error, job.source)


def run_jobs(
    work: Callable[[Job], Any],
    jobs: Sequence[Job],
    executor: Executor | None,
    record: Callable[[Outcome], None],
) -> list[Outcome]:
    """Run every job (:func:`fastseg._batch.run_all`); ``record`` sees each outcome as it
    arrives. Returns the outcomes in the order of ``jobs``."""
    attempts = run_all(
        work,
        list(jobs),
        executor,
        lambda index, result: record(_attempted(jobs[index], result)),
        describe=_describe,
    )
    return [_attempted(job, result) for job, result in zip(jobs, attempts, strict=True)]


@contextlib.contextmanager
def open_executor(jobs: int, scheduler: str | None) -> Iterator[Executor | None]:
    """The executor for ``-j``/``--scheduler``: None (this process) for one job, worker
    processes for more (:func:`fastseg._batch.process_pool`), or a dask.distributed
    cluster's executor."""
    if scheduler is not None:
        try:
            distributed: Any = importlib.import_module("distributed")
        except ImportError:
            raise UsageError(
                "--scheduler needs dask.distributed: pip install distributed"
            ) from None
        try:
            client = distributed.Client(scheduler)
        except (OSError, TimeoutError, ValueError) as error:
            raise UsageError(
                f"cannot reach the scheduler {scheduler}: {one_line(str(error))}"
            ) from None
        try:
            # pure=False: every job runs, even two with equal arguments.
            yield client.get_executor(pure=False)
        finally:
            client.close()
        return
    if jobs <= 1:
        yield None
        return
    with process_pool(jobs) as pool:
        yield pool

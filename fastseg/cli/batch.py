"""Running one job per input file: inputs, outputs, executors and the runner.

Inputs are files, folders (every ``.nii``/``.nii.gz`` below them) and glob patterns.
Outputs are planned before anything runs: never an input, never an existing file unless
``--overwrite`` (``--skip-existing`` skips such inputs), never the same file for two
inputs. Jobs are plain data (paths and options) so that they travel to worker
processes, or to a dask.distributed cluster, unchanged; a job that fails becomes one
line naming the file and the reason, and the others carry on.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import glob
import importlib
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Literal

from fastseg.formats import volume_suffixes

# Every label volume format of the registry (.nii, .nii.gz, .mgz, .nrrd, .mha, ...).
NIFTI_SUFFIXES = volume_suffixes()
# Exceptions that mean the input or the options are wrong (the library raises these
# with messages meant for users); anything else is a defect, reported with its type.
USER_ERRORS = (ValueError, TypeError, KeyError, OSError, ImportError)


class UsageError(Exception):
    """Arguments that cannot work for any input; the command stops with exit status 2."""


@dataclass(frozen=True)
class Job:
    """One input, the files its job writes, and what else the job needs to know (plain
    data)."""

    source: str
    outputs: tuple[str, ...] = ()
    data: Any = None


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


# ----------------------------------------------------------------------------- inputs


def _is_nifti(path: str) -> bool:
    name = os.path.basename(path)
    return name.lower().endswith(NIFTI_SUFFIXES) and not name.startswith(".")


def _folder_files(folder: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, name) for name in sorted(files) if _is_nifti(name)]
    return found


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


def expand_inputs(specs: Sequence[str]) -> tuple[list[Input], list[Outcome]]:
    """Files, folders and glob patterns -> input files (each once, in argument order),
    and one failed outcome for every argument that names nothing."""
    inputs: list[Input] = []
    problems: list[Outcome] = []
    seen: set[str] = set()

    def add(path: str, base: str | None) -> None:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            inputs.append(Input(path, base))

    for spec in specs:
        if os.path.isdir(spec):
            files = _folder_files(spec)
            if not files:
                problems.append(Outcome(spec, "failed", "no label volume files in this folder"))
            for path in files:
                add(path, spec)
        elif os.path.exists(spec) or not glob.has_magic(spec):
            # A missing file is the job's to report (the loader names it).
            add(spec, None)
        else:
            matches = sorted(glob.glob(spec, recursive=True))
            if not matches:
                problems.append(Outcome(spec, "failed", "no files match this pattern"))
            for match in matches:
                if os.path.isdir(match):
                    for path in _folder_files(match):
                        add(path, match)
                elif _is_nifti(match):
                    add(match, None)
    return inputs, problems


# ---------------------------------------------------------------------------- outputs


def split_suffix(path: str) -> tuple[str, str]:
    """``"a/b.nii.gz"`` -> ``("a/b", ".nii.gz")``; other names split at their last dot."""
    lowered = path.lower()
    for suffix in NIFTI_SUFFIXES:
        if lowered.endswith(suffix):
            return path[: -len(suffix)], path[-len(suffix) :]
    stem, suffix = os.path.splitext(path)
    return stem, suffix


def output_path(item: Input, out: str | None, suffix: str, single: bool) -> str:
    """Where the result for ``item`` goes.

    Without ``out``: beside the input, its name with ``suffix`` added before the
    extension. With ``out`` naming a NIfTI file (one input only): that file. Otherwise
    ``out`` is a folder: the input's name, below ``out`` at the input's path relative to
    the folder argument it came from.
    """
    if out is None:
        stem, extension = split_suffix(item.path)
        return stem + suffix + extension
    if single and _is_nifti(out) and not os.path.isdir(out):
        return out
    return os.path.join(out, item.relative)


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
    ``extra(output)`` names beside it; and the outcomes of inputs that cannot run."""
    inputs, problems = expand_inputs(specs)
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
    inputs, problems = expand_inputs(specs)
    return [Job(item.path) for item in inputs], problems


def prepare_folder(path: str) -> None:
    """Create the folder a job's output goes to."""
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)


# ------------------------------------------------------------------------------ running


def one_line(text: str) -> str:
    """A message folded to one line."""
    return " ".join(str(text).split())


def describe_error(error: BaseException, source: str) -> str:
    """One line saying what went wrong with ``source`` (without repeating its name)."""
    if isinstance(error, KeyError) and error.args:
        text = str(error.args[0])
    elif isinstance(error, FileNotFoundError) and error.filename and not error.strerror:
        text = str(error)
    elif isinstance(error, OSError) and error.strerror:
        text = f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    else:
        text = str(error) or type(error).__name__
    if not isinstance(error, USER_ERRORS):
        text = f"internal error ({type(error).__name__}): {text}"
    text = one_line(text)
    # Library messages often start with the file's name; the line names it already.
    for prefix in (f"{source}: ", f"{os.path.abspath(source)}: "):
        text = text.removeprefix(prefix)
    return text


def attempt(work: Callable[[Job], Any], job: Job) -> Outcome:
    """Run ``work(job)`` and describe how it went; never raises for a failing input."""
    started = time.perf_counter()
    try:
        result = work(job)
    except Exception as error:
        return Outcome(
            job.source,
            "failed",
            describe_error(error, job.source),
            seconds=time.perf_counter() - started,
        )
    return Outcome(
        job.source,
        "done",
        result=result,
        seconds=time.perf_counter() - started,
        outputs=job.outputs,
    )


def run_jobs(
    work: Callable[[Job], Any],
    jobs: Sequence[Job],
    executor: Executor | None,
    record: Callable[[Outcome], None],
) -> list[Outcome]:
    """Run every job, in this process (``executor`` None) or on ``executor``; ``record``
    sees each outcome as it arrives. Returns the outcomes in the order of ``jobs``.

    ``work`` and the jobs must pickle for an executor in other processes: a module-level
    function (or a ``functools.partial`` of one with plain-data options).
    """
    outcomes: dict[int, Outcome] = {}
    if executor is None:
        for index, job in enumerate(jobs):
            outcomes[index] = attempt(work, job)
            record(outcomes[index])
        return [outcomes[i] for i in range(len(jobs))]
    futures = {executor.submit(attempt, work, job): index for index, job in enumerate(jobs)}
    try:
        for future in concurrent.futures.as_completed(futures):
            index = futures[future]
            try:
                outcomes[index] = future.result()
            except Exception as error:  # the worker died, or the cluster lost the task
                reason = f"the worker failed: {one_line(str(error)) or type(error).__name__}"
                outcomes[index] = Outcome(jobs[index].source, "failed", reason)
            record(outcomes[index])
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    return [outcomes[i] for i in range(len(jobs))]


# ---------------------------------------------------------------------------- executors


def _limit_threads(threads: int) -> None:
    """Worker process start: numba threads per worker, so that the workers together use
    the machine's cores instead of each starting a pool of them all."""
    if "NUMBA_NUM_THREADS" not in os.environ:
        os.environ["NUMBA_NUM_THREADS"] = str(threads)


def _start_method() -> str:
    # Never plain fork: a forked child inherits numba's thread pool in whatever state
    # the parent's threads left it. forkserver forks from a clean server process.
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


@contextlib.contextmanager
def open_executor(jobs: int, scheduler: str | None) -> Iterator[Executor | None]:
    """The executor for ``-j``/``--scheduler``: None (this process) for one job, worker
    processes for more, or a dask.distributed cluster's executor."""
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
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context(_start_method())
    with concurrent.futures.ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_limit_threads, initargs=(threads,)
    ) as pool:
        yield pool

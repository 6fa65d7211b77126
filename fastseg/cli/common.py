"""What the batch commands share: their options, the files they read once per process,
and running their jobs with progress, a summary and an exit status."""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

from fastseg.cli.batch import (
    USER_ERRORS,
    Job,
    Outcome,
    OutputPolicy,
    UsageError,
    describe_error,
    open_executor,
    run_jobs,
)
from fastseg.cli.progress import PROGRESS_MODES, Progress, Timer, summary
from fastseg.schema import Schema
from fastseg.segmap import SegmentMap

EXIT_OK = 0
"""Every input was done (or skipped with ``--skip-existing``)."""
EXIT_FAILED = 1
"""At least one input failed; the others were done."""
EXIT_USAGE = 2
"""Nothing ran: bad arguments, or a file every input needs (schema, mapping) is unusable."""
EXIT_INTERRUPTED = 130
"""Interrupted (Ctrl-C); files written so far are complete, none is half-written."""

EXIT_CODES = f"""\
exit status:
  {EXIT_OK}    every input done (or skipped with --skip-existing)
  {EXIT_FAILED}    some inputs failed (one line each on stderr); the others were done
  {EXIT_USAGE}    usage error: nothing ran
  {EXIT_INTERRUPTED}  interrupted"""


FORMATTER = argparse.RawDescriptionHelpFormatter


def epilog(examples: str) -> str:
    """A command's help epilog: its examples, then the exit statuses."""
    return f"examples:\n{examples}\n\n{EXIT_CODES}"


def add_command(
    commands: Any,
    name: str,
    *,
    summary: str,
    description: str,
    examples: str,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> argparse.ArgumentParser:
    """Add a command to the ``commands`` subparsers, its help ending in examples."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        parents=list(parents),
        formatter_class=FORMATTER,
        help=summary,
        description=description,
        epilog=epilog(examples),
    )
    return parser


def non_negative(kind: type[int] | type[float]) -> Callable[[str], Any]:
    """An argparse type: a number of ``kind`` that is at least 0."""

    def parse(value: str) -> Any:
        try:
            number = kind(value)
        except ValueError:
            number = -1
        if number < 0:
            noun = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {noun} >= 0, got {value!r}")
        return number

    return parse


def _job_count(value: str) -> int:
    count: int = non_negative(int)(value)
    return count or os.cpu_count() or 1


def batch_parent() -> argparse.ArgumentParser:
    """The options of every command that runs over files."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("running")
    group.add_argument(
        "-j",
        "--jobs",
        type=_job_count,
        default=1,
        metavar="N",
        help="worker processes (default 1: this process; 0: one per CPU)",
    )
    group.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the jobs on a dask.distributed cluster, e.g. tcp://10.0.0.5:8786 "
        "(needs the distributed package; the files must be reachable from the workers)",
    )
    group.add_argument(
        "--progress",
        choices=PROGRESS_MODES,
        default="auto",
        help="auto: a bar on a terminal when tqdm is installed (default); bar; lines: "
        "a line per finished input; none",
    )
    group.add_argument(
        "-q", "--quiet", action="store_true", help="no progress and no summary; failures only"
    )
    return parent


def output_parent(default_suffix: str) -> argparse.ArgumentParser:
    """``-o``, ``--suffix``, ``--overwrite`` and ``--skip-existing``."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("output")
    group.add_argument(
        "-o",
        "--out",
        metavar="PATH",
        help="output folder (inputs keep their names and their paths below a folder "
        "argument), or a .nii/.nii.gz file for a single input; default: beside each "
        "input with --suffix added",
    )
    group.add_argument(
        "--suffix",
        default=default_suffix,
        help=f"added to the input's name without --out (default {default_suffix})",
    )
    overwrite = group.add_mutually_exclusive_group()
    overwrite.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs (never an input)"
    )
    overwrite.add_argument(
        "--skip-existing",
        action="store_true",
        help="skip inputs whose outputs exist (to resume an interrupted run)",
    )
    return parent


def policy(args: argparse.Namespace) -> OutputPolicy:
    return OutputPolicy(
        overwrite=getattr(args, "overwrite", False),
        skip_existing=getattr(args, "skip_existing", False),
    )


def execute(
    args: argparse.Namespace,
    work: Callable[[Job], Any],
    jobs: Sequence[Job],
    problems: Sequence[Outcome] = (),
    *,
    on_done: Callable[[Outcome, Progress], None] | None = None,
    noun: str = "file",
) -> tuple[int, list[Outcome]]:
    """Run ``work`` over ``jobs`` as ``args`` says; report as it goes and sum up.

    ``problems`` are inputs that failed or were skipped before running (reported first);
    ``on_done`` sees every done outcome (e.g. to print its result). Returns the exit
    status and every outcome, ``problems`` first.
    """
    timer = Timer()
    progress = Progress(len(jobs) + len(problems), mode=args.progress, quiet=args.quiet)
    outcomes: list[Outcome] = []

    def record(outcome: Outcome) -> None:
        outcomes.append(outcome)
        progress.record(outcome)
        if outcome.status == "done" and on_done is not None:
            on_done(outcome, progress)

    try:
        for problem in problems:
            record(problem)
        with open_executor(args.jobs, args.scheduler) as executor:
            if executor is not None and jobs:
                progress.message(_workers(args))
            ordered = run_jobs(work, jobs, executor, record)
    finally:
        progress.close()
    results = [*problems, *ordered]
    if not args.quiet:
        progress.message(summary(args.command, results, timer.seconds, _workers(args), noun))
    failed = any(o.status == "failed" for o in results)
    return (EXIT_FAILED if failed else EXIT_OK), results


def _workers(args: argparse.Namespace) -> str:
    if args.scheduler:
        return f"dask.distributed at {args.scheduler}"
    return "this process" if args.jobs <= 1 else f"{args.jobs} processes"


# --------------------------------------------------------- files every input needs


def _stamp(path: str) -> tuple[str, int, int]:
    info = os.stat(path)
    return os.path.realpath(path), info.st_mtime_ns, info.st_size


@functools.lru_cache(maxsize=16)
def _cached_schema(stamp: tuple[str, int, int]) -> Schema:
    return Schema.load(stamp[0])


@functools.lru_cache(maxsize=16)
def _cached_segment_map(
    stamp: tuple[str, int, int], schema: tuple[str, int, int] | None
) -> SegmentMap:
    return SegmentMap.load(stamp[0], schema=None if schema is None else _cached_schema(schema))


def load_schema(path: str) -> Schema:
    """A schema file, read once per process (and again if it changes)."""
    return _cached_schema(_stamp(path))


def load_segment_map(path: str, schema: str | None) -> SegmentMap:
    """A segment map file (``schema`` resolves classIds), read once per process."""
    return _cached_segment_map(_stamp(path), None if schema is None else _stamp(schema))


def check_shared(schema: str | None, segment_map: str | None = None) -> None:
    """Read the files every input needs once, up front: an unusable one stops the
    command before any job runs (:class:`UsageError`, naming the file)."""
    if schema is not None:
        try:
            load_schema(schema)
        except USER_ERRORS as error:
            raise UsageError(f"{schema}: {describe_error(error, schema)}") from None
    if segment_map is not None:
        try:
            load_segment_map(segment_map, schema)
        except USER_ERRORS as error:
            raise UsageError(f"{segment_map}: {describe_error(error, segment_map)}") from None

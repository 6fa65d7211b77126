"""The harness of the benchmark report: rows, skipping, timing, peak memory, the table and
the command line. Inputs are built in ``inputs.py``, results compared in ``checks.py``,
and the rows live in the ``*_rows.py`` modules; ``report.py`` puts them together.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
import importlib
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import numpy as np
from paths import ROOT, SHARED_DATA

import fastseg
from fastseg._jit import max_threads

DEFAULT_REPEAT = 7

T = TypeVar("T")


class Skip(Exception):
    """A row cannot run on this machine; the message says why."""


@functools.cache
def anchor_module(name: str) -> ModuleType:
    """Import ``name`` (cached); raises :class:`Skip` when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise Skip(f"{name} is not importable ({error})") from None


# -- rows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """Whether fastseg's result matches the anchor's, and what exactly was compared."""

    same: bool
    detail: str


Check = Callable[[Any, Any], Verdict]


@dataclass(frozen=True)
class Row:
    """One line of the table: fastseg against an anchor on the same input.

    The callables take no arguments and fetch their inputs from :class:`Volumes` (a dict
    lookup, nothing next to the work timed). ``check(fastseg result, anchor result)`` runs
    once, after the warm-up calls; ``None`` when the two results are not comparable.
    ``max_repeat`` caps the timed runs of rows too slow for ``--repeat``. ``setup``, when
    given, runs first, untimed: it builds the inputs and warms both libraries up on
    something small, so that no full call is spent on warming up: the first calls are
    timed, and checked. ``memory``, when
    given, measures the peak memory of one call elsewhere (in a process of its own)
    instead of in this process: ``memory("fastseg")`` and ``memory("anchor")`` return
    bytes, or None where that cannot be measured.
    """

    name: str
    fastseg: Callable[[], object]
    anchor_name: str
    anchor: Callable[[], object]
    target: float
    check: Check | None = None
    max_repeat: int | None = None
    setup: Callable[[], object] | None = None
    memory: Callable[[str], int | None] | None = None


# -- timing -------------------------------------------------------------------------------


@dataclass
class Result:
    """What one row measured, or why it was skipped."""

    row: Row
    skipped: str | None = None
    failed: str | None = None
    verdict: Verdict | None = None
    fastseg_times: list[float] = field(default_factory=list)
    anchor_times: list[float] = field(default_factory=list)
    fastseg_memory: int | None = None
    anchor_memory: int | None = None

    @property
    def fastseg_median(self) -> float:
        return statistics.median(self.fastseg_times)

    @property
    def anchor_median(self) -> float:
        return statistics.median(self.anchor_times)

    @property
    def ratio(self) -> float:
        return self.fastseg_median / self.anchor_median


def time_once(func: Callable[[], object]) -> float:
    """Seconds one call takes; the result is freed after the clock stops."""
    gc.collect()
    started = time.perf_counter()
    result = func()
    elapsed = time.perf_counter() - started
    del result
    return elapsed


def peak_memory(func: Callable[[], object]) -> int | None:
    """Bytes by which one call raises the process's resident memory at its peak.

    Linux resets the peak (VmHWM) when "5" is written to /proc/self/clear_refs, so this
    catches allocations that numba and the anchors make outside Python's tracking.
    Returns None where that is not available.
    """
    status = Path("/proc/self/status")

    def field(name: str) -> int:
        for line in status.read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(name)

    gc.collect()
    try:
        before = field("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")
    except (OSError, KeyError):
        return None
    result = func()
    peak = field("VmHWM")
    del result
    return peak - before


def _timed(func: Callable[[], T]) -> tuple[T, float]:
    gc.collect()
    started = time.perf_counter()
    result = func()
    return result, time.perf_counter() - started


def run_row(row: Row, repeat: int) -> Result:
    progress(f"{row.name}: {'set-up, first calls' if row.setup else 'warm-up'} and check")
    fastseg_times: list[float] = []
    anchor_times: list[float] = []
    try:
        if row.setup is not None:
            row.setup()
        fast, seconds = _timed(row.fastseg)
        fastseg_times.append(seconds)
    except Skip as reason:
        return Result(row, skipped=str(reason))
    except Exception as error:
        # Report the other rows rather than losing the whole run to one failure.
        traceback.print_exc()
        return Result(row, failed=f"fastseg raised {type(error).__name__}: {error}")
    try:
        anchor, seconds = _timed(row.anchor)
        anchor_times.append(seconds)
    except Skip as reason:
        return Result(row, skipped=str(reason))
    verdict = row.check(fast, anchor) if row.check is not None else None
    del fast, anchor
    result = Result(row, verdict=verdict)
    if row.setup is not None:
        # The first calls ran warm: they count.
        result.fastseg_times, result.anchor_times = fastseg_times, anchor_times
        repeat -= 1
    if row.max_repeat is not None:
        repeat = min(repeat, row.max_repeat - len(result.fastseg_times))
    for run in range(repeat):
        pairs = [(row.fastseg, result.fastseg_times), (row.anchor, result.anchor_times)]
        for func, times in pairs if run % 2 == 0 else reversed(pairs):
            times.append(time_once(func))
    if row.memory is not None:
        progress(f"{row.name}: peak memory, one process per library")
        result.fastseg_memory = row.memory("fastseg")
        result.anchor_memory = row.memory("anchor")
    else:
        result.fastseg_memory = peak_memory(row.fastseg)
        result.anchor_memory = peak_memory(row.anchor)
    # Everything the table will show, so that a run that dies later loses nothing.
    progress(
        f"{row.name}: fastseg {format_seconds(result.fastseg_median)}, "
        f"{row.anchor_name} {format_seconds(result.anchor_median)}; peak memory "
        f"{format_bytes(result.fastseg_memory)} / {format_bytes(result.anchor_memory)}; "
        f"{'not checked' if verdict is None else verdict.detail}"
    )
    return result


# -- report -------------------------------------------------------------------------------


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def format_seconds(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 0.01:
        return f"{seconds * 1e3:.0f} ms"
    return f"{seconds * 1e3:.2f} ms"


def format_bytes(size: int | None) -> str:
    return "n/a" if size is None else f"{size / 2**20:.0f} MB"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def git_revision() -> str:
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}{' with local changes' if dirty else ''}"


def version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# The anchors' distributions, as the header names them.
ANCHORS: tuple[tuple[str, str], ...] = (
    ("cc3d", "connected-components-3d"),
    ("fastremap", "fastremap"),
    ("SimpleITK", "SimpleITK"),
    ("scipy", "scipy"),
    ("scikit-image", "scikit-image"),
    ("MONAI", "monai"),
    ("TorchIO", "torchio"),
    ("dask", "dask"),
    ("dask-image", "dask-image"),
    ("redbrick-sdk", "redbrick-sdk"),
    ("nibabel", "nibabel"),
)


def header(numba: Any, repeat: int) -> list[str]:
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cores = f"{os.cpu_count()} cores"
    if available is not None and available != os.cpu_count():
        cores += f" ({available} available to this process)"
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    return [
        "### fastseg against its anchors",
        "",
        f"- date: {now}",
        f"- machine: {cpu_model()}, {cores}, {platform.system()} {platform.release()}",
        f"- fastseg threads: {fastseg.get_threads()} (of {max_threads()} this process "
        "may use); the anchors run single-threaded",
        f"- versions: Python {platform.python_version()}, numpy {np.__version__}, "
        f"numba {numba.__version__}, fastseg {fastseg.__version__} (git {git_revision()})",
        "- anchor versions: "
        + ", ".join(f"{name} {version(distribution)}" for name, distribution in ANCHORS),
        f"- timing: median of {repeat} runs after a warm-up call, fastseg and anchor "
        "interleaved, time.perf_counter",
        "- peak memory: how far one call raises the process's peak resident memory above "
        "what it held before (VmHWM reset through /proc/self/clear_refs); the output counts",
    ]


def table(results: Sequence[Result]) -> list[str]:
    lines = [
        "| operation | fastseg median | anchor | anchor median | ratio (fastseg/anchor) | target "
        "| peak memory fastseg / anchor |",
        "|---|---:|---|---:|---:|---|---:|",
    ]
    for result in results:
        row = result.row
        target = f"<= {row.target:g}"
        if result.skipped is not None or result.failed is not None:
            why = f"skipped: {result.skipped}" if result.skipped is not None else result.failed
            cells = [row.name, str(why), row.anchor_name, "-", "-", target, "-"]
        else:
            met = "met" if result.ratio <= row.target else "missed"
            ratio = f"{result.ratio:.2f}"
            if result.verdict is not None and not result.verdict.same:
                ratio += " (results differ!)"
            cells = [
                row.name,
                format_seconds(result.fastseg_median),
                row.anchor_name,
                format_seconds(result.anchor_median),
                ratio,
                f"{target}: {met}",
                f"{format_bytes(result.fastseg_memory)} / {format_bytes(result.anchor_memory)}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def details(results: Sequence[Result]) -> list[str]:
    lines: list[str] = []
    for result in results:
        if result.skipped is not None or result.failed is not None:
            continue
        if result.verdict is None:
            check = "not comparable, not checked"
        else:
            check = ("same result: " if result.verdict.same else "RESULTS DIFFER: ") + (
                result.verdict.detail
            )
        spread = (
            f"fastseg {format_seconds(min(result.fastseg_times))}-"
            f"{format_seconds(max(result.fastseg_times))}, {result.row.anchor_name} "
            f"{format_seconds(min(result.anchor_times))}-"
            f"{format_seconds(max(result.anchor_times))}"
        )
        lines.append(f"- {result.row.name}: {check}; {spread}")
    if not lines:
        return []
    return ["", "Checks before timing, and the spread of the timed runs (min-max):", "", *lines]


def select(rows: Sequence[Row], names: Sequence[str] | None) -> list[Row]:
    """Rows whose operation contains one of ``names`` (case-insensitive), or all."""
    if not names:
        return list(rows)
    for name in names:
        if not any(name.lower() in row.name.lower() for row in rows):
            choices = ", ".join(repr(row.name) for row in rows)
            raise SystemExit(f"--only {name!r} matches no row; the rows are {choices}")
    return [row for row in rows if any(name.lower() in row.name.lower() for name in names)]


def parse_args(argv: Sequence[str] | None, description: str) -> argparse.Namespace:
    """The report's options: ``--repeat``, ``--only``, ``--threads``, ``--gigavoxel``,
    ``--data``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--repeat",
        type=int,
        default=DEFAULT_REPEAT,
        metavar="N",
        help="timed runs per library and row; the table shows their median "
        f"(default {DEFAULT_REPEAT})",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="run only the rows whose operation contains one of these (case-insensitive), "
        "e.g. --only unique renumber",
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="threads for fastseg (default: every CPU this process may use, or NUMBA_NUM_THREADS)",
    )
    parser.add_argument(
        "--gigavoxel",
        action="store_true",
        help="add the rows on two generated 1024x1024x512 uint32 volumes (2 GiB each; "
        "about half an hour, up to about 8 GiB of memory)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=SHARED_DATA,
        help=f"folder with the label volumes (default {SHARED_DATA})",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def use_threads(threads: int | None) -> Any:
    """numba (untyped, for the report's header), with fastseg set to ``threads`` threads
    when given (fastseg runs kernels on its own threads, not numba's)."""
    numba: Any = importlib.import_module("numba")
    if threads is not None:
        limit = max_threads()
        if not 1 <= threads <= limit:
            raise SystemExit(
                f"--threads must be between 1 and {limit} (the CPUs this process may use; "
                "NUMBA_NUM_THREADS changes it)"
            )
        fastseg.set_threads(threads)
    return numba

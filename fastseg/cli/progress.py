"""What a batch tells its user while it runs, and the summary at its end.

Results go to stdout; everything else (the progress bar, one line per failed input, the
summary) goes to stderr, so that ``fastseg info ... > report.txt`` keeps only results.
The progress bar is tqdm's (the ``cli`` extra) on a terminal, shown once a run takes
longer than half a second; without tqdm, or when stderr is not a terminal, there is no
bar (``--progress lines`` prints a line per finished input instead).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any, Literal, TextIO

from fastseg._batch import Outcome

ProgressMode = Literal["auto", "bar", "lines", "none"]
PROGRESS_MODES: tuple[ProgressMode, ...] = ("auto", "bar", "lines", "none")


def _tqdm() -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


class Progress:
    """Reports outcomes as they arrive: a failure or a skip is one line at once; done
    inputs advance the bar (or print a line with ``lines``)."""

    def __init__(
        self,
        total: int,
        *,
        mode: ProgressMode = "auto",
        quiet: bool = False,
        stream: TextIO | None = None,
        out: TextIO | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.out = out if out is not None else sys.stdout
        self.total = total
        self.count = 0
        self.lines = mode == "lines" and not quiet
        self.bar: Any = None
        tqdm = _tqdm()
        interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        wanted = mode == "bar" or (mode == "auto" and interactive and total > 1)
        if wanted and not quiet and tqdm is not None:
            self.bar = tqdm(
                total=total,
                file=self.stream,
                unit="file",
                delay=0.0 if mode == "bar" else 0.5,
                dynamic_ncols=True,
                leave=False,
            )
        elif mode == "bar" and not quiet:
            self.lines = True  # asked for progress, and tqdm is not installed

    def message(self, text: str) -> None:
        """A line on stderr, above the bar."""
        self._write(text, self.stream)

    def result(self, text: str) -> None:
        """A result on stdout, above the bar."""
        self._write(text, self.out)

    def _write(self, text: str, stream: TextIO) -> None:
        if self.bar is not None:
            self.bar.write(text, file=stream)
        else:
            print(text, file=stream, flush=True)

    def record(self, outcome: Outcome) -> None:
        self.count += 1
        if outcome.status == "failed":
            self.message(f"failed: {outcome.source}: {outcome.reason}")
        elif outcome.status == "skipped":
            self.message(f"skipped: {outcome.source}: {outcome.reason}")
        elif self.lines:
            self.message(
                f"[{self.count}/{self.total}] done: {outcome.source} ({outcome.seconds:.2f} s)"
            )
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def summary(
    command: str,
    outcomes: Sequence[Outcome],
    seconds: float,
    workers: str,
    noun: str = "file",
    *,
    total: int | None = None,
) -> str:
    """``fastseg clean: 12 files: 11 done, 1 failed, 0 skipped in 3.1 s (2 worker
    processes)``; interrupted (``total`` given), also how many were not run."""
    done = sum(o.status == "done" for o in outcomes)
    failed = sum(o.status == "failed" for o in outcomes)
    skipped = sum(o.status == "skipped" for o in outcomes)
    count = len(outcomes) if total is None else total
    plural = noun if count == 1 or noun.endswith("s") else f"{noun}s"
    counts = f"{count} {plural}: {done} done, {failed} failed, {skipped} skipped"
    if total is not None:
        return (
            f"fastseg {command}: interrupted: {counts}, {total - len(outcomes)} not run, "
            f"after {seconds:.1f} s ({workers})"
        )
    return f"fastseg {command}: {counts} in {seconds:.1f} s ({workers})"


class Timer:
    """Wall time since creation."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

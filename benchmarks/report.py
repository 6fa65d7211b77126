"""Time fastseg against its anchor libraries on real data and print a markdown table.

    python benchmarks/report.py [--repeat N] [--only NAME ...] [--threads N]

Every row runs fastseg and its anchor in the same process on the same input: one warm-up
call of each (numba compilation, lazily built inputs), a check that both give the same
result, then ``--repeat`` timed calls of each, interleaved (fastseg first on even runs,
the anchor first on odd ones) so that load from other processes on a shared machine hits
both alike. The table shows medians. The table goes to stdout, progress to stderr.

Rows come from the modules in :data:`ROW_MODULES` (:func:`build_rows`): each a list of
:class:`~harness.Row`, a fastseg callable, an anchor callable, a target ratio and
optionally a check. A row whose data file is missing or whose anchor library is not
importable is printed as ``skipped: <reason>``. Timing, memory, the table and the command
line are in ``harness.py``, the inputs in ``inputs.py``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from harness import Row, details, header, parse_args, run_row, select, table, use_threads
from inputs import Volumes

# Modules beside this script that contribute rows, each through a
# ``rows(v: Volumes) -> list[Row]`` function; their rows appear in this order.
ROW_MODULES: tuple[str, ...] = (
    "core_rows", "cleanup_rows", "dask_rows", "loader_rows", "evaluate_rows", "sampling_rows",
)  # fmt: skip
# Rows on generated 2 GiB volumes, run only with --gigavoxel (minutes, and several GiB).
GIGAVOXEL_MODULE = "gigavoxel_rows"


def build_rows(v: Volumes, *, gigavoxel: bool = False) -> list[Row]:
    """The rows of the table, in order: those of :data:`ROW_MODULES`, then with
    ``gigavoxel`` those of :data:`GIGAVOXEL_MODULE`."""
    rows: list[Row] = []
    for name in ROW_MODULES + ((GIGAVOXEL_MODULE,) if gigavoxel else ()):
        rows.extend(importlib.import_module(name).rows(v))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv, __doc__.split("\n\n")[0])
    numba = use_threads(args.threads)
    volumes = Volumes(args.data)
    rows = select(build_rows(volumes, gigavoxel=args.gigavoxel), args.only)
    results = [run_row(row, args.repeat) for row in rows]
    data = volumes.describe()
    lines = header(numba, args.repeat)
    if data:
        lines.append(f"- data ({args.data}): " + "; ".join(data))
    lines += ["", *table(results), *details(results)]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

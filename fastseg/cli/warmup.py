"""``fastseg warmup``: compile the kernels into the cache ahead of time (container image
builds, cluster nodes)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from fastseg.cli.batch import UsageError
from fastseg.cli.common import EXIT_FAILED, EXIT_OK, add_command, non_negative


def register(commands: Any) -> None:
    from fastseg._warmup import OPERATIONS

    parser = add_command(
        commands,
        "warmup",
        summary="compile fastseg's kernels into the on-disk cache ahead of time",
        description="Compile (or load) the kernels of every operation group, or of the "
        "groups named, for uint8/uint16/uint32 labels (signed and bool labels share them), "
        "into the kernel cache: FASTSEG_CACHE_DIR, else NUMBA_CACHE_DIR, else the per-user "
        "cache directory. Run it where a container image is built, so that every process "
        f"started from it is warm. Groups: {', '.join(OPERATIONS)}.",
        examples="""\
  fastseg warmup                                    # every group, the default cache
  fastseg warmup --cache-dir /opt/fastseg-cache     # as FASTSEG_CACHE_DIR=/opt/...
  fastseg warmup label stats                        # only some groups
  fastseg warmup -j 1                               # in this process only""",
    )
    parser.add_argument("operations", nargs="*", metavar="OPERATION", help="groups to warm up")
    parser.add_argument("--cache-dir", metavar="DIR", help="the cache folder to fill")
    parser.add_argument(
        "-j",
        "--jobs",
        type=non_negative(int),
        default=0,
        metavar="N",
        help="processes to compile in, this one included (default 0: one per CPU this "
        "process may use; 1: this process only)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from fastseg._warmup import OPERATIONS

    unknown = [name for name in args.operations if name not in OPERATIONS]
    if unknown:
        raise UsageError(
            f"unknown groups {', '.join(unknown)}; choose from {', '.join(OPERATIONS)}"
        )
    if args.cache_dir is not None:
        # Read when the first kernel module is imported, which has not happened yet.
        os.environ["FASTSEG_CACHE_DIR"] = os.path.abspath(args.cache_dir)
    from fastseg._warmup import DEFAULT_DTYPES, WarmupError, _warmup

    try:
        # This process ends next: the kernels worker processes compiled stay in the cache
        # without being loaded here too.
        report = _warmup(
            args.operations or None,
            dtypes=DEFAULT_DTYPES,
            processes=args.jobs or None,
            load=False,
        )
    except WarmupError as error:
        print(f"fastseg warmup: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    where = "this process" if report.processes == 1 else f"{report.processes} processes"
    print(
        f"warmed {', '.join(report.operations)} in {report.total_seconds:.1f} s "
        f"({where}): "
        f"{report.compiled} compiled, {report.loaded} loaded from the cache; "
        f"cache {report.cache_dir or 'none (in memory: no writable cache directory)'}"
    )
    return EXIT_OK

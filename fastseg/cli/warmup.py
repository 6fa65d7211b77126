"""``fastseg warmup``: compile the kernels ahead of time, into the on-disk cache."""

from __future__ import annotations

import argparse
import os
from typing import Any

import numpy as np

import fastseg
from fastseg.cli.batch import UsageError
from fastseg.cli.common import EXIT_OK, add_command

DTYPES = ("uint8", "uint16", "uint32", "uint64")


def register(commands: Any) -> None:
    operations = fastseg.warmup_operations()
    parser = add_command(
        commands,
        "warmup",
        summary="compile the kernels ahead of time (e.g. while building a container image)",
        description="Compile the kernels of every operation group (or the groups named) for "
        "uint8, uint16 and uint32 labels (or --dtypes) into the on-disk cache, so that "
        "later processes, data loader workers included, start warm; signed and bool labels "
        "share the kernels of the unsigned type of their width. The cache is --cache-dir, "
        "else FASTSEG_CACHE_DIR, else NUMBA_CACHE_DIR, else the per-user cache. In a "
        f"process whose cache is warm it only loads the kernels. Groups: {', '.join(operations)}.",
        examples="""\
  fastseg warmup
  fastseg warmup --cache-dir /opt/fastseg-cache     # then FASTSEG_CACHE_DIR=/opt/fastseg-cache
  fastseg warmup relabel label --dtypes uint16""",
    )
    parser.add_argument(
        "operations",
        nargs="*",
        metavar="OPERATION",
        help=f"operation groups to warm up: {', '.join(operations)} (default: all)",
    )
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="cache folder to fill (created if missing; sets FASTSEG_CACHE_DIR for this run)",
    )
    parser.add_argument(
        "--dtypes",
        nargs="+",
        choices=DTYPES,
        default=["uint8", "uint16", "uint32"],
        metavar="DTYPE",
        help=f"label dtypes ({', '.join(DTYPES)}; default uint8 uint16 uint32)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    known = fastseg.warmup_operations()
    unknown = [name for name in args.operations if name not in known]
    if unknown:
        raise UsageError(f"no operation group {unknown[0]!r}; the groups are {', '.join(known)}")
    if args.cache_dir is not None:
        try:
            os.makedirs(args.cache_dir, exist_ok=True)
        except OSError as error:
            raise UsageError(f"--cache-dir {args.cache_dir}: {error.strerror}") from None
        # Read where kernels are cached, at their first compile (none has compiled yet).
        os.environ["FASTSEG_CACHE_DIR"] = os.path.abspath(args.cache_dir)
    report = fastseg.warmup(args.operations or None, dtypes=[np.dtype(d) for d in args.dtypes])
    for name, seconds in report.seconds.items():
        print(f"  {name:<14}{seconds:>8.2f} s")
    where = (
        f"cached in {report.cache_dir}"
        if report.cache_dir is not None
        else "compiled in memory only (no writable cache directory)"
    )
    print(
        f"fastseg warmup: {len(report.operations)} operation "
        f"group{'' if len(report.operations) == 1 else 's'} for "
        f"{', '.join(str(d) for d in report.dtypes)}: {report.compiled} kernels compiled, "
        f"{report.loaded} loaded from the cache in {report.total_seconds:.1f} s; {where}"
    )
    return EXIT_OK

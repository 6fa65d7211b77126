"""The ``demo`` command: the built-in spine phantom through the main job, with a summary."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from fastseg.cli.common import EXIT_OK, OutputExists, add_command
from fastseg.demo import SHAPE, SPACING, DemoReport, run_demo


def format_report(report: DemoReport) -> str:
    """The summary ``fastseg demo`` prints."""
    shape = " x ".join(str(n) for n in SHAPE)
    spacing = " x ".join(f"{s:g}" for s in SPACING)
    lines = [
        f"fastseg demo: spine phantom, {shape} voxels of {spacing} mm, "
        "exported as a RedBrick instance map with its taxonomy and segmentMap",
        "",
        f"{'category':<22}{'instances':>10}{'from semantic':>15}{'after cleanup':>15}"
        f"{'volume mm³':>14}",
    ]
    for c in report.categories:
        lines.append(
            f"{c.name:<22}{c.instances:>10}{c.recovered:>15}{c.after_cleanup:>15}"
            f"{c.volume_mm3:>14,.0f}"
        )
    lines += [
        "",
        "'from semantic' counts connected components of the semantic map: stray voxels of "
        f"the annotation count as instances until cleanup removes them ({report.removed_voxels} "
        "voxels).",
        "",
        "steps:",
    ]
    lines += [f"  {name:<34}{seconds:>7.2f} s" for name, seconds in report.steps]
    lines += ["", f"files written to {report.folder}:"]
    lines += [f"  {path.name}" for path in report.files]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        report = run_demo(args.out, overwrite=args.overwrite)
    except FileExistsError as error:
        raise OutputExists(
            str(error).replace("overwrite=True (--overwrite)", "--overwrite")
        ) from None
    print(format_report(report))
    if sum(seconds for _, seconds in report.steps) > 5:
        print(
            "\n(the first run compiles fastseg's kernels and caches them on disk; "
            "later runs take a fraction of this)",
            file=sys.stderr,
        )
    return EXIT_OK


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "demo",
        summary="run the main job on a built-in spine phantom (no download)",
        description="Generate a spine phantom in code (five vertebrae as instances of one "
        "category, four discs, both kidneys and the liver, 0.8 x 0.8 x 2.5 mm voxels) with "
        "its RedBrick taxonomy and segmentMap, then convert instances to semantic and back, "
        "measure every instance in mm, clean up stray voxels, write every result to a "
        "folder and print a summary.",
        examples=(
            """\
  fastseg demo                        # writes ./fastseg-demo
  fastseg demo --out /tmp/phantom
  fastseg demo                        # again: replaces its own earlier files
  fastseg demo --overwrite            # also replace files of these names it did not write"""
        ),
    )
    parser.add_argument(
        "--out", default="fastseg-demo", metavar="DIR", help="folder (default ./fastseg-demo)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing files of the demo's names even if an earlier demo run did not "
        "write them (its own earlier files are replaced anyway)",
    )
    parser.set_defaults(handler=run)

"""``fastseg info``: shape, stored dtype, spacing and the ids of label maps."""

from __future__ import annotations

import argparse
import functools
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

import fastseg
from fastseg._batch import Outcome
from fastseg.cli.batch import Job, reading_jobs
from fastseg.cli.common import (
    add_command,
    add_inputs,
    add_names,
    batch_parent,
    check_shared,
    execute,
    id_names,
    round_volume,
)
from fastseg.cli.progress import Progress

SPATIAL_AXES = 3


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "info",
        parents=[batch_parent()],
        summary="shape, dtype, spacing and the ids of label maps, with voxel counts, mm³ and names",
        description="Print the shape, the dtype the file stores and the spacing of label "
        "maps, and every id with its voxel count, volume in mm³ and, given a schema or "
        "segment map, its name. Results go to stdout, one block (or with --json one line) "
        "per file; the summary and failures to stderr.",
        examples="""\
  fastseg info labels.nii.gz
  fastseg info labelsTr/ --schema dataset.json
  fastseg info case.nii.gz --segment-map segmentMap.json --schema taxonomy.json
  fastseg info case.nii.gz --segment-map export/tasks.json --series CT --schema taxonomy.json
  fastseg info 'data/**/*.nii.gz' --json > ids.jsonl""",
    )
    add_inputs(parser)
    add_names(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per file")
    parser.set_defaults(handler=run)


@dataclass(frozen=True)
class InfoOptions:
    schema: str | None
    segment_map: str | None
    series: str | None = None


def stored_dtype(image: fastseg.LabelImage) -> str:
    """The dtype the file stores (a float32 file read as uint8 labels says float32)."""
    header = image.header
    if header is not None and hasattr(header, "get_data_dtype"):
        return str(np.dtype(header.get_data_dtype()))
    return str(image.labels.dtype)


def info_job(options: InfoOptions, job: Job) -> dict[str, Any]:
    """Shape, dtype, spacing and every id with its voxel count, volume and name."""
    image = fastseg.load(job.source)
    ids, counts = fastseg.unique(image.labels, return_counts=True)
    # A 4th axis is time or channels, not space: the voxel's volume is the first three's.
    spacing = list(image.spacing[:SPATIAL_AXES])
    voxel = float(np.prod(spacing)) if spacing else 1.0
    name = id_names(options.schema, options.segment_map, options.series)
    stored = stored_dtype(image)
    return {
        "file": job.source,
        "shape": list(image.labels.shape),
        "dtype": stored,
        "labels_dtype": str(image.labels.dtype),
        "spacing": spacing,
        "voxel_volume": round_volume(voxel),
        "ids": [
            {
                "id": int(i),
                "voxels": int(c),
                "volume": round_volume(float(c) * voxel),
                "name": name(int(i)),
            }
            for i, c in zip(ids.tolist(), counts.tolist(), strict=True)
        ],
    }


def format_info(info: dict[str, Any]) -> str:
    shape = " x ".join(str(n) for n in info["shape"])
    spacing = " x ".join(f"{s:g}" for s in info["spacing"])
    foreground = sum(1 for row in info["ids"] if row["id"] != 0)
    dtype = info["dtype"]
    if info["labels_dtype"] != dtype:
        dtype += f" (read as {info['labels_dtype']})"
    lines = [
        f"{info['file']}: {shape} {dtype}, spacing {spacing} mm "
        f"({info['voxel_volume']:g} mm³ per voxel), {foreground} ids besides 0"
    ]
    lines.append(f"{'id':>12} {'voxels':>12} {'volume mm³':>14}  name")
    for row in info["ids"]:
        lines.append(
            f"{row['id']:>12} {row['voxels']:>12,} {row['volume']:>14,.1f}  {row['name']}".rstrip()
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    check_shared(args.schema, args.segment_map, args.series)
    jobs, problems = reading_jobs(args.inputs)

    def show(outcome: Outcome, progress: Progress) -> None:
        text = json.dumps(outcome.result) if args.json else format_info(outcome.result)
        progress.result(text)

    work = functools.partial(info_job, InfoOptions(args.schema, args.segment_map, args.series))
    status, _ = execute(args, work, jobs, problems, on_done=show)
    return status

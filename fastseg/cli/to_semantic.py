"""``fastseg to-semantic``: instance maps -> semantic maps through a segment map."""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass
from typing import Any

import fastseg
from fastseg.cli.batch import Job, plan, prepare_folder
from fastseg.cli.common import (
    add_command,
    add_inputs,
    add_names,
    batch_parent,
    check_shared,
    execute,
    one_label_map,
    output_parent,
    policy,
    segments_for,
    shared_schema,
    shared_segment_map,
    unmapped,
)


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "to-semantic",
        parents=[batch_parent(), output_parent("_semantic")],
        summary="instance maps -> semantic maps through a segment map",
        description="Turn instance maps into semantic maps: every instance id becomes the "
        "value of its category (from the segment map) in the schema.",
        examples="""\
  fastseg to-semantic case.nii.gz --segment-map segmentMap.json --schema taxonomy.json
  fastseg to-semantic instances/ -o semantic/ --segment-map map.json --schema dataset.json -j 4
  fastseg to-semantic case.nii.gz -o case_sem.nii.gz --segment-map map.json \\
      --schema taxonomy.json --unknown background
  fastseg to-semantic seg.nii.gz --segment-map export/tasks.json --series case-1/CT \\
      --schema taxonomy.json""",
    )
    add_inputs(parser)
    add_names(parser, required=True)
    parser.add_argument(
        "--unknown",
        choices=("error", "background", "keep"),
        default="error",
        help="ids the segment map lacks: fail the file (default), make them 0, or keep them",
    )
    parser.set_defaults(handler=run)


@dataclass(frozen=True)
class SemanticOptions:
    schema: str
    segment_map: str
    unknown: str
    series: str | None = None


def semantic_job(options: SemanticOptions, job: Job) -> None:
    """Instance map -> semantic map through the segment map."""
    image = fastseg.load(job.source)
    one_label_map(image)
    schema = shared_schema(options.schema)
    segments = shared_segment_map(options.segment_map, options.schema, options.series)
    try:
        semantic = fastseg.to_semantic(image.labels, segments, schema, unknown=options.unknown)  # type: ignore[arg-type]
    except ValueError as error:
        found = unmapped(error)
        if found is None:
            raise
        raise ValueError(
            f"{found[0]} voxels hold ids the segment map lacks: {found[1]} "
            "(--unknown background makes them 0, --unknown keep keeps them)"
        ) from None
    prepare_folder(job.outputs[0])
    fastseg.save(job.outputs[0], semantic, like=image, schema=segments_for(job.outputs[0], schema))


def run(args: argparse.Namespace) -> int:
    check_shared(args.schema, args.segment_map, args.series)
    jobs, problems = plan(args.inputs, args.out, args.suffix, policy(args))
    work = functools.partial(
        semantic_job, SemanticOptions(args.schema, args.segment_map, args.unknown, args.series)
    )
    return execute(args, work, jobs, problems)[0]

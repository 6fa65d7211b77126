"""``fastseg to-instances``: semantic maps -> instances, each with its segment map."""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass
from typing import Any

import fastseg
from fastseg._batch import split_suffix
from fastseg.cli.batch import Job, plan, prepare_folder
from fastseg.cli.common import (
    add_command,
    add_connectivity,
    add_inputs,
    add_names,
    batch_parent,
    check_shared,
    execute,
    instance_segments,
    one_label_map,
    output_parent,
    policy,
    segments_for,
    shared_schema,
)


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "to-instances",
        parents=[batch_parent(), output_parent("_instances")],
        summary="semantic maps -> instances by connected components, with a segment map",
        description="Split semantic maps into instances (connected components of every "
        "category) and write each instance map with its segment map, "
        "<output name>.segmentMap.json, beside it. 'fastseg label' does the same without "
        "a schema.",
        examples="""\
  fastseg to-instances semantic.nii.gz --schema dataset.json
  fastseg to-instances labelsTr/ -o instances/ --schema dataset.json --connectivity 6 -j 2
  fastseg to-instances seg.nii.gz --schema taxonomy.json --per-category""",
    )
    add_inputs(parser)
    add_names(parser, segment_map=False, required=True)
    add_connectivity(parser)
    parser.add_argument(
        "--per-category",
        action="store_true",
        help="one instance per category present instead of one per connected component",
    )
    parser.set_defaults(handler=run)


@dataclass(frozen=True)
class InstancesOptions:
    schema: str
    connectivity: int | None
    split: bool


def segment_map_path(output: str) -> str:
    """The segment map written beside an instance map: ``x.nii.gz`` -> ``x.segmentMap.json``."""
    return split_suffix(output)[0] + ".segmentMap.json"


def instances_job(options: InstancesOptions, job: Job) -> int:
    """Semantic map -> instances (connected components) and their segment map."""
    image = fastseg.load(job.source)
    one_label_map(image)
    schema = shared_schema(options.schema)
    instances, found = fastseg.to_instances(
        image.labels, schema, connectivity=options.connectivity, split=options.split
    )
    prepare_folder(job.outputs[0])
    names = segments_for(job.outputs[0], instance_segments(found, schema))
    fastseg.save(job.outputs[0], instances, like=image, schema=names)
    found.save(job.outputs[1])
    return len(found)


def run(args: argparse.Namespace) -> int:
    check_shared(args.schema)
    jobs, problems = plan(
        args.inputs, args.out, args.suffix, policy(args), extra=lambda out: [segment_map_path(out)]
    )
    work = functools.partial(
        instances_job, InstancesOptions(args.schema, args.connectivity, not args.per_category)
    )
    return execute(args, work, jobs, problems)[0]

"""``fastseg label``: connected components of any label file, with the segment map of
which component came from which value."""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass
from typing import Any

import fastseg
from fastseg._files import atomic_path
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
from fastseg.cli.to_instances import segment_map_path
from fastseg.segmap import Segment, SegmentMap


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "label",
        parents=[batch_parent(), output_parent("_components")],
        summary="connected components of label maps, with the value each came from",
        description="Label the connected components of label maps (binary or multilabel: "
        "touching voxels of one value form a component; 0 is background) and write each "
        "component map with a segment map, <output name>.segmentMap.json, that gives "
        "every component the value it came from as its category (with --schema, the "
        "value's category name).",
        examples="""\
  fastseg label mask.nii.gz                          # mask_components.nii.gz + .segmentMap.json
  fastseg label predictions/ -o components/ --connectivity 6 -j 2
  fastseg label seg.nii.gz --schema dataset.json     # categories by name""",
    )
    add_inputs(parser)
    add_names(parser, segment_map=False)
    add_connectivity(parser)
    parser.set_defaults(handler=run)


@dataclass(frozen=True)
class LabelOptions:
    schema: str | None
    connectivity: int | None


def label_job(options: LabelOptions, job: Job) -> int:
    """Components of one file and their segment map; returns the number of components."""
    image = fastseg.load(job.source)
    one_label_map(image)
    found = fastseg.label(image.labels, connectivity=options.connectivity)  # type: ignore[arg-type]
    # A Slicer file names its values itself.
    schema = shared_schema(options.schema) if options.schema is not None else image.schema
    segments: dict[int, Segment] = {}
    for ident, value in enumerate(found.values.tolist()[1:], start=1):
        if schema is not None:
            if value not in schema.values:
                where = f"--schema {options.schema}" if options.schema else "the file's segments"
                raise ValueError(f"value {value} is no category of {where}")
            category = schema.by_value(value).name
        else:
            category = str(value)
        segments[ident] = Segment(category, attributes={"value": value})
    prepare_folder(job.outputs[0])
    found_map = SegmentMap(segments)
    names = segments_for(job.outputs[0], instance_segments(found_map, schema))
    # The segment map takes its name last: a failing write leaves neither file.
    with atomic_path(job.outputs[1]) as temporary:
        found_map.save(temporary)
        fastseg.save(job.outputs[0], found.labels, like=image, schema=names)
    return found.count


def run(args: argparse.Namespace) -> int:
    check_shared(args.schema)
    jobs, problems = plan(
        args.inputs, args.out, args.suffix, policy(args), extra=lambda out: [segment_map_path(out)]
    )
    work = functools.partial(label_job, LabelOptions(args.schema, args.connectivity))
    return execute(args, work, jobs, problems)[0]

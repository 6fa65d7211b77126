"""The ``schema`` command: convert a category schema from one file format to another."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, cast

from fastseg._batch import USER_ERRORS, describe_error
from fastseg.cli.batch import UsageError
from fastseg.cli.common import EXIT_FAILED, EXIT_OK, OutputExists, add_command
from fastseg.formats.registry import (
    SchemaFormat,
    schema_formats,
    target_schema_format,
    writable_schema_formats,
)
from fastseg.schema import Category, Schema


def consecutive(schema: Schema) -> Schema:
    """The schema with its categories numbered 1..n in the order of their values (nnU-Net
    needs consecutive labels; RedBrick's ``classId + 1`` may have gaps). Names, colours
    and parents stay; a stored ``classId`` is dropped, since it follows from the value."""
    ordered = sorted(schema, key=lambda c: c.value)
    return Schema(
        [
            Category(
                c.name,
                rank,
                color=c.color,
                parents=c.parents,
                attributes={k: v for k, v in c.attributes.items() if k != "classId"},
            )
            for rank, c in enumerate(ordered, start=1)
        ],
        metadata=schema.metadata,
    )


def target_format(path: str, chosen: str | None) -> str:
    """``--to``, or the format the output's name implies."""
    if chosen is not None:
        return chosen
    try:
        return target_schema_format(path).name
    except ValueError:
        names = ", ".join(writable_schema_formats())
        raise UsageError(f"say which format to write {path} in: --to {names}") from None


def run(args: argparse.Namespace) -> int:
    form = target_format(args.output, args.to)
    if os.path.realpath(args.output) == os.path.realpath(args.input):
        raise UsageError(f"the output {args.output} would replace the input")
    if os.path.exists(args.output) and not args.overwrite:
        raise OutputExists(f"the output {args.output} exists (--overwrite replaces it)")
    try:
        schema = Schema.load(args.input, args.from_format)
        if args.renumber:
            schema = consecutive(schema)
        if form == "nnunet":
            from fastseg.formats.nnunet import dataset_json_fields, write_dataset_json

            channels = dict(enumerate(args.channel)) if args.channel else None
            base = dataset_json_fields(
                schema,
                os.path.dirname(os.path.abspath(args.output)),
                channel_names={str(k): v for k, v in channels.items()} if channels else None,
                num_training=args.num_training,
                file_ending=args.file_ending,
            )
            write_dataset_json(schema, args.output, base=base)
        else:
            schema.save(args.output, cast("SchemaFormat", form))
    except USER_ERRORS as error:
        reason = describe_error(error, args.input)
        if form == "nnunet" and "consecutive" in reason and not args.renumber:
            reason += " (--renumber numbers the categories 1..n)"
        print(f"failed: {args.input}: {reason}", file=sys.stderr)
        return EXIT_FAILED
    values = ", ".join(f"{c.name}={c.value}" for c in list(schema)[:6])
    more = ", ..." if len(schema) > 6 else ""
    print(f"wrote {args.output} ({form}, {len(schema)} categories: {values}{more})")
    return EXIT_OK


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "schema",
        summary="convert a schema between formats (RedBrick taxonomy, nnU-Net, ITK-SNAP, BIDS)",
        description="Read a category schema in one format and write it in another. The "
        "input's format is detected from its name and content (or --from); the output's "
        "from its name (dataset.json: nnU-Net, .tsv: BIDS, .txt/.label: ITK-SNAP) or --to.",
        examples=(
            """\
  fastseg schema taxonomy.json dataset.json               # RedBrick -> nnU-Net v2
  fastseg schema taxonomy.json dataset.json --renumber    # classIds with gaps -> 1..n
  fastseg schema dataset.json labels.txt                  # nnU-Net -> ITK-SNAP
  fastseg schema seg.seg.nrrd taxonomy.json --to redbrick # 3D Slicer -> RedBrick"""
        ),
    )
    parser.add_argument("input", help="schema file to read")
    parser.add_argument("output", help="schema file to write")
    parser.add_argument("--from", dest="from_format", choices=schema_formats(), help="input format")
    parser.add_argument("--to", choices=writable_schema_formats(), help="output format")
    parser.add_argument(
        "--renumber", action="store_true", help="number the categories 1..n in value order"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    nnunet = parser.add_argument_group("nnU-Net dataset.json (what a schema cannot know)")
    nnunet.add_argument(
        "--channel",
        action="append",
        metavar="NAME",
        help="an input channel's name, once per channel in order (default: the input's "
        "channel_names, else one channel CT)",
    )
    nnunet.add_argument(
        "--num-training",
        type=int,
        metavar="N",
        help="numTraining (default: the input's, else the number of labelsTr files beside "
        "the output, else 0)",
    )
    nnunet.add_argument(
        "--file-ending",
        metavar="SUFFIX",
        help="file_ending (default: the input's, else .nii.gz)",
    )
    parser.set_defaults(handler=run)

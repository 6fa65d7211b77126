"""``fastseg stats``: one table of per-id statistics in mm for many label files."""

from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import os
from dataclasses import dataclass
from typing import Any

import fastseg
from fastseg._batch import USER_ERRORS, describe_error, expand, one_line
from fastseg._files import write_text_atomically
from fastseg.cli.batch import Job, UsageError, prepare_folder
from fastseg.cli.common import (
    OutputExists,
    add_command,
    add_inputs,
    add_names,
    as_nibabel,
    batch_parent,
    category_name,
    check_shared,
    execute,
    id_names,
    one_label_map,
    round_volume,
    shared_segment_map,
)
from fastseg.pairing import check_template, find_image, image_candidates


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "stats",
        parents=[batch_parent()],
        summary="per-instance statistics in mm (CSV or JSON)",
        description="Measure every id of label maps: voxel count, volume in mm³, bounding "
        "box, centroid in voxels and in world coordinates, and with --image or --images "
        "the intensities of an image of the same grid (mean, std, min, max, sum). One "
        "table for all inputs, with the file in its first column (and the image in an "
        "image column); with --schema or --segment-map a name column, and with "
        "--segment-map the instance's category and attributes. --images DIR pairs every "
        "label file with the image at the same path below DIR (below the folder argument "
        "it came from), named like it or, for nnU-Net, with _0000 (case_0000.nii.gz for "
        "case.nii.gz); --image-name names it otherwise. A missing image, or one of another "
        "shape or affine, fails its label file; the others are measured. When every input "
        "fails, no table is written.",
        examples="""\
  fastseg stats case.nii.gz
  fastseg stats labelsTr/ --schema dataset.json -o stats.csv -j 2
  fastseg stats case.nii.gz --image ct.nii.gz --surface -o stats.json
  fastseg stats labelsTr/ --images imagesTr/ -o stats.csv     # case_0000.nii.gz per case
  fastseg stats predictions/ --images imagesTs/ --image-name '{stem}_0001{ext}'
  fastseg stats derivatives/seg/ --images rawdata/ --image-name '{entities}_T1w.nii.gz'""",
    )
    add_inputs(parser)
    add_names(parser)
    parser.add_argument(
        "-o", "--out", metavar="FILE", help="table file (.csv or .json); default: CSV on stdout"
    )
    parser.add_argument("--format", choices=("csv", "json"), help="default: from --out's name")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing table")
    images = parser.add_mutually_exclusive_group()
    images.add_argument(
        "--image", metavar="FILE", help="intensity image of the same grid (one input only)"
    )
    images.add_argument(
        "--images",
        metavar="DIR",
        help="intensity images for many inputs: for every label file, the file of the same "
        "name in DIR or nnU-Net's first channel (case_0000.nii.gz for case.nii.gz), at the "
        "label file's path below its folder argument",
    )
    parser.add_argument(
        "--image-name",
        metavar="TEMPLATE",
        help="with --images: the image's name, from the label file's {name}, {stem} (name "
        "without its volume ending), {ext} (that ending, e.g. .nii.gz) and {entities} "
        "(stem without its last _suffix, for BIDS), e.g. '{stem}_0001{ext}' or "
        "'{entities}_T1w.nii.gz'",
    )
    parser.add_argument("--surface", action="store_true", help="add the surface area in mm²")
    parser.set_defaults(handler=run)


@dataclass(frozen=True)
class StatsOptions:
    schema: str | None
    segment_map: str | None
    surface: bool
    series: str | None = None


VOLUME_COLUMNS = ("volume",)


def _describe_segments(options: StatsOptions) -> Any:
    """id -> (category, attributes) of the segment map, or None without one."""
    if options.segment_map is None:
        return None
    segments = shared_segment_map(options.segment_map, options.schema, options.series)

    def describe(ident: int) -> dict[str, Any]:
        if ident in segments:
            segment = segments[ident]
            return {"category": category_name(segment.category), **dict(segment.attributes)}
        return {"category": ""}

    return describe


def stats_job(options: StatsOptions, job: Job) -> list[dict[str, Any]]:
    """One row per id: count, volume in mm³, box, centroids (and intensities of the image
    among the paths ``job.data``, when it holds some)."""
    import nibabel as _nibabel

    nibabel: Any = _nibabel  # partly annotated
    image = fastseg.load(job.source)
    one_label_map(image)
    # As a nibabel image, the labels bring their affine, which fastseg.stats checks
    # against the intensity image's.
    labels = as_nibabel(image)
    first: dict[str, Any] = {"file": job.source}
    if job.data is None:
        table = fastseg.stats(labels, surface=options.surface)
    else:
        path = first["image"] = find_image(job.data)
        try:
            table = fastseg.stats(labels, nibabel.load(path), surface=options.surface)
        except USER_ERRORS as error:
            raise ValueError(f"image {path}: {describe_error(error, path)}") from error
        except Exception as error:  # nibabel raises many kinds for damaged files
            reason = one_line(str(error)) or type(error).__name__
            raise ValueError(f"image {path}: not a readable NIfTI image ({reason})") from error
    name = id_names(options.schema, options.segment_map, options.series)
    segments = _describe_segments(options)
    named = options.schema is not None or options.segment_map is not None
    rows = []
    for record in table.to_records():
        row: dict[str, Any] = {**first, "id": record.pop("id")}
        if named:
            row["name"] = name(row["id"])
        if segments is not None:
            row.update(segments(row["id"]))
        for column in VOLUME_COLUMNS:
            if column in record:
                record[column] = round_volume(record[column])
        row.update(record)
        rows.append(row)
    return rows


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict | list) else value


def table_text(rows: list[dict[str, Any]], form: str) -> str:
    """The rows as CSV (columns in order of first appearance) or a JSON array."""
    if form == "json":
        clean = [
            {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in rows
        ]
        return json.dumps(clean, indent=1) + "\n"
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns) or ["file", "id"], lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
    return buffer.getvalue()


def run(args: argparse.Namespace) -> int:
    check_shared(args.schema, args.segment_map, args.series)
    form = args.format or ("json" if (args.out or "").lower().endswith(".json") else "csv")
    inputs, problems = expand(args.inputs)
    if args.image is not None and len(inputs) + len(problems) != 1:
        raise UsageError("--image goes with a single label file (--images DIR with several)")
    if args.image_name is not None:
        if args.images is None:
            raise UsageError("--image-name goes with --images")
        try:
            check_template(args.image_name)
        except ValueError as error:
            raise UsageError(f"--image-name {args.image_name!r}: {error}") from None
    if args.images is not None and not os.path.isdir(args.images):
        raise UsageError(f"--images {args.images}: no such folder")
    jobs = []
    for item in inputs:
        candidates: tuple[str, ...] | None = None
        if args.image is not None:
            candidates = (args.image,)
        elif args.images is not None:
            candidates = image_candidates(
                item.relative, args.images, args.image_name, labels=item.path
            )
        jobs.append(Job(item.path, data=candidates))
    if args.out is not None:
        if os.path.realpath(args.out) in {os.path.realpath(job.source) for job in jobs}:
            raise UsageError(f"the table {args.out} would replace an input")
        if os.path.exists(args.out) and not args.overwrite:
            raise OutputExists(f"{args.out} exists (--overwrite replaces it)")
    work = functools.partial(
        stats_job, StatsOptions(args.schema, args.segment_map, args.surface, args.series)
    )
    status, outcomes = execute(args, work, jobs, problems)
    done = [o for o in outcomes if o.status == "done"]
    if not done and any(o.status == "failed" for o in outcomes):
        return status  # every input failed: no table of headers only
    rows = [row for o in done for row in o.result]
    text = table_text(rows, form)
    if args.out is None:
        print(text, end="", flush=True)
    else:
        prepare_folder(args.out)
        write_text_atomically(args.out, text)
    return status

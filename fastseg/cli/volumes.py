"""Commands that read label-map files one by one: info, to-semantic, to-instances, stats,
relabel and clean.

Each command is an options dataclass (plain data, so that it pickles to worker
processes), a job function ``(options, job) -> result`` that does one file with the
library's public functions, and a handler that plans the jobs and prints the results.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import fastseg
from fastseg._files import atomic_path, write_text_atomically
from fastseg.cli.batch import (
    USER_ERRORS,
    Input,
    Job,
    Outcome,
    UsageError,
    describe_error,
    expand_inputs,
    one_line,
    plan,
    prepare_folder,
    reading_jobs,
    split_suffix,
)
from fastseg.cli.common import (
    add_command,
    batch_parent,
    check_shared,
    execute,
    load_schema,
    load_segment_map,
    non_negative,
    output_parent,
    policy,
)
from fastseg.cli.progress import Progress
from fastseg.components import Connectivity

CONNECTIVITIES = (4, 6, 8, 18, 26)


def _names(schema: str | None, segment_map: str | None) -> Callable[[int], str]:
    """Label id -> its name: the segment map's category for an instance id, else the
    schema's category for a semantic value; "" when neither knows the id."""
    loaded_schema = load_schema(schema) if schema is not None else None
    segments = load_segment_map(segment_map, schema) if segment_map is not None else None

    def name(ident: int) -> str:
        if ident == 0:
            return "background"
        if segments is not None:
            if ident in segments:
                category = segments[ident].category
                return category if isinstance(category, str) else "/".join(category)
            if ident in segments.groups:
                return "overlap of " + ", ".join(map(str, segments.groups[ident]))
            return ""
        if loaded_schema is not None and ident in loaded_schema.values:
            return loaded_schema.by_value(ident).name
        return ""

    return name


def _add_names(parser: argparse.ArgumentParser, *, segment_map: bool = True) -> None:
    parser.add_argument(
        "--schema",
        metavar="FILE",
        help="what the ids mean: nnU-Net dataset.json, RedBrick taxonomy, ITK-SNAP "
        "labels or BIDS dseg.tsv (detected from the file)",
    )
    if segment_map:
        parser.add_argument(
            "--segment-map",
            metavar="FILE",
            help="RedBrick segmentMap JSON naming the instance ids (classIds need --schema)",
        )


# ------------------------------------------------------------------------------- info


@dataclass(frozen=True)
class InfoOptions:
    schema: str | None
    segment_map: str | None


def info_job(options: InfoOptions, job: Job) -> dict[str, Any]:
    """Shape, dtype, spacing and every id with its voxel count, volume and name."""
    image = fastseg.load(job.source)
    ids, counts = fastseg.unique(image.labels, return_counts=True)
    voxel = float(np.prod(image.spacing)) if image.spacing else 1.0
    name = _names(options.schema, options.segment_map)
    return {
        "file": job.source,
        "shape": list(image.labels.shape),
        "dtype": str(image.labels.dtype),
        "spacing": list(image.spacing),
        "voxel_volume": voxel,
        "ids": [
            {"id": int(i), "voxels": int(c), "volume": float(c) * voxel, "name": name(int(i))}
            for i, c in zip(ids.tolist(), counts.tolist(), strict=True)
        ],
    }


def format_info(info: dict[str, Any]) -> str:
    shape = " x ".join(str(n) for n in info["shape"])
    spacing = " x ".join(f"{s:g}" for s in info["spacing"])
    foreground = sum(1 for row in info["ids"] if row["id"] != 0)
    lines = [
        f"{info['file']}: {shape} {info['dtype']}, spacing {spacing} mm "
        f"({info['voxel_volume']:g} mm³ per voxel), {foreground} ids besides 0"
    ]
    lines.append(f"{'id':>12} {'voxels':>12} {'volume mm³':>14}  name")
    for row in info["ids"]:
        lines.append(
            f"{row['id']:>12} {row['voxels']:>12,} {row['volume']:>14,.1f}  {row['name']}".rstrip()
        )
    return "\n".join(lines)


def run_info(args: argparse.Namespace) -> int:
    check_shared(args.schema, args.segment_map)
    jobs, problems = reading_jobs(args.inputs)

    def show(outcome: Outcome, progress: Progress) -> None:
        text = json.dumps(outcome.result) if args.json else format_info(outcome.result)
        progress.result(text)

    work = functools.partial(info_job, InfoOptions(args.schema, args.segment_map))
    status, _ = execute(args, work, jobs, problems, on_done=show)
    return status


# --------------------------------------------------------------------- to-semantic


@dataclass(frozen=True)
class SemanticOptions:
    schema: str
    segment_map: str
    unknown: str


def semantic_job(options: SemanticOptions, job: Job) -> None:
    """Instance map -> semantic map through the segment map."""
    image = fastseg.load(job.source)
    schema = load_schema(options.schema)
    segments = load_segment_map(options.segment_map, options.schema)
    semantic = fastseg.to_semantic(image.labels, segments, schema, unknown=options.unknown)  # type: ignore[arg-type]
    prepare_folder(job.outputs[0])
    fastseg.save(job.outputs[0], semantic, like=image)


def run_to_semantic(args: argparse.Namespace) -> int:
    check_shared(args.schema, args.segment_map)
    jobs, problems = plan(args.inputs, args.out, args.suffix, policy(args))
    work = functools.partial(
        semantic_job, SemanticOptions(args.schema, args.segment_map, args.unknown)
    )
    return execute(args, work, jobs, problems)[0]


# -------------------------------------------------------------------- to-instances


@dataclass(frozen=True)
class InstancesOptions:
    schema: str
    connectivity: int
    split: bool


def segment_map_path(output: str) -> str:
    """The segment map written beside an instance map: ``x.nii.gz`` -> ``x.segmentMap.json``."""
    return split_suffix(output)[0] + ".segmentMap.json"


def instances_job(options: InstancesOptions, job: Job) -> int:
    """Semantic map -> instances (connected components) and their segment map."""
    image = fastseg.load(job.source)
    schema = load_schema(options.schema)
    instances, found = fastseg.to_instances(
        image.labels, schema, connectivity=options.connectivity, split=options.split
    )
    prepare_folder(job.outputs[0])
    fastseg.save(job.outputs[0], instances, like=image)
    found.save(job.outputs[1])
    return len(found)


def run_to_instances(args: argparse.Namespace) -> int:
    check_shared(args.schema)
    jobs, problems = plan(
        args.inputs, args.out, args.suffix, policy(args), extra=lambda out: [segment_map_path(out)]
    )
    work = functools.partial(
        instances_job, InstancesOptions(args.schema, args.connectivity, not args.per_category)
    )
    return execute(args, work, jobs, problems)[0]


# --------------------------------------------------------------------------- stats


@dataclass(frozen=True)
class StatsOptions:
    schema: str | None
    segment_map: str | None
    surface: bool


IMAGE_NAMES = ("{name}", "{stem}_0000{ext}")
"""Where ``--images`` looks without ``--image-name``: the same name, then nnU-Net's first
channel (``case_0000.nii.gz`` for ``case.nii.gz``)."""
IMAGE_NAME_FIELDS = ("name", "stem", "ext", "entities")


def image_candidates(item: Input, images: str, template: str | None) -> tuple[str, ...]:
    """The files ``--images`` may pair with ``item``: below ``images`` at the input's path
    relative to its folder argument, named by ``template`` (or :data:`IMAGE_NAMES`)."""
    folder, name = os.path.split(item.relative)
    stem, extension = split_suffix(name)
    fields = {
        "name": name,
        "stem": stem,
        "ext": extension,
        # BIDS: sub-01_ses-1_dseg -> sub-01_ses-1 (the entities without the suffix).
        "entities": stem.rpartition("_")[0] or stem,
    }
    names = IMAGE_NAMES if template is None else (template,)
    paths = (os.path.join(images, folder, n.format(**fields)) for n in names)
    # --images naming the labels' own folder must not pair a label file with itself.
    return tuple(p for p in paths if os.path.realpath(p) != os.path.realpath(item.path))


def check_image_name(template: str) -> None:
    """Refuse an ``--image-name`` with placeholders other than :data:`IMAGE_NAME_FIELDS`."""
    try:
        template.format(**dict.fromkeys(IMAGE_NAME_FIELDS, ""))
    except (KeyError, IndexError, ValueError) as error:
        fields = ", ".join("{" + f + "}" for f in IMAGE_NAME_FIELDS)
        what = f"no placeholder {{{error.args[0]}}}" if isinstance(error, KeyError) else error
        raise UsageError(
            f"--image-name {template!r}: {what}; the placeholders are {fields}"
        ) from None


def _find_image(candidates: tuple[str, ...]) -> str:
    found = [path for path in candidates if os.path.exists(path)]
    if not candidates:
        raise ValueError("no intensity image: --images offers only the label file itself")
    if len(candidates) == 1 and not found:
        raise ValueError(f"no intensity image {candidates[0]}: no such file")
    if not found:
        raise ValueError(f"no intensity image: neither {' nor '.join(candidates)} exists")
    if len(found) > 1:
        raise ValueError(
            f"two intensity images, {found[0]} and {found[1]} (--image-name chooses one)"
        )
    return found[0]


def stats_job(options: StatsOptions, job: Job) -> list[dict[str, Any]]:
    """One row per id: count, volume in mm³, box, centroids (and intensities of the image
    among the paths ``job.data``, when it holds some)."""
    import nibabel as _nibabel

    nibabel: Any = _nibabel  # partly annotated
    image = fastseg.load(job.source)
    # As a nibabel image, the labels bring their affine, which fastseg.stats checks
    # against the intensity image's.
    labels: Any = nibabel.Nifti1Image(image.labels, image.affine, image.header)
    first: dict[str, Any] = {"file": job.source}
    if job.data is None:
        table = fastseg.stats(labels, surface=options.surface)
    else:
        path = first["image"] = _find_image(job.data)
        try:
            table = fastseg.stats(labels, nibabel.load(path), surface=options.surface)
        except USER_ERRORS as error:
            raise ValueError(f"image {path}: {describe_error(error, path)}") from error
        except Exception as error:  # nibabel raises many kinds for damaged files
            reason = one_line(str(error)) or type(error).__name__
            raise ValueError(f"image {path}: not a readable NIfTI image ({reason})") from error
    name = _names(options.schema, options.segment_map)
    named = options.schema is not None or options.segment_map is not None
    rows = []
    for record in table.to_records():
        row: dict[str, Any] = {**first, "id": record.pop("id")}
        if named:
            row["name"] = name(row["id"])
        row.update(record)
        rows.append(row)
    return rows


def stats_text(rows: list[dict[str, Any]], form: str) -> str:
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
    writer.writerows(rows)
    return buffer.getvalue()


def run_stats(args: argparse.Namespace) -> int:
    check_shared(args.schema, args.segment_map)
    form = args.format or ("json" if (args.out or "").lower().endswith(".json") else "csv")
    inputs, problems = expand_inputs(args.inputs)
    if args.image is not None and len(inputs) + len(problems) != 1:
        raise UsageError("--image goes with a single label file (--images DIR with several)")
    if args.image_name is not None:
        if args.images is None:
            raise UsageError("--image-name goes with --images")
        check_image_name(args.image_name)
    if args.images is not None and not os.path.isdir(args.images):
        raise UsageError(f"--images {args.images}: no such folder")
    jobs = []
    for item in inputs:
        candidates: tuple[str, ...] | None = None
        if args.image is not None:
            candidates = (args.image,)
        elif args.images is not None:
            candidates = image_candidates(item, args.images, args.image_name)
        jobs.append(Job(item.path, data=candidates))
    if args.out is not None:
        if os.path.realpath(args.out) in {os.path.realpath(job.source) for job in jobs}:
            raise UsageError(f"the table {args.out} would replace an input")
        if os.path.exists(args.out) and not args.overwrite:
            raise UsageError(f"{args.out} exists (--overwrite replaces it)")
    work = functools.partial(stats_job, StatsOptions(args.schema, args.segment_map, args.surface))
    status, outcomes = execute(args, work, jobs, problems)
    rows = [row for o in outcomes if o.status == "done" for row in o.result]
    text = stats_text(rows, form)
    if args.out is None:
        print(text, end="")
    else:
        prepare_folder(args.out)
        write_text_atomically(args.out, text)
    return status


# ------------------------------------------------------------------------- relabel


@dataclass(frozen=True)
class RelabelOptions:
    mapping: dict[int, int] | None
    missing: str | int


def read_mapping(path: str) -> dict[int, int]:
    """A mapping file: a JSON object ``{"old": new}`` or a list of pairs, or text with
    two integer columns (comma, tab or space separated; a header line is allowed)."""
    text = Path(path).read_text(encoding="utf-8-sig")
    pairs: list[tuple[object, object]] = []
    if path.lower().endswith(".json"):
        content = json.loads(text)
        if isinstance(content, dict):
            pairs = list(content.items())
        elif isinstance(content, list) and all(
            isinstance(p, list) and len(p) == 2 for p in content
        ):
            pairs = [(p[0], p[1]) for p in content]
        else:
            raise ValueError('expected a JSON object {"old": new, ...} or a list of [old, new]')
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            fields = line.replace(",", " ").replace("\t", " ").split()
            if not fields or line.lstrip().startswith("#"):
                continue
            if len(fields) != 2:
                raise ValueError(f"line {number}: expected two columns (old new), got {line!r}")
            if number == 1 and not all(f.lstrip("-").isdigit() for f in fields):
                continue  # a header
            pairs.append((fields[0], fields[1]))
    mapping: dict[int, int] = {}
    for old, new in pairs:
        try:
            key, value = int(str(old)), int(str(new))
        except ValueError:
            raise ValueError(f"ids must be whole numbers, got {old!r} -> {new!r}") from None
        if key < 0 or value < 0:
            raise ValueError(f"ids must be non-negative, got {old!r} -> {new!r}")
        mapping[key] = value
    if not mapping:
        raise ValueError("the mapping is empty")
    return mapping


def mapping_path(output: str) -> str:
    """The mapping written beside a renumbered map: ``x.nii.gz`` -> ``x.mapping.json``."""
    return split_suffix(output)[0] + ".mapping.json"


def mapping_text(mapping: dict[int, int]) -> str:
    """``{old: new}`` as the JSON object ``--mapping`` reads (keys are strings in JSON)."""
    return json.dumps({str(old): new for old, new in mapping.items()}, indent=1) + "\n"


def relabel_job(options: RelabelOptions, job: Job) -> int:
    """Map ids through the mapping, or renumber them 1..n (and write the old -> new
    mapping beside the result); returns the ids written."""
    image = fastseg.load(job.source)
    prepare_folder(job.outputs[0])
    if options.mapping is not None:
        labels = fastseg.remap(image.labels, options.mapping, missing=options.missing)  # type: ignore[arg-type]
        fastseg.save(job.outputs[0], labels, like=image)
        return len(options.mapping)
    labels, mapping = fastseg.renumber(image.labels)
    # The mapping goes to its temporary file first and takes its name last, so that a
    # failing write (a full disk) leaves neither file, and the labels never appear
    # beside a missing or stale mapping for longer than one rename.
    with atomic_path(job.outputs[1]) as temporary:
        write_text_atomically(temporary, mapping_text(mapping))
        fastseg.save(job.outputs[0], labels, like=image)
    return len(mapping)


def _missing(value: str) -> str | int:
    if value in ("keep", "error"):
        return value
    try:
        fill: int = non_negative(int)(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected keep, error or an id >= 0, got {value!r}"
        ) from None
    return fill


def run_relabel(args: argparse.Namespace) -> int:
    mapping = None
    if args.mapping is not None:
        try:
            mapping = read_mapping(args.mapping)
        except (ValueError, OSError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            raise UsageError(f"{args.mapping}: {reason}") from None
    extra = (lambda out: [mapping_path(out)]) if mapping is None else (lambda _: [])
    jobs, problems = plan(args.inputs, args.out, args.suffix, policy(args), extra=extra)
    work = functools.partial(relabel_job, RelabelOptions(mapping, args.missing))
    return execute(args, work, jobs, problems)[0]


# --------------------------------------------------------------------------- clean


@dataclass(frozen=True)
class CleanOptions:
    dust: float | None
    dust_mm3: float | None
    largest_k: int | None
    foreground: bool
    connectivity: Connectivity | None
    fill_holes: bool


def clean_job(options: CleanOptions, job: Job) -> int:
    """Dust, then keep the largest components, then fill holes; returns the voxels changed."""
    image = fastseg.load(job.source)
    labels = image.labels
    if options.dust is not None:
        labels = fastseg.dust(labels, options.dust, connectivity=options.connectivity)
    if options.dust_mm3 is not None:
        labels = fastseg.dust(
            labels,
            options.dust_mm3,
            connectivity=options.connectivity,
            spacing=image.spacing,
        )
    if options.largest_k is not None:
        labels = fastseg.largest_k(
            labels,
            options.largest_k,
            connectivity=options.connectivity,
            per_label=not options.foreground,
        )
    if options.fill_holes:
        labels = fastseg.fill_holes(labels, per_label=not options.foreground)
    prepare_folder(job.outputs[0])
    fastseg.save(job.outputs[0], labels, like=image)
    return int(np.count_nonzero(labels != image.labels))


def run_clean(args: argparse.Namespace) -> int:
    if (
        args.dust is None
        and args.dust_mm3 is None
        and args.largest_k is None
        and not args.fill_holes
    ):
        raise UsageError("say what to clean: --dust, --dust-mm3, --largest-k or --fill-holes")
    jobs, problems = plan(args.inputs, args.out, args.suffix, policy(args))
    options = CleanOptions(
        args.dust,
        args.dust_mm3,
        args.largest_k,
        args.foreground,
        args.connectivity,
        args.fill_holes,
    )
    return execute(args, functools.partial(clean_job, options), jobs, problems)[0]


# ------------------------------------------------------------------------- parsers


def _add_inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="NIfTI files, folders or glob patterns"
    )


def register(commands: Any) -> None:
    """Add the commands of this module to the ``commands`` subparsers."""
    running = batch_parent()

    parser = add_command(
        commands,
        "info",
        parents=[running],
        summary="shape, dtype, spacing and the ids of label maps, with voxel counts, mm³ and names",
        description="Print the shape, dtype and spacing of label maps and every id with its "
        "voxel count, volume in mm³ and, given a schema or segment map, its name.",
        examples=(
            """\
  fastseg info labels.nii.gz
  fastseg info labelsTr/ --schema dataset.json
  fastseg info case.nii.gz --segment-map segmentMap.json --schema taxonomy.json
  fastseg info 'data/**/*.nii.gz' --json > ids.jsonl"""
        ),
    )
    _add_inputs(parser)
    _add_names(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per file")
    parser.set_defaults(handler=run_info)

    parser = add_command(
        commands,
        "to-semantic",
        parents=[running, output_parent("_semantic")],
        summary="instance maps -> semantic maps through a segment map",
        description="Turn instance maps into semantic maps: every instance id becomes the "
        "value of its category (from the segment map) in the schema.",
        examples=(
            """\
  fastseg to-semantic case.nii.gz --segment-map segmentMap.json --schema taxonomy.json
  fastseg to-semantic instances/ -o semantic/ --segment-map map.json --schema dataset.json -j 4
  fastseg to-semantic case.nii.gz -o case_sem.nii.gz --segment-map map.json \\
      --schema taxonomy.json --unknown background"""
        ),
    )
    _add_inputs(parser)
    parser.add_argument("--schema", metavar="FILE", required=True, help="the categories' values")
    parser.add_argument(
        "--segment-map", metavar="FILE", required=True, help="RedBrick segmentMap JSON"
    )
    parser.add_argument(
        "--unknown",
        choices=("error", "background", "keep"),
        default="error",
        help="ids the segment map lacks: fail the file (default), make them 0, or keep them",
    )
    parser.set_defaults(handler=run_to_semantic)

    parser = add_command(
        commands,
        "to-instances",
        parents=[running, output_parent("_instances")],
        summary="semantic maps -> instances by connected components, with a segment map",
        description="Split semantic maps into instances (connected components of every "
        "category) and write each instance map with its segment map, "
        "<name>.segmentMap.json, beside it.",
        examples=(
            """\
  fastseg to-instances semantic.nii.gz --schema dataset.json
  fastseg to-instances labelsTr/ -o instances/ --schema dataset.json --connectivity 6 -j 2
  fastseg to-instances seg.nii.gz --schema taxonomy.json --per-category"""
        ),
    )
    _add_inputs(parser)
    parser.add_argument("--schema", metavar="FILE", required=True, help="the categories' values")
    parser.add_argument(
        "--connectivity", type=int, choices=CONNECTIVITIES, default=26, help="default 26 (8 in 2-D)"
    )
    parser.add_argument(
        "--per-category",
        action="store_true",
        help="one instance per category present instead of one per connected component",
    )
    parser.set_defaults(handler=run_to_instances)

    parser = add_command(
        commands,
        "stats",
        parents=[running],
        summary="per-instance statistics in mm (CSV or JSON)",
        description="Measure every id of label maps: voxel count, volume in mm³, bounding "
        "box, centroid in voxels and in world coordinates, and with --image or --images "
        "the intensities of an image of the same grid (mean, std, min, max, sum). One "
        "table for all inputs, with the file in its first column (and the image in an "
        "image column). --images DIR pairs every label file with the image at the same "
        "path below DIR (below the folder argument it came from), named like it or, for "
        "nnU-Net, with _0000 (case_0000.nii.gz for case.nii.gz); --image-name names it "
        "otherwise. A missing image, or one of another shape or affine, fails its label "
        "file; the others are measured.",
        examples=(
            """\
  fastseg stats case.nii.gz
  fastseg stats labelsTr/ --schema dataset.json -o stats.csv -j 2
  fastseg stats case.nii.gz --image ct.nii.gz --surface -o stats.json
  fastseg stats labelsTr/ --images imagesTr/ -o stats.csv     # case_0000.nii.gz per case
  fastseg stats predictions/ --images imagesTs/ --image-name '{stem}_0001{ext}'
  fastseg stats derivatives/seg/ --images rawdata/ --image-name '{entities}_T1w.nii.gz'"""
        ),
    )
    _add_inputs(parser)
    _add_names(parser)
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
        "without .nii/.nii.gz), {ext} and {entities} (stem without its last _suffix, for "
        "BIDS), e.g. '{stem}_0001{ext}' or '{entities}_T1w.nii.gz'",
    )
    parser.add_argument("--surface", action="store_true", help="add the surface area in mm²")
    parser.set_defaults(handler=run_stats)

    parser = add_command(
        commands,
        "relabel",
        parents=[running, output_parent("_relabeled")],
        summary="map ids through a mapping file, or renumber them 1..n",
        description="Change the ids of label maps: through a mapping file (JSON "
        '{"old": new} or two columns of text), or renumbered to 1..n in ascending order. '
        "--renumber writes the old -> new mapping beside every output, "
        '<output name>.mapping.json, as JSON {"old": new} (what --mapping reads); it '
        "follows the outputs' rules (--overwrite, --skip-existing).",
        examples=(
            """\
  fastseg relabel seg.nii.gz --mapping merge.json          # {"11": 1, "12": 1, "13": 1}
  fastseg relabel labels/ -o relabeled/ --mapping ids.csv --missing error
  fastseg relabel seg.nii.gz --renumber -o new.nii.gz        # + new.mapping.json"""
        ),
    )
    _add_inputs(parser)
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--mapping", metavar="FILE", help="old -> new ids (JSON, CSV, TSV or text)")
    how.add_argument(
        "--renumber",
        action="store_true",
        help="ids 1..n, 0 stays 0; the old -> new ids go to <output name>.mapping.json",
    )
    parser.add_argument(
        "--missing",
        type=_missing,
        default="keep",
        help="ids the mapping lacks: keep (default), error (fail the file), or an id to write",
    )
    parser.set_defaults(handler=run_relabel)

    parser = add_command(
        commands,
        "clean",
        parents=[running, output_parent("_clean")],
        summary="remove small components (dust) or keep the largest ones",
        description="Post-process label maps, every label on its own: remove connected "
        "components smaller than a size (--dust voxels, --dust-mm3 volume), then keep the "
        "k largest components of every label (--largest-k), then fill holes "
        "(--fill-holes).",
        examples=(
            """\
  fastseg clean pred.nii.gz --largest-k 1                  # nnU-Net's largest component
  fastseg clean predictions/ -o cleaned/ --dust-mm3 50 -j 2
  fastseg clean seg.nii.gz --dust 100 --largest-k 2 --connectivity 6 --fill-holes"""
        ),
    )
    _add_inputs(parser)
    parser.add_argument(
        "--dust", type=non_negative(int), metavar="VOXELS", help="smallest size kept"
    )
    parser.add_argument(
        "--dust-mm3",
        type=non_negative(float),
        metavar="VOLUME",
        help="smallest volume kept, in mm³",
    )
    parser.add_argument(
        "--largest-k", type=non_negative(int), metavar="K", help="keep the K largest components"
    )
    parser.add_argument(
        "--foreground",
        action="store_true",
        help="with --largest-k and --fill-holes: treat the foreground as one region",
    )
    parser.add_argument(
        "--fill-holes", action="store_true", help="fill background enclosed by a label"
    )
    parser.add_argument(
        "--connectivity", type=int, choices=CONNECTIVITIES, help="default: full (26, 8 in 2-D)"
    )
    parser.set_defaults(handler=run_clean)

"""``fastseg relabel``: map ids through a mapping file, or renumber them 1..n."""

from __future__ import annotations

import argparse
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import fastseg
from fastseg._batch import describe_error, split_suffix
from fastseg._files import atomic_path, write_text_atomically
from fastseg.cli.batch import Job, UsageError, plan, prepare_folder
from fastseg.cli.common import (
    add_command,
    add_inputs,
    batch_parent,
    execute,
    non_negative,
    output_parent,
    policy,
    relabeled_like,
    unmapped,
)
from fastseg.formats.registry import read_json


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "relabel",
        parents=[batch_parent(), output_parent("_relabeled")],
        summary="map ids through a mapping file, or renumber them 1..n",
        description="Change the ids of label maps: through a mapping file (JSON "
        '{"old": new} or two columns of text; --invert reads it from new to old), or '
        "renumbered to 1..n in ascending order. --renumber writes the old -> new mapping "
        'beside every output, <output name>.mapping.json, as JSON {"old": new} (what '
        "--mapping reads, and with --invert turns the output back); it follows the "
        "outputs' rules (--overwrite, --skip-existing).",
        examples="""\
  fastseg relabel seg.nii.gz --mapping merge.json          # {"11": 1, "12": 1, "13": 1}
  fastseg relabel labels/ -o relabeled/ --mapping ids.csv --missing error
  fastseg relabel seg.nii.gz --renumber -o new.nii.gz        # + new.mapping.json
  fastseg relabel new.nii.gz --mapping new.mapping.json --invert -o back.nii.gz""",
    )
    add_inputs(parser)
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--mapping", metavar="FILE", help="old -> new ids (JSON, CSV, TSV or text)")
    how.add_argument(
        "--renumber",
        action="store_true",
        help="ids 1..n, 0 stays 0; the old -> new ids go to <output name>.mapping.json",
    )
    parser.add_argument(
        "--invert",
        action="store_true",
        help="with --mapping: map new -> old (the mapping must be one-to-one)",
    )
    parser.add_argument(
        "--missing",
        type=_missing,
        default="keep",
        metavar="{keep,error,ID}",
        help="ids the mapping lacks (0 stays 0 unless mapped): keep them (default), error "
        "(fail the file), or an id to write instead",
    )
    parser.set_defaults(handler=run)


@dataclass(frozen=True)
class RelabelOptions:
    mapping: dict[int, int] | None
    missing: str | int


def read_mapping(path: str) -> dict[int, int]:
    """A mapping file: a JSON object ``{"old": new}`` or a list of pairs, or text with
    two integer columns (comma, tab or space separated; a header line is allowed)."""
    pairs: list[tuple[object, object]] = []
    if path.lower().endswith(".json"):
        content = read_json(path)
        if isinstance(content, dict):
            pairs = list(content.items())
        elif isinstance(content, list) and all(
            isinstance(p, list) and len(p) == 2 for p in content
        ):
            pairs = [(p[0], p[1]) for p in content]
        else:
            raise ValueError('expected a JSON object {"old": new, ...} or a list of [old, new]')
    else:
        text = Path(path).read_text(encoding="utf-8-sig")
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


def inverted(mapping: dict[int, int]) -> dict[int, int]:
    """``{new: old}``; refused when two ids map to one."""
    back: dict[int, int] = {}
    for old, new in mapping.items():
        if new in back:
            raise ValueError(
                f"--invert needs a one-to-one mapping, but {back[new]} and {old} both map to {new}"
            )
        back[new] = old
    return back


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
        try:
            labels = fastseg.remap(image.labels, options.mapping, missing=options.missing)  # type: ignore[arg-type]
        except ValueError as error:
            found = unmapped(error)
            if found is None:
                raise
            raise ValueError(
                f"{found[0]} voxels hold ids the mapping lacks: {found[1]} "
                "(--missing keep keeps them, --missing ID writes ID instead)"
            ) from None
        # Segments whose value the mapping lacks follow --missing ("error": no voxel
        # holds their value, or remap would have failed, so they go).
        missing: Literal["keep", "drop"] | int = "drop"
        if options.missing == "keep" or isinstance(options.missing, int):
            missing = "keep" if options.missing == "keep" else int(options.missing)
        like = relabeled_like(image, job.outputs[0], labels, options.mapping, missing)
        fastseg.save(job.outputs[0], labels, like=like)
        return len(options.mapping)
    labels, mapping = fastseg.renumber(image.labels)
    like = relabeled_like(image, job.outputs[0], labels, mapping, "drop")
    # The mapping goes to its temporary file first and takes its name last, so that a
    # failing write (a full disk) leaves neither file, and the labels never appear
    # beside a missing or stale mapping for longer than one rename.
    with atomic_path(job.outputs[1]) as temporary:
        write_text_atomically(temporary, mapping_text(mapping))
        fastseg.save(job.outputs[0], labels, like=like)
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


def run(args: argparse.Namespace) -> int:
    mapping = None
    if args.invert and args.mapping is None:
        raise UsageError("--invert goes with --mapping")
    if args.mapping is not None:
        try:
            mapping = read_mapping(args.mapping)
            if args.invert:
                mapping = inverted(mapping)
        except (ValueError, OSError) as error:
            raise UsageError(f"{args.mapping}: {describe_error(error, args.mapping)}") from None
        # Background is no id to map: 0 stays 0 unless the mapping says otherwise.
        mapping.setdefault(0, 0)
    extra = (lambda out: [mapping_path(out)]) if mapping is None else (lambda _: [])
    jobs, problems = plan(args.inputs, args.out, args.suffix, policy(args), extra=extra)
    work = functools.partial(relabel_job, RelabelOptions(mapping, args.missing))
    return execute(args, work, jobs, problems)[0]

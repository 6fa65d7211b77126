"""``fastseg redbrick``: a RedBrick AI export folder -> semantic, binary or nnU-Net
layout, plus a table of every instance.

The export is read with :func:`fastseg.formats.redbrick_export.read_export`; a series it
cannot read fails alone. Its paths are untrusted: one that is absolute or leads out of
the export folder (``..``, a link) stops the command unless ``--allow-outside-paths``.
Every series is one job, written with :mod:`fastseg.formats.redbrick_export` into a
staging folder inside the output folder and moved into place when complete, so that a
series that fails leaves nothing behind and the others carry on. The main process
writes ``tasks.json`` (or nnU-Net's ``dataset.json``) and ``stats.csv`` at the end,
listing the series that were done.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import fastseg
from fastseg._batch import USER_ERRORS, Outcome, describe_error
from fastseg._files import write_text_atomically
from fastseg.cli.batch import Job, UsageError
from fastseg.cli.common import (
    OutputExists,
    add_command,
    batch_parent,
    category_name,
    check_shared,
    execute,
    round_volume,
    shared_schema,
)
from fastseg.cli.schema import consecutive
from fastseg.cli.stats import table_text

LAYOUTS = ("semantic", "binary", "binary-semantic", "nnunet")
TAXONOMY_NAME = "taxonomy.json"
_UNSAFE_CASE = re.compile(r"[^\w.-]+")


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "redbrick",
        parents=[batch_parent()],
        summary="a RedBrick AI export folder -> semantic, binary or nnU-Net layout, and stats",
        description="Convert a RedBrick AI export folder (tasks.json and the instance "
        "segmentations it lists) into another layout, one job per series:\n\n"
        "  semantic         segmentations/<task>/<series>.nii.gz, values classId + 1\n"
        "  binary           segmentations/<task>/<series>/instance-<id>.nii.gz\n"
        "  binary-semantic  segmentations/<task>/<series>/category-<value>.nii.gz\n"
        "  nnunet           labelsTr/<case>.nii.gz with consecutive labels, dataset.json,\n"
        "                   and imagesTr/<case>_0000.nii.gz where the export holds the\n"
        "                   series' image as a NIfTI file\n\n"
        "with a tasks.json listing the new files (not for nnunet), and stats.csv: every "
        "instance with its category, attributes, voxel count and volume in mm³. The taxonomy is "
        "--taxonomy, else the export's own taxonomy.json. Paths in tasks.json that are "
        "absolute or lead out of the export folder are refused unless "
        "--allow-outside-paths.",
        examples="""\
  fastseg redbrick export/ -o semantic/ --taxonomy taxonomy.json
  fastseg redbrick export/tasks.json -o masks/ --layout binary -j 2
  fastseg redbrick export/ -o Dataset042_Spine/ --layout nnunet --taxonomy taxonomy.json \\
      --channel-name CT""",
    )
    parser.add_argument(
        "export", metavar="EXPORT", help="the export folder (holding tasks.json), or its tasks.json"
    )
    parser.add_argument(
        "-o", "--out", metavar="DIR", required=True, help="output folder (new, or empty)"
    )
    parser.add_argument(
        "--taxonomy",
        metavar="FILE",
        help=f"the project's RedBrick taxonomy (default: the export's {TAXONOMY_NAME}, if any)",
    )
    parser.add_argument("--layout", choices=LAYOUTS, default="semantic", help="default semantic")
    parser.add_argument(
        "--channel-name",
        dest="channel",
        metavar="NAME",
        default="CT",
        help="nnunet: the image channel's name in dataset.json (default CT)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="write into a non-empty folder, replacing files"
    )
    parser.add_argument(
        "--allow-outside-paths",
        action="store_true",
        help="read files that tasks.json lists by absolute paths or outside the export folder",
    )
    parser.set_defaults(handler=run)


@dataclass(frozen=True)
class ExportOptions:
    taxonomy: str | None
    layout: str
    out: str
    staging: str
    overwrite: bool


def _move(source: Path, target: Path, overwrite: bool) -> None:
    """Move a finished file into place: replacing an existing one only with
    ``overwrite``; a hard link makes "only if absent" one atomic step."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if overwrite:
        os.replace(source, target)
        return
    try:
        os.link(source, target)
    except FileExistsError:
        raise FileExistsError(f"another series already wrote {target}") from None
    os.unlink(source)


def _instance_rows(
    item: Any, schema: fastseg.Schema | None, task: str, series: str
) -> list[dict[str, Any]]:
    """Voxel count and volume of every instance of a series (overlap groups included),
    with its category and attributes."""
    from fastseg.formats.redbrick_export import instance_volumes

    counts: dict[int, int] = {}
    voxel = 1.0
    for labels, image, _ in instance_volumes(item):
        voxel = float(np.prod(image.spacing[:3]))
        ids, found = fastseg.unique(labels, return_counts=True)
        for ident, count in zip(ids.tolist(), found.tolist(), strict=True):
            counts[ident] = counts.get(ident, 0) + count
    rows = []
    for ident, segment in item.segment_map.items():
        voxels = counts.get(ident, 0) + sum(
            counts.get(group, 0)
            for group, members in item.segment_map.groups.items()
            if ident in members
        )
        row: dict[str, Any] = {"task": task, "series": series, "instance": ident}
        if schema is None:
            row["category"] = category_name(segment.category)
        else:
            row["category"] = segment.resolve(schema).name
            row["value"] = segment.resolve(schema).value
        row.update({"voxel_count": voxels, "volume_mm3": round_volume(voxels * voxel)})
        row.update(dict(segment.attributes))
        rows.append(row)
    return rows


def export_job(options: ExportOptions, job: Job) -> dict[str, Any]:
    """Write one series in the chosen layout and move its files into the output folder."""
    unit = job.data
    stage = Path(options.staging) / f"series-{unit['index']}"
    try:
        return _export_series(options, unit, stage)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _export_series(options: ExportOptions, unit: dict[str, Any], stage: Path) -> dict[str, Any]:
    from fastseg.formats import redbrick_export as export

    written = stage / "written"
    stage.mkdir(parents=True)
    schema = shared_schema(options.taxonomy) if options.taxonomy is not None else None
    item = unit["item"]
    rows = _instance_rows(item, schema, unit["task"], unit["series"])
    out = Path(options.out)
    if options.layout == "nnunet":
        assert schema is not None
        export.write_semantic_export([item], consecutive(schema), written)
        (produced,) = [p for p in (written / "segmentations").rglob("*") if p.is_file()]
        image = _nifti_item(unit)
        staged_image = stage / "image.nii.gz"
        if image is not None:
            _stage_image(image, produced, staged_image)
        target = f"labelsTr/{unit['case']}.nii.gz"
        _move(produced, out / target, options.overwrite)
        image_target = None if image is None else f"imagesTr/{unit['case']}_0000.nii.gz"
        if image_target is not None:
            _move(staged_image, out / image_target, options.overwrite)
        return {"rows": rows, "file": target, "image": image_target}
    if options.layout == "binary":
        export.write_binary_export([item], written)
    elif options.layout == "semantic":
        assert schema is not None
        export.write_semantic_export([item], schema, written)
    else:
        assert schema is not None
        export.write_binary_semantic_export([item], schema, written)
    (task,) = json.loads((written / "tasks.json").read_text(encoding="utf-8"))
    for path in sorted(p for p in (written / "segmentations").rglob("*") if p.is_file()):
        _move(path, out / path.relative_to(written), options.overwrite)
    return {"rows": rows, "series": task["series"][0]}


def _nifti_item(unit: dict[str, Any]) -> Path | None:
    """The series' image when the export holds it as one NIfTI file (exports made with
    the image files); None for DICOM series and exports without images."""
    items = unit["items"]
    if len(items) != 1 or not re.search(r"\.nii(\.gz)?$", items[0], re.IGNORECASE):
        return None
    path = Path(items[0])
    return path if path.is_file() else None


def _stage_image(image: Path, labels: Path, staged: Path) -> None:
    """Check that the image lies on the segmentation's grid (nnU-Net refuses cases whose
    image and label geometry differ) and write it gzip-compressed to ``staged``."""
    import gzip

    import nibabel

    try:
        scan: Any = nibabel.load(image)
    except Exception as error:  # nibabel raises many kinds for damaged files
        raise ValueError(f"{image}: not a readable NIfTI image ({error})") from None
    grid: Any = nibabel.load(labels)
    if tuple(scan.shape) != tuple(grid.shape):
        raise ValueError(
            f"{image}: image shape {tuple(scan.shape)} differs from its segmentation's "
            f"{tuple(grid.shape)} (nnU-Net takes one 3-D file per channel)"
        )
    if not np.allclose(scan.affine, grid.affine, atol=1e-4):
        raise ValueError(f"{image}: the image's affine differs from its segmentation's")
    if image.name.lower().endswith(".gz"):
        shutil.copyfile(image, staged)
    else:
        # Level 1: several times faster than gzip's default 9 on CT volumes, for files
        # a few percent larger.
        with image.open("rb") as source, gzip.open(staged, "wb", compresslevel=1) as target:
            shutil.copyfileobj(source, target)


# ---------------------------------------------------------------------------- planning


def export_folder(argument: str) -> Path:
    """The export folder an argument names: the folder, or its ``tasks.json``."""
    path = Path(argument)
    if path.is_file() and path.name == "tasks.json":
        return path.parent
    if path.is_dir():
        if not (path / "tasks.json").is_file():
            raise UsageError(
                f"{path}: not a RedBrick export (no tasks.json: no such file in this folder)"
            )
        return path
    if path.exists():
        raise UsageError(f"{path}: not a RedBrick export (a folder holding tasks.json)")
    raise UsageError(f"{path}: no such folder")


def _listed(series: Any, key: str) -> list[str]:
    """The paths a series lists under ``key`` (one string or a list of them)."""
    raw = series.get(key)
    if isinstance(raw, str) and raw:
        return [raw]
    return [p for p in raw if isinstance(p, str)] if isinstance(raw, list) else []


def _units(folder: Path, series_list: list[Any]) -> list[dict[str, Any]]:
    """One unit of plain data per series: the series, its task's position, and its
    image files."""
    units: list[dict[str, Any]] = []
    task_index, last_task = -1, None
    for item in series_list:
        if item.task_info is not last_task:  # read_export shares one dict per task
            task_index, last_task = task_index + 1, item.task_info
        units.append(
            {
                "index": len(units),
                "task_index": task_index,
                "task": item.task,
                "series": item.name,
                "item": item,
                "source": str(item.segmentations[0]),
                "items": [str((folder / p).resolve()) for p in _listed(item.series, "items")],
            }
        )
    _name_cases(units)
    return units


def _name_cases(units: list[dict[str, Any]]) -> None:
    """nnU-Net case names: the task's name, plus the series' where a task has several."""
    per_task: dict[int, int] = {}
    for unit in units:
        per_task[unit["task_index"]] = per_task.get(unit["task_index"], 0) + 1
    used: set[str] = set()
    for unit in units:
        text = (
            unit["task"]
            if per_task[unit["task_index"]] == 1
            else f"{unit['task']}_{unit['series']}"
        )
        base = _UNSAFE_CASE.sub("_", text).strip("._") or "case"
        case, counter = base, 1
        while case in used:
            counter += 1
            case = f"{base}_{counter}"
        used.add(case)
        unit["case"] = case


def _check_out(folder: Path, out: Path, units: list[dict[str, Any]], overwrite: bool) -> None:
    inside = out.resolve()
    if inside == folder.resolve():
        raise UsageError(f"the output folder {out} is the export folder")
    for unit in units:
        for path in unit["item"].segmentations:
            if Path(path).is_relative_to(inside):
                raise UsageError(f"the output folder {out} holds the export's file {path}")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputExists(f"{out} is not empty (--overwrite writes into it, replacing files)")


def _taxonomy(args: argparse.Namespace, folder: Path) -> str | None:
    if args.taxonomy is not None:
        return str(args.taxonomy)
    own = folder / TAXONOMY_NAME
    if own.is_file():
        return str(own)
    if args.layout != "binary":
        raise UsageError(
            f"the {args.layout} layout needs --taxonomy (the categories' values); "
            f"{folder} holds no {TAXONOMY_NAME}"
        )
    return None


def read_series(
    folder: Path, taxonomy: str | None, allow_outside_paths: bool = False
) -> tuple[list[Any], list[Outcome]]:
    """The export's series, and a failed outcome for every series it cannot read; a
    path out of the export folder stops the command (unless ``allow_outside_paths``)."""
    from fastseg.formats.redbrick_export import OutsidePathError, read_export

    tasks_file = str(folder / "tasks.json")
    problems: list[Outcome] = []

    def failed(error: ValueError) -> None:
        problems.append(Outcome(tasks_file, "failed", describe_error(error, tasks_file)))

    schema = shared_schema(taxonomy) if taxonomy is not None else None
    try:
        series = read_export(
            folder, schema=schema, on_error=failed, allow_outside_paths=allow_outside_paths
        )
    except OutsidePathError as error:
        reason = describe_error(ValueError(error.reason), tasks_file)
        raise UsageError(f"{tasks_file}: {reason}; --allow-outside-paths reads it") from None
    except USER_ERRORS as error:
        raise UsageError(f"{tasks_file}: {describe_error(error, tasks_file)}") from None
    return series, problems


def run(args: argparse.Namespace) -> int:
    folder, out = export_folder(args.export), Path(args.out)
    taxonomy = _taxonomy(args, folder)
    check_shared(taxonomy)
    series_list, problems = read_series(folder, taxonomy, args.allow_outside_paths)
    if not series_list and not problems:
        raise UsageError(f"{folder / 'tasks.json'}: no series with segmentations")
    units = _units(folder, series_list)
    _check_out(folder, out, units, args.overwrite)
    out.mkdir(parents=True, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".fastseg-staging-", dir=out)
    try:
        options = ExportOptions(taxonomy, args.layout, str(out), staging, args.overwrite)
        jobs = [Job(unit["source"], data=unit) for unit in units]
        status, outcomes = execute(
            args, functools.partial(export_job, options), jobs, problems, noun="series"
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    ran = outcomes[len(problems) :]
    done = [(unit, o.result) for unit, o in zip(units, ran, strict=True) if o.status == "done"]
    if not done:
        return status  # nothing was done: no listing of nothing, no table of headers only
    written = []
    if args.layout == "nnunet":
        assert taxonomy is not None
        schema = consecutive(shared_schema(taxonomy))
        from fastseg.formats.nnunet import write_dataset_json

        base = {
            "channel_names": {"0": args.channel},
            "numTraining": len(done),
            "file_ending": ".nii.gz",
        }
        write_dataset_json(schema, out / "dataset.json", base=base)
        written.append(out / "dataset.json")
    else:
        merged: dict[int, dict[str, Any]] = {}
        for unit, result in done:
            task = merged.setdefault(unit["task_index"], dict(unit["item"].task_info))
            task.setdefault("series", []).append(result["series"])
        text = json.dumps([merged[k] for k in sorted(merged)], indent=2, ensure_ascii=False)
        write_text_atomically(out / "tasks.json", text + "\n")
        written.append(out / "tasks.json")
    rows = [row for _, result in done for row in result["rows"]]
    write_text_atomically(out / "stats.csv", table_text(rows, "csv"))
    written.append(out / "stats.csv")
    if not args.quiet:
        listed = ", ".join(str(p) for p in written)
        print(
            f"wrote {len(done)} series in the {args.layout} layout to {out}: {listed}",
            file=sys.stderr,
        )
        if args.layout == "nnunet":
            without = sum(1 for _, result in done if result["image"] is None)
            print(
                f"imagesTr: {len(done) - without} of {len(done)} series"
                + (
                    f"; {without} without a NIfTI image in the export (DICOM series need "
                    "converting, e.g. with dcm2niix, to imagesTr/<case>_0000.nii.gz)"
                    if without
                    else ""
                ),
                file=sys.stderr,
            )
    return status

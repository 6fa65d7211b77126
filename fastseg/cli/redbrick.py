"""The ``redbrick`` command: a RedBrick AI export folder -> semantic, binary or nnU-Net
layout, plus a table of every instance.

Every series is one job, written with :mod:`fastseg.formats.redbrick_export` into a
staging folder inside the output folder and moved into place when complete, so that a
series that fails leaves nothing behind and the others carry on. The main process
writes ``tasks.json`` (or nnU-Net's ``dataset.json``) and ``stats.csv`` at the end,
listing the series that were done.
"""

from __future__ import annotations

import argparse
import copy
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
from fastseg._files import write_text_atomically
from fastseg.cli.batch import Job, UsageError
from fastseg.cli.common import add_command, batch_parent, check_shared, execute, load_schema
from fastseg.cli.schemas import consecutive
from fastseg.cli.volumes import stats_text

LAYOUTS = ("semantic", "binary", "binary-semantic", "nnunet")
_UNSAFE_CASE = re.compile(r"[^\w.-]+")


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
    """Voxel count and volume of every instance of a series (overlap groups included)."""
    from fastseg.formats.redbrick_export import instance_volumes

    counts: dict[int, int] = {}
    voxel = 1.0
    for labels, image, _ in instance_volumes(item):
        voxel = float(np.prod(image.spacing))
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
        category = (
            segment.category if isinstance(segment.category, str) else "/".join(segment.category)
        )
        row: dict[str, Any] = {"task": task, "series": series, "instance": ident}
        row["category"] = category if schema is None else segment.resolve(schema).name
        if schema is not None:
            row["value"] = segment.resolve(schema).value
        row.update({"voxel_count": voxels, "volume_mm3": voxels * voxel})
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

    source, written = stage / "export", stage / "written"
    source.mkdir(parents=True)
    (source / "tasks.json").write_text(json.dumps(unit["tasks"]), encoding="utf-8")
    schema = load_schema(options.taxonomy) if options.taxonomy is not None else None
    try:
        (item,) = export.read_export(source, schema=schema)
    except ValueError as error:
        # Name the export's own tasks.json, not the one-series copy read here.
        raise ValueError(
            str(error).replace(str(source / "tasks.json"), unit["tasks_file"])
        ) from None
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


def _read_tasks(folder: Path) -> list[dict[str, Any]]:
    tasks_file = folder / "tasks.json"
    try:
        tasks = json.loads(tasks_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"{tasks_file}: no such file (a RedBrick export holds tasks.json)"
        ) from None
    except (OSError, ValueError) as error:
        raise UsageError(f"{tasks_file}: not readable JSON ({error})") from None
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise UsageError(f"{tasks_file}: expected a list of task objects")
    return tasks


def _listed(series: Any, key: str = "segmentations") -> list[str]:
    """The paths a series lists under ``key`` (one string or a list of them)."""
    raw = series.get(key) if isinstance(series, dict) else None
    if isinstance(raw, str) and raw:
        return [raw]
    return [p for p in raw if isinstance(p, str)] if isinstance(raw, list) else []


def _units(folder: Path, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One unit per series with segmentations: a one-series copy of its task (other
    series' segmentations dropped so that default series names keep their position),
    with absolute paths."""
    units: list[dict[str, Any]] = []
    for t, task in enumerate(tasks):
        task_name = str(task.get("name") or task.get("taskId") or f"task-{t}")
        all_series = task.get("series") or []
        for position, series in enumerate(all_series):
            listed = _listed(series)
            if not listed:
                continue
            mini = []
            for other_position, other in enumerate(all_series):
                other = copy.deepcopy(other) if isinstance(other, dict) else other
                if isinstance(other, dict):
                    if other_position == position:
                        other["segmentations"] = [str((folder / p).resolve()) for p in listed]
                    else:
                        other.pop("segmentations", None)
                mini.append(other)
            name = str(series.get("name") or chr(position + ord("A")))
            units.append(
                {
                    "index": len(units),
                    "task_index": t,
                    "task": task_name,
                    "series": name,
                    "source": os.path.join(str(folder), listed[0]),
                    "items": [str((folder / p).resolve()) for p in _listed(series, "items")],
                    "tasks_file": str(folder / "tasks.json"),
                    "tasks": [{**copy.deepcopy(task), "series": mini}],
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
        for path in _listed_paths(unit):
            if Path(path).is_relative_to(inside):
                raise UsageError(f"the output folder {out} holds the export's file {path}")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UsageError(f"{out} is not empty (--overwrite writes into it, replacing files)")


def _listed_paths(unit: dict[str, Any]) -> list[str]:
    for series in unit["tasks"][0]["series"]:
        if isinstance(series, dict) and "segmentations" in series:
            return _listed(series)
    return []


def run_redbrick(args: argparse.Namespace) -> int:
    folder, out = Path(args.export), Path(args.out)
    if args.taxonomy is None and args.layout != "binary":
        raise UsageError(f"the {args.layout} layout needs --taxonomy (the categories' values)")
    check_shared(args.taxonomy)
    tasks = _read_tasks(folder)
    units = _units(folder, tasks)
    if not units:
        raise UsageError(f"{folder / 'tasks.json'}: no series with segmentations")
    _check_out(folder, out, units, args.overwrite)
    out.mkdir(parents=True, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".fastseg-staging-", dir=out)
    try:
        options = ExportOptions(args.taxonomy, args.layout, str(out), staging, args.overwrite)
        jobs = [Job(unit["source"], data=unit) for unit in units]
        status, outcomes = execute(
            args, functools.partial(export_job, options), jobs, noun="series"
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    done = [(unit, o.result) for unit, o in zip(units, outcomes, strict=True) if o.status == "done"]
    written = []
    if args.layout == "nnunet":
        assert args.taxonomy is not None
        schema = consecutive(load_schema(args.taxonomy))
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
            task = merged.setdefault(
                unit["task_index"],
                {k: v for k, v in tasks[unit["task_index"]].items() if k != "series"},
            )
            task.setdefault("series", []).append(result["series"])
        text = json.dumps([merged[k] for k in sorted(merged)], indent=2, ensure_ascii=False)
        write_text_atomically(out / "tasks.json", text + "\n")
        written.append(out / "tasks.json")
    rows = [row for _, result in done for row in result["rows"]]
    write_text_atomically(out / "stats.csv", stats_text(rows, "csv"))
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
        "instance with its category, voxel count and volume in mm³.",
        examples=(
            """\
  fastseg redbrick export/ -o semantic/ --taxonomy taxonomy.json
  fastseg redbrick export/ -o masks/ --layout binary -j 2
  fastseg redbrick export/ -o Dataset042_Spine/ --layout nnunet --taxonomy taxonomy.json \\
      --channel-name CT"""
        ),
    )
    parser.add_argument("export", help="the export folder (holding tasks.json)")
    parser.add_argument("-o", "--out", required=True, help="output folder (new, or empty)")
    parser.add_argument("--taxonomy", metavar="FILE", help="the project's RedBrick taxonomy")
    parser.add_argument("--layout", choices=LAYOUTS, default="semantic", help="default semantic")
    parser.add_argument(
        "--channel-name",
        dest="channel",
        default="CT",
        help="nnunet: the image channel's name in dataset.json (default CT)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="write into a non-empty folder, replacing files"
    )
    parser.set_defaults(handler=run_redbrick)

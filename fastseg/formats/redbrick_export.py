"""RedBrick AI export folders (``tasks.json`` plus NIfTI segmentations), without the SDK.

The RedBrick SDK's ``export_tasks`` writes a folder holding ``tasks.json`` (a list of
tasks, each with its ``series``) and the segmentations its series point at, by paths
relative to the folder. A series' ``segmentations`` is one path or a list of paths;
its ``segmentMap`` maps the voxel values to categories (see
:func:`fastseg.formats.redbrick.read_segment_map`). This module reads such a folder and
writes it again as semantic masks or as binary (one file per instance) masks:

- :func:`read_export`: the series of an export folder, as :class:`ExportSeries`;
- :func:`instance_volumes`: the files of a series as instance maps, checked;
- :func:`write_semantic_export`: one semantic NIfTI per series, values ``classId + 1``;
- :func:`write_binary_export`: one ``instance-<id>.nii.gz`` per instance.

The written folders follow the SDK's layout: ``segmentations/<task>/<series>.nii.gz``
and ``segmentations/<task>/<series>/instance-<id>.nii.gz``, with a ``tasks.json``
beside ``segmentations`` whose paths are relative to the output folder.
"""

from __future__ import annotations

import concurrent.futures
import copy
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PureWindowsPath
from typing import Any

import numpy as np
import numpy.typing as npt

from fastseg._files import write_text_atomically
from fastseg.convert import binary_masks, to_semantic
from fastseg.formats.redbrick import read_segment_map
from fastseg.formats.registry import excerpt, read_json
from fastseg.io import LabelImage, load, save
from fastseg.relabel import unique
from fastseg.schema import Schema
from fastseg.segmap import SegmentMap

__all__ = [
    "ExportSeries",
    "OutsidePathError",
    "instance_volumes",
    "read_export",
    "write_binary_export",
    "write_binary_semantic_export",
    "write_semantic_export",
]

AFFINE_TOLERANCE = 1e-4
"""Absolute tolerance when comparing the affines of the files of one series."""

_INSTANCE_FILE = re.compile(r"(?:instance|category)-(\d+)\.nii(\.gz)?")
_UNSAFE = re.compile(r"[^\w.\- ]+")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_LISTED_FILES = ("segmentations", "items")
"""The keys of a series that list files: its segmentations and its images."""


class OutsidePathError(ValueError):
    """A ``tasks.json`` lists a file by an absolute path or outside its export folder.

    Attributes
    ----------
    reason : str
        The message without the hint on how to read such files anyway.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"{reason}; allow_outside_paths=True reads it")
        self.reason = reason


@dataclass(frozen=True)
class ExportSeries:
    """One series of a RedBrick export that has segmentations.

    Attributes
    ----------
    task : str
        The task's ``name``, else its ``taskId``.
    name : str
        The series' ``name``, else ``"A"``, ``"B"``, ... by its position in the task
        (the SDK's default).
    segmentations : list of pathlib.Path
        Absolute paths of the series' segmentation files.
    segment_map : SegmentMap
        The series' ``segmentMap``.
    binary_mask : bool
        The files are binary masks, one per instance (``instance-<id>.nii.gz``).
    semantic_mask : bool
        The files hold category values (``classId + 1``) rather than instance ids.
    series : mapping
        The series' dict as read from ``tasks.json``.
    task_info : mapping
        The task's dict without its ``series``.
    """

    task: str
    name: str
    segmentations: list[Path]
    segment_map: SegmentMap
    binary_mask: bool
    semantic_mask: bool
    series: Mapping[str, Any] = field(default_factory=dict)
    task_info: Mapping[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------ read


def read_export(
    folder: str | os.PathLike[str],
    *,
    schema: Schema | None = None,
    on_error: Callable[[ValueError], None] | None = None,
    allow_outside_paths: bool = False,
) -> list[ExportSeries]:
    """Read the series of a RedBrick AI export folder.

    ``tasks.json`` is not trusted: a file it lists (a series' ``segmentations`` or
    ``items``) by an absolute path, or by a relative one that leads out of the folder
    (``..``, or a link pointing elsewhere), is refused unless ``allow_outside_paths``.
    Item URLs (``https://...``, ``s3://...``) are not local files and are not checked.
    JSON nested more than :data:`~fastseg.formats.registry.MAX_JSON_DEPTH` levels
    deep is refused before anything is read from it.

    Parameters
    ----------
    folder : str or path-like
        The export folder, holding ``tasks.json``.
    schema : Schema, optional
        The project's taxonomy (see :func:`fastseg.formats.redbrick.read_taxonomy`);
        needed when segment maps name categories by ``classId``, and when given every
        category must be in it.
    on_error : callable, optional
        Called with the error of a series that cannot be read (its message names the
        file, task and series), which is then left out; by default the error is raised.
        A path outside the folder is no such error: it refuses the whole file.
    allow_outside_paths : bool, optional
        Read files that ``tasks.json`` lists by absolute paths or outside the folder.

    Returns
    -------
    list of ExportSeries
        In ``tasks.json`` order; series without segmentations are skipped.

    Raises
    ------
    OutsidePathError
        If a series lists a file outside the folder (naming the task, series, key and
        path), unless ``allow_outside_paths``.
    ValueError
        If ``tasks.json`` is missing, malformed or nested too deeply, a series points at
        a file that does not exist, or a segment map cannot be read (naming the file and
        task).

    Examples
    --------
    >>> import json, os, tempfile
    >>> from fastseg.formats.redbrick_export import read_export
    >>> folder = tempfile.mkdtemp()
    >>> with open(os.path.join(folder, "tasks.json"), "w") as stream:
    ...     json.dump([{"taskId": "t1", "series": [{"name": "CT"}]}], stream)
    >>> read_export(folder)
    []
    """
    root = Path(folder).resolve()
    tasks_file = root / "tasks.json"
    if not tasks_file.is_file():
        raise ValueError(f"{tasks_file}: no such file (a RedBrick export holds tasks.json)")
    try:
        tasks = read_json(tasks_file)
    except OSError as error:
        raise ValueError(f"{tasks_file}: not readable ({error.strerror or error})") from None
    if not isinstance(tasks, list):
        raise ValueError(f"{tasks_file}: expected a list of tasks, got {type(tasks).__name__}")
    found: list[ExportSeries] = []
    for index, task in enumerate(tasks):
        if not isinstance(task, Mapping):
            raise ValueError(f"{tasks_file}: task {index} is not an object")
        task_name = str(task.get("name") or task.get("taskId") or f"task-{index}")
        task_info = {k: copy.deepcopy(v) for k, v in task.items() if k != "series"}
        for position, series in enumerate(task.get("series") or []):
            try:
                if not isinstance(series, Mapping):
                    raise ValueError(
                        f"{tasks_file}: task {task_name!r}: series {position} is not an object"
                    )
                if not allow_outside_paths:
                    _check_contained(root, tasks_file, task_name, position, series)
                entry = _read_series(root, tasks_file, task_name, position, series, schema)
            except ValueError as error:
                if on_error is None or isinstance(error, OutsidePathError):
                    raise
                on_error(error)
                continue
            if entry is not None:
                found.append(
                    ExportSeries(
                        task=task_name,
                        name=entry[0],
                        segmentations=entry[1],
                        segment_map=entry[2],
                        binary_mask=bool(series.get("binaryMask", False)),
                        semantic_mask=bool(series.get("semanticMask", False)),
                        series=copy.deepcopy(dict(series)),
                        task_info=task_info,
                    )
                )
    return found


def _series_name(series: Mapping[str, Any], position: int) -> str:
    return str(series.get("name") or chr(position + ord("A")))


def _check_contained(
    root: Path, tasks_file: Path, task: str, position: int, series: Mapping[str, Any]
) -> None:
    """Refuse a file the series lists by an absolute path or outside ``root``."""
    for key in _LISTED_FILES:
        raw = series.get(key)
        listed = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
        for path in listed:
            if not isinstance(path, str) or not path or _URL.match(path):
                continue
            pure = PurePath(path)
            if pure.is_absolute() or PureWindowsPath(path).is_absolute():
                why = "is absolute"
            elif ".." in pure.parts:
                why = "leads out of the export folder (..)"
            elif not (root / path).resolve().is_relative_to(root):
                why = "leads out of the export folder (through a link)"
            else:
                continue
            name = _series_name(series, position)
            raise OutsidePathError(
                f"{tasks_file}: task {task!r}, series {name!r}: {key} path {path} {why}"
            )


def _read_series(
    root: Path,
    tasks_file: Path,
    task: str,
    position: int,
    series: Mapping[str, Any],
    schema: Schema | None,
) -> tuple[str, list[Path], SegmentMap] | None:
    name = _series_name(series, position)
    where = f"{tasks_file}: task {task!r}, series {name!r}"
    raw = series.get("segmentations")
    if raw is None or raw == [] or raw == "":
        return None
    listed = [raw] if isinstance(raw, str) else raw
    if not isinstance(listed, list) or not all(isinstance(p, str) and p for p in listed):
        raise ValueError(
            f"{where}: segmentations must be a path or a list of paths, got {excerpt(repr(raw))}"
        )
    paths = [(root / p).resolve() for p in listed]
    for path in paths:
        if not path.is_file():
            raise ValueError(f"{where}: segmentation file {path} does not exist")
    try:
        segment_map = read_segment_map(series.get("segmentMap") or {}, schema=schema)
    except ValueError as error:
        raise ValueError(f"{where}: segmentMap: {error}") from None
    return name, paths, segment_map


# ----------------------------------------------------------------------------- write


def write_semantic_export(
    series_list: Iterable[ExportSeries], schema: Schema, out_folder: str | os.PathLike[str]
) -> Path:
    """Write every series as one semantic NIfTI, values ``classId + 1``.

    The instance ids of a series' file(s) become their categories' values (the
    schema's, ``classId + 1`` for a taxonomy read by
    :func:`~fastseg.formats.redbrick.read_taxonomy`) through :func:`fastseg.to_semantic`;
    where instances overlap (overlap groups, or several files covering a voxel) the
    lowest value wins, as in RedBrick. A series of several files (instance ids are
    unique across them) or of binary masks becomes one file. A series that already is
    semantic is renumbered to ``schema``'s values through its segment map (e.g. to the
    consecutive labels nnU-Net needs). The result goes to
    ``<out_folder>/segmentations/<task>/<series>.nii.gz`` with the affine and header
    of the series' first file.

    ``<out_folder>/tasks.json`` lists the series as the RedBrick SDK's semantic export
    does: ``segmentations`` a list of the one file; ``segmentMap`` keyed by category
    value, each entry the instance entry (``id``, ``category``, ``attributes``,
    ``group``, ``readOnly``) of the category's last instance in the segment map, as the
    SDK keeps it; ``binaryMask`` false, ``semanticMask`` true, ``pngMask`` false.

    Parameters
    ----------
    series_list : iterable of ExportSeries
        From :func:`read_export`.
    schema : Schema
        The categories' values.
    out_folder : str or path-like
        Created if missing.

    Returns
    -------
    pathlib.Path
        The ``tasks.json`` written.

    Raises
    ------
    ValueError
        If the files of a series differ in shape or affine, a volume holds ids its
        segment map lacks, or a category is not in the schema (the message names the
        file).
    """
    out = Path(out_folder)
    layout = _Layout(out)
    for item in series_list:
        instances, like = _combined_semantic(item, schema)
        target = layout.path(item, ".nii.gz")
        target.parent.mkdir(parents=True, exist_ok=True)
        save(target, instances, like=like)
        written = copy.deepcopy(dict(item.series))
        written["segmentations"] = [target.relative_to(out).as_posix()]
        written["segmentMap"] = {
            str(value): entry for value, entry in _category_entries(item, schema).items()
        }
        _set_flags(written, binary=False, semantic=True)
        layout.add(item, written)
    return layout.write_tasks()


def write_binary_export(
    series_list: Iterable[ExportSeries], out_folder: str | os.PathLike[str]
) -> Path:
    """Write every instance of every series as its own binary NIfTI mask.

    Each instance of a series' segment map that the volume holds gets
    ``<out_folder>/segmentations/<task>/<series>/instance-<id>.nii.gz``: 1 where the
    volume holds its id or an overlap group it belongs to (:func:`fastseg.binary_masks`),
    0 elsewhere, with the affine and header of the series' first file. As in the
    RedBrick SDK's binary export, an instance the volume lacks gets no file.

    ``<out_folder>/tasks.json`` lists the series as the SDK does: ``segmentations`` the
    mask files (in segment map order); ``segmentMap`` every instance in full form, with
    ``"mask"`` naming its file where it has one and without ``overlappingGroups`` (the
    masks hold the overlaps); ``binaryMask`` true, ``semanticMask`` and ``pngMask``
    false.

    Parameters
    ----------
    series_list : iterable of ExportSeries
        From :func:`read_export`.
    out_folder : str or path-like
        Created if missing.

    Returns
    -------
    pathlib.Path
        The ``tasks.json`` written.

    Raises
    ------
    ValueError
        If the files of a series differ in shape or affine, a volume holds ids its
        segment map lacks, or a series is a semantic mask (the message names the file).
    """
    out = Path(out_folder)
    layout = _Layout(out)
    for item in series_list:
        if item.semantic_mask:
            where = f"task {item.task!r}, series {item.name!r}"
            raise ValueError(
                f"{item.segmentations[0]} ({where}): a semantic mask (semanticMask) holds "
                "categories, not instances; write it as semantic or binary-semantic"
            )
        folder = layout.path(item, "")
        folder.mkdir(parents=True, exist_ok=True)
        files = instance_volumes(item)
        like = files[0][1]
        pending: dict[int, npt.NDArray[np.bool_]] = {}
        counts: dict[int, int] = {}
        subsets = [_present_instances(item.segment_map, labels) for labels, _, _ in files]
        for subset in subsets:
            for ident in subset:
                counts[ident] = counts.get(ident, 0) + 1
        with _Writer() as writer:
            for (labels, _, _), subset in zip(files, subsets, strict=True):
                if not subset:
                    continue
                sub_map = _restricted(item.segment_map, subset)
                for ident, mask in binary_masks(labels, sub_map):
                    if counts[ident] > 1:
                        if ident in pending:
                            np.logical_or(pending[ident], mask, out=pending[ident])
                        else:
                            pending[ident] = mask
                        counts[ident] -= 1
                        continue
                    if ident in pending:
                        mask = np.logical_or(pending.pop(ident), mask)
                    writer.save(folder / f"instance-{ident}.nii.gz", mask, like)
        masks = {
            ident: (folder / f"instance-{ident}.nii.gz").relative_to(out).as_posix()
            for ident, _ in _file_order(item.segment_map)
            if ident in counts
        }
        written = copy.deepcopy(dict(item.series))
        written["segmentations"] = list(masks.values())
        written["segmentMap"] = {
            str(ident): _instance_entry(segment, masks.get(ident))
            for ident, segment in _file_order(item.segment_map)
        }
        _set_flags(written, binary=True, semantic=False)
        layout.add(item, written)
    return layout.write_tasks()


def write_binary_semantic_export(
    series_list: Iterable[ExportSeries], schema: Schema, out_folder: str | os.PathLike[str]
) -> Path:
    """Write one binary NIfTI mask per category of every series (RedBrick's binary
    semantic layout).

    Each category present in a series gets
    ``<out_folder>/segmentations/<task>/<series>/category-<value>.nii.gz`` (``value`` is
    ``classId + 1`` for a RedBrick taxonomy): 1 where the semantic map of
    :func:`write_semantic_export` holds the category. ``<out_folder>/tasks.json`` lists
    the files in ``segmentations`` and, as the SDK does, keys ``segmentMap`` by category
    value with the entry of :func:`write_semantic_export` plus ``"mask"`` naming the
    category's file where it has one; ``binaryMask`` and ``semanticMask`` true.

    Returns
    -------
    pathlib.Path
        The ``tasks.json`` written.

    Raises
    ------
    ValueError
        As :func:`write_semantic_export`.
    """
    out = Path(out_folder)
    layout = _Layout(out)
    for item in series_list:
        semantic, like = _combined_semantic(item, schema)
        folder = layout.path(item, "")
        folder.mkdir(parents=True, exist_ok=True)
        masks: dict[int, str] = {}
        with _Writer() as writer:
            for value, mask in binary_masks(semantic):
                target = folder / f"category-{value}.nii.gz"
                writer.save(target, mask, like)
                masks[int(value)] = target.relative_to(out).as_posix()
        entries = _category_entries(item, schema)
        written = copy.deepcopy(dict(item.series))
        written["segmentations"] = [masks[v] for v in sorted(masks)]
        written["segmentMap"] = {}
        for value, entry in entries.items():
            if value in masks:
                entry = {**entry, "mask": masks[value]}
            written["segmentMap"][str(value)] = entry
        _set_flags(written, binary=True, semantic=True)
        layout.add(item, written)
    return layout.write_tasks()


# --------------------------------------------------------------------------- helpers

# The order of an instance's keys in the SDK's export (rb_label_utils.dicom_rb_series).
_ENTRY_ORDER = ("id", "category", "attributes", "group", "readOnly")


def _set_flags(series: dict[str, Any], *, binary: bool, semantic: bool) -> None:
    series["binaryMask"] = binary
    series["semanticMask"] = semantic
    series["pngMask"] = False


def _file_order(segment_map: SegmentMap) -> list[tuple[int, Any]]:
    """(id, segment) in the order the segment map was read in (ascending otherwise)."""
    layout = segment_map.metadata.get("redbrick")
    order = layout.get("order") if isinstance(layout, Mapping) else None
    idents = [int(i) for i in order or () if int(i) in segment_map]
    idents += [i for i in segment_map if i not in idents]
    return [(ident, segment_map[ident]) for ident in idents]


def _instance_entry(segment: Any, mask: str | None) -> dict[str, Any]:
    """A full segmentMap entry as the SDK exports it: id, category, attributes, group,
    readOnly, other keys, then mask; never overlappingGroups (masks hold overlaps)."""
    category = segment.category if isinstance(segment.category, str) else list(segment.category)
    fields: dict[str, Any] = {"category": category}
    if segment.attributes:
        fields["attributes"] = copy.deepcopy(dict(segment.attributes))
    for key, value in segment.extra.items():
        if key not in ("mask", "overlappingGroups"):
            fields[key] = copy.deepcopy(value)
    ordered = {key: fields[key] for key in _ENTRY_ORDER if key in fields}
    ordered.update({k: v for k, v in fields.items() if k not in ordered})
    if mask is not None:
        ordered["mask"] = mask
    return ordered


def _category_entries(item: ExportSeries, schema: Schema) -> dict[int, dict[str, Any]]:
    """Category value -> the entry of its last instance in file order (the SDK's
    semantic export keeps one label per category, the last one it meets), by value."""
    entries: dict[int, dict[str, Any]] = {}
    for _, segment in _file_order(item.segment_map):
        try:
            value = segment.resolve(schema).value
        except KeyError as error:
            raise ValueError(f"task {item.task!r}, series {item.name!r}: {error.args[0]}") from None
        entries[value] = _instance_entry(segment, None)
    return {value: entries[value] for value in sorted(entries)}


class _Writer:
    """Saves masks on a few threads while the next masks are built.

    Compressing dominates writing a mask and zlib releases the GIL, so the files are
    written in parallel; at most two masks per thread wait in memory. The first error
    is raised when the block ends, after every started write has finished.
    """

    def __init__(self) -> None:
        from fastseg._jit import max_threads

        self.threads = max(1, min(4, os.cpu_count() or 1, max_threads()))
        self.pool = concurrent.futures.ThreadPoolExecutor(self.threads)
        self.slots = threading.BoundedSemaphore(2 * self.threads)
        self.futures: list[concurrent.futures.Future[None]] = []

    def save(self, target: Path, mask: npt.NDArray[np.bool_], like: LabelImage) -> None:
        self.slots.acquire()
        future = self.pool.submit(save, target, mask, like=like)
        future.add_done_callback(lambda _: self.slots.release())
        self.futures.append(future)

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True)
        for future in self.futures:
            future.result()


class _Layout:
    """Output paths (the SDK's ``segmentations/<task>/<series>``) and tasks.json."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.used: set[Path] = set()
        self.tasks: dict[str, dict[str, Any]] = {}

    def path(self, item: ExportSeries, suffix: str) -> Path:
        base = self.out / "segmentations" / _safe(item.task, "task") / _safe(item.name, "A")
        candidate, counter = base, 1
        while candidate in self.used:
            candidate = base.with_name(f"{base.name}_{counter}")
            counter += 1
        self.used.add(candidate)
        return candidate.with_name(candidate.name + suffix)

    def add(self, item: ExportSeries, series: dict[str, Any]) -> None:
        task = self.tasks.get(item.task)
        if task is None:
            task = {**copy.deepcopy(dict(item.task_info)), "series": []}
            self.tasks[item.task] = task
        task["series"].append(series)

    def write_tasks(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        target = self.out / "tasks.json"
        text = json.dumps(list(self.tasks.values()), indent=2, ensure_ascii=False) + "\n"
        write_text_atomically(target, text)
        return target


def _safe(name: str, default: str) -> str:
    cleaned = _UNSAFE.sub("_", name).strip(" .")
    return cleaned or default


def instance_volumes(item: ExportSeries) -> list[tuple[npt.NDArray[Any], LabelImage, Path]]:
    """Read the files of a series as instance maps, checked against each other and the
    segment map.

    Parameters
    ----------
    item : ExportSeries
        From :func:`read_export`.

    Returns
    -------
    list of (numpy.ndarray, LabelImage, pathlib.Path)
        For every file of the series, in order: its instance ids (a binary mask
        ``instance-<id>.nii.gz`` becomes ``<id>`` where it is set, 0 elsewhere), the
        image as loaded (affine and header), and its path. The files of a semantic
        series hold category values, which its segment map lists as its "instances"
        (``category-<value>.nii.gz`` for binary ones).

    Raises
    ------
    ValueError
        If the series has no files, its files differ in shape or
        affine, a volume holds ids the segment map lacks, or a binary mask is misnamed or
        holds values other than 0 and 1 (the message names the file, task and series).

    Examples
    --------
    >>> import json, os, tempfile
    >>> import numpy as np
    >>> import fastseg
    >>> from fastseg.formats.redbrick_export import instance_volumes, read_export
    >>> folder = tempfile.mkdtemp()
    >>> fastseg.save(os.path.join(folder, "seg.nii.gz"), np.array([[[0, 1, 2]]]))
    >>> series = {"segmentations": "seg.nii.gz", "segmentMap": {"1": "Liver", "2": "Liver"}}
    >>> with open(os.path.join(folder, "tasks.json"), "w") as stream:
    ...     json.dump([{"taskId": "t1", "series": [series]}], stream)
    >>> [(labels.ravel().tolist(), path.name) for labels, _, path in
    ...  instance_volumes(read_export(folder)[0])]
    [([0, 1, 2], 'seg.nii.gz')]
    """
    where = f"task {item.task!r}, series {item.name!r}"
    if not item.segmentations:
        raise ValueError(f"{where}: no segmentation files")
    volumes: list[tuple[npt.NDArray[Any], LabelImage, Path]] = []
    first: LabelImage | None = None
    known = set(item.segment_map.values())
    for path in item.segmentations:
        image = load(path)
        if first is None:
            first = image
        else:
            _check_geometry(first, item.segmentations[0], image, path, where)
        labels = image.labels
        if item.binary_mask:
            match = _INSTANCE_FILE.fullmatch(path.name)
            prefix = "category" if item.semantic_mask else "instance"
            if match is None or not path.name.startswith(prefix):
                raise ValueError(
                    f"{path} ({where}): a binary mask file is named {prefix}-<"
                    f"{'value' if item.semantic_mask else 'id'}>.nii.gz"
                )
            ident = int(match.group(1))
            values = [int(v) for v in unique(labels) if v != 0]
            if values not in ([], [1]):
                raise ValueError(f"{path} ({where}): a binary mask holds values {values[:5]}")
            if ident not in known:
                raise ValueError(f"{path} ({where}): instance {ident} is not in the segmentMap")
            labels = np.multiply(labels != 0, ident, dtype=np.uint32 if ident > 255 else np.uint8)
        else:
            strangers = [int(v) for v in unique(labels) if v != 0 and int(v) not in known]
            if strangers:
                raise ValueError(
                    f"{path} ({where}): the volume holds ids the segmentMap lacks: "
                    f"{strangers[:10]}{' ...' if len(strangers) > 10 else ''}"
                )
        volumes.append((labels, image, path))
    return volumes


def _check_geometry(
    first: LabelImage, first_path: Path, image: LabelImage, path: Path, where: str
) -> None:
    if image.labels.shape != first.labels.shape:
        raise ValueError(
            f"{path} ({where}): shape {image.labels.shape} differs from "
            f"{first.labels.shape} of {first_path}"
        )
    if not np.allclose(image.affine, first.affine, rtol=0.0, atol=AFFINE_TOLERANCE):
        difference = float(np.max(np.abs(image.affine - first.affine)))
        raise ValueError(
            f"{path} ({where}): affine differs from that of {first_path} "
            f"(by up to {difference:g}, tolerance {AFFINE_TOLERANCE:g})"
        )


def _combined_semantic(item: ExportSeries, schema: Schema) -> tuple[npt.NDArray[Any], LabelImage]:
    result: npt.NDArray[Any] | None = None
    volumes = instance_volumes(item)
    for labels, _, path in volumes:
        try:
            semantic = to_semantic(labels, item.segment_map, schema)
        except ValueError as error:
            raise ValueError(
                f"{path} (task {item.task!r}, series {item.name!r}): {error}"
            ) from None
        if result is None:
            result = semantic
            continue
        dtype = np.promote_types(result.dtype, semantic.dtype)
        result = result.astype(dtype, copy=False)
        both = (result != 0) & (semantic != 0)
        result = np.where(result == 0, semantic, result).astype(dtype, copy=False)
        result[both] = np.minimum(result[both], semantic[both])
    assert result is not None
    return result, volumes[0][1]


def _present_instances(segment_map: SegmentMap, labels: npt.NDArray[Any]) -> list[int]:
    """Instances whose id, or an overlap group holding them, occurs in ``labels``."""
    present = {int(v) for v in unique(labels)}
    found = {ident for ident in segment_map if ident in present}
    for group, members in segment_map.groups.items():
        if group in present:
            found.update(members)
    return sorted(found)


def _restricted(segment_map: SegmentMap, idents: Sequence[int]) -> SegmentMap:
    keep = set(idents)
    groups = {
        group: [m for m in members if m in keep]
        for group, members in segment_map.groups.items()
        if any(m in keep for m in members)
    }
    return SegmentMap({ident: segment_map[ident] for ident in idents}, groups)

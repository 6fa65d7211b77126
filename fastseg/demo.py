"""A built-in example: a spine phantom with its RedBrick-style export, and the main job on it.

:func:`spine_phantom` draws, in code, a small CT-like label volume with anisotropic voxels
(0.8 x 0.8 x 2.5 mm): five lumbar vertebrae as instances of one category, the four discs
between them, both kidneys and the liver, plus a few stray voxels that an annotator's
brush left behind. It comes with its taxonomy and ``segmentMap``, as a RedBrick AI export
has them. :func:`run_demo` writes that export to a folder and runs the main job on it:
instance -> semantic, semantic -> instances with their segment map, statistics in mm
and cleanup. ``fastseg demo`` prints what it returns.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from fastseg.cleanup import largest_k
from fastseg.convert import to_instances, to_semantic
from fastseg.io import load, save
from fastseg.schema import Category, Schema
from fastseg.segmap import Segment, SegmentMap
from fastseg.stats import stats

__all__ = ["DemoReport", "Phantom", "demo_files", "run_demo", "spine_phantom"]

SPACING = (0.8, 0.8, 2.5)
"""Voxel size of the phantom in mm: fine in-plane, thick slices, as in clinical CT."""
SHAPE = (160, 128, 80)

_LEVELS = ("L1", "L2", "L3", "L4", "L5")
_BODY_HEIGHT = 25.0  # mm, a lumbar vertebral body
_DISC_HEIGHT = 7.5  # mm, three slices
_BOTTOM = 12.5  # mm below L5


@dataclass(frozen=True)
class Phantom:
    """A label volume with what its ids mean.

    Attributes
    ----------
    instances : numpy.ndarray
        uint8 instance map in Fortran order (as nibabel gives NIfTI data).
    affine : numpy.ndarray
        Voxel-to-world matrix (4 x 4), in mm.
    schema : Schema
        The categories: value ``classId + 1`` as in a RedBrick taxonomy.
    segment_map : SegmentMap
        Instance id -> category (with the vertebral level as an attribute).
    specks : int
        How many stray clusters of a few voxels the map holds, away from their instance.
    """

    instances: npt.NDArray[np.uint8]
    affine: npt.NDArray[np.float64]
    schema: Schema
    segment_map: SegmentMap
    specks: int


def _schema() -> Schema:
    spine, abdomen = ("Spine",), ("Abdomen",)
    return Schema(
        [
            Category("Vertebra", 1, color=(232, 216, 176), parents=spine),
            Category("Intervertebral disc", 2, color=(96, 160, 224), parents=spine),
            Category("Kidney", 3, color=(192, 64, 64), parents=abdomen),
            Category("Liver", 4, color=(160, 80, 32), parents=abdomen),
        ],
        metadata={"name": "fastseg spine phantom"},
    )


def spine_phantom() -> Phantom:
    """Draw the phantom: 12 instances in 4 categories, 160 x 128 x 80 voxels.

    Instance ids follow annotation order: vertebrae L1-L5 are 1-5, the discs L1-L2 to
    L4-L5 are 6-9, the left and right kidney 10 and 11, the liver 12. Three specks of
    2 x 2 x 1 voxels carry the ids of L3, a disc and the liver far from their instance.

    Returns
    -------
    Phantom

    Examples
    --------
    >>> from fastseg.demo import spine_phantom
    >>> phantom = spine_phantom()
    >>> phantom.instances.shape, len(phantom.segment_map), phantom.specks
    ((160, 128, 80), 12, 3)
    >>> phantom.segment_map[3].category, dict(phantom.segment_map[3].attributes)
    ('Vertebra', {'level': 'L3'})
    """
    sx, sy, sz = SPACING
    x = ((np.arange(SHAPE[0]) + 0.5) * sx)[:, None, None]
    y = ((np.arange(SHAPE[1]) + 0.5) * sy)[None, :, None]
    z = ((np.arange(SHAPE[2]) + 0.5) * sz)[None, None, :]
    labels = np.zeros(SHAPE, np.uint8, order="F")
    segments: dict[int, Segment] = {}

    def ellipse(cx: float, cy: float, rx: float, ry: float) -> npt.NDArray[np.bool_]:
        return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0

    def between(low: float, high: float) -> npt.NDArray[np.bool_]:
        return (z >= low) & (z < high)

    body = ellipse(64.0, 45.0, 18.0, 14.0)
    disc = ellipse(64.0, 45.0, 16.5, 12.5)
    radius = np.sqrt((x - 64.0) ** 2 + (y - 66.0) ** 2)
    arch = ((radius >= 6.0) & (radius <= 10.0)) | (
        (np.abs(x - 64.0) <= 3.0) & (y >= 74.0) & (y <= 90.0)
    )
    step = _BODY_HEIGHT + _DISC_HEIGHT
    for index, level in enumerate(_LEVELS):
        ident = index + 1
        top = _BOTTOM + (len(_LEVELS) - index) * step - _DISC_HEIGHT
        bottom = top - _BODY_HEIGHT
        # The arch is shorter than the body, so that neighbouring vertebrae never touch.
        shape = (body & between(bottom, top)) | (arch & between(bottom + 5.0, top - 5.0))
        labels[shape] = ident
        segments[ident] = Segment("Vertebra", attributes={"level": level})
        if index < len(_LEVELS) - 1:
            ident = len(_LEVELS) + index + 1
            labels[disc & between(bottom - _DISC_HEIGHT, bottom)] = ident
            below = _LEVELS[index + 1]
            segments[ident] = Segment(
                "Intervertebral disc", attributes={"level": f"{level}-{below}"}
            )
    for ident, (cx, side) in enumerate(((22.0, "left"), (106.0, "right")), start=10):
        kidney = ((x - cx) / 13.0) ** 2 + ((y - 58.0) / 18.0) ** 2 + ((z - 140.0) / 45.0) ** 2
        labels[kidney <= 1.0] = ident
        segments[ident] = Segment("Kidney", attributes={"side": side})
    liver = ((x - 34.0) / 28.0) ** 2 + ((y - 24.0) / 20.0) ** 2 + ((z - 178.0) / 32.0) ** 2
    labels[(liver <= 1.0) & (labels == 0)] = 12
    segments[12] = Segment("Liver")
    specks = ((3, 140, 10, 10), (6, 148, 120, 40), (12, 8, 120, 70))
    for ident, i, j, k in specks:
        labels[i : i + 2, j : j + 2, k] = ident
    affine = np.diag([sx, sy, sz, 1.0])
    affine[:3, 3] = (-64.0, -50.0, -100.0)  # origin near the centre of the field of view
    return Phantom(labels, affine, _schema(), SegmentMap(segments), len(specks))


# ------------------------------------------------------------------------------- job


@dataclass(frozen=True)
class CategorySummary:
    """One category of the demo's summary."""

    name: str
    instances: int
    """Instances in the export's segment map."""
    recovered: int
    """Connected components found in the semantic map (specks count as instances)."""
    after_cleanup: int
    """Connected components after keeping the largest component of every instance."""
    volume_mm3: float
    """Volume of the category's instances after cleanup."""


@dataclass
class DemoReport:
    """What :func:`run_demo` wrote and measured."""

    folder: Path
    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    files: list[Path] = field(default_factory=list)
    steps: list[tuple[str, float]] = field(default_factory=list)
    """(step, seconds) in the order run."""
    categories: list[CategorySummary] = field(default_factory=list)
    removed_voxels: int = 0
    """Voxels the cleanup removed (the specks)."""


def demo_files() -> tuple[str, ...]:
    """Names of the files :func:`run_demo` writes, in order."""
    return (
        "taxonomy.json",
        "segmentMap.json",
        "instances.nii.gz",
        "dataset.json",
        "semantic.nii.gz",
        "instances_from_semantic.nii.gz",
        "instances_from_semantic.segmentMap.json",
        "stats.csv",
        "instances_clean.nii.gz",
        "semantic_clean.nii.gz",
    )


T = TypeVar("T")


def _write_named_stats(path: Path, table: Any, segment_map: SegmentMap, schema: Schema) -> None:
    """The statistics table as CSV with every instance's category (and attributes)."""
    import csv
    import io

    from fastseg._files import write_text_atomically

    rows = []
    for record in table.to_records():
        ident = record.pop("id")
        named: dict[str, Any] = {"id": ident}
        if ident in segment_map:
            segment = segment_map[ident]
            named["category"] = segment.resolve(schema).name
            named.update(segment.attributes)
        rows.append({**named, **record})
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns) or ["id"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomically(path, buffer.getvalue())


class _Clock:
    def __init__(self, report: DemoReport) -> None:
        self.report = report

    def step(self, name: str, work: Callable[[], T]) -> T:
        started = time.perf_counter()
        result = work()
        self.report.steps.append((name, time.perf_counter() - started))
        return result


def run_demo(folder: str | os.PathLike[str], *, overwrite: bool = False) -> DemoReport:
    """Write the phantom's export to ``folder`` and run the main job on it.

    Steps, each timed: the phantom and its RedBrick-style export (taxonomy, segmentMap,
    instance map, and the taxonomy as an nnU-Net ``dataset.json``); instance -> semantic
    through the segmentMap; semantic -> instances by connected components, with the
    segment map that names them; statistics in mm; cleanup (the largest component of
    every instance, which removes the specks) and the semantic map of the result.
    Every file is read back from disk where a user's script would read it.

    Parameters
    ----------
    folder : str or path-like
        Created if missing.
    overwrite : bool, optional
        Replace existing files of these names. Without it, files an earlier demo run
        wrote (recorded in ``.fastseg-demo.json``, unchanged since) are replaced and any
        other existing file is an error, with nothing written.

    Returns
    -------
    DemoReport

    Raises
    ------
    FileExistsError
        If a file the demo writes exists, was not written by an earlier demo run (or
        changed since), and ``overwrite`` is false.

    Examples
    --------
    >>> import tempfile
    >>> from fastseg.demo import run_demo
    >>> report = run_demo(tempfile.mkdtemp())
    >>> for c in report.categories:
    ...     print(c.name, c.instances, c.recovered, c.after_cleanup)
    Vertebra 5 6 5
    Intervertebral disc 4 5 4
    Kidney 2 2 2
    Liver 1 2 1
    """
    out = Path(folder)
    targets = [out / name for name in demo_files()]
    own = _own_files(out)
    existing = [
        str(path) for path in targets if path.exists() and _stamp(path) != own.get(path.name)
    ]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more demo files)" if len(existing) > 1 else ""
        raise FileExistsError(
            f"{existing[0]} exists{more}; pass overwrite=True (--overwrite) or another folder"
        )
    out.mkdir(parents=True, exist_ok=True)
    report = DemoReport(out, SHAPE, SPACING)
    clock = _Clock(report)
    paths = dict(zip(demo_files(), targets, strict=True))

    def export() -> None:
        from fastseg.formats.nnunet import write_dataset_json
        from fastseg.formats.redbrick import write_taxonomy

        phantom = spine_phantom()
        write_taxonomy(phantom.schema, paths["taxonomy.json"])
        phantom.segment_map.save(paths["segmentMap.json"])
        save(paths["instances.nii.gz"], phantom.instances, affine=phantom.affine)
        write_dataset_json(
            phantom.schema, paths["dataset.json"], base={"channel_names": {"0": "CT"}}
        )

    clock.step("phantom and its RedBrick export", export)
    schema = Schema.load(paths["taxonomy.json"])
    segment_map = SegmentMap.load(paths["segmentMap.json"], schema=schema)

    def semantic_step() -> Any:
        image = load(paths["instances.nii.gz"])
        save(paths["semantic.nii.gz"], to_semantic(image.labels, segment_map, schema), like=image)
        return image

    image = clock.step("instance -> semantic", semantic_step)

    def instances_step() -> SegmentMap:
        semantic = load(paths["semantic.nii.gz"])
        recovered, found = to_instances(semantic.labels, schema)
        save(paths["instances_from_semantic.nii.gz"], recovered, like=semantic)
        found.save(paths["instances_from_semantic.segmentMap.json"])
        return found

    recovered = clock.step("semantic -> instances", instances_step)

    def stats_step() -> None:
        _write_named_stats(
            paths["stats.csv"], stats(image.labels, affine=image.affine), segment_map, schema
        )

    clock.step("statistics in mm", stats_step)

    def cleanup_step() -> tuple[SegmentMap, Any]:
        clean = largest_k(image.labels, 1)
        save(paths["instances_clean.nii.gz"], clean, like=image)
        semantic = to_semantic(clean, segment_map, schema)
        save(paths["semantic_clean.nii.gz"], semantic, like=image)
        report.removed_voxels = int(np.count_nonzero(image.labels)) - int(np.count_nonzero(clean))
        return to_instances(semantic, schema)[1], stats(clean, affine=image.affine)

    after, table = clock.step("cleanup", cleanup_step)
    volumes: dict[str, float] = {}
    for ident, volume in zip(table.ids.tolist(), table.volume.tolist(), strict=True):
        name = segment_map[ident].resolve(schema).name
        volumes[name] = volumes.get(name, 0.0) + volume
    report.categories = [
        CategorySummary(
            category.name,
            _count(segment_map, schema, category.name),
            _count(recovered, schema, category.name),
            _count(after, schema, category.name),
            volumes.get(category.name, 0.0),
        )
        for category in schema
    ]
    report.files = targets
    _record_own_files(out, targets)
    return report


# Which files of a folder the demo wrote, so that running it again replaces them.
_RECORD = ".fastseg-demo.json"


def _stamp(path: Path) -> list[int]:
    status = path.stat()
    return [status.st_size, status.st_mtime_ns]


def _own_files(folder: Path) -> dict[str, list[int]]:
    import json

    try:
        recorded = json.loads((folder / _RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def _record_own_files(folder: Path, paths: list[Path]) -> None:
    import json

    from fastseg._files import atomic_path

    with atomic_path(folder / _RECORD) as temporary:
        Path(temporary).write_text(json.dumps({p.name: _stamp(p) for p in paths}))


def _count(segment_map: SegmentMap, schema: Schema, name: str) -> int:
    """How many instances of ``segment_map`` belong to the category ``name``."""
    return sum(1 for _, segment in segment_map.items() if segment.resolve(schema).name == name)

"""Time fastseg against its anchor libraries on real data and print a markdown table.

    python benchmarks/report.py [--repeat N] [--only NAME ...] [--threads N]

Every row runs fastseg and its anchor in the same process on the same input: one warm-up
call of each (numba compilation, lazily built inputs), a check that both give the same
result, then ``--repeat`` timed calls of each, interleaved (fastseg first on even runs,
the anchor first on odd ones) so that load from other processes on a shared machine hits
both alike. The table shows medians. The table goes to stdout, progress to stderr.

Rows live in :func:`build_rows`: a list of :class:`Row`, each a fastseg callable, an anchor
callable, a target ratio and optionally a check. A row whose data file is missing or whose
anchor library is not importable is printed as ``skipped: <reason>``.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
import importlib
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import numpy as np
from paths import ROOT, SHARED_DATA

import fastseg

if __name__ == "__main__":
    # Row modules import this file as "report": one module, so that their Skip is ours.
    sys.modules.setdefault("report", sys.modules[__name__])

DEFAULT_REPEAT = 7

T = TypeVar("T")


class Skip(Exception):
    """A row cannot run on this machine; the message says why."""


# -- inputs -------------------------------------------------------------------------------


class Volumes:
    """Label volumes by name (``"connectomics"`` is ``connectomics.nii.gz``), loaded once on
    first use, plus inputs derived from them (built once, on first use, outside timing)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._volumes: dict[str, np.ndarray] = {}
        self._derived: dict[str, Any] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._volumes:
            path = self.folder / f"{name}.nii.gz"
            if not path.is_file():
                raise Skip(f"data file {path} is missing")
            nibabel = anchor_module("nibabel")
            started = time.perf_counter()
            # As nibabel hands it out: Fortran order, no copy into C order.
            self._volumes[name] = np.asanyarray(nibabel.load(path).dataobj)
            progress(f"loaded {path.name} in {time.perf_counter() - started:.1f} s")
        return self._volumes[name]

    def forget(self, name: str) -> None:
        """Drop the derived input ``name`` (if built), to free its memory."""
        self._derived.pop(name, None)

    def derived(self, name: str, build: Callable[[], T]) -> T:
        """The input called ``name``, built by ``build()`` the first time it is asked for."""
        if name not in self._derived:
            self._derived[name] = build()
        value: T = self._derived[name]
        return value

    def describe(self) -> list[str]:
        """One line per volume loaded so far."""
        lines = []
        for name, volume in self._volumes.items():
            order = "F" if volume.flags.f_contiguous and not volume.flags.c_contiguous else "C"
            shape = "x".join(str(n) for n in volume.shape)
            lines.append(f"{name}.nii.gz {shape} {volume.dtype}, {order} order")
        return lines


@functools.cache
def anchor_module(name: str) -> ModuleType:
    """Import ``name`` (cached); raises :class:`Skip` when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise Skip(f"{name} is not importable ({error})") from None


# -- checks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """Whether fastseg's result matches the anchor's, and what exactly was compared."""

    same: bool
    detail: str


Check = Callable[[Any, Any], Verdict]


def _dtypes(fast: np.ndarray, anchor: np.ndarray, against: str = "anchor") -> str:
    if fast.dtype == anchor.dtype:
        return f"both {fast.dtype}"
    return f"fastseg {fast.dtype}, {against} {anchor.dtype}"


def same_values(fast: np.ndarray, anchor: np.ndarray, *, against: str = "anchor") -> Verdict:
    """Same shape and element values (the dtypes may differ)."""
    if fast.shape != anchor.shape:
        return Verdict(False, f"shapes differ: fastseg {fast.shape}, {against} {anchor.shape}")
    dtypes = _dtypes(fast, anchor, against)
    if not np.array_equal(fast, anchor):
        differing = int(np.count_nonzero(fast != anchor))
        return Verdict(False, f"{differing} elements differ ({dtypes})")
    return Verdict(True, f"equal values ({dtypes})")


def same_counts(
    fast: tuple[np.ndarray, np.ndarray], anchor: tuple[np.ndarray, np.ndarray]
) -> Verdict:
    """``unique(..., return_counts=True)`` results: same values and same counts."""
    values, counts = same_values(fast[0], anchor[0]), same_values(fast[1], anchor[1])
    if not values.same:
        return Verdict(False, f"values: {values.detail}")
    if not counts.same:
        return Verdict(False, f"counts: {counts.detail}")
    return Verdict(
        True, f"{fast[0].size} equal values and counts (counts {_dtypes(fast[1], anchor[1])})"
    )


def same_relabeling(
    fast: tuple[np.ndarray, dict[int, int]], anchor: tuple[np.ndarray, dict[int, int]]
) -> Verdict:
    """``renumber`` results: the same old ids, the same set of new ids, and the same voxels
    under each old id; the order in which new ids are handed out may differ."""
    (labels, mapping), (anchor_labels, anchor_mapping) = fast, anchor
    if mapping.keys() != anchor_mapping.keys():
        return Verdict(False, "the mappings cover different old ids")
    if sorted(mapping.values()) != sorted(anchor_mapping.values()):
        return Verdict(False, "the new ids differ")
    # fastseg's new id -> the anchor's new id for the same old id.
    translate = np.zeros(max(mapping.values()) + 1, dtype=anchor_labels.dtype)
    translate[list(mapping.values())] = [anchor_mapping[old] for old in mapping]
    translated = same_values(translate[labels], anchor_labels)
    if not translated.same:
        return Verdict(False, f"relabeled volumes differ: {translated.detail}")
    if mapping == anchor_mapping:
        return Verdict(True, f"identical volumes and mappings ({_dtypes(labels, anchor_labels)})")
    ascending = list(mapping.values()) == sorted(mapping.values())
    return Verdict(
        True,
        f"same {len(mapping)} old ids, new ids and voxels per id "
        f"({_dtypes(labels, anchor_labels)}); new ids handed out in a different order "
        f"(fastseg: {'ascending old ids' if ascending else 'not ascending!'})",
    )


def same_partition(fast: fastseg.Components, anchor: np.ndarray) -> Verdict:
    """Connected components: the same voxels grouped together, whatever the numbering."""
    labels = fast.labels
    if labels.shape != anchor.shape:
        return Verdict(False, f"shapes differ: fastseg {labels.shape}, anchor {anchor.shape}")
    n_anchor = int(anchor.max())
    pairs = fastseg.unique(labels.astype(np.uint64) * np.uint64(n_anchor + 1) + anchor)
    one_to_one = pairs.size == fast.count + 1 == n_anchor + 1
    detail = f"{fast.count} components (anchor {n_anchor}), {pairs.size} distinct id pairs"
    return Verdict(one_to_one, ("same partition: " if one_to_one else "") + detail)


# -- rows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the table: fastseg against an anchor on the same input.

    The callables take no arguments and fetch their inputs from :class:`Volumes` (a dict
    lookup, nothing next to the work timed). ``check(fastseg result, anchor result)`` runs
    once, after the warm-up calls; ``None`` when the two results are not comparable.
    ``max_repeat`` caps the timed runs of rows too slow for ``--repeat``. ``setup``, when
    given, runs first, untimed: it builds the inputs and warms both libraries up on
    something small, so that no full call is spent on warming up: the first calls are
    timed, and checked. ``memory``, when
    given, measures the peak memory of one call elsewhere (in a process of its own)
    instead of in this process: ``memory("fastseg")`` and ``memory("anchor")`` return
    bytes, or None where that cannot be measured.
    """

    name: str
    fastseg: Callable[[], object]
    anchor_name: str
    anchor: Callable[[], object]
    target: float
    check: Check | None = None
    max_repeat: int | None = None
    setup: Callable[[], object] | None = None
    memory: Callable[[str], int | None] | None = None


def _id_mapping(volumes: Volumes) -> dict[int, int]:
    """Every id of the connectomics volume -> its index among the sorted ids (0 -> 0)."""

    def build() -> dict[int, int]:
        ids = anchor_module("fastremap").unique(volumes["connectomics"])
        return {int(old): new for new, old in enumerate(ids)}

    return volumes.derived("connectomics id -> index", build)


def _renumbered(volumes: Volumes) -> np.ndarray:
    """The connectomics volume renumbered to 0..2523, uint32, in the source's F order."""

    def build() -> np.ndarray:
        relabeled, _ = fastseg.renumber(volumes["connectomics"], out_dtype=np.uint32)
        if not relabeled.flags.f_contiguous:
            raise RuntimeError("fastseg.renumber did not keep the volume's Fortran order")
        return relabeled

    return volumes.derived("connectomics renumbered", build)


def _reversing_table(volumes: Volumes) -> np.ndarray:
    """A lookup array reversing the renumbered ids: i -> n - i."""

    def build() -> np.ndarray:
        size = int(_renumbered(volumes).max()) + 1
        table: np.ndarray = np.arange(size, dtype=np.uint32)[::-1].copy()
        return table

    return volumes.derived("reversing table", build)


def _components(volumes: Volumes) -> np.ndarray:
    """The 26-connected component map of connectomics (3,619 ids, uint16, F order)."""
    return volumes.derived(
        "connectomics components", lambda: fastseg.label(volumes["connectomics"]).labels
    )


# The builders and SimpleITK measurements below are plain functions of their inputs, so
# that the pytest-benchmark suites (benchmarks/conftest.py) build and time the same things.


def ct_like_case() -> tuple[np.ndarray, np.ndarray]:
    """A CT-sized synthetic case: 500 x 400 x 240 labels with 40 ids in blocky organs, and
    an int16 image, both in Fortran order as nibabel gives them."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 41, (25, 20, 12), dtype=np.uint8)
    labels = np.asfortranarray(coarse.repeat(20, 0).repeat(20, 1).repeat(20, 2))
    noise = rng.normal(0, 30, labels.shape).astype(np.int16)
    image = np.asfortranarray(noise + labels.astype(np.int16) * 25)
    return labels, image


def sitk_images(sitk: ModuleType, labels: np.ndarray, image: np.ndarray) -> tuple[Any, Any]:
    """``labels`` and ``image`` as SimpleITK images (``sitk`` is the SimpleITK module)."""
    return sitk.GetImageFromArray(labels), sitk.GetImageFromArray(image)


def sitk_intensity(sitk: ModuleType, labels: Any, image: Any) -> Any:
    """SimpleITK's LabelIntensityStatistics of two SimpleITK images."""
    measure = sitk.LabelIntensityStatisticsImageFilter()
    measure.Execute(labels, image)
    return measure


def sitk_shape(sitk: ModuleType, labels: Any) -> Any:
    """SimpleITK's LabelShapeStatistics of a SimpleITK label image, without perimeters."""
    measure = sitk.LabelShapeStatisticsImageFilter()
    measure.ComputePerimeterOff()
    measure.Execute(labels)
    return measure


def _ct_like(volumes: Volumes) -> tuple[np.ndarray, np.ndarray]:
    """The CT-like case of :func:`ct_like_case`, built once."""
    return volumes.derived("ct-like", ct_like_case)


def _sitk_images(volumes: Volumes) -> tuple[Any, Any]:
    """The CT-like case as SimpleITK images (converted once, outside the timing)."""
    return volumes.derived(
        "ct-like sitk", lambda: sitk_images(anchor_module("SimpleITK"), *_ct_like(volumes))
    )


@dataclass(frozen=True)
class ExportCase:
    """An instance-map NIfTI file of the CT-like case with its RedBrick-style mapping:
    40 instances, one category each, classIds shuffled (semantic value = classId + 1)."""

    folder: Path
    instances: Path
    schema: fastseg.Schema
    segment_map: fastseg.SegmentMap
    redbrick_labels: list[dict[str, Any]]


def _export_case(volumes: Volumes) -> ExportCase:
    def build() -> ExportCase:
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="fastseg-bench-"))
        labels, _ = _ct_like(volumes)
        instances = folder / "instances.nii.gz"
        fastseg.save(instances, labels, affine=np.diag([0.8, 0.8, 1.5, 1.0]))
        class_ids = np.random.default_rng(1).permutation(40)
        schema = fastseg.Schema(
            fastseg.Category(f"organ {i}", int(class_ids[i - 1]) + 1) for i in range(1, 41)
        )
        segments = fastseg.SegmentMap({i: fastseg.Segment(f"organ {i}") for i in range(1, 41)})
        redbrick = [
            {"classid": int(class_ids[i - 1]), "dicom": {"instanceid": i, "groupids": []}}
            for i in range(1, 41)
        ]
        # The same case as a RedBrick export folder, for fastseg's export functions.
        series = {
            "name": "ct",
            "segmentations": "instances.nii.gz",
            "segmentMap": {str(i): f"organ {i}" for i in range(1, 41)},
        }
        tasks = [{"taskId": "task-1", "name": "case", "series": [series]}]
        (folder / "tasks.json").write_text(json.dumps(tasks))
        return ExportCase(folder, instances, schema, segments, redbrick)

    return volumes.derived("export case", build)


def fastseg_semantic_file(case: ExportCase) -> Path:
    """Instance file -> semantic file with fastseg."""
    image = fastseg.load(case.instances)
    target = case.folder / "fastseg-semantic.nii.gz"
    fastseg.save(
        target, fastseg.to_semantic(image.labels, case.segment_map, case.schema), like=image
    )
    return target


def redbrick_semantic_file(case: ExportCase) -> Path:
    """Instance file -> semantic file with the RedBrick SDK, which converts in place: the
    input is copied first (well under 1 % of the time)."""
    nifti = anchor_module("redbrick.utils.nifti")
    target = case.folder / "redbrick-semantic.nii.gz"
    shutil.copyfile(case.instances, target)
    labels = [dict(label) for label in case.redbrick_labels]
    nifti.convert_to_semantic([str(target)], labels, str(case.folder), False)
    return target


def fastseg_binary_files(case: ExportCase) -> Path:
    """Export folder -> one uint8 mask file per instance (the binary layout), with fastseg."""
    from fastseg.formats.redbrick_export import read_export, write_binary_export

    out = case.folder / "fastseg-binary"
    write_binary_export(read_export(case.folder, schema=case.schema), out)
    return out / "segmentations" / "case" / "ct"


def redbrick_binary_files(case: ExportCase) -> Path:
    """Instance file -> one mask file per instance, with the RedBrick SDK."""
    nifti = anchor_module("redbrick.utils.nifti")
    folder = case.folder / "redbrick-binary"
    folder.mkdir(exist_ok=True)
    labels = [dict(label) for label in case.redbrick_labels]
    nifti.convert_to_binary(str(case.instances), labels, str(folder))
    return folder


def same_mask_files(fast: Path, anchor: Path) -> Verdict:
    names = sorted(p.name for p in fast.iterdir())
    if names != sorted(p.name for p in anchor.iterdir()):
        return Verdict(False, "different files written")
    for name in names:
        verdict = same_nifti_values(fast / name, anchor / name)
        if not verdict.same:
            return Verdict(False, f"{name}: {verdict.detail}")
    return Verdict(True, f"{len(names)} mask files with equal values")


def same_nifti_values(fast: Path, anchor: Path) -> Verdict:
    nibabel = anchor_module("nibabel")
    return same_values(
        np.asanyarray(nibabel.load(fast).dataobj), np.asanyarray(nibabel.load(anchor).dataobj)
    )


def same_statistics(fast: fastseg.InstanceStats, anchor: dict[str, Any]) -> Verdict:
    """fastseg.stats against cc3d.statistics: counts, centroids and boxes per id."""
    present = anchor["voxel_counts"][1:] > 0
    counts = same_values(fast.voxel_count, anchor["voxel_counts"][1:][present])
    if not counts.same:
        return Verdict(False, f"voxel counts: {counts.detail}")
    if not np.allclose(fast.centroid, np.asarray(anchor["centroids"])[1:][present]):
        return Verdict(False, "centroids differ")
    boxes = [box for box, keep in zip(anchor["bounding_boxes"][1:], present, strict=True) if keep]
    if any(fast.slices(int(k)) != box for k, box in zip(fast.ids, boxes, strict=True)):
        return Verdict(False, "bounding boxes differ")
    return Verdict(True, f"{len(fast)} ids: equal counts, centroids and boxes")


def _sitk_intensity(volumes: Volumes) -> Any:
    return sitk_intensity(anchor_module("SimpleITK"), *_sitk_images(volumes))


def _sitk_shape(volumes: Volumes) -> Any:
    return sitk_shape(anchor_module("SimpleITK"), _sitk_images(volumes)[0])


def same_intensity(fast: fastseg.InstanceStats, anchor: Any) -> Verdict:
    """fastseg.stats with an image against SimpleITK's LabelIntensityStatistics."""
    ids = [int(k) for k in anchor.GetLabels()]
    if ids != fast.ids.tolist():
        return Verdict(False, "different ids")
    assert fast.mean is not None
    assert fast.std is not None
    means = np.array([anchor.GetMean(k) for k in ids])
    stds = np.array([anchor.GetStandardDeviation(k) for k in ids])
    if not (np.allclose(fast.mean, means, rtol=1e-9) and np.allclose(fast.std, stds, rtol=1e-9)):
        return Verdict(False, "means or standard deviations differ")
    return Verdict(True, f"{len(ids)} ids: equal means and standard deviations (rtol 1e-9)")


def same_shape(fast: fastseg.InstanceStats, anchor: Any) -> Verdict:
    """fastseg.stats against SimpleITK's LabelShapeStatistics: counts per id."""
    ids = [int(k) for k in anchor.GetLabels()]
    counts = [anchor.GetNumberOfPixels(k) for k in ids]
    same = ids == fast.ids.tolist() and counts == fast.voxel_count.tolist()
    return Verdict(same, f"{len(ids)} ids, {'equal' if same else 'different'} voxel counts")


# Modules beside this script that contribute rows of their own, each through a
# ``rows(v: Volumes) -> list[Row]`` function; their rows follow the core ones, in this order.
ROW_MODULES: tuple[str, ...] = (
    "cleanup_rows", "dask_rows", "loader_rows", "evaluate_rows", "sampling_rows",
)  # fmt: skip
# Rows on generated 2 GiB volumes, run only with --gigavoxel (minutes, and several GiB).
GIGAVOXEL_MODULE = "gigavoxel_rows"


def build_rows(v: Volumes, *, gigavoxel: bool = False) -> list[Row]:
    """The rows of the table, in order: the core rows, then those of :data:`ROW_MODULES`,
    then with ``gigavoxel`` those of :data:`GIGAVOXEL_MODULE`."""
    rows = core_rows(v)
    for name in ROW_MODULES + ((GIGAVOXEL_MODULE,) if gigavoxel else ()):
        rows.extend(importlib.import_module(name).rows(v))
    return rows


def _torso_with_holes(volumes: Volumes) -> np.ndarray:
    """The torso labels with 2% of the voxels of every organ cleared in specks, so that
    every organ has holes to fill (real maps have few, but the work is the same)."""

    def build() -> np.ndarray:
        labels = volumes["torso_labels"].copy(order="K")
        rng = np.random.default_rng(0)
        specks = (rng.random(labels.shape) < 0.02) & (labels != 0)
        labels[specks] = 0
        return labels

    return volumes.derived("torso_with_holes", build)


def scipy_fill_holes_per_label(labels: np.ndarray) -> np.ndarray:
    """What scripts write today: ``binary_fill_holes`` of every label's mask in turn,
    filling only background."""
    ndimage = anchor_module("scipy.ndimage")
    out = labels.copy(order="K")
    for value in np.unique(labels)[1:]:
        mask = labels == value
        out[ndimage.binary_fill_holes(mask) & (labels == 0)] = value
    return out


def core_rows(v: Volumes) -> list[Row]:
    """Relabel, label, statistics and export rows. Append a row in a few lines: its callables
    fetch their inputs from ``v`` and their anchor library through :func:`anchor_module`."""

    def fastremap() -> Any:
        return anchor_module("fastremap")

    def cc3d() -> Any:
        return anchor_module("cc3d")

    def check_table(fast: np.ndarray, _copy: object) -> Verdict:
        # The anchor (a copy) is not comparable; check against numpy's fancy indexing.
        return same_values(fast, _reversing_table(v)[_renumbered(v)], against="numpy table[labels]")

    return [
        Row(
            "unique(return_counts=True)",
            lambda: fastseg.unique(v["connectomics"], return_counts=True),
            "fastremap.unique",
            lambda: fastremap().unique(v["connectomics"], return_counts=True),
            target=0.5,
            check=same_counts,
        ),
        Row(
            "remap(dict of all ids)",
            lambda: fastseg.remap(v["connectomics"], _id_mapping(v)),
            "fastremap.remap",
            lambda: fastremap().remap(
                v["connectomics"], _id_mapping(v), preserve_missing_labels=True
            ),
            target=0.5,
            check=same_values,
        ),
        Row(
            "renumber",
            lambda: fastseg.renumber(v["connectomics"]),
            "fastremap.renumber",
            lambda: fastremap().renumber(v["connectomics"]),
            target=0.5,
            check=same_relabeling,
        ),
        *(
            Row(
                f"label {connectivity}-connected{'' if threads is None else ', threads=1'}",
                functools.partial(
                    fastseg.label, v["connectomics"], connectivity=connectivity, threads=threads
                ),
                "cc3d.connected_components",
                functools.partial(
                    lambda c: cc3d().connected_components(v["connectomics"], connectivity=c),
                    connectivity,
                ),
                target=0.5 if threads is None else 1.0,
                check=same_partition,
            )
            for connectivity in (26, 6)
            for threads in (None, 1)
        ),
        Row(
            "stats: count, box, centroid of the 26-connected components",
            lambda: fastseg.stats(_components(v)),
            "cc3d.statistics",
            lambda: cc3d().statistics(_components(v)),
            target=0.33,
            check=same_statistics,
        ),
        Row(
            "stats with an int16 image, CT-sized synthetic (500x400x240, 40 ids)",
            lambda: fastseg.stats(_ct_like(v)[0], _ct_like(v)[1]),
            "SimpleITK LabelIntensityStatistics",
            lambda: _sitk_intensity(v),
            target=0.2,
            check=same_intensity,
        ),
        Row(
            "stats, shape only, CT-sized synthetic",
            lambda: fastseg.stats(_ct_like(v)[0]),
            "SimpleITK LabelShapeStatistics (no perimeter)",
            lambda: _sitk_shape(v),
            target=1.0,
            check=same_shape,
        ),
        Row(
            "instance -> semantic NIfTI file, CT-sized synthetic (40 instances)",
            lambda: fastseg_semantic_file(_export_case(v)),
            "redbrick-sdk convert_to_semantic",
            lambda: redbrick_semantic_file(_export_case(v)),
            target=0.2,
            check=same_nifti_values,
        ),
        Row(
            "binary masks: one NIfTI file per instance, CT-sized synthetic (40 instances)",
            lambda: fastseg_binary_files(_export_case(v)),
            "redbrick-sdk convert_to_binary",
            lambda: redbrick_binary_files(_export_case(v)),
            target=0.33,
            check=same_mask_files,
        ),
        Row(
            "fill_holes per label, torso labels with specks cleared (12 labels)",
            lambda: fastseg.fill_holes(_torso_with_holes(v)),
            "scipy binary_fill_holes per label",
            lambda: scipy_fill_holes_per_label(_torso_with_holes(v)),
            target=0.2,
            check=same_values,
        ),
        Row(
            "remap(lookup array), uint32 0..2523",
            lambda: fastseg.remap(_renumbered(v), _reversing_table(v)),
            "ndarray.copy",
            lambda: _renumbered(v).copy(order="K"),
            target=2.0,
            check=check_table,
        ),
    ]


# -- timing -------------------------------------------------------------------------------


@dataclass
class Result:
    """What one row measured, or why it was skipped."""

    row: Row
    skipped: str | None = None
    failed: str | None = None
    verdict: Verdict | None = None
    fastseg_times: list[float] = field(default_factory=list)
    anchor_times: list[float] = field(default_factory=list)
    fastseg_memory: int | None = None
    anchor_memory: int | None = None

    @property
    def fastseg_median(self) -> float:
        return statistics.median(self.fastseg_times)

    @property
    def anchor_median(self) -> float:
        return statistics.median(self.anchor_times)

    @property
    def ratio(self) -> float:
        return self.fastseg_median / self.anchor_median


def time_once(func: Callable[[], object]) -> float:
    """Seconds one call takes; the result is freed after the clock stops."""
    gc.collect()
    started = time.perf_counter()
    result = func()
    elapsed = time.perf_counter() - started
    del result
    return elapsed


def peak_memory(func: Callable[[], object]) -> int | None:
    """Bytes by which one call raises the process's resident memory at its peak.

    Linux resets the peak (VmHWM) when "5" is written to /proc/self/clear_refs, so this
    catches allocations that numba and the anchors make outside Python's tracking.
    Returns None where that is not available.
    """
    status = Path("/proc/self/status")

    def field(name: str) -> int:
        for line in status.read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(name)

    gc.collect()
    try:
        before = field("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")
    except (OSError, KeyError):
        return None
    result = func()
    peak = field("VmHWM")
    del result
    return peak - before


def _timed(func: Callable[[], T]) -> tuple[T, float]:
    gc.collect()
    started = time.perf_counter()
    result = func()
    return result, time.perf_counter() - started


def run_row(row: Row, repeat: int) -> Result:
    progress(f"{row.name}: {'set-up, first calls' if row.setup else 'warm-up'} and check")
    fastseg_times: list[float] = []
    anchor_times: list[float] = []
    try:
        if row.setup is not None:
            row.setup()
        fast, seconds = _timed(row.fastseg)
        fastseg_times.append(seconds)
    except Skip as reason:
        return Result(row, skipped=str(reason))
    except Exception as error:
        # Report the other rows rather than losing the whole run to one failure.
        traceback.print_exc()
        return Result(row, failed=f"fastseg raised {type(error).__name__}: {error}")
    try:
        anchor, seconds = _timed(row.anchor)
        anchor_times.append(seconds)
    except Skip as reason:
        return Result(row, skipped=str(reason))
    verdict = row.check(fast, anchor) if row.check is not None else None
    del fast, anchor
    result = Result(row, verdict=verdict)
    if row.setup is not None:
        # The first calls ran warm: they count.
        result.fastseg_times, result.anchor_times = fastseg_times, anchor_times
        repeat -= 1
    if row.max_repeat is not None:
        repeat = min(repeat, row.max_repeat - len(result.fastseg_times))
    for run in range(repeat):
        pairs = [(row.fastseg, result.fastseg_times), (row.anchor, result.anchor_times)]
        for func, times in pairs if run % 2 == 0 else reversed(pairs):
            times.append(time_once(func))
    if row.memory is not None:
        progress(f"{row.name}: peak memory, one process per library")
        result.fastseg_memory = row.memory("fastseg")
        result.anchor_memory = row.memory("anchor")
    else:
        result.fastseg_memory = peak_memory(row.fastseg)
        result.anchor_memory = peak_memory(row.anchor)
    # Everything the table will show, so that a run that dies later loses nothing.
    progress(
        f"{row.name}: fastseg {format_seconds(result.fastseg_median)}, "
        f"{row.anchor_name} {format_seconds(result.anchor_median)}; peak memory "
        f"{format_bytes(result.fastseg_memory)} / {format_bytes(result.anchor_memory)}; "
        f"{'not checked' if verdict is None else verdict.detail}"
    )
    return result


# -- report -------------------------------------------------------------------------------


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def format_seconds(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 0.01:
        return f"{seconds * 1e3:.0f} ms"
    return f"{seconds * 1e3:.2f} ms"


def format_bytes(size: int | None) -> str:
    return "n/a" if size is None else f"{size / 2**20:.0f} MB"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def git_revision() -> str:
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}{' with local changes' if dirty else ''}"


def version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# The anchors' distributions, as the header names them.
ANCHORS: tuple[tuple[str, str], ...] = (
    ("cc3d", "connected-components-3d"),
    ("fastremap", "fastremap"),
    ("SimpleITK", "SimpleITK"),
    ("scipy", "scipy"),
    ("scikit-image", "scikit-image"),
    ("MONAI", "monai"),
    ("TorchIO", "torchio"),
    ("dask", "dask"),
    ("dask-image", "dask-image"),
    ("redbrick-sdk", "redbrick-sdk"),
    ("nibabel", "nibabel"),
)


def header(numba: Any, repeat: int) -> list[str]:
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cores = f"{os.cpu_count()} cores"
    if available is not None and available != os.cpu_count():
        cores += f" ({available} available to this process)"
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    return [
        "### fastseg against its anchors",
        "",
        f"- date: {now}",
        f"- machine: {cpu_model()}, {cores}, {platform.system()} {platform.release()}",
        f"- numba threads: {numba.get_num_threads()} (pool size {numba.config.NUMBA_NUM_THREADS})"
        "; the anchors run single-threaded",
        f"- versions: Python {platform.python_version()}, numpy {np.__version__}, "
        f"numba {numba.__version__}, fastseg {fastseg.__version__} (git {git_revision()})",
        "- anchor versions: "
        + ", ".join(f"{name} {version(distribution)}" for name, distribution in ANCHORS),
        f"- timing: median of {repeat} runs after a warm-up call, fastseg and anchor "
        "interleaved, time.perf_counter",
        "- peak memory: how far one call raises the process's peak resident memory above "
        "what it held before (VmHWM reset through /proc/self/clear_refs); the output counts",
    ]


def table(results: Sequence[Result]) -> list[str]:
    lines = [
        "| operation | fastseg median | anchor | anchor median | ratio (fastseg/anchor) | target "
        "| peak memory fastseg / anchor |",
        "|---|---:|---|---:|---:|---|---:|",
    ]
    for result in results:
        row = result.row
        target = f"<= {row.target:g}"
        if result.skipped is not None or result.failed is not None:
            why = f"skipped: {result.skipped}" if result.skipped is not None else result.failed
            cells = [row.name, str(why), row.anchor_name, "-", "-", target, "-"]
        else:
            met = "met" if result.ratio <= row.target else "missed"
            ratio = f"{result.ratio:.2f}"
            if result.verdict is not None and not result.verdict.same:
                ratio += " (results differ!)"
            cells = [
                row.name,
                format_seconds(result.fastseg_median),
                row.anchor_name,
                format_seconds(result.anchor_median),
                ratio,
                f"{target}: {met}",
                f"{format_bytes(result.fastseg_memory)} / {format_bytes(result.anchor_memory)}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def details(results: Sequence[Result]) -> list[str]:
    lines: list[str] = []
    for result in results:
        if result.skipped is not None or result.failed is not None:
            continue
        if result.verdict is None:
            check = "not comparable, not checked"
        else:
            check = ("same result: " if result.verdict.same else "RESULTS DIFFER: ") + (
                result.verdict.detail
            )
        spread = (
            f"fastseg {format_seconds(min(result.fastseg_times))}-"
            f"{format_seconds(max(result.fastseg_times))}, {result.row.anchor_name} "
            f"{format_seconds(min(result.anchor_times))}-"
            f"{format_seconds(max(result.anchor_times))}"
        )
        lines.append(f"- {result.row.name}: {check}; {spread}")
    if not lines:
        return []
    return ["", "Checks before timing, and the spread of the timed runs (min-max):", "", *lines]


def select(rows: Sequence[Row], names: Sequence[str] | None) -> list[Row]:
    """Rows whose operation contains one of ``names`` (case-insensitive), or all."""
    if not names:
        return list(rows)
    for name in names:
        if not any(name.lower() in row.name.lower() for row in rows):
            choices = ", ".join(repr(row.name) for row in rows)
            raise SystemExit(f"--only {name!r} matches no row; the rows are {choices}")
    return [row for row in rows if any(name.lower() in row.name.lower() for name in names)]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeat",
        type=int,
        default=DEFAULT_REPEAT,
        metavar="N",
        help="timed runs per library and row; the table shows their median "
        f"(default {DEFAULT_REPEAT})",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="run only the rows whose operation contains one of these (case-insensitive), "
        "e.g. --only unique renumber",
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="numba threads for fastseg (default: numba's default, NUMBA_NUM_THREADS)",
    )
    parser.add_argument(
        "--gigavoxel",
        action="store_true",
        help="add the rows on two generated 1024x1024x512 uint32 volumes (2 GiB each; "
        "about half an hour, up to about 8 GiB of memory)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=SHARED_DATA,
        help=f"folder with the label volumes (default {SHARED_DATA})",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    numba: Any = importlib.import_module("numba")  # untyped

    if args.threads is not None:
        pool = int(numba.config.NUMBA_NUM_THREADS)
        if not 1 <= args.threads <= pool:
            raise SystemExit(
                f"--threads must be between 1 and {pool} (numba's pool size; "
                "raise it with NUMBA_NUM_THREADS)"
            )
        numba.set_num_threads(args.threads)

    volumes = Volumes(args.data)
    rows = select(build_rows(volumes, gigavoxel=args.gigavoxel), args.only)
    results = [run_row(row, args.repeat) for row in rows]
    data = volumes.describe()
    lines = header(numba, args.repeat)
    if data:
        lines.append(f"- data ({args.data}): " + "; ".join(data))
    lines += ["", *table(results), *details(results)]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

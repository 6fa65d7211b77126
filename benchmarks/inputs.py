"""Inputs of the benchmark rows: the real volumes by name, loaded once, the inputs derived
from them and the CT-like synthetic case, each built once on first use, outside timing.

The builders of plain inputs (:func:`ct_like_case`, :func:`sitk_images`) are functions
of their arguments, so that the pytest-benchmark suites (``conftest.py``) build and time
the same things as the report.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import numpy as np
from harness import Skip, anchor_module, progress

import fastseg

T = TypeVar("T")


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


def ct_like(volumes: Volumes) -> tuple[np.ndarray, np.ndarray]:
    """The CT-like case of :func:`ct_like_case`, built once."""
    return volumes.derived("ct-like", ct_like_case)


def ct_like_sitk(volumes: Volumes) -> tuple[Any, Any]:
    """The CT-like case as SimpleITK images (converted once, outside the timing)."""
    return volumes.derived(
        "ct-like sitk", lambda: sitk_images(anchor_module("SimpleITK"), *ct_like(volumes))
    )


def id_mapping(volumes: Volumes) -> dict[int, int]:
    """Every id of the connectomics volume -> its index among the sorted ids (0 -> 0)."""

    def build() -> dict[int, int]:
        ids = anchor_module("fastremap").unique(volumes["connectomics"])
        return {int(old): new for new, old in enumerate(ids)}

    return volumes.derived("connectomics id -> index", build)


def renumbered(volumes: Volumes) -> np.ndarray:
    """The connectomics volume renumbered to 0..2523, uint32, in the source's F order."""

    def build() -> np.ndarray:
        relabeled, _ = fastseg.renumber(volumes["connectomics"], out_dtype=np.uint32)
        if not relabeled.flags.f_contiguous:
            raise RuntimeError("fastseg.renumber did not keep the volume's Fortran order")
        return relabeled

    return volumes.derived("connectomics renumbered", build)


def reversing_table(volumes: Volumes) -> np.ndarray:
    """A lookup array reversing the renumbered ids: i -> n - i."""

    def build() -> np.ndarray:
        size = int(renumbered(volumes).max()) + 1
        table: np.ndarray = np.arange(size, dtype=np.uint32)[::-1].copy()
        return table

    return volumes.derived("reversing table", build)


def components(volumes: Volumes) -> np.ndarray:
    """The 26-connected component map of connectomics (3,619 ids, uint16, F order)."""
    return volumes.derived(
        "connectomics components", lambda: fastseg.label(volumes["connectomics"]).labels
    )


def torso_with_holes(volumes: Volumes) -> np.ndarray:
    """The torso labels with 2% of the voxels of every organ cleared in specks, so that
    every organ has holes to fill (real maps have few, but the work is the same)."""

    def build() -> np.ndarray:
        labels = volumes["torso_labels"].copy(order="K")
        rng = np.random.default_rng(0)
        specks = (rng.random(labels.shape) < 0.02) & (labels != 0)
        labels[specks] = 0
        return labels

    return volumes.derived("torso_with_holes", build)


@dataclass(frozen=True)
class ExportCase:
    """An instance-map NIfTI file of the CT-like case with its RedBrick-style mapping:
    40 instances, one category each, classIds shuffled (semantic value = classId + 1)."""

    folder: Path
    instances: Path
    schema: fastseg.Schema
    segment_map: fastseg.SegmentMap
    redbrick_labels: list[dict[str, Any]]


def export_case(volumes: Volumes) -> ExportCase:
    def build() -> ExportCase:
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="fastseg-bench-"))
        labels, _ = ct_like(volumes)
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

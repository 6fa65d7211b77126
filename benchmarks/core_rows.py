"""The report's core rows: relabel (unique, remap, renumber), label, statistics, the
RedBrick export conversions and fill_holes, on the connectomics and torso volumes and the
CT-like synthetic case.

The SimpleITK measurements are plain functions of their inputs, so that the
pytest-benchmark suites (``test_bench_stats.py``) time the same calls.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from checks import (
    same_counts,
    same_intensity,
    same_mask_files,
    same_nifti_values,
    same_partition,
    same_relabeling,
    same_shape,
    same_statistics,
    same_values,
)
from harness import Row, Verdict, anchor_module
from inputs import (
    ExportCase,
    Volumes,
    components,
    ct_like,
    ct_like_sitk,
    export_case,
    id_mapping,
    renumbered,
    reversing_table,
    torso_with_holes,
)

import fastseg


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


def _sitk_intensity(volumes: Volumes) -> Any:
    return sitk_intensity(anchor_module("SimpleITK"), *ct_like_sitk(volumes))


def _sitk_shape(volumes: Volumes) -> Any:
    return sitk_shape(anchor_module("SimpleITK"), ct_like_sitk(volumes)[0])


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


def scipy_fill_holes_per_label(labels: np.ndarray) -> np.ndarray:
    """What scripts write today: ``binary_fill_holes`` of every label's mask in turn,
    filling only background."""
    ndimage = anchor_module("scipy.ndimage")
    out = labels.copy(order="K")
    for value in np.unique(labels)[1:]:
        mask = labels == value
        out[ndimage.binary_fill_holes(mask) & (labels == 0)] = value
    return out


def rows(v: Volumes) -> list[Row]:
    """Relabel, label, statistics and export rows. Append a row in a few lines: its callables
    fetch their inputs from ``v`` and their anchor library through :func:`anchor_module`."""

    def fastremap() -> Any:
        return anchor_module("fastremap")

    def cc3d() -> Any:
        return anchor_module("cc3d")

    def check_table(fast: np.ndarray, _copy: object) -> Verdict:
        # The anchor (a copy) is not comparable; check against numpy's fancy indexing.
        return same_values(fast, reversing_table(v)[renumbered(v)], against="numpy table[labels]")

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
            lambda: fastseg.remap(v["connectomics"], id_mapping(v)),
            "fastremap.remap",
            lambda: fastremap().remap(
                v["connectomics"], id_mapping(v), preserve_missing_labels=True
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
            lambda: fastseg.stats(components(v)),
            "cc3d.statistics",
            lambda: cc3d().statistics(components(v)),
            target=0.33,
            check=same_statistics,
        ),
        Row(
            "stats with an int16 image, CT-sized synthetic (500x400x240, 40 ids)",
            lambda: fastseg.stats(ct_like(v)[0], ct_like(v)[1]),
            "SimpleITK LabelIntensityStatistics",
            lambda: _sitk_intensity(v),
            target=0.2,
            check=same_intensity,
        ),
        Row(
            "stats, shape only, CT-sized synthetic",
            lambda: fastseg.stats(ct_like(v)[0]),
            "SimpleITK LabelShapeStatistics (no perimeter)",
            lambda: _sitk_shape(v),
            target=1.0,
            check=same_shape,
        ),
        Row(
            "instance -> semantic NIfTI file, CT-sized synthetic (40 instances)",
            lambda: fastseg_semantic_file(export_case(v)),
            "redbrick-sdk convert_to_semantic",
            lambda: redbrick_semantic_file(export_case(v)),
            target=0.2,
            check=same_nifti_values,
        ),
        Row(
            "binary masks: one NIfTI file per instance, CT-sized synthetic (40 instances)",
            lambda: fastseg_binary_files(export_case(v)),
            "redbrick-sdk convert_to_binary",
            lambda: redbrick_binary_files(export_case(v)),
            target=0.33,
            check=same_mask_files,
        ),
        Row(
            "fill_holes per label, torso labels with specks cleared (12 labels)",
            lambda: fastseg.fill_holes(torso_with_holes(v)),
            "scipy binary_fill_holes per label",
            lambda: scipy_fill_holes_per_label(torso_with_holes(v)),
            target=0.2,
            check=same_values,
        ),
        Row(
            "remap(lookup array), uint32 0..2523",
            lambda: fastseg.remap(renumbered(v), reversing_table(v)),
            "ndarray.copy",
            lambda: renumbered(v).copy(order="K"),
            target=2.0,
            check=check_table,
        ),
    ]

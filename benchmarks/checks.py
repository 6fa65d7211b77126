"""Checks of the benchmark rows: whether fastseg's result matches its anchor's, and a
:class:`~harness.Verdict` saying what exactly was compared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from harness import Verdict, anchor_module

import fastseg


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
    if 0 not in mapping and anchor_mapping.get(0) == 0:
        # fastremap keeps 0 -> 0 in its mapping even where no voxel is 0; fastseg's
        # mapping holds the ids present only.
        anchor_mapping = {old: new for old, new in anchor_mapping.items() if old != 0}
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

"""Report rows for class-balanced sampling, on the CT-sized synthetic case of ``inputs.py``
(500 x 400 x 240 uint8, 40 classes, Fortran order as nibabel gives it).

- ``fastseg.locations`` (10,000 locations per class) against MONAI's
  ``map_classes_to_indices``, which ``ClassesToIndices`` and ``RandCropByLabelClasses``
  run on every sample: index arrays of every voxel of every class;
- ``fastseg.locations(mode="nnunet")`` against nnU-Net v2's preprocessing
  (``DefaultPreprocessor._sample_foreground_locations``, nnunetv2 2.8.1), mirrored below
  because nnunetv2 is not a benchmark dependency;
- ``fastseg.load_index`` of the case's index file, alone, checked against the label
  file's header (shape and affine), and with every class's locations decoded (they are
  decoded when first asked for), against reading the label file it describes with
  nibabel (what a loader without an index reads).

The rows join the table of ``report.py`` through its ``ROW_MODULES``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from harness import Row, Verdict, anchor_module
from inputs import Volumes, ct_like

import fastseg


def nnunet_sample_foreground_locations(
    seg: np.ndarray,
    classes_or_regions: list[int],
    seed: int = 1234,
    min_num_samples: int = 10000,
    min_percent_coverage: float = 0.01,
) -> dict[Any, Any]:
    """nnU-Net v2.8.1's ``DefaultPreprocessor._sample_foreground_locations`` (Apache-2.0),
    verbatim but for the verbose flag and region handling (plain labels only)."""
    rndst = np.random.RandomState(seed)
    class_locs: dict[Any, Any] = {}
    requested_labels = {int(c) for c in classes_or_regions}
    requested_labels_arr = np.fromiter(requested_labels, dtype=np.int32)
    valid_mask = np.isin(seg, requested_labels_arr)
    coords = np.argwhere(valid_mask)
    seg_sel = seg[valid_mask]
    del valid_mask
    n = seg_sel.size
    if n == 0:
        return {int(c): [] for c in classes_or_regions}
    order = np.argsort(seg_sel, kind="stable")
    lab_sorted = seg_sel[order]
    coords_sorted = coords[order]
    change = np.flatnonzero(lab_sorted[1:] != lab_sorted[:-1]) + 1
    starts = np.r_[0, change]
    ends = np.r_[change, n]
    labels_present = lab_sorted[starts]
    label_to_range = {
        int(lab): (int(s), int(e)) for lab, s, e in zip(labels_present, starts, ends, strict=True)
    }
    for c in classes_or_regions:
        r = label_to_range.get(int(c))
        if r is None:
            class_locs[int(c)] = []
            continue
        s, e = r
        total = e - s
        target_num_samples = min(min_num_samples, total)
        target_num_samples = max(target_num_samples, int(np.ceil(total * min_percent_coverage)))
        offsets = rndst.choice(total, target_num_samples, replace=False)
        class_locs[int(c)] = coords_sorted[s + offsets]
    return class_locs


def _same_sample_sizes(fast: fastseg.Locations, anchor: dict[Any, Any], label: str) -> Verdict:
    sizes = {i: len(v) for i, v in fast.items()}
    anchor_sizes = {int(i): len(v) for i, v in anchor.items() if len(v)}
    if sizes != anchor_sizes:
        return Verdict(False, f"sample sizes differ from {label}'s")
    return Verdict(True, f"{len(sizes)} classes, the same sample size per class as {label}")


def rows(v: Volumes) -> list[Row]:
    def labels() -> np.ndarray:
        return ct_like(v)[0]

    def monai_indices() -> Any:
        utils = anchor_module("monai.transforms.utils")
        return utils.map_classes_to_indices(labels()[None], num_classes=41)

    def subsets_of_monais(fast: fastseg.Locations, anchor: Any) -> Verdict:
        volume = labels()
        for i, coords in fast.items():
            every = np.asarray(anchor[i])
            flat = np.ravel_multi_index(tuple(coords.T), volume.shape)
            if len(coords) != min(10_000, every.size):
                return Verdict(False, f"class {i}: {len(coords)} locations of {every.size}")
            if not np.isin(flat, every).all() or np.unique(flat).size != flat.size:
                return Verdict(False, f"class {i}: locations outside MONAI's indices or repeated")
        return Verdict(
            True, f"{len(fast)} classes: distinct locations among MONAI's indices, min(10000, n)"
        )

    def index_path() -> Path:
        def build() -> tuple[Path, Path]:
            folder = Path(tempfile.mkdtemp(prefix="fastseg-bench-index-"))
            label_file = folder / "labels.nii.gz"
            fastseg.save(label_file, labels(), affine=np.diag([0.8, 0.8, 1.5, 1.0]))
            index_file = folder / "index.fsidx"
            fastseg.write_index(index_file, label_file, mode="nnunet", seed=0)
            return label_file, index_file

        return v.derived("ct-like index", build)[1]

    def label_file() -> Path:
        index_path()
        return Path(str(index_path()).replace("index.fsidx", "labels.nii.gz"))

    def read_labels() -> np.ndarray:
        nibabel = anchor_module("nibabel")
        return np.asanyarray(nibabel.load(label_file()).dataobj)

    classes = list(range(1, 41))
    return [
        Row(
            "locations(per_class=10000), CT-sized synthetic (500x400x240, 40 classes)",
            lambda: fastseg.locations(labels(), seed=0),
            "MONAI map_classes_to_indices",
            monai_indices,
            target=0.05,
            check=subsets_of_monais,
        ),
        Row(
            "locations(per_class=10000), threads=1, CT-sized synthetic",
            lambda: fastseg.locations(labels(), seed=0, threads=1),
            "MONAI map_classes_to_indices",
            monai_indices,
            target=0.1,
            check=subsets_of_monais,
        ),
        Row(
            'locations(mode="nnunet"), CT-sized synthetic',
            lambda: fastseg.locations(labels(), mode="nnunet", seed=0),
            "nnU-Net v2 _sample_foreground_locations",
            lambda: nnunet_sample_foreground_locations(labels(), classes),
            target=0.1,
            check=lambda fast, anchor: _same_sample_sizes(fast, anchor, "nnU-Net"),
        ),
        Row(
            "load_index, CT-sized synthetic (nnU-Net sizes, 468,560 locations)",
            lambda: fastseg.load_index(index_path()),
            "nibabel: read the label file (.nii.gz)",
            read_labels,
            target=0.1,
        ),
        Row(
            "load_index(labels=<.nii.gz>): checked against the label file's header",
            lambda: fastseg.load_index(index_path(), labels=label_file()),
            "nibabel: read the label file (.nii.gz)",
            read_labels,
            target=0.1,
        ),
        Row(
            "load_index(...).indices: every class's locations decoded",
            lambda: fastseg.load_index(index_path(), labels=label_file()).indices,
            "nibabel: read the label file (.nii.gz)",
            read_labels,
            target=0.1,
        ),
    ]

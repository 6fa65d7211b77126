"""Report rows for cleanup on a CT-sized label map: the largest component of every class,
and removing small components.

nnU-Net's "remove all but the largest component" and MONAI's
KeepLargestConnectedComponent run a labeling pass per class; ``fastseg.largest_k`` labels
the whole map once. The anchor calls ``cc3d.largest_k`` once per class on that class's
mask (the class list is computed outside the timing), and writes the class into the
kept voxels. ``dust`` is timed against ``cc3d.dust``, which also judges every label's
components on their own. Both results must be equal, voxel for voxel.

The rows join the table of ``report.py`` through its ``ROW_MODULES``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from checks import same_values
from harness import Row, anchor_module
from inputs import Volumes

import fastseg


def irregular_ct_like_case() -> np.ndarray:
    """``inputs.ct_like_case``'s labels with blocks of random widths: 500 x 400 x 240
    uint8, ids 0..40 in 25 x 20 x 12 blocks, F order. In the equal 20^3 blocks of the
    report's case many classes have two largest components of the same size, and which
    one a library keeps is arbitrary; here sizes rarely tie, so results compare exactly."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 41, (25, 20, 12), dtype=np.uint8)

    def widths(total: int, count: int) -> np.ndarray:
        cuts = np.sort(rng.choice(np.arange(1, total), count - 1, replace=False))
        return np.diff(np.r_[0, cuts, total])

    labels = coarse.repeat(widths(500, 25), 0).repeat(widths(400, 20), 1)
    return np.asfortranarray(labels.repeat(widths(240, 12), 2))


def ct_labels(volumes: Volumes) -> np.ndarray:
    """:func:`irregular_ct_like_case`, built once."""
    labels: np.ndarray = volumes.derived("ct-like, irregular blocks", irregular_ct_like_case)
    return labels


DUST_VOXELS = 1000
"""Components below this size are removed: 31 % of the irregular case's 4,328 components
(1 % of its foreground)."""


def classes(labels: np.ndarray) -> list[int]:
    """The non-zero values of ``labels``."""
    return [int(c) for c in np.unique(labels) if c != 0]


def largest_per_class_cc3d(cc3d: Any, labels: np.ndarray, values: list[int]) -> np.ndarray:
    """The largest 26-connected component of every class, one ``cc3d.largest_k`` call per
    class (the anchor)."""
    kept = np.zeros_like(labels)
    for value in values:
        largest = cc3d.largest_k(labels == value, k=1, connectivity=26, binary_image=True)
        kept[largest != 0] = value
    return kept


def rows(v: Volumes) -> list[Row]:
    def values() -> list[int]:
        return v.derived("ct-like classes", lambda: classes(ct_labels(v)))

    return [
        Row(
            "largest_k per label, CT-sized synthetic (500x400x240, 40 classes)",
            lambda: fastseg.largest_k(ct_labels(v), 1, per_label=True),
            "cc3d.largest_k once per class",
            lambda: largest_per_class_cc3d(anchor_module("cc3d"), ct_labels(v), values()),
            target=0.05,
            check=same_values,
        ),
        Row(
            f"dust({DUST_VOXELS} voxels), CT-sized synthetic (500x400x240, 40 classes)",
            lambda: fastseg.dust(ct_labels(v), DUST_VOXELS),
            "cc3d.dust",
            lambda: anchor_module("cc3d").dust(ct_labels(v), DUST_VOXELS, connectivity=26),
            target=0.5,
            check=same_values,
        ),
    ]

"""dust and largest_k against per-label scipy references."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastseg

volumes = hnp.arrays(
    np.uint8,
    hnp.array_shapes(min_dims=1, max_dims=3, max_side=7),
    elements=st.integers(0, 3),
)


def components_per_label(labels: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(label value, boolean mask) of every connected component, full connectivity."""
    structure = ndi.generate_binary_structure(labels.ndim, labels.ndim)
    found = []
    for value in np.unique(labels):
        if value == 0:
            continue
        cc, n = ndi.label(labels == value, structure=structure)
        found += [(int(value), cc == k) for k in range(1, n + 1)]
    return found


def dust_reference(labels: np.ndarray, min_size: float, voxel: float = 1.0) -> np.ndarray:
    out = labels.copy()
    for _, mask in components_per_label(labels):
        if mask.sum() * voxel < min_size:
            out[mask] = 0
    return out


def largest_k_reference(labels: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros_like(labels)
    by_value: dict[int, list[np.ndarray]] = {}
    for value, mask in components_per_label(labels):
        by_value.setdefault(value, []).append(mask)
    for value, masks in by_value.items():
        # Larger first; ties keep the earlier component in row-major order (stable sort
        # of components numbered by their first voxel).
        firsts = [int(np.flatnonzero(m.ravel())[0]) for m in masks]
        ranked = sorted(range(len(masks)), key=lambda i: (-int(masks[i].sum()), firsts[i]))
        for i in ranked[:k]:
            out[masks[i]] = value
    return out


@given(volumes, st.integers(0, 6), st.sampled_from(["C", "F"]))
def test_dust_matches_reference(labels: np.ndarray, min_size: int, order: str) -> None:
    labels = np.asarray(labels, order=order)
    before = labels.copy()
    result = fastseg.dust(labels, min_size)
    np.testing.assert_array_equal(result, dust_reference(labels, min_size))
    np.testing.assert_array_equal(labels, before)
    assert result.dtype == labels.dtype


@given(volumes, st.integers(0, 3))
def test_largest_k_matches_reference(labels: np.ndarray, k: int) -> None:
    np.testing.assert_array_equal(fastseg.largest_k(labels, k), largest_k_reference(labels, k))


def test_largest_k_of_the_foreground_as_a_whole() -> None:
    labels = np.array([1, 2, 0, 3, 0, 1, 1, 1], np.uint8)
    # Regions of the foreground: [1, 2] (size 2), [3] (1), [1, 1, 1] (3).
    np.testing.assert_array_equal(
        fastseg.largest_k(labels, 1, per_label=False), [0, 0, 0, 0, 0, 1, 1, 1]
    )
    np.testing.assert_array_equal(
        fastseg.largest_k(labels, 2, per_label=False), [1, 2, 0, 0, 0, 1, 1, 1]
    )


def test_dust_in_physical_units_and_in_place() -> None:
    labels = np.zeros((6, 6, 6), np.int16)
    labels[0:2, 0:2, 0:2] = 4  # 8 voxels of 0.5 mm³ = 4 mm³
    labels[4, 4, 4:6] = 4  # 2 voxels = 1 mm³
    kept = fastseg.dust(labels, 2.0, spacing=(0.5, 1.0, 1.0))
    assert int((kept == 4).sum()) == 8
    result = fastseg.dust(labels, 2.0, spacing=(0.5, 1.0, 1.0), in_place=True)
    assert result is labels
    np.testing.assert_array_equal(labels, kept)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda a: fastseg.dust(a, -1), ValueError, "min_size"),
        (lambda a: fastseg.dust(a, "5"), TypeError, "min_size"),
        (lambda a: fastseg.largest_k(a, -1), ValueError, "k must be"),
        (lambda a: fastseg.dust(a.astype(float), 1), TypeError, "as_labels"),
        (lambda a: fastseg.dust(a, 1, spacing=(1.0,)), ValueError, "spacing"),
    ],
)
def test_bad_arguments(call: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call(np.ones((3, 3), np.uint8))

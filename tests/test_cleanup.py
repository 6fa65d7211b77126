"""dust and largest_k against per-label scipy references."""

from __future__ import annotations

from typing import Any

import nibabel as nib
import numpy as np
import pytest
import reference as ref
import scipy.ndimage as ndi
from hypothesis import given
from hypothesis import strategies as st
from shared_data import shared_data_path
from strategies import LAYOUTS, label_arrays, small_volumes

import fastseg

volumes = small_volumes(st.integers(0, 3))


def components_per_label(
    labels: np.ndarray, structure: np.ndarray | None = None
) -> list[tuple[int, np.ndarray]]:
    """(label value, boolean mask) of every connected component, full connectivity
    unless ``structure`` says otherwise."""
    if structure is None:
        structure = ndi.generate_binary_structure(labels.ndim, labels.ndim)
    found = []
    for value in np.unique(labels):
        if value == 0:
            continue
        cc, n = ndi.label(labels == value, structure=structure)
        found += [(int(value), cc == k) for k in range(1, n + 1)]
    return found


def dust_reference(
    labels: np.ndarray, min_size: float, voxel: float = 1.0, structure: np.ndarray | None = None
) -> np.ndarray:
    out = labels.copy()
    for _, mask in components_per_label(labels, structure):
        if mask.sum() * voxel < min_size:
            out[mask] = 0
    return out


def largest_k_reference(
    labels: np.ndarray, k: int, structure: np.ndarray | None = None
) -> np.ndarray:
    out = np.zeros_like(labels)
    by_value: dict[int, list[np.ndarray]] = {}
    for value, mask in components_per_label(labels, structure):
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


@given(
    labels=label_arrays(layouts=LAYOUTS),
    k=st.integers(0, 2),
    min_size=st.integers(0, 4),
    connectivity=st.sampled_from([None, 1]),
)
def test_dust_and_largest_k_on_every_dtype_and_layout(
    labels: np.ndarray, k: int, min_size: int, connectivity: int | None
) -> None:
    """Every dtype (bool, signed, ids at the top of the range), memory layout and
    dimension, and both connectivities; in place where the array allows it, a clear
    error where it does not."""
    plain = np.asarray(labels).astype(labels.dtype.newbyteorder("="))
    hops = plain.ndim if connectivity is None else 1
    structure = ndi.generate_binary_structure(max(plain.ndim, 1), hops)
    calls = (
        (
            lambda a, **kw: fastseg.dust(a, min_size, connectivity=connectivity, **kw),
            dust_reference(plain, min_size, structure=structure),
        ),
        (
            lambda a, **kw: fastseg.largest_k(a, k, connectivity=connectivity, **kw),
            largest_k_reference(plain, k, structure=structure),
        ),
    )
    writable = (
        labels.flags.writeable
        and labels.dtype.isnative
        and (labels.flags.c_contiguous or labels.flags.f_contiguous)
    )
    for call, expected in calls:
        before = labels.copy()
        result = call(labels)
        np.testing.assert_array_equal(result, expected)
        assert result.dtype == plain.dtype
        np.testing.assert_array_equal(labels, before)
        if writable:
            target = labels.copy(order="K")
            assert call(target, in_place=True) is target
            np.testing.assert_array_equal(target, expected)
        else:
            with pytest.raises(ValueError, match="in_place=True needs"):
                call(labels, in_place=True)


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


# -- fill_holes -----------------------------------------------------------------------------

sparse_volumes = small_volumes(st.sampled_from([0, 0, 0, 1, 1, 1, 2, 2, 3]))


@given(sparse_volumes, st.booleans(), st.sampled_from([None, 1, 2, 3]), st.sampled_from("CF"))
def test_fill_holes_matches_reference(
    labels: np.ndarray, per_label: bool, hops: int | None, order: str
) -> None:
    hops = None if hops is None else min(hops, labels.ndim)
    labels = np.asarray(labels, order=order)
    before = labels.copy()
    result = fastseg.fill_holes(labels, per_label=per_label, connectivity=hops)  # type: ignore[arg-type]
    expected = ref.fill_holes_reference(labels, per_label, hops)
    np.testing.assert_array_equal(result, expected)
    np.testing.assert_array_equal(labels, before)
    layout = "F_CONTIGUOUS" if order == "F" else "C_CONTIGUOUS"
    assert result.flags[layout]


@pytest.mark.parametrize("connectivity", [1, 2, 3])
@pytest.mark.parametrize("per_label", [True, False])
def test_fill_holes_of_a_binary_mask_equals_scipy(connectivity: int, per_label: bool) -> None:
    rng = np.random.default_rng(connectivity)
    mask = rng.random((24, 20, 18)) < 0.7
    structure = ndi.generate_binary_structure(3, connectivity)
    expected = ndi.binary_fill_holes(mask, structure=structure)
    assert (expected != mask).sum() > 0  # the case has holes to fill
    result = fastseg.fill_holes(mask, per_label=per_label, connectivity=connectivity)  # type: ignore[arg-type]
    assert result.dtype == np.bool_
    np.testing.assert_array_equal(result, expected)


def test_fill_holes_per_label_equals_scipy_on_each_label() -> None:
    # Labels far apart: each label's holes are scipy's holes of its own mask.
    rng = np.random.default_rng(7)
    labels = np.zeros((30, 30, 12), np.uint16)
    for value, (x, y) in enumerate([(0, 0), (15, 0), (0, 15), (15, 15)], start=1):
        block = ndi.binary_opening(rng.random((14, 14, 12)) < 0.6)
        labels[x : x + 14, y : y + 14][block] = value * 1000
    expected = labels.copy()
    for value in range(1000, 5000, 1000):
        mask = labels == value
        expected[ndi.binary_fill_holes(mask) & ~mask] = value
    assert (expected != labels).any()
    np.testing.assert_array_equal(fastseg.fill_holes(labels), expected)


def test_fill_holes_nested_labels_fill_the_innermost() -> None:
    labels = np.zeros((9, 9), np.int32)
    labels[1:8, 1:8] = 1  # outer organ
    labels[2:7, 2:7] = 0  # gap around the tumour
    labels[3:6, 3:6] = 2  # tumour, itself hollow
    labels[4, 4] = 0
    result = fastseg.fill_holes(labels)
    expected = labels.copy()
    expected[2:7, 2:7][labels[2:7, 2:7] == 0] = 1  # the gap belongs to the organ
    expected[4, 4] = 2  # the tumour's own hole is the innermost
    np.testing.assert_array_equal(result, expected)
    # As a whole, the gap and the tumour's hole are separate background regions.
    whole = fastseg.fill_holes(labels, per_label=False)
    assert whole[4, 4] == 2
    assert whole[2, 2] == 1


def test_fill_holes_as_a_whole_counts_the_faces_of_a_label_over_all_its_regions() -> None:
    # The hole at (4, 3) touches label 1 through one face and label 2 through three, each
    # of them a different region of 2: label 2 shares the most faces.
    labels = np.array(
        [[2, 2, 2, 2, 2], [2, 2, 2, 2, 2], [0, 2, 2, 2, 2], [2, 0, 0, 2, 2], [2, 2, 2, 0, 1],
         [2, 2, 0, 2, 2]],
        np.uint8,
    )  # fmt: skip
    result = fastseg.fill_holes(labels, per_label=False)
    assert result[4, 3] == 2
    assert result[3, 1] == result[3, 2] == 2
    assert result[2, 0] == result[5, 2] == 0  # on the border


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16, np.int32, np.int64]
)
def test_fill_holes_dtypes_including_the_largest_value(dtype: Any) -> None:
    top = np.iinfo(dtype).max
    labels = np.array([[top, top, top], [top, 0, top], [top, top, top]], dtype=dtype)
    result = fastseg.fill_holes(labels)
    assert result.dtype == labels.dtype
    np.testing.assert_array_equal(result, np.full((3, 3), top, dtype))


def test_fill_holes_edge_cases_and_in_place() -> None:
    for empty in (np.zeros((0, 4), np.uint8), np.zeros(1, np.uint8), np.ones((1, 1, 1), bool)):
        np.testing.assert_array_equal(fastseg.fill_holes(empty), empty)
    no_background = np.full((3, 3), 5, np.uint8)
    np.testing.assert_array_equal(fastseg.fill_holes(no_background), no_background)
    swapped = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=">u2")
    assert fastseg.fill_holes(swapped).tolist() == [[1] * 3] * 3
    labels = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], np.uint8)
    assert fastseg.fill_holes(labels, in_place=True) is labels
    assert labels[1, 1] == 1
    labels.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fastseg.fill_holes(labels, in_place=True)
    with pytest.raises(ValueError, match="connectivity"):
        fastseg.fill_holes(labels, connectivity=6)
    with pytest.raises(TypeError, match="as_labels"):
        fastseg.fill_holes(labels.astype(float))


def test_fill_holes_on_real_labels() -> None:
    """Platynereis nuclei: per label equals scipy on each nucleus (bounding box crops)."""
    path = shared_data_path("platynereis_nuclei.nii.gz") / "platynereis_nuclei.nii.gz"
    labels = np.asanyarray(nib.load(path).dataobj)[:, :, :40]
    result = fastseg.fill_holes(labels)
    expected = labels.copy()
    for value, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        crop = labels[box] == value
        # Only background can be filled, and a nucleus' hole never crosses its own box.
        holes = ndi.binary_fill_holes(crop) & (labels[box] == 0)
        expected[box][holes] = value
    np.testing.assert_array_equal(result, expected)

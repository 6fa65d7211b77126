"""NIfTI reading and writing: dtypes, scaling, layouts, atomic writes and bad files."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from shared_data import shared_data_path

import fastseg


def write_raw(
    path: Path, data: np.ndarray, affine: np.ndarray | None = None, **scaling: float
) -> None:
    """Write with nibabel directly, the way other tools do (optionally scaled)."""
    image = nib.Nifti1Image(data, np.eye(4) if affine is None else affine)
    image.set_data_dtype(data.dtype)
    if scaling:
        image.header.set_slope_inter(scaling.get("slope", 1.0), scaling.get("inter", 0.0))
    nib.save(image, str(path))


@pytest.mark.parametrize(
    ("high", "expected"),
    [(0, np.uint8), (255, np.uint8), (256, np.uint16), (65535, np.uint16), (65536, np.uint32)],
)
def test_save_picks_the_smallest_unsigned_type(tmp_path: Path, high: int, expected: Any) -> None:
    labels = np.zeros((4, 5, 6), np.int64)
    labels[1, 2, 3] = high
    target = tmp_path / "seg.nii.gz"
    fastseg.save(target, labels)
    stored = nib.load(str(target))
    assert stored.get_data_dtype() == np.dtype(expected)
    np.testing.assert_array_equal(np.asanyarray(stored.dataobj), labels)
    assert fastseg.load(target).labels.dtype == np.dtype(expected)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_round_trip_keeps_values_affine_and_order(tmp_path: Path, suffix: str, order: str) -> None:
    rng = np.random.default_rng(0)
    labels = np.asarray(rng.integers(0, 300, (7, 8, 9)), order=order).astype(np.uint16, order=order)
    affine = np.array([[0.0, -0.8, 0, 10], [0.9, 0, 0, -4], [0, 0, 2.5, 7], [0, 0, 0, 1]])
    target = tmp_path / f"seg{suffix}"
    fastseg.save(target, labels, affine=affine)
    image = fastseg.load(target)
    np.testing.assert_array_equal(image.labels, labels)
    np.testing.assert_allclose(image.affine, affine)
    assert image.labels.flags.f_contiguous  # nibabel hands out Fortran order
    np.testing.assert_allclose(image.spacing, (0.9, 0.8, 2.5), rtol=1e-6)


def test_save_like_takes_header_and_affine(tmp_path: Path) -> None:
    affine = np.diag([0.7, 0.7, 3.0, 1.0])
    write_raw(tmp_path / "ref.nii.gz", np.zeros((3, 3, 3), np.int16), affine)
    reference = fastseg.load(tmp_path / "ref.nii.gz")
    fastseg.save(tmp_path / "out.nii.gz", np.ones((3, 3, 3), np.uint8), like=reference)
    out = fastseg.load(tmp_path / "out.nii.gz")
    np.testing.assert_allclose(out.affine, affine)
    np.testing.assert_allclose(out.spacing, (0.7, 0.7, 3.0))
    assert out.labels.dtype == np.uint8


def test_float_files_with_whole_values_are_converted(tmp_path: Path) -> None:
    labels = np.array([[0.0, 1.0], [7.0, 300.0]], np.float32)
    write_raw(tmp_path / "float.nii.gz", labels)
    image = fastseg.load(tmp_path / "float.nii.gz")
    assert image.labels.dtype == np.uint16
    np.testing.assert_array_equal(image.labels, labels)


def test_scaled_integer_files_are_read_scaled(tmp_path: Path) -> None:
    write_raw(
        tmp_path / "scaled.nii.gz", np.array([[0, 1], [2, 3]], np.int16), slope=2.0, inter=1.0
    )
    np.testing.assert_array_equal(fastseg.load(tmp_path / "scaled.nii.gz").labels, [[1, 3], [5, 7]])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.array([0.0, 0.5], np.float32), "whole numbers"),
        (np.array([0.0, -2.0], np.float32), "non-negative"),
        (np.array([0.0, np.nan], np.float32), "NaN"),
    ],
)
def test_float_files_that_are_not_labels_raise(
    tmp_path: Path, values: np.ndarray, message: str
) -> None:
    target = tmp_path / "bad.nii.gz"
    write_raw(target, values)
    with pytest.raises(ValueError, match=message) as info:
        fastseg.load(target)
    assert "bad.nii.gz" in str(info.value)


def test_negative_integer_files_raise(tmp_path: Path) -> None:
    write_raw(tmp_path / "neg.nii.gz", np.array([0, -1, 2], np.int16))
    with pytest.raises(ValueError, match=r"neg\.nii\.gz.*non-negative"):
        fastseg.load(tmp_path / "neg.nii.gz")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothing\.nii\.gz"):
        fastseg.load(tmp_path / "nothing.nii.gz")


@pytest.mark.parametrize("content", [b"", b"not a nifti file at all", gzip.compress(b"x" * 400)])
def test_corrupt_files_raise_naming_the_file(tmp_path: Path, content: bytes) -> None:
    target = tmp_path / "broken.nii.gz"
    target.write_bytes(content)
    with pytest.raises(ValueError, match=r"broken\.nii\.gz: not a readable NIfTI image"):
        fastseg.load(target)


def test_truncated_file_raises(tmp_path: Path) -> None:
    target = tmp_path / "cut.nii"
    fastseg.save(target, np.ones((20, 20, 20), np.uint8))
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.nii"):
        fastseg.load(target)


def test_failed_save_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "seg.nii.gz"
    fastseg.save(target, np.ones((2, 2, 2), np.uint8))
    before = target.read_bytes()
    with pytest.raises(ValueError, match="non-negative"):
        fastseg.save(target, np.array([[-1, 2]], np.int8))
    with pytest.raises(ValueError, match="4 x 4"):
        fastseg.save(target, np.ones((2, 2, 2), np.uint8), affine=np.eye(3))
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["seg.nii.gz"]


def test_save_refuses_float_labels(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="as_labels"):
        fastseg.save(tmp_path / "f.nii.gz", np.zeros((2, 2), np.float64))
    assert not os.listdir(tmp_path)


def test_real_file_round_trip(tmp_path: Path) -> None:
    path = shared_data_path("torso_labels.nii.gz") / "torso_labels.nii.gz"
    image = fastseg.load(path)
    assert image.labels.dtype == np.uint8
    assert image.labels.shape == (384, 320, 89)
    np.testing.assert_allclose(image.spacing, (0.782, 0.782, 5.0), rtol=1e-6)
    fastseg.save(tmp_path / "copy.nii.gz", image.labels, like=image)
    again = fastseg.load(tmp_path / "copy.nii.gz")
    np.testing.assert_array_equal(again.labels, image.labels)
    np.testing.assert_allclose(again.affine, image.affine)


@pytest.mark.parametrize(
    "fill",
    [
        lambda a: None,  # all background
        lambda a: a.__setitem__((5, 6, 7), 1),  # a single voxel
        lambda a: a.__setitem__((slice(2, 9), slice(3, 5), slice(4, 6)), 3),  # a box
        lambda a: a.__setitem__((slice(None), slice(None), slice(0, 2)), 300),  # first planes
        lambda a: a.__setitem__((slice(None), slice(None), slice(10, 12)), 2),  # last planes
        lambda a: a.__setitem__((slice(None), slice(None), slice(1, 11)), 1),  # mostly full
    ],
)
@pytest.mark.parametrize("kind", ["bool", "int"])
def test_mostly_empty_maps_are_read_back_by_nibabel_and_simpleitk(
    tmp_path: Path, fill: Any, kind: str
) -> None:
    labels = np.zeros((10, 11, 12), np.uint16, order="F")
    fill(labels)
    data = labels.astype(bool) if kind == "bool" else labels
    target = tmp_path / "mask.nii.gz"
    fastseg.save(target, data, affine=np.diag([0.5, 0.6, 2.0, 1.0]))
    read = fastseg.load(target)
    np.testing.assert_array_equal(read.labels, data)
    assert sorted(os.listdir(tmp_path)) == ["mask.nii.gz"]
    sitk = pytest.importorskip("SimpleITK")
    image = sitk.ReadImage(str(target))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image).transpose(2, 1, 0), data)
    np.testing.assert_allclose(image.GetSpacing(), (0.5, 0.6, 2.0))


def test_mostly_empty_map_compresses_small(tmp_path: Path) -> None:
    labels = np.zeros((200, 200, 200), np.uint8, order="F")
    labels[90:110, 90:110, 90:110] = 1
    fastseg.save(tmp_path / "mask.nii.gz", labels)
    assert (tmp_path / "mask.nii.gz").stat().st_size < 200_000


def test_saved_files_get_normal_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        fastseg.save(tmp_path / "new.nii.gz", np.ones((2, 2), np.uint8))
        assert (tmp_path / "new.nii.gz").stat().st_mode & 0o777 == 0o644
        (tmp_path / "new.nii.gz").chmod(0o640)
        fastseg.save(tmp_path / "new.nii.gz", np.zeros((2, 2), np.uint8))
        assert (tmp_path / "new.nii.gz").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(umask)

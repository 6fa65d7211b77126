"""Sample index files: round trips, checks against the label map, bad files."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel
import numpy as np
import pytest
from strategies import blocky_volume

import fastseg
from fastseg.sample_index import SampleIndex

AFFINE = np.array([[0.8, 0, 0, -10.0], [0, 0.8, 0, 4.0], [0, 0, 2.5, 30.0], [0, 0, 0, 1]])


def _assert_same(a: SampleIndex, b: SampleIndex) -> None:
    assert a.shape == b.shape
    assert a.seed == b.seed
    for name in (
        "ids", "counts", "bbox", "offsets", "indices", "instance_ids", "instance_classes",
        "instance_counts", "instance_bbox", "instance_offsets", "instance_indices",
    ):  # fmt: skip
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.mark.parametrize("order", ["C", "F"])
def test_round_trip_equals_locations_and_stats(tmp_path: Path, order: str) -> None:
    labels = np.asarray(blocky_volume((20, 18, 16), 5, 3, seed=2), order=order)
    path = tmp_path / "case.npz"
    written = fastseg.write_index(path, labels, per_class=30, per_instance=4, seed=5)
    loaded = fastseg.load_index(path, shape=labels.shape)
    _assert_same(written, loaded)
    found = fastseg.locations(labels, per_class=30, per_instance=4, seed=5)
    table = fastseg.stats(labels)
    np.testing.assert_array_equal(loaded.ids, table.ids)
    np.testing.assert_array_equal(loaded.counts, table.voxel_count)
    np.testing.assert_array_equal(loaded.bbox, table.bbox)
    for i in found:
        expected = np.sort(np.ravel_multi_index(tuple(found[i].T), labels.shape))
        np.testing.assert_array_equal(loaded.flat(i), expected)
        assert sorted(map(tuple, loaded.coordinates(i).tolist())) == sorted(
            map(tuple, found[i].tolist())
        )
    assert found.instances is not None
    components = fastseg.label(labels).labels
    instance_table = fastseg.stats(components)
    np.testing.assert_array_equal(loaded.instance_ids, instance_table.ids)
    np.testing.assert_array_equal(loaded.instance_bbox, instance_table.bbox)
    for i, coords in found.instances.items():
        assert (components[tuple(loaded.instance_coordinates(i).T)] == i).all()
        assert len(loaded.instance_flat(i)) == len(coords)
    as_locations = loaded.to_locations()
    assert as_locations.instance_classes == found.instance_classes
    assert as_locations.counts == found.counts


def test_from_a_nifti_file_checked_by_header(tmp_path: Path) -> None:
    labels = blocky_volume((12, 10, 8), 3, 2, seed=1)
    source = tmp_path / "labels.nii.gz"
    nibabel.save(nibabel.Nifti1Image(labels, AFFINE), source)
    path = tmp_path / "index.npz"
    fastseg.write_index(path, source, mode="nnunet", seed=0)
    index = fastseg.load_index(path, labels=source)
    np.testing.assert_allclose(index.affine, AFFINE)
    assert index.counts.sum() == int((labels > 0).sum())
    other = tmp_path / "other.nii.gz"
    nibabel.save(nibabel.Nifti1Image(labels, np.diag([1.0, 1.0, 1.0, 1.0])), other)
    with pytest.raises(ValueError, match="another affine"):
        fastseg.load_index(path, labels=other)
    with pytest.raises(ValueError, match="shape"):
        fastseg.load_index(path, labels=labels[:5])
    with pytest.raises(ValueError, match="shape"):
        fastseg.load_index(path, shape=(12, 10))
    fastseg.load_index(path, labels=nibabel.Nifti1Image(labels, AFFINE))


@pytest.mark.parametrize("suffix", [".mgz", ".nrrd", ".seg.nrrd", ".mha"])
def test_checked_against_a_file_of_every_volume_format(tmp_path: Path, suffix: str) -> None:
    if suffix.endswith("nrrd"):
        pytest.importorskip("nrrd")
    if suffix == ".mha":
        pytest.importorskip("SimpleITK")
    labels = blocky_volume((6, 5, 4), 3, 2, seed=2)
    source = tmp_path / f"labels{suffix}"
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    fastseg.save(source, labels, affine=affine)
    path = tmp_path / "index.npz"
    fastseg.write_index(path, source, seed=0)
    np.testing.assert_allclose(fastseg.load_index(path, labels=source).affine, affine, atol=1e-6)
    other = tmp_path / f"other{suffix}"
    fastseg.save(other, labels, affine=np.diag([1.0, 0.8, 2.5, 1.0]))
    with pytest.raises(ValueError, match="another affine"):
        fastseg.load_index(path, labels=other)


@pytest.mark.parametrize("shape", [(0, 3), (1,), (4, 4)])
def test_empty_and_tiny(tmp_path: Path, shape: tuple[int, ...]) -> None:
    labels = np.zeros(shape, np.uint8)
    if labels.size:
        labels.flat[-1] = 3
    path = tmp_path / "tiny.npz"
    written = fastseg.write_index(path, labels, per_instance=1, seed=0)
    _assert_same(written, fastseg.load_index(path))
    with pytest.raises(KeyError, match="no class 9"):
        written.flat(9)


def test_bad_files(tmp_path: Path) -> None:
    text = tmp_path / "text.npz"
    text.write_text("not an archive")
    with pytest.raises(ValueError, match="not a fastseg sample index"):
        fastseg.load_index(text)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(ValueError, match="no 'fastseg-sample-index' marker"):
        fastseg.load_index(other)
    path = tmp_path / "case.npz"
    fastseg.write_index(path, np.ones((3, 3), np.uint8), seed=0)
    with np.load(path) as archive:
        data = dict(archive)
    data["version"] = np.array(99)
    np.savez(path, **data)
    with pytest.raises(ValueError, match="version 99"):
        fastseg.load_index(path)
    with pytest.raises(FileNotFoundError):
        fastseg.load_index(tmp_path / "missing.npz")


def test_a_failed_write_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "case.npz"
    with pytest.raises(ValueError, match="per_class"):
        fastseg.write_index(path, np.ones((3, 3), np.uint8), per_class=0)
    assert os.listdir(tmp_path) == []
    with pytest.raises(TypeError, match="no sampling arguments"):
        fastseg.write_index(path, SampleIndex.build(np.ones(3, np.uint8)), seed=1)


def test_nnunet_sized_index_is_compact(tmp_path: Path) -> None:
    # One byte per location or less: nnU-Net keeps them as int64 coordinates (32 bytes).
    labels = blocky_volume((64, 64, 64), 8, 4, seed=0)
    path = tmp_path / "case.npz"
    index = fastseg.write_index(path, labels, mode="nnunet", seed=0)
    assert os.path.getsize(path) <= index.indices.size * 1.2 + 4096


@pytest.mark.parametrize("spacing", [3, 100, 5000])
def test_step_encoding_round_trips(spacing: int) -> None:
    from fastseg.sample_index import _deltas, _undelta

    rng = np.random.default_rng(spacing)
    sizes = [0, 1, 500, 0, 2000, 3]
    offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    parts = [
        np.sort(rng.choice(spacing * max(n, 1) + 2**33 * (j == 4), n, replace=False))
        for j, n in enumerate(sizes)
    ]
    indices = np.concatenate(parts).astype(np.int64)
    firsts, steps, large = _deltas(offsets, indices)
    assert large.size > 0
    np.testing.assert_array_equal(_undelta(offsets, firsts, steps, large), indices)
    if spacing == 3:  # steps of a few voxels take a byte
        assert steps.dtype == np.uint8

"""Sample index files: round trips, the three ways an id is stored, checks against the
label map (a NIfTI file by its header), versions and damaged files, sizes."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel
import numpy as np
import pytest
import reference as ref
from shared_data import shared_data_path
from strategies import blocky_volume

import fastseg
from fastseg import sample_index
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
    path = tmp_path / "case.fsidx"
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
    path = tmp_path / "index.fsidx"
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
    path = tmp_path / "index.fsidx"
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
    path = tmp_path / "tiny.fsidx"
    written = fastseg.write_index(path, labels, per_instance=1, seed=0)
    _assert_same(written, fastseg.load_index(path))
    with pytest.raises(KeyError, match="no class 9"):
        written.flat(9)


def test_bad_files(tmp_path: Path) -> None:
    text = tmp_path / "text.fsidx"
    text.write_text("not an index")
    with pytest.raises(ValueError, match="not a fastseg sample index"):
        fastseg.load_index(text)
    old = tmp_path / "old.npz"
    np.savez(old, a=np.zeros(3))
    with pytest.raises(ValueError, match="version 1 sample index"):
        fastseg.load_index(old)
    path = tmp_path / "case.fsidx"
    fastseg.write_index(path, blocky_volume((6, 5, 4), 3, 2, seed=0), seed=0)
    data = path.read_bytes()
    assert data[:8] == b"\x89FSIDX\r\n"
    for version in (2, 99):
        other = tmp_path / f"version{version}.fsidx"
        other.write_bytes(data[:8] + version.to_bytes(4, "little") + data[12:])
        with pytest.raises(
            ValueError, match=f"version {version} sample index; this fastseg reads version 3"
        ):
            fastseg.load_index(other)
    for j, damaged in enumerate(
        [data[:-1], data[:40] + bytes([data[40] ^ 1]) + data[41:], data + b"\0"]
    ):
        broken = tmp_path / f"broken{j}.fsidx"
        broken.write_bytes(damaged)
        with pytest.raises(ValueError, match="damaged or truncated"):
            fastseg.load_index(broken)
    with pytest.raises(FileNotFoundError):
        fastseg.load_index(tmp_path / "missing.fsidx")


def test_a_failed_write_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "case.fsidx"
    with pytest.raises(ValueError, match="per_class"):
        fastseg.write_index(path, np.ones((3, 3), np.uint8), per_class=0)
    assert os.listdir(tmp_path) == []
    with pytest.raises(TypeError, match="no sampling arguments"):
        fastseg.write_index(path, SampleIndex.build(np.ones(3, np.uint8)), seed=1)


def _kinds(index: SampleIndex, group: int = 0) -> list[int]:
    """How the file stores each id of a group (steps 0, every voxel 1, runs and the
    largest key 2)."""
    fields = sample_index._group_fields(index, sample_index._GROUPS[group])
    offsets, indices = (
        (index.offsets, index.indices) if group == 0 else
        (index.instance_offsets, index.instance_indices)
    )  # fmt: skip
    small, _ = sample_index._encode_group(
        index.shape, fields["counts"], fields["bbox"], offsets, indices,
        index._samples[group].runs(), sample_index._seed_key_of(index.seed),
    )  # fmt: skip
    kinds: list[int] = small["kinds"].tolist()
    return kinds


@pytest.mark.parametrize("order", ["C", "F"])
def test_every_way_of_storing_an_id_round_trips(tmp_path: Path, order: str) -> None:
    # Class 1: large, sampled sparsely (steps); 2: a ball sampled at half (its runs and
    # largest key); 3: a few voxels, whole; 4: scattered voxels; 5: a plane, whole (runs).
    labels = np.zeros((40, 36, 30), np.uint8)
    labels[:, :18] = 1
    z, y, x = np.ogrid[:40, :36, :30]
    labels[(z - 28) ** 2 + (y - 26) ** 2 + (x - 15) ** 2 < 81] = 2
    labels[3:5, 30:33, 2:4] = 3
    rng = np.random.default_rng(0)
    labels.flat[rng.choice(labels.size, 300, replace=False)] = 4
    labels[39] = 5
    labels = np.asarray(labels, order=order)
    counts = np.bincount(labels.ravel())
    per_class = int(counts[2]) // 2
    index = SampleIndex.build(labels, per_class=per_class, per_instance=3, seed=4)
    kinds = _kinds(index)
    assert (kinds[0], kinds[1], kinds[4]) == (0, 2, 1)
    path = tmp_path / "case.fsidx"
    fastseg.write_index(path, index)
    loaded = fastseg.load_index(path, shape=labels.shape)
    _assert_same(index, loaded)
    # The sample is the reference's bottom-k, whichever way it was stored.
    sizes = {i: min(per_class, int(counts[i])) for i in range(1, 6)}
    expected = ref.locations_reference(labels, sizes, 4)
    for i in range(1, 6):
        want = sorted(np.ravel_multi_index(tuple(np.array(expected[i]).T), labels.shape).tolist())
        assert loaded.flat(i).tolist() == want
    # Written again from what was read: the same bytes.
    again = tmp_path / "again.fsidx"
    fastseg.write_index(again, loaded)
    assert again.read_bytes() == path.read_bytes()


def test_one_id_decodes_alone(tmp_path: Path) -> None:
    labels = blocky_volume((30, 28, 26), 6, 3, seed=3)
    path = tmp_path / "case.fsidx"
    written = fastseg.write_index(path, labels, mode="nnunet", per_instance=5, seed=2)
    lazy = fastseg.load_index(path)
    for i in written.ids.tolist()[::-1]:
        np.testing.assert_array_equal(lazy.flat(i), written.flat(i))
    for i in written.instance_ids.tolist()[::3]:
        np.testing.assert_array_equal(lazy.instance_flat(i), written.instance_flat(i))
    # Only the ids asked for were decoded.
    assert lazy._samples[0]._all is None
    assert lazy._samples[1]._all is None
    _assert_same(written, lazy)
    np.testing.assert_array_equal(lazy.flat(int(written.ids[0])), written.flat(int(written.ids[0])))


def _header(path: Path) -> dict[str, object]:
    import json
    import struct
    import zlib

    data = path.read_bytes()
    _, _, size, _ = struct.unpack_from("<8sIII", data)
    unpacked = zlib.decompress(data[20 : 20 + size])
    (text,) = struct.unpack_from("<I", unpacked)
    header: dict[str, object] = json.loads(unpacked[4 : 4 + text])
    return header


@pytest.mark.parametrize(
    ("shape", "ids", "kwargs"),
    [
        ((16, 16, 16), 8, {"mode": "nnunet"}),
        ((24, 20, 18), 8, {"per_class": 600, "ids": [0, 2, 5, 7, 12]}),
        ((40, 36), 5, {"per_class": 100, "per_instance": 2}),
        ((30, 30, 30), 400, {"per_class": 40}),  # uint16 class map
    ],
)
def test_the_class_map_round_trips(
    tmp_path: Path, shape: tuple[int, ...], ids: int, kwargs: dict[str, object]
) -> None:
    labels = blocky_volume(shape, ids, 2, seed=1).astype(np.uint16)
    path = tmp_path / "case.fsidx"
    written = fastseg.write_index(path, labels, seed=3, **kwargs)
    header = _header(path)
    assert "map" in header, header
    lazy = fastseg.load_index(path, shape=labels.shape)
    for i in written.ids.tolist()[::-1]:
        np.testing.assert_array_equal(lazy.flat(i), written.flat(i))
    assert lazy._samples[0]._all is None  # one class at a time
    loaded = fastseg.load_index(path)
    _assert_same(written, loaded)
    # Each class's sample is the reference's bottom-k.
    counts = dict(zip(*ref.unique(labels), strict=True))
    per_class = kwargs.get("per_class", 10_000)
    assert isinstance(per_class, int)
    for i, size in zip(written.ids.tolist(), np.diff(written.offsets).tolist(), strict=True):
        if counts.get(i, 0) and "mode" not in kwargs:
            assert size == min(per_class, counts[i])
            expected = ref.locations_reference(labels, {i: size}, 3)[i]
            flat = np.ravel_multi_index(tuple(np.array(expected).T), labels.shape)
            assert loaded.flat(i).tolist() == sorted(flat.tolist())
    again = tmp_path / "again.fsidx"
    fastseg.write_index(again, loaded)
    assert again.read_bytes() == path.read_bytes()


def test_background_as_a_class(tmp_path: Path) -> None:
    labels = np.zeros((30, 20, 10), np.uint8)
    labels[5:25, 3:17, 2:9] = 1
    labels[10:12, 8:9, 4:6] = 2
    path = tmp_path / "case.fsidx"
    written = fastseg.write_index(path, labels, per_class=20, ids=[0, 2], seed=1)
    assert "map" not in _header(path)
    loaded = fastseg.load_index(path)
    _assert_same(written, loaded)
    assert loaded.bbox[0].tolist() == [[0, 30], [0, 20], [0, 10]]
    assert loaded.bbox[1].tolist() == [[10, 12], [8, 9], [4, 6]]
    expected = ref.locations_reference(labels, {0: 20}, 1)[0]
    flat = np.ravel_multi_index(tuple(np.array(expected).T), labels.shape)
    assert loaded.flat(0).tolist() == sorted(flat.tolist())


def test_a_damaged_class_map_is_an_error(tmp_path: Path) -> None:
    import struct
    import zlib

    path = tmp_path / "case.fsidx"
    fastseg.write_index(path, blocky_volume((16, 16, 16), 8, 4, seed=0), mode="nnunet", seed=0)
    assert "map" in _header(path)
    data = bytearray(path.read_bytes())
    data[-20:] = bytes(20)  # the end of the class map
    struct.pack_into("<I", data, 16, zlib.crc32(bytes(data[20:])))
    damaged = tmp_path / "damaged.fsidx"
    damaged.write_bytes(bytes(data))
    index = fastseg.load_index(damaged)  # the map is read when a class is asked for
    with pytest.raises(ValueError, match="class map"):
        _ = index.indices


def test_short_key_limits_keep_the_sample_and_drop_the_next_key() -> None:
    rng = np.random.default_rng(0)
    for _ in range(2000):
        a, b = sorted(int(x) * 4 + 3 for x in rng.integers(0, 2**62, 2, dtype=np.int64))
        if rng.random() < 0.3:
            b = a + 1
        bits, prefix = sample_index._short_limit(a, b)
        limit = sample_index._limit_of(bits, prefix)
        assert a <= limit < b
        coded = sample_index._encode_limits([(bits, prefix), (0, 0)])
        decoded = sample_index._decode_limits(np.array([bits, 0], np.uint8), coded[2:])
        assert decoded.tolist() == [limit, 2**64 - 1]


def test_the_file_keys_equal_the_sampling_keys() -> None:
    flat = np.array([0, 1, 5, 2**40 + 3, 10**15], np.int64)
    for seed in (0, 7, 2**70):
        state = ref.seed_state(seed)
        keys = sample_index._voxel_keys(flat, sample_index._seed_key_of(seed))
        assert keys.tolist() == [ref.voxel_key(int(i), state) for i in flat.tolist()]
    many = np.arange(100_000, dtype=np.int64) * 7
    keys = sample_index._voxel_keys(many, np.uint64(5))
    assert keys[70_000] == ref.voxel_key(490_000, 5)


@pytest.mark.parametrize("widths", [[0], [1], [2], [3], [5], [7], [0, 1, 3], [1, 2, 2]])
def test_value_coding_round_trips(widths: list[int]) -> None:
    rng = np.random.default_rng(len(widths) * 10 + widths[0])
    lengths = rng.integers(0, 300, len(widths))
    per_value = np.repeat(np.array(widths, np.uint8), lengths)
    scale = np.repeat([256 ** (w + 1) for w in widths], lengths).astype(np.float64)
    values = np.minimum(rng.random(per_value.size) ** 3 * scale * 1.5, 2.0**62).astype(np.int64)
    values[:: max(1, values.size // 7)] = 2**60 + 12345  # escapes of every width
    parts = sample_index._encode_values(values, per_value)
    decoded = sample_index._decode_values(
        {k: np.frombuffer(v.tobytes(), np.uint8) for k, v in parts.items()}
        | {"escapes": parts["escapes"]},
        np.array(widths, np.uint8),
        lengths.astype(np.int64),
    )
    np.testing.assert_array_equal(decoded, values)


@pytest.mark.parametrize("shape", [(7,), (5, 9), (4, 6, 5), (3, 1, 8)])
def test_runs_round_trip(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(shape))
    volume = rng.random((12, *shape)) < 0.4
    volume[0] = False  # an empty box
    volume[1] = True  # a full one
    boxes = []
    runs = []
    for j, mask in enumerate(volume):
        box = np.array([[0, n] for n in shape], np.int64)
        box[0] += j * shape[0]  # boxes side by side along the first axis
        boxes.append(box)
        runs.append(sample_index._box_runs(mask))
    whole = np.concatenate(list(volume), axis=0)
    boxes_array = np.array(boxes)
    voxels, per_id = sample_index._expand_runs(
        np.concatenate(runs), np.array([r.size // 2 for r in runs]), boxes_array, whole.shape
    )
    assert per_id.tolist() == [int(m.sum()) for m in volume]
    np.testing.assert_array_equal(voxels, np.flatnonzero(whole.ravel()))
    # A box inside a larger volume (not spanning whole rows).
    outer = np.zeros(tuple(n + 3 for n in shape), bool)
    box = np.array([[1, 1 + n] for n in shape])
    outer[tuple(slice(lo, hi) for lo, hi in box)] = volume[2]
    found, _ = sample_index._expand_runs(
        sample_index._box_runs(volume[2]),
        np.array([sample_index._box_runs(volume[2]).size // 2]),
        box[None],
        outer.shape,
    )
    np.testing.assert_array_equal(found, np.flatnonzero(outer.ravel()))


def test_index_files_are_no_larger_than_the_label_files(tmp_path: Path) -> None:
    # nnU-Net-sized samples of real label maps and of a small synthetic one; nnU-Net's
    # own pickle holds them as int64 coordinates (24 bytes a location).
    folder = shared_data_path("torso_labels.nii.gz", "aal.nii.gz", "platynereis_nuclei.nii.gz")
    small = []
    for side in (16, 32, 64):
        small.append(tmp_path / f"small{side}.nii.gz")
        fastseg.save(small[-1], blocky_volume((side,) * 3, 8, 4, seed=0), affine=np.eye(4))
    for source in [
        folder / "torso_labels.nii.gz",
        folder / "aal.nii.gz",
        folder / "platynereis_nuclei.nii.gz",
        *small,
    ]:
        path = tmp_path / "case.fsidx"
        index = fastseg.write_index(path, source, mode="nnunet", seed=0)
        assert os.path.getsize(path) <= os.path.getsize(source), source.name
        assert os.path.getsize(path) <= index.indices.size  # at most a byte a location
        _assert_same(index, fastseg.load_index(path, labels=source))


def test_a_nifti_file_is_checked_by_its_header(tmp_path: Path) -> None:
    labels = blocky_volume((12, 10, 8), 3, 2, seed=1)
    image = nibabel.Nifti1Image(labels, AFFINE)
    image.header.set_xyzt_units("micron")
    for name in ("labels.nii.gz", "labels.nii"):
        source = tmp_path / name
        nibabel.save(image, source)
        loaded = fastseg.load(source)
        shape, affine = sample_index._file_geometry(source)
        assert shape == loaded.labels.shape
        np.testing.assert_array_equal(affine, loaded.affine)
        assert affine[0, 0] == pytest.approx(0.8e-3)
    # Voxels cut off after the header: the header is all that is read.
    large = np.random.default_rng(0).integers(0, 9, (40, 40, 40)).astype(np.uint8)
    whole = tmp_path / "large.nii.gz"
    nibabel.save(nibabel.Nifti1Image(large, AFFINE), whole)
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(whole.read_bytes()[:2000])
    with pytest.raises(ValueError, match=r"damaged gzip stream|ends after"):
        fastseg.load(cut)
    assert sample_index._file_geometry(cut)[0] == large.shape
    path = tmp_path / "case.fsidx"
    fastseg.write_index(path, whole, per_class=5, seed=0)
    fastseg.load_index(path, labels=cut)
    text = tmp_path / "text.nii"
    text.write_text("not a header")
    with pytest.raises(ValueError, match="not a readable NIfTI header"):
        sample_index._file_geometry(text)

"""Tensors through the public functions, and fastseg.transforms against MONAI and TorchIO.

The anchors are the real packages: MONAI's KeepLargestConnectedComponent,
RemoveSmallObjects and MapLabelValue, TorchIO's RemapLabels and KeepLargestComponent,
on the same inputs; metadata round trips use a real MetaTensor and torchio Subject.
"""

from __future__ import annotations

from typing import Any

import monai.transforms as monai_transforms
import nibabel
import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torchio
from monai.data import MetaTensor
from shared_data import shared_data_path

import fastseg
from fastseg.transforms import (
    KeepLargest,
    KeepLargestd,
    Remap,
    Remapd,
    RemoveSmall,
    RemoveSmalld,
    Stats,
    Statsd,
    ToInstances,
    ToInstancesd,
    ToSemantic,
    ToSemanticd,
    as_torchio,
)

AFFINE = np.array(
    [[0.8, 0, 0, -10.0], [0, 0.8, 0, 4.0], [0, 0, 2.5, 30.0], [0, 0, 0, 1]], dtype=np.float64
)


def blobs(seed: int, labels: int = 3, shape: tuple[int, ...] = (24, 20, 16)) -> np.ndarray:
    """A multilabel map of smooth random blobs: components of many sizes, few ties."""
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.normal(size=(labels, *shape)), 1.5)
    winner = field.argmax(axis=0) + 1
    return np.where(field.max(axis=0) > 0.12, winner, 0).astype(np.uint8)


# == tensors through the public functions =================================================


def test_public_functions_take_and_return_cpu_tensors() -> None:
    volume = blobs(0)
    tensor = torch.from_numpy(volume)
    components = fastseg.label(tensor)
    expected = fastseg.label(volume)
    assert isinstance(components.labels, torch.Tensor)
    assert isinstance(components.values, torch.Tensor)
    assert components.count == expected.count
    assert np.array_equal(components.labels.numpy(), expected.labels)
    values, counts = fastseg.unique(tensor, return_counts=True)
    assert isinstance(counts, torch.Tensor)
    assert values.tolist() == np.unique(volume).tolist()
    remapped = fastseg.remap(tensor, {1: 300})
    assert remapped.dtype == torch.uint16
    assert np.array_equal(remapped.numpy(), fastseg.remap(volume, {1: 300}))
    relabeled, mapping = fastseg.renumber(tensor.permute(2, 1, 0))  # Fortran order
    expected_relabeled, expected_mapping = fastseg.renumber(volume.transpose(2, 1, 0))
    assert np.array_equal(relabeled.numpy(), expected_relabeled)
    assert mapping == expected_mapping
    assert fastseg.stats(tensor).voxel_count.tolist() == fastseg.stats(volume).voxel_count.tolist()
    masks = [(k, m.sum().item()) for k, m in fastseg.binary_masks(tensor)]
    assert masks == [(k, int((volume == k).sum())) for k in np.unique(volume)[1:]]
    crops = list(fastseg.each(tensor[0]))
    assert all(isinstance(mask, torch.Tensor) for _, mask, _ in crops)
    assert fastseg.as_labels(tensor.float()).dtype == torch.uint8


def test_tensor_inputs_are_views_and_in_place_returns_the_tensor() -> None:
    tensor = torch.from_numpy(blobs(1))
    before = tensor.clone()
    result = fastseg.remap(tensor, {1: 2}, in_place=True)
    assert result is tensor  # written through the zero-copy view
    assert torch.equal(tensor, torch.where(before == 1, 2, before))
    largest = fastseg.largest_k(tensor, 1, in_place=True)
    assert largest is tensor


def test_numpy_inputs_still_give_numpy() -> None:
    volume = blobs(2)
    assert isinstance(fastseg.remap(volume, {1: 2}), np.ndarray)
    assert isinstance(fastseg.label(volume).labels, np.ndarray)


def test_tensors_on_other_devices_are_refused() -> None:
    with pytest.raises(TypeError, match=r"CPU tensors, got a tensor on meta; .*tensor\.cpu\(\)"):
        fastseg.unique(torch.zeros(4, dtype=torch.uint8, device="meta"))


def test_tensors_needing_grad_and_bool_tensors() -> None:
    image = torch.arange(6, dtype=torch.float32, requires_grad=True)
    table = fastseg.stats(torch.tensor([0, 1, 1, 2, 2, 2]), image)
    assert table.mean.tolist() == [1.5, 4.0]
    assert fastseg.label(torch.tensor([True, False, True])).count == 2


# == plain transforms against MONAI =======================================================


@pytest.mark.parametrize(
    ("connectivity", "independent", "k"),
    [(None, True, 1), (1, True, 1), (2, False, 1), (None, True, 2), (1, False, 3)],
)
def test_keep_largest_matches_monai(connectivity: int | None, independent: bool, k: int) -> None:
    for seed in range(3):
        labels = blobs(seed)[None]
        monai = monai_transforms.KeepLargestConnectedComponent(
            independent=independent, connectivity=connectivity, num_components=k
        )
        ours = KeepLargest(k, connectivity=connectivity, per_label=independent)  # type: ignore[arg-type]
        expected = monai(torch.from_numpy(labels))
        assert np.array_equal(ours(labels), expected.numpy()), seed
        assert torch.equal(ours(torch.from_numpy(labels)), expected)


def _monai_removes_objects_of_min_size() -> bool:
    """MONAI documents that objects smaller than min_size go; with scikit-image 0.26 its
    (deprecated) min_size also removes objects of exactly that size."""
    probe = np.array([[1, 1, 0, 0, 1, 1, 1]], np.uint8)
    kept = np.asarray(monai_transforms.RemoveSmallObjects(min_size=2)(probe))
    return not kept[0, :2].any()


# MONAI passes skimage's deprecated min_size; the anchor's warning, not ours.
@pytest.mark.filterwarnings("ignore:Parameter `min_size` is deprecated:FutureWarning")
@pytest.mark.parametrize(("min_size", "connectivity"), [(5, 1), (30, 3), (2, 1)])
def test_remove_small_matches_monai_on_binary_maps(min_size: int, connectivity: int) -> None:
    # Ours removes objects smaller than min_size, as MONAI documents.
    ours_min_size = min_size + 1 if _monai_removes_objects_of_min_size() else min_size
    for seed in range(3):
        binary = (blobs(seed, labels=2) == 1)[None].astype(np.uint8)
        monai = monai_transforms.RemoveSmallObjects(min_size=min_size, connectivity=connectivity)
        expected = np.asarray(monai(binary))
        result = RemoveSmall(ours_min_size, connectivity=connectivity)(binary)  # type: ignore[arg-type]
        assert 0 < result.sum() < binary.sum()
        assert np.array_equal(result, expected.astype(result.dtype)), seed


def test_remap_matches_monai_map_label_value() -> None:
    labels = blobs(3)[None]
    monai = monai_transforms.MapLabelValue(orig_labels=[1, 2, 3], target_labels=[7, 0, 300])
    expected = monai(labels)
    result = Remap({1: 7, 2: 0, 3: 300})(labels)
    assert result.dtype == np.uint16  # MONAI returns float32
    assert np.array_equal(result, expected.astype(np.uint16))


# == TorchIO ==============================================================================


def _subject(labels: np.ndarray) -> torchio.Subject:
    image = torch.from_numpy(labels.astype(np.float32))
    return torchio.Subject(
        image=torchio.ScalarImage(tensor=image, affine=AFFINE),
        seg=torchio.LabelMap(tensor=torch.from_numpy(labels), affine=AFFINE),
    )


def test_remap_matches_torchio_remap_labels() -> None:
    subject = _subject(blobs(4)[None].astype(np.int64))
    mapping = {1: 3, 3: 1, 2: 5}
    expected = torchio.RemapLabels(mapping)(subject)
    result = as_torchio(Remap(mapping))(subject)
    assert torch.equal(result.seg.data.long(), expected.seg.data.long())
    assert np.array_equal(result.seg.affine, AFFINE)
    # The intensity image is not a label map: left alone.
    assert torch.equal(result.image.data, subject.image.data)


def test_keep_largest_matches_torchio_on_binary_maps() -> None:
    for seed in range(3):
        binary = (blobs(seed, labels=2) == 2)[None].astype(np.uint8)
        expected = torchio.KeepLargestComponent()(_subject(binary))
        result = as_torchio(KeepLargest(connectivity=1))(_subject(binary))
        assert torch.equal(result.seg.data, expected.seg.data.to(result.seg.data.dtype)), seed


def test_torchio_subject_round_trip_keeps_affine_and_history() -> None:
    subject = _subject(blobs(5)[None])
    transform = torchio.Compose([as_torchio(KeepLargest()), as_torchio(Remap({2: 1}))])
    result = transform(subject)
    assert np.array_equal(result.seg.affine, AFFINE)
    assert result.seg.data.shape == subject.seg.data.shape
    assert len(result.history) == 2
    expected = fastseg.remap(fastseg.largest_k(blobs(5)), {2: 1})
    assert np.array_equal(result.seg.data.numpy()[0], expected)
    assert torch.equal(subject.seg.data, torch.from_numpy(blobs(5)[None]))  # copied, not edited


def test_as_torchio_refuses_what_is_no_label_transform() -> None:
    with pytest.raises(TypeError, match="as_torchio takes a fastseg transform"):
        as_torchio(Stats())
    with pytest.raises(TypeError, match="as_torchio takes a fastseg transform"):
        as_torchio(lambda x: x)  # type: ignore[arg-type]


# == MetaTensor and channels ==============================================================


def test_meta_tensor_round_trip_keeps_metadata() -> None:
    labels = MetaTensor(
        torch.from_numpy(blobs(6)[None]),
        affine=torch.from_numpy(AFFINE),
        meta={"filename_or_obj": "case_007.nii.gz"},
    )
    for transform in (KeepLargest(), RemoveSmall(10), Remap({1: 2})):
        result = transform(labels)
        assert isinstance(result, MetaTensor), transform
        assert np.array_equal(result.affine.numpy(), AFFINE)
        assert result.meta["filename_or_obj"] == "case_007.nii.gz"
        assert result.shape == labels.shape
    table = Stats()(labels)
    voxel = np.prod(np.linalg.norm(AFFINE[:3, :3], axis=0))
    assert np.allclose(table.volume, table.voxel_count * voxel)
    assert table.centroid_world is not None
    expected = fastseg.stats(blobs(6), affine=AFFINE)
    assert np.allclose(table.centroid_world, expected.centroid_world)


def test_channels_are_processed_one_by_one() -> None:
    two = np.stack([blobs(7), blobs(8)])  # (C, X, Y, Z)
    result = KeepLargest()(two)
    assert np.array_equal(result[0], fastseg.largest_k(two[0]))
    assert np.array_equal(result[1], fastseg.largest_k(two[1]))
    # A 3-D array is spatial unless told it has channels (MONAI 2-D images: C, H, W).
    planes = two[:, :, :, 0]
    assert not np.array_equal(KeepLargest()(planes), KeepLargest(channel_first=True)(planes))
    assert np.array_equal(KeepLargest(channel_first=True)(planes)[1], fastseg.largest_k(planes[1]))
    tables = Stats()(two)
    assert [t.voxel_count.tolist() for t in tables] == [
        fastseg.stats(c).voxel_count.tolist() for c in two
    ]


def test_channel_first_needs_a_spatial_axis() -> None:
    with pytest.raises(ValueError, match="channel axis and at least one spatial axis"):
        KeepLargest(channel_first=True)(np.array([1, 2]))
    with pytest.raises(TypeError, match="takes a numpy array or a torch tensor, got list"):
        KeepLargest()([1, 2])


def test_semantic_and_instance_transforms() -> None:
    shared = shared_data_path("torso_labels.nii.gz", "torso_labels.json")
    schema = fastseg.Schema.load(shared / "torso_labels.json")
    semantic = np.asanyarray(nibabel.load(shared / "torso_labels.nii.gz").dataobj)
    instances = ToInstances(schema)(semantic[None])
    expected, segments = fastseg.to_instances(semantic, schema)
    assert np.array_equal(instances[0], expected)
    back = ToSemantic(segments, schema)(torch.from_numpy(instances))
    assert np.array_equal(back.numpy()[0], semantic)


# == dictionary transforms ================================================================


def test_dictionary_transforms_apply_to_their_keys_only() -> None:
    schema = fastseg.Schema([fastseg.Category("a", 1), fastseg.Category("b", 2)])
    segments = fastseg.SegmentMap({1: fastseg.Segment("a"), 5: fastseg.Segment("b")})
    seg = np.array([[[0, 1, 5, 5]]])
    data: dict[str, Any] = {"seg": seg, "other": seg.copy(), "name": "case"}
    pipeline = [
        ToSemanticd("seg", segments, schema),
        KeepLargestd(["seg"], per_label=False, channel_first=True),
        RemoveSmalld("seg", 1),
        Remapd("seg", {2: 1}),
        ToInstancesd("seg", schema, channel_first=True),
        Statsd("seg"),
    ]
    result = data
    for transform in pipeline:
        result = transform(result)
    assert result["seg"].tolist() == [[[0, 1, 1, 1]]]
    assert result["seg_stats"].voxel_count.tolist() == [3]
    assert result["other"] is seg or np.array_equal(result["other"], seg)
    assert data["seg"] is seg  # the input dict is not modified
    assert "seg_stats" not in data


def test_dictionary_transforms_missing_keys() -> None:
    with pytest.raises(KeyError, match=r"key 'label' is not in the data \(keys: 'seg'\)"):
        Remapd("label", {1: 2})({"seg": np.zeros(2, np.uint8)})
    skipped = Remapd(["label", "seg"], {1: 2}, allow_missing_keys=True)
    assert skipped({"seg": np.ones(2, np.uint8)})["seg"].tolist() == [2, 2]


def test_dictionary_transforms_in_a_monai_compose() -> None:
    labels = MetaTensor(torch.from_numpy(blobs(9)[None]), affine=torch.from_numpy(AFFINE))
    pipeline = monai_transforms.Compose(
        [KeepLargestd("seg"), Remapd("seg", {3: 0}), monai_transforms.EnsureTyped("seg")]
    )
    result = pipeline({"seg": labels})["seg"]
    assert isinstance(result, MetaTensor)
    expected = fastseg.remap(fastseg.largest_k(blobs(9)), {3: 0})
    assert np.array_equal(result.numpy()[0], expected)
    assert np.array_equal(result.affine.numpy(), AFFINE)

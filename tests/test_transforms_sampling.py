"""Balanced crops against MONAI's RandCropByLabelClasses and TorchIO's samplers: the same
crop (and metadata) for the same centre, and the documented distribution of centres."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torchio
from monai.data import MetaTensor
from monai.transforms import RandCropByLabelClasses, RandCropByLabelClassesd
from monai.transforms.utils import correct_crop_centers
from scipy.stats import chisquare

import fastseg
from fastseg.sampling import Locations
from fastseg.transforms_sampling import (
    RandCropByClasses,
    RandCropByClassesd,
    crop,
    shifted_centre,
    torchio_sampler,
)

AFFINE = torch.tensor(
    [[0.8, 0, 0, -10.0], [0, 0.8, 0, 4.0], [0, 0, 2.5, 30.0], [0, 0, 0, 1]], dtype=torch.float64
)
SHAPE = (10, 12, 9)


def _volume() -> tuple[MetaTensor, MetaTensor]:
    image = torch.arange(2 * np.prod(SHAPE), dtype=torch.float32).reshape(2, *SHAPE)
    label = torch.zeros(1, *SHAPE, dtype=torch.uint8)
    label[0, 1:4, 2:6, 3:7] = 1
    label[0, 7:, 9:, 6:] = 2
    return MetaTensor(image, affine=AFFINE), MetaTensor(label, affine=AFFINE)


def _one_voxel(voxel: tuple[int, ...]) -> Locations:
    return Locations({1: np.array([voxel], np.int32)}, {1: 1}, SHAPE, 0)


@pytest.mark.parametrize("size", [(4, 5, 3), (3, 3, 3), (10, 1, 8)])
def test_shifted_centres_are_monais(size: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        centre = tuple(int(rng.integers(n)) for n in SHAPE)
        expected = correct_crop_centers(list(centre), size, SHAPE)
        assert shifted_centre(centre, size, SHAPE) == tuple(int(c) for c in expected)


@pytest.mark.parametrize(
    "voxel", [(9, 0, 4), (0, 0, 0), (5, 6, 4), (9, 11, 8), (2, 11, 0)], ids=str
)
@pytest.mark.parametrize("size", [(4, 5, 3), (3, 3, 3)], ids=str)
def test_same_centre_same_crop_and_metadata_as_monai(
    voxel: tuple[int, ...], size: tuple[int, ...]
) -> None:
    image, label = _volume()
    monai = RandCropByLabelClasses(size, ratios=[0, 1], num_classes=2, num_samples=2, warn=False)
    flat = np.ravel_multi_index(voxel, SHAPE)
    expected = monai(image, label=label, indices=[np.zeros(0, np.int64), np.array([flat])])
    ours = RandCropByClasses(size, {1: 1}, num_samples=2, seed=0)(
        image, locations=_one_voxel(voxel)
    )
    for got, want in zip(ours, expected, strict=True):
        assert isinstance(got, MetaTensor)
        assert torch.equal(got.as_tensor(), want.as_tensor())
        assert torch.allclose(got.affine, want.affine)
        assert got.meta["crop_center"] == tuple(want.meta["crop_center"])
        assert got.meta["patch_index"] == want.meta["patch_index"]


def test_dictionary_version_crops_images_and_labels_together_like_monai() -> None:
    image, label = _volume()
    voxel = (8, 10, 7)
    flat = np.ravel_multi_index(voxel, SHAPE)
    monai = RandCropByLabelClassesd(
        ["image", "label"], "label", (4, 4, 4), ratios=[0, 1], num_classes=2, warn=False,
        indices_key="indices",
    )  # fmt: skip
    data = {"image": image, "label": label, "name": "case"}
    expected = monai({**data, "indices": [np.zeros(0, np.int64), np.array([flat])]})
    ours = RandCropByClassesd(
        ["image", "label"], "label", (4, 4, 4), {1: 1}, locations_key="where", seed=0
    )({**data, "where": _one_voxel(voxel)})
    assert ours[0]["name"] == "case"
    for key in ("image", "label"):
        assert torch.equal(ours[0][key].as_tensor(), expected[0][key].as_tensor())
        assert torch.allclose(ours[0][key].affine, expected[0][key].affine)


def test_crop_pads_outside_and_views_inside() -> None:
    array = np.arange(2 * 6 * 5).reshape(2, 6, 5)
    padded = crop(array, (-2, 3), (4, 4), pad_value=-1)
    reference = np.pad(array, ((0, 0), (2, 0), (0, 2)), constant_values=-1)[:, 0:4, 3:7]
    np.testing.assert_array_equal(padded, reference)
    inside = crop(array, (1, 1), (2, 2))
    assert np.shares_memory(inside, array)
    assert crop(array, (10, 10), (2, 2), pad_value=7).tolist() == [[[7, 7], [7, 7]]] * 2
    tensor = crop(torch.from_numpy(array), (4, 0), (3, 5))
    assert isinstance(tensor, torch.Tensor)
    assert tuple(tensor.shape) == (2, 3, 5)


def test_pad_keeps_the_centre() -> None:
    image, _ = _volume()
    cropper = RandCropByClasses((4, 4, 4), {1: 1}, border="pad", pad_value=-5, seed=0)
    (got,) = cropper(image, locations=_one_voxel((0, 11, 8)))
    assert got.meta["crop_center"] == (0, 11, 8)
    padded = np.pad(image.numpy(), ((0, 0), (2, 2), (2, 2), (2, 2)), constant_values=-5)
    np.testing.assert_array_equal(got.numpy(), padded[:, 0:4, 11:15, 8:12])


def _centre_classes(cropper: RandCropByClasses, label: np.ndarray, draws: int) -> Counter[int]:
    shape = label.shape[1:]
    pool = cropper.pool(label, None, shape)
    return Counter(int(label[(0, *c)]) for c in cropper.centres(pool, draws))


def test_classes_are_drawn_by_their_ratios() -> None:
    _, label = _volume()
    array = label.numpy()
    cropper = RandCropByClasses((3, 3, 3), {0: 1, 1: 2, 2: 5}, seed=3)
    counts = _centre_classes(cropper, array, 4000)
    observed = [counts[0], counts[1], counts[2]]
    expected = [4000 * w / 8 for w in (1, 2, 5)]
    assert chisquare(observed, expected).pvalue > 1e-3
    # A sequence is indexed by class id, as in MONAI.
    sequence = RandCropByClasses((3, 3, 3), [0, 1, 1], seed=3)
    assert set(_centre_classes(sequence, array, 200)) == {1, 2}


def test_centres_are_uniform_over_a_class() -> None:
    label = np.zeros((1, 9, 9), np.uint8)
    label[0, 2:5, 3:8] = 1  # 15 voxels
    cropper = RandCropByClasses((3, 3), {1: 1}, border="pad", seed=1)
    pool = cropper.pool(label, None, (9, 9))
    counts = Counter(cropper.centres(pool, 3000))
    assert len(counts) == 15
    assert chisquare(list(counts.values())).pvalue > 1e-3


def test_instances_are_drawn_equally_whatever_their_size() -> None:
    label = np.zeros((1, 30, 30), np.uint8)
    label[0, :20, :20] = 1  # 400 voxels
    label[0, 25, 25] = 1  # one voxel
    by_class = RandCropByClasses((3, 3), {1: 1}, border="pad", seed=0)
    by_instance = RandCropByClasses((3, 3), {1: 1}, border="pad", balance="instances", seed=0)
    for cropper, expected in ((by_class, 3000 / 401), (by_instance, 1500)):
        pool = cropper.pool(label, None, (30, 30))
        small = sum(c == (25, 25) for c in cropper.centres(pool, 3000))
        assert abs(small - expected) < 5 * np.sqrt(expected) + 3


def test_inside_only_draws_centres_whose_crop_fits() -> None:
    _, label = _volume()
    cropper = RandCropByClasses((4, 4, 4), {2: 1}, border="inside", seed=0)
    pool = cropper.pool(label.numpy(), None, SHAPE)
    centres = cropper.centres(pool, 300)
    for centre in centres:
        start = np.array(centre) - 2
        assert (start >= 0).all()
        assert (start + 4 <= np.array(SHAPE)).all()
    # Every voxel of class 2 whose crop fits (TorchIO's rule): 7..8, 9..10, 6..7.
    assert set(centres) == {(a, b, c) for a in (7, 8) for b in (9, 10) for c in (6, 7)}
    never = RandCropByClasses((10, 10, 10), {2: 1}, border="inside", seed=0)
    with pytest.raises(ValueError, match="inside the image"):
        never.centres(never.pool(label.numpy(), None, SHAPE), 1)


def test_index_files_and_their_checks(tmp_path: Path) -> None:
    image, label = _volume()
    path = tmp_path / "case.fsidx"
    fastseg.write_index(path, label.numpy()[0], per_class=50, per_instance=10, seed=0)
    cropper = RandCropByClassesd(
        ["image", "label"], "label", (3, 3, 3), {2: 1}, num_samples=20, locations_key="index",
        balance="instances", seed=0,
    )  # fmt: skip
    crops = cropper({"image": image, "label": label, "index": str(path)})
    assert len(crops) == 20
    for sample in crops:
        centre = sample["label"].meta["crop_center"]
        assert label[(0, *centre)] == 2
    small = {"image": image[:, :5], "label": label[:, :5], "index": str(path)}
    with pytest.raises(ValueError, match="shape"):
        cropper(small)


def test_seeds_reproduce_and_workers_differ() -> None:
    _, label = _volume()
    first = RandCropByClasses((3, 3, 3), seed=5)
    second = RandCropByClasses((3, 3, 3), seed=5)
    array = label.numpy()
    assert first.draw(array, None, SHAPE) == second.draw(array, None, SHAPE)
    first.set_random_state(6)
    draws = {tuple(first.draw(array, None, SHAPE)) for _ in range(5)}
    assert len(draws) > 1


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="balance"):
        RandCropByClasses(3, balance="voxels")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="border"):
        RandCropByClasses(3, border="wrap")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        RandCropByClasses(3, {1: -1})
    with pytest.raises(ValueError, match="positive weight"):
        RandCropByClasses(3, [0, 0])
    with pytest.raises(ValueError, match="spatial_size"):
        RandCropByClasses((3, 0))
    with pytest.raises(ValueError, match="num_samples"):
        RandCropByClasses(3, num_samples=0)
    cropper = RandCropByClasses((2, 2, 2), {5: 1})
    _, label = _volume()
    with pytest.raises(ValueError, match="no class"):
        cropper(label, label)
    with pytest.raises(ValueError, match="one channel"):
        RandCropByClasses((2, 2, 2))(label, torch.zeros(2, *SHAPE, dtype=torch.uint8))
    with pytest.raises(KeyError, match="not in the data"):
        RandCropByClassesd(["image"], "label", 2)({"label": label})
    with pytest.raises(TypeError, match="locations must be"):
        RandCropByClasses((2, 2, 2))(label, locations=[1, 2])  # type: ignore[arg-type]


# -- TorchIO -------------------------------------------------------------------------------


def _subject() -> torchio.Subject:
    image, label = _volume()
    return torchio.Subject(
        image=torchio.ScalarImage(tensor=image.as_tensor(), affine=AFFINE.numpy()),
        label=torchio.LabelMap(tensor=label.as_tensor(), affine=AFFINE.numpy()),
    )


def test_torchio_patches_equal_torchios_for_the_same_corner() -> None:
    subject = _subject()
    sampler = torchio_sampler((4, 4, 4), ratios={1: 1, 2: 1}, seed=0)
    anchor = torchio.LabelSampler((4, 4, 4), label_name="label")
    for patch in sampler(subject, num_patches=25):
        location = patch[torchio.LOCATION].tolist()
        start = tuple(location[:3])
        expected = anchor.extract_patch(subject, start)
        for name in ("image", "label"):
            assert torch.equal(patch[name].data, expected[name].data)
            np.testing.assert_allclose(patch[name].affine, expected[name].affine)
        centre = tuple(s + 2 for s in start)
        assert int(subject["label"].data[(0, *centre)]) in (1, 2)


def test_torchio_pad_and_queue() -> None:
    subject = _subject()
    sampler = torchio_sampler(6, ratios={2: 1}, border="pad", seed=1)
    patch = next(iter(sampler(subject, num_patches=1)))
    assert tuple(patch["label"].shape) == (1, 6, 6, 6)
    queue = torchio.Queue(
        torchio.SubjectsDataset([subject]), max_length=4, samples_per_volume=4,
        sampler=torchio_sampler(4, ratios={1: 1}, seed=2), num_workers=0, shuffle_subjects=False,
        shuffle_patches=False, verbose=False,
    )  # fmt: skip
    patches = [queue[i] for i in range(4)]
    assert all(tuple(p["image"].shape) == (2, 4, 4, 4) for p in patches)


def test_torchio_from_an_index(tmp_path: Path) -> None:
    subject = _subject()
    path = tmp_path / "case.fsidx"
    fastseg.write_index(path, subject["label"].data.numpy()[0], per_class=20, seed=0)
    subject["index"] = str(path)
    sampler = torchio_sampler(3, ratios={2: 1}, locations_name="index", seed=0)
    for patch in sampler(subject, num_patches=5):
        start = patch[torchio.LOCATION].tolist()[:3]
        assert int(subject["label"].data[(0, *(s + 1 for s in start))]) == 2

"""fastseg.locations against a voxel-by-voxel bottom-k reference, nnU-Net's sample sizes
and chi-square tests of uniformity and independence (shown to reject biased samplers)."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from itertools import combinations, pairwise
from typing import Any

import numpy as np
import pytest
import reference as ref
import scipy.ndimage as ndi
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare
from strategies import blocky_volume, label_arrays, layout

import fastseg
from fastseg._kernels import sampling as sampling_kernels
from fastseg.sampling import sample_sizes


def _as_lists(found: dict[int, np.ndarray]) -> dict[int, list[tuple[int, ...]]]:
    return {i: [tuple(int(c) for c in row) for row in coords] for i, coords in found.items()}


def _sizes(labels: np.ndarray, k: int | None, ids: list[int] | None = None) -> dict[int, int]:
    values, counts = ref.unique(labels)
    count_of = dict(zip(values, counts, strict=True))
    wanted = [v for v in values if v != 0] if ids is None else ids
    return {i: min(count_of.get(i, 0), k if k is not None else count_of.get(i, 0)) for i in wanted}


# -- against the reference -----------------------------------------------------------------


@settings(max_examples=40)
@given(labels=label_arrays(max_side=6), k=st.none() | st.integers(1, 5), seed=st.integers(0, 2**70))
def test_locations_equal_the_bottom_k_reference(
    labels: np.ndarray, k: int | None, seed: int
) -> None:
    found = fastseg.locations(labels, per_class=k, seed=seed)
    expected = ref.locations_reference(labels, _sizes(labels, k), seed)
    assert _as_lists(dict(found)) == expected
    assert found.seed == seed
    assert found.shape == labels.shape
    for coords in found.values():
        assert coords.dtype == np.int32
        assert coords.shape[1] == labels.ndim


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint32, np.int64, np.uint64])
@pytest.mark.parametrize("order", ["C", "F"])
def test_blocky_volumes_equal_the_reference(dtype: Any, order: str) -> None:
    labels = np.asarray(blocky_volume((14, 11, 9), 5, 3, seed=4).astype(dtype), order=order)
    found = fastseg.locations(labels, per_class=20, ids=[0, 2, 5, 9], seed=11)
    expected = ref.locations_reference(labels, _sizes(labels, 20, [0, 2, 5, 9]), 11)
    assert _as_lists(dict(found)) == expected
    assert found[9].shape == (0, 3)
    assert found.counts[9] == 0
    assert found.counts[0] == int((labels == 0).sum())


def test_sparse_wide_ids_and_bool() -> None:
    labels = np.zeros((7, 9), np.uint64)
    labels[1:3, 2:6] = 2**63 + 5
    labels[5, :] = 10**12
    found = fastseg.locations(labels, per_class=3, seed=2)
    assert _as_lists(dict(found)) == ref.locations_reference(labels, _sizes(labels, 3), 2)
    mask = labels > 0
    found_mask = fastseg.locations(mask, per_class=None, seed=2)
    assert sorted(found_mask) == [1]
    assert found_mask[1].shape == (int(mask.sum()), 2)


@pytest.mark.parametrize("shape", [(0,), (0, 4), (3, 0, 2), (1,), (1, 1, 1)])
def test_empty_and_single_voxel(shape: tuple[int, ...]) -> None:
    labels = np.ones(shape, np.uint8)
    found = fastseg.locations(labels, seed=0, per_instance=2)
    if labels.size:
        assert found[1].tolist() == [[0] * len(shape)]
        assert found.instances is not None
        assert found.instances[1].tolist() == [[0] * len(shape)]
    else:
        assert dict(found) == {}
        assert found.instances == {}
    assert dict(fastseg.locations(labels, ids=[3], seed=0))[3].shape == (0, len(shape))


def test_the_sample_is_in_random_order_and_its_prefix_is_a_smaller_sample() -> None:
    labels = blocky_volume((20, 20, 20), 3, 4, seed=1)
    big = fastseg.locations(labels, per_class=200, seed=5)
    small = fastseg.locations(labels, per_class=50, seed=5)
    for i in small:
        np.testing.assert_array_equal(big[i][:50], small[i])
        flat = np.ravel_multi_index(tuple(big[i].T), labels.shape)
        assert not np.all(np.diff(flat) > 0)  # not in scan order


def test_the_same_at_any_thread_count_and_memory_order() -> None:
    labels = blocky_volume((70, 64, 60), 6, 5, seed=2)
    first = fastseg.locations(labels, per_class=500, per_instance=30, seed=3, threads=1)
    for threads, array in ((2, labels), (1, np.asfortranarray(labels)), (2, labels.T.copy().T)):
        other = fastseg.locations(array, per_class=500, per_instance=30, seed=3, threads=threads)
        assert first.keys() == other.keys()
        for i in first:
            np.testing.assert_array_equal(first[i], other[i])
        assert first.instances is not None
        assert other.instances is not None
        assert first.instances.keys() == other.instances.keys()
        for i in first.instances:
            np.testing.assert_array_equal(first.instances[i], other.instances[i])


def test_large_classes_use_the_limit_and_agree_with_an_unlimited_run() -> None:
    # 200k voxels per class: keys above a per-class limit are skipped; the result must
    # be the true bottom-k, checked against the reference on one class.
    labels = np.zeros((100, 100, 40), np.uint8)
    labels[:50] = 1
    labels[50:, :, :20] = 2
    found = fastseg.locations(labels, per_class=40, seed=9)
    keys = ref.seed_state(9)
    flat = np.flatnonzero(labels.ravel() == 2)
    ranked = sorted(flat.tolist(), key=lambda i: ref.voxel_key(i, keys))[:40]
    expected = [tuple(int(c) for c in np.unravel_index(i, labels.shape)) for i in ranked]
    assert _as_lists({2: found[2]})[2] == expected
    assert len({tuple(r) for r in found[1].tolist()}) == 40
    assert (labels[tuple(found[1].T)] == 1).all()


def _numpy_bottom_k(labels: np.ndarray, value: int, k: int, seed: int) -> np.ndarray:
    """The coordinates of the ``k`` voxels of ``value`` with the smallest keys, in key
    order: the reference's keys in numpy's wrapping uint64 arithmetic."""
    flat = np.flatnonzero(labels.ravel() == value).astype(np.uint64)
    z = flat * np.uint64(0x9E3779B97F4A7C15) + np.uint64(ref.seed_state(seed))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    chosen = flat[np.argsort(z, kind="stable")[:k]].astype(np.int64)
    return np.stack(np.unravel_index(chosen, labels.shape), axis=1)


def _big_classes() -> np.ndarray:
    labels = np.zeros((60, 50, 40), np.uint8)
    labels[:30] = 1
    labels[30:, :25] = 2
    labels[30:, 25:, ::3] = 3
    labels[45:, 40:, :] = 4
    return labels


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("order", ["C", "F"])
def test_samples_kept_in_the_result_rows_equal_numpy_bottom_k(threads: int, order: str) -> None:
    # 3,000 of 10,000 to 60,000 voxels: the keys fit in the rows of the result.
    labels = np.asarray(_big_classes(), order=order)
    found = fastseg.locations(labels, per_class=3000, seed=12, threads=threads)
    expected = {v: _numpy_bottom_k(labels, v, 3000, 12) for v in (1, 2, 3, 4)}
    for value in (1, 2, 3, 4):
        np.testing.assert_array_equal(found[value], expected[value])
        assert found[value].dtype == np.int32
    found[2][:] = -1  # each class has rows of its own
    for value in (1, 3, 4):
        np.testing.assert_array_equal(found[value], expected[value])


@functools.cache
def sort_keys_from_a_kernel() -> Any:
    """The key sort, which only kernels can call, behind a kernel of the test's own."""
    import numba

    sort_keys = sampling_kernels._sort_keys

    @numba.njit
    def call(keys: np.ndarray, start: int, stop: int) -> None:
        sort_keys(keys, start, stop)

    return call


@pytest.mark.parametrize("kind", ["random", "sorted", "reversed", "few values", "organ pipe"])
@pytest.mark.parametrize("size", [0, 1, 2, 14, 15, 16, 100, 5000])
def test_the_key_sort_sorts_its_range_only(kind: str, size: int) -> None:
    rng = np.random.default_rng(size)
    keys = {
        "random": rng.integers(0, 2**64, size, dtype=np.uint64),
        "sorted": np.arange(size, dtype=np.uint64),
        "reversed": np.arange(size, dtype=np.uint64)[::-1].copy(),
        "few values": rng.integers(0, 3, size, dtype=np.uint64),
        "organ pipe": np.minimum(np.arange(size), np.arange(size)[::-1]).astype(np.uint64),
    }[kind]
    # The range to sort sits between untouched keys.
    buffer = np.concatenate([np.full(3, 7, np.uint64), keys, np.full(2, 1, np.uint64)])
    sort_keys_from_a_kernel()(buffer, 3, 3 + size)
    np.testing.assert_array_equal(buffer[3 : 3 + size], np.sort(keys))
    np.testing.assert_array_equal(buffer[:3], 7)
    np.testing.assert_array_equal(buffer[3 + size :], 1)


def test_ids_short_of_their_sample_are_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # No margin: most ids find fewer keys below their limit than they need, or a block
    # finds more than its room; they are drawn again with a wider margin.
    import fastseg.sampling as sampling

    calls: list[int] = []
    finish = sampling_kernels.finish

    def counted(*args: Any) -> Any:
        calls.append(1)
        return finish(*args)

    monkeypatch.setattr(sampling, "_MARGIN", 0.0)
    monkeypatch.setattr(sampling_kernels, "finish", counted)
    labels = _big_classes()
    for threads in (1, 2):
        found = fastseg.locations(labels, per_class=700, seed=3, threads=threads)
        for value in (1, 2, 3, 4):
            np.testing.assert_array_equal(found[value], _numpy_bottom_k(labels, value, 700, 3))
    assert len(calls) > 2


def test_tensors_and_nifti_images() -> None:
    import nibabel

    labels = blocky_volume((9, 8, 7), 3, 2, seed=0)
    expected = fastseg.locations(labels, per_class=5, seed=1)
    from_tensor = fastseg.locations(torch.from_numpy(labels), per_class=5, seed=1)
    image = nibabel.Nifti1Image(np.asfortranarray(labels), np.eye(4))
    from_image = fastseg.locations(image, per_class=5, seed=1)
    for other in (from_tensor, from_image):
        for i in expected:
            np.testing.assert_array_equal(np.asarray(other[i]), expected[i])


def test_a_fresh_seed_is_recorded_and_reproduces_the_sample() -> None:
    labels = blocky_volume((12, 12, 12), 3, 3, seed=0)
    first = fastseg.locations(labels, per_class=10)
    again = fastseg.locations(labels, per_class=10, seed=first.seed)
    for i in first:
        np.testing.assert_array_equal(first[i], again[i])
    other = fastseg.locations(labels, per_class=10)
    assert other.seed != first.seed


# -- sample sizes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "total", [1, 2, 99, 9_999, 10_000, 10_001, 999_999, 1_000_000, 1_000_001, 1_000_099, 12_345_678]
)
def test_nnunet_sizes(total: int) -> None:
    assert sample_sizes([total], 10_000, 0.01).tolist() == [ref.nnunet_sample_size(total)]


def test_mode_nnunet_takes_nnunets_sizes() -> None:
    labels = np.zeros((120, 110, 100), np.uint8)
    labels[:, :, :95] = 1  # 1,254,000 voxels: the 1 % rule gives 12,540
    labels[:, :, 97:] = 2  # 39,600 voxels: 10,000
    labels[0, 0, 95] = 3
    found = fastseg.locations(labels, mode="nnunet", seed=0)
    for i in (1, 2, 3):
        assert len(found[i]) == ref.nnunet_sample_size(int((labels == i).sum()))
        assert len({tuple(r) for r in found[i].tolist()}) == len(found[i])
        assert (labels[tuple(found[i].T)] == i).all()


def test_fraction_and_per_class() -> None:
    labels = np.zeros(1000, np.uint8)
    labels[:400] = 1
    labels[400:410] = 2

    def sizes(**kwargs: Any) -> dict[int, int]:
        return {i: len(v) for i, v in fastseg.locations(labels, **kwargs).items()}

    assert sizes(per_class=None, fraction=0.25) == {1: 100, 2: 3}
    assert sizes(per_class=5, fraction=0.25) == {1: 100, 2: 5}
    assert sizes(per_class=None) == {1: 400, 2: 10}


# -- instances -----------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["C", "F"])
def test_every_component_gets_locations(order: str) -> None:
    labels = np.asarray(blocky_volume((16, 15, 14), 3, 2, seed=6), order=order)
    found = fastseg.locations(labels, per_class=10, per_instance=4, seed=8)
    assert found.instances is not None
    assert found.instance_classes is not None
    assert found.instance_counts is not None
    # Components by scipy, class by class: their sizes must be the instances' counts.
    sizes: list[int] = []
    for value in range(1, 4):
        components, n = ndi.label(labels == value, structure=np.ones((3, 3, 3)))
        sizes += np.bincount(components.ravel(), minlength=n + 1)[1:].tolist()
    assert sorted(found.instance_counts.values()) == sorted(sizes)
    components = fastseg.label(labels).labels
    instance_sizes = {i: min(4, c) for i, c in found.instance_counts.items()}
    assert _as_lists(found.instances) == ref.locations_reference(components, instance_sizes, 8)
    for instance, coords in found.instances.items():
        assert (labels[tuple(coords.T)] == found.instance_classes[instance]).all()


def test_an_instance_map_with_its_classes() -> None:
    classes = np.zeros((6, 8), np.uint8)
    classes[:3] = 1
    classes[3:, 4:] = 2
    instances = np.zeros((6, 8), np.uint32)
    instances[:3, :4] = 70_000
    instances[:3, 4:] = 5
    instances[3:, 4:] = 9
    found = fastseg.locations(classes, per_instance=3, instances=instances, ids=[1], seed=1)
    assert found.instance_classes == {5: 1, 70_000: 1}
    assert found.instance_counts == {5: 12, 70_000: 12}
    assert found.instances is not None
    for instance, coords in found.instances.items():
        assert len(coords) == 3
        assert (instances[tuple(coords.T)] == instance).all()
    crossing = instances.copy()
    crossing[5, 7] = 5
    with pytest.raises(ValueError, match="covers more than one value"):
        fastseg.locations(classes, per_instance=3, instances=crossing)
    with pytest.raises(ValueError, match="same shape"):
        fastseg.locations(classes, per_instance=3, instances=instances[:2])


# -- uniformity and independence -----------------------------------------------------------

Sampler = Callable[[np.ndarray, int, int], np.ndarray]


def _fastseg_sampler(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    coords: np.ndarray = fastseg.locations(labels, per_class=k, seed=seed)[1]
    return np.ravel_multi_index(tuple(coords.T), labels.shape)


def _first_k_sampler(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    return np.flatnonzero(labels.ravel() == 1)[:k]


def _window_sampler(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Uniform for each voxel but not independent: k consecutive voxels from a random
    start."""
    voxels = np.flatnonzero(labels.ravel() == 1)
    start = np.random.default_rng(seed).integers(voxels.size)
    return voxels[(start + np.arange(k)) % voxels.size]


def _uniformity_p(sampler: Sampler, labels: np.ndarray, k: int, draws: int) -> float:
    counts = Counter()  # type: Counter[int]
    for seed in range(draws):
        chosen = sampler(labels, k, seed)
        assert len(set(chosen.tolist())) == k
        counts.update(chosen.tolist())
    voxels = np.flatnonzero(labels.ravel() == 1).tolist()
    observed = [counts[v] for v in voxels]
    return float(chisquare(observed).pvalue)


def _pair_p(sampler: Sampler, labels: np.ndarray, k: int, draws: int) -> float:
    counts = Counter()  # type: Counter[tuple[int, int]]
    for seed in range(draws):
        counts.update(combinations(sorted(sampler(labels, k, seed).tolist()), 2))
    voxels = np.flatnonzero(labels.ravel() == 1).tolist()
    observed = [counts[pair] for pair in combinations(voxels, 2)]
    return float(chisquare(observed).pvalue)


def _scattered_class(order: str) -> np.ndarray:
    labels = np.zeros((5, 6, 7), np.uint8)
    rng = np.random.default_rng(0)
    labels.ravel()[rng.choice(labels.size, 60, replace=False)] = 1
    labels.ravel()[rng.choice(np.flatnonzero(labels.ravel() == 0), 40, replace=False)] = 2
    return np.asarray(labels, order=order)


@pytest.mark.parametrize("order", ["C", "F"])
def test_every_voxel_is_drawn_equally_often(order: str) -> None:
    labels = _scattered_class(order)
    assert _uniformity_p(_fastseg_sampler, labels, 6, 1500) > 1e-3


def test_the_uniformity_test_rejects_a_first_k_sampler() -> None:
    assert _uniformity_p(_first_k_sampler, _scattered_class("C"), 6, 1500) < 1e-6


def test_pairs_are_drawn_equally_often() -> None:
    labels = np.zeros((3, 4), np.uint8)
    labels.ravel()[[0, 1, 2, 4, 5, 7, 8, 9, 10, 11]] = 1  # 10 voxels: 45 pairs
    assert _pair_p(_fastseg_sampler, labels, 3, 1500) > 1e-3
    # Uniform marginals do not make a uniform sample: a window sampler fails here.
    assert _uniformity_p(_window_sampler, labels, 3, 1500) > 1e-3
    assert _pair_p(_window_sampler, labels, 3, 1500) < 1e-6


def test_samples_of_different_seeds_are_independent() -> None:
    # Overlap of the samples of seeds s and s + 1 follows the hypergeometric law.
    labels = np.ones(200, np.uint8)
    k = 20
    samples = [set(_fastseg_sampler(labels, k, s).tolist()) for s in range(601)]
    overlaps = [len(a & b) for a, b in pairwise(samples)]
    mean = np.mean(overlaps)
    expected = k * k / 200  # 2
    assert abs(mean - expected) < 0.3


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"per_class": 0}, ValueError, "per_class must be at least 1"),
        ({"per_class": 2.5}, TypeError, "per_class must be an int"),
        ({"per_instance": True}, TypeError, "per_instance must be an int"),
        ({"fraction": 0.0}, ValueError, "fraction must be in"),
        ({"fraction": "a"}, TypeError, "fraction must be a number"),
        ({"seed": -1}, ValueError, "seed must be non-negative"),
        ({"seed": 1.5}, TypeError, "seed must be a non-negative int"),
        ({"mode": "monai"}, ValueError, "mode must be 'nnunet'"),
        ({"mode": "nnunet", "per_class": 5}, ValueError, "nnU-Net's sizes"),
        ({"mode": "nnunet", "fraction": 0.5}, ValueError, "nnU-Net's sizes"),
        ({"ids": [1, -2]}, ValueError, "ids must be non-negative"),
        ({"ids": "12"}, TypeError, "ids must be an iterable"),
        ({"instances": np.ones((2, 2), np.uint8)}, ValueError, "only used with per_instance"),
        ({"threads": 0}, ValueError, "threads must be between"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        fastseg.locations(np.ones((2, 2), np.uint8), **kwargs)


def test_bad_labels() -> None:
    with pytest.raises(TypeError, match="integer or bool"):
        fastseg.locations(np.ones((2, 2), np.float32))
    with pytest.raises(ValueError, match="non-negative"):
        fastseg.locations(np.array([[-1, 2]], np.int8))
    with pytest.raises(ValueError, match="dimensions"):
        fastseg.locations(np.ones((1, 2, 2, 2), np.uint8))


def test_the_input_is_not_modified() -> None:
    labels = layout(blocky_volume((8, 9, 10), 3, 2, seed=3), "F")
    before = labels.copy()
    fastseg.locations(labels, per_instance=2, seed=1)
    np.testing.assert_array_equal(labels, before)

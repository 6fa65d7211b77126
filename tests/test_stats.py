"""Correctness tests for :func:`fastseg.stats` and :class:`fastseg.InstanceStats`.

References: the per-id numpy masks of ``reference.stats_reference`` on small random
volumes (every label dtype and layout, several image dtypes, anisotropic spacing, affines,
surface, requested ids, many blocks), SimpleITK's label shape and intensity filters on
random and real NIfTI volumes (read from disk by SimpleITK, by nibabel for fastseg), and
``cc3d.statistics`` on connected components.
"""

from __future__ import annotations

import csv
import importlib
import json
import math
from pathlib import Path
from typing import Any
from unittest import mock

import cc3d
import nibabel
import numba
import numpy as np
import pytest
import reference as ref
import SimpleITK as sitk
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import blocky_volume, label_arrays, layout

import fastseg

# The module; ``fastseg.stats`` is the function.
stats_module = importlib.import_module("fastseg.stats")

IMAGE_DTYPES = (np.uint8, np.int16, np.float32, np.float64)
INTENSITY_COLUMNS = ("mean", "std", "min", "max", "sum")

# Numba compiles one specialisation of the kernel per (label view dtype, image dtype),
# a few seconds each. The label dtypes are crossed with float64 images only (the dtype
# without an image too), the image dtypes with uint8 labels only (bool and int8 share
# that view); the other tests stay within these pairs.


# -- helpers ------------------------------------------------------------------------------


def rotated_affine(
    spacing: tuple[float, float, float], seed: int, shear: float = 0.0
) -> np.ndarray:
    """A 4 x 4 affine: a random proper rotation of the scaled voxel axes (plus an optional
    shear between the first two), and a translation."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    axes = np.diag(np.asarray(spacing, np.float64))
    axes[0, 1] = shear
    affine = np.eye(4)
    affine[:3, :3] = q @ axes
    affine[:3, 3] = rng.uniform(-100, 100, 3)
    return affine


def tolerances(image: np.ndarray | None) -> dict[str, float]:
    """Absolute tolerances for columns that can be 0 (or cancel to near 0): the rounding
    of float sums is relative to the largest intensity, not to the result."""
    if image is None or image.size == 0:
        return {"intensity": 0.0, "sum": 0.0}
    scale = float(np.max(np.abs(image.astype(np.float64))))
    return {"intensity": 1e-9 * scale, "sum": 1e-9 * scale * image.size}


def assert_matches(
    table: fastseg.InstanceStats,
    expected: dict[str, Any],
    ndim: int,
    image: np.ndarray | None = None,
    surface: bool = False,
    world_scale: float = 1.0,
) -> None:
    """Every column of ``table`` against the reference: counts and boxes exactly, floats
    to 1e-9 relative (NaN where the reference has NaN)."""
    n = len(expected["ids"])
    assert isinstance(table, fastseg.InstanceStats)
    assert table.ids.dtype == np.uint64
    assert [int(i) for i in table.ids.tolist()] == expected["ids"]
    assert len(table) == n
    assert table.voxel_count.dtype == np.int64
    assert table.voxel_count.tolist() == expected["voxel_count"].tolist()
    assert table.bbox.shape == (n, ndim, 2)
    assert table.bbox.dtype == np.int64
    assert table.bbox.tolist() == expected["bbox"].tolist()
    assert table.centroid.shape == (n, ndim)
    np.testing.assert_allclose(table.volume, expected["volume"], rtol=1e-9, atol=0)
    np.testing.assert_allclose(table.centroid, expected["centroid"], rtol=1e-9, atol=0)
    if "centroid_world" in expected:
        assert table.centroid_world is not None
        assert table.centroid_world.shape == (n, 3)
        np.testing.assert_allclose(
            table.centroid_world, expected["centroid_world"], rtol=1e-9, atol=1e-9 * world_scale
        )
    else:
        assert table.centroid_world is None
    atol = tolerances(image)
    for name in INTENSITY_COLUMNS:
        column = getattr(table, name)
        if image is None:
            assert column is None, name
            continue
        assert column is not None, name
        assert column.shape == (n,), name
        np.testing.assert_allclose(
            column,
            expected[name],
            rtol=1e-9,
            atol=atol["sum" if name == "sum" else "intensity"],
            err_msg=name,
        )
    if surface:
        assert table.surface is not None
        np.testing.assert_allclose(table.surface, expected["surface"], rtol=1e-9, atol=0)
    else:
        assert table.surface is None


# -- against the naive reference ----------------------------------------------------------


def _images(shape: tuple[int, ...], dtype: Any) -> st.SearchStrategy[np.ndarray]:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        elements = st.floats(-1e4, 1e4, width=8 * dtype.itemsize)
    else:
        info = np.iinfo(dtype)
        elements = st.integers(int(info.min), int(info.max))
    return hnp.arrays(dtype, shape, elements=elements)


@st.composite
def geometries(draw: st.DrawFn, ndim: int) -> tuple[list[float] | None, np.ndarray | None]:
    """No geometry, an anisotropic spacing, an affine, or both."""
    spacing = draw(st.none() | st.lists(st.floats(0.05, 20.0), min_size=ndim, max_size=ndim))
    affine = None
    if draw(st.booleans()):
        sizes = draw(st.lists(st.floats(0.1, 5.0), min_size=3, max_size=3))
        affine = rotated_affine(
            (sizes[0], sizes[1], sizes[2]),
            seed=draw(st.integers(0, 1000)),
            shear=draw(st.sampled_from([0.0, 0.4])),
        )
    return spacing, affine


@st.composite
def requested_ids(draw: st.DrawFn, labels: np.ndarray) -> list[int] | None:
    """None, or a shuffled mix of present and absent ids."""
    if draw(st.booleans()):
        return None
    present = sorted({int(v) for v in np.unique(labels).tolist()} - {0})
    chosen = draw(st.lists(st.sampled_from(present), unique=True)) if present else []
    absent = draw(st.lists(st.integers(0, 2**64 - 1), max_size=3))
    return draw(st.permutations(chosen + absent))


def _check_against_reference(
    labels: np.ndarray,
    image: np.ndarray | None,
    spacing: list[float] | None,
    affine: np.ndarray | None,
    surface: bool,
    ids: list[int] | None,
    rows_per_block: int,
) -> None:
    before = labels.copy()
    image_before = None if image is None else image.copy()
    with mock.patch.object(stats_module, "_ROWS_PER_BLOCK", rows_per_block):
        table = fastseg.stats(
            labels, image, spacing=spacing, affine=affine, surface=surface, ids=ids
        )
    expected = ref.stats_reference(labels, image, spacing, affine, surface, ids)
    world_scale = 1.0 if affine is None else float(np.abs(affine).max()) * max(labels.shape)
    assert_matches(table, expected, labels.ndim, image, surface, world_scale)
    if spacing is not None:
        sizes = tuple(spacing)
    elif affine is not None:
        sizes = tuple(np.linalg.norm(affine[:3, : labels.ndim], axis=0).tolist())
    else:
        sizes = (1.0,) * labels.ndim
    assert table.spacing == pytest.approx(sizes, rel=1e-12)
    assert np.array_equal(labels, before)
    if image is not None:
        assert np.array_equal(image, image_before)


@given(data=st.data())
def test_label_dtypes_and_layouts_match_reference(data: st.DataObject) -> None:
    """Every label dtype and layout, float64 or no image, any geometry; blocks down to
    one row each, so that blocks are merged and faces counted across block seams."""
    labels = data.draw(label_arrays())
    image = None
    if data.draw(st.booleans()):
        image = layout(
            data.draw(_images(labels.shape, np.float64)),
            data.draw(st.sampled_from(["C", "F", "strided"])),
        )
    spacing, affine = data.draw(geometries(labels.ndim))
    _check_against_reference(
        labels,
        image,
        spacing,
        affine,
        surface=data.draw(st.booleans()),
        ids=data.draw(requested_ids(labels)),
        rows_per_block=data.draw(st.sampled_from([1, 2, 256])),
    )


@given(data=st.data())
def test_image_dtypes_and_layouts_match_reference(data: st.DataObject) -> None:
    """Every image dtype, laid out independently of the (one-byte) labels."""
    labels = data.draw(label_arrays(dtypes=(np.uint8, np.int8, np.bool_)))
    dtype = data.draw(st.sampled_from(IMAGE_DTYPES))
    image = layout(
        data.draw(_images(labels.shape, dtype)), data.draw(st.sampled_from(["C", "F", "strided"]))
    )
    if data.draw(st.booleans()):
        image = image.astype(image.dtype.newbyteorder(">"))  # byte-swapped
    spacing, affine = data.draw(geometries(labels.ndim))
    _check_against_reference(
        labels,
        image,
        spacing,
        affine,
        surface=data.draw(st.booleans()),
        ids=None,
        rows_per_block=data.draw(st.sampled_from([1, 256])),
    )


@pytest.mark.parametrize("kind", ["C", "F", "strided"])
@pytest.mark.parametrize("image_kind", ["C", "F"])
def test_blobs_match_reference(kind: str, image_kind: str) -> None:
    """A larger 3-D volume (several blocks at the default block size) with an image."""
    labels = layout(blocky_volume((37, 52, 45), 9, 5, seed=1), kind)
    rng = np.random.default_rng(2)
    image = layout(rng.normal(100.0, 30.0, labels.shape), image_kind)
    spacing = [0.8, 1.7, 3.1]
    table = fastseg.stats(labels, image, spacing=spacing, surface=True)
    expected = ref.stats_reference(labels, image, spacing, surface=True)
    assert_matches(table, expected, 3, image, surface=True)


# -- against SimpleITK --------------------------------------------------------------------


def _sitk_intensity(array: np.ndarray, like: sitk.Image) -> sitk.Image:
    """An intensity image in nibabel axis order, with the geometry of ``like``."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    image.CopyInformation(like)
    return image


def assert_matches_simpleitk(
    table: fastseg.InstanceStats,
    labels: sitk.Image,
    intensity: sitk.Image | None,
    world_atol: float = 1e-4,
) -> None:
    """Shape statistics (and intensity statistics when given) of every label.

    ITK indices are (x, y, z) = nibabel's array axes; its physical points are LPS, so x
    and y have the opposite sign of nibabel's RAS world coordinates. The geometry went
    through a NIfTI header (float32), so physical quantities agree to about 1e-7.
    """
    shape = sitk.LabelShapeStatisticsImageFilter()
    shape.Execute(labels)
    assert [int(i) for i in table.ids.tolist()] == list(shape.GetLabels())
    assert table.centroid_world is not None
    lps = np.array([-1.0, -1.0, 1.0])
    for row, instance in enumerate(table):
        assert table.voxel_count[row] == shape.GetNumberOfPixels(instance)
        assert table.volume[row] == pytest.approx(shape.GetPhysicalSize(instance), rel=1e-6)
        box = shape.GetBoundingBox(instance)
        start, stop = table.bbox[row, :, 0], table.bbox[row, :, 1]
        assert start.tolist() == list(box[:3]), instance
        assert (stop - start).tolist() == list(box[3:]), instance
        centroid = np.array(shape.GetCentroid(instance))
        np.testing.assert_allclose(
            table.centroid_world[row] * lps, centroid, rtol=1e-6, atol=world_atol
        )
        # Back to voxel indices through SimpleITK's own geometry: the mean voxel index.
        index = labels.TransformPhysicalPointToContinuousIndex(centroid.tolist())
        np.testing.assert_allclose(table.centroid[row], index, rtol=1e-9, atol=1e-6)
    if intensity is None:
        return
    stats = sitk.LabelIntensityStatisticsImageFilter()
    stats.Execute(labels, intensity)
    assert table.mean is not None
    assert table.std is not None
    assert table.sum is not None
    assert table.min is not None
    assert table.max is not None
    values = sitk.GetArrayViewFromImage(intensity)
    atol = 1e-9 * float(np.abs(values).max())
    for row, instance in enumerate(table):
        assert table.min[row] == stats.GetMinimum(instance)
        assert table.max[row] == stats.GetMaximum(instance)
        assert table.mean[row] == pytest.approx(stats.GetMean(instance), rel=1e-9, abs=atol)
        assert table.sum[row] == pytest.approx(
            stats.GetSum(instance), rel=1e-9, abs=atol * table.voxel_count[row]
        )
        assert table.std[row] == pytest.approx(
            stats.GetStandardDeviation(instance), rel=1e-9, abs=atol
        )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_volumes_match_simpleitk(tmp_path: Path, seed: int) -> None:
    """Random labels and a rotated, anisotropic affine written as NIfTI; the intensities
    once in memory and once as a NIfTI file whose values are scaled (scl_slope/inter)."""
    rng = np.random.default_rng(seed)
    shape = (23, 31, 17)
    dense = blocky_volume(shape, 12, 4, seed=seed).astype(np.uint16)
    ids = np.array([0, *rng.choice(np.arange(1, 60000), 12, replace=False)], np.uint16)
    labels = ids[dense]
    affine = rotated_affine((0.7, 1.3, 2.9), seed=seed)
    labels_path = tmp_path / "labels.nii.gz"
    nibabel.save(nibabel.Nifti1Image(labels, affine), labels_path)
    stored = nibabel.load(labels_path)
    sitk_labels = sitk.ReadImage(str(labels_path))

    intensity = rng.normal(100.0, 40.0, shape)
    table = fastseg.stats(stored, intensity)
    assert table.spacing == pytest.approx((0.7, 1.3, 2.9), rel=1e-6)
    assert_matches_simpleitk(table, sitk_labels, _sitk_intensity(intensity, sitk_labels))

    raw = rng.integers(-3000, 3000, shape).astype(np.int16)
    scaled = nibabel.Nifti1Image(raw, affine)
    scaled.header.set_slope_inter(0.25, -7.5)
    scaled_path = tmp_path / "intensity.nii.gz"
    nibabel.save(scaled, scaled_path)
    table = fastseg.stats(stored, nibabel.load(scaled_path))
    assert_matches_simpleitk(table, sitk_labels, sitk.ReadImage(str(scaled_path)))
    assert table.min is not None
    assert table.min.min() >= -3000 * 0.25 - 7.5


REAL_VOLUMES = ["torso_labels.nii.gz", "aal.nii.gz", "platynereis_nuclei.nii.gz"]


@pytest.mark.parametrize(
    ("shared_data", "name"),
    [(n, n) for n in REAL_VOLUMES],
    indirect=["shared_data"],
    ids=REAL_VOLUMES,
)
def test_real_volumes_match_simpleitk(shared_data: Path, name: str) -> None:
    """The label files read by SimpleITK and by nibabel (the nibabel image goes to fastseg,
    its affine along), with a synthetic intensity image on the same grid."""
    path = shared_data / name
    stored = nibabel.load(path)
    sitk_labels = sitk.ReadImage(str(path))
    shape = stored.shape
    rng = np.random.default_rng(len(name))
    grid = np.indices(shape, dtype=np.float64)
    dtype = np.float32 if name.startswith("torso") else np.float64
    intensity = (grid[0] * 0.5 - grid[1] * 0.25 + grid[2] + rng.normal(0, 10, shape)).astype(dtype)
    table = fastseg.stats(stored, intensity)
    assert table.spacing == pytest.approx(stored.header.get_zooms()[:3], rel=1e-6)
    assert_matches_simpleitk(table, sitk_labels, _sitk_intensity(intensity, sitk_labels))


@pytest.mark.parametrize("shared_data", [("torso_labels.nii.gz",)], indirect=True)
def test_torso_surface_matches_reference(shared_data: Path) -> None:
    stored = nibabel.load(shared_data / "torso_labels.nii.gz")
    labels = np.asanyarray(stored.dataobj)
    table = fastseg.stats(stored, surface=True)
    expected = ref.stats_reference(labels, affine=stored.affine, surface=True)
    assert_matches(table, expected, 3, surface=True, world_scale=1e3)
    assert table.spacing == pytest.approx((0.782, 0.782, 5.0), rel=1e-6)


# -- against cc3d -------------------------------------------------------------------------


@pytest.mark.parametrize("shared_data", [("platynereis_nuclei.nii.gz",)], indirect=True)
def test_platynereis_components_match_cc3d(shared_data: Path) -> None:
    volume = np.asanyarray(nibabel.load(shared_data / "platynereis_nuclei.nii.gz").dataobj)
    components = np.asarray(cc3d.connected_components(volume, connectivity=26))
    count = int(components.max())
    assert count > 30
    expected = cc3d.statistics(components)
    table = fastseg.stats(components)
    assert table.ids.tolist() == list(range(1, count + 1))
    assert table.voxel_count.tolist() == expected["voxel_counts"][1:].tolist()
    boxes = [[[s.start, s.stop] for s in box] for box in expected["bounding_boxes"][1:]]
    assert table.bbox.tolist() == boxes
    np.testing.assert_allclose(table.centroid, expected["centroids"][1:], rtol=1e-9, atol=0)
    for instance in table:
        assert np.array_equal(
            components[table.slices(instance)] == instance,
            components[expected["bounding_boxes"][instance]] == instance,
        )


# -- determinism --------------------------------------------------------------------------


def test_identical_results_with_any_thread_count() -> None:
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has a single thread (NUMBA_NUM_THREADS=1): nothing to compare")
    shape = (300, 200, 100)
    labels = blocky_volume(shape, 50, 9, seed=3)
    assert labels.dtype == np.uint8
    assert shape[0] * shape[1] // stats_module._ROWS_PER_BLOCK >= 4  # several blocks
    rng = np.random.default_rng(4)
    # Magnitudes from 1e-3 to 1e5: float sums depend on the order they are added in.
    image = (rng.standard_normal(shape, np.float32) * 10.0 ** rng.integers(-3, 6, shape)).astype(
        np.float32
    )
    affine = rotated_affine((0.5, 0.9, 2.5), seed=5)
    one, two = (
        fastseg.stats(labels, image, affine=affine, surface=True, threads=threads)
        for threads in (1, 2)
    )
    assert len(one) == 50
    for name in ("ids", "voxel_count", "volume", "bbox", "centroid", "centroid_world",
                 *INTENSITY_COLUMNS, "surface"):  # fmt: skip
        assert np.array_equal(getattr(one, name), getattr(two, name)), name
    assert one.spacing == two.spacing
    # And the values are right: counts, sums and means from numpy.
    counts = np.bincount(labels.ravel(), minlength=51)[1:]
    sums = np.bincount(labels.ravel(), weights=image.ravel().astype(np.float64), minlength=51)[1:]
    assert one.voxel_count.tolist() == counts.tolist()
    assert one.sum is not None
    assert one.mean is not None
    np.testing.assert_allclose(one.sum, sums, rtol=1e-9, atol=1e-9 * float(np.abs(image).max()))
    np.testing.assert_allclose(
        one.mean, sums / counts, rtol=1e-9, atol=1e-9 * float(np.abs(image).max())
    )


# -- sparse ids ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "ids"),
    [
        (np.uint32, [1, 12_345, 99_999_999, 100_000_000]),
        (np.int32, [7, 65_536, 2**31 - 1]),
        (np.uint64, [5, 2**63 - 1, 2**63, 2**63 + 7, 2**64 - 1]),
        (np.int64, [3, 2**62, 2**63 - 2, 2**63 - 1]),
    ],
)
@pytest.mark.parametrize("kind", ["C", "F", "strided"])
def test_sparse_ids(dtype: Any, ids: list[int], kind: str) -> None:
    dense = blocky_volume((9, 14, 11), len(ids), 3, seed=len(ids))
    labels = layout(np.array([0, *ids], dtype=dtype)[dense], kind)
    image = np.random.default_rng(6).normal(0.0, 5.0, labels.shape).astype(np.float32)
    spacing = (1.5, 0.5, 2.0)
    table = fastseg.stats(labels, image, spacing=spacing, surface=True)
    expected = ref.stats_reference(labels, image, spacing, surface=True)
    assert expected["ids"] == sorted(ids)
    assert_matches(table, expected, 3, image, surface=True)
    assert table.ids.tolist() == sorted(ids)
    for row, instance in enumerate(sorted(ids)):
        assert instance in table
        assert table[instance]["id"] == instance
        inside = labels[table.slices(instance)] == labels.dtype.type(instance)
        assert int(inside.sum()) == table.voxel_count[row]
    # Asking for an absent id between them keeps the others right.
    between = [ids[0] + 1, *ids]
    table = fastseg.stats(labels, image, spacing=spacing, surface=True, ids=between)
    expected = ref.stats_reference(labels, image, spacing, surface=True, ids=between)
    assert_matches(table, expected, 3, image, surface=True)


@pytest.mark.parametrize(
    ("dtype", "ids"),
    [
        (np.uint32, [70_000]),
        (np.uint32, [99_999_999, 100_000_000]),
        (np.uint64, [2**63, 2**64 - 1]),
        (np.int64, [1, 2**63 - 1]),
    ],
)
def test_sparse_ids_without_background(dtype: Any, ids: list[int]) -> None:
    """Sparse ids covering every voxel (no 0 anywhere): a tiled volume, or a single voxel."""
    dense = np.arange(4 * 5 * 6).reshape(4, 5, 6) % len(ids)
    labels = np.array(ids, dtype=dtype)[dense]
    image = np.linspace(-1.0, 1.0, labels.size).reshape(labels.shape)
    spacing = (1.5, 0.5, 2.0)
    table = fastseg.stats(labels, image, spacing=spacing, surface=True)
    expected = ref.stats_reference(labels, image, spacing, surface=True)
    assert_matches(table, expected, 3, image, surface=True)
    assert table.ids.tolist() == ids
    single = fastseg.stats(np.array([ids[-1]], dtype=dtype))
    assert single.ids.tolist() == [ids[-1]]
    assert single.voxel_count.tolist() == [1]


# -- requested ids ------------------------------------------------------------------------


@pytest.fixture
def small() -> tuple[np.ndarray, np.ndarray]:
    """Ids 2, 5 and 9 (each more than one voxel) in a 3-D uint8 map, and an image."""
    labels = np.zeros((4, 5, 6), np.uint8)
    labels[0:2, 1:3, 0:4] = 2
    labels[2:4, 0:5, 5] = 5
    labels[3, 4, 0:2] = 9
    image = np.arange(labels.size, dtype=np.float64).reshape(labels.shape) * 0.5 - 10.0
    return labels, image


def test_ids_subset(small: tuple[np.ndarray, np.ndarray]) -> None:
    labels, image = small
    table = fastseg.stats(labels, image, spacing=(1, 2, 3), surface=True, ids=[9, 2])
    expected = ref.stats_reference(labels, image, (1, 2, 3), surface=True, ids=[2, 9])
    assert table.ids.tolist() == [2, 9]
    assert_matches(table, expected, 3, image, surface=True)
    full = fastseg.stats(labels, image, spacing=(1, 2, 3), surface=True)
    assert full.ids.tolist() == [2, 5, 9]
    for name in ("voxel_count", "volume", "bbox", "centroid", *INTENSITY_COLUMNS, "surface"):
        assert np.array_equal(getattr(table, name), getattr(full, name)[[0, 2]]), name


@pytest.mark.parametrize(
    ("make_ids", "wanted"),
    [
        (lambda: [12, 5, 0, 2, 300, 9], [0, 2, 5, 9, 12, 300]),
        (lambda: np.array([2**64 - 1, 9, 7], np.uint64), [7, 9, 2**64 - 1]),
        (lambda: (i for i in (3, 2)), [2, 3]),
        (lambda: {5, 4}, [4, 5]),
        (lambda: range(10, -1, -2), [0, 2, 4, 6, 8, 10]),
        (lambda: [5, 3, 5, 3], [3, 5]),
    ],
    ids=["list", "uint64-array", "generator", "set", "range", "repeated"],
)
def test_ids_superset_with_absent_ids(
    small: tuple[np.ndarray, np.ndarray], make_ids: Any, wanted: list[int]
) -> None:
    """Absent ids get count 0, volume 0, a zero box, NaN centroids and intensities, sum and
    surface 0; the ids come back sorted whatever the order (and the container) asked."""
    labels, image = small
    ids = make_ids()
    affine = rotated_affine((1.0, 2.0, 3.0), seed=8)
    table = fastseg.stats(labels, image, affine=affine, surface=True, ids=ids)
    assert table.ids.tolist() == wanted
    expected = ref.stats_reference(labels, image, None, affine, True, wanted)
    assert_matches(table, expected, 3, image, surface=True, world_scale=100.0)
    assert table.centroid_world is not None
    for row, instance in enumerate(wanted):
        if instance in (2, 5, 9):
            continue
        assert table.voxel_count[row] == 0
        assert table.volume[row] == 0.0
        assert table.bbox[row].tolist() == [[0, 0]] * 3
        assert np.isnan(table.centroid[row]).all()
        assert np.isnan(table.centroid_world[row]).all()
        for name in ("mean", "std", "min", "max"):
            assert np.isnan(getattr(table, name)[row]), name
        assert table.sum is not None
        assert table.sum[row] == 0.0
        assert table.surface is not None
        assert table.surface[row] == 0.0
        assert instance in table
        assert table[instance]["voxel_count"] == 0


def test_ids_empty(small: tuple[np.ndarray, np.ndarray]) -> None:
    labels, image = small
    table = fastseg.stats(labels, image, ids=[])
    assert len(table) == 0
    assert table.bbox.shape == (0, 3, 2)
    assert table.centroid.shape == (0, 3)
    assert table.mean is not None
    assert table.mean.shape == (0,)


@pytest.mark.parametrize(
    ("ids", "error"),
    [
        ([1, -1], ValueError),
        (np.array([-3], np.int64), ValueError),
        ([1.0], TypeError),
        ([2, 2.5], TypeError),
        (np.array([1.0, 2.0]), TypeError),
        (["5"], TypeError),
        ([True], TypeError),
        ([None], TypeError),
    ],
    ids=["negative", "negative-array", "float", "fraction", "float-array", "str", "bool", "none"],
)
def test_invalid_ids(small: tuple[np.ndarray, np.ndarray], ids: Any, error: type) -> None:
    labels, _ = small
    with pytest.raises(error, match="ids"):
        fastseg.stats(labels, ids=ids)


# -- the InstanceStats API ----------------------------------------------------------------


@pytest.fixture
def table(small: tuple[np.ndarray, np.ndarray]) -> fastseg.InstanceStats:
    """Ids 2, 5, 9 and the absent 7, with every optional column."""
    labels, image = small
    return fastseg.stats(
        labels, image, affine=rotated_affine((1.0, 2.0, 3.0), seed=9), surface=True,
        ids=[9, 7, 5, 2],
    )  # fmt: skip


def test_len_iteration_and_membership(table: fastseg.InstanceStats) -> None:
    assert len(table) == 4
    assert list(table) == [2, 5, 7, 9]
    assert all(type(i) is int for i in table)
    for instance in (2, 5, 7, 9, np.uint8(5), np.int64(9), np.uint64(2)):
        assert instance in table
    for other in (0, 1, 3, 10, -2, 2**63, 2**64 - 1, 5.0, "5", None, (5,)):
        assert other not in table


def test_membership_of_huge_ids(table: fastseg.InstanceStats) -> None:
    """Beyond uint64 no id can be present: ``in`` says False, lookups raise KeyError."""
    assert 2**64 not in table
    with pytest.raises(KeyError):
        table[2**64]


@pytest.mark.parametrize("key", [5.0, 5.7, "5", np.float64(9.0)])
def test_lookup_agrees_with_membership(table: fastseg.InstanceStats, key: Any) -> None:
    """``key in table`` is False for non-integer keys, so looking them up must not return
    a row (of a silently truncated id)."""
    assert key not in table
    with pytest.raises((KeyError, TypeError)):
        table[key]


def test_getitem_and_records(table: fastseg.InstanceStats) -> None:
    records = table.to_records()
    assert [r["id"] for r in records] == [2, 5, 7, 9]
    expected_keys = [
        "id", "voxel_count", "volume",
        "bbox_start_0", "bbox_stop_0", "bbox_start_1", "bbox_stop_1", "bbox_start_2",
        "bbox_stop_2", "centroid_0", "centroid_1", "centroid_2",
        "centroid_world_x", "centroid_world_y", "centroid_world_z",
        "mean", "std", "min", "max", "sum", "surface",
    ]  # fmt: skip
    assert table.columns() == expected_keys
    assert table.centroid_world is not None
    assert table.mean is not None
    for row, record in enumerate(records):
        assert list(record) == expected_keys
        instance = record["id"]
        assert_same_record(table[instance], record)
        assert type(record["id"]) is int
        assert type(record["voxel_count"]) is int
        assert all(type(v) is float for k, v in record.items() if k not in ("id",)
                   and not k.startswith("bbox") and k != "voxel_count")  # fmt: skip
        assert record["voxel_count"] == table.voxel_count[row]
        assert [record[f"bbox_start_{a}"] for a in range(3)] == table.bbox[row, :, 0].tolist()
        assert [record[f"bbox_stop_{a}"] for a in range(3)] == table.bbox[row, :, 1].tolist()
        assert [record[f"centroid_{a}"] for a in range(3)] == pytest.approx(
            table.centroid[row].tolist(), nan_ok=True
        )
        world = [record[f"centroid_world_{c}"] for c in "xyz"]
        assert world == pytest.approx(table.centroid_world[row].tolist(), nan_ok=True)
        assert record["mean"] == pytest.approx(float(table.mean[row]), nan_ok=True)
    absent = table[7]
    assert absent["voxel_count"] == 0
    assert absent["sum"] == 0.0
    assert math.isnan(absent["centroid_0"])
    assert math.isnan(absent["mean"])
    as_dict = table.to_dict()
    assert list(as_dict) == [2, 5, 7, 9]
    for record in records:
        assert_same_record(as_dict[record["id"]], record)


@pytest.mark.parametrize("missing", [0, 1, 3, 8, 10, -1, 2**63])
def test_missing_id_raises_key_error(table: fastseg.InstanceStats, missing: int) -> None:
    with pytest.raises(KeyError):
        table[missing]
    with pytest.raises(KeyError):
        table.slices(missing)


def test_slices_index_the_labels(small: tuple[np.ndarray, np.ndarray]) -> None:
    labels, _ = small
    for kind in ("C", "F", "strided"):
        arranged = layout(labels, kind)
        table = fastseg.stats(arranged)
        for instance in table:
            box = table.slices(instance)
            assert len(box) == 3
            assert all(isinstance(s, slice) for s in box)
            inside = arranged[box] == instance
            # Every voxel of the id is in the box, and the box is tight: each face of it
            # holds a voxel of the id.
            assert int(inside.sum()) == int((arranged == instance).sum())
            for axis in range(3):
                assert inside.take(0, axis=axis).any()
                assert inside.take(-1, axis=axis).any()


def test_to_json_writes_nan_as_null(table: fastseg.InstanceStats) -> None:
    text = table.to_json()
    assert "NaN" not in text
    loaded = json.loads(text)
    assert [r["id"] for r in loaded] == [2, 5, 7, 9]
    for record, original in zip(loaded, table.to_records(), strict=True):
        assert list(record) == list(original)
        for key, value in original.items():
            if isinstance(value, float) and math.isnan(value):
                assert record[key] is None, key
            else:
                assert record[key] == value, key
    assert loaded[2]["centroid_world_x"] is None
    assert loaded[2]["std"] is None
    assert json.loads(table.to_json(indent=2)) == loaded
    assert "\n" in table.to_json(indent=2)


def assert_same_record(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    """Same keys in the same order and equal values, NaN matching NaN."""
    assert list(actual) == list(expected)
    for key, value in expected.items():
        if isinstance(value, float) and math.isnan(value):
            assert isinstance(actual[key], float), key
            assert math.isnan(actual[key]), key
        else:
            assert actual[key] == value, key
            assert type(actual[key]) is type(value), key


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def test_to_csv(table: fastseg.InstanceStats, tmp_path: Path) -> None:
    target = tmp_path / "stats.csv"
    target.write_text("old contents\n")
    table.to_csv(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.csv"]
    header, rows = _read_csv(target)
    assert header == table.columns()
    assert len(rows) == len(table)
    for row, record in zip(rows, table.to_records(), strict=True):
        for key, value in record.items():
            if isinstance(value, int):
                assert int(row[key]) == value, key
            elif math.isnan(value):
                assert math.isnan(float(row[key])), key
            else:
                assert float(row[key]) == value, key  # repr round-trips floats exactly
    table.to_csv(str(tmp_path / "as-string.csv"))
    assert _read_csv(tmp_path / "as-string.csv") == (header, rows)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["as-string.csv", "stats.csv"]


def test_to_csv_is_atomic(table: fastseg.InstanceStats, tmp_path: Path) -> None:
    """A write that fails half-way leaves the old file as it was and no temporary file."""
    target = tmp_path / "stats.csv"
    target.write_text("old contents\n")
    original = csv.DictWriter.writerows

    def fail_after_one_row(self: csv.DictWriter[str], rows: Any) -> None:
        original(self, list(rows)[:1])
        raise OSError("disk full")

    with (
        mock.patch.object(csv.DictWriter, "writerows", fail_after_one_row),
        pytest.raises(OSError, match="disk full"),
    ):
        table.to_csv(target)
    assert target.read_text() == "old contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.csv"]
    with (
        mock.patch.object(csv.DictWriter, "writerows", fail_after_one_row),
        pytest.raises(OSError, match="disk full"),
    ):
        table.to_csv(tmp_path / "new.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.csv"]


def test_empty_table_exports(tmp_path: Path) -> None:
    table = fastseg.stats(np.zeros((3, 4), np.uint8))
    assert len(table) == 0
    assert table.columns() == []
    assert table.to_records() == []
    assert table.to_dict() == {}
    assert json.loads(table.to_json()) == []
    table.to_csv(tmp_path / "empty.csv")
    assert _read_csv(tmp_path / "empty.csv") == (["id"], [])


def test_to_pandas(table: fastseg.InstanceStats) -> None:
    pandas = pytest.importorskip("pandas")
    frame = table.to_pandas()
    assert isinstance(frame, pandas.DataFrame)
    assert frame.index.name == "id"
    assert frame.index.tolist() == [2, 5, 7, 9]
    assert list(frame.columns) == table.columns()[1:]
    assert frame["voxel_count"].tolist() == table.voxel_count.tolist()
    assert frame.loc[5, "surface"] == table[5]["surface"]
    assert np.isnan(frame.loc[7, "mean"])
    np.testing.assert_array_equal(frame["mean"].to_numpy(), table.mean)


def test_to_pandas_of_an_empty_table() -> None:
    pandas = pytest.importorskip("pandas")
    frame = fastseg.stats(np.zeros((3, 4), np.uint8)).to_pandas()
    assert isinstance(frame, pandas.DataFrame)
    assert len(frame) == 0


def test_to_pandas_keeps_uint64_ids() -> None:
    pytest.importorskip("pandas")
    labels = np.array([0, 2**63 + 5, 2**64 - 1, 2**64 - 1], np.uint64)
    frame = fastseg.stats(labels).to_pandas()
    assert [int(i) for i in frame.index] == [2**63 + 5, 2**64 - 1]
    assert frame["voxel_count"].tolist() == [1, 2]


def test_to_pandas_without_pandas(table: fastseg.InstanceStats) -> None:
    with (
        mock.patch.dict("sys.modules", {"pandas": None}),
        pytest.raises(ImportError, match="pip install pandas"),
    ):
        table.to_pandas()


# -- geometry -----------------------------------------------------------------------------


@pytest.mark.parametrize("shear", [0.0, 0.6], ids=["rotated", "sheared"])
def test_spacing_from_affine_columns(small: tuple[np.ndarray, np.ndarray], shear: float) -> None:
    labels, image = small
    affine = rotated_affine((0.6, 1.1, 2.7), seed=10, shear=shear)
    sizes = tuple(np.linalg.norm(affine[:3, :3], axis=0).tolist())
    assert sizes == pytest.approx((0.6, math.hypot(1.1, shear), 2.7))
    table = fastseg.stats(labels, image, affine=affine, surface=True)
    assert table.spacing == pytest.approx(sizes, rel=1e-12)
    expected = ref.stats_reference(labels, image, sizes, affine, True)
    assert_matches(table, expected, 3, image, surface=True, world_scale=100.0)
    # The world centroid is the affine applied to the voxel centroid.
    assert table.centroid_world is not None
    homogeneous = np.c_[table.centroid, np.ones(len(table))]
    np.testing.assert_allclose(table.centroid_world, (homogeneous @ affine.T)[:, :3], rtol=1e-12)


def test_spacing_from_nibabel_image(small: tuple[np.ndarray, np.ndarray]) -> None:
    labels, image = small
    affine = np.diag([-0.9, 1.2, 3.5, 1.0])
    affine[:3, 3] = [40.0, -20.0, 5.0]
    table = fastseg.stats(nibabel.Nifti1Image(labels, affine), image, surface=True)
    assert table.spacing == pytest.approx((0.9, 1.2, 3.5), rel=1e-12)
    expected = ref.stats_reference(labels, image, (0.9, 1.2, 3.5), affine, True)
    assert_matches(table, expected, 3, image, surface=True, world_scale=100.0)


def test_explicit_spacing_wins(small: tuple[np.ndarray, np.ndarray]) -> None:
    labels, image = small
    affine = rotated_affine((0.6, 1.1, 2.7), seed=11)
    spacing = (2.0, 0.25, 1.5)
    for source in (labels, nibabel.Nifti1Image(labels, affine)):
        table = fastseg.stats(source, image, spacing=spacing, affine=affine, surface=True)
        assert table.spacing == spacing
        expected = ref.stats_reference(labels, image, spacing, affine, True)
        assert_matches(table, expected, 3, image, surface=True, world_scale=100.0)
        assert table.volume.tolist() == (table.voxel_count * 0.75).tolist()
    # Spacing alone: no world coordinates.
    table = fastseg.stats(labels, spacing=spacing)
    assert table.centroid_world is None
    assert table.spacing == spacing


def test_explicit_affine_wins_over_the_image(small: tuple[np.ndarray, np.ndarray]) -> None:
    labels, _ = small
    stored = nibabel.Nifti1Image(labels, np.diag([5.0, 5.0, 5.0, 1.0]))
    affine = np.diag([1.0, 2.0, 3.0, 1.0])
    table = fastseg.stats(stored, affine=affine)
    assert table.spacing == (1.0, 2.0, 3.0)
    expected = ref.stats_reference(labels, None, None, affine)
    assert_matches(table, expected, 3, world_scale=10.0)


def test_2d_labels_with_spacing() -> None:
    labels = np.array([[0, 3, 3, 0], [4, 4, 3, 0], [4, 0, 0, 0]], np.uint16)
    table = fastseg.stats(labels, spacing=(2.0, 0.5), surface=True)
    assert table.spacing == (2.0, 0.5)
    assert table.ids.tolist() == [3, 4]
    assert table.volume.tolist() == [3.0, 3.0]
    # Id 3: faces across axis 0 (length 0.5 each): 4; across axis 1 (length 2.0): 4.
    # Id 4: across axis 0: 4 faces, across axis 1: 4 faces.
    assert table.surface is not None
    assert table.surface.tolist() == [4 * 0.5 + 4 * 2.0, 4 * 0.5 + 4 * 2.0]
    assert table.bbox.tolist() == [[[0, 2], [1, 3]], [[1, 3], [0, 2]]]
    expected = ref.stats_reference(labels, None, (2.0, 0.5), surface=True)
    assert_matches(table, expected, 2, surface=True)
    # 2-D labels with an affine: the first two columns give the spacing, and the world
    # centroid has 0 for the missing third voxel index.
    affine = rotated_affine((1.5, 0.5, 4.0), seed=12)
    table = fastseg.stats(labels, affine=affine)
    assert table.spacing == pytest.approx((1.5, 0.5), rel=1e-12)
    assert_matches(table, ref.stats_reference(labels, affine=affine), 2, world_scale=100.0)
    with pytest.raises(ValueError, match="spacing"):
        fastseg.stats(labels, spacing=(1.0, 1.0, 1.0))


def test_1d_labels_with_scalar_spacing() -> None:
    labels = np.array([0, 1, 1, 0, 2], np.uint8)
    table = fastseg.stats(labels, spacing=2.5, surface=True)
    assert table.spacing == (2.5,)
    assert table.volume.tolist() == [5.0, 2.5]
    assert table.surface is not None
    assert table.surface.tolist() == [2.0, 2.0]


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_labels_are_refused(dtype: Any) -> None:
    with pytest.raises(TypeError, match="as_labels"):
        fastseg.stats(np.ones((3, 3), dtype))


def test_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(4, 5, 6\).*\(4, 6, 5\)|\(4, 6, 5\).*\(4, 5, 6\)"):
        fastseg.stats(np.ones((4, 5, 6), np.uint8), np.ones((4, 6, 5), np.float32))
    with pytest.raises(ValueError, match=r"\(4, 5\)"):
        fastseg.stats(np.ones((4, 5), np.uint8), np.ones((4, 5, 1), np.float32))


def test_images_with_different_affines_are_refused() -> None:
    labels = np.ones((4, 5, 6), np.uint8)
    image = np.ones((4, 5, 6), np.float32)
    first = np.diag([1.0, 1.0, 2.0, 1.0])
    second = first.copy()
    second[0, 3] = 10.0
    with pytest.raises(ValueError, match="affine"):
        fastseg.stats(nibabel.Nifti1Image(labels, first), nibabel.Nifti1Image(image, second))
    # The same affine is fine.
    table = fastseg.stats(nibabel.Nifti1Image(labels, first), nibabel.Nifti1Image(image, first))
    assert table.mean is not None
    assert table.mean.tolist() == [1.0]


@pytest.mark.parametrize(
    "affine",
    [np.eye(3), np.eye(4)[:3], np.eye(5), np.ones(16), [[1.0, 0.0], [0.0, 1.0]]],
    ids=["3x3", "3x4", "5x5", "flat", "2x2"],
)
def test_affine_must_be_4x4(affine: Any) -> None:
    with pytest.raises(ValueError, match="4 x 4"):
        fastseg.stats(np.ones((3, 3, 3), np.uint8), affine=affine)


def test_affine_must_be_finite_with_nonzero_axes() -> None:
    affine = np.eye(4)
    affine[1, 1] = np.nan
    with pytest.raises(ValueError, match="affine"):
        fastseg.stats(np.ones((3, 3, 3), np.uint8), affine=affine)
    with pytest.raises(ValueError, match="affine"):
        fastseg.stats(np.ones((3, 3, 3), np.uint8), affine=np.diag([1.0, 0.0, 1.0, 1.0]))


@pytest.mark.parametrize(
    ("shape", "spacing"),
    [((3, 3, 3), (1.0, 1.0)), ((3, 3, 3), (1.0,) * 4), ((3, 3), (1.0, 1.0, 1.0)),
     ((3,), (1.0, 2.0)), ((3, 3, 3), [[1.0, 1.0, 1.0]]), ((3, 3, 3), ())],
)  # fmt: skip
def test_spacing_of_the_wrong_length(shape: tuple[int, ...], spacing: Any) -> None:
    with pytest.raises(ValueError, match="spacing"):
        fastseg.stats(np.ones(shape, np.uint8), spacing=spacing)


@pytest.mark.parametrize(
    "bad", [0.0, -1.0, np.nan, np.inf, -np.inf], ids=["zero", "negative", "nan", "inf", "-inf"]
)
def test_spacing_must_be_positive_and_finite(bad: float) -> None:
    with pytest.raises(ValueError, match="spacing"):
        fastseg.stats(np.ones((3, 3, 3), np.uint8), spacing=(1.0, bad, 1.0))


@pytest.mark.parametrize("shape", [(2, 2, 2, 2), (1, 1, 1, 1, 1), ()])
def test_dimensions(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="dimensions"):
        fastseg.stats(np.ones(shape, np.uint8))


@pytest.mark.parametrize(
    "image",
    [
        np.full((3, 3, 3), "a"),
        np.full((3, 3, 3), None, dtype=object),
        np.ones((3, 3, 3), np.complex128),
        np.zeros((3, 3, 3), "datetime64[s]"),
    ],
    ids=["str", "object", "complex", "datetime"],
)
def test_image_must_hold_numbers(image: np.ndarray) -> None:
    with pytest.raises(TypeError, match="image"):
        fastseg.stats(np.ones((3, 3, 3), np.uint8), image)


@pytest.mark.parametrize(
    "labels", [[[0, 1], [1, 0]], None, 3, np.array(["a", "b"])], ids=["list", "None", "int", "str"]
)
def test_non_array_labels_are_refused(labels: Any) -> None:
    with pytest.raises(TypeError):
        fastseg.stats(labels)


def test_non_array_image_is_refused() -> None:
    with pytest.raises(TypeError, match="image"):
        fastseg.stats(np.ones((2, 2), np.uint8), [[1.0, 2.0], [3.0, 4.0]])


@pytest.mark.parametrize("dtype", [np.int8, np.int64])
def test_negative_labels(dtype: Any) -> None:
    labels = np.zeros((3, 4, 5), dtype)
    labels[1, 2, 3] = -4
    with pytest.raises(ValueError, match="negative"):
        fastseg.stats(labels)


@pytest.mark.parametrize("threads", [0, -1, numba.config.NUMBA_NUM_THREADS + 1])
def test_invalid_threads(threads: int) -> None:
    with pytest.raises(ValueError, match="threads"):
        fastseg.stats(np.ones((3, 3), np.uint8), threads=threads)


# -- edge cases ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(0,), (0, 5), (5, 0), (3, 0, 4), (0, 0, 0), (2, 3, 0)])
@pytest.mark.parametrize("kind", ["C", "F"])
def test_empty_volume(shape: tuple[int, ...], kind: str) -> None:
    labels = layout(np.zeros(shape, np.uint8), kind)
    image = layout(np.zeros(shape, np.float64), kind)
    ndim = len(shape)
    table = fastseg.stats(labels, image, spacing=(2.0,) * ndim, surface=True)
    assert len(table) == 0
    assert list(table) == []
    assert table.bbox.shape == (0, ndim, 2)
    assert table.centroid.shape == (0, ndim)
    for name in ("voxel_count", "volume", *INTENSITY_COLUMNS, "surface"):
        assert getattr(table, name).shape == (0,), name
    # Requested ids are all absent.
    table = fastseg.stats(labels, image, surface=True, ids=[1, 4])
    expected = ref.stats_reference(labels, image, None, None, True, [1, 4])
    assert_matches(table, expected, ndim, image, surface=True)


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_all_background(ndim: int) -> None:
    labels = np.zeros((4,) * ndim, np.uint16)
    table = fastseg.stats(labels, labels.astype(np.float64), surface=True)
    assert len(table) == 0
    assert 0 not in table
    with pytest.raises(KeyError):
        table[0]


@pytest.mark.parametrize("shape", [(1,), (1, 1), (1, 1, 1)])
@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.uint64])
def test_single_voxel(shape: tuple[int, ...], dtype: Any) -> None:
    value = 1 if dtype is np.bool_ else int(ref.dtype_max(dtype))
    labels = np.full(shape, value, dtype)
    image = np.full(shape, -2.5)
    spacing = (0.5, 2.0, 3.0)[: len(shape)]
    table = fastseg.stats(labels, image, spacing=spacing, surface=True)
    assert table.ids.tolist() == [value]
    assert table.voxel_count.tolist() == [1]
    assert table.volume.tolist() == [pytest.approx(np.prod(spacing))]
    assert table.bbox.tolist() == [[[0, 1]] * len(shape)]
    assert table.centroid.tolist() == [[0.0] * len(shape)]
    for name, expected in (("mean", -2.5), ("std", 0.0), ("min", -2.5), ("max", -2.5),
                           ("sum", -2.5)):  # fmt: skip
        assert getattr(table, name).tolist() == [expected], name
    # Every face is on the border of the volume.
    faces = sum(2 * np.prod(spacing) / s for s in spacing)
    assert table.surface is not None
    assert table.surface.tolist() == [pytest.approx(faces, rel=1e-12)]


@pytest.mark.parametrize("kind", ["C", "F", "strided"])
def test_id_touching_every_border(kind: str) -> None:
    """An id filling the volume but a core of another id: its outside faces count, the
    faces it shares with the core count for both."""
    shape = (5, 6, 7)
    spacing = (0.5, 2.0, 3.0)
    labels = np.ones(shape, np.uint8)
    labels[1:4, 2:4, 2:5] = 2  # a 3 x 2 x 3 core
    labels = layout(labels, kind)
    table = fastseg.stats(labels, spacing=spacing, surface=True)
    a, b, c = spacing
    outside = 2 * (6 * 7 * b * c + 5 * 7 * a * c + 5 * 6 * a * b)
    core = 2 * (2 * 3 * b * c + 3 * 3 * a * c + 3 * 2 * a * b)
    assert table.surface is not None
    np.testing.assert_allclose(table.surface, [outside + core, core], rtol=1e-12)
    assert table.bbox.tolist() == [[[0, 5], [0, 6], [0, 7]], [[1, 4], [2, 4], [2, 5]]]
    assert table.voxel_count.tolist() == [5 * 6 * 7 - 18, 18]
    assert_matches(table, ref.stats_reference(labels, None, spacing, surface=True), 3,
                   surface=True)  # fmt: skip
    # Filling the whole volume: only the outside.
    full = fastseg.stats(layout(np.full(shape, 3, np.uint8), kind), spacing=spacing, surface=True)
    assert full.surface is not None
    np.testing.assert_allclose(full.surface, [outside], rtol=1e-12)


def test_docstring_example() -> None:
    labels = np.zeros((4, 4, 4), np.uint8)
    labels[1:3, 1:3, 1:3] = 7
    table = fastseg.stats(labels, spacing=(0.5, 0.5, 2.0))
    assert table.ids.tolist() == [7]
    assert table.voxel_count.tolist() == [8]
    assert table.volume.tolist() == [4.0]
    assert table[7]["centroid_0"] == 1.5
    assert table.slices(7) == (slice(1, 3), slice(1, 3), slice(1, 3))


@pytest.mark.parametrize("position", [0, 1, 2])
def test_nan_intensity_propagates_to_every_intensity_column(position: int) -> None:
    image = np.array([0.0, 1.0, 2.0, 5.0])
    image[position] = np.nan
    table = fastseg.stats(np.array([1, 1, 1, 2], np.uint8), image)
    for column in (table.mean, table.std, table.min, table.max, table.sum):
        assert column is not None
        assert np.isnan(column[0])
        assert column[1] == (5.0 if column is not table.std else 0.0)


# -- contacts -------------------------------------------------------------------------------

# Connectivities ``contacts`` takes per dimension, and how many axes a step may change.
CONTACT_HOPS = {1: {2: 1}, 2: {4: 1, 8: 2}, 3: {6: 1, 18: 2, 26: 3}}


@given(
    label_arrays(dtypes=ref.UNSIGNED + ref.SIGNED),
    st.data(),
    st.lists(st.sampled_from([0.5, 1.0, 1.5, 3.0]), min_size=3, max_size=3),
)
def test_contacts_match_the_reference(labels: np.ndarray, data: Any, spacing: list[float]) -> None:
    connectivity = data.draw(st.sampled_from(sorted(CONTACT_HOPS[labels.ndim])))
    hops = CONTACT_HOPS[labels.ndim][connectivity]
    voxel = tuple(spacing[: labels.ndim])
    before = labels.copy()
    result = fastseg.contacts(labels, connectivity=connectivity, spacing=voxel)
    expected = ref.contacts_reference(labels, hops, voxel)
    assert list(result) == list(expected)  # the same pairs, sorted
    assert list(result.values()) == pytest.approx(list(expected.values()))
    np.testing.assert_array_equal(labels, before)


@pytest.mark.parametrize("connectivity", [6, 18, 26])
@pytest.mark.parametrize("order", ["C", "F"])
def test_contacts_equal_cc3d(connectivity: int, order: str) -> None:
    labels = blocky_volume((40, 36, 30), ids=25, cell=5, seed=connectivity)
    labels = np.asarray(labels, order=order)
    spacing = (0.8, 1.0, 2.5)
    result = fastseg.contacts(labels, connectivity=connectivity, spacing=spacing)
    expected = cc3d.contacts(
        np.ascontiguousarray(labels), connectivity=connectivity, anisotropy=spacing
    )
    assert len(result) > 20  # the case has many touching pairs
    assert set(result) == set(expected)
    for pair, area in expected.items():
        assert result[pair] == pytest.approx(area, rel=1e-5)  # cc3d sums in float32

"""Correctness tests for :func:`fastseg.label` (connected components).

References: scipy.ndimage.label for binary inputs (same numbering: first voxel in row-major
order), the naive flood fill in ``reference.label_reference`` for small multilabel inputs
(exact ids), and cc3d.connected_components for larger multilabel ones (cc3d numbers
differently, so its map is either compared as a partition or renumbered by first voxel).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import cc3d
import nibabel
import numba
import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage
from shared_data import shared_data_path
from strategies import INTEGER_DTYPES, LABEL_DTYPES, LAYOUTS, blocky_volume, label_arrays, layout

import fastseg
import fastseg._pages
import fastseg.components
from fastseg._kernels import components as components_kernels

# (ndim, connectivity, scipy hops): every accepted connectivity, as a neighbour count
# and as a number of hops.
CONNECTIVITIES = [
    (1, 2, 1),
    (1, 1, 1),
    (2, 4, 1),
    (2, 8, 2),
    (2, 1, 1),
    (2, 2, 2),
    (3, 6, 1),
    (3, 18, 2),
    (3, 26, 3),
    (3, 1, 1),
    (3, 2, 2),
    (3, 3, 3),
]
VALID = {1: (1, 2), 2: (1, 2, 4, 8), 3: (1, 2, 3, 6, 18, 26)}
FULL = {1: 2, 2: 8, 3: 26}
# Neighbour count -> scipy's number of hops.
HOPS = {2: 1, 4: 1, 8: 2, 6: 1, 18: 2, 26: 3}

SHAPES = {1: (301,), 2: (41, 37), 3: (13, 11, 17)}


# -- helpers ------------------------------------------------------------------------------


def scipy_label(binary: np.ndarray, hops: int) -> tuple[np.ndarray, int]:
    structure = ndimage.generate_binary_structure(binary.ndim, hops)
    expected, count = ndimage.label(binary, structure=structure)
    return expected, int(count)


def cc3d_label(labels: np.ndarray, connectivity: int, background: int = 0) -> np.ndarray:
    """cc3d's components with ``background`` as the unlabelled value (cc3d always uses 0):
    swap the values ``background`` and 0, which keeps the partition."""
    if background != 0:
        swapped = labels.copy()
        swapped[labels == background] = 0
        swapped[labels == 0] = background
        labels = swapped
    return np.asarray(cc3d.connected_components(labels, connectivity=connectivity))


def row_major_ids(components: np.ndarray) -> np.ndarray:
    """A component map renumbered 1, 2, ... by first voxel in row-major order (0 stays 0)."""
    flat = components.ravel(order="C")
    ids, first = np.unique(flat, return_index=True)
    keep = ids != 0
    ids, first = ids[keep], first[keep]
    table = np.zeros(int(flat.max(initial=0)) + 1, np.int64)
    table[ids[np.argsort(first)]] = np.arange(1, ids.size + 1)
    return table[components]


def assert_same_partition(actual: np.ndarray, expected: np.ndarray) -> None:
    """The two component maps have the same background and the same components.

    Builds the id -> id correspondence both ways and checks that each is a function on
    every voxel, so the correspondence is a bijection between the components.
    """
    assert actual.shape == expected.shape
    order = "F" if actual.flags.f_contiguous and expected.flags.f_contiguous else "C"
    a = actual.ravel(order=order)
    b = expected.ravel(order=order)
    foreground = a != 0
    assert np.array_equal(foreground, b != 0), "the background voxels differ"
    for src, dst, what in ((a, b, "actual"), (b, a, "expected")):
        table = np.zeros(int(src.max(initial=0)) + 1, dst.dtype)
        table[src] = dst
        mismatch = np.flatnonzero(table[src] != dst)
        assert mismatch.size == 0, (
            f"{what} component {src[mismatch[0]]} covers voxels of several components of "
            f"the other map ({mismatch.size} voxels disagree)"
        )


def check_components(result: fastseg.Components, labels: np.ndarray, background: int) -> None:
    """Invariants of any result: dense ids, ``values``, background, shape and order."""
    cc, count, values = result
    assert isinstance(result, fastseg.Components)
    assert result.labels is cc
    assert result.count == count
    assert result.values is values
    assert isinstance(count, int)
    assert cc.shape == labels.shape
    assert cc.dtype.kind == "u"
    if labels.flags.f_contiguous and not labels.flags.c_contiguous:
        assert cc.flags.f_contiguous
    else:
        assert cc.flags.c_contiguous
    assert values.dtype == labels.dtype
    assert values.shape == (count + 1,)
    assert int(values[0]) == background
    is_background = labels == background
    assert np.array_equal(cc == 0, is_background)
    present = np.unique(cc)
    assert np.array_equal(present[present != 0], np.arange(1, count + 1))
    # Every voxel of component k holds values[k].
    assert np.array_equal(values[cc][~is_background], labels[~is_background])


def smoothed_classes(shape: tuple[int, ...], classes: int, sigma: float, seed: int) -> np.ndarray:
    """Blobby multilabel volume: smoothed noise cut into ``classes`` equally likely values."""
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape, np.float32), sigma)
    edges = np.quantile(noise, np.linspace(0, 1, classes + 1)[1:-1])
    return np.digitize(noise, edges).astype(np.uint8)


# -- binary inputs against scipy ----------------------------------------------------------


@pytest.mark.parametrize(("ndim", "connectivity", "hops"), CONNECTIVITIES)
@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int32])
@pytest.mark.parametrize("kind", ["C", "F", "strided"])
def test_binary_matches_scipy(
    ndim: int, connectivity: int, hops: int, dtype: Any, kind: str
) -> None:
    rng = np.random.default_rng(1000 * ndim + connectivity)
    for density in (0.2, 0.45, 0.6, 0.85):
        binary = rng.random(SHAPES[ndim]) < density
        labels = layout(binary.astype(dtype), kind)
        expected, count = scipy_label(binary, hops)
        result = fastseg.label(labels, connectivity=connectivity)
        assert result.count == count
        assert np.array_equal(result.labels, expected), f"density {density}"
        assert result.labels.dtype == np.dtype(np.uint8 if count < 256 else np.uint16)
        check_components(result, labels, 0)


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_default_connectivity_is_full(ndim: int) -> None:
    binary = np.random.default_rng(ndim).random(SHAPES[ndim]) < 0.4
    expected, count = scipy_label(binary, ndim)
    result = fastseg.label(binary)
    assert result.count == count
    assert np.array_equal(result.labels, expected)
    assert np.array_equal(fastseg.label(binary, connectivity=FULL[ndim]).labels, expected)


@pytest.mark.parametrize("shape", [(1, 1, 50), (1, 50, 1), (50, 1, 1), (1, 60), (60, 1)])
@pytest.mark.parametrize("kind", ["C", "F"])
def test_degenerate_axes_match_scipy(shape: tuple[int, ...], kind: str) -> None:
    binary = np.random.default_rng(7).random(shape) < 0.5
    for hops in range(1, len(shape) + 1):
        expected, count = scipy_label(binary, hops)
        result = fastseg.label(layout(binary, kind), connectivity=hops)
        assert result.count == count
        assert np.array_equal(result.labels, expected)


@pytest.mark.parametrize("hops", [1, 2, 3])
def test_shapes_that_merge_late(hops: int) -> None:
    """Combs and spirals: prongs that start as separate runs and meet only far below, so
    the component of each prong is found late; numbering must still be by first voxel."""
    volume = np.zeros((6, 40, 41), bool)
    volume[:, :, ::4] = True  # prongs along axis 1
    volume[3, 39, :] = True  # joined in the last row of one plane only
    volume[0, 0, 1] = True  # an isolated voxel between the first prongs
    spiral = np.zeros((40, 41), bool)
    y, x, dy, dx = 20, 20, 0, 1
    for step in range(1, 38):
        for _ in range(2):
            for _ in range(step):
                if 0 <= y < 40 and 0 <= x < 41:
                    spiral[y, x] = True
                y, x = y + 2 * dy, x + 2 * dx
            dy, dx = dx, -dy
    volume[5] |= spiral
    for kind in ("C", "F"):
        expected, count = scipy_label(volume, hops)
        result = fastseg.label(layout(volume, kind), connectivity=hops)
        assert result.count == count
        assert np.array_equal(result.labels, expected)


# -- multilabel inputs against the naive reference ----------------------------------------


@st.composite
def multilabel_cases(draw: st.DrawFn) -> tuple[np.ndarray, int, int]:
    """A small label array with few distinct values, a valid connectivity and background
    (0, a value of the array or the value just above its largest)."""
    labels = draw(label_arrays(LABEL_DTYPES, max_side=8))
    values = sorted({int(v) for v in np.unique(labels).tolist()})
    above = min((values[-1] if values else 0) + 1, ref.dtype_max(labels.dtype))
    background = draw(st.sampled_from(sorted({0, *values, above})))
    connectivity = draw(st.sampled_from(VALID[labels.ndim]))
    return labels, connectivity, background


@given(case=multilabel_cases())
def test_multilabel_matches_reference(case: tuple[np.ndarray, int, int]) -> None:
    labels, connectivity, background = case
    before = labels.copy()
    expected, count, values = ref.label_reference(labels, connectivity, background)
    result = fastseg.label(labels, connectivity=connectivity, background=background)
    assert result.count == count
    ref.assert_same_labels(result.labels, expected)
    assert [int(v) for v in result.values.tolist()] == values
    check_components(result, labels, background)
    assert np.array_equal(labels, before)


@given(case=multilabel_cases(), slabs=st.integers(1, 12))
def test_slab_seams_match_reference(case: tuple[np.ndarray, int, int], slabs: int) -> None:
    """Split into many slabs, down to one row each (more slabs than threads, slabs thinner
    than the neighbourhood's reach), every seam must link as a single slab would."""
    labels, connectivity, background = case
    expected, count, _ = ref.label_reference(labels, connectivity, background)
    with (
        mock.patch.object(fastseg.components, "_MIN_ROWS_PER_SLAB", 1),
        mock.patch.object(fastseg.components, "current_threads", return_value=slabs),
    ):
        result = fastseg.label(labels, connectivity=connectivity, background=background)
    assert result.count == count
    ref.assert_same_labels(result.labels, expected)


def _backward_offsets(ndim: int) -> list[tuple[int, ...]]:
    """One of each pair of opposite neighbour offsets (the 26-neighbourhood's half)."""
    return [d for d in ref.neighbour_offsets(ndim) if d > (0,) * ndim]


def _pairs(rows: tuple[int, ...]) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """Every pair of voxels one step apart, at every row position, side by side.

    ``rows`` is the shape of all axes but the last; pair ``b`` occupies columns
    ``4b .. 4b + 1`` of the last axis, two empty columns between pairs so that no two
    touch, the first and the last pair at the ends of the rows. Returns the binary volume
    and the step of each pair.
    """
    ndim = len(rows) + 1
    placed = []
    for first in np.ndindex(rows):
        for step in _backward_offsets(ndim):
            second = tuple(c - d for c, d in zip(first, step[:-1], strict=True))
            if all(0 <= c < n for c, n in zip(second, rows, strict=True)):
                placed.append((first, second, step))
    volume = np.zeros((*rows, 4 * len(placed) - 2), bool)
    for b, (first, second, step) in enumerate(placed):
        x = 4 * b + max(step[-1], 0)
        volume[(*first, x)] = volume[(*second, x - step[-1])] = True
    return volume, [step for _, _, step in placed]


@pytest.mark.parametrize(
    ("rows", "connectivities"), [((5,), (4, 8)), ((3, 4), (6, 18, 26))], ids=["2d", "3d"]
)
def test_two_voxels_touch_exactly_when_neighbours(
    rows: tuple[int, ...], connectivities: tuple[int, ...]
) -> None:
    """Pairs of voxels one step apart in every direction from every row, labelled in one
    slab (both memory orders) and split into every number of slabs, from as many slabs as
    rows to slabs with more rows than a neighbourhood reaches back (every kind of seam):
    a pair is one component exactly when its step is within the connectivity."""
    volume, steps = _pairs(rows)
    n_rows = int(np.prod(rows))
    with (
        mock.patch.object(fastseg.components, "_MIN_ROWS_PER_SLAB", 1),
        mock.patch.object(fastseg.components, "current_threads") as threads,
    ):
        for connectivity in connectivities:
            hops = HOPS[connectivity]
            count = sum(1 if sum(map(abs, step)) <= hops else 2 for step in steps)
            expected, scipy_count = scipy_label(volume, hops)
            assert scipy_count == count
            runs = [(slabs, "C") for slabs in range(1, n_rows + 1)] + [(1, "F"), (7, "F")]
            for slabs, kind in runs:
                threads.return_value = slabs
                result = fastseg.label(layout(volume, kind), connectivity=connectivity)
                assert result.count == count, (connectivity, slabs, kind)
                assert np.array_equal(result.labels, expected), (connectivity, slabs, kind)


def test_multilabel_example() -> None:
    organs = np.array([[1, 1, 0, 2], [0, 0, 0, 2], [1, 0, 2, 2]], dtype=np.uint8)
    cc, count, values = fastseg.label(organs, connectivity=4)
    assert cc.tolist() == [[1, 1, 0, 2], [0, 0, 0, 2], [3, 0, 2, 2]]
    assert count == 3
    assert values.tolist() == [0, 1, 2, 1]
    # Touching regions of different values stay apart; equal values touching diagonally
    # join only with full connectivity.
    cc8, count8, values8 = fastseg.label(organs, connectivity=8)
    assert cc8.tolist() == [[1, 1, 0, 2], [0, 0, 0, 2], [3, 0, 2, 2]]
    assert (count8, values8.tolist()) == (3, [0, 1, 2, 1])
    diagonal = np.array([[5, 0], [0, 5]], np.uint16)
    assert fastseg.label(diagonal, connectivity=4).count == 2
    assert fastseg.label(diagonal, connectivity=8).count == 1


# -- multilabel inputs against cc3d -------------------------------------------------------


@pytest.mark.parametrize("connectivity", [6, 18, 26])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint32, np.int64, np.uint64])
@pytest.mark.parametrize("kind", ["C", "F"])
def test_multilabel_3d_matches_cc3d(connectivity: int, dtype: Any, kind: str) -> None:
    rng = np.random.default_rng(connectivity)
    blobs = smoothed_classes((37, 52, 45), 5, 1.5, seed=connectivity)
    noise = rng.integers(0, 3, blobs.shape, dtype=np.uint8)
    for classes in (blobs, noise):
        labels = classes.astype(dtype)
        if np.dtype(dtype) == np.uint64:
            labels = np.where(labels == 0, 0, labels + np.uint64(2**64 - 8))
        labels = layout(labels, kind)
        expected = cc3d_label(labels, connectivity)
        result = fastseg.label(labels, connectivity=connectivity)
        assert_same_partition(result.labels, expected)
        assert np.array_equal(result.labels, row_major_ids(expected))
        assert result.count == int(expected.max())
        check_components(result, labels, 0)


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("background", [0, 2])
def test_multilabel_2d_matches_cc3d(connectivity: int, background: int) -> None:
    labels = smoothed_classes((301, 257), 4, 2.0, seed=connectivity)
    labels[::7, ::5] = 3  # sprinkle small components
    for kind in ("C", "F", "strided"):
        arranged = layout(labels, kind)
        expected = cc3d_label(labels, connectivity, background)
        result = fastseg.label(arranged, connectivity=connectivity, background=background)
        assert_same_partition(result.labels, expected)
        assert np.array_equal(result.labels, row_major_ids(expected))
        check_components(result, arranged, background)


@pytest.mark.parametrize("background", [1, 3, 9])
def test_nonzero_background_matches_cc3d(background: int) -> None:
    labels = smoothed_classes((30, 40, 50), 4, 1.2, seed=background)
    for connectivity in (6, 26):
        expected = cc3d_label(labels, connectivity, background)
        result = fastseg.label(labels, connectivity=connectivity, background=background)
        assert_same_partition(result.labels, expected)
        assert np.array_equal(result.labels, row_major_ids(expected))
        check_components(result, labels, background)


def test_partition_check_detects_differences() -> None:
    """The partition comparison used above can fail (merges, splits, background)."""
    a = np.array([[1, 1, 0, 2, 2]], np.uint8)
    assert_same_partition(a, np.array([[7, 7, 0, 3, 3]], np.uint32))
    for other in ([[1, 1, 0, 1, 1]], [[1, 2, 0, 3, 3]], [[1, 1, 2, 3, 3]]):
        with pytest.raises(AssertionError):
            assert_same_partition(a, np.array(other, np.uint8))


# -- edge cases ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape", [(0,), (0, 5), (5, 0), (0, 0), (3, 0, 4), (0, 3, 4), (3, 4, 0), (0, 0, 0)]
)
@pytest.mark.parametrize("kind", ["C", "F"])
def test_empty(shape: tuple[int, ...], kind: str) -> None:
    labels = layout(np.zeros(shape, np.uint16), kind)
    for background in (0, 3):
        cc, count, values = fastseg.label(labels, background=background)
        assert cc.shape == shape
        assert cc.dtype == np.uint8
        assert count == 0
        assert values.tolist() == [background]
        assert values.dtype == np.uint16


@pytest.mark.parametrize("shape", [(1,), (1, 1), (1, 1, 1)])
@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int64, np.uint64])
def test_single_voxel(shape: tuple[int, ...], dtype: Any) -> None:
    foreground = np.ones(shape, dtype)
    cc, count, values = fastseg.label(foreground)
    assert (cc.tolist(), count, values.tolist()) == (np.ones(shape, int).tolist(), 1, [0, 1])
    background = np.zeros(shape, dtype)
    cc, count, values = fastseg.label(background)
    assert (cc.tolist(), count, values.tolist()) == (np.zeros(shape, int).tolist(), 0, [0])
    # The voxel's value is the background.
    cc, count, values = fastseg.label(foreground, background=1)
    assert (cc.tolist(), count, values.tolist()) == (np.zeros(shape, int).tolist(), 0, [1])


@pytest.mark.parametrize(("ndim", "connectivity", "hops"), CONNECTIVITIES)
def test_all_foreground_and_all_background(ndim: int, connectivity: int, hops: int) -> None:
    shape = SHAPES[ndim]
    for value in (1, 200):
        labels = np.full(shape, value, np.uint8)
        cc, count, values = fastseg.label(labels, connectivity=connectivity)
        assert count == 1
        assert np.all(cc == 1)
        assert values.tolist() == [0, value]
        cc, count, values = fastseg.label(labels, connectivity=connectivity, background=value)
        assert count == 0
        assert np.all(cc == 0)
        assert values.tolist() == [value]


def _parity(shape: tuple[int, ...]) -> np.ndarray:
    return np.indices(shape).sum(axis=0) % 2


@pytest.mark.parametrize(
    ("shape", "connectivity", "expected"),
    [
        ((40,), 2, 20),
        ((20, 30), 4, 300),
        ((20, 30), 8, 1),
        ((8, 10, 12), 6, 480),
        ((8, 10, 12), 18, 1),
        ((8, 10, 12), 26, 1),
        ((7, 9, 11), 6, 347),  # odd sides: the (0, 0, 0) parity has one voxel more
    ],
)
@pytest.mark.parametrize("kind", ["C", "F"])
def test_binary_checkerboard(
    shape: tuple[int, ...], connectivity: int, expected: int, kind: str
) -> None:
    board = layout(_parity(shape) == 0, kind)
    result = fastseg.label(board, connectivity=connectivity)
    assert result.count == expected
    scipy_labels, scipy_count = scipy_label(board, HOPS[connectivity])
    assert scipy_count == expected
    assert np.array_equal(result.labels, scipy_labels)
    check_components(result, board, 0)


@pytest.mark.parametrize(("ndim", "connectivity", "hops"), CONNECTIVITIES)
@pytest.mark.parametrize("kind", ["C", "F"])
def test_multilabel_checkerboard(ndim: int, connectivity: int, hops: int, kind: str) -> None:
    """Two values alternating: every voxel is its own component with face neighbours,
    and the two parities are one component each with diagonal neighbours."""
    shape = SHAPES[ndim]
    board = layout((_parity(shape) + 1).astype(np.uint8), kind)
    result = fastseg.label(board, connectivity=connectivity)
    if hops == 1:
        assert result.count == board.size
        assert np.array_equal(result.labels, np.arange(1, board.size + 1).reshape(shape))
        assert result.labels.dtype == np.uint16
    else:
        assert result.count == 2
        assert np.array_equal(result.labels, _parity(shape) + 1)
    check_components(result, board, 0)


@pytest.mark.parametrize(("ndim", "connectivity", "hops"), CONNECTIVITIES)
def test_all_neighbours_differ(ndim: int, connectivity: int, hops: int) -> None:
    """Values from the parity of every coordinate: no two neighbours hold the same value,
    at any connectivity, so every voxel is a component, numbered in row-major order."""
    shape = SHAPES[ndim]
    coords = np.indices(shape) % 2
    labels = (1 + sum(c << axis for axis, c in enumerate(coords))).astype(np.uint8)
    for kind in ("C", "F"):
        arranged = layout(labels, kind)
        result = fastseg.label(arranged, connectivity=connectivity)
        assert result.count == labels.size
        assert np.array_equal(result.labels, np.arange(1, labels.size + 1).reshape(shape))
        check_components(result, arranged, 0)


def _sparse_lattices() -> Iterator[Any]:
    shape3 = (12, 10, 14)
    idx3 = np.indices(shape3)
    every_other = np.all(idx3 % 2 == 0, axis=0)  # isolated even this far apart at 26
    # Body-centred: all coordinates of one parity. Two such voxels touch only at corners
    # (steps of +-1 on every axis) or are two apart, so none touch at 18.
    body_centred = np.all(idx3 % 2 == idx3[0] % 2, axis=0)
    size3 = int(np.prod(shape3))
    yield pytest.param(every_other, 26, size3 // 8, id="3d-26-every-other")
    yield pytest.param(every_other, 18, size3 // 8, id="3d-18-every-other")
    yield pytest.param(every_other, 6, size3 // 8, id="3d-6-every-other")
    yield pytest.param(body_centred, 18, size3 // 4, id="3d-18-body-centred")
    yield pytest.param(body_centred, 26, 1, id="3d-26-body-centred")
    shape2 = (30, 22)
    idx2 = np.indices(shape2)
    yield pytest.param(np.all(idx2 % 2 == 0, axis=0), 8, 30 * 22 // 4, id="2d-8-every-other")
    yield pytest.param(np.arange(51) % 2 == 0, 2, 26, id="1d-every-other")


@pytest.mark.parametrize(("pattern", "connectivity", "expected"), list(_sparse_lattices()))
@pytest.mark.parametrize("kind", ["C", "F", "strided"])
def test_most_components_lattices(
    pattern: np.ndarray, connectivity: int, expected: int, kind: str
) -> None:
    labels = layout(pattern, kind)
    result = fastseg.label(labels, connectivity=connectivity)
    assert result.count == expected
    scipy_labels, scipy_count = scipy_label(pattern, HOPS[connectivity])
    assert scipy_count == expected
    assert np.array_equal(result.labels, scipy_labels)
    assert_same_partition(result.labels, scipy_labels)


# -- determinism --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def structured_volume() -> np.ndarray:
    """200 x 160 x 160 smoothed noise cut into 4 classes (0 is background)."""
    return smoothed_classes((200, 160, 160), 4, 2.5, seed=42)


@pytest.mark.parametrize("connectivity", [6, 26])
def test_threads_and_memory_order_do_not_change_the_result(
    structured_volume: np.ndarray, connectivity: int
) -> None:
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has a single thread here; nothing to compare threads=2 against")
    volume = structured_volume
    serial = fastseg.label(volume, connectivity=connectivity, threads=1)
    with mock.patch.object(
        components_kernels, "link_runs", wraps=components_kernels.link_runs
    ) as link_runs:
        parallel = fastseg.label(volume, connectivity=connectivity, threads=2)
    # The premise of the comparison: the rows really were linked in separate slabs.
    assert link_runs.call_args.args[-1] == 2
    fortran = fastseg.label(np.asfortranarray(volume), connectivity=connectivity, threads=2)
    assert serial.count > 100  # many components, crossing the seam between the slabs
    for other in (parallel, fortran):
        assert other.count == serial.count
        assert np.array_equal(other.labels, serial.labels)
        assert np.array_equal(other.values, serial.values)
    assert fortran.labels.flags.f_contiguous
    expected = cc3d_label(volume, connectivity)
    assert_same_partition(serial.labels, expected)
    assert np.array_equal(serial.labels, row_major_ids(expected))


@pytest.mark.parametrize("slabs", [1, 3, 7, 40, 500])
def test_many_slabs_match_one(slabs: int) -> None:
    """Seams between slabs of every thickness (from 4 rows, thinner than the n1 + 1 rows
    a neighbourhood reaches back, to hundreds), more slabs than threads."""
    labels = smoothed_classes((20, 100, 90), 3, 1.5, seed=slabs)
    expected = {c: cc3d_label(labels, c) for c in (6, 18, 26)}
    with (
        mock.patch.object(fastseg.components, "_MIN_ROWS_PER_SLAB", 1),
        mock.patch.object(fastseg.components, "current_threads", return_value=slabs),
        mock.patch.object(
            components_kernels, "link_runs", wraps=components_kernels.link_runs
        ) as link_runs,
    ):
        for connectivity, cc in expected.items():
            for kind in ("C", "F"):
                result = fastseg.label(layout(labels, kind), connectivity=connectivity)
                assert link_runs.call_args.args[-1] == slabs
                assert np.array_equal(result.labels, row_major_ids(cc)), (connectivity, kind)


def blocky_classes(shape: tuple[int, int, int], side: int, classes: int, seed: int) -> np.ndarray:
    """Random classes 0..classes-1 on boxes of ``side`` voxels (the last box of an axis
    cut short), with a few single voxels changed: most rows repeat the row before them
    and the row of the plane before, and some nearly do."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, classes, [-(-n // side) for n in shape], dtype=np.uint8)
    labels = coarse.repeat(side, 0).repeat(side, 1).repeat(side, 2)
    labels = np.ascontiguousarray(labels[: shape[0], : shape[1], : shape[2]])
    spots = rng.integers(0, labels.size, labels.size // 500)
    labels.ravel()[spots] = rng.integers(0, classes, spots.size, dtype=np.uint8)
    return labels


@pytest.mark.parametrize("slabs", [1, 2, 5])
@pytest.mark.parametrize("side", [1, 3, 8])
def test_repeated_rows_match_cc3d(slabs: int, side: int) -> None:
    """Rows with the same runs as the row before them or the row of the plane before
    are joined run by run and skip the walks those rows already answer."""
    labels = blocky_classes((23, 30, 41), side, 3, seed=side)
    with (
        mock.patch.object(fastseg.components, "_MIN_ROWS_PER_SLAB", 1),
        mock.patch.object(fastseg.components, "current_threads", return_value=slabs),
    ):
        for connectivity in (6, 18, 26):
            expected = row_major_ids(cc3d_label(labels, connectivity))
            for kind in ("C", "F"):
                result = fastseg.label(layout(labels, kind), connectivity=connectivity)
                assert np.array_equal(result.labels, expected), (connectivity, kind)


@pytest.mark.parametrize("threads", [1, 2])
def test_painting_in_pieces_hands_back_the_run_tables(threads: int) -> None:
    """Run tables in memory that is handed back as painting passes it, in many pieces:
    the same components as painting in one go."""
    labels = blocky_classes((30, 40, 50), 3, 4, seed=7)
    expected = fastseg.label(labels, connectivity=26, threads=1)
    with (
        mock.patch.object(fastseg.components, "MIN_BYTES", 0),
        mock.patch.object(fastseg._pages, "MIN_BYTES", 0),
        mock.patch.object(fastseg._pages, "_HUGE_BYTES", 4096),
        mock.patch.object(fastseg.components, "_PIECE_BYTES", 4096),
    ):
        for kind in ("C", "F"):
            result = fastseg.label(layout(labels, kind), connectivity=26, threads=threads)
            assert np.array_equal(result.labels, expected.labels), kind
            assert np.array_equal(result.values, expected.values)
    assert np.array_equal(expected.labels, row_major_ids(cc3d_label(labels, 26)))


# -- output dtype, order and the input -----------------------------------------------------


def _isolated(count: int) -> np.ndarray:
    """A 1-D binary array of ``count`` single-voxel components."""
    labels = np.zeros(2 * count, np.uint8)
    labels[::2] = 1
    return labels


@pytest.mark.parametrize(
    ("count", "dtype"),
    [(0, np.uint8), (255, np.uint8), (256, np.uint16), (65535, np.uint16), (65536, np.uint32)],
)
def test_default_out_dtype_is_smallest_unsigned(count: int, dtype: Any) -> None:
    result = fastseg.label(_isolated(count))
    assert result.count == count
    assert result.labels.dtype == dtype
    assert int(result.labels.max(initial=0)) == count


@pytest.mark.parametrize("out_dtype", [*INTEGER_DTYPES, "uint32", np.dtype("int16")])
def test_out_dtype_is_honoured(out_dtype: Any) -> None:
    labels = smoothed_classes((9, 20, 21), 3, 1.0, seed=1)
    default = fastseg.label(labels)
    result = fastseg.label(labels, out_dtype=out_dtype)
    assert result.labels.dtype == np.dtype(out_dtype)
    assert np.array_equal(result.labels, default.labels)
    assert result.count == default.count
    fortran = fastseg.label(np.asfortranarray(labels), out_dtype=out_dtype)
    assert fortran.labels.dtype == np.dtype(out_dtype)
    assert fortran.labels.flags.f_contiguous
    assert np.array_equal(fortran.labels, default.labels)


def test_out_dtype_limits() -> None:
    assert fastseg.label(_isolated(127), out_dtype=np.int8).labels.max() == 127
    assert fastseg.label(_isolated(255), out_dtype=np.uint8).labels.max() == 255
    with pytest.raises(ValueError, match="out_dtype"):
        fastseg.label(_isolated(128), out_dtype=np.int8)
    with pytest.raises(ValueError, match="out_dtype"):
        fastseg.label(_isolated(256), out_dtype=np.uint8)
    with pytest.raises(ValueError, match="out_dtype"):
        fastseg.label(_isolated(32768), out_dtype=np.int16)


@pytest.mark.parametrize("out_dtype", [np.float32, np.float64, np.bool_, np.complex64, "U4"])
def test_out_dtype_must_be_integer(out_dtype: Any) -> None:
    with pytest.raises(TypeError, match="out_dtype"):
        fastseg.label(_isolated(3), out_dtype=out_dtype)


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("kind", ["C", "F", "strided"])
def test_shape_and_memory_order_kept(ndim: int, kind: str) -> None:
    labels = layout(smoothed_classes(SHAPES[ndim], 3, 1.0, seed=ndim), kind)
    cc = fastseg.label(labels).labels
    assert cc.shape == labels.shape
    if kind == "F" and ndim > 1:
        assert cc.flags.f_contiguous
        assert not cc.flags.c_contiguous
    else:
        assert cc.flags.c_contiguous


@pytest.mark.parametrize("kind", ["C", "F", "strided"])
def test_input_unchanged_and_read_only_input(kind: str) -> None:
    labels = layout(smoothed_classes((11, 23, 19), 4, 1.0, seed=5).astype(np.int32), kind)
    before = labels.copy()
    expected = fastseg.label(labels, background=2)
    assert np.array_equal(labels, before)
    labels.setflags(write=False)
    result = fastseg.label(labels, background=2)
    assert np.array_equal(labels, before)
    assert np.array_equal(result.labels, expected.labels)
    assert result.labels.flags.writeable
    check_components(result, labels, 2)


def test_byte_swapped_input() -> None:
    labels = smoothed_classes((11, 23, 19), 4, 1.0, seed=6).astype(">u2") * 300
    expected = fastseg.label(labels.astype(np.uint16), connectivity=18)
    result = fastseg.label(labels, connectivity=18)
    assert np.array_equal(result.labels, expected.labels)
    assert result.values.tolist() == expected.values.tolist()


# -- bad input ----------------------------------------------------------------------------


def test_float_input_is_refused() -> None:
    for dtype in (np.float32, np.float64):
        with pytest.raises(TypeError, match="as_labels"):
            fastseg.label(np.ones((3, 3), dtype))


@pytest.mark.parametrize(
    "labels",
    [[[0, 1], [1, 0]], None, 3, "labels", np.array(["a", "b"]), np.array([1, 2], object)],
    ids=["list", "None", "int", "str", "str-array", "object-array"],
)
def test_non_array_input_is_refused(labels: Any) -> None:
    with pytest.raises(TypeError):
        fastseg.label(labels)


@pytest.mark.parametrize("shape", [(), (2, 2, 2, 2), (1, 1, 1, 1, 1)])
def test_dimensions(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="dimensions"):
        fastseg.label(np.ones(shape, np.uint8))


@pytest.mark.parametrize(
    ("ndim", "connectivity", "choices"),
    [
        (3, 4, "6, 18, 26"),
        (3, 8, "6, 18, 26"),
        (3, 0, "6, 18, 26"),
        (3, True, "6, 18, 26"),
        (3, 27, "6, 18, 26"),
        (3, -6, "6, 18, 26"),
        (3, 6.0, "6, 18, 26"),
        (2, 6, "4, 8"),
        (2, 3, "4, 8"),
        (2, 26, "4, 8"),
        (2, False, "4, 8"),
        (1, 4, "2"),
        (1, 3, "2"),
        (1, 0, "2"),
    ],
)
def test_invalid_connectivity(ndim: int, connectivity: Any, choices: str) -> None:
    with pytest.raises(ValueError, match=choices) as info:
        fastseg.label(np.ones((3,) * ndim, np.uint8), connectivity=connectivity)
    assert f"{ndim}-D" in str(info.value)


def test_negative_background() -> None:
    with pytest.raises(ValueError, match="background"):
        fastseg.label(np.ones((3, 3), np.uint8), background=-1)


@pytest.mark.parametrize(
    ("dtype", "background"), [(np.uint8, 256), (np.int16, 40000), (np.bool_, 2)]
)
def test_background_outside_the_dtype_is_refused(dtype: Any, background: int) -> None:
    """No voxel could hold such a background: almost certainly a mistake, so it raises."""
    labels = smoothed_classes((9, 10, 11), 2, 1.0, seed=3).astype(dtype)
    with pytest.raises(ValueError, match=f"background must be a value a {np.dtype(dtype)}"):
        fastseg.label(labels, connectivity=6, background=background)


def test_background_beyond_64_bits() -> None:
    # Documented: an invalid background raises ValueError.
    with pytest.raises(ValueError, match="background"):
        fastseg.label(np.ones((3, 3), np.uint64), background=2**64)


@pytest.mark.parametrize("background", [1.5, "0", None])
def test_non_integer_background(background: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="background"):
        fastseg.label(np.ones((3, 3), np.uint8), background=background)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64])
@pytest.mark.parametrize("kind", ["C", "F", "strided"])
def test_negative_labels(dtype: Any, kind: str) -> None:
    labels = np.zeros((4, 5, 6), dtype)
    labels[2, 3, 1] = -1
    with pytest.raises(ValueError, match="negative"):
        fastseg.label(layout(labels, kind))
    labels[2, 3, 1] = np.iinfo(dtype).min
    with pytest.raises(ValueError, match="negative"):
        fastseg.label(layout(labels, kind), background=0)


@pytest.mark.parametrize("threads", [0, -1, numba.config.NUMBA_NUM_THREADS + 1])
def test_invalid_threads(threads: int) -> None:
    with pytest.raises(ValueError, match="threads"):
        fastseg.label(np.ones((3, 3), np.uint8), threads=threads)


@pytest.mark.parametrize("threads", [1, numba.config.NUMBA_NUM_THREADS])
def test_valid_threads_keep_the_thread_count(threads: int) -> None:
    before = numba.get_num_threads()
    result = fastseg.label(np.ones((3, 3), np.uint8), threads=threads)
    assert result.count == 1
    assert numba.get_num_threads() == before


# -- real data ----------------------------------------------------------------------------


def _load(path: Path) -> np.ndarray:
    return np.asarray(nibabel.load(path).dataobj)


@pytest.fixture(scope="module")
def connectomics() -> np.ndarray:
    """The 512^3 uint32 connectomics volume (Fortran order, as nibabel hands it out)."""
    return _load(shared_data_path("connectomics.nii.gz") / "connectomics.nii.gz")


@pytest.mark.slow
@pytest.mark.parametrize(("connectivity", "count"), [(26, 3619), (6, 4744)])
def test_connectomics(connectomics: np.ndarray, connectivity: int, count: int) -> None:
    volume = connectomics
    assert volume.shape == (512, 512, 512)
    assert volume.dtype == np.uint32
    result = fastseg.label(volume, connectivity=connectivity)
    assert result.count == count
    assert result.labels.dtype == np.uint16
    assert result.labels.shape == volume.shape
    assert result.labels.flags.f_contiguous == volume.flags.f_contiguous
    assert_same_partition(result.labels, cc3d_label(volume, connectivity))
    assert np.array_equal(result.values[result.labels], volume)


@pytest.mark.parametrize("connectivity", [26, 6])
@pytest.mark.parametrize("shared_data", ["platynereis_nuclei.nii.gz"], indirect=True)
def test_platynereis(shared_data: Path, connectivity: int) -> None:
    volume = _load(shared_data / "platynereis_nuclei.nii.gz")
    result = fastseg.label(volume, connectivity=connectivity)
    expected = cc3d_label(volume, connectivity)
    assert_same_partition(result.labels, expected)
    assert result.count == int(expected.max())
    assert np.array_equal(result.labels, row_major_ids(expected))
    check_components(result, volume, 0)


# -- component_values -----------------------------------------------------------------------


def _values_reference(components: np.ndarray, labels: np.ndarray) -> np.ndarray:
    result = np.zeros(int(components.max()) + 1, labels.dtype)
    for k, v in zip(components.ravel().tolist(), labels.ravel().tolist(), strict=True):
        if k:
            result[k] = v
    return result


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint32, np.bool_])
@pytest.mark.parametrize("order", ["C", "F"])
def test_component_values_against_reference(dtype: Any, order: str) -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2 if dtype is np.bool_ else 4, (6, 7, 8)).astype(dtype)
    labels = np.asarray(labels, order=order)
    components = fastseg.label(labels, connectivity=6).labels
    other_order = np.asarray(labels, order="F" if order == "C" else "C")
    for values in (labels, other_order):
        result = fastseg.component_values(components, values)
        assert result.dtype == labels.dtype
        np.testing.assert_array_equal(result, _values_reference(components, labels))


def test_component_values_of_sparse_ids() -> None:
    """Ids with gaps (components removed by dust) are fine while the result stays within
    a few times the number of components; a stray huge id is refused, not allocated for."""
    components = np.repeat(np.arange(0, 60_000, 3, dtype=np.uint32), 2)
    labels = (components % 7).astype(np.uint8)
    np.testing.assert_array_equal(
        fastseg.component_values(components, labels), _values_reference(components, labels)
    )
    components[5] = 4_194_303
    with pytest.raises(ValueError, match=r"reach 4194303.*renumber them first"):
        fastseg.component_values(components, labels)


def test_component_values_errors() -> None:
    components = np.array([1, 1, 2], np.uint8)
    with pytest.raises(ValueError, match="same shape"):
        fastseg.component_values(components, np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match=r"component 1 covers more than one value .*\(3 and 4\)"):
        fastseg.component_values(components, np.array([3, 4, 5], np.uint8))


# -- each -----------------------------------------------------------------------------------


def _assert_each_equals_reference(labels: np.ndarray, crop: bool) -> None:
    expected = ref.each_reference(np.asarray(labels))
    found = list(fastseg.each(labels, crop=crop))
    assert [k for k, _, _ in found] == [k for k, _, _ in expected]
    for (k, mask, box), (_, want, want_box) in zip(found, expected, strict=True):
        assert box == want_box
        assert mask.dtype == np.bool_
        assert mask.flags.writeable
        if crop:
            np.testing.assert_array_equal(mask, want)
        else:
            np.testing.assert_array_equal(mask, np.asarray(labels) == k)


@given(labels=label_arrays(layouts=LAYOUTS), crop=st.booleans())
def test_each_equals_the_reference(labels: np.ndarray, crop: bool) -> None:
    """Every dtype, layout and dimension, ids small and at the top of the dtype's range
    (renumbered first), with and without cropping."""
    _assert_each_equals_reference(labels, crop)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32])
def test_each_of_many_components_equals_the_reference(order: str, dtype: Any) -> None:
    """Blocks of random ids cut into many components, rows that repeat the row before
    them, several chunks of rows: the masks are those of numpy."""
    volume = blocky_volume((24, 40, 33), ids=9, cell=5, seed=3).astype(dtype)
    components = np.array(fastseg.label(volume).labels, order=order)
    assert components.max() > 100
    _assert_each_equals_reference(components, crop=True)


def test_each_mask_is_a_new_array_each_time() -> None:
    components = np.array([[1, 1, 0], [2, 0, 2]], np.uint8)
    masks = [mask for _, mask, _ in fastseg.each(components)]
    masks[0][...] = False
    assert masks[1].tolist() == [[True, False, True]]
    assert components.tolist() == [[1, 1, 0], [2, 0, 2]]

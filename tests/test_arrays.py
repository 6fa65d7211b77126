"""Input normalisation (fastseg._arrays.as_label_array) and thread control (fastseg._jit)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
import reference as ref
from skimage.segmentation import relabel_sequential

import fastseg
from fastseg._arrays import LabelArray, as_label_array, flat_view, unsigned_of
from fastseg._jit import chunks_for, current_threads, max_threads, thread_limit

DTYPES = [
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.bool_,
]
UNSIGNED_OF_WIDTH = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def sample(dtype: Any, shape: tuple[int, ...] = (3, 4, 5), order: str = "C") -> np.ndarray:
    rng = np.random.default_rng(0)
    top = ref.dtype_max(dtype)
    return np.array(rng.integers(0, min(top, 1000) + 1, size=shape), dtype=dtype, order=order)


def as_unsigned(values: np.ndarray) -> list[int]:
    """Element values in memory order as Python ints (what the flat view must hold)."""
    order = "F" if values.flags.f_contiguous and not values.flags.c_contiguous else "C"
    return [int(v) for v in values.ravel(order=order).tolist()]


# == as_label_array =======================================================================


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_contiguous_input_is_not_copied(dtype: Any, order: str) -> None:
    labels = sample(dtype, order=order)
    result = as_label_array(labels)
    assert isinstance(result, LabelArray)
    assert result.original is labels
    assert not result.copied
    assert result.order == order
    assert np.shares_memory(result.flat, labels)
    assert result.flat.ndim == 1
    assert result.flat.flags.c_contiguous
    assert result.flat.dtype == UNSIGNED_OF_WIDTH[np.dtype(dtype).itemsize]
    assert result.flat.dtype.isnative
    assert result.flat.tolist() == as_unsigned(labels)
    assert (result.shape, result.dtype, result.size) == (labels.shape, labels.dtype, labels.size)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.bool_])
def test_bool_and_signed_are_viewed_as_unsigned(dtype: Any) -> None:
    labels = sample(dtype, (7, 9), order="F")
    result = as_label_array(labels)
    assert result.flat.dtype.kind == "u"
    assert result.flat.dtype.itemsize == labels.dtype.itemsize
    assert np.shares_memory(result.flat, labels)
    assert unsigned_of(labels.dtype) == result.flat.dtype


def test_read_only_input_is_not_copied() -> None:
    labels = sample(np.uint32, order="F")
    labels.flags.writeable = False
    result = as_label_array(labels)
    assert not result.copied
    assert np.shares_memory(result.flat, labels)
    with pytest.raises(ValueError, match="read-only"):
        result.writable_flat("labels")


@pytest.mark.parametrize(
    "view",
    [
        lambda a: a[::2],
        lambda a: a[:, ::-1],
        lambda a: a[..., 1:4],
        lambda a: a.transpose(1, 0, 2),
        lambda a: np.asfortranarray(a)[:, :, ::2],
    ],
    ids=["step", "reversed", "inner-slice", "transposed", "F-step"],
)
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint64, np.bool_])
def test_non_contiguous_input_is_copied(dtype: Any, view: Any) -> None:
    base = sample(dtype, (4, 6, 5))
    labels = view(base)
    assert not labels.flags.c_contiguous
    assert not labels.flags.f_contiguous
    result = as_label_array(labels)
    assert result.copied
    assert not np.shares_memory(result.flat, base)
    assert result.flat.dtype == UNSIGNED_OF_WIDTH[np.dtype(dtype).itemsize]
    # Copies are C-ordered, and the flat view follows that order.
    assert result.order == "C"
    assert result.flat.tolist() == [int(v) for v in labels.ravel(order="C").tolist()]
    with pytest.raises(ValueError, match="not contiguous in memory"):
        result.writable_flat("labels")


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.uint64, np.int64])
def test_byte_swapped_input_is_copied(dtype: Any, order: str) -> None:
    native = sample(dtype, order=order)
    labels = native.astype(native.dtype.newbyteorder("S"), order="K")
    assert not labels.dtype.isnative
    result = as_label_array(labels)
    assert result.copied
    assert result.order == order
    assert not np.shares_memory(result.flat, labels)
    assert result.flat.dtype.isnative
    assert result.flat.tolist() == as_unsigned(native)
    assert result.dtype == labels.dtype  # the caller's dtype is still described
    with pytest.raises(ValueError, match="not in native byte order"):
        result.writable_flat("labels")


def test_byte_swapped_non_contiguous_input() -> None:
    native = sample(np.uint32, (6, 8))
    labels = native.astype(">u4")[::2, ::-3]
    result = as_label_array(labels)
    assert result.copied
    assert result.flat.tolist() == [int(v) for v in native[::2, ::-3].ravel().tolist()]


@pytest.mark.parametrize("shape", [(), (0,), (1,), (0, 3), (2, 0, 4), (1, 1, 1, 1)])
def test_empty_and_single_voxel(shape: tuple[int, ...]) -> None:
    labels = np.full(shape, 7, dtype=np.int16)
    result = as_label_array(labels)
    assert result.size == labels.size
    assert result.flat.tolist() == [7] * labels.size
    assert not result.copied
    if labels.size:
        assert np.shares_memory(result.flat, labels)
    assert result.value_range() == ((7, 7) if labels.size else (0, 0))


@pytest.mark.parametrize("order", ["C", "F"])
def test_empty_like_keeps_caller_order(order: str) -> None:
    labels = sample(np.uint8, (3, 4, 5), order=order)
    result = as_label_array(labels)
    out, out_flat = result.empty(np.dtype(np.uint32))
    assert out.shape == labels.shape
    assert out.dtype == np.uint32
    assert out.flags.f_contiguous if order == "F" else out.flags.c_contiguous
    assert np.shares_memory(out, out_flat)
    # The flat view walks the output in the same order as the input's flat view.
    out_flat[:] = np.arange(out.size)
    position = np.arange(labels.size).reshape(labels.shape, order=order)
    np.testing.assert_array_equal(out, position)


@pytest.mark.parametrize("order", ["C", "F"])
def test_flat_view_never_copies(order: str) -> None:
    array = sample(np.uint16, (5, 6), order=order)
    flat = flat_view(array)
    assert np.shares_memory(flat, array)
    assert flat.tolist() == as_unsigned(array)


def test_writable_flat_of_writeable_contiguous_input() -> None:
    labels = sample(np.uint16, order="F")
    flat = as_label_array(labels).writable_flat("labels")
    flat[0] = 999
    assert labels[0, 0, 0] == 999


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint32, np.int64, np.uint64])
def test_value_range(dtype: Any, order: str) -> None:
    rng = np.random.default_rng(1)
    top = ref.dtype_max(dtype)
    labels = np.array(
        rng.integers(5, min(top, 10**6), size=(3, 200, 400)), dtype=dtype, order=order
    )
    # Extremes only in the first and last chunks.
    flat = labels.reshape(-1, order=order)
    flat[0], flat[-1] = 2, top
    assert as_label_array(labels).value_range() == (2, top)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64])
def test_negative_values_refused(dtype: Any) -> None:
    labels = sample(dtype, order="F")
    labels[1, 2, 3] = -5
    with pytest.raises(ValueError, match=r"seeds must be non-negative ids; found -5"):
        as_label_array(labels, name="seeds")


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.zeros(3, np.float32), r"convert explicitly with fastseg\.as_labels\(labels\)"),
        (np.zeros(3, np.complex64), "must be an integer or bool array, got dtype complex64"),
        (np.array(["a"]), "must be an integer or bool array"),
        ([1, 2, 3], "must be a numpy array of integer labels, got list"),
        (None, "must be a numpy array of integer labels, got NoneType"),
        (np.uint8(3), "must be a numpy array of integer labels, got numpy.uint8"),
    ],
    ids=["float", "complex", "str", "list", "None", "numpy-scalar"],
)
def test_bad_input_types(labels: Any, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        as_label_array(labels)


def test_ndims_restriction() -> None:
    assert as_label_array(np.zeros((2, 3), np.uint8), ndims=(2, 3)).shape == (2, 3)
    with pytest.raises(ValueError, match=r"image must have 2, 3 dimensions, got 4 \(shape"):
        as_label_array(np.zeros((1, 2, 3, 4), np.uint8), name="image", ndims=(2, 3))


# == thread_limit =========================================================================


@pytest.mark.parametrize(
    ("threads", "error", "match"),
    [
        (0, ValueError, "threads must be between 1 and"),
        (-1, ValueError, "threads must be between 1 and"),
        (10_000, ValueError, "threads must be between 1 and"),
        (1.0, TypeError, "threads must be an int or None, got float"),
        (True, TypeError, "threads must be an int or None, got bool"),
        ("2", TypeError, "threads must be an int or None, got str"),
    ],
)
def test_thread_limit_bad_values(threads: Any, error: type, match: str) -> None:
    before = current_threads()
    with pytest.raises(error, match=match), thread_limit(threads):
        pass  # pragma: no cover - never entered
    assert current_threads() == before


def test_thread_limit_above_pool_size() -> None:
    with (
        pytest.raises(ValueError, match=rf"between 1 and {max_threads()}"),
        thread_limit(max_threads() + 1),
    ):
        pass  # pragma: no cover - never entered


def test_thread_limit_sets_and_restores() -> None:
    before = current_threads()
    with thread_limit(None) as threads:
        assert threads == before == current_threads()
    with thread_limit(1) as threads:
        assert threads == 1
        assert current_threads() == 1
        assert chunks_for(1 << 20) == 1
    assert current_threads() == before
    with pytest.raises(RuntimeError, match="boom"), thread_limit(1):
        raise RuntimeError("boom")
    assert current_threads() == before


def test_thread_limit_is_per_thread() -> None:
    if max_threads() < 2:
        pytest.skip("numba's thread pool has a single thread")
    entered, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def worker() -> None:
        with thread_limit(1):
            seen.append(current_threads())
            entered.set()
            release.wait(10)

    with thread_limit(2):
        thread = threading.Thread(target=worker)
        thread.start()
        try:
            assert entered.wait(10)
            assert current_threads() == 2
        finally:
            release.set()
            thread.join(10)
    assert seen == [1]


LARGE_SHAPE = (3, 200, 400)


def _large_labels(dtype: Any, sparse: bool, order: str) -> np.ndarray:
    rng = np.random.default_rng(2)
    if sparse:
        pool = np.unique(rng.integers(10**8, 10**8 + 10**7, size=3000)).astype(dtype)
        pool[0] = 0
    else:
        pool = np.arange(40, dtype=dtype)
    n = int(np.prod(LARGE_SHAPE))
    runs = np.repeat(pool[rng.integers(0, pool.size, n)], rng.integers(1, 9, n))[:n]
    return np.array(runs.reshape(LARGE_SHAPE), order=order)


@pytest.mark.parametrize(
    ("dtype", "sparse", "order"),
    [(np.uint16, False, "C"), (np.uint32, True, "F"), (np.uint64, True, "C")],
)
def test_results_do_not_depend_on_thread_count(dtype: Any, sparse: bool, order: str) -> None:
    if max_threads() < 2:
        pytest.skip("numba's thread pool has a single thread")
    labels = _large_labels(dtype, sparse, order)
    present = np.unique(labels)
    mapping = {int(v): i % 7 for i, v in enumerate(present[::2].tolist())}
    chosen = present[::3]

    def run_all() -> dict[str, Any]:
        values, counts = fastseg.unique(labels, return_counts=True)
        relabeled, numbering = fastseg.renumber(labels)
        return {
            "unique": (values, counts),
            "remap-keep": fastseg.remap(labels, mapping),
            "remap-fill": fastseg.remap(labels, mapping, missing=9),
            "renumber": (relabeled, numbering),
            "mask-keep": fastseg.mask(labels, chosen),
            "mask-remove": fastseg.mask(labels, remove=chosen),
        }

    results = {}
    for threads in (1, 2):
        with thread_limit(threads):
            assert chunks_for(labels.size) == threads
            results[threads] = run_all()
    one, two = results[1], results[2]
    for name in one:
        a, b = one[name], two[name]
        if name == "renumber":
            assert a[1] == b[1]
            a, b = a[0], b[0]
        if name == "unique":
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(x, y, err_msg=name)
            continue
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)

    # ... and both agree with independent implementations.
    values, counts = np.unique(labels, return_counts=True)
    np.testing.assert_array_equal(two["unique"][0], values)
    np.testing.assert_array_equal(two["unique"][1], counts)
    np.testing.assert_array_equal(two["renumber"][0], relabel_sequential(labels)[0])
    lut_keys = np.array(list(mapping), dtype=dtype)
    lut_values = np.array(list(mapping.values()))
    position = np.searchsorted(lut_keys, labels).clip(0, lut_keys.size - 1)
    hit = lut_keys[position] == labels
    np.testing.assert_array_equal(two["remap-keep"], np.where(hit, lut_values[position], labels))
    np.testing.assert_array_equal(two["remap-fill"], np.where(hit, lut_values[position], 9))
    inside = np.isin(labels, chosen)
    np.testing.assert_array_equal(two["mask-keep"], np.where(inside, labels, 0))
    np.testing.assert_array_equal(two["mask-remove"], np.where(inside, 0, labels))

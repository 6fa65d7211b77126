"""fastseg.unique / remap / renumber / mask against naive references and the anchors.

Every expected value comes from ``reference.py`` (plain Python loops), numpy, scikit-image
or fastremap, never from fastseg itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import fastremap
import nibabel
import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from skimage.segmentation import relabel_sequential
from strategies import LABEL_DTYPES, LAYOUTS, any_label_arrays, layout

import fastseg

UNSIGNED_DTYPES = [np.uint8, np.uint16, np.uint32, np.uint64]
SIGNED_DTYPES = [np.int8, np.int16, np.int32, np.int64]
WIDE_DTYPES = [np.uint32, np.int32, np.uint64, np.int64]

# numba compiles every kernel again for read-only inputs (a separate array type), so the
# dtype x layout matrices leave "readonly" out and test_read_only_input covers it.
MATRIX_LAYOUTS = [kind for kind in LAYOUTS if kind != "readonly"]
# Enough elements for two chunks (numba's pool has two threads in CI); kernels split
# arrays into chunks of at least 2**16 elements.
LARGE_SHAPE = (3, 200, 400)

# -- building inputs ----------------------------------------------------------------------


def dtype_max(dtype: Any) -> int:
    return ref.dtype_max(dtype)


def id_pool(dtype: Any, ids: str, rng: np.random.Generator, n_sparse: int = 10) -> np.ndarray:
    """Candidate label values: small consecutive ids, or ids spread over the dtype's range
    (near 10**8 for 32-bit types, also near the top for 64-bit ones)."""
    dtype = np.dtype(dtype)
    top = dtype_max(dtype)
    if dtype.kind == "b":
        return np.array([False, True])
    if ids == "dense":
        return np.arange(min(top, 15) + 1).astype(dtype)
    values = {0, 1, top}
    if dtype.itemsize == 1:
        values |= {2, 100, top - 1}
    elif dtype.itemsize == 2:
        values |= {300, 20_000, top - 1}
    else:
        values |= {10**8 + int(k) for k in rng.choice(10**6, n_sparse, replace=False)}
        if dtype.itemsize == 8:
            values |= {top - int(k) for k in rng.choice(10**6, n_sparse, replace=False)}
    return np.array(sorted(values), dtype=dtype)


def runs_of(pool: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A C-ordered array of ``shape`` made of runs (1 to 6 long) of values from ``pool``."""
    n = int(np.prod(shape))
    picks = pool[rng.integers(0, pool.size, size=n)]
    lengths = rng.integers(1, 7, size=n)
    return np.repeat(picks, lengths)[:n].reshape(shape)


def make_labels(
    dtype: Any, shape: tuple[int, ...] = (4, 5, 6), ids: str = "dense", seed: int = 0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return runs_of(id_pool(dtype, ids, rng), shape, rng)


def native(array: np.ndarray) -> np.ndarray:
    """A native-byte-order copy, for anchors that refuse byte-swapped buffers."""
    return np.array(array, dtype=array.dtype.newbyteorder("="))


def memory_order(array: np.ndarray) -> str | None:
    if array.flags.c_contiguous:
        return "C"
    if array.flags.f_contiguous:
        return "F"
    return None


# -- checking outputs ---------------------------------------------------------------------


def assert_unchanged(labels: np.ndarray, before: np.ndarray) -> None:
    assert labels.dtype == before.dtype
    np.testing.assert_array_equal(labels, before, err_msg="the input array was modified")


def check_labels_out(
    result: np.ndarray,
    expected: np.ndarray,
    dtype: Any,
    labels: np.ndarray,
    before: np.ndarray,
) -> None:
    """Values, dtype and memory order of a new result; the input left as it was."""
    ref.assert_same_labels(result, expected)
    # Results are always in native byte order, whatever the input's.
    wanted = np.dtype(dtype).newbyteorder("=")
    assert result.dtype == wanted, f"dtype {result.dtype}, expected {wanted}"
    order = memory_order(labels)
    if order == "C":
        assert result.flags.c_contiguous, "C-ordered input gave a non-C-ordered result"
    elif order == "F":
        assert result.flags.f_contiguous, "F-ordered input gave a non-F-ordered result"
    assert result is not labels
    assert not np.shares_memory(result, labels)
    assert_unchanged(labels, before)


def mapping_for(dtype: Any, ids: str, seed: int = 1) -> dict[int, int]:
    """A mapping covering about half of the ids ``make_labels`` draws, into small values."""
    rng = np.random.default_rng(seed)
    pool = [int(v) for v in id_pool(dtype, ids, np.random.default_rng(0)).tolist()]
    chosen = rng.choice(len(pool), size=max(1, len(pool) // 2), replace=False)
    return {pool[int(i)]: int(rng.integers(0, 250)) for i in chosen}


# == unique ===============================================================================


@pytest.mark.parametrize("kind", MATRIX_LAYOUTS)
@pytest.mark.parametrize("dtype", LABEL_DTYPES)
def test_unique_dtypes_and_layouts(dtype: Any, kind: str) -> None:
    labels = layout(make_labels(dtype), kind)
    before = labels.copy()
    values, counts = fastseg.unique(labels, return_counts=True)
    want_values, want_counts = ref.unique(labels)
    assert values.tolist() == want_values
    assert counts.tolist() == want_counts
    assert values.dtype == labels.dtype
    assert counts.dtype == np.int64
    np_values, np_counts = np.unique(labels, return_counts=True)
    np.testing.assert_array_equal(values, np_values)
    np.testing.assert_array_equal(counts, np_counts)
    assert_unchanged(labels, before)


@pytest.mark.parametrize("kind", ["C", "F", "strided"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, *WIDE_DTYPES])
def test_unique_sparse_ids(dtype: Any, kind: str) -> None:
    labels = layout(make_labels(dtype, (6, 7, 8), ids="sparse"), kind)
    values, counts = fastseg.unique(labels, return_counts=True)
    want_values, want_counts = ref.unique(labels)
    assert values.tolist() == want_values
    assert counts.tolist() == want_counts
    assert fastseg.unique(labels).tolist() == want_values


@pytest.mark.parametrize(
    "shape", [(), (1,), (1, 1, 1), (0,), (3, 0, 2), (17,), (5, 6), (2, 3, 4, 5)]
)
def test_unique_shapes(shape: tuple[int, ...]) -> None:
    labels = make_labels(np.uint16, shape, ids="sparse")
    values, counts = fastseg.unique(labels, return_counts=True)
    want_values, want_counts = ref.unique(labels)
    assert values.tolist() == want_values
    assert counts.tolist() == want_counts
    assert values.dtype == np.uint16
    assert values.ndim == 1
    assert counts.dtype == np.int64


def test_unique_without_counts_returns_an_array() -> None:
    labels = np.array([[0, 7], [7, 3]], dtype=np.uint16)
    values = fastseg.unique(labels)
    assert isinstance(values, np.ndarray)
    assert values.tolist() == [0, 3, 7]


@pytest.mark.parametrize("kind", ["C", "F"])
@pytest.mark.parametrize(
    ("dtype", "n_ids"),
    [
        (np.uint8, 200),
        (np.uint16, 3000),
        (np.int32, 500),
        # More distinct ids per chunk than the first hash table holds: retried wider.
        (np.uint32, 5000),
        (np.uint64, 5000),
    ],
)
def test_unique_large_multichunk(dtype: Any, n_ids: int, kind: str) -> None:
    rng = np.random.default_rng(3)
    top = min(dtype_max(dtype), 10**8 + 10**7)
    pool = np.unique(rng.integers(0, top + 1, size=n_ids, dtype=np.uint64)).astype(dtype)
    labels = layout(runs_of(pool, LARGE_SHAPE, rng), kind)
    values, counts = fastseg.unique(labels, return_counts=True)
    np_values, np_counts = np.unique(labels, return_counts=True)
    np.testing.assert_array_equal(values, np_values)
    np.testing.assert_array_equal(counts, np_counts)
    assert values.dtype == labels.dtype


@pytest.mark.parametrize("dtype", [np.bool_, *UNSIGNED_DTYPES])
def test_unique_matches_fastremap(dtype: Any) -> None:
    labels = make_labels(dtype, (9, 10, 11), ids="sparse", seed=4)
    values, counts = fastseg.unique(labels, return_counts=True)
    fr_values, fr_counts = fastremap.unique(labels, return_counts=True)
    np.testing.assert_array_equal(values, fr_values)
    np.testing.assert_array_equal(counts, fr_counts)


# == remap ================================================================================


@pytest.mark.parametrize("kind", MATRIX_LAYOUTS)
@pytest.mark.parametrize("dtype", LABEL_DTYPES)
def test_remap_dtypes_and_layouts(dtype: Any, kind: str) -> None:
    labels = layout(make_labels(dtype, (3, 4, 5, 6)), kind)
    before = labels.copy()
    mapping = mapping_for(dtype, "dense")
    result = fastseg.remap(labels, mapping)
    check_labels_out(
        result, ref.remap(labels, mapping), ref.remap_dtype(labels, mapping), labels, before
    )


@pytest.mark.parametrize("kind", ["C", "F", "strided", "swapped"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, *WIDE_DTYPES])
@pytest.mark.parametrize("missing", ["keep", 0, 77])
def test_remap_sparse_ids(dtype: Any, kind: str, missing: Any) -> None:
    labels = layout(make_labels(dtype, (5, 6, 7), ids="sparse"), kind)
    before = labels.copy()
    mapping = mapping_for(dtype, "sparse")
    result = fastseg.remap(labels, mapping, missing=missing)
    check_labels_out(
        result,
        ref.remap(labels, mapping, missing),
        ref.remap_dtype(labels, mapping, missing),
        labels,
        before,
    )


@pytest.mark.parametrize("missing", ["keep", "error", 0, 9, 1000])
@pytest.mark.parametrize("kind", ["C", "F"])
def test_remap_missing_modes(missing: Any, kind: str) -> None:
    labels = layout(make_labels(np.uint16, (6, 7, 8)), kind)
    before = labels.copy()
    # Every present id mapped ("error" must pass), then only the odd ones.
    complete = {v: (v * 3) % 11 for v in range(16)}
    result = fastseg.remap(labels, complete, missing=missing)
    check_labels_out(
        result,
        ref.remap(labels, complete, missing),
        ref.remap_dtype(labels, complete, missing),
        labels,
        before,
    )
    partial = {v: v + 100 for v in range(1, 16, 2)}
    if missing == "error":
        with pytest.raises(ValueError, match="does not map"):
            fastseg.remap(labels, partial, missing=missing)
    else:
        result = fastseg.remap(labels, partial, missing=missing)
        check_labels_out(
            result,
            ref.remap(labels, partial, missing),
            ref.remap_dtype(labels, partial, missing),
            labels,
            before,
        )


@pytest.mark.parametrize(
    "table_dtype", [np.uint8, np.int16, np.uint32, np.int64, np.uint64, np.bool_]
)
@pytest.mark.parametrize("kind", ["C", "F"])
def test_remap_lookup_array(table_dtype: Any, kind: str) -> None:
    labels = layout(make_labels(np.uint8, (5, 6, 7)), kind)
    before = labels.copy()
    rng = np.random.default_rng(5)
    if np.dtype(table_dtype) == np.bool_:
        table = rng.integers(0, 2, size=16).astype(bool)
    else:
        info = np.iinfo(table_dtype)
        high = min(int(info.max), 10**6) if info.min == 0 else 30_000
        table = rng.integers(max(int(info.min), -1000), high, size=16, dtype=table_dtype)
    table[3] = 0
    result = fastseg.remap(labels, table)
    check_labels_out(
        result, ref.remap(labels, table), ref.remap_dtype(labels, table), labels, before
    )


def test_remap_lookup_array_shorter_than_ids() -> None:
    labels = np.array([[0, 1, 2], [3, 9, 200]], dtype=np.uint8)
    table = np.array([5, 6, 7], dtype=np.uint16)
    assert fastseg.remap(labels, table).tolist() == [[5, 6, 7], [3, 9, 200]]
    assert fastseg.remap(labels, table, missing=0).tolist() == [[5, 6, 7], [0, 0, 0]]
    with pytest.raises(ValueError, match=r"3, 9, 200"):
        fastseg.remap(labels, table, missing="error")


def test_remap_lookup_array_views() -> None:
    labels = np.arange(6, dtype=np.uint8)
    table = np.arange(40, dtype=np.uint16)[::-3]  # non-contiguous, descending
    assert fastseg.remap(labels, table).tolist() == [39, 36, 33, 30, 27, 24]
    swapped = np.array([10, 11, 12, 13, 14, 15], dtype=">u4")
    assert fastseg.remap(labels, swapped).tolist() == [10, 11, 12, 13, 14, 15]


# The wrapper picks a flat lookup table for dense keys and a hash table for sparse ones;
# each case below reaches one of those paths (with and without holes in the table).
REMAP_PATHS = {
    # every key in low..high mapped: the branch-free gather
    "table-complete": (np.uint16, list(range(0, 40)), 20),
    # keys with holes in a small span
    "table-holes": (np.uint16, list(range(0, 40, 3)), 20),
    # span above 2**16 but dense enough for a table
    "table-wide": (np.uint32, list(range(0, 300_000, 7)), 1000),
    # ids near 10**8: hash table
    "hash-1e8": (np.uint32, [0, *range(10**8, 10**8 + 5000, 13)], 400),
    # ids near the top of uint64: hash table
    "hash-top-u64": (np.uint64, [0, *(2**64 - 1 - k * 977 for k in range(300))], 300),
    # keys at the very top of uint64: a small table starting at 2**64 - 3
    "table-top-u64": (np.uint64, [2**64 - 3, 2**64 - 2, 2**64 - 1], 3),
}


@pytest.mark.parametrize("missing", ["keep", 5, "error"])
@pytest.mark.parametrize("path", list(REMAP_PATHS))
def test_remap_paths(path: str, missing: Any) -> None:
    dtype, keys, n_used = REMAP_PATHS[path]
    rng = np.random.default_rng(6)
    used = np.array(keys[:n_used], dtype=dtype)
    # Values beside the mapped ones (0 below a table's range, neighbours of keys inside
    # it), so that keep/fill have something to do.
    key_set = set(keys)
    beside = [0, *(k + 1 for k in keys[:n_used] if k < dtype_max(dtype))]
    extra = np.array([k for k in beside if k not in key_set][: max(1, n_used // 4)], dtype=dtype)
    labels = np.asfortranarray(runs_of(np.concatenate([used, extra]), (7, 8, 9), rng))
    before = labels.copy()
    mapping = {k: int(rng.integers(0, 250)) for k in keys}
    expect_error = missing == "error" and bool(ref.unmapped_ids(labels, mapping))
    if expect_error:
        with pytest.raises(ValueError, match="does not map"):
            fastseg.remap(labels, mapping, missing=missing)
        assert_unchanged(labels, before)
        mapping = {**mapping, **{int(k): 1 for k in ref.unmapped_ids(labels, mapping)}}
    result = fastseg.remap(labels, mapping, missing=missing)
    check_labels_out(
        result,
        ref.remap(labels, mapping, missing),
        ref.remap_dtype(labels, mapping, missing),
        labels,
        before,
    )


@pytest.mark.parametrize("path", ["table-complete", "table-holes", "hash-1e8", "hash-top-u64"])
@pytest.mark.parametrize("kind", ["C", "F"])
def test_remap_large_multichunk(path: str, kind: str) -> None:
    dtype, keys, n_used = REMAP_PATHS[path]
    rng = np.random.default_rng(7)
    labels = layout(runs_of(np.array(keys[:n_used], dtype=dtype), LARGE_SHAPE, rng), kind)
    # An unmapped id only at the end of the last chunk: keep mode has to notice it there
    # (and, for the sparse paths, widen the uint8 result to hold it).
    kept = max(keys) + 1 if max(keys) < dtype_max(dtype) else max(keys) - 1
    assert kept not in set(keys)
    flat = labels.reshape(-1, order=kind)
    assert np.shares_memory(flat, labels)
    flat[-5:] = kept
    before = labels.copy()
    mapping = {k: int(rng.integers(0, 250)) for k in keys}
    result = fastseg.remap(labels, mapping)
    check_labels_out(
        result, ref.remap(labels, mapping), ref.remap_dtype(labels, mapping), labels, before
    )


@pytest.mark.parametrize(
    ("values", "dtype", "mapping", "expected_dtype"),
    [
        # kept ids beyond every mapped value: the result widens to hold them
        ([1, 1000, 1, 0], np.uint16, {1: 2, 0: 0}, np.uint16),
        ([1, 70_000, 0], np.uint32, {1: 2}, np.uint32),
        ([5, 2**40, 5], np.uint64, {5: 1}, np.uint64),
        ([3, 2**64 - 1], np.uint64, {3: 0}, np.uint64),
        # ... and together with negative mapped values, a signed type
        ([1, 200, 1], np.uint8, {1: -1}, np.int16),
    ],
)
def test_remap_keep_widens_result(
    values: list[int], dtype: Any, mapping: dict[int, int], expected_dtype: Any
) -> None:
    labels = np.array(values, dtype=dtype)
    result = fastseg.remap(labels, mapping)
    assert result.dtype == expected_dtype
    ref.assert_same_labels(result, ref.remap(labels, mapping))
    assert ref.remap_dtype(labels, mapping) == expected_dtype


def test_remap_keep_widens_on_large_array() -> None:
    labels = np.zeros(LARGE_SHAPE, dtype=np.uint32, order="F")
    labels[..., :100] = 1
    labels[-1, -1, -1] = 123_456  # only in the last chunk
    result = fastseg.remap(labels, {0: 3, 1: 4})
    assert result.dtype == np.uint32
    assert result.flags.f_contiguous
    ref.assert_same_labels(result, ref.remap(labels, {0: 3, 1: 4}))


@pytest.mark.parametrize(
    ("mapping", "missing", "expected_dtype"),
    [
        ({1: -1, 2: 5}, "keep", np.int8),
        ({1: -200, 2: 5}, "keep", np.int16),
        ({1: 1}, -1, np.int8),
        ({1: 2**40}, -1, np.int64),
        ({1: 300}, 0, np.uint16),
        ({1: 1}, 70_000, np.uint32),
        ({1: 2**63}, 0, np.uint64),
    ],
)
def test_remap_output_dtype(mapping: dict[int, int], missing: Any, expected_dtype: Any) -> None:
    labels = np.array([[0, 1], [2, 1]], dtype=np.uint8, order="F")
    before = labels.copy()
    result = fastseg.remap(labels, mapping, missing=missing)
    check_labels_out(result, ref.remap(labels, mapping, missing), expected_dtype, labels, before)
    assert ref.remap_dtype(labels, mapping, missing) == expected_dtype


@pytest.mark.parametrize("out_dtype", [np.uint16, np.int16, np.uint32, np.int64, np.uint64])
def test_remap_out_dtype(out_dtype: Any) -> None:
    labels = layout(make_labels(np.uint8, (4, 5, 6)), "F")
    before = labels.copy()
    mapping = {1: 2, 2: 100, 3: 0}
    result = fastseg.remap(labels, mapping, out_dtype=out_dtype)
    check_labels_out(result, ref.remap(labels, mapping), out_dtype, labels, before)


@pytest.mark.parametrize(
    ("mapping", "missing", "out_dtype"),
    [
        ({1: 256}, "keep", np.uint8),
        ({1: -1}, "keep", np.uint16),
        ({1: 40_000}, "keep", np.int16),
        ({1: 1}, 300, np.uint8),
        ({1: 1}, "keep", np.uint8),  # the kept id 1000 does not fit
    ],
)
def test_remap_out_dtype_too_small(mapping: dict[int, int], missing: Any, out_dtype: Any) -> None:
    labels = np.array([0, 1, 1000, 1], dtype=np.uint16)
    before = labels.copy()
    with pytest.raises(ValueError, match=rf"{np.dtype(out_dtype)} cannot hold"):
        fastseg.remap(labels, mapping, missing=missing, out_dtype=out_dtype)
    assert_unchanged(labels, before)


@pytest.mark.parametrize("out_dtype", [np.float32, np.bool_, "U3"])
def test_remap_out_dtype_not_integer(out_dtype: Any) -> None:
    with pytest.raises(TypeError, match="out_dtype must be an integer dtype"):
        fastseg.remap(np.array([1, 2], np.uint8), {1: 0}, out_dtype=out_dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.int32, np.uint64])
def test_remap_matches_fastremap(dtype: Any) -> None:
    labels = make_labels(dtype, (8, 9, 10), ids="sparse", seed=8)
    mapping = mapping_for(dtype, "sparse", seed=9)
    result = fastseg.remap(labels, mapping)
    expected = fastremap.remap(labels, mapping, preserve_missing_labels=True)
    np.testing.assert_array_equal(result.astype(np.uint64), expected.astype(np.uint64))


def test_remap_empty_mapping() -> None:
    labels = np.array([[0, 5], [7, 5]], dtype=np.uint16)
    assert fastseg.remap(labels, {}).tolist() == [[0, 5], [7, 5]]
    assert fastseg.remap(labels, {}, missing=2).tolist() == [[2, 2], [2, 2]]
    assert fastseg.remap(labels, np.array([], np.uint8), missing=1).tolist() == [[1, 1], [1, 1]]
    with pytest.raises(ValueError, match=r"0, 5, 7"):
        fastseg.remap(labels, {}, missing="error")


def test_remap_ignores_keys_the_dtype_cannot_hold() -> None:
    labels = np.array([0, 1, 255], dtype=np.uint8)
    result = fastseg.remap(labels, {1: 4, 256: 1, 2**64 - 1: 9})
    assert result.tolist() == [0, 4, 255]


def test_remap_numpy_integer_keys_and_values() -> None:
    labels = np.array([3, 4, 2**64 - 1], dtype=np.uint64)
    mapping = {np.uint64(2**64 - 1): np.int8(1), np.int16(3): np.uint64(7)}
    result = fastseg.remap(labels, mapping)
    assert result.tolist() == [7, 4, 1]
    assert result.dtype == np.uint8


# == renumber =============================================================================


@pytest.mark.parametrize("kind", MATRIX_LAYOUTS)
@pytest.mark.parametrize("dtype", LABEL_DTYPES)
def test_renumber_dtypes_and_layouts(dtype: Any, kind: str) -> None:
    labels = layout(make_labels(dtype, (3, 4, 5, 6), ids="sparse"), kind)
    before = labels.copy()
    relabeled, mapping = fastseg.renumber(labels)
    expected, expected_mapping = ref.renumber(labels)
    assert mapping == expected_mapping
    check_labels_out(relabeled, expected, ref.renumber_dtype(expected_mapping), labels, before)
    if dtype is not np.bool_:
        anchor, _, _ = relabel_sequential(native(labels))
        np.testing.assert_array_equal(relabeled, anchor)


@pytest.mark.parametrize(
    ("start", "preserve_zero"), [(1, True), (7, True), (300, True), (0, False), (5, False)]
)
@pytest.mark.parametrize("with_zero", [True, False])
def test_renumber_start_and_preserve_zero(start: int, preserve_zero: bool, with_zero: bool) -> None:
    labels = layout(make_labels(np.uint32, (5, 6, 7), ids="sparse"), "F")
    if not with_zero:
        labels[labels == 0] = 1
    before = labels.copy()
    relabeled, mapping = fastseg.renumber(labels, start=start, preserve_zero=preserve_zero)
    expected, expected_mapping = ref.renumber(labels, start, preserve_zero)
    assert mapping == expected_mapping
    check_labels_out(relabeled, expected, ref.renumber_dtype(expected_mapping), labels, before)
    if preserve_zero and with_zero:
        anchor, _, _ = relabel_sequential(np.array(labels), offset=start)
        np.testing.assert_array_equal(relabeled, anchor)


def test_renumber_docstring_example() -> None:
    relabeled, mapping = fastseg.renumber(np.array([0, 98_340_797, 0, 512, 512]))
    assert relabeled.tolist() == [0, 2, 0, 1, 1]
    assert relabeled.dtype == np.uint8
    assert mapping == {0: 0, 512: 1, 98_340_797: 2}


@pytest.mark.parametrize(
    ("n_ids", "dtype", "expected_dtype"),
    [(255, np.uint16, np.uint8), (256, np.uint16, np.uint16), (70_000, np.uint32, np.uint32)],
)
def test_renumber_output_dtype_boundaries(n_ids: int, dtype: Any, expected_dtype: Any) -> None:
    # ids 1..n_ids spread out (zero absent): the largest new id is n_ids.
    labels = (np.arange(1, n_ids + 1, dtype=np.uint64) * 3).astype(dtype)
    relabeled, mapping = fastseg.renumber(labels)
    assert relabeled.dtype == expected_dtype
    np.testing.assert_array_equal(relabeled, np.arange(1, n_ids + 1))
    assert len(mapping) == n_ids


@pytest.mark.parametrize(
    ("dtype", "ids"),
    [(np.uint16, "dense"), (np.uint32, "sparse"), (np.uint64, "sparse"), (np.int64, "sparse")],
)
@pytest.mark.parametrize("kind", ["C", "F"])
def test_renumber_large_multichunk(dtype: Any, ids: str, kind: str) -> None:
    rng = np.random.default_rng(10)
    pool = id_pool(dtype, ids, rng, n_sparse=3000)
    labels = layout(runs_of(pool, LARGE_SHAPE, rng), kind)
    before = labels.copy()
    relabeled, mapping = fastseg.renumber(labels)
    anchor, _, _ = relabel_sequential(native(labels))
    np.testing.assert_array_equal(relabeled, anchor)
    present = np.unique(labels)
    assert sorted(mapping) == present.tolist()
    assert relabeled.dtype == ref.smallest_dtype(0, max(mapping.values()))
    assert memory_order(relabeled) == memory_order(labels)
    assert_unchanged(labels, before)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint32, np.uint64])
def test_renumber_same_partition_as_fastremap(dtype: Any) -> None:
    # fastremap numbers ids in order of first appearance, fastseg in ascending order:
    # the two must agree up to a permutation of the new ids.
    labels = make_labels(dtype, (6, 7, 8), ids="sparse", seed=11)
    relabeled, _ = fastseg.renumber(labels)
    other, _ = fastremap.renumber(labels, preserve_zero=True)
    pairs = set(zip(relabeled.ravel().tolist(), other.ravel().tolist(), strict=True))
    assert len(pairs) == len(set(relabeled.ravel().tolist())) == len(set(other.ravel().tolist()))


@pytest.mark.parametrize("out_dtype", [np.uint16, np.int16, np.uint64])
def test_renumber_out_dtype(out_dtype: Any) -> None:
    labels = make_labels(np.uint8, (4, 5, 6))
    relabeled, _ = fastseg.renumber(labels, out_dtype=out_dtype)
    expected, _ = ref.renumber(labels)
    assert relabeled.dtype == out_dtype
    ref.assert_same_labels(relabeled, expected)


def test_renumber_out_dtype_too_small() -> None:
    labels = np.arange(300, dtype=np.uint16)
    with pytest.raises(ValueError, match="uint8 cannot hold"):
        fastseg.renumber(labels, out_dtype=np.uint8)
    with pytest.raises(ValueError, match="uint8 cannot hold"):
        fastseg.renumber(np.array([5], np.uint8), start=256, out_dtype=np.uint8)


@pytest.mark.parametrize(
    ("start", "preserve_zero", "error", "match"),
    [
        (0, True, ValueError, "start must be at least 1 with preserve_zero=True, got 0"),
        (-1, False, ValueError, "start must be at least 0"),
        (1.0, True, TypeError, "start must be an integer"),
        (True, True, TypeError, "start must be an integer"),
        ("1", True, TypeError, "start must be an integer"),
    ],
)
def test_renumber_bad_start(start: Any, preserve_zero: bool, error: type, match: str) -> None:
    with pytest.raises(error, match=re.escape(match) if error is ValueError else match):
        fastseg.renumber(np.array([0, 1, 2], np.uint8), start=start, preserve_zero=preserve_zero)


# == mask =================================================================================


@pytest.mark.parametrize("kind", MATRIX_LAYOUTS)
@pytest.mark.parametrize("dtype", LABEL_DTYPES)
def test_mask_dtypes_and_layouts(dtype: Any, kind: str) -> None:
    labels = layout(make_labels(dtype, (3, 4, 5, 6)), kind)
    before = labels.copy()
    chosen = [1, 3, 4, 9] if dtype is not np.bool_ else [1]
    kept = fastseg.mask(labels, chosen)
    check_labels_out(kept, ref.mask(labels, keep=chosen), labels.dtype, labels, before)
    removed = fastseg.mask(labels, remove=chosen)
    check_labels_out(removed, ref.mask(labels, remove=chosen), labels.dtype, labels, before)


@pytest.mark.parametrize("kind", ["C", "F", "strided"])
@pytest.mark.parametrize("dtype", WIDE_DTYPES)
@pytest.mark.parametrize("value", [0, 1, 10**8 + 1])
def test_mask_sparse_ids_and_value(dtype: Any, kind: str, value: int) -> None:
    labels = layout(make_labels(dtype, (5, 6, 7), ids="sparse"), kind)
    before = labels.copy()
    pool = [int(v) for v in np.unique(labels).tolist()]
    chosen = [*pool[1::2], 12_345]  # plus an id that is absent
    kept = fastseg.mask(labels, chosen, value=value)
    check_labels_out(kept, ref.mask(labels, keep=chosen, value=value), dtype, labels, before)
    removed = fastseg.mask(labels, remove=chosen, value=value)
    check_labels_out(removed, ref.mask(labels, remove=chosen, value=value), dtype, labels, before)


@pytest.mark.parametrize("kind", ["C", "F"])
@pytest.mark.parametrize(("dtype", "ids"), [(np.uint16, "dense"), (np.uint64, "sparse")])
def test_mask_large_multichunk(dtype: Any, ids: str, kind: str) -> None:
    rng = np.random.default_rng(12)
    pool = id_pool(dtype, ids, rng, n_sparse=200)
    labels = layout(runs_of(pool, LARGE_SHAPE, rng), kind)
    before = labels.copy()
    chosen = pool[::3]
    expected_keep = np.where(np.isin(labels, chosen), labels, 0)
    expected_remove = np.where(np.isin(labels, chosen), 0, labels)
    kept = fastseg.mask(labels, chosen)
    removed = fastseg.mask(labels, remove=chosen)
    np.testing.assert_array_equal(kept, expected_keep)
    np.testing.assert_array_equal(removed, expected_remove)
    assert kept.dtype == removed.dtype == labels.dtype
    assert memory_order(kept) == memory_order(removed) == memory_order(labels)
    assert_unchanged(labels, before)


@pytest.mark.parametrize(
    "ids",
    [
        [2, 3],
        (2, 3),
        {2, 3},
        range(2, 4),
        np.array([2, 3], np.uint8),
        np.array([[3], [2]], np.int64),
        np.array([2, 3, 3, 2], np.uint64),
        [np.int32(2), np.uint64(3)],
        [],
    ],
    ids=repr,
)
def test_mask_id_containers(ids: Any) -> None:
    labels = np.array([0, 1, 2, 3, 2, 5], dtype=np.uint16)
    chosen = [int(v) for v in np.asarray(list(ids) if isinstance(ids, set) else ids).ravel()]
    assert fastseg.mask(labels, ids).tolist() == ref.mask(labels, keep=chosen).tolist()
    assert fastseg.mask(labels, remove=ids).tolist() == ref.mask(labels, remove=chosen).tolist()


def test_mask_generator_ids() -> None:
    labels = np.array([0, 1, 2, 3, 2, 5], dtype=np.uint16)
    assert fastseg.mask(labels, (i for i in [2, 5])).tolist() == [0, 0, 2, 0, 2, 5]


def test_mask_ids_beyond_dtype_are_ignored() -> None:
    labels = np.array([0, 1, 2, 255], dtype=np.uint8)
    assert fastseg.mask(labels, [2, 256, 2**64 - 1]).tolist() == [0, 0, 2, 0]
    assert fastseg.mask(labels, remove=[255, 1000]).tolist() == [0, 1, 2, 0]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint32, np.uint64])
def test_mask_matches_fastremap(dtype: Any) -> None:
    labels = make_labels(dtype, (7, 8, 9), ids="sparse", seed=13)
    chosen = np.unique(labels)[::2]
    np.testing.assert_array_equal(
        fastseg.mask(labels, chosen), fastremap.mask_except(labels, chosen.tolist())
    )
    np.testing.assert_array_equal(
        fastseg.mask(labels, remove=chosen), fastremap.mask(labels, chosen.tolist())
    )


@pytest.mark.parametrize("mode", ["keep", "remove"])
def test_mask_value_above_the_largest_int64_on_uint64_labels(mode: str) -> None:
    labels = np.array([0, 3, 5, 3, 2**64 - 2], dtype=np.uint64)
    ids = {mode: [3, 2**64 - 2]}
    top = 2**64 - 1
    expected = ref.mask(labels, **ids, value=top)  # type: ignore[arg-type]
    result = fastseg.mask(labels, **ids, value=top)  # type: ignore[arg-type]
    assert result.dtype == np.uint64
    ref.assert_same_labels(result, expected)


def test_mask_signed_negative_value() -> None:
    # The docstring: value "must fit the dtype of labels"; -1 fits int8.
    labels = np.array([0, 1, 2, 3, 2], dtype=np.int8)
    expected = ref.mask(labels, keep=[1], value=-1)
    result = fastseg.mask(labels, [1], value=-1)
    assert result.dtype == np.int8
    ref.assert_same_labels(result, expected)
    in_place = labels.copy()
    assert fastseg.mask(in_place, [1], value=-1, in_place=True) is in_place
    ref.assert_same_labels(in_place, expected)


@pytest.mark.parametrize(
    ("keep", "remove", "value", "error", "match"),
    [
        ([1], [2], 0, ValueError, "exactly one of keep and remove"),
        (None, None, 0, ValueError, "exactly one of keep and remove"),
        ([1], None, 256, ValueError, "uint8 cannot hold"),
        ([1], None, -1, ValueError, "uint8 cannot hold"),
        ([1], None, 1.0, TypeError, "value must be an integer"),
        ([1], None, True, TypeError, "value must be an integer"),
        ([1.5], None, 0, TypeError, "keep must be integers"),
        (None, ["2"], 0, TypeError, "remove must be integers"),
        ([True], None, 0, TypeError, "keep must be integers"),
        ([-1], None, 0, ValueError, "keep must be non-negative"),
        (np.array([1.0]), None, 0, TypeError, "keep must hold integer ids"),
        ("12", None, 0, TypeError, "keep must be an iterable of integer ids"),
        (5, None, 0, TypeError, "keep must be an iterable of integer ids"),
    ],
)
def test_mask_bad_arguments(keep: Any, remove: Any, value: Any, error: type, match: str) -> None:
    labels = np.array([0, 1, 2], dtype=np.uint8)
    before = labels.copy()
    with pytest.raises(error, match=match):
        fastseg.mask(labels, keep, remove=remove, value=value)
    assert_unchanged(labels, before)


def test_mask_bool_value_must_fit() -> None:
    labels = np.array([True, False, True])
    assert fastseg.mask(labels, [0], value=1).tolist() == [True, False, True]
    assert fastseg.mask(labels, remove=[1], value=0).tolist() == [False, False, False]
    with pytest.raises(ValueError, match="bool cannot hold"):
        fastseg.mask(labels, [1], value=2)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize(("dtype", "ids"), [(np.uint8, "dense"), (np.int32, "sparse")])
def test_read_only_input(dtype: Any, ids: str, order: str) -> None:
    labels = layout(layout(make_labels(dtype, (3, 4, 5, 6), ids=ids), order), "readonly")
    assert not labels.flags.writeable
    assert memory_order(labels) == order
    before = labels.copy()

    values, counts = fastseg.unique(labels, return_counts=True)
    assert (values.tolist(), counts.tolist()) == ref.unique(labels)

    mapping = mapping_for(dtype, ids)
    for missing in ("keep", 3):
        result = fastseg.remap(labels, mapping, missing=missing)
        expected = ref.remap(labels, mapping, missing)
        check_labels_out(
            result, expected, ref.remap_dtype(labels, mapping, missing), labels, before
        )

    relabeled, numbering = fastseg.renumber(labels)
    expected, expected_numbering = ref.renumber(labels)
    assert numbering == expected_numbering
    check_labels_out(relabeled, expected, ref.renumber_dtype(numbering), labels, before)

    chosen = values[::2].tolist()
    kept = fastseg.mask(labels, chosen)
    check_labels_out(kept, ref.mask(labels, keep=chosen), dtype, labels, before)
    removed = fastseg.mask(labels, remove=chosen)
    check_labels_out(removed, ref.mask(labels, remove=chosen), dtype, labels, before)


# == shapes, empty arrays, single voxels ==================================================


@pytest.mark.parametrize(
    "shape",
    [(), (1,), (1, 1, 1), (0,), (0, 4), (3, 0, 2), (2, 0, 3, 4), (9,), (4, 5), (2, 3, 4, 5)],
)
@pytest.mark.parametrize("kind", ["C", "F"])
def test_all_functions_on_shapes(shape: tuple[int, ...], kind: str) -> None:
    labels = layout(make_labels(np.uint16, shape, ids="sparse", seed=14), kind)
    before = labels.copy()

    mapping = {0: 5, 1: 6, 300: 700}
    remapped = fastseg.remap(labels, mapping)
    check_labels_out(
        remapped, ref.remap(labels, mapping), ref.remap_dtype(labels, mapping), labels, before
    )
    filled = fastseg.remap(labels, mapping, missing=0)
    check_labels_out(
        filled, ref.remap(labels, mapping, 0), ref.remap_dtype(labels, mapping, 0), labels, before
    )

    relabeled, numbering = fastseg.renumber(labels)
    expected, expected_numbering = ref.renumber(labels)
    assert numbering == expected_numbering
    check_labels_out(relabeled, expected, ref.renumber_dtype(expected_numbering), labels, before)

    kept = fastseg.mask(labels, [1, 300])
    check_labels_out(kept, ref.mask(labels, keep=[1, 300]), np.uint16, labels, before)


def test_empty_array_results() -> None:
    labels = np.zeros((0, 3), dtype=np.uint64)
    values, counts = fastseg.unique(labels, return_counts=True)
    assert values.shape == counts.shape == (0,)
    assert values.dtype == np.uint64
    relabeled, mapping = fastseg.renumber(labels)
    assert relabeled.shape == (0, 3)
    assert mapping == {}
    assert fastseg.remap(labels, {1: 2}, missing="error").shape == (0, 3)


# == in_place =============================================================================


@pytest.mark.parametrize("kind", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint32, np.int64, np.uint64, np.bool_])
def test_in_place(dtype: Any, kind: str) -> None:
    original = layout(make_labels(dtype, (4, 5, 6), seed=15), kind)
    mapping = {0: 1, 1: 0} if dtype is np.bool_ else {1: 7, 2: 7, 7: 1}

    labels = original.copy(order="K")
    result = fastseg.remap(labels, mapping, in_place=True)
    assert result is labels
    ref.assert_same_labels(labels, ref.remap(original, mapping))
    assert labels.dtype == original.dtype
    assert memory_order(labels) == kind

    labels = original.copy(order="K")
    relabeled, numbering = fastseg.renumber(labels, in_place=True)
    assert relabeled is labels
    expected, expected_numbering = ref.renumber(original)
    assert numbering == expected_numbering
    ref.assert_same_labels(labels, expected)

    labels = original.copy(order="K")
    assert fastseg.mask(labels, [1], in_place=True) is labels
    ref.assert_same_labels(labels, ref.mask(original, keep=[1]))

    labels = original.copy(order="K")
    assert fastseg.mask(labels, remove=[1], in_place=True) is labels
    ref.assert_same_labels(labels, ref.mask(original, remove=[1]))

    if dtype is not np.bool_:
        labels = original.copy(order="K")
        assert fastseg.remap(labels, mapping, missing=3, in_place=True) is labels
        ref.assert_same_labels(labels, ref.remap(original, mapping, 3))


@pytest.mark.parametrize("kind", ["C", "F"])
def test_in_place_large_sparse(kind: str) -> None:
    rng = np.random.default_rng(16)
    original = layout(runs_of(id_pool(np.uint64, "sparse", rng, 500), LARGE_SHAPE, rng), kind)
    labels = original.copy(order="K")
    relabeled, _ = fastseg.renumber(labels, in_place=True)
    assert relabeled is labels
    anchor, _, _ = relabel_sequential(original)
    np.testing.assert_array_equal(labels, anchor)


def test_in_place_contiguous_sub_block_writes_only_the_block() -> None:
    parent = make_labels(np.uint16, (6, 5, 4), seed=17)
    before = parent.copy()
    block = parent[2:4]  # C-contiguous view into the parent
    assert block.flags.c_contiguous
    assert fastseg.remap(block, {1: 9, 2: 9}, in_place=True) is block
    expected = before.astype(object)
    expected[2:4] = ref.remap(before[2:4], {1: 9, 2: 9})
    ref.assert_same_labels(parent, expected)


IN_PLACE_CALLS: dict[str, Callable[[np.ndarray], object]] = {
    "remap": lambda a: fastseg.remap(a, {1: 2}, in_place=True),
    "remap-fill": lambda a: fastseg.remap(a, {1: 2}, missing=0, in_place=True),
    "renumber": lambda a: fastseg.renumber(a, in_place=True),
    "mask-keep": lambda a: fastseg.mask(a, [1], in_place=True),
    "mask-remove": lambda a: fastseg.mask(a, remove=[1], in_place=True),
}


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("readonly", "read-only"),
        ("strided", "not contiguous in memory or not in native byte order"),
        ("swapped", "not contiguous in memory or not in native byte order"),
    ],
)
@pytest.mark.parametrize("call", list(IN_PLACE_CALLS))
def test_in_place_refused(call: str, kind: str, match: str) -> None:
    # (uint8 cannot be byte-swapped; read-only uint8 shares kernels with test_read_only_input)
    dtype = np.uint8 if kind == "readonly" else np.uint16
    labels = layout(make_labels(dtype, (3, 4, 5)), kind)
    before = labels.copy()
    with pytest.raises(ValueError, match=match):
        IN_PLACE_CALLS[call](labels)
    assert_unchanged(labels, before)


def test_in_place_result_must_fit_input_dtype() -> None:
    labels = np.array([0, 1, 2], dtype=np.uint8)
    with pytest.raises(ValueError, match="the input dtype uint8 cannot hold"):
        fastseg.remap(labels, {1: 256}, in_place=True)
    with pytest.raises(ValueError, match="the input dtype uint8 cannot hold"):
        fastseg.remap(labels, {1: -1}, in_place=True)
    with pytest.raises(ValueError, match="the input dtype uint8 cannot hold"):
        fastseg.renumber(labels, start=255, in_place=True)
    assert labels.tolist() == [0, 1, 2]


def test_in_place_rejects_other_out_dtype() -> None:
    labels = np.array([0, 1, 2], dtype=np.uint8)
    with pytest.raises(ValueError, match="out_dtype=uint16 is not allowed"):
        fastseg.remap(labels, {1: 2}, out_dtype=np.uint16, in_place=True)
    with pytest.raises(ValueError, match="out_dtype=uint16 is not allowed"):
        fastseg.renumber(labels, out_dtype=np.uint16, in_place=True)
    # The input's own dtype is fine.
    assert fastseg.remap(labels, {1: 2}, out_dtype=np.uint8, in_place=True) is labels
    assert labels.tolist() == [0, 2, 2]


def test_in_place_missing_error_leaves_input_alone() -> None:
    labels = np.array([[0, 1], [2, 3]], dtype=np.uint32, order="F")
    with pytest.raises(ValueError, match=r"2 voxels .*: 2, 3"):
        fastseg.remap(labels, {0: 5, 1: 6}, missing="error", in_place=True)
    assert labels.tolist() == [[0, 1], [2, 3]]


def test_in_place_signed_negative_fill() -> None:
    # int8 holds -1, and the same call without in_place returns int8 with -1.
    labels = np.array([0, 1, 2, 3], dtype=np.int8)
    expected = ref.remap(labels, {1: 1}, -1)
    assert fastseg.remap(labels, {1: 1}, missing=-1).dtype == np.int8
    assert fastseg.remap(labels, {1: 1}, missing=-1, in_place=True) is labels
    ref.assert_same_labels(labels, expected)


def test_in_place_mask_ignores_ids_the_dtype_cannot_hold() -> None:
    # Without in_place, ids that cannot occur in the input are ignored; in place too.
    original = np.array([0, 1, 2, 3, 100], dtype=np.int8)
    expected = ref.mask(original, keep=[1, 100, 200])
    assert fastseg.mask(original, [1, 100, 200]).tolist() == expected.tolist()
    labels = original.copy()
    assert fastseg.mask(labels, [1, 100, 200], in_place=True) is labels
    ref.assert_same_labels(labels, expected)


# == bad inputs ===========================================================================

CALLS: dict[str, Callable[[Any], object]] = {
    "unique": lambda a: fastseg.unique(a),
    "remap": lambda a: fastseg.remap(a, {1: 2}),
    "renumber": lambda a: fastseg.renumber(a),
    "mask": lambda a: fastseg.mask(a, [1]),
}


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("call", list(CALLS))
def test_float_labels_point_to_as_labels(call: str, dtype: Any) -> None:
    with pytest.raises(TypeError, match=r"fastseg\.as_labels"):
        CALLS[call](np.array([0.0, 1.0, 2.0], dtype=dtype))


@pytest.mark.parametrize(
    "labels",
    [
        np.array([1 + 0j]),
        np.array(["1"]),
        np.array([1], dtype=object),
        np.array(["2020-01-01"], dtype="datetime64[D]"),
    ],
    ids=["complex", "str", "object", "datetime"],
)
@pytest.mark.parametrize("call", list(CALLS))
def test_non_integer_arrays_refused(call: str, labels: np.ndarray) -> None:
    with pytest.raises(TypeError, match="must be an integer or bool array"):
        CALLS[call](labels)


@pytest.mark.parametrize("labels", [[0, 1, 2], (1, 2), 3, None, "labels"], ids=repr)
@pytest.mark.parametrize("call", list(CALLS))
def test_non_array_input_refused(call: str, labels: Any) -> None:
    with pytest.raises(TypeError, match="must be a numpy array of integer labels"):
        CALLS[call](labels)


@pytest.mark.parametrize("dtype", SIGNED_DTYPES)
@pytest.mark.parametrize("call", list(CALLS))
def test_negative_labels_refused(call: str, dtype: Any) -> None:
    labels = np.array([[0, 3], [int(np.iinfo(dtype).min), 1]], dtype=dtype, order="F")
    before = labels.copy()
    with pytest.raises(ValueError, match=rf"non-negative ids; found {np.iinfo(dtype).min}"):
        CALLS[call](labels)
    assert_unchanged(labels, before)


@pytest.mark.parametrize("call", list(CALLS))
def test_negative_label_only_in_last_chunk_refused(call: str) -> None:
    labels = np.zeros(LARGE_SHAPE, dtype=np.int32)
    labels[-1, -1, -1] = -7
    with pytest.raises(ValueError, match="found -7"):
        CALLS[call](labels)


@pytest.mark.parametrize(
    ("mapping", "error", "match"),
    [
        ([0, 1, 2], TypeError, "mapping must be a dict .* got list"),
        ((0, 1), TypeError, "mapping must be a dict .* got tuple"),
        (None, TypeError, "mapping must be a dict .* got NoneType"),
        (np.zeros((2, 3), np.uint8), TypeError, "1-D integer array .* 2-D uint8"),
        (np.array([0.0, 1.0]), TypeError, "1-D integer array .* 1-D float64"),
        (np.array(["a"]), TypeError, "1-D integer array"),
        ({1.0: 2}, TypeError, "mapping keys must be integers, got 1.0"),
        ({"1": 2}, TypeError, "mapping keys must be integers"),
        ({True: 2}, TypeError, "mapping keys must be integers, got True"),
        ({1: 2.0}, TypeError, "mapping values must be integers, got 2.0"),
        ({1: None}, TypeError, "mapping values must be integers"),
        ({1: np.float32(2)}, TypeError, "mapping values must be integers"),
        ({-1: 2}, ValueError, "mapping keys must be non-negative label ids, got -1"),
        ({1: 2**64}, ValueError, "mapping values must fit in 64 bits"),
        ({2**64: 1}, ValueError, "mapping keys must fit in 64 bits"),
        ({1: -1, 2: 2**63}, ValueError, "mix negative values and values above 2"),
    ],
)
def test_remap_bad_mapping(mapping: Any, error: type, match: str) -> None:
    labels = np.array([0, 1, 2], dtype=np.uint8)
    with pytest.raises(error, match=match):
        fastseg.remap(labels, mapping)


@pytest.mark.parametrize("missing", ["drop", "", None, 1.5, True, [0]], ids=repr)
def test_remap_bad_missing(missing: Any) -> None:
    with pytest.raises(ValueError, match='missing must be "keep", "error" or an integer'):
        fastseg.remap(np.array([0, 1], np.uint8), {1: 2}, missing=missing)


@pytest.mark.parametrize("kind", ["C", "F", "strided"])
@pytest.mark.parametrize(
    ("dtype", "ids"), [(np.uint8, "dense"), (np.uint32, "sparse"), (np.uint64, "sparse")]
)
def test_remap_missing_error_names_ids(dtype: Any, ids: str, kind: str) -> None:
    labels = layout(make_labels(dtype, (5, 6, 7), ids=ids, seed=18), kind)
    before = labels.copy()
    present = [int(v) for v in np.unique(labels).tolist()]
    mapping = {v: 1 for v in present[::2]}
    unmapped = ref.unmapped_ids(labels, mapping)
    n_voxels = int(np.isin(labels, np.array(unmapped, dtype=dtype)).sum())
    assert unmapped
    with pytest.raises(ValueError, match="missing='error'") as info:
        fastseg.remap(labels, mapping, missing="error")
    message = str(info.value)
    assert f"{n_voxels} voxels" in message
    listed = [int(v) for v in re.findall(r"\d+", message.split("):")[1].split(";")[0])]
    assert listed == unmapped[:5]
    assert message.split(";")[0].endswith(", ...") == (len(unmapped) > 5)
    assert_unchanged(labels, before)


def test_remap_missing_error_lists_exactly_five_ids_without_ellipsis() -> None:
    labels = np.arange(8, dtype=np.uint8)
    with pytest.raises(ValueError, match="does not map") as info:
        fastseg.remap(labels, {0: 0, 1: 1, 2: 2}, missing="error")
    # ids 3..7 are all the unmapped ones: nothing more to hint at with "..."
    assert "3, 4, 5, 6, 7;" in str(info.value)


# == fit_dtype and as_labels ==============================================================


@pytest.mark.parametrize(
    ("high", "low", "expected"),
    [
        (0, 0, np.uint8),
        (255, 0, np.uint8),
        (256, 0, np.uint16),
        (65_535, 0, np.uint16),
        (65_536, 0, np.uint32),
        (98_340_797, 0, np.uint32),
        (2**32 - 1, 0, np.uint32),
        (2**32, 0, np.uint64),
        (2**64 - 1, 0, np.uint64),
        (5, -1, np.int8),
        (127, -128, np.int8),
        (128, -1, np.int16),
        (5, -129, np.int16),
        (2**31 - 1, -(2**31), np.int32),
        (2**31, -1, np.int64),
        (2**63 - 1, -(2**63), np.int64),
        (-3, -5, np.int8),
    ],
)
def test_fit_dtype(high: int, low: int, expected: Any) -> None:
    assert fastseg.fit_dtype(high, low) == np.dtype(expected)
    assert ref.smallest_dtype(low, high) == np.dtype(expected)
    if low == 0:
        assert fastseg.fit_dtype(high) == np.dtype(expected)
        assert fastseg.fit_dtype(np.uint64(high)) == np.dtype(expected)


@pytest.mark.parametrize(
    ("high", "low", "match"),
    [
        (2**64, 0, "no 64-bit integer dtype"),
        (2**63, -1, "no 64-bit integer dtype"),
        (0, -(2**63) - 1, "no 64-bit integer dtype"),
        (1, 2, "min_value 2 is larger than max_value 1"),
        (-1, 0, "min_value 0 is larger than max_value -1"),
    ],
)
def test_fit_dtype_out_of_range(high: int, low: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fastseg.fit_dtype(high, low)


@given(
    st.integers(-(2**63), 2**64 - 1).flatmap(
        lambda a: st.tuples(st.just(a), st.integers(a, 2**64 - 1))
    )
)
def test_fit_dtype_property(bounds: tuple[int, int]) -> None:
    low, high = bounds
    try:
        expected = ref.smallest_dtype(low, high)
    except ValueError:
        with pytest.raises(ValueError, match="no 64-bit integer dtype"):
            fastseg.fit_dtype(high, low)
        return
    assert fastseg.fit_dtype(high, low) == expected


@pytest.mark.parametrize(
    ("values", "expected_dtype"),
    [
        ([0.0, 1.0, 300.0], np.uint16),
        ([0.0, 255.0], np.uint8),
        ([-0.0, 7.0], np.uint8),
        ([98_340_797.0], np.uint32),
        ([2.0**40], np.uint64),
        ([0, 70_000], np.uint32),
        ([], np.uint8),
    ],
)
def test_as_labels_converts(values: list[float], expected_dtype: Any) -> None:
    array = np.array(values)
    result = fastseg.as_labels(array)
    assert result.dtype == expected_dtype
    assert result.tolist() == [int(v) for v in values]


@pytest.mark.parametrize("dtype", LABEL_DTYPES)
def test_as_labels_integer_and_bool_input(dtype: Any) -> None:
    # The docstring: "Integer, bool or floating point values."
    array = np.array([[1, 0], [1, 1]], dtype=dtype, order="F")
    result = fastseg.as_labels(array)
    assert result.dtype == np.uint8
    assert result.tolist() == [[1, 0], [1, 1]]
    assert result.flags.f_contiguous


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_as_labels_keeps_shape_and_order(dtype: Any) -> None:
    volume = np.asfortranarray(np.arange(24, dtype=dtype).reshape(2, 3, 4))
    result = fastseg.as_labels(volume)
    assert result.flags.f_contiguous
    assert result.shape == (2, 3, 4)
    np.testing.assert_array_equal(result, np.arange(24).reshape(2, 3, 4))
    assert result.dtype == np.uint8
    # and the converted array is accepted everywhere
    assert fastseg.unique(result).tolist() == list(range(24))


def test_as_labels_dtype_argument() -> None:
    assert fastseg.as_labels(np.array([1.0, 2.0]), dtype=np.int32).dtype == np.int32
    assert fastseg.as_labels([1, 2], dtype="uint64").dtype == np.uint64
    with pytest.raises(ValueError, match="uint8 cannot hold"):
        fastseg.as_labels(np.array([256.0]), dtype=np.uint8)
    with pytest.raises(TypeError, match="dtype must be an integer dtype"):
        fastseg.as_labels(np.array([1.0]), dtype=np.float32)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ([0.0, np.nan], "NaN or infinite"),
        ([np.inf], "NaN or infinite"),
        ([-np.inf, 1.0], "NaN or infinite"),
        ([0.0, 0.5], r"whole numbers; found \S*0\.5"),
        ([1e-9], "whole numbers"),
        ([-1.0, 2.0], r"non-negative; found \S*-1"),
        ([-1, 2], r"non-negative; found \S*-1"),
        ([2.0**70], "does not fit in 64 bits|no 64-bit integer dtype"),
    ],
)
def test_as_labels_refuses(values: list[float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fastseg.as_labels(np.array(values))


def test_as_labels_refuses_non_numbers() -> None:
    with pytest.raises(TypeError, match="labels must hold numbers"):
        fastseg.as_labels(np.array(["1", "2"]))


# == hypothesis: small random arrays against the references ===============================


def ids_for(labels: np.ndarray) -> st.SearchStrategy[int]:
    """Ids the labels' dtype can hold, often ones that occur in ``labels``."""
    top = dtype_max(labels.dtype)
    present = sorted({int(v) for v in labels.ravel().tolist()})
    small = st.integers(0, min(top, 8))
    return st.one_of(st.sampled_from(present), small) if present else small


@given(any_label_arrays())
def test_unique_property(labels: np.ndarray) -> None:
    values, counts = fastseg.unique(labels, return_counts=True)
    want_values, want_counts = ref.unique(labels)
    assert values.tolist() == want_values
    assert counts.tolist() == want_counts
    assert values.dtype == labels.dtype


@given(st.data())
def test_remap_property(data: st.DataObject) -> None:
    labels = data.draw(any_label_arrays())
    before = labels.copy()
    # Mapped and fill values fit uint8: every (input, output) dtype pair compiles its own
    # kernels, and the parametrized tests above cover wider and signed outputs. Kept ids
    # still widen the result here.
    mapping = data.draw(st.dictionaries(ids_for(labels), st.integers(0, 255), max_size=6))
    missing = data.draw(st.one_of(st.sampled_from(["keep", "error"]), st.integers(0, 255)))
    if missing == "error" and ref.unmapped_ids(labels, mapping):
        with pytest.raises(ValueError, match="does not map"):
            fastseg.remap(labels, mapping, missing=missing)
        assert_unchanged(labels, before)
        return
    expected_dtype = ref.remap_dtype(labels, mapping, missing)
    result = fastseg.remap(labels, mapping, missing=missing)
    check_labels_out(result, ref.remap(labels, mapping, missing), expected_dtype, labels, before)


@given(any_label_arrays(), st.booleans(), st.integers(0, 100))
def test_renumber_property(labels: np.ndarray, preserve_zero: bool, start: int) -> None:
    if preserve_zero and start == 0:
        start = 1
    before = labels.copy()
    relabeled, mapping = fastseg.renumber(labels, start=start, preserve_zero=preserve_zero)
    expected, expected_mapping = ref.renumber(labels, start, preserve_zero)
    assert mapping == expected_mapping
    check_labels_out(relabeled, expected, ref.renumber_dtype(expected_mapping), labels, before)


@given(st.data())
def test_mask_property(data: st.DataObject) -> None:
    labels = data.draw(any_label_arrays())
    before = labels.copy()
    ids = data.draw(st.lists(ids_for(labels), max_size=5))
    value = data.draw(st.integers(0, min(dtype_max(labels.dtype), 300)))
    if data.draw(st.booleans()):
        result = fastseg.mask(labels, ids, value=value)
        expected = ref.mask(labels, keep=ids, value=value)
    else:
        result = fastseg.mask(labels, remove=ids, value=value)
        expected = ref.mask(labels, remove=ids, value=value)
    check_labels_out(result, expected, labels.dtype, labels, before)


@given(any_label_arrays(), st.data())
def test_in_place_property(labels: np.ndarray, data: st.DataObject) -> None:
    if not (labels.flags.c_contiguous or labels.flags.f_contiguous) or not labels.dtype.isnative:
        labels = np.array(labels, order="K", dtype=labels.dtype.newbyteorder("="))
    original = labels.copy(order="K")
    top = dtype_max(labels.dtype)
    mapping = data.draw(st.dictionaries(ids_for(labels), st.integers(0, min(top, 300)), max_size=5))
    assert fastseg.remap(labels, mapping, in_place=True) is labels
    ref.assert_same_labels(labels, ref.remap(original, mapping))
    assert memory_order(labels) == memory_order(original)


# == real volumes (../shared/data) ========================================================


def _load(path: Any) -> np.ndarray:
    return np.asanyarray(nibabel.load(path).dataobj)


@pytest.mark.parametrize(
    "shared_data", [("torso_labels.nii.gz", "torso_labels.json")], indirect=True
)
def test_torso_volume(shared_data: Any) -> None:
    volume = _load(shared_data / "torso_labels.nii.gz")
    names = json.loads((shared_data / "torso_labels.json").read_text())["labels"]
    assert volume.flags.f_contiguous
    before = volume.copy(order="K")

    values, counts = fastseg.unique(volume, return_counts=True)
    bincount = np.bincount(volume.ravel(order="K"), minlength=256)
    np.testing.assert_array_equal(values, np.flatnonzero(bincount))
    np.testing.assert_array_equal(counts, bincount[bincount > 0])
    assert set(values.tolist()) <= set(names.values())

    kidneys = {names["kidney_left"]: 1, names["kidney_right"]: 1}
    semantic = fastseg.remap(volume, kidneys, missing=0)
    lut = np.zeros(256, np.uint8)
    lut[list(kidneys)] = 1
    np.testing.assert_array_equal(semantic, lut[volume])
    assert semantic.dtype == np.uint8
    assert semantic.flags.f_contiguous

    liver = fastseg.mask(volume, [names["liver"]])
    np.testing.assert_array_equal(liver, np.where(volume == names["liver"], volume, 0))
    assert liver.flags.f_contiguous
    assert_unchanged(volume, before)


@pytest.mark.parametrize("shared_data", ["platynereis_nuclei.nii.gz"], indirect=True)
def test_platynereis_volume(shared_data: Any) -> None:
    volume = _load(shared_data / "platynereis_nuclei.nii.gz")
    assert volume.flags.f_contiguous
    relabeled, mapping = fastseg.renumber(volume, start=1)
    anchor, forward, _ = relabel_sequential(volume)
    np.testing.assert_array_equal(relabeled, anchor)
    assert relabeled.flags.f_contiguous
    assert relabeled.dtype == np.uint8
    present = np.unique(volume)
    assert mapping == dict(zip(present.tolist(), forward[present].tolist(), strict=True))


# -- tables indexed by id -----------------------------------------------------------------


@given(
    hnp.arrays(
        np.uint32,
        st.integers(1, 3000),
        elements=st.one_of(st.integers(0, 40), st.integers(16_000, 70_000)),
    ),
    st.integers(1, 9),
)
def test_count_present_counts_distinct_values(values: np.ndarray, chunks: int) -> None:
    from fastseg._kernels import relabel as relabel_kernels

    high = int(values.max())
    assert relabel_kernels.count_present(values, high + 1, chunks) == np.unique(values).size


@pytest.mark.parametrize(
    ("ids", "dense"),
    [
        (np.arange(16_384), True),  # below the constant: used as they are
        (np.array([0, 16_383]), True),
        (np.array([0, 16_384]), False),  # beyond it and sparse: renumbered
        (np.arange(20_000, 30_000), True),  # a component map with gaps
        (np.arange(0, 40_000, 5), False),  # every fifth id: more than four times too long
        (np.arange(0, 40_000, 4), True),
        (np.array([1, 4_194_303]), False),  # one stray voxel
        (np.arange((1 << 24) - 10, (1 << 24) + 10), False),  # not counted: renumbered
    ],
)
def test_id_tables_stay_small(ids: np.ndarray, dense: bool) -> None:
    from fastseg._arrays import as_label_array
    from fastseg.relabel import dense_ids, id_table_size

    labels = np.random.default_rng(0).permutation(np.repeat(ids, 3)).astype(np.uint32)
    source = as_label_array(labels)
    size = id_table_size(source)
    assert size == (int(ids.max()) + 1 if dense else None)
    result, old_ids = dense_ids(source)
    if dense:
        assert result is source
        assert old_ids is None
    else:
        assert old_ids is not None
        renumbered = result.flat.reshape(labels.shape)
        np.testing.assert_array_equal(old_ids[renumbered], labels)
        assert old_ids.size == ids.size + (0 not in ids)
        assert result.value_range() == (int(renumbered.min()), int(renumbered.max()))
    # Counting every id, however large, tells dense maps beyond 2**24 from sparse ones.
    assert id_table_size(source, count_any=True) == size or int(ids.max()) >= 1 << 24

"""Tests for :mod:`fastseg.dask`: chunked labeling, statistics, relabeling, lazy reading
and batches of files.

References: :func:`fastseg.label`, :func:`fastseg.stats`, :func:`fastseg.remap` and
:func:`fastseg.to_semantic` on the whole array (each checked against naive references in
its own tests), scipy.ndimage.label for binary inputs, and hand-made volumes whose
components are known. Many random cases run on dask's synchronous scheduler (hypothesis);
a handful run on a real ``dask.distributed.LocalCluster`` with two worker processes.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import multiprocessing
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import dask
import dask.array as da
import nibabel
import numpy as np
import pytest
import zarr
from dask.callbacks import Callback
from dask.core import get_dependencies
from distributed import Client, LocalCluster
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from shared_data import shared_data_path

import fastseg
import fastseg.dask as fdask
import fastseg.dask.nifti as fnifti

# Worker processes cannot import this test module; its functions travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

CONNECTIVITIES = {1: (None, 1, 2), 2: (None, 4, 8), 3: (None, 6, 18, 26)}


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    """Two worker processes with one thread each: every task runs in another process."""
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as connected,
    ):
        yield connected


def assert_same_components(result: fastseg.Components, labels: np.ndarray, **kwargs: Any) -> None:
    """Equal to fastseg.label on the whole array: the same ids (so the same partition,
    numbered by first voxel), count and values, and consecutive ids."""
    expected = fastseg.label(labels, **kwargs)
    assert result.count == expected.count
    np.testing.assert_array_equal(result.labels, expected.labels)
    assert result.values.dtype == expected.values.dtype
    np.testing.assert_array_equal(result.values, expected.values)
    present = np.unique(result.labels)
    np.testing.assert_array_equal(present[present != 0], np.arange(1, result.count + 1))


def chunked(labels: np.ndarray, chunks: Any) -> da.Array:
    """``labels`` in blocks; a Fortran-ordered array gives Fortran-ordered blocks, as
    :func:`fastseg.dask.from_nifti` does (``from_array`` alone would give C order)."""
    darr = da.from_array(labels, chunks=chunks)
    if labels.ndim >= 2 and labels.flags.f_contiguous and not labels.flags.c_contiguous:
        darr = darr.map_blocks(np.asfortranarray)
    return darr


# -- random volumes in random chunkings ---------------------------------------------------


@st.composite
def chunkings(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Uneven chunk sizes along every axis, size 1 included."""
    result = []
    for n in shape:
        cuts = draw(st.sets(st.integers(1, n - 1), max_size=n - 1)) if n > 1 else set()
        edges = [0, *sorted(cuts), n]
        result.append(tuple(b - a for a, b in itertools.pairwise(edges)))
    return tuple(result)


@st.composite
def chunked_cases(draw: st.DrawFn) -> tuple[np.ndarray, Any, int | None, int]:
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    dtype = draw(st.sampled_from([np.bool_, np.uint8, np.int16, np.uint32, np.uint64]))
    classes = 2 if dtype is np.bool_ else draw(st.integers(2, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    labels = np.random.default_rng(seed).integers(0, classes, shape).astype(dtype)
    if draw(st.booleans()):
        labels = np.asfortranarray(labels)
    connectivity = draw(st.sampled_from(CONNECTIVITIES[ndim]))
    background = draw(st.integers(0, 1))
    return labels, draw(chunkings(shape)), connectivity, background


@settings(max_examples=150)
@given(chunked_cases(), st.sampled_from([None, True, False]), st.booleans())
def test_label_equals_fastseg_label(
    case: tuple[np.ndarray, Any, int | None, int], keep_runs: bool | None, assembled: bool
) -> None:
    """With the runs kept between the passes or read and labelled again, painted into
    blocks that dask assembles or straight into the whole map (``compute``)."""
    labels, chunks, connectivity, background = case
    result = fdask.label(
        chunked(labels, chunks), connectivity=connectivity, background=background,
        keep_runs=keep_runs,
    )  # fmt: skip
    assert isinstance(result, fdask.DaskComponents)
    if assembled:
        computed = fastseg.Components(*dask.compute(*result, scheduler="sync"))
    else:
        computed = result.compute(scheduler="sync")
    assert isinstance(computed, fastseg.Components)
    assert_same_components(computed, labels, connectivity=connectivity, background=background)


@pytest.mark.parametrize("keep_runs", [True, False])
@pytest.mark.parametrize("shape", [(9,), (6, 9), (6, 9, 12)], ids=["1d", "2d", "3d"])
def test_compute_paints_into_one_array(
    monkeypatch: pytest.MonkeyPatch, shape: tuple[int, ...], keep_runs: bool
) -> None:
    """On the synchronous and the threaded scheduler, compute paints every block into its
    place in the whole map (no assembly by dask), in the blocks' memory order (as
    fastseg.label); on a derived array, it cannot."""
    from fastseg.dask import labeling

    filled: list[Any] = []
    fill = labeling._fill
    monkeypatch.setattr(labeling, "_fill", lambda out, *rest: filled.append(fill(out, *rest)))
    labels = np.asfortranarray(np.random.default_rng(3).integers(0, 3, shape, np.uint8))
    result = fdask.label(chunked(labels, 3), keep_runs=keep_runs)
    blocks = result.labels.npartitions
    for scheduler in ("sync", "threads"):
        filled.clear()
        computed = result.compute(scheduler=scheduler)
        assert len(filled) == blocks
        assert computed.labels.flags.f_contiguous
        # As fastseg.label's, fitting the count (uint8), where the dtype of result.labels
        # is fixed before counting, to hold one id per voxel (uint16 in 3-D).
        assert computed.labels.dtype == fastseg.label(labels).labels.dtype == np.uint8
        assert result.labels.dtype == (np.uint16 if labels.size > 255 else np.uint8)
        assert_same_components(computed, labels)
    c_ordered = fdask.label(da.from_array(np.ascontiguousarray(labels), chunks=3))
    assert c_ordered.compute(scheduler="sync").labels.flags.c_contiguous
    filled.clear()
    derived = result._replace(labels=result.labels + 0).compute(scheduler="sync")
    assert not filled
    assert_same_components(derived, labels)


@pytest.mark.parametrize("shape", [(30, 41), (23, 30, 41)], ids=["2d", "3d"])
def test_blocks_come_back_c_ordered(shape: tuple[int, ...]) -> None:
    """Fortran-ordered blocks are numbered straight into C order (dask assembles C-ordered
    arrays, where Fortran-ordered blocks would be transposed again), with the same ids."""
    blobs = ndimage.gaussian_filter(np.random.default_rng(4).standard_normal(shape), 1.5)
    labels = np.asfortranarray(np.digitize(blobs, [-0.1, 0.1]).astype(np.uint8))
    darr = chunked(labels, 16)
    # to_delayed: the blocks as the tasks return them, not assembled into an array.
    assert darr.to_delayed().flat[0].compute(scheduler="sync").flags.f_contiguous
    result = fdask.label(darr)
    for block in result.labels.to_delayed().flat:
        assert block.compute(scheduler="sync").flags.c_contiguous
    assert_same_components(result.compute(scheduler="sync"), labels)


# -- hand-made volumes: contacts across faces, edges and corners of blocks ----------------


@pytest.mark.parametrize(("connectivity", "count"), [(6, 5), (18, 5), (26, 1)])
def test_diagonal_through_block_corners(connectivity: int, count: int) -> None:
    """Voxels touching only at corners, each in its own block: one component at 26."""
    labels = np.zeros((5, 5, 5), np.uint8)
    labels[np.arange(5), np.arange(5), np.arange(5)] = 3
    result = fdask.label(chunked(labels, 1), connectivity=connectivity)  # type: ignore[arg-type]
    assert dask.compute(result.count, scheduler="sync")[0] == count


@pytest.mark.parametrize(("connectivity", "count"), [(6, 4), (18, 1), (26, 1), (4, 4), (8, 1)])
def test_diagonal_through_block_edges(connectivity: int, count: int) -> None:
    """Voxels touching only along edges, across the edges between blocks."""
    ndim = 2 if connectivity in (4, 8) else 3
    labels = np.zeros((4,) * ndim, np.uint16)
    index = (np.arange(4), np.arange(4)) + ((np.full(4, 2),) if ndim == 3 else ())
    labels[index] = 7
    chunks = (2, 2, 3)[:ndim]
    result = fdask.label(chunked(labels, chunks), connectivity=connectivity)  # type: ignore[arg-type]
    assert dask.compute(result.count, scheduler="sync")[0] == count
    assert_same_components(result.compute(scheduler="sync"), labels, connectivity=connectivity)


def test_values_never_join_across_blocks() -> None:
    """Touching voxels of different values stay apart (multilabel), also at boundaries."""
    labels = np.array([[1, 1, 2, 2], [1, 1, 2, 2]], np.uint8)
    cc, count, values = fdask.label(chunked(labels, (1, 2))).compute(scheduler="sync")
    assert count == 2
    assert cc.tolist() == [[1, 1, 2, 2], [1, 1, 2, 2]]
    assert values.tolist() == [0, 1, 2]


def spiral(size: int) -> np.ndarray:
    """A square spiral of 1s walking inward with gaps of one 0 between its turns: one
    component winding through every block."""
    grid = np.zeros((size, size), np.uint8)
    lengths = [size - 1] * 3 + [n for n in range(size - 3, 0, -2) for _ in range(2)]
    directions = itertools.cycle([(0, 1), (1, 0), (0, -1), (-1, 0)])
    y = x = 0
    grid[0, 0] = 1
    for length, (dy, dx) in zip(lengths, directions, strict=False):
        for _ in range(length):
            y, x = y + dy, x + dx
            grid[y, x] = 1
    return grid


def test_spiral_is_one_component() -> None:
    """A spiral winds through every block; scipy (independent) agrees it is connected."""
    grid = spiral(41)
    expected, n = ndimage.label(grid)
    assert n == 1
    cc, count, _ = fdask.label(chunked(grid, (5, 7)), connectivity=4).compute(scheduler="sync")
    assert count == 1
    np.testing.assert_array_equal(cc, expected)


def cluster_cases() -> Iterator[Any]:
    rng = np.random.default_rng(7)
    blobs = ndimage.gaussian_filter(rng.standard_normal((30, 28, 26)), 2)
    classes = np.digitize(blobs, np.quantile(blobs, [0.3, 0.6, 0.8])).astype(np.uint16)
    yield pytest.param(classes, ((7, 11, 12), (28,), (1, 5, 20)), 26, id="blobs-uneven-26")
    yield pytest.param(np.asfortranarray(classes[:, :10]), (9, 1, 13), 18, id="blobs-F-size1-18")
    yield pytest.param(classes, 8, 6, id="blobs-many-blocks-6")
    stack = np.stack([spiral(25) * (1 + (i % 2)) for i in range(4)]).astype(np.uint8)
    yield pytest.param(stack, (2, 6, 5), 26, id="spirals-26")
    noise = rng.integers(0, 3, (64, 48), dtype=np.uint8)
    yield pytest.param(noise, (17, 10), 8, id="noise-2d-8")
    yield pytest.param(noise, (64, 1), 4, id="noise-2d-columns-4")


@pytest.mark.parametrize("keep_runs", [None, False])
@pytest.mark.parametrize(("labels", "chunks", "connectivity"), list(cluster_cases()))
def test_label_on_cluster(
    client: Client, labels: np.ndarray, chunks: Any, connectivity: int, keep_runs: bool | None
) -> None:
    darr = chunked(labels, chunks)
    result = fdask.label(darr, connectivity=connectivity, keep_runs=keep_runs)  # type: ignore[arg-type]
    computed = result.compute()  # the client is the default scheduler
    assert_same_components(computed, labels, connectivity=connectivity)


def test_label_is_lazy() -> None:
    """Building the graph reads no block: a block that fails is only reached by compute."""

    def fail(block: np.ndarray) -> np.ndarray:
        raise RuntimeError("read")

    blocks = da.zeros((4, 4), np.uint8, chunks=2).map_blocks(fail, dtype=np.uint8)
    result = fdask.label(blocks)
    with pytest.raises(RuntimeError, match="read"):
        result.labels.compute(scheduler="sync")


def test_no_task_holds_more_than_one_block() -> None:
    """Every task sees at most one block of the input (read once per pass); only boundary
    layers (2-D), summaries and lookup tables travel further, and no block's component map
    is kept: the second pass reads and labels every block again, after the join."""
    darr = chunked(np.zeros((12, 12, 12), np.uint8), 4)
    result = fdask.label(darr, keep_runs=False)
    graph = dict(result.labels.__dask_graph__())
    labels_keys = [k for k in graph if isinstance(k, tuple) and k[0].endswith("-labels")]
    reads = {d[0] for k in labels_keys for d in get_dependencies(graph, k) if isinstance(d, tuple)}
    assert len(labels_keys) == 27
    assert len(reads) == 1  # one dependency per block besides the join: its second read
    block_sized = {darr.name, *reads}
    kinds = set()
    for key in graph:
        name = key[0] if isinstance(key, tuple) else key
        kinds.add(name.rsplit("-", 1)[-1])
        blocks = [
            d for d in get_dependencies(graph, key) if isinstance(d, tuple) and d[0] in block_sized
        ]
        assert len(blocks) <= 1, (key, blocks)
    assert {"block", "sides", "face", "pairs", "resolve", "labels"} <= kinds  # all seen

    def upstream(key: Any) -> set[Any]:
        seen, todo = set(), [key]
        while todo:
            for d in get_dependencies(graph, todo.pop()):
                if d not in seen:
                    seen.add(d)
                    todo.append(d)
        return seen

    # The second reads wait for the join; the first pass never depends on it.
    second = next(k for k in graph if isinstance(k, tuple) and k[0] in reads)
    assert any(isinstance(k, str) and k.endswith("-resolve") for k in upstream(second))
    first = next(k for k in graph if isinstance(k, tuple) and k[0].endswith("-block"))
    assert not any(isinstance(k, str) and k.endswith("-resolve") for k in upstream(first))


def arrays_in(value: Any) -> Iterator[np.ndarray]:
    """The numpy arrays in a task's result (through tuples, lists and dataclasses)."""
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from arrays_in(item)
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            yield from arrays_in(getattr(value, name))


class HeldBlocks(Callback):  # type: ignore[misc]
    """The most 3-D block-sized arrays and 2-D block layers the synchronous scheduler held
    at once between tasks."""

    def __init__(self, block_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.block_shape = block_shape
        self.blocks = self.layers = 0

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        held = [a for value in state["cache"].values() for a in arrays_in(value)]
        self.blocks = max(self.blocks, sum(a.shape == self.block_shape for a in held))
        self.layers = max(self.layers, sum(a.shape == self.block_shape[1:] for a in held))


def test_memory_follows_the_blocks_in_flight(tmp_path: Path) -> None:
    """Labelling keeps no block's component map until the join and compares the layers of
    the blocks slab by slab: with the synchronous scheduler at most one block and its
    labels are held at a time, and the layers of a few slabs of blocks, whatever the
    number of slabs (the whole volume of maps used to be held until the join)."""
    rng = np.random.default_rng(9)
    blobs = ndimage.gaussian_filter(rng.standard_normal((72, 12, 12)), 1.5)
    labels = np.digitize(blobs, [-0.05, 0.05]).astype(np.uint8)
    store = zarr.open_array(tmp_path / "labels.zarr", mode="w", shape=labels.shape,
                            chunks=(6, 6, 6), dtype=labels.dtype)  # fmt: skip
    store[...] = labels
    result = fdask.label(da.from_zarr(tmp_path / "labels.zarr"), keep_runs=False)
    # Each output block is reduced to one voxel, as storing it (to_zarr) would free it.
    tiny = result.labels.map_blocks(lambda b: b[:1, :1, :1], chunks=(1, 1, 1))
    with HeldBlocks((6, 6, 6)) as held:
        _, count = dask.compute(tiny, result.count, scheduler="sync")
    assert count == fastseg.label(labels).count
    assert held.blocks <= 2  # a block of input and its labels (there are 48 blocks)
    assert held.layers <= 6 * 3 * 4  # six layers per block, three slabs of four blocks
    # Statistics hold per-block tables (and layers, for surfaces) until their merge task,
    # which takes sixteen blocks at a time.
    with HeldBlocks((6, 6, 6)) as held, dask.config.set(scheduler="sync"):
        table = fdask.stats(da.from_zarr(tmp_path / "labels.zarr"), surface=True)
    assert_same_stats(table, fastseg.stats(labels, surface=True))
    assert held.blocks <= 1
    assert held.layers <= 6 * 2 * 16


def test_out_dtype() -> None:
    labels = np.arange(1, 301, dtype=np.uint16).reshape(15, 20)
    darr = chunked(labels, 4)
    assert fdask.label(darr).labels.dtype == np.uint16  # holds one id per voxel
    cc = fdask.label(darr, connectivity=4, out_dtype=np.uint64).labels
    assert cc.dtype == np.uint64
    assert cc.compute(scheduler="sync").dtype == np.uint64
    computed = fdask.label(darr, connectivity=4, out_dtype=np.uint64).compute(scheduler="sync")
    assert computed.labels.dtype == np.uint64
    assert fdask.label(darr).compute(scheduler="sync").labels.dtype == np.uint16  # 300 ids
    with pytest.raises(ValueError, match="out_dtype uint8 cannot hold"):
        fdask.label(darr, connectivity=4, out_dtype=np.uint8).labels.compute(scheduler="sync")
    with pytest.raises(TypeError, match="out_dtype must be an integer dtype"):
        fdask.label(darr, out_dtype=np.float32)


def test_empty_and_single_voxel() -> None:
    cc, count, values = fdask.label(chunked(np.zeros((0, 4), np.uint8), 2)).compute(
        scheduler="sync"
    )
    assert cc.shape == (0, 4)
    assert count == 0
    assert values.tolist() == [0]
    cc, count, _ = fdask.label(chunked(np.ones((1, 1, 1), np.int8), 1)).compute(scheduler="sync")
    assert count == 1
    assert cc.tolist() == [[[1]]]


def test_bad_input() -> None:
    labels = chunked(np.zeros((4, 4), np.uint8), 2)
    with pytest.raises(TypeError, match="must be a dask array"):
        fdask.label(np.zeros((4, 4), np.uint8))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"fastseg\.as_labels"):
        fdask.label(labels.astype(np.float32))
    with pytest.raises(ValueError, match="must have 1, 2, 3 dimensions"):
        fdask.label(chunked(np.zeros((2, 2, 2, 2), np.uint8), 1))
    with pytest.raises(ValueError, match="connectivity 6 is not valid for a 2-D array"):
        fdask.label(labels, connectivity=6)
    with pytest.raises(ValueError, match="background must be a value"):
        fdask.label(labels, background=300)
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        fdask.label(labels[labels > 0])
    negative = chunked(np.array([[0, -1], [1, 1]], np.int8), 1)
    with pytest.raises(ValueError, match="non-negative"):
        fdask.label(negative).labels.compute(scheduler="sync")


# -- statistics ---------------------------------------------------------------------------


def assert_same_stats(actual: fastseg.InstanceStats, expected: fastseg.InstanceStats) -> None:
    """Integer-derived columns exactly; float sums to rounding (added in another order)."""
    np.testing.assert_array_equal(actual.ids, expected.ids)
    exact = ("voxel_count", "volume", "bbox", "centroid", "min", "max", "centroid_world", "surface")
    for name in exact:
        if getattr(expected, name) is None:
            assert getattr(actual, name) is None, name
        else:
            np.testing.assert_array_equal(getattr(actual, name), getattr(expected, name), name)
    for name in ("mean", "std", "sum"):
        if getattr(expected, name) is None:
            assert getattr(actual, name) is None, name
        else:
            np.testing.assert_allclose(getattr(actual, name), getattr(expected, name), 1e-12)
    assert actual.spacing == expected.spacing


@settings(max_examples=80)
@given(
    chunked_cases(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.none() | st.lists(st.integers(0, 5), max_size=4),
    st.integers(0, 2**32 - 1),
)
def test_stats_equal_fastseg_stats(
    case: tuple[np.ndarray, Any, int | None, int],
    with_image: bool,
    sparse: bool,
    surface: bool,
    ids: list[int] | None,
    seed: int,
) -> None:
    """Every column, surfaces across block boundaries and requested absent ids included,
    as fastseg.stats on the whole array."""
    labels, chunks, _, _ = case
    if sparse and labels.dtype.kind != "b":
        labels = labels.astype(np.uint32) * np.uint32(40_000_001)  # ids renumbered per block
        ids = None if ids is None else [i * 40_000_001 for i in ids]
    rng = np.random.default_rng(seed)
    image = rng.normal(100, 30, labels.shape).astype(np.float32) if with_image else None
    affine = np.diag([0.5, 2.0, 3.0, 1.0])
    kwargs: dict[str, Any] = {"affine": affine, "surface": surface, "ids": ids}
    with dask.config.set(scheduler="sync"):
        actual = fdask.stats(chunked(labels, chunks), image, **kwargs)
    assert_same_stats(actual, fastseg.stats(labels, image, **kwargs))


@pytest.mark.parametrize("shape", [(0, 4, 4), (3, 0), (0,), (1,), (1, 1, 1)])
def test_stats_of_empty_and_single_voxel_volumes(shape: tuple[int, ...]) -> None:
    labels = np.ones(shape, np.uint8)
    for kwargs in ({}, {"surface": True}, {"surface": True, "ids": [1, 3]}):
        with dask.config.set(scheduler="sync"):
            actual = fdask.stats(chunked(labels, 2), **kwargs)
        assert_same_stats(actual, fastseg.stats(labels, **kwargs))


def test_stats_on_cluster(client: Client) -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 6, (20, 18, 16), dtype=np.uint8).repeat(2, axis=0)
    image = np.asfortranarray(rng.integers(-1000, 3000, labels.shape, dtype=np.int16))
    darr = chunked(labels, (9, 7, 16))
    # The image arrives in other chunks and is rechunked like the labels.
    actual = fdask.stats(darr, chunked(image, 10), spacing=(0.8, 0.8, 2.5), surface=True)
    expected = fastseg.stats(labels, image, spacing=(0.8, 0.8, 2.5), surface=True)
    assert_same_stats(actual, expected)


def test_stats_precision_of_the_merged_deviation() -> None:
    """A large offset with a small spread, where a variance from sums of squares (1e18
    each) keeps no digit; merged deviations agree with numpy's two-pass std to the
    precision the values themselves hold (1e9 + 1e-3 noise: about 7 digits)."""
    labels = np.ones((40, 40), np.uint8)
    image = 1e9 + np.random.default_rng(0).normal(0, 1e-3, labels.shape)
    with dask.config.set(scheduler="sync"):
        table = fdask.stats(chunked(labels, 7), image)
    assert table.std is not None
    np.testing.assert_allclose(table.std, [np.std(image, ddof=1)], rtol=1e-4)
    squares = np.sum(image**2) - np.sum(image) ** 2 / image.size
    assert not np.isclose(np.sqrt(max(squares, 0) / (image.size - 1)), table.std[0], rtol=0.1)


def test_stats_bad_image() -> None:
    labels = chunked(np.zeros((4, 4), np.uint8), 2)
    with pytest.raises(ValueError, match="same shape"):
        fdask.stats(labels, np.zeros((4, 5)))
    with pytest.raises(TypeError, match="array of numbers"):
        fdask.stats(labels, [[0] * 4] * 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="spacing must give one voxel size per axis"):
        fdask.stats(labels, spacing=(1.0,))


# -- block-wise relabeling ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("missing", "out_dtype", "dtype"),
    [("keep", None, np.uint32), (0, None, np.uint8), ("keep", np.uint8, np.uint8)],
)
def test_remap_equals_fastseg_remap(missing: Any, out_dtype: Any, dtype: Any) -> None:
    labels = np.random.default_rng(0).integers(0, 60, (12, 10), dtype=np.uint32)
    mapping = {i: i % 5 for i in range(0, 60, 2)}
    result = fdask.remap(chunked(labels, (5, 3)), mapping, missing=missing, out_dtype=out_dtype)
    assert result.dtype == dtype
    computed = result.compute(scheduler="sync")
    assert computed.dtype == dtype
    np.testing.assert_array_equal(computed, fastseg.remap(labels, mapping, missing=missing))


def test_remap_errors() -> None:
    labels = chunked(np.array([[1, 2], [3, 4]], np.uint8), 1)
    with pytest.raises(ValueError, match="does not map"):
        fdask.remap(labels, {1: 1}, missing="error").compute(scheduler="sync")
    with pytest.raises(ValueError, match="missing must be"):
        fdask.remap(labels, {1: 1}, missing="drop")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mapping must be"):
        fdask.remap(labels, [1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize("unknown", ["error", "background", "keep"])
def test_to_semantic_equals_fastseg(client: Client, unknown: Any) -> None:
    schema = fastseg.Schema([fastseg.Category("Vertebra", 1), fastseg.Category("Disc", 2)])
    segments = fastseg.SegmentMap(
        {i: fastseg.Segment("Vertebra" if i % 2 else "Disc") for i in range(1, 40)}
    )
    instances = np.random.default_rng(1).integers(0, 40, (16, 12, 5), dtype=np.uint16)
    if unknown != "error":
        instances[0, 0, 0] = 999
    darr = fdask.to_semantic(chunked(instances, (5, 5, 2)), segments, schema, unknown=unknown)
    expected = fastseg.to_semantic(instances, segments, schema, unknown=unknown)
    computed = darr.compute()
    np.testing.assert_array_equal(computed, expected)
    assert darr.dtype == computed.dtype == (np.uint16 if unknown == "keep" else np.uint8)
    if unknown == "error":
        instances[3, 3, 3] = 999
        with pytest.raises(ValueError, match="999"):
            fdask.to_semantic(chunked(instances, 4), segments, schema).compute()


# -- lazy reading -------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_from_nifti_reads_blocks(tmp_path: Path, suffix: str) -> None:
    labels = np.random.default_rng(2).integers(0, 4, (13, 9, 7), dtype=np.uint16)
    path = tmp_path / f"labels{suffix}"
    fastseg.save(path, labels)
    darr = fdask.from_nifti(path, chunks=(5, 4, 7))
    assert darr.numblocks == (3, 3, 1)
    assert darr.dtype == np.uint8  # fastseg.save stores the smallest dtype
    np.testing.assert_array_equal(darr.compute(scheduler="sync"), labels)
    computed = fdask.label(darr, connectivity=6).compute(scheduler="sync")
    assert_same_components(computed, labels.astype(np.uint8), connectivity=6)


def test_from_nifti_float_labels(tmp_path: Path) -> None:
    stored = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    path = tmp_path / "float.nii.gz"
    nibabel.save(nibabel.Nifti1Image(stored, np.eye(4)), path)
    assert fdask.from_nifti(path).dtype == np.float32
    converted = fdask.from_nifti(path, chunks=2, dtype=np.uint16)
    assert converted.dtype == np.uint16
    np.testing.assert_array_equal(converted.compute(scheduler="sync"), stored)
    stored[1, 2, 3] = 0.5
    nibabel.save(nibabel.Nifti1Image(stored, np.eye(4)), path)
    with pytest.raises(ValueError, match=r"float\.nii\.gz: labels must be whole numbers"):
        fdask.from_nifti(path, chunks=2, dtype=np.uint16).compute(scheduler="sync")


def test_from_nifti_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        fdask.from_nifti(tmp_path / "absent.nii.gz")
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a nifti file")
    with pytest.raises(ValueError, match=r"broken\.nii\.gz: not a readable NIfTI image"):
        fdask.from_nifti(broken)


@pytest.mark.parametrize("seekable", [True, False], ids=["indexed_gzip", "plain-gzip"])
def test_from_nifti_gz_blocks_on_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seekable: bool
) -> None:
    """Many blocks of a .nii.gz read by four threads: through one file kept open (with
    indexed_gzip) or each block opening the file; a mostly-empty map, which fastseg.save
    writes as several gzip members, and a dense one."""
    monkeypatch.setattr(fnifti, "_OPEN_IMAGES", type(fnifti._OPEN_IMAGES)())
    if not seekable:
        monkeypatch.setattr(fnifti, "_indexed_gzip", lambda: False)
    rng = np.random.default_rng(5)
    sparse = np.zeros((40, 30, 60), np.uint8)
    sparse[10:20, 5:25, 25:35] = rng.integers(1, 4, (10, 20, 10))
    dense = rng.integers(0, 300, (40, 30, 20)).astype(np.uint16)
    for name, labels in (("sparse", sparse), ("dense", dense)):
        path = tmp_path / f"{name}.nii.gz"
        fastseg.save(path, labels)
        darr = fdask.from_nifti(path, chunks=(7, 9, 5))
        computed = darr.compute(scheduler="threads", num_workers=4)
        np.testing.assert_array_equal(computed, labels)
    assert len(fnifti._OPEN_IMAGES) == (2 if seekable else 0)


def test_from_nifti_gz_slabs_and_strided_slices(tmp_path: Path) -> None:
    """A .nii.gz comes in slabs of whole planes by default; slices with steps, which dask
    hands to the reader as they are, read the voxels themselves."""
    labels = np.random.default_rng(6).integers(0, 9, (12, 10, 8), dtype=np.uint8)
    fastseg.save(tmp_path / "a.nii.gz", labels)
    fastseg.save(tmp_path / "a.nii", labels)
    assert fdask.from_nifti(tmp_path / "a.nii.gz").chunksize[:2] == (12, 10)
    assert fdask.from_nifti(tmp_path / "a.nii", chunks=4).chunksize == (4, 4, 4)
    for suffix in (".nii.gz", ".nii"):
        darr = fdask.from_nifti(tmp_path / f"a{suffix}", chunks=5)
        np.testing.assert_array_equal(
            darr[1:11:3, ::2, 7].compute(scheduler="sync"), labels[1:11:3, ::2, 7]
        )


def _read_in_child(path: str, queue: Any) -> None:
    queue.put(
        (len(fnifti._OPEN_IMAGES), fdask.from_nifti(path, chunks=5).sum().compute(scheduler="sync"))
    )


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_from_nifti_forked_child_opens_its_own_files(tmp_path: Path) -> None:
    """Open files are not inherited through fork (parent and child would share the file
    offset); the child reads the same values."""
    labels = np.random.default_rng(8).integers(0, 9, (12, 10, 8), dtype=np.uint8)
    path = tmp_path / "a.nii.gz"
    fastseg.save(path, labels)
    darr = fdask.from_nifti(path, chunks=5)
    assert int(darr.sum().compute(scheduler="sync")) == int(labels.sum())
    assert any(key[0] == str(path) for key in fnifti._OPEN_IMAGES)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_read_in_child, args=(str(path), queue))
    child.start()
    inherited, total = queue.get(timeout=60)
    child.join(60)
    assert inherited == 0
    assert int(total) == int(labels.sum())


def test_from_nifti_keeps_few_files_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fnifti, "_OPEN_IMAGES", type(fnifti._OPEN_IMAGES)())
    monkeypatch.setattr(fnifti, "_MAX_OPEN_IMAGES", 2)
    paths = []
    for k in range(3):
        paths.append(tmp_path / f"{k}.nii.gz")
        fastseg.save(paths[-1], np.full((4, 4, 4), k, np.uint8))
        assert int(fdask.from_nifti(paths[-1], chunks=2).max().compute(scheduler="sync")) == k
    assert [key[0] for key in fnifti._OPEN_IMAGES] == [str(p) for p in paths[1:]]


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_from_nifti_file_changed(tmp_path: Path, suffix: str) -> None:
    """Blocks are never read from a file other than the one whose header was read."""
    path = tmp_path / f"labels{suffix}"
    fastseg.save(path, np.ones((6, 6, 6), np.uint8))
    darr = fdask.from_nifti(path, chunks=3)
    fastseg.save(path, np.ones((6, 6, 6), np.uint8) * 2)
    with pytest.raises(ValueError, match="changed after from_nifti read its header"):
        darr.compute(scheduler="sync")


def test_zarr_store_on_cluster(client: Client, tmp_path: Path) -> None:
    """Labels read lazily from zarr by the workers, components written back to zarr."""
    labels = np.random.default_rng(4).integers(0, 3, (24, 20, 18), dtype=np.uint8)
    store = zarr.open_array(tmp_path / "labels.zarr", mode="w", shape=labels.shape,
                            chunks=(8, 8, 8), dtype=labels.dtype)  # fmt: skip
    store[...] = labels
    result = fdask.label(da.from_zarr(tmp_path / "labels.zarr"), connectivity=18)
    result.labels.to_zarr(tmp_path / "components.zarr")
    written = np.asarray(zarr.open_array(tmp_path / "components.zarr", mode="r")[...])
    count, values = dask.compute(result.count, result.values)
    assert_same_components(fastseg.Components(written, count, values), labels, connectivity=18)


def test_real_volume_on_cluster(client: Client) -> None:
    """The Platynereis nuclei (256x256x103 uint16), read from the file block by block."""
    path = shared_data_path("platynereis_nuclei.nii.gz") / "platynereis_nuclei.nii.gz"
    darr = fdask.from_nifti(path, chunks=(96, 128, 40))
    whole = np.asanyarray(nibabel.load(path).dataobj)
    assert_same_components(fdask.label(darr).compute(), whole)
    assert_same_stats(fdask.stats(darr, spacing=(1, 1, 2)), fastseg.stats(whole, spacing=(1, 1, 2)))


@pytest.mark.parametrize("first_order", ["F", "C"])
@pytest.mark.parametrize("connectivity", [6, 26])
@pytest.mark.parametrize("keep_runs", [None, False])
def test_second_pass_reads_blocks_in_another_memory_order(
    first_order: str, connectivity: int, keep_runs: bool | None
) -> None:
    """The second pass may get a block in another memory order than the first:
    dask.distributed sends non-contiguous blocks between workers as C-ordered copies,
    while a block sliced from a Fortran-ordered volume is read as a Fortran-ordered
    copy. The ids must not depend on it. (A small volume keeps its runs by default:
    each block is read once.)"""
    labels = np.asfortranarray(np.random.default_rng(7).integers(0, 3, (20, 18, 16), np.uint8))
    reads: dict[tuple[int, ...], int] = {}
    orders = (first_order, "C" if first_order == "F" else "F")

    def read(block: np.ndarray, block_info: Any = None) -> np.ndarray:
        where = tuple(block_info[0]["chunk-location"])
        reads[where] = reads.get(where, 0) + 1
        return np.array(block, order=orders[(reads[where] - 1) % 2])

    darr = da.from_array(labels, chunks=(7, 6, 5)).map_blocks(read, dtype=labels.dtype)
    result = fdask.label(darr, connectivity=connectivity, keep_runs=keep_runs)
    computed = result.compute(scheduler="sync")
    assert len(reads) == 3 * 3 * 4
    assert set(reads.values()) == {1 if keep_runs is None else 2}  # once per pass read
    assert_same_components(computed, labels, connectivity=connectivity)


@pytest.mark.parametrize("offset", [True, False], ids=["ids-per-tile", "same-ids"])
def test_tiled_real_volume(offset: bool) -> None:
    """A corner of the Platynereis nuclei tiled 2 x 2 x 1, in blocks that do not align
    with the tiles: with the ids of each tile offset (components end at the tiles'
    seams) and with the same ids in every tile (components run across the seams)."""
    path = shared_data_path("platynereis_nuclei.nii.gz") / "platynereis_nuclei.nii.gz"
    corner = np.asanyarray(nibabel.load(path).dataobj)[:128, :128].astype(np.uint32)
    step = np.uint32(corner.max() + 1) if offset else np.uint32(0)
    tiles = [np.where(corner != 0, corner + k * step, 0) for k in range(4)]
    tiled = np.asfortranarray(np.block([[tiles[0], tiles[1]], [tiles[2], tiles[3]]]))
    result = fdask.label(chunked(tiled, (96, 80, 40)))
    computed = result.compute(scheduler="threads", num_workers=2)
    assert_same_components(computed, tiled)
    if offset:  # every tile holds its own copy of the corner's components
        assert computed.count == 4 * fastseg.label(corner).count


# -- batches of files ---------------------------------------------------------------------


def count_instances(path: Path) -> int:
    return len(fastseg.stats(fastseg.load(path).labels))


@pytest.fixture
def batch(tmp_path: Path) -> list[Path]:
    """Three label files and, second, a corrupt one."""
    paths = []
    for i in range(3):
        labels = np.zeros((6, 6, 6), np.uint8)
        labels[: i + 1, 0, 0] = np.arange(1, i + 2)
        paths.append(tmp_path / f"case{i}.nii.gz")
        fastseg.save(paths[-1], labels)
    corrupt = tmp_path / "sub" / "corrupt.nii.gz"
    corrupt.parent.mkdir()
    corrupt.write_bytes(b"\x1f\x8b truncated")
    paths.insert(1, corrupt)
    return paths


def check_batch(results: list[fdask.FileResult[int]], paths: list[Path]) -> None:
    assert [Path(r.source) for r in results] == paths
    assert [r.value for r in results] == [1, None, 2, 3]
    assert [r.ok for r in results] == [True, False, True, True]
    error = results[1].error
    assert error is not None
    assert error.startswith("ValueError: ")
    assert "corrupt.nii.gz" in error
    assert all(r.seconds >= 0 for r in results)


def test_map_files_on_cluster(client: Client, batch: list[Path]) -> None:
    check_batch(fdask.map_files(count_instances, batch, client=client), batch)


def test_map_files_on_an_executor(client: Client, batch: list[Path]) -> None:
    check_batch(fdask.map_files(count_instances, batch, client=client.get_executor()), batch)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        check_batch(fdask.map_files(count_instances, batch, client=pool), batch)


def test_map_files_on_the_default_scheduler(batch: list[Path]) -> None:
    with dask.config.set(scheduler="sync"):
        results = fdask.map_files(count_instances, batch[0].parent)
    # The folder's files, sorted: case0, case1, case2, sub/corrupt.
    assert [Path(r.source).name for r in results] == [
        "case0.nii.gz", "case1.nii.gz", "case2.nii.gz", "corrupt.nii.gz",
    ]  # fmt: skip
    assert [r.ok for r in results] == [True, True, True, False]


def exit_on_corrupt(path: Path) -> int:
    if path.name.startswith("corrupt"):
        os._exit(3)  # the process dies with its task
    return count_instances(path)


def test_map_files_keeps_going_when_a_process_dies(batch: list[Path]) -> None:
    """A dead process is an error of the files it held, not of the whole batch."""
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
        results = fdask.map_files(exit_on_corrupt, batch, client=pool)
    assert [r.value for r in results[:1]] == [1]
    error = results[1].error
    assert error is not None
    assert error.startswith("BrokenProcessPool: ")


def test_map_files_bad_client(batch: list[Path]) -> None:
    with pytest.raises(TypeError, match="client must be"):
        fdask.map_files(count_instances, batch, client="tcp://127.0.0.1:8786")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        fdask.map_files(count_instances, str(batch[0]))


def test_map_files_takes_any_items() -> None:
    """Items other than paths (e.g. the series of a RedBrick export) pass through as they are."""
    with dask.config.set(scheduler="sync"):
        results = fdask.map_files(len, [[1, 2], [3], 5])
    assert [r.value for r in results] == [2, 1, None]
    assert results[2].error == "TypeError: object of type 'int' has no len()"


def test_import_fastseg_does_not_import_dask() -> None:
    """dask is an optional extra: only ``import fastseg.dask`` brings it in (nor does that
    import distributed, which map_files imports when handed a client)."""
    code = (
        "import sys, fastseg; before = 'dask' in sys.modules; import fastseg.dask; "
        "print(before, 'dask' in sys.modules, 'distributed' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "False"]

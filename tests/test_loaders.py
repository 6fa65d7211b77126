"""fastseg in data loaders: process pools, torch DataLoader workers, concurrent threads
under every numba threading layer here, and the thread cap.

Every worker checks its results against the parent's and reports how many kernel
specialisations it compiled: with a warm cache (or kernels inherited by fork), none.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import fastseg
from fastseg import _jit
from fastseg._kernels import measure
from fastseg.stats import block_count

# 64 x 64 x 40 voxels: two chunks per kernel on two threads, so the parallel versions
# run wherever parallel kernels may run.
SHAPE = (64, 64, 40)


def volume(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.asfortranarray(rng.integers(0, 4, SHAPE).astype(np.uint8))


def results(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = volume(seed)
    return (
        fastseg.label(labels).labels,
        fastseg.remap(labels, {1: 7, 2: 300}),
        fastseg.stats(labels).voxel_count,
    )


def pool_work(seed: int) -> dict[str, Any]:
    """Runs in a pool worker: results, and what the worker compiled for them."""
    before = _jit.compile_counts()[1]
    label, remapped, counts = results(seed)
    return {
        "label": label,
        "remap": remapped,
        "counts": counts,
        "compiled": _jit.compile_counts()[1] - before,
        "pid": os.getpid(),
    }


@pytest.fixture(scope="module")
def warm() -> dict[int, tuple[np.ndarray, ...]]:
    """The kernels the workers need, in the on-disk cache, and the expected results
    (computed here, so that numba's thread pool is running in the parent when it forks)."""
    fastseg.warmup(["relabel", "label", "stats"], dtypes=["uint8"])
    with _jit.thread_limit(min(2, _jit.max_threads())):
        return {seed: results(seed) for seed in range(4)}


def assert_same(outcome: dict[str, Any], expected: tuple[np.ndarray, ...]) -> None:
    assert np.array_equal(outcome["label"], expected[0])
    assert np.array_equal(outcome["remap"], expected[1])
    assert np.array_equal(outcome["counts"], expected[2])


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_process_pools(method: str, warm: dict[int, tuple[np.ndarray, ...]]) -> None:
    context = multiprocessing.get_context(method)
    with context.Pool(2) as pool:
        # A worker that aborts is replaced silently: without a timeout, map would hang.
        outcomes = pool.map_async(pool_work, range(4)).get(timeout=120)
    assert {o["pid"] for o in outcomes} - {os.getpid()}
    for seed, outcome in enumerate(outcomes):
        assert_same(outcome, warm[seed])
        assert outcome["compiled"] == 0


class Volumes(Dataset[dict[str, Any]]):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict[str, Any]:
        before = _jit.compile_counts()[1]
        labels = torch.from_numpy(volume(index))
        cc = fastseg.label(labels)
        return {
            "label": cc.labels.long(),
            "remap": fastseg.remap(labels, {1: 7, 2: 300}).int(),
            "counts": torch.from_numpy(fastseg.stats(labels).voxel_count),
            "threads": fastseg.get_threads(),
            "compiled": _jit.compile_counts()[1] - before,
        }


def two_threads(worker_id: int) -> None:
    fastseg.set_threads(2)


@pytest.mark.parametrize(
    ("context", "init", "threads"),
    [("fork", None, 1), ("spawn", None, 1), ("forkserver", two_threads, 2)],
)
def test_torch_data_loader_with_two_workers(
    context: str, init: Any, threads: int, warm: dict[int, tuple[np.ndarray, ...]]
) -> None:
    loader = DataLoader(
        Volumes(), batch_size=None, num_workers=2, multiprocessing_context=context,
        worker_init_fn=init,
    )  # fmt: skip
    samples = list(loader)
    assert len(samples) == 4
    for seed, sample in enumerate(samples):
        expected = warm[seed]
        assert np.array_equal(sample["label"].numpy(), expected[0])
        assert np.array_equal(sample["remap"].numpy(), expected[1])
        assert np.array_equal(sample["counts"].numpy(), expected[2])
        # One thread by default in workers; worker_init_fn may raise it.
        assert sample["threads"] == min(threads, _jit.max_threads())
        assert sample["compiled"] == 0


# == threads ==============================================================================

THREADS_SCRIPT = """
import sys
from concurrent.futures import ThreadPoolExecutor
import numba, numpy as np, fastseg

rng = np.random.default_rng(0)
volumes = [rng.integers(0, 4, (40, 60, 70 + i)).astype(np.uint16) for i in range(8)]
volumes = [np.asfortranarray(v) if i % 2 else v for i, v in enumerate(volumes)]

def run(v, threads):
    return (fastseg.label(v, threads=threads).labels, fastseg.remap(v, {1: 5, 2: 6}),
            fastseg.stats(v, threads=threads).voxel_count, fastseg.largest_k(v))

with fastseg.set_threads(1):
    expected = [run(v, 1) for v in volumes]

def work(index):
    got = run(volumes[index % 8], None)
    return all(np.array_equal(a, b) for a, b in zip(got, expected[index % 8]))

with ThreadPoolExecutor(8) as pool:
    ok = all(pool.map(work, range(48)))
print(numba.threading_layer(), ok)
"""


def _tbb_library() -> Path | None:
    """The folder of the TBB runtime the ``tbb`` package installs (in the environment's
    lib folder, which is not on the loader's path in a virtual environment)."""
    for folder in (Path(sys.prefix) / "lib", Path(sys.base_prefix) / "lib"):
        if list(folder.glob("libtbb.so.12*")):
            return folder
    return None


@pytest.mark.parametrize("layer", ["omp", "workqueue", "tbb"])
def test_eight_threads_under_every_threading_layer(layer: str) -> None:
    """Concurrent calls from 8 Python threads agree with serial calls and never abort
    or deadlock; the workqueue layer aborts on concurrent parallel launches unless
    fastseg serialises them."""
    env = {**os.environ, "NUMBA_THREADING_LAYER": layer, "NUMBA_NUM_THREADS": "2"}
    if layer == "tbb":
        folder = _tbb_library()
        if folder is None:
            pytest.skip("the tbb package is not installed (pip install tbb)")
        env["LD_LIBRARY_PATH"] = f"{folder}:{env.get('LD_LIBRARY_PATH', '')}"
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(THREADS_SCRIPT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [layer, "True"]


def test_set_threads_caps_and_restores() -> None:
    assert fastseg.get_threads() == _jit.current_threads()
    with fastseg.set_threads(1) as setting:
        assert setting.threads == 1
        assert fastseg.get_threads() == 1
        assert _jit.chunks_for(1 << 24) == 1
        # A threads= argument of one call still wins over the cap.
        with _jit.thread_limit(_jit.max_threads()):
            assert fastseg.get_threads() == _jit.max_threads()
        assert fastseg.get_threads() == 1
    assert setting.previous is None
    assert fastseg.get_threads() == min(_jit.max_threads(), _jit.current_threads())
    previous = fastseg.set_threads(10_000)  # more than the pool: all of it
    try:
        assert fastseg.get_threads() == _jit.current_threads()
    finally:
        fastseg.set_threads(previous.previous)
    assert repr(previous) == "ThreadSetting(threads=10000, previous=None)"


@pytest.mark.parametrize(
    ("threads", "error", "match"),
    [
        (0, ValueError, "threads must be at least 1, got 0"),
        (2.0, TypeError, "threads must be an int or None, got float"),
        (True, TypeError, "threads must be an int or None, got bool"),
    ],
)
def test_set_threads_bad_values(threads: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        fastseg.set_threads(threads)
    assert fastseg.get_threads() >= 1


def test_one_thread_runs_serial_twins_only() -> None:
    """stats splits work into blocks that depend only on the input; under a cap of one
    thread the parallel version must not run at all."""
    labels = volume(0)
    view = labels.T  # the C-ordered 3-D view the kernel gets
    assert block_count(view, 4) > 1  # the parallel version would run
    expected = fastseg.stats(labels).voxel_count
    with (
        fastseg.set_threads(1),
        mock.patch.object(measure.measure, "parallel", side_effect=AssertionError("parallel")),
    ):
        assert np.array_equal(fastseg.stats(labels).voxel_count, expected)


def test_one_thread_by_default_in_a_torch_worker() -> None:
    info = mock.Mock()
    with mock.patch("torch.utils.data.get_worker_info", return_value=info):
        assert _jit.default_threads() == 1
        assert fastseg.get_threads() == 1
        with fastseg.set_threads(2):
            assert fastseg.get_threads() == min(2, _jit.max_threads())
    assert _jit.default_threads() is None


WARMUP_SCRIPT = """
    import fastseg
    from fastseg._kernels import relabel

    fastseg.warmup(["relabel"], dtypes=["uint8"])
    for kernel in (relabel.count_in_table, relabel.remap_dense):
        uint8 = {s for s in kernel.serial.signatures if str(s[0].dtype) == "uint8"}
        if uint8 and uint8 <= set(kernel.parallel.signatures):
            print(kernel.__name__)
"""


def test_warmup_reports_what_it_did() -> None:
    report = fastseg.warmup(["relabel"], dtypes=["uint8", "int8", np.bool_])
    assert report.operations == ("relabel",)
    assert report.dtypes == (np.dtype("uint8"), np.dtype("int8"), np.dtype("bool"))
    assert set(report.seconds) == {"relabel", "parallel"}
    assert report.total_seconds == sum(report.seconds.values())
    assert report.compiled + report.loaded > 0 or report.total_seconds < 5
    assert report.cache_dir == fastseg.cache_dir()
    # Both versions of what the operations called are compiled. Checked in a fresh
    # process: here, earlier tests have compiled serial versions warmup never called.
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(WARMUP_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["count_in_table", "remap_dense"]
    # The recorders warmup puts in place are gone again.
    assert all(type(k.serial).__module__.startswith("numba") for k in _jit.parallel_kernels())
    again = fastseg.warmup(["relabel"], dtypes=["uint8"])
    assert again.compiled == 0  # everything is in memory already


@pytest.mark.parametrize(
    ("operations", "dtypes", "error", "match"),
    [
        (["relabel", "sorting"], ["uint8"], ValueError, r"unknown operations \['sorting'\]"),
        ("relabel", ["uint8"], TypeError, "a list of names, got the string 'relabel'"),
        (None, [], ValueError, "at least one label dtype"),
        (None, ["float32"], TypeError, "integer or bool label dtypes, got float32"),
    ],
)
def test_warmup_bad_arguments(operations: Any, dtypes: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        fastseg.warmup(operations, dtypes=dtypes)

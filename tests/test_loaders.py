"""fastseg in data loaders: process pools, torch DataLoader workers, concurrent threads,
the thread cap, and warmup.

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
from fastseg import _jit, _warmup
from fastseg.stats import block_count

# 64 x 64 x 40 voxels: two chunks per kernel on two threads, so the parallel versions
# run wherever parallel kernels may run.
ROOT = Path(__file__).resolve().parents[1]
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
import numpy as np, fastseg

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
parallel = sys.modules.get("numba.np.ufunc.parallel")
print(ok, bool(parallel is not None and parallel._is_initialized))
"""


@pytest.mark.parametrize("layer", ["omp", "workqueue"])
def test_eight_threads_agree_and_never_start_numbas_thread_pool(layer: str) -> None:
    """Concurrent calls from 8 Python threads, each splitting its work over 2 threads,
    agree with serial calls. Chunks run on fastseg's own threads, so numba's threading
    layer (whose OpenMP pool breaks forked children and whose workqueue layer aborts on
    concurrent launches) never starts, whichever is configured."""
    env = {**os.environ, "NUMBA_THREADING_LAYER": layer, "NUMBA_NUM_THREADS": "2"}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(THREADS_SCRIPT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["True", "False"]


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


def test_one_thread_never_leaves_the_calling_thread() -> None:
    """stats splits work into blocks that depend only on the input; under a cap of one
    thread every block runs in the calling thread, and the result is the same."""
    labels = volume(0)
    view = labels.T  # the C-ordered 3-D view the kernel gets
    assert block_count(view, 4) > 1  # blocks would go to the thread pool
    with _jit.thread_limit(min(2, _jit.max_threads())):
        expected = fastseg.stats(labels).voxel_count
    with (
        fastseg.set_threads(1),
        mock.patch.object(_jit, "_thread_pool", side_effect=AssertionError("thread pool")),
    ):
        assert np.array_equal(fastseg.stats(labels).voxel_count, expected)


def test_chunks_run_on_the_pool_and_errors_reach_the_caller() -> None:
    if _jit.max_threads() < 2:
        pytest.skip("one CPU: every chunk runs in the calling thread")
    seen: list[tuple[int, int]] = []

    def chunk(out: list[int], c: int, chunks: int) -> None:
        seen.append((c, chunks))
        if c == 3:
            raise ValueError("chunk 3")

    with _jit.thread_limit(2), pytest.raises(ValueError, match="chunk 3"):
        _jit.run_chunks(chunk, 5, [])
    # Both threads' groups (0-1 here, 2-4 on the pool, stopped by the error) were done
    # before the error reached the caller.
    assert sorted(seen) == [(c, 5) for c in range(4)]


def test_tasks_run_once_each_on_both_threads_and_errors_reach_the_caller() -> None:
    if _jit.max_threads() < 2:
        pytest.skip("one CPU: every task runs in the calling thread")
    import threading
    import time

    ran: list[tuple[int, str]] = []

    def task(t: int) -> None:
        time.sleep(0.3 if t == 0 else 0.001)  # the first task is the long one
        ran.append((t, threading.current_thread().name))

    with _jit.thread_limit(2):
        _jit.run_tasks(task, 9)
    assert sorted(t for t, _ in ran) == list(range(9))
    # While one thread runs the long first task, the other takes the rest as it frees
    # up (fixed groups would have left the first thread tasks 1-3 as well).
    long_one = dict(ran)[0]
    assert len([t for t, name in ran if name == long_one]) < 4

    def failing(t: int) -> None:
        if t == 2:
            raise ValueError("task 2")

    with _jit.thread_limit(2), pytest.raises(ValueError, match="task 2"):
        _jit.run_tasks(failing, 5)
    with _jit.thread_limit(1):
        order: list[int] = []
        _jit.run_tasks(order.append, 4)
        assert order == [0, 1, 2, 3]


def test_one_thread_by_default_in_a_torch_worker() -> None:
    info = mock.Mock()
    with mock.patch("torch.utils.data.get_worker_info", return_value=info):
        assert _jit.default_threads() == 1
        assert fastseg.get_threads() == 1
        with fastseg.set_threads(2):
            assert fastseg.get_threads() == min(2, _jit.max_threads())
    assert _jit.default_threads() is None


def test_warmup_reports_what_it_did() -> None:
    report = fastseg.warmup(["relabel"], dtypes=["uint8", "int8", np.bool_])
    assert report.operations == ("relabel",)
    assert report.dtypes == (np.dtype("uint8"), np.dtype("int8"), np.dtype("bool"))
    assert set(report.seconds) == {"relabel"}
    assert report.total_seconds == sum(report.seconds.values())
    assert report.compiled + report.loaded > 0 or report.total_seconds < 5
    assert report.cache_dir == fastseg.cache_dir()
    again = fastseg.warmup(["relabel"], dtypes=["uint8"])
    assert again.compiled == 0  # everything is in memory already


def test_warmup_in_one_process_runs_nothing_elsewhere() -> None:
    with mock.patch("fastseg._warmup._Worker", side_effect=AssertionError("a worker")):
        report = fastseg.warmup(["relabel", "label"], dtypes=["uint8"], processes=1)
    assert report.processes == 1
    assert report.total_seconds == sum(report.seconds.values())


def test_warmup_on_a_warm_cache_starts_no_worker() -> None:
    fastseg.warmup(["relabel"], dtypes=["uint8", "uint16"], processes=1)
    with mock.patch("fastseg._warmup._Worker", side_effect=AssertionError("a worker")):
        report = fastseg.warmup(["relabel"], dtypes=["uint8", "uint16"], processes=2)
    assert report.compiled == 0


def test_warmup_without_a_writable_cache_stays_in_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kernels compiled in other processes could not reach this one: no workers."""
    (tmp_path / "file").write_bytes(b"")
    monkeypatch.setenv("FASTSEG_CACHE_DIR", str(tmp_path / "file" / "cache"))
    with mock.patch("fastseg._warmup._Worker", side_effect=AssertionError("a worker")):
        report = fastseg.warmup(["relabel", "label"], dtypes=["uint8"], processes=2)
    assert report.processes == 1


PARALLEL_SCRIPT = """
import sys
import fastseg
from fastseg import _jit

groups = ["label", "files"]
if sys.argv[1] == "parallel":
    report = fastseg.warmup(groups, dtypes=["uint8"], processes=2)
    own = _jit.compile_counts()[1]
    print(report.processes, report.compiled, report.loaded, own, sorted(report.seconds))
# In the parallel process: what the worker compiled has been loaded here already.
before = _jit.compile_counts()
again = fastseg.warmup(groups, dtypes=["uint8"], processes=1)
print(again.compiled, again.loaded, *[a - b for a, b in zip(_jit.compile_counts(), before)])
"""


def test_parallel_warmup_fills_the_cache(tmp_path: Path) -> None:
    """Two processes fill the cache: a fresh process compiles nothing, the calling process
    has every kernel loaded, and the report counts the worker's compiles too."""
    env = {**os.environ, "FASTSEG_CACHE_DIR": str(tmp_path / "cache")}

    def run(mode: str) -> list[str]:
        result = subprocess.run(
            [sys.executable, "-c", PARALLEL_SCRIPT, mode],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout.splitlines()

    first, after = run("parallel")
    processes, compiled, loaded, own, groups = first.split(" ", 4)
    assert (processes, groups) == ("2", "['files', 'label']")
    # One group each: the worker compiled some of the kernels.
    assert int(compiled) > int(own) > 0
    assert after == "0 0 0 0"  # nothing left to load or compile in the calling process
    (fresh,) = run("fresh")
    fresh_compiled, fresh_loaded, _, compiled_now = map(int, fresh.split())
    assert fresh_compiled == compiled_now == 0
    assert 0 < fresh_loaded <= int(compiled) + int(loaded)


UNGUARDED_SCRIPT = """
import fastseg

report = fastseg.warmup(["relabel"], dtypes=["uint8", "uint16"], processes=2)
print(report.processes, report.compiled > 0)
"""


def test_parallel_warmup_from_a_script_without_a_main_guard(tmp_path: Path) -> None:
    """Workers are fresh interpreters: the calling script is not run again in them."""
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED_SCRIPT)
    env = {**os.environ, "FASTSEG_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["2", "True"]


def test_a_failure_in_a_warmup_worker_is_reported(tmp_path: Path) -> None:
    worker = _warmup._Worker(str(tmp_path / "cache"))
    try:
        with pytest.raises(
            _warmup.WarmupError,
            match=r"^warming up sorting \(uint8\) failed in a worker process: KeyError: 'sorting'$",
        ):
            worker.run((("sorting", "uint8"),))
        seconds, loaded, compiled = worker.run((("files", "uint8"),))  # still serving
        assert set(seconds) == {"files"}
        assert loaded + compiled > 0
        worker.process.kill()
        worker.process.wait()
        with pytest.raises(_warmup.WarmupError, match="ended unexpectedly"):
            worker.run((("files", "uint8"),))
    finally:
        worker.stop()


@pytest.mark.parametrize(
    ("processes", "error", "match"),
    [
        (0, ValueError, "processes must be at least 1, got 0"),
        (-2, ValueError, "processes must be at least 1, got -2"),
        (2.0, TypeError, "processes must be an int or None, got float"),
        (True, TypeError, "processes must be an int or None, got bool"),
        ("2", TypeError, "processes must be an int or None, got str"),
    ],
)
def test_warmup_bad_process_counts(processes: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        fastseg.warmup(["relabel"], dtypes=["uint8"], processes=processes)


COVERAGE_SCRIPT = """
import importlib, pkgutil
import numpy as np
import fastseg, fastseg._kernels
from fastseg import _jit

# In this process: the check below reads which kernels this process compiled, and one
# loaded from the cache carries the kernels it calls inside it, leaving theirs empty.
fastseg.warmup(processes=1)
for module in pkgutil.iter_modules(fastseg._kernels.__path__):
    importlib.import_module(f"fastseg._kernels.{module.name}")
print("uncompiled", *sorted(d.py_func.__qualname__ for d in _jit.dispatchers() if not d.signatures))
# A constant argument must not cost a specialisation of its own.
print("literal", *sorted(
    d.py_func.__qualname__ for d in _jit.dispatchers()
    for signature in d.signatures if "Literal" in str(signature)
))

# Every public operation on volumes large enough to be split over threads, both orders.
rng = np.random.default_rng(0)
labels = rng.integers(0, 4, (40, 64, 128)).astype(np.uint8)
image = rng.random(labels.shape).astype(np.float32)
before = _jit.compile_counts()[1]
with fastseg.set_threads(2):
    for volume in (labels, np.asfortranarray(labels), labels[0], labels.astype(np.int16)):
        fastseg.unique(volume, return_counts=True)
        fastseg.remap(volume, {1: 7, 2: 300})
        fastseg.remap(volume, {1: 1, 2: 1, 3: 1, 0: 0})
        fastseg.renumber(volume)
        fastseg.mask(volume, [1, 2])
        cc = fastseg.label(volume)
        fastseg.label(volume, connectivity=1)
        fastseg.stats(volume)
        fastseg.contacts(volume)
        fastseg.largest_k(volume)
        fastseg.dust(volume, 3)
        fastseg.fill_holes(volume)
        fastseg.component_values(cc.labels, volume)
        for _ in fastseg.each(cc.labels):
            pass
        for _ in fastseg.binary_masks(volume):
            pass
        fastseg.locations(volume, per_class=50, per_instance=5, seed=0)
        for surface in ("monai", "deepmind"):
            fastseg.evaluate(volume, np.roll(volume, 3, axis=-1), surface=surface)
    fastseg.stats(labels, image, surface=True)
    fastseg.stats(labels, image.astype(np.float64))
    import dask, dask.array as da, fastseg.dask
    for volume in (labels, np.asfortranarray(labels), labels.astype(np.uint32)):
        blocks = da.from_array(volume, chunks=(20, 32, 64)).map_blocks(
            np.asfortranarray if volume.flags.f_contiguous else np.ascontiguousarray
        )
        for keep_runs in (None, False):
            result = fastseg.dask.label(blocks, keep_runs=keep_runs)
            result.compute(scheduler="threads")
            dask.compute(*result, scheduler="threads")
        fastseg.dask.stats(blocks, surface=True)
print("compiled", _jit.compile_counts()[1] - before)
"""


# The cache the coverage test filled, for the later warmup tests of this module to load
# from instead of compiling everything again (they compile on their own without it).
FILLED_CACHE: list[Path] = []


def test_warmup_covers_every_kernel_and_operation(tmp_path: Path) -> None:
    """After warmup, in a fresh process with an empty cache: every kernel of every kernel
    module has a compiled specialisation, none of them for a literal (constant) argument
    type, and no public operation compiles anything more for a warmed dtype, whatever the
    size and memory order of its input (component maps of large volumes are uint16 or
    uint32: warmup covers those widths by default)."""
    cache = tmp_path / "cache"
    env = {**os.environ, "FASTSEG_CACHE_DIR": str(cache), "NUMBA_NUM_THREADS": "2"}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(COVERAGE_SCRIPT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines == ["uncompiled", "literal", "compiled 0"], result.stdout
    FILLED_CACHE.append(cache)


# What ``pip install fastseg`` brings: the run-time dependencies (numba, numpy, nibabel)
# and theirs. The last two are nibabel's on the Pythons that need them.
RUN_TIME_MODULES = ("numpy", "numba", "llvmlite", "nibabel", "packaging")
RUN_TIME_MODULES_IF_PRESENT = ("importlib_resources", "typing_extensions")


def run_time_environment(folder: Path) -> Path:
    """A virtual environment that sees the checkout and this environment's run-time
    dependencies only (no scipy, MONAI, surface-distance, dask...), as a user's
    ``pip install fastseg`` leaves it: the python to run."""
    import importlib.util

    venv, packages = folder / "venv", folder / "packages"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    packages.mkdir()
    for name in RUN_TIME_MODULES + RUN_TIME_MODULES_IF_PRESENT:
        spec = importlib.util.find_spec(name)
        if spec is None:
            assert name not in RUN_TIME_MODULES, f"{name} is not installed here"
            continue
        locations = spec.submodule_search_locations
        module = Path(next(iter(locations))) if locations else Path(str(spec.origin))
        # The module, its metadata and its bundled shared libraries (numpy.libs).
        for entry in [
            module,
            *module.parent.glob(f"{name}[-.]*-info"),
            *module.parent.glob(f"{name}.libs"),
        ]:
            if not (packages / entry.name).exists():
                (packages / entry.name).symlink_to(entry)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    Path(purelib, "run_time.pth").write_text(f"{packages}\n{ROOT}\n")
    return python


def test_warmup_and_demo_need_only_the_run_time_dependencies(tmp_path: Path) -> None:
    """``fastseg warmup`` (as a container image runs it at build time) and ``fastseg
    demo`` where only fastseg's run-time dependencies are installed: no operation group
    may need an optional package."""
    python = run_time_environment(tmp_path)
    unset = ("PYTHONPATH", "NUMBA_CACHE_DIR")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env["FASTSEG_CACHE_DIR"] = str(FILLED_CACHE[0] if FILLED_CACHE else tmp_path / "cache")
    optional = ("scipy", "dask", "monai", "surface_distance", "SimpleITK", "torch")
    missing = f"import importlib.util as u; print([m for m in {optional} if u.find_spec(m)])"
    probe = subprocess.run(
        [python, "-c", missing], capture_output=True, text=True, env=env, check=True
    )
    assert probe.stdout.strip() == "[]"  # the optional packages are out of sight
    for argv in (["warmup"], ["demo", "--out", str(tmp_path / "demo")]):
        result = subprocess.run(
            [python, "-m", "fastseg", *argv], capture_output=True, text=True, env=env,
            timeout=600, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "demo" / "stats.csv").is_file()


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

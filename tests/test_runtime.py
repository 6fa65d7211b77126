"""How fastseg behaves as a process dependency: import cost, threads, read-only installs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fastseg

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env},
        check=False,
    )


def test_import_loads_neither_numba_nor_torch() -> None:
    """``import fastseg`` compiles nothing and imports no numba; the transforms modules do
    not import torch, MONAI or TorchIO either. (How long the import takes is a row of
    ``benchmarks/startup.py``: timings belong in benchmarks, not in tests.)"""
    result = run_python(
        """
        import sys
        import fastseg
        print("numba" in sys.modules, len(fastseg.__all__))
        import fastseg.transforms, fastseg.transforms_sampling
        heavy = [m for m in ("numba", "torch", "monai", "torchio") if m in sys.modules]
        print(",".join(heavy) or "none")
        """
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines[0] == "False"
    assert lines[2] == "none"


def test_concurrent_calls_from_eight_threads_agree_with_serial_calls() -> None:
    rng = np.random.default_rng(0)
    volumes = [
        np.asfortranarray(rng.integers(0, 4, (40, 60, 70 + i)).astype(np.uint16)) for i in range(8)
    ]
    expected = [
        (fastseg.label(v).labels, fastseg.remap(v, {1: 5, 2: 6}), fastseg.stats(v).voxel_count)
        for v in volumes
    ]

    def work(index: int) -> bool:
        v = volumes[index % 8]
        labels, remapped, counts = expected[index % 8]
        return bool(
            np.array_equal(fastseg.label(v).labels, labels)
            and np.array_equal(fastseg.remap(v, {1: 5, 2: 6}), remapped)
            and np.array_equal(fastseg.stats(v).voxel_count, counts)
        )

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(work, range(32)))


def _can_bind_mount_read_only(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount --bind -o ro {probe} {probe} && ! touch {probe}/x"],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


# The script every installed copy runs: a cold process compiles, a warm one loads. Two
# operations whose kernels call other kernels, and are among the quickest to compile.
INSTALLED_SCRIPT = """
import json, numpy as np, fastseg
from fastseg._jit import compile_counts
labels = np.array([[1, 0, 1], [1, 0, 2]], np.uint8)
result = [fastseg.remap(labels, {2: 3}).max().item(), fastseg.unique(labels).tolist()]
print(json.dumps({"result": result, "cache_dir": fastseg.cache_dir(), "counts": compile_counts(),
                  "package": fastseg.__file__}))
"""


def run_installed(
    tmp_path: Path,
    *,
    read_only: tuple[str, ...],
    cache_dir: Path | None = None,
    variable: str = "NUMBA_CACHE_DIR",
) -> dict[str, Any]:
    """Run :data:`INSTALLED_SCRIPT` against a copy of fastseg installed in
    ``tmp_path/install``, with ``tmp_path/home`` as home, and the named ones of the two
    bind-mounted read-only; ``cache_dir`` goes into the environment ``variable``."""
    install, home = tmp_path / "install", tmp_path / "home"
    if not install.exists():
        shutil.copytree(
            ROOT / "fastseg", install / "fastseg", ignore=shutil.ignore_patterns("__pycache__")
        )
        home.mkdir()
    mounts = "".join(f"mount --bind -o ro {p} {p} && " for p in (tmp_path / n for n in read_only))
    script = textwrap.dedent(INSTALLED_SCRIPT)
    command = f"{mounts}{sys.executable} -W error -c '{script}'"
    unset = ("NUMBA_CACHE_DIR", "FASTSEG_CACHE_DIR", "XDG_CACHE_HOME")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(HOME=str(home), PYTHONPATH=str(install))
    if cache_dir is not None:
        env[variable] = str(cache_dir)
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", command],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,  # not the checkout, whose fastseg would shadow the installed copy
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no warnings, no messages about the cache
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["result"] == [3, [0, 1, 2]]
    assert report["package"] == str(install / "fastseg" / "__init__.py")
    return report


def cache_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.nbi"))


@pytest.fixture
def bind_mounts(tmp_path: Path) -> None:
    if not _can_bind_mount_read_only(tmp_path):
        pytest.skip("needs unshare and read-only bind mounts (root in a mount namespace)")


@pytest.mark.usefixtures("bind_mounts")
def test_read_only_install_and_home_still_work(tmp_path: Path) -> None:
    """No writable cache directory anywhere: kernels compile in memory, silently."""
    report = run_installed(tmp_path, read_only=("install", "home"))
    assert report["cache_dir"] is None
    loaded, compiled = report["counts"]
    assert loaded == 0
    assert compiled > 0
    assert not cache_files(tmp_path)


@pytest.mark.usefixtures("bind_mounts")
def test_kernels_cache_in_the_users_cache_directory_never_in_the_package(tmp_path: Path) -> None:
    """Writable or not, the installed package never receives a cache file (uninstalling
    leaves nothing behind); the per-user cache is keyed by the fastseg version."""
    cold = run_installed(tmp_path, read_only=())
    user_cache = tmp_path / "home" / ".cache" / "fastseg" / fastseg.__version__
    assert cold["cache_dir"] == str(user_cache)
    assert cold["counts"][1] > 0
    assert cache_files(user_cache)
    assert not list((tmp_path / "install").rglob("*.nb[ic]"))
    warm = run_installed(tmp_path, read_only=("install",))
    assert warm["counts"][0] > 0  # loaded from the cache
    assert warm["counts"][1] == 0  # nothing compiled


@pytest.mark.usefixtures("bind_mounts")
def test_a_filled_read_only_cache_is_read(tmp_path: Path) -> None:
    """A container image warmed at build time and run read-only starts warm."""
    run_installed(tmp_path, read_only=())
    warm = run_installed(tmp_path, read_only=("install", "home"))
    assert warm["cache_dir"] is not None
    assert warm["counts"][0] > 0
    assert warm["counts"][1] == 0


@pytest.mark.parametrize("variable", ["NUMBA_CACHE_DIR", "FASTSEG_CACHE_DIR"])
@pytest.mark.usefixtures("bind_mounts")
def test_cache_dir_variables_override_the_users_directory(tmp_path: Path, variable: str) -> None:
    chosen = tmp_path / "chosen"
    cold = run_installed(tmp_path, read_only=(), cache_dir=chosen, variable=variable)
    assert cold["cache_dir"] == str(chosen)
    assert cache_files(chosen)
    assert not cache_files(tmp_path / "install")
    assert not cache_files(tmp_path / "home")
    warm = run_installed(
        tmp_path, read_only=("install", "home"), cache_dir=chosen, variable=variable
    )
    assert warm["counts"][0] > 0
    assert warm["counts"][1] == 0


# Each process slows numba's reading of a cache index, so that both read the index of a
# kernel before either writes it back: the moment two cold processes can collide.
CONCURRENT_SAVE_SCRIPT = """
import sys, time
import numpy as np
import numba.core.caching as caching
read_index = caching.IndexDataCacheFile._load_index
def slow_read_index(self):
    overloads = read_index(self)
    time.sleep(1.0)
    return overloads
caching.IndexDataCacheFile._load_index = slow_read_index
import fastseg
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
print(fastseg.unique(np.array([3, 0, 3], sys.argv[1])).tolist())
"""


def test_processes_compiling_one_kernel_for_different_dtypes_keep_both(tmp_path: Path) -> None:
    """Two cold processes that compile the same kernels for different dtypes at the same
    time (data loader workers, ``fastseg -j``) each keep their own cache entries: a
    fresh process loads both and gets each dtype's own result."""
    env = {**os.environ, "FASTSEG_CACHE_DIR": str(tmp_path)}
    env.pop("NUMBA_CACHE_DIR", None)
    script = textwrap.dedent(CONCURRENT_SAVE_SCRIPT)
    start = str(__import__("time").time() + 3.0)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, dtype, start],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for dtype in ("uint8", "uint16")
    ]
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
        assert out.split() == ["[0,", "3]"]
    check = """
    import json, numpy as np, fastseg
    from fastseg._jit import compile_counts
    values = [fastseg.unique(np.array([3, 0, 3], d)).tolist() for d in ("uint8", "uint16")]
    print(json.dumps({"values": values, "counts": compile_counts()}))
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(check)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    report = json.loads(result.stdout)
    assert report["values"] == [[0, 3], [0, 3]]
    assert report["counts"][1] == 0  # both dtypes' kernels loaded, none compiled again

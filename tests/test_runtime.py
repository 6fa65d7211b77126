"""How fastseg behaves as a process dependency: import cost, threads, read-only installs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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


def test_import_compiles_nothing_and_does_not_import_numba() -> None:
    result = run_python(
        """
        import sys
        import fastseg
        print("numba" in sys.modules, len(fastseg.__all__))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "False"


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


def test_read_only_install_and_home_still_work(tmp_path: Path) -> None:
    """No writable cache directory anywhere: kernels compile in memory, silently."""
    if not _can_bind_mount_read_only(tmp_path):
        pytest.skip("needs unshare and read-only bind mounts (root in a mount namespace)")
    install = tmp_path / "install"
    home = tmp_path / "home"
    shutil.copytree(
        ROOT / "fastseg", install / "fastseg", ignore=shutil.ignore_patterns("__pycache__")
    )
    home.mkdir()
    script = textwrap.dedent(
        """
        import numpy as np, fastseg
        labels = np.array([[1, 0, 1], [1, 0, 2]], np.uint8)
        print(fastseg.label(labels).count, fastseg.unique(labels).tolist())
        """
    )
    command = (
        f"mount --bind -o ro {install} {install} && mount --bind -o ro {home} {home} && "
        f"{sys.executable} -W error -c '{script}'"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(HOME=str(home), PYTHONPATH=str(install), XDG_CACHE_HOME=str(home / ".cache"))
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", command],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3", "[0,", "1,", "2]"]
    assert result.stderr == ""
    assert not list((install / "fastseg").rglob("*.nbi"))

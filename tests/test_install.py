"""Installing, running and uninstalling fastseg as users do: compiled kernels go to the
per-user cache, never into the installed package, so uninstalling leaves nothing behind
and a later editable install of a checkout is not shadowed by leftovers."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Kernels that call kernels, and among the quickest to compile.
RUN_KERNELS = """
import numpy as np, fastseg
labels = np.array([[1, 0, 1], [1, 0, 2]], np.uint8)
print(fastseg.unique(fastseg.remap(labels, {2: 3})).size, fastseg.__file__)
"""


def run(*argv: str | Path, env: dict[str, str], cwd: Path) -> str:
    result = subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout


def fastseg_files(site_packages: Path) -> list[Path]:
    return [p for p in site_packages.iterdir() if "fastseg" in p.name.lower()]


@pytest.mark.slow
def test_wheel_install_run_uninstall_then_editable_install(tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    unset = ("NUMBA_CACHE_DIR", "FASTSEG_CACHE_DIR", "XDG_CACHE_HOME", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(HOME=str(home), PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    # The wheel, built from the checkout as pip builds it.
    run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
        "-w", tmp_path / "dist", ROOT, env=env, cwd=work,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("fastseg-*.whl")
    # A fresh environment whose dependencies (numba, numpy, nibabel, setuptools) come from
    # this one through a path entry, so this environment's .pth files (its editable
    # fastseg) stay out; this environment's pip installs into it.
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, env=env, cwd=work)
    python = venv / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", python)
    site_packages = Path(
        run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            env=env, cwd=work).strip()
    )  # fmt: skip
    (site_packages / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(*pip, "install", "--no-deps", wheel, env=env, cwd=work)
    installed = site_packages / "fastseg"
    count, module = run(python, "-c", RUN_KERNELS, env=env, cwd=work).split(" ", 1)
    assert count == "3"
    assert module.strip() == str(installed / "__init__.py")
    assert list((home / ".cache" / "fastseg").rglob("*.nbi"))  # cached per user ...
    assert not list(installed.rglob("*.nb[ic]"))  # ... never inside the package
    run(*pip, "uninstall", "--yes", "fastseg", env=env, cwd=work)
    assert fastseg_files(site_packages) == []  # nothing of fastseg left behind
    # The checkout, editable, into the same environment: its console script works.
    run(*pip, "install", "--no-deps", "--no-build-isolation", "-e", ROOT, env=env, cwd=work)
    version = run(venv / "bin" / "fastseg", "--version", env=env, cwd=work)
    assert version.startswith("fastseg ")
    count, module = run(python, "-c", RUN_KERNELS, env=env, cwd=work).split(" ", 1)
    assert count == "3"
    assert module.strip() == str(ROOT / "fastseg" / "__init__.py")

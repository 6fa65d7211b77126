"""Fixtures for the pytest-benchmark suites: the real volumes in ../shared/data, loaded once.

The suites run only when asked for (the project's testpaths is ``tests``):

    python -m pytest benchmarks --benchmark-enable
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import fastseg

# Real volumes live beside the project (../shared/data), never inside it; a fresh clone
# elsewhere has no such folder and the benchmarks that need them skip.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load_volume(name: str) -> np.ndarray:
    """``name`` from the shared data folder as nibabel hands it out (no copy, so a NIfTI
    volume stays in Fortran order); skips the calling test when the file is absent."""
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"shared data file {path} is absent (expected beside the project)")
    nibabel = pytest.importorskip("nibabel")
    return np.asanyarray(nibabel.load(path).dataobj)


@pytest.fixture(scope="session")
def connectomics() -> np.ndarray:
    """The 512^3 uint32 connectomics volume (F order, 2523 sparse ids up to ~98 million)."""
    return load_volume("connectomics.nii.gz")


@pytest.fixture(scope="session")
def connectomics_ids(connectomics: np.ndarray) -> dict[int, int]:
    """Every id of the connectomics volume -> its index among the sorted ids (0 -> 0)."""
    ids = fastseg.unique(connectomics)
    return {int(old): new for new, old in enumerate(ids)}


@pytest.fixture(scope="session")
def renumbered(connectomics: np.ndarray) -> np.ndarray:
    """The connectomics volume renumbered to 0..2523 as uint32, in the source's F order."""
    relabeled, _ = fastseg.renumber(connectomics, out_dtype=np.uint32)
    assert relabeled.flags.f_contiguous
    return relabeled


@pytest.fixture(scope="session")
def reversing_table(renumbered: np.ndarray) -> np.ndarray:
    """A lookup array reversing the renumbered ids: i -> n - i."""
    table: np.ndarray = np.arange(int(renumbered.max()) + 1, dtype=np.uint32)[::-1].copy()
    return table

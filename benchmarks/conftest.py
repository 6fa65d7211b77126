"""Fixtures for the pytest-benchmark suites: the real volumes in ../shared/data, loaded once,
the inputs derived from them, the CT-like synthetic case and the anchor libraries.

The suites run only when asked for (the project's testpaths is ``tests``):

    python -m pytest benchmarks --benchmark-enable

The synthetic case is built by the report's own builders in ``inputs.py`` (pytest puts
this folder on ``sys.path`` before importing this file), so the suites and the report time
the same inputs.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import pytest
from inputs import ct_like_case, sitk_images
from paths import shared_data_path

import fastseg


def load_volume(name: str) -> np.ndarray:
    """``name`` from the shared data folder as nibabel hands it out (no copy, so a NIfTI
    volume stays in Fortran order); skips the calling test when the file is absent."""
    path = shared_data_path(name) / name
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


@pytest.fixture(scope="session")
def components(connectomics: np.ndarray) -> np.ndarray:
    """The 26-connected component map of connectomics (3,619 ids, uint16, F order)."""
    result = fastseg.label(connectomics, connectivity=26)
    assert result.count == 3619
    return result.labels


@pytest.fixture(scope="session")
def ct_like() -> tuple[np.ndarray, np.ndarray]:
    """A CT-sized synthetic case (``inputs.ct_like_case``): 500 x 400 x 240 uint8 labels
    with 40 ids in blocky organs and an int16 image, both in Fortran order."""
    return ct_like_case()


@pytest.fixture(scope="session")
def cc3d() -> ModuleType:
    """connected-components-3d; skips the calling benchmark when it is not installed."""
    module: ModuleType = pytest.importorskip("cc3d")
    return module


@pytest.fixture(scope="session")
def sitk() -> ModuleType:
    """SimpleITK; skips the calling benchmark when it is not installed."""
    module: ModuleType = pytest.importorskip("SimpleITK")
    return module


@pytest.fixture(scope="session")
def ct_like_sitk(ct_like: tuple[np.ndarray, np.ndarray], sitk: ModuleType) -> tuple[Any, Any]:
    """The CT-like labels and image as SimpleITK images, converted once."""
    return sitk_images(sitk, *ct_like)

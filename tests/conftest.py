"""Shared test configuration: hypothesis profiles and the ``shared_data`` fixture (the real
label volumes in ../shared/data, located by ``shared_data.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from shared_data import shared_data_path

# Numba compiles a kernel the first time an example reaches it, so per-example deadlines
# would only measure compilation. "thorough" is for hunting bugs locally:
# HYPOTHESIS_PROFILE=thorough python -m pytest tests
settings.register_profile(
    "fastseg",
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    parent=settings.get_profile("fastseg"),
    max_examples=1000,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fastseg"))


@pytest.fixture
def shared_data(request: pytest.FixtureRequest) -> Path:
    """Path of ``../shared/data``; skips the test when the folder is absent.

    Name the files a test needs with indirect parametrization, and the test also skips
    when any of them is absent::

        @pytest.mark.parametrize("shared_data", [("torso_labels.nii.gz",)], indirect=True)
        def test_torso(shared_data):
            volume = nibabel.load(shared_data / "torso_labels.nii.gz")
    """
    names = getattr(request, "param", ())
    if isinstance(names, str):
        names = (names,)
    return shared_data_path(*names)

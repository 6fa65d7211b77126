"""Where the real label volumes live: ``../shared/data``, beside the project and never
inside it (see its README). The one definition of that folder, for the tests and the
benchmarks (which load this file by path); a fresh clone elsewhere has no such folder
and what needs it skips.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SHARED_DATA", "shared_data_path"]

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data_path(*names: str) -> Path:
    """The shared data folder, after checking that it and every file in ``names`` exist.

    Skips the calling test (with the missing path in the reason) otherwise.
    """
    import pytest

    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"shared test data folder {SHARED_DATA} is absent (expected beside the project)"
        )
    for name in names:
        if not (SHARED_DATA / name).is_file():
            pytest.skip(f"shared test data file {SHARED_DATA / name} is absent")
    return SHARED_DATA

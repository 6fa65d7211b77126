"""Where the benchmarks find the project and the real label volumes.

The shared-data folder (``../shared/data``) is defined once, in ``tests/shared_data.py``,
for the tests and the benchmarks alike; benchmarks/ and tests/ are separate import
roots, so that file is loaded here by its path.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["ROOT", "SHARED_DATA", "shared_data_path"]

ROOT = Path(__file__).resolve().parents[1]

_spec = importlib.util.spec_from_file_location(
    "fastseg_tests_shared_data", ROOT / "tests" / "shared_data.py"
)
if _spec is None or _spec.loader is None:
    raise ImportError(f"cannot load {ROOT / 'tests' / 'shared_data.py'}")
_shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_shared)

SHARED_DATA: Path = _shared.SHARED_DATA
shared_data_path = _shared.shared_data_path

"""pytest-benchmark suites for cleanup, fastseg against its anchors.

One group per operation (the report's cleanup rows, ``cleanup_rows.py``), fastseg and the
anchor as separate benchmarks in it, on the CT-sized synthetic case with irregular
blocks (500 x 400 x 240 uint8, 40 classes):

- the largest component of every class, against ``cc3d.largest_k`` called once per
  class on the class's mask;
- removing components under 1,000 voxels, against ``cc3d.dust``.

    python -m pytest benchmarks/test_bench_cleanup.py --benchmark-enable

Every benchmark makes one untimed warm-up call (numba compiles, or loads its cache, on a
kernel's first use) and then ``ROUNDS`` timed calls. ``benchmarks/report.py`` times the
same operations interleaved and checks that the results agree.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from cleanup_rows import DUST_VOXELS, classes, irregular_ct_like_case, largest_per_class_cc3d

import fastseg

ROUNDS = 3


def run(benchmark: Any, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Time ``func(*args, **kwargs)``: one warm-up call, then ``ROUNDS`` calls of one iteration."""
    return benchmark.pedantic(
        func, args=args, kwargs=kwargs, rounds=ROUNDS, warmup_rounds=1, iterations=1
    )


@pytest.fixture(scope="module")
def ct_irregular() -> np.ndarray:
    """``cleanup_rows.irregular_ct_like_case``: 500 x 400 x 240 uint8, 40 classes, F order."""
    return irregular_ct_like_case()


@pytest.fixture(scope="module")
def ct_classes(ct_irregular: np.ndarray) -> list[int]:
    """The classes of the case (the anchor's loop runs over them; found outside timing)."""
    return classes(ct_irregular)


# -- the largest component of every class -----------------------------------------------

LARGEST = "largest_k per label, CT-sized synthetic (500x400x240, 40 classes)"


@pytest.mark.benchmark(group=LARGEST)
def test_largest_k_fastseg(benchmark: Any, ct_irregular: np.ndarray) -> None:
    result = run(benchmark, fastseg.largest_k, ct_irregular, 1, per_label=True)
    assert np.unique(result).size == 41


@pytest.mark.benchmark(group=LARGEST)
def test_largest_k_cc3d_per_class(
    benchmark: Any, ct_irregular: np.ndarray, ct_classes: list[int], cc3d: ModuleType
) -> None:
    result = run(benchmark, largest_per_class_cc3d, cc3d, ct_irregular, ct_classes)
    assert np.unique(result).size == 41


# -- removing small components ------------------------------------------------------------

DUST = f"dust({DUST_VOXELS} voxels), CT-sized synthetic (500x400x240, 40 classes)"


@pytest.mark.benchmark(group=DUST)
def test_dust_fastseg(benchmark: Any, ct_irregular: np.ndarray) -> None:
    result = run(benchmark, fastseg.dust, ct_irregular, DUST_VOXELS)
    assert np.count_nonzero(result) < np.count_nonzero(ct_irregular)


@pytest.mark.benchmark(group=DUST)
def test_dust_cc3d(benchmark: Any, ct_irregular: np.ndarray, cc3d: ModuleType) -> None:
    result = run(benchmark, cc3d.dust, ct_irregular, DUST_VOXELS, connectivity=26)
    assert np.count_nonzero(result) < np.count_nonzero(ct_irregular)

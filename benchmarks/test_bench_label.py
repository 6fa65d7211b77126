"""pytest-benchmark suites for connected-component labeling on the connectomics volume,
fastseg against cc3d.connected_components.

One group per connectivity (the report's "label 26-connected" and "label 6-connected"
rows), holding fastseg with numba's default threads, fastseg with ``threads=1`` and cc3d
(single-threaded) as separate benchmarks, so the anchor is timed once per group rather
than once per thread setting:

    python -m pytest benchmarks/test_bench_label.py --benchmark-enable

Every benchmark makes one untimed warm-up call (numba compiles, or loads its cache, on a
kernel's first use) and then ``ROUNDS`` timed calls. ``benchmarks/report.py`` times the
same operations interleaved and checks that the partitions agree.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import fastseg

ROUNDS = 5

# Components of the connectomics volume under each connectivity (cc3d finds the same).
COUNTS = {26: 3619, 6: 4744}


def run(benchmark: Any, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Time ``func(*args, **kwargs)``: one warm-up call, then ``ROUNDS`` calls of one iteration."""
    return benchmark.pedantic(
        func, args=args, kwargs=kwargs, rounds=ROUNDS, warmup_rounds=1, iterations=1
    )


def group(connectivity: int) -> pytest.MarkDecorator:
    return pytest.mark.benchmark(group=f"label {connectivity}-connected")


@pytest.mark.parametrize(
    ("connectivity", "threads"),
    [
        pytest.param(c, t, marks=group(c), id=f"{c}-threads={'default' if t is None else t}")
        for c in COUNTS
        for t in (None, 1)
    ],
)
def test_label_fastseg(
    benchmark: Any, connectomics: np.ndarray, connectivity: int, threads: int | None
) -> None:
    result = run(benchmark, fastseg.label, connectomics, connectivity=connectivity, threads=threads)
    assert result.count == COUNTS[connectivity]
    assert result.labels.shape == connectomics.shape


@pytest.mark.parametrize(
    "connectivity", [pytest.param(c, marks=group(c), id=str(c)) for c in COUNTS]
)
def test_label_cc3d(
    benchmark: Any, connectomics: np.ndarray, connectivity: int, cc3d: ModuleType
) -> None:
    result = run(benchmark, cc3d.connected_components, connectomics, connectivity=connectivity)
    assert result.shape == connectomics.shape
    assert int(result.max()) == COUNTS[connectivity]

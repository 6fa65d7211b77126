"""pytest-benchmark suites for per-instance statistics, fastseg against its anchors.

One group per operation (the report's stats rows), fastseg and the anchor as separate
benchmarks in it:

- count, box and centroid of the 26-connected components of connectomics, against
  cc3d.statistics;
- statistics with an int16 image on the CT-sized synthetic case, against SimpleITK's
  LabelIntensityStatisticsImageFilter;
- shape only on the CT-sized synthetic case, against SimpleITK's
  LabelShapeStatisticsImageFilter without perimeters.

    python -m pytest benchmarks/test_bench_stats.py --benchmark-enable

Every benchmark makes one untimed warm-up call (numba compiles, or loads its cache, on a
kernel's first use) and then ``ROUNDS`` timed calls. The SimpleITK measurements are
the report's own (``core_rows.py``). ``benchmarks/report.py`` times the same operations
interleaved and checks that the results agree.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from core_rows import sitk_intensity, sitk_shape

import fastseg

ROUNDS = 5

COMPONENTS = 3619  # 26-connected components of the connectomics volume
CT_IDS = 40  # ids of the CT-like synthetic case


def run(benchmark: Any, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Time ``func(*args, **kwargs)``: one warm-up call, then ``ROUNDS`` calls of one iteration."""
    return benchmark.pedantic(
        func, args=args, kwargs=kwargs, rounds=ROUNDS, warmup_rounds=1, iterations=1
    )


# -- count, box, centroid of the 26-connected components --------------------------------

COMPONENT_STATS = "stats: count, box, centroid of the 26-connected components"


@pytest.mark.benchmark(group=COMPONENT_STATS)
def test_stats_components_fastseg(benchmark: Any, components: np.ndarray) -> None:
    result = run(benchmark, fastseg.stats, components)
    assert len(result) == COMPONENTS
    assert int(result.voxel_count.sum()) == np.count_nonzero(components)


@pytest.mark.benchmark(group=COMPONENT_STATS)
def test_stats_components_cc3d(benchmark: Any, components: np.ndarray, cc3d: ModuleType) -> None:
    result = run(benchmark, cc3d.statistics, components)
    assert len(result["voxel_counts"]) == COMPONENTS + 1  # with the background


# -- with an int16 image, CT-sized synthetic ----------------------------------------------

INTENSITY = "stats with an int16 image, CT-sized synthetic (500x400x240, 40 ids)"


@pytest.mark.benchmark(group=INTENSITY)
def test_stats_intensity_fastseg(benchmark: Any, ct_like: tuple[np.ndarray, np.ndarray]) -> None:
    labels, image = ct_like
    result = run(benchmark, fastseg.stats, labels, image)
    assert len(result) == CT_IDS
    assert result.mean is not None
    assert result.std is not None


@pytest.mark.benchmark(group=INTENSITY)
def test_stats_intensity_sitk(
    benchmark: Any, ct_like_sitk: tuple[Any, Any], sitk: ModuleType
) -> None:
    labels, image = ct_like_sitk
    measure = run(benchmark, sitk_intensity, sitk, labels, image)
    assert len(measure.GetLabels()) == CT_IDS


# -- shape only, CT-sized synthetic -------------------------------------------------------

SHAPE = "stats, shape only, CT-sized synthetic"


@pytest.mark.benchmark(group=SHAPE)
def test_stats_shape_fastseg(benchmark: Any, ct_like: tuple[np.ndarray, np.ndarray]) -> None:
    labels, _ = ct_like
    result = run(benchmark, fastseg.stats, labels)
    assert len(result) == CT_IDS
    assert int(result.voxel_count.sum()) == np.count_nonzero(labels)


@pytest.mark.benchmark(group=SHAPE)
def test_stats_shape_sitk(benchmark: Any, ct_like_sitk: tuple[Any, Any], sitk: ModuleType) -> None:
    labels, _ = ct_like_sitk
    measure = run(benchmark, sitk_shape, sitk, labels)
    assert len(measure.GetLabels()) == CT_IDS

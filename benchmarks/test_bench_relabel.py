"""pytest-benchmark suites for relabeling on the connectomics volume, fastseg against its anchors.

One group per operation, fastseg and the anchor as separate benchmarks in it:

    python -m pytest benchmarks --benchmark-enable

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

import fastseg

ROUNDS = 7


def run(benchmark: Any, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Time ``func(*args, **kwargs)``: one warm-up call, then ``ROUNDS`` calls of one iteration."""
    return benchmark.pedantic(
        func, args=args, kwargs=kwargs, rounds=ROUNDS, warmup_rounds=1, iterations=1
    )


@pytest.fixture(scope="module")
def fastremap() -> ModuleType:
    module: ModuleType = pytest.importorskip("fastremap")
    return module


# -- unique(return_counts=True) ---------------------------------------------------------


@pytest.mark.benchmark(group="unique(return_counts=True)")
def test_unique_fastseg(benchmark: Any, connectomics: np.ndarray) -> None:
    values, counts = run(benchmark, fastseg.unique, connectomics, return_counts=True)
    assert values.size == counts.size == 2524
    assert int(counts.sum()) == connectomics.size


@pytest.mark.benchmark(group="unique(return_counts=True)")
def test_unique_fastremap(benchmark: Any, connectomics: np.ndarray, fastremap: ModuleType) -> None:
    values, counts = run(benchmark, fastremap.unique, connectomics, return_counts=True)
    assert values.size == counts.size == 2524


# -- remap with a dict of all ids ---------------------------------------------------------


@pytest.mark.benchmark(group="remap(dict of all ids)")
def test_remap_dict_fastseg(
    benchmark: Any, connectomics: np.ndarray, connectomics_ids: dict[int, int]
) -> None:
    result = run(benchmark, fastseg.remap, connectomics, connectomics_ids)
    assert result.shape == connectomics.shape
    assert result.flags.f_contiguous


@pytest.mark.benchmark(group="remap(dict of all ids)")
def test_remap_dict_fastremap(
    benchmark: Any,
    connectomics: np.ndarray,
    connectomics_ids: dict[int, int],
    fastremap: ModuleType,
) -> None:
    result = run(
        benchmark, fastremap.remap, connectomics, connectomics_ids, preserve_missing_labels=True
    )
    assert result.shape == connectomics.shape


# -- renumber -----------------------------------------------------------------------------


@pytest.mark.benchmark(group="renumber")
def test_renumber_fastseg(benchmark: Any, connectomics: np.ndarray) -> None:
    relabeled, mapping = run(benchmark, fastseg.renumber, connectomics)
    assert len(mapping) == 2524
    assert relabeled.flags.f_contiguous


@pytest.mark.benchmark(group="renumber")
def test_renumber_fastremap(
    benchmark: Any, connectomics: np.ndarray, fastremap: ModuleType
) -> None:
    _, mapping = run(benchmark, fastremap.renumber, connectomics)
    assert len(mapping) == 2524


# -- remap through a lookup array, against a plain copy -----------------------------------


@pytest.mark.benchmark(group="remap(lookup array), uint32 0..2523")
def test_remap_table_fastseg(
    benchmark: Any, renumbered: np.ndarray, reversing_table: np.ndarray
) -> None:
    result = run(benchmark, fastseg.remap, renumbered, reversing_table)
    assert result.shape == renumbered.shape
    assert result.flags.f_contiguous


@pytest.mark.benchmark(group="remap(lookup array), uint32 0..2523")
def test_remap_table_copy(benchmark: Any, renumbered: np.ndarray) -> None:
    result = run(benchmark, renumbered.copy, order="K")
    assert result.flags.f_contiguous

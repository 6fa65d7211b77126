"""Peak resident memory of every public operation on volumes that differ in one id only.

Run as a script (``python tests/memory_probe.py``) by ``test_memory.py``, in a process of
its own: numba allocates outside Python's allocator, where ``tracemalloc`` does not look,
so the probe reads the kernel's count of resident memory instead. Before each call the
peak (VmHWM) is reset through ``/proc/self/clear_refs``; the call's peak above the memory
held before it is what is reported, its result included. Prints one JSON object:
``{operation: {id: bytes}}``, or ``{"unavailable": reason}``.

Every operation first runs on a small volume with each id, so that kernels are compiled
(or loaded from the cache) and numba's thread pool is started before anything is measured.
"""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

import fastseg

SHAPE = (256, 256, 256)
WARM_UP_SHAPE = (64, 64, 64)
# A reference id, above what tables are indexed by directly whatever the number of ids,
# and a stray voxel's id that is 32 times larger (one voxel of id 4,194,303 in 256^3 used
# to make stats peak at 1.25 GB).
IDS = (1 << 17, 4_194_303)
CATEGORIES = ("liver", "spleen", "kidney", "stray")


def volume(shape: tuple[int, int, int], stray: int) -> np.ndarray:
    """uint32 labels: three organ-like blocks (ids 1, 2, 3, one of them with a hole), the
    rest background, and a single voxel of id ``stray``."""
    labels = np.zeros(shape, np.uint32)
    n0, n1, n2 = shape
    labels[n0 // 8 : n0 // 2, n1 // 8 : n1 // 2, n2 // 8 : n2 // 2] = 1
    labels[n0 // 4 : n0 // 3, n1 // 4 : n1 // 3, n2 // 4 : n2 // 3] = 0  # a hole
    labels[n0 // 2 : 7 * n0 // 8, n1 // 8 : n1 // 2, n2 // 8 : 7 * n2 // 8] = 2
    labels[n0 // 8 : 7 * n0 // 8, n1 // 2 + 2 : 7 * n1 // 8, n2 // 2 :] = 3
    labels[2, 3, 5] = 2  # a speck for dust
    labels[n0 - 2, n1 - 3, n2 - 4] = stray
    return labels


def consume(items: Iterable[Any]) -> int:
    return sum(1 for _ in items)


def refused(func: Callable[[], object]) -> Callable[[], object]:
    """``func``, returning the ValueError it raises instead (a refusal is a result too)."""

    def call() -> object:
        try:
            return func()
        except ValueError as error:
            return error

    return call


def operations(labels: np.ndarray, stray: int) -> dict[str, Callable[[], object]]:
    """Each public operation on ``labels``, as a call without arguments. Inputs the calls
    need besides ``labels`` are built here, before anything is measured."""
    ids = (1, 2, 3, stray)
    schema = fastseg.Schema(
        fastseg.Category(name, value) for name, value in zip(CATEGORIES, ids, strict=True)
    )
    target = fastseg.Schema(
        fastseg.Category(name, rank + 1) for rank, name in enumerate(CATEGORIES)
    )
    segments = fastseg.SegmentMap(
        {value: fastseg.Segment(name) for name, value in zip(CATEGORIES, ids, strict=True)}
    )
    image = (labels % 251).astype(np.uint8)
    foreground = (labels != 0).astype(np.uint8)
    writable = labels.copy()
    return {
        "unique": lambda: fastseg.unique(labels, return_counts=True),
        "remap": lambda: fastseg.remap(labels, {0: 0, 1: 1, 2: 1, 3: 2, stray: 3}),
        "remap missing=0": lambda: fastseg.remap(labels, {stray: 5}, missing=0),
        "renumber": lambda: fastseg.renumber(labels),
        "renumber in_place": lambda: fastseg.renumber(writable, in_place=True),
        "mask": lambda: fastseg.mask(labels, [1, stray]),
        "mask remove": lambda: fastseg.mask(labels, remove=[stray]),
        "label": lambda: fastseg.label(labels),
        "dust": lambda: fastseg.dust(labels, 2),
        "largest_k": lambda: fastseg.largest_k(labels, 1),
        "fill_holes": lambda: fastseg.fill_holes(labels),
        "stats": lambda: fastseg.stats(labels),
        "stats image surface": lambda: fastseg.stats(labels, image, surface=True),
        "stats ids": lambda: fastseg.stats(labels, ids=[1, stray]),
        "each": lambda: consume(fastseg.each(labels)),
        "contacts": lambda: fastseg.contacts(labels, connectivity=26),
        "component_values": refused(lambda: fastseg.component_values(labels, foreground)),
        "to_semantic": lambda: fastseg.to_semantic(labels, segments, schema),
        "to_instances": lambda: fastseg.to_instances(labels, schema),
        "convert": lambda: fastseg.convert(labels, schema, target),
        "binary_masks": lambda: consume(fastseg.binary_masks(labels)),
    }


def _status(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(name)


def peak(func: Callable[[], object]) -> int:
    """Bytes by which one call raises the resident memory at its peak."""
    gc.collect()
    before = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    result = func()
    top = _status("VmHWM")
    del result
    return top - before


def main() -> int:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        _status("VmHWM")
    except (OSError, KeyError) as error:
        print(json.dumps({"unavailable": f"no resettable peak memory here ({error})"}))
        return 0
    for stray in IDS:
        for func in operations(volume(WARM_UP_SHAPE, stray), stray).values():
            func()
    peaks: dict[str, dict[int, int]] = {}
    for stray in IDS:
        labels = volume(SHAPE, stray)
        for name, func in operations(labels, stray).items():
            peaks.setdefault(name, {})[stray] = peak(func)
        del labels
    print(json.dumps(peaks))
    return 0


if __name__ == "__main__":
    sys.exit(main())

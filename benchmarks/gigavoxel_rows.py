"""Report rows on two 1024 x 1024 x 512 uint32 volumes (2 GiB each), built at run time.

- ``tiled connectomics``: the connectomics volume tiled 2 x 2 x 1, the ids of every tile
  offset by a multiple of 10^8 (so tiles do not share ids: 10,092 ids up to about
  3.98 x 10^8), in Fortran order as nibabel gives the original;
- ``many blocks``: 64 x 64 x 32 boxes of random sizes (every axis cut at random places:
  1 to about 100 voxels a side, 16 on average), each given a random label 1..39 (seed 0),
  in Fortran order: 131,072 boxes, of which neighbours with the same label merge, so
  that labeling is mostly bookkeeping.

Rows per volume: ``label`` at 26 and 6 connectivity, with every thread and with one,
against ``cc3d.connected_components``; ``stats`` of the 26-connected component map against
``cc3d.statistics``; ``renumber`` and ``remap`` (a dict of every id) against fastremap;
``largest_k(labels, 1)`` against cc3d doing the same job (label, count, keep the largest
component of every label with ``fastremap.mask_except``); ``each`` over the component map
against ``cc3d.each`` (whose masks are the size of the volume, where fastseg's are cropped
to each component's box; both iterate over every component). Only one volume is held at
a time, and the rows run at most :data:`MAX_REPEAT` timed calls each.

Peak memory is measured in a process of its own per row and library (``python
gigavoxel_rows.py peak VOLUME ROW LIBRARY``): the process builds the volume (and the
component map where the row needs one), warms the call up on a small crop, resets its
peak (VmHWM) and reports how far one call raises it. The rows join the table of
``report.py`` with ``--gigavoxel``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from checks import same_relabeling, same_statistics, same_values
from harness import Row, Skip, Verdict, anchor_module
from inputs import Volumes
from paths import SHARED_DATA

import fastseg

SHAPE = (1024, 1024, 512)
MAX_REPEAT = 3
TILE_OFFSET = 100_000_000
VOLUMES = ("tiled connectomics", "many blocks")


# -- volumes ------------------------------------------------------------------------------


def tiled_connectomics(connectomics: np.ndarray) -> np.ndarray:
    """The 512^3 volume tiled 2 x 2 x 1 into a Fortran-ordered 1024 x 1024 x 512 array,
    ids of tile ``t`` (0..3) offset by ``t * 10^8`` (0 stays background)."""
    n = connectomics.shape[0]
    out = np.empty(SHAPE, np.uint32, order="F")
    for tile in range(4):
        i, j = divmod(tile, 2)
        block = out[i * n : (i + 1) * n, j * n : (j + 1) * n, :]
        np.add(connectomics, np.uint32(tile * TILE_OFFSET), out=block)
        block[connectomics == 0] = 0
    return out


def many_blocks(seed: int = 0) -> np.ndarray:
    """64 x 64 x 32 boxes with random labels 1..39, each axis cut at random places (so
    boxes are 1 to about 100 voxels a side, 16 on average), as a Fortran-ordered
    1024 x 1024 x 512 uint32 array."""
    rng = np.random.default_rng(seed)
    counts = (64, 64, 32)
    coarse = rng.integers(1, 40, counts, dtype=np.uint32)

    def widths(total: int, count: int) -> np.ndarray:
        cuts = np.sort(rng.choice(np.arange(1, total), count - 1, replace=False))
        return np.diff(np.r_[0, cuts, total])

    w0, w1, w2 = (widths(total, count) for total, count in zip(SHAPE, counts, strict=True))
    # Built transposed in C order, so that its transpose is the Fortran-ordered volume
    # without a second 2 GiB copy.
    transposed = coarse.T.repeat(w2, 0).repeat(w1, 1).repeat(w0, 2)
    return transposed.T


def build_volume(name: str, data: Path) -> np.ndarray:
    if name == "many blocks":
        return many_blocks()
    path = data / "connectomics.nii.gz"
    if not path.is_file():
        raise Skip(f"data file {path} is missing")
    nibabel = anchor_module("nibabel")
    return tiled_connectomics(np.asanyarray(nibabel.load(path).dataobj))


# -- what the rows run ----------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One row's calls; both take the volume and what ``prepare`` made of it outside the
    timing (the 26-connected component map, a mapping), or None."""

    key: str
    title: str
    fastseg: Callable[[np.ndarray, Any], object]
    anchor_name: str
    anchor: Callable[[np.ndarray, Any], object]
    target: float
    prepare: Callable[[np.ndarray], Any] | None = None
    check: Callable[[Any, Any], Verdict] | None = None
    anchor_memory: bool = True


def same_partition_large(fast: fastseg.Components, anchor: np.ndarray) -> Verdict:
    """Connected components, checked without a 64-bit copy of the volume: every fastseg
    component lies inside one anchor component and every anchor component inside one
    fastseg component (two passes of ``fastseg.component_values``), none in the other's
    background, and the counts agree."""
    n_anchor = int(fastseg.unique(anchor)[-1])
    try:
        forward = fastseg.component_values(fast.labels, anchor)
        backward = fastseg.component_values(anchor, fast.labels)
    except ValueError as error:
        return Verdict(False, str(error))
    same = fast.count == n_anchor and bool(forward[1:].all()) and bool(backward[1:].all())
    return Verdict(same, f"{fast.count} components (anchor {n_anchor}); one to one: {same}")


def _cc3d() -> Any:
    return anchor_module("cc3d")


def _fastremap() -> Any:
    return anchor_module("fastremap")


def cc3d_largest_per_label(labels: np.ndarray) -> np.ndarray:
    """What ``fastseg.largest_k(labels, 1)`` does, with cc3d and fastremap: label the map,
    count every component, keep the largest of every label (ties: the lower component
    number, as fastseg), write the labels back where components are kept."""
    cc3d, fastremap = _cc3d(), _fastremap()
    components, count = cc3d.connected_components(labels, connectivity=26, return_N=True)
    sizes = cc3d.statistics(components, no_slice_conversion=True)["voxel_counts"]
    values = fastseg.component_values(components, labels).astype(np.int64)
    ids = np.arange(1, count + 1)
    order = np.lexsort((ids, -sizes[1:], values[1:]))
    first = np.r_[True, values[1:][order][1:] != values[1:][order][:-1]]
    kept = components.copy(order="K")
    fastremap.mask_except(kept, ids[order][first].tolist(), in_place=True)
    return np.where(kept != 0, labels, 0)


def same_kept(fast: np.ndarray, anchor: np.ndarray) -> Verdict:
    """largest_k results: equal, or keeping as many voxels of every label (where a label
    has two largest components of the same size, the libraries may keep different ones)."""
    if np.array_equal(fast, anchor):
        return Verdict(True, f"equal values ({fast.dtype})")
    kept = fastseg.unique(fast, return_counts=True)
    anchor_kept = fastseg.unique(anchor, return_counts=True)
    same = all(np.array_equal(a, b) for a, b in zip(kept, anchor_kept, strict=True))
    differing = int(np.count_nonzero(fast != anchor))
    return Verdict(
        same, f"{differing} voxels differ; voxels kept per label {'equal' if same else 'differ'}"
    )


def _masks(items: Iterator[tuple[Any, ...]]) -> tuple[int, int]:
    """How many masks an ``each`` iteration yields, and the sum of their ids."""
    count = total = 0
    for item in items:
        count += 1
        total += int(item[0])
    return count, total


def _components(labels: np.ndarray) -> np.ndarray:
    return fastseg.label(labels, connectivity=26).labels


def _all_ids(labels: np.ndarray) -> dict[int, int]:
    """Every id -> its index among the sorted ids (0 -> 0)."""
    ids = _fastremap().unique(labels)
    return {int(old): new for new, old in enumerate(ids.tolist())}


OPERATIONS: tuple[Operation, ...] = (
    *(
        Operation(
            f"label{connectivity}{'' if threads is None else '-1'}",
            f"label {connectivity}-connected{'' if threads is None else ', threads=1'}",
            lambda labels, _, c=connectivity, t=threads: fastseg.label(
                labels, connectivity=c, threads=t
            ),
            "cc3d.connected_components",
            lambda labels, _, c=connectivity: _cc3d().connected_components(labels, connectivity=c),
            0.5 if threads is None else 1.0,
            check=same_partition_large,
        )
        for connectivity in (26, 6)
        for threads in (None, 1)
    ),
    Operation(
        "stats",
        "stats: count, box, centroid of the 26-connected components",
        lambda _, components: fastseg.stats(components),
        "cc3d.statistics",
        lambda _, components: _cc3d().statistics(components),
        0.33,
        prepare=_components,
        check=same_statistics,
    ),
    Operation(
        "renumber",
        "renumber",
        lambda labels, _: fastseg.renumber(labels),
        "fastremap.renumber",
        lambda labels, _: _fastremap().renumber(labels),
        0.5,
        check=same_relabeling,
    ),
    Operation(
        "remap",
        "remap(dict of all ids)",
        lambda labels, mapping: fastseg.remap(labels, mapping),
        "fastremap.remap",
        lambda labels, mapping: _fastremap().remap(labels, mapping, preserve_missing_labels=True),
        0.5,
        prepare=_all_ids,
        check=same_values,
    ),
    Operation(
        "largest_k",
        "largest_k(labels, 1): the largest component of every label",
        lambda labels, _: fastseg.largest_k(labels, 1),
        "cc3d label + statistics, fastremap.mask_except",
        lambda labels, _: cc3d_largest_per_label(labels),
        0.5,
        check=same_kept,
    ),
    Operation(
        "each",
        "each: a cropped mask per 26-connected component",
        lambda _, components: _masks(fastseg.each(components)),
        "cc3d.each(binary=True, in_place=True)",
        lambda _, components: _masks(_cc3d().each(components, binary=True, in_place=True)),
        0.5,
        prepare=_components,
        check=lambda fast, anchor: Verdict(
            fast == anchor,
            f"{fast[0]} masks, ids summing to {fast[1]} (anchor: {anchor[0]}, {anchor[1]}); "
            "fastseg's cropped to the component's box, cc3d's the size of the volume",
        ),
        # cc3d.each's full-size masks took a process past 9.5 GB on the many-blocks volume.
        anchor_memory=False,
    ),
)


# -- rows ---------------------------------------------------------------------------------


def _volume(v: Volumes, name: str) -> np.ndarray:
    """The volume ``name``; the other one (and what was prepared from it) is dropped
    first, so that one 2 GiB volume is held at a time."""
    for other in VOLUMES:
        if other != name:
            v.forget(other)
            for operation in OPERATIONS:
                v.forget(f"{other} {operation.key}")
    return v.derived(name, lambda: build_volume(name, v.folder))


def _inputs(v: Volumes, name: str, operation: Operation) -> tuple[np.ndarray, Any]:
    labels = _volume(v, name)
    prepare = operation.prepare
    if prepare is None:
        return labels, None
    # Rows that prepare the same thing share it (the component map).
    key = "components" if prepare is _components else operation.key
    return labels, v.derived(f"{name} {key}", lambda: prepare(labels))


def measure_elsewhere(data: Path, volume: str, key: str, library: str) -> int | None:
    """Peak memory of one call, from a process of its own (see :func:`peak_main`)."""
    script = Path(__file__).resolve()
    env = dict(os.environ)
    # Freed blocks go back to the system at once, so every allocation shows in the peak.
    env["MALLOC_MMAP_THRESHOLD_"] = str(1 << 16)
    done = subprocess.run(
        [sys.executable, str(script), "peak", volume, key, library, "--data", str(data)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return None
    value = json.loads(done.stdout)
    return None if value is None else int(value)


def rows(v: Volumes) -> list[Row]:
    result = []
    for name in VOLUMES:
        for operation in OPERATIONS:

            def call(
                func: Callable[[np.ndarray, Any], object],
                name: str = name,
                operation: Operation = operation,
            ) -> Callable[[], object]:
                return lambda: func(*_inputs(v, name, operation))

            result.append(
                Row(
                    f"gigavoxel {name}: {operation.title}",
                    call(operation.fastseg),
                    operation.anchor_name,
                    call(operation.anchor),
                    target=operation.target,
                    check=operation.check,
                    max_repeat=MAX_REPEAT,
                    setup=lambda name=name, operation=operation: warm_up(
                        operation, *_inputs(v, name, operation)
                    ),
                    memory=lambda library, name=name, operation=operation: (
                        measure_elsewhere(v.folder, name, operation.key, library)
                        if library == "fastseg" or operation.anchor_memory
                        else None
                    ),
                )
            )
    return result


# -- peak memory in a process of its own ----------------------------------------------------


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def warm_up(operation: Operation, labels: np.ndarray, prepared: Any, library: str = "") -> None:
    """Run the operation of both libraries (or of ``library``) on a 128^3 crop: kernels
    compiled or loaded, thread pools started."""
    crop = np.asfortranarray(labels[:128, :128, :128])
    if isinstance(prepared, np.ndarray):
        prepared = np.asfortranarray(prepared[:128, :128, :128])
    for name, func in (("fastseg", operation.fastseg), ("anchor", operation.anchor)):
        if library in ("", name):
            func(crop, prepared)


def peak_main(volume: str, key: str, library: str, data: Path) -> int:
    operation = {op.key: op for op in OPERATIONS}[key]
    func = operation.fastseg if library == "fastseg" else operation.anchor
    labels = build_volume(volume, data)
    prepared = None if operation.prepare is None else operation.prepare(labels)
    warm_up(operation, labels, prepared, library)
    gc.collect()
    try:
        before = _status("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")
    except (OSError, KeyError):
        print(json.dumps(None))
        return 0
    result = func(labels, prepared)
    peak = _status("VmHWM") - before
    del result
    print(json.dumps(peak))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Peak memory of one gigavoxel row's call.")
    parser.add_argument("command", choices=["peak"])
    parser.add_argument("volume", choices=VOLUMES)
    parser.add_argument("key", choices=[op.key for op in OPERATIONS])
    parser.add_argument("library", choices=["fastseg", "anchor"])
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    args = parser.parse_args(argv)
    return peak_main(args.volume, args.key, args.library, args.data)


if __name__ == "__main__":
    sys.exit(main())

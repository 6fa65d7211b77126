"""Sample index files against the label files they describe: size, and the time to load
each: the index (its locations are decoded when first asked for), checked against the
label file's header, with one class's locations decoded, with every class's, and the
label file read with nibabel.

    python benchmarks/index_sizes.py [--connectomics] [--repeat N]

Cases: the real label maps in ../shared/data (the 512³ connectomics volume only with
``--connectomics``: sampling its 2523 ids takes minutes), report.py's CT-sized synthetic
case, and small synthetic volumes (random ids on a grid of 4-voxel cubes, as the tests'
``blocky_volume``). Every index holds nnU-Net-sized samples (``mode="nnunet"``, seed 0).
Prints a markdown table on stdout; times are medians of ``--repeat`` calls.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from inputs import ct_like_case
from paths import SHARED_DATA

import fastseg


def blocky(shape: tuple[int, ...], ids: int, cell: int, seed: int) -> np.ndarray:
    """Random ids 0..ids on a grid of ``cell``-voxel cubes, 1 % of voxels scattered."""
    rng = np.random.default_rng(seed)
    volume = rng.integers(0, ids + 1, tuple(-(-n // cell) for n in shape))
    for axis in range(len(shape)):
        volume = np.repeat(volume, cell, axis=axis)
    volume = volume[tuple(slice(0, n) for n in shape)]
    scatter = rng.random(shape) < 0.01
    volume[scatter] = rng.integers(0, ids + 1, int(scatter.sum()))
    return volume.astype(np.uint8)


def median_ms(func: Callable[[], object], repeat: int) -> float:
    func()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def load_all(path: Path) -> np.ndarray:
    """Load an index and decode every class's locations."""
    return fastseg.load_index(path).indices


def load_one(path: Path) -> np.ndarray:
    """Load an index and decode the locations of one class (what a crop draws from)."""
    index = fastseg.load_index(path)
    return index.flat(int(index.ids[index.ids.size // 2]))


def read_labels(path: Path) -> np.ndarray:
    """The label file's voxels, as a loader without an index reads them."""
    import nibabel

    return np.asanyarray(nibabel.load(path).dataobj)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connectomics", action="store_true", help="include the 512³ volume")
    parser.add_argument("--repeat", type=int, default=20, help="timed loads per case")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="fastseg-bench-index-sizes-"))
    cases: list[tuple[str, Path]] = []
    names = ["torso_labels.nii.gz", "aal.nii.gz", "platynereis_nuclei.nii.gz"]
    if args.connectomics:
        names.append("connectomics.nii.gz")
    cases += [(name, SHARED_DATA / name) for name in names if (SHARED_DATA / name).is_file()]
    synthetic = {
        "CT-sized synthetic 500x400x240, 40 classes": ct_like_case()[0],
        "synthetic 96x96x60, 8 classes": blocky((96, 96, 60), 8, 4, 0),
        "synthetic 64x64x64, 8 classes": blocky((64, 64, 64), 8, 4, 0),
        "synthetic 32x32x32, 8 classes": blocky((32, 32, 32), 8, 4, 0),
        "synthetic 16x16x16, 8 classes": blocky((16, 16, 16), 8, 4, 0),
    }
    for j, (name, labels) in enumerate(synthetic.items()):
        path = folder / f"case{j}.nii.gz"
        fastseg.save(path, labels, affine=np.diag([0.8, 0.8, 1.5, 1.0]))
        cases.append((name, path))
    print(
        "| case | shape | classes | locations | label file | index file | index / label "
        "| bytes / location | load_index | load_index(labels=) | + one class | + every class "
        "| nibabel read | every class / read |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, source in cases:
        print(f"{name}: writing the index", file=sys.stderr)
        target = folder / "index.fsidx"
        index = fastseg.write_index(target, source, mode="nnunet", seed=0)
        label_bytes, index_bytes = os.path.getsize(source), os.path.getsize(target)
        load = median_ms(functools.partial(fastseg.load_index, target), args.repeat)
        checked = median_ms(
            functools.partial(fastseg.load_index, target, labels=source), args.repeat
        )
        one = median_ms(functools.partial(load_one, target), args.repeat)
        every = median_ms(functools.partial(load_all, target), args.repeat)
        read = median_ms(functools.partial(read_labels, source), max(3, args.repeat // 4))
        shape = "x".join(str(n) for n in index.shape)
        print(
            f"| {name} | {shape} | {index.ids.size} | {index.indices.size:,} | "
            f"{label_bytes / 1024:.1f} KiB | {index_bytes / 1024:.1f} KiB | "
            f"{index_bytes / label_bytes:.2f} | {index_bytes / max(index.indices.size, 1):.2f} | "
            f"{load:.2f} ms | {checked:.2f} ms | {one:.2f} ms | {every:.2f} ms | {read:.1f} ms | "
            f"{every / read:.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

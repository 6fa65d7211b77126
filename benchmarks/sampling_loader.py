"""Crop throughput in a 2-worker DataLoader: fastseg's RandCropByClassesd against MONAI's
RandCropByLabelClassesd, and the peak memory of fastseg.locations.

    python benchmarks/sampling_loader.py [--samples N] [--epochs N]

The case is the report's CT-sized synthetic volume, ``inputs.ct_like_case`` (500 x 400 x
240 uint8 labels with 40 classes and an int16 image, Fortran order), held in memory
before the workers fork. Every sample crops two 96³ patches of image and label together,
classes drawn with equal ratios (background included, as MONAI's ``num_classes=41``):

- MONAI computes the index arrays of every class on every sample (``map_classes_to_indices``);
- fastseg draws centres from the case's sample index file (``fastseg.write_index``,
  nnU-Net sizes), or computes locations from the label map on every sample.

Prints a markdown table on stdout. The peak-memory line runs ``fastseg.locations`` in a
fresh process and reports how far the peak resident memory (VmHWM) rose above what the
process held before the call, against the label volume's bytes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from inputs import ct_like_case

import fastseg
from fastseg.transforms_sampling import RandCropByClassesd

SIZE = (96, 96, 96)


class Crops:
    """A dataset of ``size`` samples, each the crops of one transform of the same case."""

    def __init__(self, data: dict[str, Any], transform: Callable[[Any], Any], size: int):
        self.data = data
        self.transform = transform
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Any:
        crops = self.transform(self.data)
        return [{k: np.asarray(c[k]).shape for k in ("image", "label")} for c in crops]


def epoch_seconds(dataset: Crops, epochs: int) -> float:
    """Median seconds per epoch of a 2-worker DataLoader, after an untimed epoch."""
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=None, num_workers=2, persistent_workers=True)
    times = []
    for epoch in range(epochs + 1):
        started = time.perf_counter()
        for _ in loader:
            pass
        if epoch:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def peak_memory_line() -> str:
    code = """
import numpy as np, fastseg, sys
sys.path.insert(0, "benchmarks")
from inputs import ct_like_case
labels = ct_like_case()[0]
fastseg.locations(labels[:50, :50, :50].copy(order="F"), seed=0)
fastseg.locations(labels, seed=0)
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) * 1024
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) * 1024
import gc; gc.collect()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = rss()
found = fastseg.locations(labels, seed=0)
print(hwm() - before, labels.nbytes, sum(v.nbytes for v in found.values()))
"""
    # A fixed mmap threshold: freed blocks go back to the system at once instead of
    # staying resident for the next allocation to reuse, which would hide it.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(1 << 16))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    peak, volume, output = (int(x) for x in out)
    return (
        f"- peak memory of `fastseg.locations(labels)` (2 threads, 40 x 10,000 locations): "
        f"{peak / 2**20:.1f} MB above the memory held before the call, "
        f"{peak / volume:.3f}x the label volume's {volume / 2**20:.0f} MB "
        f"(the result itself: {output / 2**20:.1f} MB)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=8, help="samples per epoch")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs")
    args = parser.parse_args(argv)
    import monai.transforms

    labels, image = ct_like_case()
    folder = Path(tempfile.mkdtemp(prefix="fastseg-bench-crops-"))
    label_file = folder / "labels.nii.gz"
    fastseg.save(label_file, labels, affine=np.eye(4))
    index_file = folder / "index.fsidx"
    fastseg.write_index(index_file, label_file, mode="nnunet", seed=0)
    data = {"image": image[None], "label": labels[None], "index": str(index_file)}
    ratios = [1.0] * 41
    monai_crop = monai.transforms.RandCropByLabelClassesd(
        ["image", "label"], "label", SIZE, ratios=ratios, num_classes=41, num_samples=2,
        warn=False,
    )  # fmt: skip
    from_index = RandCropByClassesd(
        ["image", "label"], "label", SIZE, ratios, num_samples=2, locations_key="index"
    )
    on_the_fly = RandCropByClassesd(["image", "label"], "label", SIZE, ratios, num_samples=2)
    for transform in (from_index, on_the_fly):
        transform(data)  # compiles (or loads) the kernels before the workers fork
    rows = []
    anchor = epoch_seconds(Crops(data, monai_crop, args.samples), args.epochs)
    for name, transform in (
        ("RandCropByClassesd from the index file", from_index),
        ("RandCropByClassesd, locations on every sample", on_the_fly),
    ):
        seconds = epoch_seconds(Crops(data, transform, args.samples), args.epochs)
        rows.append(
            f"| {name} | {seconds:.3f} | MONAI RandCropByLabelClassesd | {anchor:.3f} | "
            f"{args.samples / seconds:.1f} / {args.samples / anchor:.1f} | "
            f"{anchor / seconds:.0f}x |"
        )
    print(
        f"- DataLoader: 2 worker processes (fork), batch_size=None, {args.samples} samples "
        f"per epoch, each two {SIZE[0]}³ crops of image and label; median of {args.epochs} "
        f"epochs after an untimed one; fastseg {1} thread per worker (its default there)"
    )
    print(f"- index file {os.path.getsize(index_file) / 2**10:.0f} KiB; label file "
          f"{os.path.getsize(label_file) / 2**10:.0f} KiB (.nii.gz)")  # fmt: skip
    started = time.perf_counter()
    for _ in range(20):
        fastseg.load_index(index_file)
    print(f"- load_index: {(time.perf_counter() - started) / 20 * 1000:.1f} ms (mean of 20)")
    print(peak_memory_line())
    print()
    print("| fastseg | s / epoch | anchor | s / epoch | samples/s fastseg / anchor | speed-up |")
    print("|---|---:|---|---:|---:|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

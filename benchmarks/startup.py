"""Start-up and data-loader numbers: what a training job pays for fastseg.

    python benchmarks/startup.py [--epochs N] [--skip-compile] [--python PYTHON]

``--python`` runs the measured processes with another interpreter, e.g. that of a virtual
environment holding fastseg with its run-time dependencies only (``pip install .``), as
users install it. Where scipy is installed (it is a test extra here), numba's start
imports ``scipy.linalg`` to check for BLAS, and every first call pays for it.

Prints a markdown report (progress to stderr):

1. ``import fastseg`` in a fresh process (best of three), and numba's own start: a fresh
   process importing numba and calling one trivial cached kernel (best of three), the
   least any warm first call can take;
2. for each public operation, on the torso CT labels: the first call in a fresh process
   with an empty kernel cache (cold: numba compiles), the first call in a fresh process
   with the cache that run left (warm: numba loads; best of three processes), and a
   second call in that process; then label, remap and stats together, warm;
   every process has its own temporary ``FASTSEG_CACHE_DIR``, so the user's own cache
   is neither used nor touched;
3. ``fastseg.warmup()`` with an empty cache and again with the warm one, and
   ``fastseg demo`` end to end (the console script) with an empty cache and a warm one;
4. DataLoader throughput: a torch ``DataLoader`` with 2 worker processes over the
   shared volumes (each as a ``(1, X, Y, Z)`` tensor), applying a fastseg transform and
   the equivalent MONAI or TorchIO transform in the same run, after one untimed epoch
   (persistent workers, so worker start-up is not in the timed epochs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness import cpu_model, format_seconds, git_revision, progress, version
from paths import SHARED_DATA

LOADER_VOLUMES = ("torso_labels", "aal", "platynereis_nuclei")
SAMPLES_PER_VOLUME = 2

# One public operation per entry, as a statement on ``labels`` (the torso CT labels,
# Fortran order as nibabel loads them), ``schema`` and ``segments``.
OPERATIONS: dict[str, str] = {
    "label": "fastseg.label(labels)",
    "remap": "fastseg.remap(labels, {1: 2, 2: 1})",
    "stats": "fastseg.stats(labels)",
    "to_semantic": "fastseg.to_semantic(labels, segments, schema)",
    "unique": "fastseg.unique(labels)",
    "renumber": "fastseg.renumber(labels)",
    "largest_k": "fastseg.largest_k(labels)",
    "dust": "fastseg.dust(labels, 100)",
    "to_instances": "fastseg.to_instances(labels, schema)",
    "contacts": "fastseg.contacts(labels)",
    "fill_holes": "fastseg.fill_holes(labels)",
    "mask": "fastseg.mask(labels, [1, 2])",
    "each": "[None for _ in fastseg.each(labels)]",
    "binary_masks": "[None for _ in fastseg.binary_masks(labels)]",
    "label + remap + stats": (
        "(fastseg.label(labels), fastseg.remap(labels, {1: 2, 2: 1}), fastseg.stats(labels))"
    ),
}
# Goals on this 2-core machine: (cold first call, warm first call) in seconds.
COLD_GOAL = 3.0
WARM_GOALS = {"label": 0.3, "remap": 0.3, "stats": 0.3, "label + remap + stats": 0.4}
WARMUP_GOAL = 25.0
DEMO_GOAL = 8.0

FIRST_CALL = """
import json, sys, time
started = time.perf_counter()
import fastseg
imported = time.perf_counter() - started
import nibabel, numpy as np
from fastseg._jit import compile_counts
data = sys.argv[1]
labels = np.asanyarray(nibabel.load(f"{data}/torso_labels.nii.gz").dataobj)
schema = fastseg.Schema.load(f"{data}/torso_labels.json")
segments = fastseg.SegmentMap({c.value: fastseg.Segment(c.name) for c in schema})
run = lambda: OPERATION
started = time.perf_counter(); run(); first = time.perf_counter() - started
started = time.perf_counter(); run(); second = time.perf_counter() - started
print(json.dumps({"import": imported, "first": first, "second": second,
                  "counts": compile_counts()}))
"""


# The interpreter of the measured processes (``--python``).
MEASURED_PYTHON = sys.executable


def python(code: str, *args: str, cache: str | None = None, numba_cache: str | None = None) -> str:
    argv = [MEASURED_PYTHON, "-c", textwrap.dedent(code), *args]
    return command(argv, cache=cache, numba_cache=numba_cache)


def command(argv: Sequence[str], cache: str | None = None, numba_cache: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "FASTSEG_CACHE_DIR")}
    if cache is not None:
        env["FASTSEG_CACHE_DIR"] = cache
    if numba_cache is not None:
        env["NUMBA_CACHE_DIR"] = numba_cache
    result = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=900,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return result.stdout


def import_seconds() -> float:
    code = "import time; t = time.perf_counter(); import fastseg; print(time.perf_counter() - t)"
    return min(float(python(code)) for _ in range(3))


def first_calls(operation: str) -> dict[str, Any]:
    """Cold and warm first call of one operation, each in a fresh process."""
    code = FIRST_CALL.replace("OPERATION", OPERATIONS[operation])
    with tempfile.TemporaryDirectory() as cache:
        cold = json.loads(python(code, str(SHARED_DATA), cache=cache))
        # Best of three: on a shared machine one process start can land on a busy moment.
        warm = [json.loads(python(code, str(SHARED_DATA), cache=cache)) for _ in range(3)]
    return {"cold": cold, "warm": min(warm, key=lambda run: run["first"])}


# numba's own start, for scale: a module holding one trivial cached kernel, imported and
# called in a fresh process once its cache is warm. No first call of a fastseg operation
# can take less, whatever fastseg does.
NUMBA_FLOOR_MODULE = """
import numba

@numba.njit(cache=True, nogil=True)
def total(values):
    s = 0
    for v in values:
        s += v
    return s
"""

NUMBA_FLOOR = """
import sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
started = time.perf_counter()
import floor_kernel
floor_kernel.total(np.arange(10))
print(time.perf_counter() - started)
"""


def numba_floor_seconds() -> float:
    """Best of three warm starts of numba alone: ``import numba`` and a cached first call."""
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "floor_kernel.py").write_text(NUMBA_FLOOR_MODULE)
        env_cache = str(Path(folder, "cache"))
        python(NUMBA_FLOOR, folder, numba_cache=env_cache)  # compiles and fills the cache
        return min(float(python(NUMBA_FLOOR, folder, numba_cache=env_cache)) for _ in range(3))


def warmup_times() -> tuple[dict[str, Any], dict[str, Any]]:
    code = """
    import json, fastseg
    r = fastseg.warmup()
    print(json.dumps({"seconds": r.total_seconds, "compiled": r.compiled, "loaded": r.loaded}))
    """
    with tempfile.TemporaryDirectory() as cache:
        cold = json.loads(python(code, cache=cache))
        warm = json.loads(python(code, cache=cache))
    return cold, warm


def demo_times() -> tuple[float, float]:
    """``fastseg demo`` end to end, console script included: empty cache, then warm."""
    script = str(Path(MEASURED_PYTHON).with_name("fastseg"))
    times = []
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
        for _ in range(2):
            started = time.perf_counter()
            command([script, "demo", "--out", out, "--overwrite"], cache=cache)
            times.append(time.perf_counter() - started)
    return times[0], times[1]


def start_up_section(skip_compile: bool) -> list[str]:
    lines = [
        "`import fastseg` (numpy included), best of 3 fresh processes: "
        + format_seconds(import_seconds())
    ]
    if not skip_compile:
        progress("numba's own start")
        lines += [
            "",
            "numba's own start, best of 3 fresh processes with a warm cache (`import numba` "
            "and the first call of a trivial cached kernel; no warm first call can take "
            "less): " + format_seconds(numba_floor_seconds()),
        ]
    lines += [
        "",
        "| operation (torso CT labels, 384x320x89 uint8) | cold first call (compiles) "
        "| specialisations compiled | warm first call (cache) | loaded | second call | goal |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for operation in [] if skip_compile else OPERATIONS:
        progress(f"first calls: {operation}")
        run = first_calls(operation)
        cold, warm = run["cold"], run["warm"]
        verdicts = []
        if "+" not in operation:
            verdicts.append(f"cold <= {COLD_GOAL:g} s: {met(cold['first'] <= COLD_GOAL)}")
        goal = WARM_GOALS.get(operation)
        if goal is not None:
            verdicts.append(f"warm <= {goal} s: {met(warm['first'] <= goal)}")
        verdict = "; ".join(verdicts)
        lines.append(
            f"| {operation} | {format_seconds(cold['first'])} | {cold['counts'][1]} | "
            f"{format_seconds(warm['first'])} | {warm['counts'][0]} | "
            f"{format_seconds(warm['second'])} | "
            f"{verdict} |"
        )
    if not skip_compile:
        progress("warmup()")
        cold, warm = warmup_times()
        progress("fastseg demo")
        demo_cold, demo_warm = demo_times()
        lines += [
            "",
            "| whole job | empty cache | warm cache | goal |",
            "|---|---:|---:|---|",
            f"| `fastseg.warmup()` (every operation group, uint8/uint16/uint32; "
            f"{cold['compiled']} specialisations) | {format_seconds(cold['seconds'])} "
            f"| {format_seconds(warm['seconds'])} "
            f"| cold <= {WARMUP_GOAL:g} s: {met(cold['seconds'] <= WARMUP_GOAL)} |",
            f"| `fastseg demo` (console script, end to end) | {format_seconds(demo_cold)} "
            f"| {format_seconds(demo_warm)} "
            f"| cold <= {DEMO_GOAL:g} s: {met(demo_cold <= DEMO_GOAL)} |",
        ]
    return lines


def scipy_importable() -> bool:
    code = "import importlib.util; print(importlib.util.find_spec('scipy') is not None)"
    return python(code).strip() == "True"


def met(ok: bool) -> str:
    return "met" if ok else "missed"


# -- DataLoader throughput ----------------------------------------------------------------


class TransformedVolumes:
    """A map-style dataset: volume ``i % n`` as a ``(1, X, Y, Z)`` tensor, transformed."""

    def __init__(self, volumes: Sequence[Any], transform: Callable[[Any], Any], size: int):
        self.volumes = volumes
        self.transform = transform
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Any:
        import torch

        labels = torch.from_numpy(self.volumes[index % len(self.volumes)])
        return self.transform(labels).sum()  # a scalar back: no transfer costs compared


def load_volumes() -> list[Any]:
    import nibabel
    import numpy as np

    volumes = []
    for name in LOADER_VOLUMES:
        volume = np.asanyarray(nibabel.load(SHARED_DATA / f"{name}.nii.gz").dataobj)[None]
        # torch sorts no uint16 tensors (MONAI's transforms call torch.unique).
        volumes.append(volume.astype(np.int16) if volume.dtype == np.uint16 else volume)
    return volumes


def epoch_seconds(volumes: Sequence[Any], transform: Callable[[Any], Any], epochs: int) -> float:
    """Seconds per epoch (median) of a 2-worker DataLoader, after an untimed epoch."""
    from torch.utils.data import DataLoader

    dataset = TransformedVolumes(volumes, transform, size=SAMPLES_PER_VOLUME * len(volumes))
    loader = DataLoader(dataset, batch_size=None, num_workers=2, persistent_workers=True)
    for _ in loader:
        pass
    times = []
    for _ in range(epochs):
        started = time.perf_counter()
        for _ in loader:
            pass
        times.append(time.perf_counter() - started)
    del loader
    return statistics.median(times)


def loader_pairs(volumes: Sequence[Any]) -> list[tuple[str, Any, str, Any]]:
    """(fastseg transform name, transform, anchor name, anchor) pairs."""
    import monai.transforms
    import numpy as np
    import torch
    import torchio

    from fastseg.transforms import KeepLargest, Remap

    values = sorted({int(v) for volume in volumes for v in np.unique(volume) if v})
    mapping = {value: (value * 7) % 13 for value in values}
    torchio_remap = torchio.RemapLabels(mapping)

    def torchio_remap_tensor(labels: Any) -> Any:
        return torchio_remap(torchio.LabelMap(tensor=labels)).data

    keep_monai = monai.transforms.KeepLargestConnectedComponent()
    map_monai = monai.transforms.MapLabelValue(
        list(mapping), list(mapping.values()), dtype=torch.uint8
    )
    return [
        ("KeepLargest()", KeepLargest(), "MONAI KeepLargestConnectedComponent()", keep_monai),
        ("Remap(mapping)", Remap(mapping), "TorchIO RemapLabels(mapping)", torchio_remap_tensor),
        ("Remap(mapping)", Remap(mapping), "MONAI MapLabelValue(..., dtype=uint8)", map_monai),
    ]


def same_result(fast: Any, anchor: Any) -> bool:
    """Equal values, whatever the dtypes (MONAI's MapLabelValue returns its own)."""
    import numpy as np

    return bool(
        np.array_equal(np.asarray(fast).astype(np.int64), np.asarray(anchor).astype(np.int64))
    )


def loader_section(epochs: int) -> list[str]:
    import torch

    volumes = load_volumes()
    shapes = ", ".join(
        f"{name} {'x'.join(map(str, v.shape[1:]))} {v.dtype}"
        for name, v in zip(LOADER_VOLUMES, volumes, strict=True)
    )
    lines = [
        f"DataLoader, 2 worker processes (fork), batch_size=None, "
        f"{SAMPLES_PER_VOLUME * len(volumes)} samples per epoch ({shapes}, each "
        f"{SAMPLES_PER_VOLUME} times, as (1, X, Y, Z) tensors); median of {epochs} epochs "
        "after one untimed epoch; fastseg runs with its default of 1 thread per worker. "
        "Before timing, both transforms run on every volume in this process and their "
        "results are compared.",
        "",
        "| fastseg transform | s / epoch | anchor | s / epoch | samples/s fastseg / anchor "
        "| ratio (time) | same result |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    for name, transform, anchor_name, anchor in loader_pairs(volumes):
        progress(f"loader: {name} vs {anchor_name}")
        same = all(same_result(transform(v), anchor(v)) for v in map(torch.from_numpy, volumes))
        fast = epoch_seconds(volumes, transform, epochs)
        slow = epoch_seconds(volumes, anchor, epochs)
        size = SAMPLES_PER_VOLUME * len(volumes)
        lines.append(
            f"| {name} | {fast:.3f} | {anchor_name} | {slow:.3f} | "
            f"{size / fast:.1f} / {size / slow:.1f} | {fast / slow:.2f} | "
            f"{'yes' if same else 'RESULTS DIFFER'} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="timed DataLoader epochs")
    parser.add_argument(
        "--skip-compile", action="store_true", help="no cold/warm first-call measurements"
    )
    parser.add_argument("--skip-loader", action="store_true", help="no DataLoader throughput")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter of the measured processes (default: this one)",
    )
    args = parser.parse_args(argv)
    global MEASURED_PYTHON
    MEASURED_PYTHON = args.python
    if not (SHARED_DATA / "torso_labels.nii.gz").is_file():
        print(f"skipped: the shared data folder {SHARED_DATA} is missing")
        return 0
    import numba

    lines = [
        f"- machine: {cpu_model()}, {os.cpu_count()} cores; numba threads "
        f"{numba.config.NUMBA_NUM_THREADS}",
        f"- versions: Python {sys.version.split()[0]}, numba {numba.__version__}, "
        f"torch {version('torch')}, MONAI {version('monai')}, TorchIO {version('torchio')}, "
        f"fastseg (git {git_revision()})",
        f"- measured processes: {MEASURED_PYTHON} (scipy importable: "
        f"{'yes' if scipy_importable() else 'no'})",
        "",
    ]
    lines += start_up_section(args.skip_compile)
    if not args.skip_loader:
        lines += ["", *loader_section(args.epochs)]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

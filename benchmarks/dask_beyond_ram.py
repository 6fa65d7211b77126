"""Connected components of a volume larger than memory: zarr to zarr on a LocalCluster.

    python benchmarks/dask_beyond_ram.py [--gigabytes 12] [--workers 2]
                                         [--worker-memory 1.2GB] [--folder DIR]

Run by hand (not part of the test suite or of ``report.py``); it needs the connectomics
volume in ``../shared/data`` and about ``--gigabytes`` / 6 of free disk for the
compressed zarr arrays. Steps, printing a markdown summary at the end:

1. builds a uint32 volume of at least ``--gigabytes`` GB by tiling connectomics along
   every axis, the ids of each tile offset so that no two tiles share an id, and writes
   it to a zarr array in 128³ chunks (Blosc lz4) in a temporary folder, removed at the
   end whatever happens. The tile is connectomics in its own memory order: nibabel's
   array is Fortran-ordered, zarr's chunks are C-ordered, so the tile is the transpose
   of nibabel's array (the same bytes in the same order; in the transposed layout,
   C order of nibabel's axes, the volume has 2.4 times as many runs and takes twice as
   long to label, whole or in blocks);
2. times :func:`fastseg.label` on the 512³ tile in memory (26-connected, two threads;
   best of three, before and after the chunked run), the in-memory time per voxel the
   chunked run is compared with (the faster of the two);
3. starts a ``LocalCluster`` of ``--workers`` worker processes with one thread each and
   ``--worker-memory`` each, and labels the zarr volume into another zarr array of the
   same chunks, block by block (``dask.compute(da.store(labels, out, lock=False,
   compute=False), count)``), sampling the resident memory of this process and all its
   children (scheduler, nannies, workers) every 0.1 s, and logging the scheduler's task
   states and the workers' memory every 30 s, and recording the task stream (where the
   workers' time went);
4. checks the result: the count equals the sum of the tiles' counts (components never
   cross tiles, whose ids differ), and the first and last tiles of the output hold the
   same partition as :func:`fastseg.label` of those tiles, with ids numbered by first
   voxel.

Not ``labels.to_zarr(out)`` into an existing zarr array: dask then rechunks the labels
into pieces of its ``array.chunk-size`` (128 MiB, 16 of these blocks) before writing, so
every piece waits in a worker's memory for 16 blocks computed on both workers. That made
the workers spill and pause at their memory limits in the second pass, where the first
12 GB run stalled. ``to_zarr`` to a path creates the array with the dask chunks and
writes block by block.

Goals (issue: dask beyond RAM): peak memory of the process tree <= 3 GB, time per voxel
<= 2.5x that of ``fastseg.label`` in memory.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from paths import SHARED_DATA

CONNECTOMICS = SHARED_DATA / "connectomics.nii.gz"
CHUNK = 128
TILE = 512


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class TreeMemory:
    """The largest resident memory of this process and its children, sampled."""

    def __init__(self, interval: float = 0.1) -> None:
        import psutil

        self._root = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _total(self) -> int:
        import psutil

        total = 0
        for process in [self._root, *self._root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):  # the process ended meanwhile
                total += process.memory_info().rss
        return total

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._total())
            self._stop.wait(self._interval)

    def __enter__(self) -> TreeMemory:
        self.peak = self._total()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._total())


def scheduler_state(dask_scheduler: Any) -> str:
    """Task states and workers' memory, as the scheduler sees them (run on the scheduler)."""
    from collections import Counter

    states = Counter(task.state for task in dask_scheduler.tasks.values())
    workers = [
        f"{worker.status.name} {worker.memory.process / 1e9:.2f} GB "
        f"(managed {worker.memory.managed / 1e9:.2f}, spilled {worker.memory.spilled / 1e9:.2f}), "
        f"{len(worker.processing)} processing"
        for worker in dask_scheduler.workers.values()
    ]
    return f"tasks {dict(states)}; workers: {'; '.join(workers)}"


class Watch:
    """Log the scheduler's task states and the workers' memory every ``interval``
    seconds while the cluster computes: where a run stalls, the log says in which state."""

    def __init__(self, client: Any, interval: float = 30.0) -> None:
        self._client = client
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                progress(self._client.run_on_scheduler(scheduler_state))
            except Exception as error:  # a log line, never a failure
                progress(f"scheduler state unavailable: {error!r}")

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def task_group(key: Any) -> str:
    """A task's kind: its key's name without tokens (a name that is only a token is a
    chain of tasks dask fused into one)."""
    name = key[0] if isinstance(key, tuple) else str(key)
    words = [w for w in name.split("-") if not (len(w) == 32 and set(w) <= set(HEX))]
    return "-".join(words) or "fused"


HEX = "0123456789abcdef"


def task_seconds(stream: list[dict[str, Any]]) -> dict[str, tuple[int, float]]:
    """Seconds the workers spent per kind of task (computing), and moving data
    (``transfer``, ``disk-read``, ``disk-write``: spilling), from a task stream."""
    seconds: dict[str, list[float]] = {}
    for record in stream:
        for part in record["startstops"]:
            kind = task_group(record["key"]) if part["action"] == "compute" else part["action"]
            entry = seconds.setdefault(kind, [0, 0.0])
            entry[0] += part["action"] == "compute"
            entry[1] += part["stop"] - part["start"]
    return {k: (int(n), t) for k, (n, t) in sorted(seconds.items(), key=lambda kv: -kv[1][1])}


def tile_grid(gigabytes: float) -> tuple[int, int, int]:
    """Shape of the tiled volume: whole tiles along the first two axes, the last axis cut
    to a multiple of the chunk size, at least ``gigabytes`` of uint32."""
    voxels = gigabytes * 1e9 / 4
    side = 1
    while (side * TILE) ** 2 * TILE * 2 < voxels:
        side += 1
    depth = int(np.ceil(voxels / (side * TILE) ** 2 / CHUNK)) * CHUNK
    return side * TILE, side * TILE, depth


def codec() -> Any:
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")


def write_tiled(volume: np.ndarray, path: Path, shape: tuple[int, int, int]) -> list[Any]:
    """Write ``volume`` tiled to ``shape`` into a zarr array at ``path``; the slices of
    every tile, in C order of their corners."""
    import zarr

    array = zarr.create_array(
        store=str(path), shape=shape, chunks=(CHUNK,) * 3, dtype=np.uint32, compressors=[codec()]
    )
    step = np.uint32(int(volume.max()) + 1)
    tiles = []
    counts = [int(np.ceil(n / TILE)) for n in shape]
    for k, corner in enumerate(np.ndindex(*counts)):
        where = tuple(
            slice(c * TILE, min((c + 1) * TILE, n)) for c, n in zip(corner, shape, strict=True)
        )
        part = volume[tuple(slice(0, s.stop - s.start) for s in where)]
        offset = np.uint32(k) * step
        array[where] = np.where(part != 0, part + offset, np.uint32(0))
        tiles.append(where)
        if k % 8 == 7:
            progress(f"  {k + 1} of {len(list(np.ndindex(*counts)))} tiles written")
    return tiles


def tile() -> np.ndarray:
    """Connectomics in its memory order as a C-ordered uint32 array (the transpose of
    nibabel's Fortran-ordered array; no copy)."""
    import nibabel

    volume = np.asanyarray(nibabel.load(CONNECTOMICS).dataobj).astype(np.uint32)
    return volume.T


def time_in_memory(volume: np.ndarray) -> float:
    """Best of three :func:`fastseg.label` calls on ``volume`` (two threads), seconds."""
    import fastseg

    fastseg.label(volume)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        fastseg.label(volume, threads=2)
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=12.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-memory", default="1.2GB")
    parser.add_argument("--folder", default=None, help="where the temporary zarr arrays go")
    args = parser.parse_args()

    import dask
    import dask.array as da
    import zarr
    from distributed import Client, LocalCluster, get_task_stream

    import fastseg
    import fastseg.dask

    loads = [os.getloadavg()]
    volume = tile()
    shape = tile_grid(args.gigabytes)
    folder = Path(tempfile.mkdtemp(prefix="fastseg-beyond-ram-", dir=args.folder))
    try:
        progress(f"writing {shape} uint32 ({np.prod(shape) * 4 / 1e9:.1f} GB) to {folder}")
        started = time.perf_counter()
        tiles = write_tiled(volume, folder / "labels.zarr", shape)
        written = time.perf_counter() - started
        stored = sum(f.stat().st_size for f in (folder / "labels.zarr").rglob("*") if f.is_file())

        progress("fastseg.label on the 512³ tile in memory")
        in_memory = [time_in_memory(volume)]
        size = volume.size
        del volume  # the process tree's memory is measured next

        progress(f"labelling on a LocalCluster: {args.workers} x {args.worker_memory}")
        with (
            LocalCluster(
                n_workers=args.workers,
                threads_per_worker=1,
                memory_limit=args.worker_memory,
                processes=True,
                dashboard_address=":0",
            ) as cluster,
            Client(cluster) as client,
        ):
            # Compile the kernels in every worker first (numba's cache makes it quick).
            warm = da.zeros((CHUNK * 2,) * 3, dtype=np.uint32, chunks=CHUNK)
            dask.compute(fastseg.dask.label(warm).count)
            source = da.from_zarr(str(folder / "labels.zarr"))
            out = zarr.create_array(
                store=str(folder / "components.zarr"),
                shape=shape,
                chunks=(CHUNK,) * 3,
                dtype=np.uint32,
                compressors=[codec()],
            )
            loads.append(os.getloadavg())
            with TreeMemory() as memory, Watch(client), get_task_stream(client) as stream:
                started = time.perf_counter()
                result = fastseg.dask.label(source)
                stored_labels = da.store(result.labels, out, lock=False, compute=False)
                _, count = dask.compute(stored_labels, result.count)
                chunked = time.perf_counter() - started
            loads.append(os.getloadavg())
            workers = len(client.scheduler_info()["workers"])
            busy = task_seconds(stream.data)

        progress("checking")
        volume = tile()
        in_memory.append(time_in_memory(volume))
        tile_counts = {}
        for where in tiles:
            extent = tuple(s.stop - s.start for s in where)
            if extent not in tile_counts:
                tile_counts[extent] = fastseg.label(volume[tuple(slice(0, n) for n in extent)])
        expected_count = sum(tile_counts[tuple(s.stop - s.start for s in w)].count for w in tiles)
        checks = [f"count {count} (sum over tiles {expected_count})"]
        ok = count == expected_count
        for where in (tiles[0], tiles[-1]):
            part = np.asarray(zarr.open_array(str(folder / "components.zarr"), mode="r")[where])
            reference = tile_counts[tuple(s.stop - s.start for s in where)].labels
            # Components are numbered by their first voxel in C order, which a translation
            # keeps: the tile's ids renumbered in ascending order are the tile's own labels.
            renumbered, _ = fastseg.renumber(part)
            same = bool(np.array_equal(renumbered, reference))
            ok &= same
            checks.append(f"tile {where[0].start},{where[1].start},{where[2].start}: {same}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    voxels = int(np.prod(shape))
    per_voxel_memory = min(in_memory) / size
    ratio = chunked / voxels / per_voxel_memory
    print(f"## fastseg.dask.label beyond memory ({time.strftime('%Y-%m-%d %H:%M')})\n")
    print(f"- volume: {shape} uint32, {voxels * 4 / 1e9:.1f} GB ({voxels / 1e9:.2f} G voxels),")
    print(f"  {len(tiles)} tiles of connectomics; zarr in {CHUNK}³ chunks, Blosc lz4:")
    print(f"  {stored / 1e9:.2f} GB on disk, written in {written:.0f} s")
    print(f"- cluster: {workers} worker processes x 1 thread, memory limit {args.worker_memory}")
    print(
        f"- fastseg.label in memory, 512³, 2 threads: {in_memory[0]:.3f} s before, "
        f"{in_memory[1]:.3f} s after ({per_voxel_memory * 1e9:.2f} ns per voxel, the faster)"
    )
    print(
        f"- fastseg.dask.label zarr to zarr: {chunked:.1f} s ({chunked / voxels * 1e9:.2f} ns "
        f"per voxel): {ratio:.2f}x per voxel (goal <= 2.5)"
    )
    print(f"- peak memory of the process tree: {memory.peak / 1e9:.2f} GB (goal <= 3)")
    total = sum(t for _, t in busy.values())
    print(f"- the workers' time ({total:.0f} s in all; tasks, seconds):")
    for kind, (n, t) in busy.items():
        if t >= 0.01 * total:
            print(f"  - {kind}: {f'{n} tasks, ' if n else ''}{t:.1f} s")
    print(f"- components: {count}; checks {'passed' if ok else 'FAILED'}: {'; '.join(checks)}")
    print(
        "- load average (1, 5, 15 min): "
        + "; ".join(
            f"{when} {a:.1f}, {b:.1f}, {c:.1f}"
            for when, (a, b, c) in zip(("start", "labelling", "end"), loads, strict=True)
        )
    )


if __name__ == "__main__":
    main()

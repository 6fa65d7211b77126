"""Report rows for connected components on dask: the connectomics volume in 128³ blocks.

The anchor is dask-image's ``ndmeasure.label``, which labels binary images only, so it
gets the binary version of the volume (``volume != 0``) with full (26-) connectivity;
fastseg.dask labels both the binary and the multilabel volume. Both compute on dask's
threaded scheduler with two workers (as many as the machine's cores): the report
measures peak memory per process, which with threads covers every task. The dask arrays
hold the volume in Fortran-ordered blocks, the layout of the in-memory volume and of
``fastseg.dask.from_nifti``'s blocks (:func:`fortran_blocks`).

dask-image's time grows much faster than its number of blocks with the dask release
installed here (its block labels are computed again for every face that uses them: 288
``scipy.ndimage.label`` calls for the 8 blocks of a 256³ crop): one call on the whole
512³ volume (64 blocks) took 511 s. The rows against dask-image therefore use the
256³ corner of the volume in 128³ blocks (2 x 2 x 2); a third row labels the whole
volume in 128³ blocks and times it against ``fastseg.label`` on the whole in-memory
volume, the cost of going through dask (goal: 2x). ``benchmarks/dask_beyond_ram.py``
(run by hand) labels a volume larger than memory, zarr to zarr, on a cluster.

The rows join the table of ``report.py`` through its ``ROW_MODULES``.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from checks import same_partition
from harness import Row, Verdict, anchor_module
from inputs import Volumes

import fastseg

CHUNKS = 128
CROP = 256
WORKERS = 2
FULL = np.ones((3, 3, 3), bool)


def _threads(*collections: Any) -> tuple[Any, ...]:
    """Compute on the threaded scheduler with :data:`WORKERS` threads."""
    result: tuple[Any, ...] = anchor_module("dask").compute(
        *collections, scheduler="threads", num_workers=WORKERS
    )
    return result


def fortran_blocks(volume: np.ndarray, chunks: int) -> Any:
    """``volume`` as a dask array whose blocks are Fortran-ordered arrays held in memory,
    as :func:`fastseg.dask.from_nifti` reads them from a file. ``da.from_array`` would
    copy the volume into C order first (dask copies numpy inputs) and hand out views of
    that copy: a layout in which connectomics has 2.4 times as many runs along rows as in
    its own order, and takes twice as long to label, whole or in blocks."""
    dask_array = anchor_module("dask.array")
    token = anchor_module("dask.base").tokenize(volume, chunks)
    name = f"fortran-blocks-{token}"
    starts = [range(0, n, chunks) for n in volume.shape]
    graph = {
        (name, *(c // chunks for c in corner)): np.asfortranarray(
            volume[tuple(slice(c, c + chunks) for c in corner)]
        )
        for corner in itertools.product(*starts)
    }
    sizes = tuple(tuple(min(chunks, n - c) for c in range(0, n, chunks)) for n in volume.shape)
    return dask_array.Array(graph, name, chunks=sizes, dtype=volume.dtype)


def _crop(v: Volumes) -> Any:
    """The 256³ corner of connectomics (F order, as nibabel gives the volume) as a dask
    array in 128³ Fortran-ordered blocks, built once."""
    return v.derived(
        "connectomics 256 crop, dask",
        lambda: fortran_blocks(v["connectomics"][:CROP, :CROP, :CROP], CHUNKS),
    )


def _whole(v: Volumes) -> Any:
    """The whole connectomics volume as a dask array in 128³ Fortran-ordered blocks,
    built once."""
    return v.derived("connectomics, dask", lambda: fortran_blocks(v["connectomics"], CHUNKS))


def fastseg_dask_label(darr: Any, binary: bool) -> fastseg.Components:
    """fastseg.dask.label (26-connected) of ``darr`` (or ``darr != 0``), into memory with
    ``DaskComponents.compute``, which paints the blocks straight into one array (where
    ``dask.compute(*result)`` paints them into blocks of their own, then assembles them)."""
    result = anchor_module("fastseg.dask").label(darr != 0 if binary else darr)
    computed: fastseg.Components = result.compute(scheduler="threads", num_workers=WORKERS)
    return computed


def dask_image_label(darr: Any) -> tuple[np.ndarray, int]:
    """dask-image's ndmeasure.label of ``darr != 0``, 26-connected."""
    ndmeasure = anchor_module("dask_image.ndmeasure")
    labels, count = ndmeasure.label(darr != 0, structure=FULL)
    computed, n = _threads(labels, count)
    return computed, int(n)


def same_partition_as_dask_image(
    fast: fastseg.Components, anchor: tuple[np.ndarray, int]
) -> Verdict:
    # dask-image's labels are int32, which checks.same_partition cannot mix with uint64.
    return same_partition(fast, anchor[0].astype(np.uint32))


def same_as_whole(expected: fastseg.Components, fast: fastseg.Components, what: str) -> Verdict:
    """The chunked labeling equals fastseg.label on the whole volume, ids included."""
    if fast.count != expected.count or not np.array_equal(fast.labels, expected.labels):
        partition = same_partition(fast, expected.labels)
        return Verdict(False, f"differs from fastseg.label on {what}: {partition.detail}")
    if not np.array_equal(fast.values, expected.values):
        return Verdict(False, f"component values differ from fastseg.label on {what}")
    return Verdict(
        True, f"{fast.count} components, ids and values equal to fastseg.label on {what}"
    )


def rows(v: Volumes) -> list[Row]:
    def whole_crop() -> fastseg.Components:
        crop = v["connectomics"][:CROP, :CROP, :CROP]
        return v.derived("connectomics 256 crop labelled", lambda: fastseg.label(crop))

    return [
        Row(
            f"dask label, binary, 26-connected: connectomics {CROP}³ crop in {CHUNKS}³ blocks",
            lambda: fastseg_dask_label(_crop(v), binary=True),
            "dask-image ndmeasure.label",
            lambda: dask_image_label(_crop(v)),
            target=0.2,
            check=same_partition_as_dask_image,
        ),
        Row(
            f"dask label, multilabel, 26-connected: connectomics {CROP}³ crop in {CHUNKS}³ blocks",
            lambda: fastseg_dask_label(_crop(v), binary=False),
            "dask-image ndmeasure.label (binary)",
            lambda: dask_image_label(_crop(v)),
            target=0.2,
            check=lambda fast, _: same_as_whole(whole_crop(), fast, "the crop"),
        ),
        Row(
            f"dask label, multilabel, 26-connected: connectomics 512³ in {CHUNKS}³ blocks",
            lambda: fastseg_dask_label(_whole(v), binary=False),
            "fastseg.label, whole volume in memory",
            lambda: fastseg.label(v["connectomics"]),
            target=2.0,
            check=lambda fast, whole: same_as_whole(whole, fast, "the whole volume"),
        ),
    ]

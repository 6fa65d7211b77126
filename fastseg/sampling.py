"""Voxel locations per class and per instance, for class-balanced patch sampling.

Thin wrapper over :mod:`fastseg._kernels.sampling`: counts each id's voxels per row
block (one pass over runs), decides how many locations each id gets, then draws them in
one pass with bottom-k sampling, whose sample does not depend on memory order or thread
count, keeping the candidate keys in the rows of the result.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from fastseg import _geometry
from fastseg._arrays import LabelArray, as_label_array
from fastseg._jit import chunks_for, thread_limit
from fastseg._tensors import accepts_tensors
from fastseg.components import Connectivity
from fastseg.relabel import dense_ids

__all__ = ["NNUNET_FRACTION", "NNUNET_PER_CLASS", "Locations", "locations", "sample_sizes"]

# nnU-Net v2's preprocessor (DefaultPreprocessor._sample_foreground_locations) keeps
# max(min(10000, n), ceil(0.01 * n)) locations of a class with n voxels.
NNUNET_PER_CLASS = 10_000
NNUNET_FRACTION = 0.01


@dataclass(frozen=True)
class Locations(Mapping[int, npt.NDArray[np.integer]]):
    """Sampled voxel coordinates per id: a mapping ``id -> (n, ndim)`` array.

    Each array holds a uniform sample without replacement of the id's voxels (all of
    them when the id has fewer), in random order: its first ``m`` rows are themselves a
    uniform sample of ``m`` voxels. Coordinates are int32 (int64 for axes beyond 2^31),
    signed so that arithmetic such as ``centre - half_size`` never wraps around. The
    arrays of one call are rows of one buffer, each id's rows its own.

    Examples
    --------
    >>> import numpy as np
    >>> import fastseg
    >>> labels = np.array([[0, 1, 1], [2, 1, 0]], dtype=np.uint8)
    >>> found = fastseg.locations(labels, per_class=2, seed=0)
    >>> sorted(found), found.counts, found[1].shape, found[2].tolist()
    ([1, 2], {1: 3, 2: 1}, (2, 2), [[1, 0]])
    """

    classes: dict[int, npt.NDArray[np.integer]]
    """Locations per class id (every id sampled, ascending)."""
    counts: dict[int, int]
    """Voxel count of every id sampled."""
    shape: tuple[int, ...]
    """Shape of the label map."""
    seed: int
    """The seed the sample was drawn with (drawn at random when none was given)."""
    instances: dict[int, npt.NDArray[np.integer]] | None = None
    """Locations per instance (components, or the given instance map), with ``per_instance``."""
    instance_counts: dict[int, int] | None = None
    """Voxel count of every instance."""
    instance_classes: dict[int, int] | None = None
    """The class of every instance."""

    def __getitem__(self, key: int) -> npt.NDArray[np.integer]:
        return self.classes[key]

    def __iter__(self) -> Iterator[int]:
        return iter(self.classes)

    def __len__(self) -> int:
        return len(self.classes)


def sample_sizes(
    counts: npt.ArrayLike, per_class: int | None = NNUNET_PER_CLASS, fraction: float | None = None
) -> npt.NDArray[np.int64]:
    """How many locations ids with ``counts`` voxels get.

    ``min(count, per_class)``; with ``fraction``, at least ``ceil(fraction * count)``
    (nnU-Net's rule with ``per_class=10000, fraction=0.01``); without either, every voxel.

    Examples
    --------
    >>> from fastseg.sampling import sample_sizes
    >>> sample_sizes([5, 50_000, 3_000_000], 10_000, 0.01).tolist()
    [5, 10000, 30000]
    """
    n = np.asarray(counts, dtype=np.int64)
    base = n.copy() if per_class is None else np.minimum(n, per_class)
    if fraction is None:
        return base if per_class is not None else n.copy()
    # Written as nnU-Net writes it, so that float rounding agrees with it exactly.
    at_least = np.array([int(np.ceil(int(c) * fraction)) for c in n.tolist()], np.int64)
    if per_class is None:
        return np.minimum(n, at_least)
    return np.minimum(n, np.maximum(base, at_least))


def _check_count(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int or None, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return int(value)


def _check_fraction(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise TypeError(f"fraction must be a number or None, got {value!r}")
    if not 0 < float(value) <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {value}")
    return float(value)


def _seed_key(seed: object) -> tuple[int, np.uint64]:
    """The seed (a fresh one when None) and the 64-bit key it mixes into voxel keys."""
    if seed is None:
        entropy = np.random.SeedSequence().entropy
        assert isinstance(entropy, int)
        seed = entropy
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be a non-negative int or None, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    state = np.random.SeedSequence(int(seed)).generate_state(1, np.uint64)
    return int(seed), np.uint64(state[0])


def _requested(ids: Iterable[int] | None) -> set[int] | None:
    if ids is None:
        return None
    if isinstance(ids, str | bytes):
        raise TypeError(f"ids must be an iterable of integers, got {ids!r}")
    values = list(np.asarray(ids).ravel()) if isinstance(ids, np.ndarray) else list(ids)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"ids must be integers, got {value!r}")
        if value < 0:
            raise ValueError(f"ids must be non-negative, got {value}")
    return {int(v) for v in values}


def _strides(source: LabelArray, transposed: bool) -> npt.NDArray[np.int64]:
    """Per axis of the 3-D view, the step of the caller's C-order index."""
    shape = source.shape
    ndim = len(shape)
    caller = [int(np.prod(shape[d + 1 :], dtype=np.int64)) for d in range(ndim)]
    strides = np.zeros(3, np.int64)
    for view_axis in range(3):
        axis = source.caller_axis(view_axis, transposed)
        if 0 <= axis < ndim and view_axis >= 3 - ndim:
            strides[view_axis] = caller[axis]
    return strides


def _coordinate_dtype(shape: tuple[int, ...]) -> np.dtype[Any]:
    return np.dtype(np.int32 if max(shape, default=0) < 2**31 else np.int64)


_ALL_ONES = (1 << 64) - 1
# Standard deviations of margin in the key limits and the blocks' room for keys: a
# shortfall or an overflow has a chance of about 1e-15 (the id is then drawn again with
# over four times the margin).
_MARGIN = 8.0


def _plan(
    counts: npt.NDArray[np.int64],
    block_counts: npt.NDArray[np.int64],
    sizes: npt.NDArray[np.int64],
    margin: float,
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """Per id, the largest key kept (a limit at or below which at least ``size`` of its
    ``count`` keys lie but for a chance of about 1e-15: keys are uniform over 64 bits,
    so about ``n * limit / 2**64`` lie below it), and per row block and id the room for
    the keys the block may find (its share of them, with a margin)."""
    limits = np.full(sizes.size, np.uint64(_ALL_ONES), np.uint64)
    caps = block_counts.copy()
    share = np.zeros(sizes.size, np.float64)
    for s, (n, k) in enumerate(zip(counts.tolist(), sizes.tolist(), strict=True)):
        expected = k + math.ceil(margin * math.sqrt(k) + margin)
        if expected < n:
            limits[s] = np.uint64(min(_ALL_ONES, (expected << 64) // n))
            share[s] = expected / n
    limited = share > 0
    if limited.any():
        blocks = block_counts[:, limited]
        mean = blocks * share[limited]
        room = np.ceil(mean + margin * np.sqrt(mean) + margin).astype(np.int64)
        caps[:, limited] = np.minimum(blocks, room)
    return limits, caps


def _sample(
    source: LabelArray,
    wanted: npt.NDArray[np.int64],
    counts: npt.NDArray[np.int64],
    block_counts: npt.NDArray[np.int64],
    sizes: npt.NDArray[np.int64],
    seed_key: np.uint64,
    high: int,
) -> list[npt.NDArray[np.integer]]:
    """Locations of each dense id in ``wanted`` (with ``counts`` voxels, ``block_counts``
    per row block, below ``high`` + 1), ``sizes`` of them per id.

    Every id's coordinates are rows of one buffer; its keys are collected in its own rows
    when they fit (a 3-D sample of int32 coordinates has room for 1.5 keys per location),
    else in a buffer beside it."""
    dtype = _coordinate_dtype(source.shape)
    ndim = len(source.shape)
    if wanted.size == 0:
        return []
    from fastseg._kernels import sampling as sampling_kernels

    view, transposed = source.view_3d()
    strides = _strides(source, transposed)
    blocks = _blocks(view, source.size)
    # Each id's rows start on an 8-byte boundary, so that its keys can be kept there.
    region = -(-(sizes * (ndim * dtype.itemsize)) // 8)
    region_starts = np.zeros(wanted.size + 1, np.int64)
    np.cumsum(region, out=region_starts[1:])
    store = np.empty(int(region_starts[-1]), np.uint64)
    out = store.view(dtype)
    per_word = 8 // dtype.itemsize
    shape = np.array(source.shape, np.int64)
    slots = np.full(high + 1, -1, np.int64)
    pending = np.arange(wanted.size)
    margin = _MARGIN
    while pending.size:
        slots[:] = -1
        slots[wanted[pending]] = np.arange(pending.size)
        limits, caps = _plan(counts[pending], block_counts[:, pending], sizes[pending], margin)
        needed = caps.sum(axis=0)
        in_side = needed > region[pending]
        side_starts = np.zeros(pending.size, np.int64)
        np.cumsum(np.where(in_side, needed, 0)[:-1], out=side_starts[1:])
        side = np.empty(int(needed[in_side].sum()), np.uint64)
        starts = np.cumsum(caps, axis=0) - caps
        starts += np.where(in_side, side_starts, region_starts[pending])
        fills = sampling_kernels.collect(
            view, slots, limits, strides, seed_key, store, side, in_side, starts, caps, blocks
        )
        done = sampling_kernels.finish(
            store, side, in_side, starts, caps, fills, sizes[pending], out,
            region_starts[pending] * per_word, shape, seed_key,
        )  # fmt: skip
        del side
        pending = pending[~done]
        margin = 4 * margin + 1
    return [
        out[start : start + ndim * k].reshape(k, ndim)
        for start, k in zip((region_starts[:-1] * per_word).tolist(), sizes.tolist(), strict=True)
    ]


def _blocks(view: np.ndarray, size: int) -> int:
    return max(1, min(chunks_for(size), int(view.shape[0] * view.shape[1])))


def _present(
    source: LabelArray,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], int]:
    """Dense ids present (background included), their voxel counts, their counts per row
    block of :func:`_sample`, the largest id."""
    if source.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((1, 0), np.int64), 0
    from fastseg._kernels import sampling as sampling_kernels

    if source.flat.itemsize <= 2:
        # A table of every possible value is small: no pass to find the largest.
        high = (1 << (8 * source.flat.itemsize)) - 1
    else:
        high = source.value_range()[1]
    view, _ = source.view_3d()
    tables = sampling_kernels.count_ids(view, high + 1, _blocks(view, source.size))
    counts = tables.sum(axis=0)
    present = np.flatnonzero(counts)
    return present, counts[present], tables[:, present], high


@accepts_tensors
def locations(
    labels: npt.NDArray[Any] | Any,
    *,
    per_class: int | None = NNUNET_PER_CLASS,
    fraction: float | None = None,
    per_instance: int | None = None,
    ids: Iterable[int] | None = None,
    instances: npt.NDArray[Any] | Any | None = None,
    connectivity: Connectivity | None = None,
    seed: int | None = None,
    mode: Literal["nnunet"] | None = None,
    threads: int | None = None,
) -> Locations:
    """Sample voxel coordinates of every class (and instance) of a label map.

    Each id gets a uniform sample without replacement of its voxels, all of them when
    it has fewer than asked for. Every voxel gets a pseudo-random key from the seed and
    its position; an id's sample is the set of its voxels with the smallest keys, found
    in one pass after a pass that counts the ids' voxels: from the counts each id gets a
    key limit a little more than its sample lies below, and the keys under it are kept
    in the memory of the result. The sample is the same for a given seed whatever the
    memory order of ``labels`` and the number of threads, and memory follows the sample
    size, never the voxel count.

    Parameters
    ----------
    labels : numpy.ndarray, torch tensor or nibabel image
        1-D to 3-D map of class ids (0 for background).
    per_class : int or None, optional
        Locations per class (default 10000, nnU-Net's); ``None``: no cap.
    fraction : float, optional
        At least this fraction of each class's voxels (rounded up), even beyond
        ``per_class``; with ``per_class=None`` exactly that fraction.
    per_instance : int, optional
        Also sample up to this many locations of every instance: the connected
        components of each class, or the ids of ``instances``. Small lesions are then
        found as often as large ones.
    ids : iterable of int, optional
        Sample these class ids (0 included if listed; absent ones get empty arrays).
        Default: every non-zero id present.
    instances : numpy.ndarray, optional
        An instance map of the same shape (each instance within one class); its ids are
        the instances instead of the components of ``labels``.
    connectivity : int, optional
        Connectivity of the components (see :func:`fastseg.label`); default full.
    seed : int, optional
        Seed of the sample; ``None`` draws a fresh one (recorded in the result).
    mode : {"nnunet"}, optional
        ``"nnunet"``: nnU-Net v2's sample sizes, ``max(min(10000, n), ceil(0.01 n))``
        locations of a class of ``n`` voxels (``per_class`` and ``fraction`` fixed).
    threads : int, optional
        Threads to use; the sample is the same for any count.

    Returns
    -------
    Locations
        A mapping class id -> ``(n, ndim)`` coordinates, with the voxel counts and, with
        ``per_instance``, the instances' locations, counts and classes.

    Raises
    ------
    TypeError
        For a non-integer map or malformed arguments.
    ValueError
        For negative labels or ids, counts below 1, a fraction outside (0, 1],
        ``mode="nnunet"`` combined with other sizes, or an instance map of another
        shape or one whose instances cross classes.

    Examples
    --------
    >>> import numpy as np
    >>> import fastseg
    >>> labels = np.zeros((4, 5, 6), np.uint8)
    >>> labels[:2, :2, :2] = 1
    >>> labels[2:, 2:, 2:] = 2
    >>> labels[3, 0, 5] = 1
    >>> found = fastseg.locations(labels, per_class=4, per_instance=1, seed=7)
    >>> found.counts, {k: v.shape for k, v in found.items()}
    ({1: 9, 2: 24}, {1: (4, 3), 2: (4, 3)})
    >>> bool((labels[tuple(found[2].T)] == 2).all())
    True
    >>> found.instance_classes, found.instance_counts
    ({1: 1, 2: 2, 3: 1}, {1: 8, 2: 24, 3: 1})
    """
    per_class = _check_count(per_class, "per_class")
    per_instance = _check_count(per_instance, "per_instance")
    fraction = _check_fraction(fraction)
    if mode is not None:
        if mode != "nnunet":
            raise ValueError(f"mode must be 'nnunet' or None, got {mode!r}")
        if fraction is not None or per_class != NNUNET_PER_CLASS:
            raise ValueError(
                "mode='nnunet' takes nnU-Net's sizes (per_class=10000, fraction=0.01); "
                "leave per_class and fraction at their defaults"
            )
        fraction = NNUNET_FRACTION
    array, _ = _geometry.unpack_image(labels, "labels")
    source = as_label_array(array, ndims=(1, 2, 3))
    requested = _requested(ids)
    seed_value, seed_key = _seed_key(seed)

    with thread_limit(threads):
        dense, old_ids = (source, None) if source.flat.itemsize <= 2 else dense_ids(source)
        present, counts, block_counts, high = _present(dense)
        original = present if old_ids is None else old_ids[present]
        count_of = dict(zip(original.tolist(), counts.tolist(), strict=True))
        if requested is None:
            chosen = [i for i in original.tolist() if i != 0]
        else:
            chosen = sorted(requested)
        dense_of = dict(zip(original.tolist(), present.tolist(), strict=True))
        sampled = [i for i in chosen if i in dense_of]
        sampled_counts = np.array([count_of[i] for i in sampled], np.int64)
        sizes = sample_sizes(sampled_counts, per_class, fraction)
        wanted = np.array([dense_of[i] for i in sampled], np.int64)
        rows = np.searchsorted(present, wanted)
        arrays = _sample(
            dense, wanted, sampled_counts, block_counts[:, rows], sizes, seed_key, high
        )
        empty = np.zeros((0, len(source.shape)), _coordinate_dtype(source.shape))
        by_id = dict(zip(sampled, arrays, strict=True))
        classes = {i: by_id.get(i, empty) for i in chosen}
        result = Locations(
            classes=classes,
            counts={i: int(count_of.get(i, 0)) for i in chosen},
            shape=tuple(source.shape),
            seed=seed_value,
        )
        if per_instance is None:
            if instances is not None:
                raise ValueError("instances is only used with per_instance")
            return result
        return _with_instances(
            result, source, instances, connectivity, per_instance, set(chosen), seed_key
        )


def _with_instances(
    result: Locations,
    source: LabelArray,
    instances: object,
    connectivity: Connectivity | None,
    per_instance: int,
    classes: set[int],
    seed_key: np.uint64,
) -> Locations:
    """``result`` with the locations of the instances of ``classes`` added."""
    import fastseg

    if instances is None:
        components = fastseg.label(source.original, connectivity=connectivity)
        instance_map = as_label_array(components.labels, name="instances")
        class_of = components.values.astype(np.uint64)
        old_ids = None
    else:
        array, _ = _geometry.unpack_image(instances, "instances")
        given = as_label_array(array, name="instances", ndims=(1, 2, 3))
        if given.shape != source.shape:
            raise ValueError(
                f"instances and labels must have the same shape, got {given.shape} and "
                f"{source.shape}"
            )
        instance_map, old_ids = dense_ids(given)
        class_of = fastseg.component_values(instance_map.original, source.original).astype(
            np.uint64
        )
    present, counts, block_counts, high = _present(instance_map)
    keep = (present != 0) & np.isin(class_of[present], list(classes))
    present, counts, block_counts = present[keep], counts[keep], block_counts[:, keep]
    sizes = np.minimum(counts, per_instance)
    arrays = _sample(instance_map, present, counts, block_counts, sizes, seed_key, high)
    names = present if old_ids is None else old_ids[present]
    return Locations(
        classes=result.classes,
        counts=result.counts,
        shape=result.shape,
        seed=result.seed,
        instances=dict(zip(names.tolist(), arrays, strict=True)),
        instance_counts=dict(zip(names.tolist(), counts.tolist(), strict=True)),
        instance_classes={
            int(n): int(class_of[int(p)])
            for n, p in zip(names.tolist(), present.tolist(), strict=True)
        },
    )

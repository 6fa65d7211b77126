"""Voxel locations per class and per instance, for class-balanced patch sampling.

Thin wrapper over :mod:`fastseg._kernels.sampling`: counts each id's voxels (one pass
over runs), decides how many locations each id gets, then draws them in one pass with
bottom-k sampling, whose sample does not depend on memory order or thread count.
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
    uniform sample of ``m`` voxels. Coordinates are int32 (int64 for axes beyond 2^31).

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


def _initial_limits(counts: npt.NDArray[np.int64], sizes: npt.NDArray[np.int64]) -> np.ndarray:
    """Per id, a key limit below which at least ``size`` of its ``count`` keys lie but
    for a chance of about 1e-15: keys are uniform over 64 bits, so about ``n * limit /
    2**64`` lie below it. Keys above it are skipped without touching the heap."""
    limits = np.full(sizes.size, np.uint64(_ALL_ONES), np.uint64)
    for s, (n, k) in enumerate(zip(counts.tolist(), sizes.tolist(), strict=True)):
        expected = k + math.ceil(8 * math.sqrt(k)) + 8
        if expected < n:
            limits[s] = np.uint64(min(_ALL_ONES, (expected << 64) // n))
    return limits


def _sample(
    source: LabelArray,
    wanted: npt.NDArray[np.int64],
    counts: npt.NDArray[np.int64],
    sizes: npt.NDArray[np.int64],
    seed_key: np.uint64,
    high: int,
) -> list[npt.NDArray[np.integer]]:
    """Locations of each dense id in ``wanted`` (with ``counts`` voxels, below ``high``
    + 1), ``sizes`` of them per id."""
    dtype = _coordinate_dtype(source.shape)
    ndim = len(source.shape)
    if wanted.size == 0:
        return []
    from fastseg._kernels import sampling as sampling_kernels

    offsets = np.zeros(wanted.size + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    view, transposed = source.view_3d()
    strides = _strides(source, transposed)
    blocks = _blocks(view, source.size)
    slots = np.full(high + 1, -1, np.int64)
    slots[wanted] = np.arange(wanted.size)
    limits = _initial_limits(counts, sizes)
    keys, found = sampling_kernels.bottom_k(
        view, slots, offsets, sizes, limits, strides, seed_key, blocks
    )
    short = np.flatnonzero(found < sizes)
    if short.size:
        # Fewer keys than asked for lay below a limit (or the id has fewer voxels):
        # those ids again, without limits.
        slots[:] = -1
        slots[wanted[short]] = np.arange(short.size)
        again = np.zeros(short.size + 1, np.int64)
        np.cumsum(sizes[short], out=again[1:])
        unlimited = np.full(short.size, np.uint64(_ALL_ONES), np.uint64)
        more, more_found = sampling_kernels.bottom_k(
            view, slots, again, sizes[short], unlimited, strides, seed_key, blocks
        )
        for j, s in enumerate(short.tolist()):
            n = more_found[j]
            keys[offsets[s] : offsets[s] + n] = more[again[j] : again[j] + n]
            found[s] = n
    shape = np.array(source.shape, np.int64)
    result = []
    for s in range(wanted.size):
        chosen = keys[offsets[s] : offsets[s] + found[s]]
        coordinates = np.empty((chosen.size, ndim), dtype)
        sampling_kernels.keys_to_coordinates(chosen, seed_key, shape, coordinates)
        result.append(coordinates)
    return result


def _blocks(view: np.ndarray, size: int) -> int:
    return max(1, min(chunks_for(size), int(view.shape[0] * view.shape[1])))


def _present(source: LabelArray) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], int]:
    """Dense ids present (background included), their voxel counts, the largest id."""
    if source.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 0
    from fastseg._kernels import sampling as sampling_kernels

    if source.flat.itemsize <= 2:
        # A table of every possible value is small: no pass to find the largest.
        high = (1 << (8 * source.flat.itemsize)) - 1
    else:
        high = source.value_range()[1]
    view, _ = source.view_3d()
    counts = sampling_kernels.count_ids(view, high + 1, _blocks(view, source.size))
    present = np.flatnonzero(counts)
    return present, counts[present], high


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
    in one pass that keeps one small heap per id. The sample is the same for a given
    seed whatever the memory order of ``labels`` and the number of threads, and memory
    follows the sample size, never the voxel count.

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
        present, counts, high = _present(dense)
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
        arrays = _sample(dense, wanted, sampled_counts, sizes, seed_key, high)
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
    present, counts, high = _present(instance_map)
    keep = (present != 0) & np.isin(class_of[present], list(classes))
    present, counts = present[keep], counts[keep]
    sizes = np.minimum(counts, per_instance)
    arrays = _sample(instance_map, present, counts, sizes, seed_key, high)
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

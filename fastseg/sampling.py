"""Voxel locations per class and per instance, for class-balanced patch sampling.

Thin wrapper over :mod:`fastseg._kernels.sampling`: one pass over the label map counts
each id's voxels and keeps candidate keys per id (bottom-k sampling, whose sample does
not depend on memory order or thread count); the sample sizes follow from the counts and
the candidates are trimmed to them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
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


# Blocks beyond the first keep at least the cap of candidates an id gets in one block,
# over the blocks, times this, plus 8 standard deviations and a little (rows are dealt to
# blocks in turn, so an id's voxels spread evenly over them).
_SHARE_MARGIN = 1.2
_NO_CAP = 1 << 62


def _block_cap(per_class: int | None, blocks: int) -> int:
    """How many of an id's smallest keys each block keeps at least."""
    if per_class is None:
        return _NO_CAP
    if blocks == 1:
        return per_class
    share = per_class / blocks
    return min(per_class, math.ceil(_SHARE_MARGIN * share + 8 * math.sqrt(share)) + 64)


def _sample(
    source: LabelArray,
    wanted: npt.NDArray[np.bool_],
    sizes_of: Callable[[npt.NDArray[np.int64]], npt.NDArray[np.int64]],
    cap: int | None,
    fraction: float | None,
    seed_key: np.uint64,
) -> tuple[npt.NDArray[np.int64], dict[int, npt.NDArray[np.integer]]]:
    """Voxel counts of every id below ``wanted.size`` and the locations of the wanted
    ids present, ``sizes_of(counts)`` of each (one pass; a second only for ids whose
    candidates a block may have cut short, which the merge detects)."""
    from fastseg._kernels import sampling as kernels

    if source.size == 0:
        return np.zeros(wanted.size, np.int64), {}
    view, transposed = source.view_3d()
    strides = _strides(source, transposed)
    blocks = _blocks(view, source.size)
    caps = np.where(wanted, _block_cap(cap, blocks), 0).astype(np.int64)
    results = kernels.sample_rows(
        view, wanted, caps, 0.0 if fraction is None else fraction, strides, seed_key, blocks
    )
    counts = results[0][0]
    for result in results[1:]:
        counts += result[0]
    sampled = np.flatnonzero(wanted & (counts > 0))
    sizes = sizes_of(counts[sampled])
    keys: dict[int, np.ndarray] = {}
    again: list[int] = []
    for v, size in zip(sampled.tolist(), sizes.tolist(), strict=True):
        chosen = kernels.merge(results, v, size)
        if chosen is None:
            again.append(v)
        else:
            keys[v] = chosen
    del results
    if again:
        # A block kept fewer than the smallest keys it held (an id's voxels crowded into
        # one block's rows): those ids again, each block keeping all of them.
        retry = np.zeros(wanted.size, np.bool_)
        retry[again] = True
        exact = np.zeros(wanted.size, np.int64)
        exact[sampled] = sizes
        results = kernels.sample_rows(
            view, retry, np.where(retry, exact, 0), 0.0, strides, seed_key, blocks
        )
        for v in again:
            chosen = kernels.merge(results, v, int(exact[v]))
            assert chosen is not None
            keys[v] = chosen
    dtype = _coordinate_dtype(source.shape)
    shape = np.array(source.shape, np.int64)
    found: dict[int, npt.NDArray[np.integer]] = {}
    for v in sampled.tolist():
        coordinates = np.empty((keys[v].size, len(source.shape)), dtype)
        kernels.keys_to_coordinates(keys.pop(v), seed_key, shape, coordinates)
        found[v] = coordinates
    return counts, found


def _blocks(view: np.ndarray, size: int) -> int:
    return max(1, min(chunks_for(size), int(view.shape[0] * view.shape[1])))


def _table_size(source: LabelArray) -> int:
    """Length of the tables indexed by the ids of ``source`` (dense already)."""
    if source.size == 0:
        return 1
    if source.flat.itemsize <= 2:
        # A table of every possible value is small: no pass to find the largest.
        return 1 << (8 * source.flat.itemsize)
    return source.value_range()[1] + 1


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
        originals = np.arange(_table_size(dense)) if old_ids is None else old_ids
        if requested is None:
            wanted = np.ones(originals.size, np.bool_)
            wanted[0] = False  # dense id 0 is the background, when there is one
        else:
            wanted = np.isin(originals, [i for i in requested if i < 2**64])

        def sizes_of(counts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
            return sample_sizes(counts, per_class, fraction)

        counts, found = _sample(dense, wanted, sizes_of, per_class, fraction, seed_key)
        present = np.flatnonzero(counts)
        count_of = dict(zip(originals[present].tolist(), counts[present].tolist(), strict=True))
        by_id = {int(originals[v]): coordinates for v, coordinates in found.items()}
        chosen = sorted(requested) if requested is not None else [i for i in count_of if i]
        empty = np.zeros((0, len(source.shape)), _coordinate_dtype(source.shape))
        result = Locations(
            classes={i: by_id.get(i, empty) for i in chosen},
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
    n_ids = _table_size(instance_map)
    wanted = np.zeros(n_ids, np.bool_)
    known = min(n_ids, class_of.size)
    wanted[:known] = np.isin(class_of[:known], list(classes))
    wanted[0] = False

    def sizes_of(counts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return np.minimum(counts, per_instance)

    counts, found = _sample(instance_map, wanted, sizes_of, per_instance, None, seed_key)
    present = np.array(sorted(found), np.int64)
    arrays = [found[v] for v in present.tolist()]
    counts = counts[present]
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

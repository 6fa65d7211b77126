"""Naive reference implementations the fastseg kernels are checked against.

Everything here is deliberately slow and obvious: plain Python loops over Python ints
(``ndarray.tolist()`` turns every value, uint64 included, into an exact Python int), no
numba, no fastseg. Results that are label arrays come back as numpy *object* arrays of
Python ints in the input's shape, so that they can be compared exactly with
:func:`assert_same_labels` whatever the dtype.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

__all__ = [
    "SIGNED",
    "UNSIGNED",
    "as_object",
    "assert_same_labels",
    "contacts_reference",
    "directed_distances_reference",
    "dtype_max",
    "each_reference",
    "fill_holes_reference",
    "instance_reference",
    "label_reference",
    "locations_reference",
    "mask",
    "monai_edges_reference",
    "neighbour_offsets",
    "nnunet_region_or_label_to_mask",
    "nnunet_sample_size",
    "nnunet_tp_fp_fn_tn",
    "overlap_reference",
    "remap",
    "remap_dtype",
    "renumber",
    "renumber_dtype",
    "seed_state",
    "smallest_dtype",
    "stats_reference",
    "surface_reference",
    "unique",
    "unmapped_ids",
    "voxel_key",
]

UNSIGNED = (np.uint8, np.uint16, np.uint32, np.uint64)
SIGNED = (np.int8, np.int16, np.int32, np.int64)


# -- helpers ------------------------------------------------------------------------------


def _values(labels: np.ndarray) -> list[int]:
    """Every element of ``labels`` as a Python int, in C order."""
    return [int(v) for v in np.asarray(labels).ravel(order="C").tolist()]


def as_object(values: Iterable[int], shape: tuple[int, ...]) -> np.ndarray:
    """Python ints laid out as an object array of ``shape`` (C order)."""
    items = list(values)
    out = np.empty(len(items), dtype=object)
    for i, v in enumerate(items):
        out[i] = int(v)
    return out.reshape(shape)


def assert_same_labels(actual: np.ndarray, expected: np.ndarray) -> None:
    """Exact element-wise equality of a label array and an object array of Python ints."""
    assert isinstance(actual, np.ndarray), f"expected an ndarray, got {type(actual).__name__}"
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    got = [int(v) for v in actual.ravel(order="C").tolist()]
    want = [int(v) for v in expected.ravel(order="C").tolist()]
    if got != want:
        bad = [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
        i = bad[0]
        raise AssertionError(
            f"{len(bad)} of {len(want)} elements differ; first at flat index {i}: "
            f"got {got[i]}, expected {want[i]}"
        )


def dtype_max(dtype: Any) -> int:
    """Largest value a label of ``dtype`` can hold (1 for bool)."""
    dtype = np.dtype(dtype)
    return 1 if dtype.kind == "b" else int(np.iinfo(dtype).max)


def smallest_dtype(low: int, high: int) -> np.dtype[Any]:
    """Smallest unsigned dtype holding ``low .. high``; signed only when ``low < 0``."""
    candidates = UNSIGNED if low >= 0 else SIGNED
    for candidate in candidates:
        info = np.iinfo(candidate)
        if int(info.min) <= low and high <= int(info.max):
            return np.dtype(candidate)
    raise ValueError(f"no 64-bit integer dtype holds {low} .. {high}")


def _as_dict(mapping: Mapping[int, int] | np.ndarray) -> dict[int, int]:
    if isinstance(mapping, np.ndarray):
        return {i: int(v) for i, v in enumerate(mapping.tolist())}
    return {int(k): int(v) for k, v in mapping.items()}


# -- unique -------------------------------------------------------------------------------


def unique(labels: np.ndarray) -> tuple[list[int], list[int]]:
    """Sorted distinct values and how often each occurs."""
    counts = Counter(_values(labels))
    keys = sorted(counts)
    return keys, [counts[k] for k in keys]


# -- remap --------------------------------------------------------------------------------


def unmapped_ids(labels: np.ndarray, mapping: Mapping[int, int] | np.ndarray) -> list[int]:
    """Sorted distinct values of ``labels`` that ``mapping`` has no entry for."""
    table = _as_dict(mapping)
    return sorted({v for v in _values(labels) if v not in table})


def remap(
    labels: np.ndarray,
    mapping: Mapping[int, int] | np.ndarray,
    missing: str | int = "keep",
) -> np.ndarray:
    """``mapping[v]`` for every value; unmapped values kept, filled, or a ValueError."""
    table = _as_dict(mapping)
    out = []
    for v in _values(labels):
        if v in table:
            out.append(table[v])
        elif missing == "keep":
            out.append(v)
        elif missing == "error":
            raise ValueError(f"unmapped id {v}")
        else:
            out.append(int(missing))
    return as_object(out, labels.shape)


def remap_dtype(
    labels: np.ndarray,
    mapping: Mapping[int, int] | np.ndarray,
    missing: str | int = "keep",
) -> np.dtype[Any]:
    """The default output dtype of remap: the smallest that holds every mapping value
    (of keys the input dtype can hold), the fill value, and every kept input value."""
    table = _as_dict(mapping)
    limit = dtype_max(labels.dtype)
    candidates = [v for k, v in table.items() if k <= limit]
    if isinstance(missing, int):
        candidates.append(int(missing))
    elif missing == "keep":
        candidates.extend(v for v in set(_values(labels)) if v not in table)
    low = min([0, *candidates])
    high = max([0, *candidates])
    return smallest_dtype(low, high)


# -- renumber -----------------------------------------------------------------------------


def renumber(
    labels: np.ndarray, start: int = 1, preserve_zero: bool = True
) -> tuple[np.ndarray, dict[int, int]]:
    """Consecutive new ids in ascending order of the old ids, and the old -> new mapping."""
    present = sorted(set(_values(labels)))
    mapping: dict[int, int] = {}
    next_id = start
    for old in present:
        if preserve_zero and old == 0:
            mapping[0] = 0
        else:
            mapping[old] = next_id
            next_id += 1
    return as_object((mapping[v] for v in _values(labels)), labels.shape), mapping


def renumber_dtype(mapping: dict[int, int]) -> np.dtype[Any]:
    """Smallest unsigned dtype holding the largest new id."""
    return smallest_dtype(0, max(mapping.values(), default=0))


# -- mask ---------------------------------------------------------------------------------


def mask(
    labels: np.ndarray,
    keep: Iterable[int] | None = None,
    remove: Iterable[int] | None = None,
    value: int = 0,
) -> np.ndarray:
    """Values in ``keep`` (or not in ``remove``) stay; every other value becomes ``value``."""
    if (keep is None) == (remove is None):
        raise ValueError("give exactly one of keep and remove")
    out = []
    if keep is not None:
        kept = {int(k) for k in keep}
        for v in _values(labels):
            out.append(v if v in kept else value)
    else:
        assert remove is not None
        removed = {int(k) for k in remove}
        for v in _values(labels):
            out.append(value if v in removed else v)
    return as_object(out, labels.shape)


# -- connected components -----------------------------------------------------------------
# Reference implementations for fastseg.label / Components (breadth-first flood fill over
# explicit neighbour offsets) go here.

# Section owned by tests/test_label.py: a naive multilabel flood fill. Imports are local to
# keep this section independent of the rest of the module.

# Neighbour counts (and scipy-style hops 1..ndim) per ndim -> the number of hops.
_HOPS: dict[int, dict[int, int]] = {
    1: {2: 1, 1: 1},
    2: {4: 1, 8: 2, 1: 1, 2: 2},
    3: {6: 1, 18: 2, 26: 3, 1: 1, 2: 2, 3: 3},
}


def each_reference(
    components: np.ndarray,
) -> list[tuple[int, np.ndarray, tuple[slice, ...]]]:
    """(id, mask cropped to the id's bounding box, the box) for every id but 0, in
    ascending order, with numpy alone."""
    result = []
    for value in sorted(int(v) for v in np.unique(components) if v != 0):
        where = np.nonzero(components == value)
        box = tuple(slice(int(w.min()), int(w.max()) + 1) for w in where)
        result.append((value, np.asarray(components[box] == value), box))
    return result


def neighbour_offsets(ndim: int, connectivity: int | None = None) -> list[tuple[int, ...]]:
    """Offsets of the neighbours of a voxel: every step of -1, 0 or +1 per axis with at
    most ``hops`` non-zero steps (2/4/8 and 6/18/26 neighbours); ``None`` is full."""
    import itertools

    hops = ndim if connectivity is None else _HOPS[ndim][connectivity]
    return [
        step
        for step in itertools.product((-1, 0, 1), repeat=ndim)
        if 0 < sum(abs(s) for s in step) <= hops
    ]


def contacts_reference(
    labels: np.ndarray, hops: int, spacing: tuple[float, ...]
) -> dict[tuple[int, int], float]:
    """``{(a, b): area}`` over every pair of neighbouring voxels (at most ``hops`` non-zero
    steps) holding different non-zero ids: a pair across a face adds the face's area (the
    spacing of the other axes multiplied), one across an edge or a corner adds 0."""
    result: dict[tuple[int, int], float] = {}
    ndim = labels.ndim
    for step in neighbour_offsets(ndim, None):
        if sum(abs(s) for s in step) > hops or step <= (0,) * ndim:
            continue  # each unordered pair once, from its earlier voxel
        axis = next(k for k, s in enumerate(step) if s)
        face = sum(abs(s) for s in step) == 1
        area = math.prod(spacing[k] for k in range(ndim) if k != axis) if face else 0.0
        for index in np.ndindex(labels.shape):
            other = tuple(i + s for i, s in zip(index, step, strict=True))
            if not all(0 <= o < n for o, n in zip(other, labels.shape, strict=True)):
                continue
            a, b = int(labels[index]), int(labels[other])
            if a == b or a == 0 or b == 0:
                continue
            key = (min(a, b), max(a, b))
            result[key] = result.get(key, 0.0) + area
    return dict(sorted(result.items()))


def label_reference(
    labels: np.ndarray, connectivity: int | None = None, background: int = 0
) -> tuple[np.ndarray, int, list[int]]:
    """Connected components by breadth-first flood fill.

    Two voxels are in one component when they are neighbours under ``connectivity``
    (as :func:`neighbour_offsets`) and hold the same value; voxels equal to
    ``background`` are 0. Components are numbered 1, 2, ... in the row-major (C) order
    of their first voxel. Returns the component map (object array of Python ints), the
    number of components, and the input value of each component (``[background, ...]``).
    """
    from collections import deque

    shape = labels.shape
    flat = _values(labels)
    offsets = neighbour_offsets(len(shape), connectivity)
    strides = [1] * len(shape)
    for axis in range(len(shape) - 2, -1, -1):
        strides[axis] = strides[axis + 1] * shape[axis + 1]
    ids = [0] * len(flat)
    values = [int(background)]
    for start, value in enumerate(flat):
        if value == background or ids[start]:
            continue
        values.append(value)
        ids[start] = len(values) - 1
        queue = deque([start])
        while queue:
            index = queue.popleft()
            coords = [(index // stride) % size for stride, size in zip(strides, shape, strict=True)]
            for step in offsets:
                neighbour = 0
                for coord, delta, stride, size in zip(coords, step, strides, shape, strict=True):
                    c = coord + delta
                    if not 0 <= c < size:
                        break
                    neighbour += c * stride
                else:
                    if not ids[neighbour] and flat[neighbour] == value:
                        ids[neighbour] = ids[start]
                        queue.append(neighbour)
    return as_object(ids, shape), len(values) - 1, values


# -- instance statistics ------------------------------------------------------------------
# Section owned by tests/test_stats.py: fastseg.stats measured one id at a time with plain
# numpy (a boolean mask per id), independent of the rest of the module.


def stats_reference(
    labels: np.ndarray,
    image: np.ndarray | None = None,
    spacing: Iterable[float] | None = None,
    affine: np.ndarray | None = None,
    surface: bool = False,
    ids: Iterable[int] | None = None,
) -> dict[str, Any]:
    """Per-id statistics of ``labels`` (0 is background), one boolean mask per id.

    Returns a dict of columns like :class:`fastseg.InstanceStats`: ``ids`` (sorted Python
    ints: every id present, or exactly ``ids``), ``voxel_count``, ``volume``, ``bbox``
    ``(n, ndim, 2)`` half-open, ``centroid`` (mean voxel index), ``centroid_world`` when
    an ``affine`` is given, ``mean``/``std`` (ddof=1, 0 for one voxel)/``min``/``max``/
    ``sum`` of ``image`` in float64 when an image is given, and ``surface``: the number of
    voxel faces whose 6-neighbour is another id or outside the volume, each weighted by
    its area (the product of the spacing along the other axes).

    The spacing defaults to the lengths of the affine's first ``ndim`` columns, else 1.
    Absent requested ids get count 0, volume 0, a zero box, NaN centroid and intensity
    statistics, sum 0 and surface 0.
    """
    labels = np.asarray(labels)
    ndim = labels.ndim
    if spacing is not None:
        sizes = [float(s) for s in spacing]
    elif affine is not None:
        matrix = np.asarray(affine, dtype=np.float64)
        sizes = [float(np.sqrt(np.sum(matrix[:3, axis] ** 2))) for axis in range(ndim)]
    else:
        sizes = [1.0] * ndim
    assert len(sizes) == ndim
    voxel_volume = float(np.prod(sizes))

    present = {int(v): v for v in np.unique(labels).tolist() if int(v) != 0}
    wanted = sorted(present) if ids is None else sorted({int(i) for i in ids})
    n = len(wanted)
    columns: dict[str, Any] = {
        "ids": wanted,
        "voxel_count": np.zeros(n, np.int64),
        "volume": np.zeros(n),
        "bbox": np.zeros((n, ndim, 2), np.int64),
        "centroid": np.full((n, ndim), np.nan),
    }
    if image is not None:
        for name in ("mean", "std", "min", "max"):
            columns[name] = np.full(n, np.nan)
        columns["sum"] = np.zeros(n)
    if surface:
        columns["surface"] = np.zeros(n)

    for row, instance in enumerate(wanted):
        if instance not in present:
            continue
        inside = labels == present[instance]
        where = np.argwhere(inside)
        columns["voxel_count"][row] = len(where)
        columns["volume"][row] = len(where) * voxel_volume
        columns["bbox"][row, :, 0] = where.min(axis=0)
        columns["bbox"][row, :, 1] = where.max(axis=0) + 1
        columns["centroid"][row] = where.mean(axis=0)
        if image is not None:
            values = np.asarray(image)[inside].astype(np.float64)
            columns["mean"][row] = values.mean()
            columns["std"][row] = values.std(ddof=1) if values.size > 1 else 0.0
            columns["min"][row] = values.min()
            columns["max"][row] = values.max()
            columns["sum"][row] = values.sum()
        if surface:
            area = 0.0
            for axis in range(ndim):
                # Outside the volume is "not this id": pad with False, then every change
                # between neighbours along the axis is one exposed face.
                padding = [(1, 1) if a == axis else (0, 0) for a in range(ndim)]
                padded = np.pad(inside, padding, constant_values=False)
                faces = int(np.count_nonzero(np.diff(padded, axis=axis)))
                others = [sizes[a] for a in range(ndim) if a != axis]
                area += faces * float(np.prod(others))
            columns["surface"][row] = area

    if affine is not None:
        matrix = np.asarray(affine, dtype=np.float64)
        world = np.full((n, 3), np.nan)
        for row in range(n):
            point = np.zeros(4)
            point[:ndim] = columns["centroid"][row]
            point[3] = 1.0
            world[row] = (matrix @ point)[:3]
        columns["centroid_world"] = world
    return columns


# -- filling holes ------------------------------------------------------------------------
# Section owned by tests/test_cleanup.py: holes found by flood fill from the border, one
# label at a time, independent of the region graph fastseg works on.


def _flood_regions(
    inside: list[bool], shape: tuple[int, ...], offsets: list[tuple[int, ...]]
) -> list[list[int]]:
    """Connected sets of flat indices where ``inside`` holds (row-major indices)."""
    from collections import deque

    strides = [1] * len(shape)
    for axis in range(len(shape) - 2, -1, -1):
        strides[axis] = strides[axis + 1] * shape[axis + 1]
    seen = [False] * len(inside)
    found = []
    for start, wanted in enumerate(inside):
        if not wanted or seen[start]:
            continue
        seen[start] = True
        region, queue = [], deque([start])
        while queue:
            index = queue.popleft()
            region.append(index)
            coords = [(index // s) % n for s, n in zip(strides, shape, strict=True)]
            for step in offsets:
                target = 0
                for coord, delta, stride, size in zip(coords, step, strides, shape, strict=True):
                    if not 0 <= coord + delta < size:
                        break
                    target += (coord + delta) * stride
                else:
                    if inside[target] and not seen[target]:
                        seen[target] = True
                        queue.append(target)
        found.append(region)
    return found


def fill_holes_reference(
    labels: np.ndarray, per_label: bool = True, connectivity: int | None = None
) -> np.ndarray:
    """Holes filled as :func:`fastseg.fill_holes` documents it, by flood fill.

    Per label ``L``: the regions of voxels other than ``L`` (under ``connectivity``,
    default faces) that touch no border; their background voxels take ``L``, the label
    of the smallest such region when several claim a voxel (ties: the lower label). With
    ``per_label=False``: background regions touching no border take the label they
    share the most voxel faces with (ties: the lower label).
    """
    shape = labels.shape
    flat = _values(labels)
    offsets = neighbour_offsets(len(shape), 1 if connectivity is None else connectivity)
    faces = neighbour_offsets(len(shape), 1)
    border = [
        any(c in (0, n - 1) for c, n in zip(np.unravel_index(i, shape), shape, strict=True))
        for i in range(len(flat))
    ]
    out = list(flat)
    if per_label:
        best: dict[int, tuple[int, int]] = {}
        for value in sorted(set(flat) - {0}):
            for region in _flood_regions([v != value for v in flat], shape, offsets):
                if any(border[i] for i in region):
                    continue
                for i in region:
                    if flat[i] == 0 and (i not in best or len(region) < best[i][0]):
                        best[i] = (len(region), value)
        for i, (_, value) in best.items():
            out[i] = value
    else:
        for region in _flood_regions([v == 0 for v in flat], shape, offsets):
            if any(border[i] for i in region):
                continue
            shared: dict[int, int] = {}
            for i in region:
                coords = np.unravel_index(i, shape)
                for step in offsets:
                    target = tuple(c + d for c, d in zip(coords, step, strict=True))
                    if all(0 <= c < n for c, n in zip(target, shape, strict=True)):
                        value = flat[int(np.ravel_multi_index(target, shape))]
                        if value != 0:
                            shared[value] = shared.get(value, 0) + (step in faces)
            choice = min(shared, key=lambda v: (-shared[v], v))
            for i in region:
                out[i] = choice
    return np.array(out, dtype=labels.dtype).reshape(shape)


# -- evaluation ---------------------------------------------------------------------------
# Section owned by tests/test_evaluate.py: fastseg.evaluate one class at a time with plain
# Python loops (overlap counts, MONAI's surface edges, brute-force nearest distances,
# greedy instance matching), and nnU-Net v2's compute_tp_fp_fn_tn mirrored.


def overlap_reference(
    prediction: np.ndarray, reference: np.ndarray, values: Iterable[int], ignore: int | None = None
) -> dict[str, int]:
    """tp, fp, fn, tn of the class covering ``values`` (voxels where the reference holds
    ``ignore`` left out), counted voxel by voxel."""
    wanted = set(values)
    counts = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    for p, r in zip(_values(prediction), _values(reference), strict=True):
        if ignore is not None and r == ignore:
            continue
        in_p, in_r = p in wanted, r in wanted
        key = "tp" if in_p and in_r else "fp" if in_p else "fn" if in_r else "tn"
        counts[key] += 1
    return counts


def nnunet_tp_fp_fn_tn(
    mask_ref: np.ndarray, mask_pred: np.ndarray, ignore_mask: np.ndarray | None = None
) -> tuple[int, int, int, int]:
    """nnU-Net v2's ``compute_tp_fp_fn_tn`` (evaluation/evaluate_predictions.py)."""
    use_mask = np.ones_like(mask_ref, dtype=bool) if ignore_mask is None else ~ignore_mask
    tp = int(np.sum((mask_ref & mask_pred) & use_mask))
    fp = int(np.sum(((~mask_ref) & mask_pred) & use_mask))
    fn = int(np.sum((mask_ref & (~mask_pred)) & use_mask))
    tn = int(np.sum(((~mask_ref) & (~mask_pred)) & use_mask))
    return tp, fp, fn, tn


def nnunet_region_or_label_to_mask(
    segmentation: np.ndarray, region: int | tuple[int, ...]
) -> np.ndarray:
    """nnU-Net v2's ``region_or_label_to_mask``."""
    if np.isscalar(region):
        return np.asarray(segmentation == region)
    mask = np.zeros_like(segmentation, dtype=bool)
    for r in region:  # type: ignore[union-attr]
        mask[segmentation == r] = True
    return mask


def monai_edges_reference(mask: np.ndarray) -> list[tuple[int, ...]]:
    """Voxels of ``mask`` with a face neighbour outside it or outside the array (scipy's
    binary erosion XOR the mask, as MONAI's get_mask_edges), in C order."""
    edges = []
    shape = mask.shape
    for index in np.ndindex(*shape):
        if not mask[index]:
            continue
        for axis in range(len(shape)):
            for step in (-1, 1):
                other = list(index)
                other[axis] += step
                if not 0 <= other[axis] < shape[axis] or not mask[tuple(other)]:
                    edges.append(index)
                    break
            else:
                continue
            break
    return edges


def directed_distances_reference(
    queries: list[tuple[int, ...]], features: list[tuple[int, ...]], spacing: Iterable[float]
) -> list[float]:
    """Distance from every query voxel to its nearest feature voxel, by brute force."""
    sizes = list(spacing)
    out = []
    for q in queries:
        best = math.inf
        for f in features:
            d = math.sqrt(sum(((a - b) * s) ** 2 for a, b, s in zip(q, f, sizes, strict=True)))
            best = min(best, d)
        out.append(best)
    return out


def surface_reference(
    prediction: np.ndarray, reference: np.ndarray, value: int, spacing: Iterable[float],
    percentile: float = 95.0, tolerance: float = 1.0,
) -> dict[str, float]:  # fmt: skip
    """hd, hd95, assd and nsd of one class with MONAI's definitions (both masks non-empty),
    without float32 rounding."""
    sizes = list(spacing)
    pred_edges = monai_edges_reference(prediction == value)
    ref_edges = monai_edges_reference(reference == value)
    a = directed_distances_reference(pred_edges, ref_edges, sizes)
    b = directed_distances_reference(ref_edges, pred_edges, sizes)
    both = a + b
    return {
        "hd": max(both),
        "hd95": max(
            float(np.quantile(a, percentile / 100)), float(np.quantile(b, percentile / 100))
        ),
        "assd": sum(both) / len(both),
        "nsd": sum(1 for d in both if d <= tolerance) / len(both),
    }


def instance_reference(
    prediction: np.ndarray, reference: np.ndarray, value: int, threshold: float = 0.5
) -> dict[str, float]:
    """Panoptic quality of one class as panoptica defines it: components (full
    connectivity) of the class in each map, IoU of every pair, greedy one-to-one matching
    by decreasing IoU of pairs with IoU >= threshold; sq = mean IoU of matches,
    rq = tp / (tp + fp/2 + fn/2), pq = sq * rq."""
    ref_cc, n_ref, _ = label_reference(np.where(reference == value, 1, 0))
    pred_cc, n_pred, _ = label_reference(np.where(prediction == value, 1, 0))
    ref_ids, pred_ids = _values(ref_cc), _values(pred_cc)
    inter: Counter[tuple[int, int]] = Counter()
    for r, p in zip(ref_ids, pred_ids, strict=True):
        if r and p:
            inter[(r, p)] += 1
    size_r, size_p = Counter(ref_ids), Counter(pred_ids)
    scored = []
    for (r, p), n in inter.items():
        iou = n / (size_r[r] + size_p[p] - n)
        if iou >= threshold:
            scored.append((-iou, r, p, iou))
    scored.sort()
    taken_r: set[int] = set()
    taken_p: set[int] = set()
    ious = []
    for _, r, p, iou in scored:
        if r in taken_r or p in taken_p:
            continue
        taken_r.add(r)
        taken_p.add(p)
        ious.append(iou)
    tp = len(ious)
    fp, fn = n_pred - tp, n_ref - tp
    denominator = tp + 0.5 * fp + 0.5 * fn
    rq = tp / denominator if denominator else math.nan
    sq = sum(ious) / tp if tp else 0.0
    return {"ref": n_ref, "pred": n_pred, "tp": tp, "fp": fp, "fn": fn, "rq": rq, "sq": sq,
            "pq": sq * rq}  # fmt: skip


# -- sampling -----------------------------------------------------------------------------

_MASK64 = (1 << 64) - 1


def _splitmix_finaliser(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def seed_state(seed: int) -> int:
    """The 64-bit state of ``numpy.random.SeedSequence(seed)`` that keys are built from."""
    return int(np.random.SeedSequence(seed).generate_state(1, np.uint64)[0])


def voxel_key(index: int, state: int) -> int:
    """The documented key of the voxel at row-major ``index``: splitmix64's finaliser of
    ``index * golden + state`` (``state`` from :func:`seed_state`)."""
    return _splitmix_finaliser((index * 0x9E3779B97F4A7C15 + state) & _MASK64)


def locations_reference(
    labels: np.ndarray, sizes: Mapping[int, int], seed: int
) -> dict[int, list[tuple[int, ...]]]:
    """Per id in ``sizes``: the coordinates of its ``sizes[id]`` voxels with the smallest
    keys, in ascending key order (bottom-k sampling, written out voxel by voxel)."""
    shape = labels.shape
    state = seed_state(seed)
    keyed: dict[int, list[tuple[int, tuple[int, ...]]]] = {i: [] for i in sizes}
    for index, value in enumerate(_values(labels)):
        if value in keyed:
            coordinates = tuple(int(c) for c in np.unravel_index(index, shape))
            keyed[value].append((voxel_key(index, state), coordinates))
    return {i: [c for _, c in sorted(keyed[i])[: sizes[i]]] for i in sizes}


def nnunet_sample_size(total: int) -> int:
    """nnU-Net v2 (2.8, DefaultPreprocessor._sample_foreground_locations): locations kept
    of a class with ``total`` voxels, with its defaults (10000, 0.01), copied verbatim."""
    min_num_samples, min_percent_coverage = 10000, 0.01
    target_num_samples = min(min_num_samples, total)
    target_num_samples = max(target_num_samples, int(np.ceil(total * min_percent_coverage)))
    return target_num_samples

"""Scoring a predicted label map against a reference: overlap, surface distances, instances.

Thin wrapper over :mod:`fastseg._kernels.evaluate`. One pass over both maps counts every
(reference value, prediction value) pair with its bounding box; every per-class overlap
count follows from that table, and so does the box each class's surfaces are looked for
in. Surface distances are exact Euclidean distances between edges, computed inside that
box only (no one-hot encoding, no whole-volume distance transform). Instances are the
connected components of each class (or given instance maps), matched one to one through
the sparse table of overlapping pairs.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from fastseg import _geometry
from fastseg._arrays import LabelArray, as_label_array
from fastseg._files import atomic_path
from fastseg._jit import chunks_for, run_tasks, thread_limit
from fastseg.schema import Schema

__all__ = ["Evaluation", "EvaluationMetric", "InstancePairs", "evaluate"]

Metric = Literal["overlap", "distance", "instances"]
Empty = Literal["nnunet", "monai", "one"]
SurfaceMethod = Literal["monai", "deepmind"]
Matching = Literal["threshold", "overlap"]

_METRICS = ("overlap", "distance", "instances")
_EMPTY = ("nnunet", "monai", "one")
# Reference instance volumes (mm³) binned for the per-size recall columns.
DEFAULT_SIZE_BINS: tuple[float, ...] = (0.0, 100.0, 1000.0, 10000.0, math.inf)
# Lookup tables indexed by value are used below this value; larger ids are renumbered.
_MAX_TABLE = 1 << 20

_OVERLAP_COLUMNS = (
    "tp", "fp", "fn", "tn", "dice", "iou", "precision", "recall",
    "ref_volume", "pred_volume", "volume_difference",
)  # fmt: skip
_DISTANCE_COLUMNS = ("hd", "hd95", "assd", "asd_ref_to_pred", "asd_pred_to_ref", "nsd")
_INSTANCE_COLUMNS = (
    "ref_instances", "pred_instances", "instance_tp", "instance_fp", "instance_fn",
    "f1", "sq", "rq", "pq",
)  # fmt: skip


@dataclass(frozen=True)
class EvaluationClass:
    """One scored class: a name and the label values it covers (several for a region)."""

    name: str
    values: tuple[int, ...]


@dataclass(frozen=True)
class InstancePairs:
    """The overlapping (reference instance, prediction instance) pairs of each class.

    Every column is a numpy array with one entry per pair, sorted by class row, then
    reference id, then prediction id. Ids are component numbers (or the given instance
    ids); ``matched`` marks the one-to-one matches.
    """

    class_row: npt.NDArray[np.int64]
    """Row of the pair's class in the :class:`Evaluation`."""
    ref_id: npt.NDArray[np.int64]
    pred_id: npt.NDArray[np.int64]
    intersection: npt.NDArray[np.int64]
    """Voxels the two instances share."""
    ref_voxels: npt.NDArray[np.int64]
    pred_voxels: npt.NDArray[np.int64]
    iou: npt.NDArray[np.float64]
    dice: npt.NDArray[np.float64]
    matched: npt.NDArray[np.bool_]
    class_names: tuple[str, ...] = field(default=(), repr=False)

    def __len__(self) -> int:
        return int(self.ref_id.size)

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per pair, with plain Python values."""
        return [
            {
                "class": self.class_names[int(self.class_row[i])] if self.class_names else "",
                "ref_id": int(self.ref_id[i]),
                "pred_id": int(self.pred_id[i]),
                "intersection": int(self.intersection[i]),
                "ref_voxels": int(self.ref_voxels[i]),
                "pred_voxels": int(self.pred_voxels[i]),
                "iou": float(self.iou[i]),
                "dice": float(self.dice[i]),
                "matched": bool(self.matched[i]),
            }
            for i in range(len(self))
        ]

    def matches(self) -> InstancePairs:
        """Only the matched pairs."""
        keep = self.matched
        return InstancePairs(
            self.class_row[keep], self.ref_id[keep], self.pred_id[keep],
            self.intersection[keep], self.ref_voxels[keep], self.pred_voxels[keep],
            self.iou[keep], self.dice[keep], self.matched[keep], self.class_names,
        )  # fmt: skip


def _plain(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


@dataclass(frozen=True)
class Evaluation:
    """One row per class; every column is a numpy array of ``len(self)`` rows.

    Look a row up by class name (``table["liver"]`` gives a dict), iterate over the
    names, or convert with :meth:`to_records`, :meth:`to_dict`, :meth:`to_json`,
    :meth:`to_csv` and :meth:`to_pandas`. ``columns`` holds the metrics computed (see
    :func:`evaluate` for their definitions); ``pairs`` the instance pair table when
    instances were scored.

    Examples
    --------
    >>> import numpy as np
    >>> import fastseg
    >>> result = fastseg.evaluate(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]),
    ...                           metrics=["overlap"])
    >>> list(result), result["1"]["dice"], len(result)
    (['1', '2'], 0.6666666666666666, 2)
    """

    classes: tuple[EvaluationClass, ...]
    columns: dict[str, np.ndarray]
    spacing: tuple[float, ...]
    pairs: InstancePairs | None = None

    def __len__(self) -> int:
        return len(self.classes)

    def __iter__(self) -> Iterator[str]:
        return iter(c.name for c in self.classes)

    def __contains__(self, name: object) -> bool:
        return any(c.name == name for c in self.classes)

    def __getitem__(self, name: str) -> dict[str, Any]:
        for row, c in enumerate(self.classes):
            if c.name == name:
                return self._record(row)
        raise KeyError(f"no class {name!r} in this evaluation")

    def column(self, name: str) -> np.ndarray:
        """One metric for every class, e.g. ``result.column("dice")``."""
        try:
            return self.columns[name]
        except KeyError:
            raise KeyError(
                f"no column {name!r}; this evaluation has {', '.join(self.columns)}"
            ) from None

    def _record(self, row: int) -> dict[str, Any]:
        c = self.classes[row]
        record: dict[str, Any] = {
            "class": c.name,
            "values": " ".join(str(v) for v in c.values),
        }
        for name, column in self.columns.items():
            record[name] = _plain(column[row])
        return record

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per class, with plain Python numbers."""
        return [self._record(row) for row in range(len(self))]

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """``{class name: record}``."""
        return {record["class"]: record for record in self.to_records()}

    def mean(self) -> dict[str, float]:
        """Every metric averaged over the classes, NaN ignored (as nnU-Net's
        ``foreground_mean``); NaN where no class has a value."""
        means: dict[str, float] = {}
        for name, column in self.columns.items():
            values = np.asarray(column, dtype=np.float64)
            finite = values[~np.isnan(values)]
            means[name] = float(finite.mean()) if finite.size else math.nan
        return means

    def to_json(self, **kwargs: Any) -> str:
        """A JSON array of records (keyword arguments go to :func:`json.dumps`). NaN is
        written as null, infinity as the string ``"inf"``."""
        records = [{k: _json_value(v) for k, v in r.items()} for r in self.to_records()]
        return json.dumps(records, **kwargs)

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write the table as CSV, atomically (a temporary file renamed into place)."""
        records = self.to_records()
        with (
            atomic_path(path, suffix=".csv") as temporary,
            open(temporary, "w", newline="", encoding="utf-8") as stream,
        ):
            writer = csv.DictWriter(stream, fieldnames=["class", "values", *self.columns])
            writer.writeheader()
            writer.writerows(records)

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` indexed by class name (needs pandas)."""
        try:
            import pandas
        except ImportError:
            raise ImportError("to_pandas needs pandas: pip install pandas") from None
        if not len(self):
            return pandas.DataFrame(columns=["class", "values", *self.columns]).set_index("class")
        return pandas.DataFrame.from_records(self.to_records(), index="class")


def _json_value(value: Any) -> Any:
    if isinstance(value, float):
        if value != value:
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value


# -- inputs -------------------------------------------------------------------------------


def _label_input(value: object, name: str) -> tuple[LabelArray, np.ndarray | None]:
    if _is_tensor(value):
        from fastseg._tensors import to_numpy

        value = to_numpy(value)
    array, affine = _geometry.unpack_image(value, "labels")
    return as_label_array(array, name=name, ndims=(1, 2, 3)), affine


def _is_tensor(value: object) -> bool:
    from fastseg._tensors import is_tensor

    return is_tensor(value)


def _aligned(source: LabelArray, order: Literal["C", "F"]) -> LabelArray:
    """``source`` laid out in ``order`` (a copy only when its order differs)."""
    if source.order == order:
        return source
    return as_label_array(np.asarray(source.original, order=order))


def _resolve_classes(
    labels: Schema | Mapping[str, int | Iterable[int]] | Iterable[int] | None,
    present: npt.NDArray[np.uint64],
) -> tuple[list[EvaluationClass], int | None]:
    """The classes to score and the ignore label (from a schema), if any."""
    if labels is None:
        return [EvaluationClass(str(v), (int(v),)) for v in present.tolist() if v != 0], None
    ignore: int | None = None
    classes: list[EvaluationClass] = []
    if isinstance(labels, Schema):
        for category in labels:
            if category.attributes.get("ignore"):
                ignore = category.value
                continue
            regions = category.attributes.get("regions")
            if regions is None:
                values: tuple[int, ...] = (category.value,)
            else:
                values = (regions,) if isinstance(regions, int) else tuple(regions)
            classes.append(EvaluationClass(category.name, _check_values(values, category.name)))
        return classes, ignore
    if isinstance(labels, Mapping):
        for name, value in labels.items():
            if not isinstance(name, str):
                raise TypeError(f"labels mapping keys must be class names, got {name!r}")
            given: tuple[Any, ...] = (
                (value,) if isinstance(value, int | np.integer) else tuple(value)
            )
            classes.append(EvaluationClass(name, _check_values(given, name)))
        return classes, None
    if isinstance(labels, str | bytes):
        raise TypeError(f"labels must be integers, a mapping or a Schema, got {labels!r}")
    for value in labels:
        checked = _check_values((value,), str(value))
        classes.append(EvaluationClass(str(checked[0]), checked))
    names = [c.name for c in classes]
    if len(set(names)) != len(names):
        raise ValueError(f"labels name a class twice: {names}")
    return classes, None


def _check_values(values: Sequence[Any], name: str) -> tuple[int, ...]:
    if not values:
        raise ValueError(f"class {name!r} covers no label values")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"class {name!r}: label values must be integers, got {value!r}")
        if value < 1:
            raise ValueError(
                f"class {name!r}: label values must be at least 1 (0 is background), got {value}"
            )
    return tuple(sorted({int(v) for v in values}))


# -- the pair table -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Pairs:
    ref: npt.NDArray[np.uint64]
    pred: npt.NDArray[np.uint64]
    count: npt.NDArray[np.int64]
    box: npt.NDArray[np.int64]  # (n, 6): first index per view axis, then stops


def pair_table(ref_view: np.ndarray, pred_view: np.ndarray) -> _Pairs:
    """Every (reference, prediction) value pair of two 3-D views with its voxel count
    and bounding box, sorted by pair."""
    from fastseg._kernels import evaluate as evaluate_kernels

    if ref_view.size == 0:
        empty = np.zeros(0, np.uint64)
        return _Pairs(empty, empty, np.zeros(0, np.int64), np.zeros((0, 6), np.int64))
    rows = ref_view.shape[0] * ref_view.shape[1]
    chunks = max(1, min(chunks_for(ref_view.size), rows))
    bits = 10
    while True:
        ref, pred, count, box, overflow = evaluate_kernels.pair_table(
            ref_view, pred_view, bits, chunks
        )
        if not overflow:
            break
        bits += 3
    order = np.lexsort((pred, ref))
    ref, pred, count, box = ref[order], pred[order], count[order], box[order]
    if ref.size == 0:
        return _Pairs(ref, pred, count, box)
    new = np.ones(ref.size, np.bool_)
    new[1:] = (ref[1:] != ref[:-1]) | (pred[1:] != pred[:-1])
    starts = np.flatnonzero(new)
    merged_box = np.empty((starts.size, 6), np.int64)
    merged_box[:, :3] = np.minimum.reduceat(box[:, :3], starts, axis=0)
    merged_box[:, 3:] = np.maximum.reduceat(box[:, 3:], starts, axis=0)
    return _Pairs(ref[starts], pred[starts], np.add.reduceat(count, starts), merged_box)


# -- conventions for empty masks ----------------------------------------------------------


def _ratio(
    numerator: np.ndarray, denominator: np.ndarray, ref_empty: np.ndarray,
    both_empty: np.ndarray, empty: Empty,
) -> np.ndarray:  # fmt: skip
    """``numerator / denominator`` with the chosen convention for empty masks."""
    with np.errstate(invalid="ignore", divide="ignore"):
        value = numerator / denominator
    value = np.where(denominator == 0, np.nan, value)
    if empty == "monai":
        value = np.where(ref_empty, np.nan, value)
    elif empty == "one":
        value = np.where(both_empty, 1.0, np.where(np.isnan(value), 0.0, value))
    return value


# -- surfaces -----------------------------------------------------------------------------


def _code_areas(spacing: tuple[float, ...]) -> tuple[np.ndarray, int]:
    """Area (3-D) or length (2-D) of the surface elements of each neighbourhood code, as
    DeepMind's surface-distance defines them, and the code of a full neighbourhood."""
    if len(spacing) == 2:
        # Codes of the 2 x 2 neighbourhood (8: top left, 4: top right, 2: bottom left,
        # 1: bottom right). A contour crosses the square's middle between the two sides
        # that differ; a lone corner (or a lone gap) cuts the corner diagonally.
        s0, s1 = spacing
        diag = 0.5 * math.sqrt(s0**2 + s1**2)
        lengths = np.zeros(16)
        for code in (1, 2, 4, 8, 7, 11, 13, 14):
            lengths[code] = diag
        lengths[0b0011] = lengths[0b1100] = s1
        lengths[0b0101] = lengths[0b1010] = s0
        lengths[0b0110] = lengths[0b1001] = 2 * diag
        return lengths, 15
    normals = _surfel_normals()
    areas = np.zeros(256)
    s0, s1, s2 = spacing
    for code in range(256):
        total = 0.0
        for normal in normals[code]:
            scaled = np.array([normal[0] * s1 * s2, normal[1] * s0 * s2, normal[2] * s0 * s1])
            total += float(np.linalg.norm(scaled))
        areas[code] = total
    return areas, 255


def _surfel_normals() -> list[Any]:
    """The marching-cubes area vectors of each 2 x 2 x 2 neighbourhood code, from
    DeepMind's surface-distance package (or MONAI, which carries the same table)."""
    try:
        from surface_distance import lookup_tables  # type: ignore[import-untyped]

        return list(lookup_tables._NEIGHBOUR_CODE_TO_NORMALS)
    except ImportError:
        pass
    try:
        from monai.metrics.utils import _get_neighbour_code_to_normals_table

        table = _get_neighbour_code_to_normals_table()
        return [np.asarray(entry.cpu()) for entry in table]
    except ImportError:
        raise ImportError(
            "surface='deepmind' in 3-D needs the surfel area table of DeepMind's "
            "surface-distance package: pip install surface-distance"
        ) from None


def _surfel_weights(ndim: int, transposed: bool) -> np.ndarray:
    """Bit of each corner of the 2 x 2 (x 2) neighbourhood, in the axes of the 3-D view."""
    weights = np.zeros((2, 2, 2), np.int64)
    if ndim == 3:
        for o0 in range(2):
            for o1 in range(2):
                for o2 in range(2):
                    weights[o0, o1, o2] = 1 << (7 - (4 * o0 + 2 * o1 + o2))
        return weights.transpose(2, 1, 0).copy() if transposed else weights
    plane = np.array([[8, 4], [2, 1]], np.int64)
    weights[1] = plane.T if transposed else plane
    return weights


def _quantile_float32(values: np.ndarray, q: float) -> float:
    """``torch.quantile`` of float32 values, step by step in float32: the rank q (n - 1)
    and the interpolation weight are float32 too, which moves the result by more than
    rounding the exact quantile would."""
    ordered = np.sort(values)
    rank = np.float32(q / 100.0) * np.float32(ordered.size - 1)
    below = int(np.floor(rank))
    above = min(below + 1, ordered.size - 1)
    weight = np.float32(rank - np.float32(below))
    low, high = ordered[below], ordered[above]
    if weight < 0.5:
        return float(low + weight * (high - low))
    return float(high - (high - low) * (np.float32(1.0) - weight))


def _weighted_percentile(distances: np.ndarray, areas: np.ndarray, percent: float) -> float:
    """DeepMind's robust Hausdorff of one direction (inputs sorted by distance, area)."""
    if distances.size == 0:
        return math.inf
    cumulative = np.cumsum(areas) / np.sum(areas)
    index = int(np.searchsorted(cumulative, percent / 100.0))
    return float(distances[min(index, distances.size - 1)])


@dataclass
class _SurfaceRow:
    hd: float = math.nan
    hd95: float = math.nan
    assd: float = math.nan
    to_pred: float = math.nan
    to_ref: float = math.nan
    nsd: float = math.nan


def _surface_metrics(
    pred_to_ref: np.ndarray,
    ref_to_pred: np.ndarray,
    pred_areas: np.ndarray,
    ref_areas: np.ndarray,
    method: SurfaceMethod,
    percentile: float,
    tolerance: float,
) -> _SurfaceRow:
    """Metrics of one class whose reference and prediction both have surfaces."""
    row = _SurfaceRow()
    if method == "monai":
        # MONAI keeps distances as float32 and compares them to the tolerance in float32.
        a = pred_to_ref.astype(np.float32)
        b = ref_to_pred.astype(np.float32)
        row.hd = float(max(a.max(), b.max()))
        row.hd95 = max(_quantile_float32(a, percentile), _quantile_float32(b, percentile))
        both = np.concatenate([a, b]).astype(np.float64)
        row.assd = float(both.mean())
        row.to_pred = float(b.astype(np.float64).mean())
        row.to_ref = float(a.astype(np.float64).mean())
        limit = np.float32(tolerance)
        row.nsd = float(np.count_nonzero(a <= limit) + np.count_nonzero(b <= limit)) / (
            a.size + b.size
        )
        return row
    order_p = np.lexsort((pred_areas, pred_to_ref))
    order_r = np.lexsort((ref_areas, ref_to_pred))
    d_pr, a_pr = pred_to_ref[order_p], pred_areas[order_p]
    d_rp, a_rp = ref_to_pred[order_r], ref_areas[order_r]
    row.hd = max(_weighted_percentile(d_rp, a_rp, 100.0), _weighted_percentile(d_pr, a_pr, 100.0))
    row.hd95 = max(
        _weighted_percentile(d_rp, a_rp, percentile), _weighted_percentile(d_pr, a_pr, percentile)
    )
    row.to_pred = float(np.sum(d_rp * a_rp) / np.sum(a_rp))
    row.to_ref = float(np.sum(d_pr * a_pr) / np.sum(a_pr))
    row.assd = float((np.sum(d_rp * a_rp) + np.sum(d_pr * a_pr)) / (np.sum(a_rp) + np.sum(a_pr)))
    overlap = np.sum(a_rp[d_rp <= tolerance]) + np.sum(a_pr[d_pr <= tolerance])
    row.nsd = float(overlap / (np.sum(a_rp) + np.sum(a_pr)))
    return row


def _empty_surface_row(ref_empty: bool, pred_empty: bool, empty: Empty) -> _SurfaceRow:
    """Distances when one side (or both) has no voxel of the class."""
    if ref_empty and pred_empty:
        if empty == "one":
            return _SurfaceRow(0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
        return _SurfaceRow()
    if ref_empty and empty == "monai":
        return _SurfaceRow()
    inf = math.inf
    return _SurfaceRow(inf, inf, inf, inf, inf, 0.0)


# -- instances ----------------------------------------------------------------------------


def _component_maps(
    source: LabelArray,
    classes: Sequence[EvaluationClass],
    instances: object | None,
    connectivity: int | None,
    name: str,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per class group, an instance map and the class value (or region row) of each
    instance: one multilabel labeling for the single-value classes, one binary labeling
    per region, or the given instance map."""
    from fastseg.components import component_values, label

    original = source.original
    maps: list[tuple[np.ndarray, np.ndarray]] = []
    if instances is not None:
        array, _ = _geometry.unpack_image(
            _to_array(instances) if _is_tensor(instances) else instances, "labels"
        )
        given = as_label_array(array, name=name, ndims=(1, 2, 3))
        if given.shape != source.shape:
            raise ValueError(
                f"{name} must have the shape of the label maps {source.shape}, got {given.shape}"
            )
        ids = np.asarray(given.original)
        values = component_values(ids, original).astype(np.int64)
        maps.append((ids, values))
        return maps
    plain = [c for c in classes if len(c.values) == 1]
    if plain:
        components = label(original, connectivity=connectivity)  # type: ignore[arg-type]
        maps.append((components.labels, components.values.astype(np.int64)))
    for c in classes:
        if len(c.values) > 1:
            region = np.isin(original, c.values)
            components = label(region, connectivity=connectivity)  # type: ignore[arg-type]
            marker = np.where(components.values.astype(bool), -1 - classes.index(c), 0)
            maps.append((components.labels, marker.astype(np.int64)))
    return maps


def _to_array(value: Any) -> np.ndarray:
    from fastseg._tensors import to_numpy

    return to_numpy(value)


def _instance_metrics(
    ref_source: LabelArray,
    pred_source: LabelArray,
    classes: Sequence[EvaluationClass],
    ref_instances: object | None,
    pred_instances: object | None,
    connectivity: int | None,
    threshold: float,
    matching: Matching,
    voxel_volume: float,
    size_bins: Sequence[float],
    empty: Empty,
) -> tuple[dict[str, np.ndarray], InstancePairs]:
    from fastseg._kernels import evaluate as evaluate_kernels

    ref_maps = _component_maps(ref_source, classes, ref_instances, connectivity, "ref_instances")
    pred_maps = _component_maps(
        pred_source, classes, pred_instances, connectivity, "pred_instances"
    )
    n = len(classes)
    counts = {name: np.zeros(n, np.int64) for name in ("ref", "pred", "tp")}
    iou_sum = np.zeros(n)
    n_bins = len(size_bins) - 1
    bin_found = np.zeros((n, n_bins), np.int64)
    bin_total = np.zeros((n, n_bins), np.int64)
    pair_parts: list[tuple[np.ndarray, ...]] = []
    row_of_value = {c.values[0]: row for row, c in enumerate(classes) if len(c.values) == 1}
    for (ref_ids, ref_class), (pred_ids, pred_class) in zip(ref_maps, pred_maps, strict=True):
        r_source = as_label_array(ref_ids)
        p_source = _aligned(as_label_array(pred_ids), r_source.order)
        table = pair_table(r_source.view_3d()[0], p_source.view_3d()[0])
        r_id = table.ref.astype(np.int64)
        p_id = table.pred.astype(np.int64)
        n_ref = int(ref_class.size)
        n_pred = int(pred_class.size)
        ref_size = np.bincount(r_id, weights=table.count, minlength=n_ref).astype(np.int64)
        pred_size = np.bincount(p_id, weights=table.count, minlength=n_pred).astype(np.int64)

        def row_of(code: int) -> int:
            return -1 - code if code < 0 else row_of_value.get(code, -1)

        ref_row = np.array([row_of(int(v)) if i else -1 for i, v in enumerate(ref_class)])
        pred_row = np.array([row_of(int(v)) if i else -1 for i, v in enumerate(pred_class)])
        ref_row = ref_row.astype(np.int64).reshape(-1)
        pred_row = pred_row.astype(np.int64).reshape(-1)
        candidate = (r_id > 0) & (p_id > 0)
        candidate &= ref_row[r_id] == pred_row[p_id]
        candidate &= ref_row[r_id] >= 0
        cr, cp, inter = r_id[candidate], p_id[candidate], table.count[candidate]
        sr, sp = ref_size[cr], pred_size[cp]
        iou = inter / (sr + sp - inter)
        dice = 2.0 * inter / (sr + sp)
        rows = ref_row[cr]
        eligible = iou >= threshold if matching == "threshold" else iou > 0
        index = np.flatnonzero(eligible)
        # Best first: highest IoU, then the smaller reference id, then prediction id.
        order = index[np.lexsort((cp[index], cr[index], -iou[index]))]
        matched = evaluate_kernels.greedy_match(order, cr, cp, n_ref, n_pred)
        for row in range(n):
            in_ref = ref_row == row
            in_pred = pred_row == row
            counts["ref"][row] += int(np.count_nonzero(in_ref))
            counts["pred"][row] += int(np.count_nonzero(in_pred))
            hit = matched & (rows == row)
            counts["tp"][row] += int(np.count_nonzero(hit))
            iou_sum[row] += float(np.sum(iou[hit]))
            volumes = ref_size[in_ref] * voxel_volume
            found = np.zeros(ref_size.size, np.bool_)
            found[cr[hit]] = True
            found_here = found[in_ref]
            for b in range(n_bins):
                low, high = size_bins[b], size_bins[b + 1]
                in_bin = (volumes >= low) & (volumes < high)
                bin_total[row, b] += int(np.count_nonzero(in_bin))
                bin_found[row, b] += int(np.count_nonzero(in_bin & found_here))
        pair_parts.append((rows, cr, cp, inter, sr, sp, iou, dice, matched))
    tp = counts["tp"]
    fp = counts["pred"] - tp
    fn = counts["ref"] - tp
    ref_empty = counts["ref"] == 0
    both_empty = ref_empty & (counts["pred"] == 0)
    rq = _ratio(tp.astype(np.float64), tp + 0.5 * fp + 0.5 * fn, ref_empty, both_empty, empty)
    with np.errstate(invalid="ignore", divide="ignore"):
        sq = np.where(tp > 0, iou_sum / np.maximum(tp, 1), 0.0)
    sq = np.where(np.isnan(rq), np.nan, np.where(both_empty & (empty == "one"), 1.0, sq))
    columns: dict[str, np.ndarray] = {
        "ref_instances": counts["ref"],
        "pred_instances": counts["pred"],
        "instance_tp": tp,
        "instance_fp": fp,
        "instance_fn": fn,
        "f1": rq,
        "sq": sq,
        "rq": rq,
        "pq": sq * rq,
    }
    for b in range(n_bins):
        low, high = size_bins[b], size_bins[b + 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = np.where(bin_total[:, b] > 0, bin_found[:, b] / bin_total[:, b], np.nan)
        columns[f"recall_{_bin_name(low)}_{_bin_name(high)}mm3"] = recall
    parts = [
        np.concatenate(p) if pair_parts else np.zeros(0) for p in zip(*pair_parts, strict=True)
    ]
    if not pair_parts:
        parts = [np.zeros(0, np.int64)] * 6 + [np.zeros(0)] * 2 + [np.zeros(0, np.bool_)]
    order = np.lexsort((parts[2], parts[1], parts[0]))
    pairs = InstancePairs(
        parts[0][order].astype(np.int64), parts[1][order].astype(np.int64),
        parts[2][order].astype(np.int64), parts[3][order].astype(np.int64),
        parts[4][order].astype(np.int64), parts[5][order].astype(np.int64),
        parts[6][order].astype(np.float64), parts[7][order].astype(np.float64),
        parts[8][order].astype(np.bool_), tuple(c.name for c in classes),
    )  # fmt: skip
    return columns, pairs


def _bin_name(edge: float) -> str:
    if math.isinf(edge):
        return "inf"
    return str(int(edge)) if float(edge).is_integer() else str(edge)


# -- the public function ------------------------------------------------------------------


def evaluate(
    prediction: npt.NDArray[Any] | Any,
    reference: npt.NDArray[Any] | Any,
    *,
    labels: Schema | Mapping[str, int | Iterable[int]] | Iterable[int] | None = None,
    spacing: npt.ArrayLike | None = None,
    affine: npt.ArrayLike | None = None,
    metrics: Iterable[Metric] = ("overlap", "distance"),
    tolerance_mm: float = 1.0,
    percentile: float = 95.0,
    surface: SurfaceMethod = "monai",
    empty: Empty = "nnunet",
    ignore_label: int | None = None,
    iou_threshold: float = 0.5,
    matching: Matching = "threshold",
    size_bins_mm3: Sequence[float] = DEFAULT_SIZE_BINS,
    ref_instances: npt.NDArray[Any] | Any | None = None,
    pred_instances: npt.NDArray[Any] | Any | None = None,
    connectivity: int | None = None,
    threads: int | None = None,
) -> Evaluation:
    """Score a predicted label map against a reference, class by class.

    **Overlap** (``"overlap"``), from one pass counting (reference, prediction) value
    pairs: voxel counts ``tp``, ``fp``, ``fn``, ``tn``; ``dice`` = 2 tp / (2 tp + fp +
    fn); ``iou`` = tp / (tp + fp + fn); ``precision`` = tp / (tp + fp); ``recall`` =
    tp / (tp + fn); ``ref_volume``, ``pred_volume`` and ``volume_difference`` (pred -
    ref) in the units of ``spacing`` cubed (mm³ for NIfTI).

    **Surface distances** (``"distance"``) between the class's surfaces in the
    reference and the prediction, in the units of ``spacing``: ``hd`` (Hausdorff),
    ``hd95`` (the larger of the two directed ``percentile`` distances), ``assd``
    (average symmetric surface distance), ``asd_ref_to_pred`` and ``asd_pred_to_ref``
    (the directed averages) and ``nsd`` (normalised surface Dice at ``tolerance_mm``).
    With ``surface="monai"`` these are MONAI's ``compute_hausdorff_distance``,
    ``compute_average_surface_distance(symmetric=True)`` and ``compute_surface_dice``:
    surfaces are the voxels of a mask with a face neighbour outside it (or on the
    volume's border), distances run between voxel centres, percentiles interpolate
    linearly and distances are rounded to float32 as MONAI keeps them. With
    ``surface="deepmind"`` they are DeepMind's ``surface-distance``: surface elements on
    the corners between voxels weighted by their area (length in 2-D), percentiles by
    area (``compute_robust_hausdorff``), ``asd_*`` from
    ``compute_average_surface_distance`` and ``nsd`` from
    ``compute_surface_dice_at_tolerance``; ``assd`` is the area-weighted mean over both
    surfaces.

    **Instances** (``"instances"``): connected components of each class (or the given
    instance maps) in reference and prediction; overlapping pairs of the same class
    with their IoU and Dice (``Evaluation.pairs``); one-to-one matching, greedy by
    decreasing IoU (ties: smaller reference id, then prediction id), of pairs with IoU
    >= ``iou_threshold`` (``matching="threshold"``, panoptica's naive threshold
    matching; above 0.5 a match is unique anyway) or of any overlapping pair
    (``matching="overlap"``); per class ``instance_tp`` / ``fp`` / ``fn``, ``f1``,
    ``sq`` (mean IoU of matches), ``rq`` = tp / (tp + fp/2 + fn/2) (equal to F1) and
    ``pq`` = sq x rq; and the recall of reference instances per volume bin.

    **Empty masks** (``empty``), for a class absent from the reference and/or the
    prediction:

    - ``"nnunet"`` (default, nnU-Net v2): a ratio whose denominator is 0 is NaN, so
      Dice and IoU are NaN only when both are empty, 0 when only one is; precision is
      NaN without predicted voxels, recall without reference voxels.
    - ``"monai"`` (MONAI's ``ignore_empty=True``): every metric of a class absent from
      the reference is NaN.
    - ``"one"`` (MONAI's ``ignore_empty=False``): both empty scores 1 (distances 0),
      one empty scores 0.

    Surface distances with one side empty are inf and NSD is 0 (MONAI; MONAI's own
    HD95 is NaN there, from interpolating between infinities); with both empty NaN,
    except as said above. Instance scores follow the same rules with instance counts in
    place of voxels. NaN is what nnU-Net's summary and MONAI's aggregation skip when
    averaging.

    An ignore label (nnU-Net's) removes its reference voxels from the overlap counts
    only; surfaces and instances are those of the maps as they are.

    Costs: one pass over both maps for the pair table; per class, work in its bounding
    box (the box of its voxels in both maps), classes on parallel threads; memory about
    ten bytes per voxel of the boxes being scored at once.

    Parameters
    ----------
    prediction, reference : numpy.ndarray, nibabel image or torch tensor
        1-D to 3-D integer label maps of one shape, 0 for background. Images bring their
        affines along (which must agree).
    labels : Schema, mapping, iterable of int, optional
        The classes: label values; ``{name: value or [values]}`` where a list is a
        region (BraTS whole tumour ``[1, 2, 3]``); or a :class:`~fastseg.Schema`, whose
        region categories (nnU-Net ``dataset.json``) are regions and whose ignore label
        is left out of every count. Default: every non-zero value present in either map.
    spacing : sequence of float, optional
        Voxel size per axis; default from the affine, else 1.
    affine : array_like, optional
        4 x 4 voxel-to-world matrix (default: the images').
    metrics : iterable of {"overlap", "distance", "instances"}, optional
        What to compute (default overlap and distances).
    tolerance_mm : float, optional
        Tolerance of the normalised surface Dice (default 1).
    percentile : float, optional
        The robust Hausdorff percentile of ``hd95`` (default 95).
    surface : {"monai", "deepmind"}, optional
        Which definition of surfaces and distances (default MONAI's).
    empty : {"nnunet", "monai", "one"}, optional
        Convention for empty masks (see above).
    ignore_label : int, optional
        Reference value whose voxels are left out of the overlap counts (nnU-Net's
        ignore label); a schema's ignore label is used by default.
    iou_threshold : float, optional
        Matching threshold (default 0.5).
    matching : {"threshold", "overlap"}, optional
        Instance matching (see above).
    size_bins_mm3 : sequence of float, optional
        Increasing edges of the volume bins for the per-size instance recall.
    ref_instances, pred_instances : numpy.ndarray, optional
        Instance maps to match instead of the connected components; each instance must
        lie within one label value of its map, and belongs to that value's class
        (instances are not matched within regions then).
    connectivity : int, optional
        Connectivity of the components (default full, as :func:`fastseg.label`).
    threads : int, optional
        Threads to use; results are identical for any count.

    Returns
    -------
    Evaluation

    Raises
    ------
    TypeError
        For float or non-array inputs, or malformed labels.
    ValueError
        For shape or affine mismatches, negative labels, unknown metrics or options.

    Examples
    --------
    >>> import numpy as np
    >>> import fastseg
    >>> reference = np.zeros((6, 6), np.uint8)
    >>> reference[1:5, 1:5] = 1
    >>> prediction = np.roll(reference, 1, axis=1)
    >>> result = fastseg.evaluate(prediction, reference, spacing=(1.0, 2.0))
    >>> row = result["1"]
    >>> row["dice"], row["tp"], row["hd"], row["hd95"]
    (0.75, 12, 2.0, 2.0)
    """
    wanted = _check_options(metrics, empty, surface, matching, tolerance_mm, percentile,
                            iou_threshold, size_bins_mm3)  # fmt: skip
    pred_source, pred_affine = _label_input(prediction, "prediction")
    ref_source, ref_affine = _label_input(reference, "reference")
    if pred_source.shape != ref_source.shape:
        raise ValueError(
            f"prediction and reference must have the same shape, got {pred_source.shape} "
            f"and {ref_source.shape}"
        )
    if (
        pred_affine is not None
        and ref_affine is not None
        and not np.allclose(pred_affine, ref_affine, atol=1e-4)
    ):
        raise ValueError(
            "prediction and reference are in different spaces: their affines differ\n"
            f"reference:\n{ref_affine}\nprediction:\n{pred_affine}"
        )
    ndim = ref_source.original.ndim
    geometry = _geometry.resolve(
        ndim, spacing, affine if affine is not None else (ref_affine if ref_affine is not None
                                                          else pred_affine)
    )  # fmt: skip
    pred_source = _aligned(pred_source, ref_source.order)
    ref_view, transposed = ref_source.view_3d()
    pred_view, _ = pred_source.view_3d()
    with thread_limit(threads):
        pairs = pair_table(ref_view, pred_view)
        present = np.union1d(pairs.ref, pairs.pred)
        classes, schema_ignore = _resolve_classes(labels, present)
        if ignore_label is None:
            ignore_label = schema_ignore
        elif labels is None:
            classes = [c for c in classes if c.values != (ignore_label,)]
        columns: dict[str, np.ndarray] = {}
        counted = pairs.ref != np.uint64(ignore_label) if ignore_label is not None else None
        overlap = _overlap_columns(pairs, classes, counted, geometry.voxel_volume, empty)
        if "overlap" in wanted:
            columns.update(overlap)
        if "distance" in wanted:
            columns.update(
                _distance_columns(
                    ref_view, pred_view, pairs, classes, overlap, ndim, transposed, ref_source,
                    geometry.spacing, surface, percentile, tolerance_mm, empty,
                )
            )  # fmt: skip
        instance_pairs = None
        if "instances" in wanted:
            instance_columns, instance_pairs = _instance_metrics(
                ref_source, pred_source, classes, ref_instances, pred_instances, connectivity,
                iou_threshold, matching, geometry.voxel_volume, size_bins_mm3, empty,
            )  # fmt: skip
            columns.update(instance_columns)
    return Evaluation(tuple(classes), columns, geometry.spacing, instance_pairs)


def _check_options(
    metrics: Iterable[str], empty: str, surface: str, matching: str, tolerance: float,
    percentile: float, threshold: float, bins: Sequence[float],
) -> set[str]:  # fmt: skip
    if isinstance(metrics, str):
        raise TypeError(f"metrics must be a list of names, got the string {metrics!r}")
    wanted = set(metrics)
    unknown = wanted - set(_METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {', '.join(_METRICS)}")
    if empty not in _EMPTY:
        raise ValueError(f"empty must be one of {', '.join(_EMPTY)}, got {empty!r}")
    if surface not in ("monai", "deepmind"):
        raise ValueError(f"surface must be 'monai' or 'deepmind', got {surface!r}")
    if matching not in ("threshold", "overlap"):
        raise ValueError(f"matching must be 'threshold' or 'overlap', got {matching!r}")
    if not (isinstance(tolerance, int | float) and math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance_mm must be a finite number >= 0, got {tolerance!r}")
    if not (isinstance(percentile, int | float) and 0 <= percentile <= 100):
        raise ValueError(f"percentile must be between 0 and 100, got {percentile!r}")
    if not (isinstance(threshold, int | float) and 0 < threshold <= 1):
        raise ValueError(f"iou_threshold must be in (0, 1], got {threshold!r}")
    edges = list(bins)
    if len(edges) < 2 or any(b >= a for a, b in zip(edges[1:], edges[:-1], strict=False)):
        raise ValueError(f"size_bins_mm3 must be at least two increasing edges, got {edges}")
    return wanted


def _overlap_columns(
    pairs: _Pairs,
    classes: Sequence[EvaluationClass],
    counted: np.ndarray | None,
    voxel_volume: float,
    empty: Empty,
) -> dict[str, np.ndarray]:
    n = len(classes)
    tp = np.zeros(n, np.int64)
    ref_total = np.zeros(n, np.int64)
    pred_total = np.zeros(n, np.int64)
    count = pairs.count if counted is None else np.where(counted, pairs.count, 0)
    total = int(count.sum())
    for row, c in enumerate(classes):
        values = np.array(c.values, np.uint64)
        in_ref = np.isin(pairs.ref, values)
        in_pred = np.isin(pairs.pred, values)
        tp[row] = int(count[in_ref & in_pred].sum())
        ref_total[row] = int(count[in_ref].sum())
        pred_total[row] = int(count[in_pred].sum())
    fp = pred_total - tp
    fn = ref_total - tp
    tn = total - tp - fp - fn
    ref_empty = ref_total == 0
    both_empty = ref_empty & (pred_total == 0)
    f = np.float64
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "dice": _ratio(2.0 * tp, (2 * tp + fp + fn).astype(f), ref_empty, both_empty, empty),
        "iou": _ratio(tp.astype(f), (tp + fp + fn).astype(f), ref_empty, both_empty, empty),
        "precision": _ratio(tp.astype(f), pred_total.astype(f), ref_empty, both_empty, empty),
        "recall": _ratio(tp.astype(f), ref_total.astype(f), ref_empty, both_empty, empty),
        "ref_volume": ref_total * voxel_volume,
        "pred_volume": pred_total * voxel_volume,
        "volume_difference": (pred_total - ref_total) * voxel_volume,
    }


def _membership(values: tuple[int, ...], high: int) -> np.ndarray:
    table = np.zeros(high + 1, np.bool_)
    inside = [v for v in values if v <= high]
    table[inside] = True
    return table


def _distance_columns(
    ref_view: np.ndarray,
    pred_view: np.ndarray,
    pairs: _Pairs,
    classes: Sequence[EvaluationClass],
    overlap: dict[str, np.ndarray],
    ndim: int,
    transposed: bool,
    source: LabelArray,
    spacing: tuple[float, ...],
    method: SurfaceMethod,
    percentile: float,
    tolerance: float,
    empty: Empty,
) -> dict[str, np.ndarray]:
    from fastseg._kernels import evaluate as evaluate_kernels

    if method == "deepmind" and ndim == 1:
        raise ValueError("surface='deepmind' needs 2-D or 3-D maps, as DeepMind's package does")
    ref_values, pred_values = pairs.ref, pairs.pred
    high = int(max(ref_values.max(initial=0), pred_values.max(initial=0)))
    if high >= _MAX_TABLE:
        # Sparse ids: score dense stand-ins, so that membership tables stay small.
        present = np.union1d(ref_values, pred_values)
        lookup = {int(v): i for i, v in enumerate(present.tolist())}
        from fastseg.relabel import remap

        ref_view = remap(ref_view, lookup)
        pred_view = remap(pred_view, lookup)
        ref_values = np.array([lookup[int(v)] for v in ref_values.tolist()], np.uint64)
        pred_values = np.array([lookup[int(v)] for v in pred_values.tolist()], np.uint64)
        classes = [
            EvaluationClass(c.name, tuple(lookup.get(v, present.size) for v in c.values))
            for c in classes
        ]
        high = present.size - 1
    pad = np.array([1 if a >= 3 - ndim else 0 for a in range(3)], np.int64)
    view_spacing = np.ones(3)
    for a in range(3 - ndim, 3):
        view_spacing[a] = spacing[source.caller_axis(a, transposed)]
    surfels = method == "deepmind"
    code_of = np.zeros(256, np.uint8)
    if surfels:
        code_area, _ = _code_areas(spacing)
        weights = _surfel_weights(ndim, transposed)
        for canonical in range(256):
            code_of[canonical] = (
                sum(weights[b >> 2 & 1, b >> 1 & 1, b & 1] for b in range(8) if canonical >> b & 1)
                & 0xFF
            )
        canonical_full = 0xF0 if ndim == 2 else 0xFF
    else:
        code_area, canonical_full = np.zeros(1), 0

    def box_of(c: EvaluationClass) -> tuple[np.ndarray, np.ndarray] | None:
        """The class's box over both maps, None when either map lacks the class."""
        if not (_present(pred_values, c.values) and _present(ref_values, c.values)):
            return None
        values = np.array(c.values, np.uint64)
        involved = np.isin(ref_values, values) | np.isin(pred_values, values)
        return pairs.box[involved, :3].min(axis=0), pairs.box[involved, 3:].max(axis=0)

    def score(c: EvaluationClass, box: tuple[np.ndarray, np.ndarray] | None) -> _SurfaceRow:
        if box is None:
            pred_empty = not _present(pred_values, c.values)
            ref_empty = not _present(ref_values, c.values)
            return _empty_surface_row(ref_empty, pred_empty, empty)
        start, stop = box
        membership = _membership(c.values, high)
        pred_to_ref, ref_to_pred, pred_areas, ref_areas = evaluate_kernels.class_surfaces(
            ref_view, pred_view, membership, membership,
            start.astype(np.int64), (stop - start).astype(np.int64), pad, view_spacing,
            surfels, code_of, canonical_full, code_area,
        )  # fmt: skip
        return _surface_metrics(
            pred_to_ref, ref_to_pred, pred_areas, ref_areas, method, percentile, tolerance
        )

    # Classes are independent and the kernel releases the GIL: they run as tasks on
    # fastseg's threads, largest box first so that no thread is left with the big ones
    # at the end, each writing its own row.
    boxes = [box_of(c) for c in classes]
    sizes = [0 if box is None else int(np.prod(box[1] - box[0])) for box in boxes]
    order = sorted(range(len(classes)), key=lambda c: -sizes[c])
    rows: list[_SurfaceRow] = [_SurfaceRow() for _ in classes]

    def score_task(t: int) -> None:
        c = order[t]
        rows[c] = score(classes[c], boxes[c])

    run_tasks(score_task, len(classes))
    return {
        "hd": np.array([r.hd for r in rows], np.float64),
        "hd95": np.array([r.hd95 for r in rows], np.float64),
        "assd": np.array([r.assd for r in rows], np.float64),
        "asd_ref_to_pred": np.array([r.to_pred for r in rows], np.float64),
        "asd_pred_to_ref": np.array([r.to_ref for r in rows], np.float64),
        "nsd": np.array([r.nsd for r in rows], np.float64),
    }


def _present(values: np.ndarray, wanted: tuple[int, ...]) -> bool:
    return bool(np.isin(values, np.array(wanted, np.uint64)).any())


class EvaluationMetric:
    """Accumulate :func:`evaluate` over batches, then average: MONAI's metric pattern.

    Call it with each batch of predictions and references (numpy arrays or torch
    tensors, CPU); :meth:`aggregate` gives the mean of every metric per class over all
    cases seen, NaN skipped (MONAI's ``reduction="mean"`` over ``not_nans``); :meth:`reset`
    starts over. fastseg itself never imports torch.

    A batch is ``(B, *spatial)`` label maps, or channel-first ``(B, C, *spatial)``: one
    channel holds labels, several channels are one-hot or probabilities and are turned
    into labels by argmax over the channels (MONAI's ``AsDiscrete(argmax=True)``).

    Parameters
    ----------
    spatial_dims : int, optional
        1, 2 or 3 (default 3): tells a channel axis from a batch of maps.
    **options
        Keyword arguments of :func:`evaluate` (``labels``, ``spacing``, ``metrics``,
        ``tolerance_mm``, ``empty``, ...).

    Examples
    --------
    >>> import numpy as np
    >>> import fastseg
    >>> metric = fastseg.EvaluationMetric(spatial_dims=2, labels=[1], metrics=["overlap"])
    >>> batch = np.zeros((2, 4, 4), np.uint8)
    >>> batch[:, 1:3, 1:3] = 1
    >>> _ = metric(batch, batch)
    >>> metric.aggregate()["1"]["dice"], len(metric.results)
    (1.0, 2)
    """

    def __init__(self, *, spatial_dims: Literal[1, 2, 3] = 3, **options: Any) -> None:
        if spatial_dims not in (1, 2, 3):
            raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims!r}")
        self.spatial_dims = spatial_dims
        self.options = options
        self.results: list[Evaluation] = []
        """One :class:`Evaluation` per case seen since the last :meth:`reset`."""

    def _labels(self, batch: Any, name: str) -> np.ndarray:
        array = _to_array(batch) if _is_tensor(batch) else np.asarray(batch)
        spatial = self.spatial_dims
        if array.ndim == spatial + 2:
            array = array[:, 0] if array.shape[1] == 1 else np.argmax(array, axis=1)
        elif array.ndim != spatial + 1:
            raise ValueError(
                f"{name} must be (batch, *spatial) or (batch, channels, *spatial) with "
                f"{spatial} spatial axes, got shape {array.shape}"
            )
        if array.dtype.kind == "f":
            rounded = np.rint(array)
            if not np.array_equal(rounded, array):
                raise ValueError(f"{name} holds fractional values; pass labels or one-hot")
            array = rounded.astype(np.int64)
        return array

    def __call__(self, y_pred: Any, y: Any) -> list[Evaluation]:
        """Score one batch; returns (and keeps) one :class:`Evaluation` per case."""
        predictions = self._labels(y_pred, "y_pred")
        references = self._labels(y, "y")
        if predictions.shape != references.shape:
            raise ValueError(
                f"y_pred and y must have the same shape, got {predictions.shape} and "
                f"{references.shape}"
            )
        batch = [
            evaluate(p, r, **self.options) for p, r in zip(predictions, references, strict=True)
        ]
        self.results.extend(batch)
        return batch

    def aggregate(self) -> dict[str, dict[str, float]]:
        """``{class: {metric: mean over cases}}``, NaN skipped (NaN when every case is)."""
        collected: dict[str, dict[str, list[float]]] = {}
        for result in self.results:
            for record in result.to_records():
                target = collected.setdefault(record["class"], {})
                for key, value in record.items():
                    if key in ("class", "values"):
                        continue
                    target.setdefault(key, []).append(float(value))
        means: dict[str, dict[str, float]] = {}
        for name, metrics in collected.items():
            means[name] = {}
            for key, values in metrics.items():
                array = np.array(values)
                array = array[~np.isnan(array)]
                means[name][key] = float(array.mean()) if array.size else math.nan
        return means

    def reset(self) -> None:
        """Forget every case seen."""
        self.results.clear()

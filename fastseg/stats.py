"""Per-instance statistics in physical units: size, box, centroid, intensity, surface.

Thin wrapper over :mod:`fastseg._kernels.stats`: accepts arrays or nibabel images,
derives the voxel geometry, renumbers sparse ids so that per-id tables stay small, and
returns an :class:`InstanceStats` table.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from fastseg import _geometry
from fastseg._arrays import LabelArray, as_label_array
from fastseg._files import atomic_path
from fastseg._jit import thread_limit
from fastseg._tables import IdSums, image_array, instance_columns, requested_ids
from fastseg._tensors import accepts_tensors
from fastseg.relabel import dense_ids

__all__ = ["InstanceStats", "contacts", "stats"]

# Per-block tables are kept under this many bytes in total.
_TABLE_BUDGET = 64 << 20
_ROWS_PER_BLOCK = 256
_MAX_BLOCKS = 64


@dataclass(frozen=True)
class InstanceStats:
    """One row per instance id; every column is a numpy array of ``len(self)`` rows.

    Look a row up by id (``table[5]`` gives a dict), test membership (``5 in table``),
    iterate over the ids, or convert with :meth:`to_records`, :meth:`to_dict`,
    :meth:`to_json`, :meth:`to_csv` and :meth:`to_pandas`.

    Examples
    --------
    >>> import numpy as np
    >>> import fastseg
    >>> table = fastseg.stats(np.array([[0, 4, 4], [9, 9, 9]], dtype=np.uint8))
    >>> len(table), list(table), 9 in table, table[4]["voxel_count"]
    (2, [4, 9], True, 2)
    """

    ids: npt.NDArray[np.uint64]
    """Instance ids, ascending (background excluded)."""
    voxel_count: npt.NDArray[np.int64]
    volume: npt.NDArray[np.float64]
    """Voxel count times the voxel volume (mm³ for NIfTI in mm)."""
    bbox: npt.NDArray[np.int64]
    """``(n, ndim, 2)``: per axis the half-open ``start, stop``; see :meth:`slices`."""
    centroid: npt.NDArray[np.float64]
    """``(n, ndim)`` mean voxel index per axis."""
    spacing: tuple[float, ...]
    centroid_world: npt.NDArray[np.float64] | None = None
    """``(n, 3)`` centroid in world coordinates through the affine, when one was given."""
    mean: npt.NDArray[np.float64] | None = None
    std: npt.NDArray[np.float64] | None = None
    """Sample standard deviation (n - 1 in the denominator, as SimpleITK; 0 for one voxel)."""
    min: npt.NDArray[np.float64] | None = None
    max: npt.NDArray[np.float64] | None = None
    sum: npt.NDArray[np.float64] | None = None
    surface: npt.NDArray[np.float64] | None = None
    """Area of the exposed voxel faces, in the units of ``spacing`` squared."""

    def __len__(self) -> int:
        return int(self.ids.size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.ids.tolist())

    def __contains__(self, instance: object) -> bool:
        return self._row(instance) is not None

    def __getitem__(self, instance: int) -> dict[str, Any]:
        row = self._row(instance)
        if row is None:
            raise KeyError(f"no instance {instance!r} in this table")
        return self._record(row)

    def _row(self, instance: object) -> int | None:
        """The row of an integer id, or None (also for anything that is not an integer)."""
        if isinstance(instance, bool) or not isinstance(instance, int | np.integer):
            return None
        key = int(instance)
        if not 0 <= key <= np.iinfo(np.uint64).max:
            return None
        row = int(np.searchsorted(self.ids, np.uint64(key)))
        return row if row < self.ids.size and int(self.ids[row]) == key else None

    def columns(self) -> list[str]:
        """Names of the columns present, in output order (bbox and vectors expanded)."""
        return list(self._record(0).keys()) if len(self) else []

    def _record(self, row: int) -> dict[str, Any]:
        ndim = self.centroid.shape[1]
        record: dict[str, Any] = {
            "id": int(self.ids[row]),
            "voxel_count": int(self.voxel_count[row]),
            "volume": float(self.volume[row]),
        }
        for axis in range(ndim):
            record[f"bbox_start_{axis}"] = int(self.bbox[row, axis, 0])
            record[f"bbox_stop_{axis}"] = int(self.bbox[row, axis, 1])
        for axis in range(ndim):
            record[f"centroid_{axis}"] = float(self.centroid[row, axis])
        if self.centroid_world is not None:
            for axis, name in enumerate("xyz"):
                record[f"centroid_world_{name}"] = float(self.centroid_world[row, axis])
        for name in ("mean", "std", "min", "max", "sum", "surface"):
            column = getattr(self, name)
            if column is not None:
                record[name] = float(column[row])
        return record

    def slices(self, instance: int) -> tuple[slice, ...]:
        """The bounding box of ``instance`` as slices: ``labels[table.slices(5)]``."""
        row = self._row(instance)
        if row is None:
            raise KeyError(f"no instance {instance!r} in this table")
        return tuple(slice(int(a), int(b)) for a, b in self.bbox[row])

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per instance, with plain Python numbers (JSON-ready)."""
        return [self._record(row) for row in range(len(self))]

    def to_dict(self) -> dict[int, dict[str, Any]]:
        """``{id: record}`` for every instance."""
        return {record["id"]: record for record in self.to_records()}

    def to_json(self, **kwargs: Any) -> str:
        """A JSON array of records (keyword arguments go to :func:`json.dumps`).
        NaN (the centroid of an absent id) is written as null."""
        records = [
            {k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
            for r in self.to_records()
        ]
        return json.dumps(records, **kwargs)

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write the table as CSV, atomically (a temporary file renamed into place)."""
        with (
            atomic_path(path, suffix=".csv") as temporary,
            open(temporary, "w", newline="", encoding="utf-8") as stream,
        ):
            writer = csv.DictWriter(stream, fieldnames=self.columns() or ["id"])
            writer.writeheader()
            writer.writerows(self.to_records())

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` indexed by id (needs pandas, which fastseg does not)."""
        try:
            import pandas
        except ImportError:
            raise ImportError("to_pandas needs pandas: pip install pandas") from None
        if not len(self):
            return pandas.DataFrame(columns=["id"]).set_index("id")
        return pandas.DataFrame.from_records(self.to_records(), index="id")


def block_count(view: np.ndarray, n_ids: int) -> int:
    """How many row blocks the measuring kernels split ``view`` into.

    It depends on the input only, never on the thread count, so that float sums are
    added in the same order with any number of threads; per-block tables stay within
    a memory budget.
    """
    from fastseg._kernels import stats as stats_kernels

    rows = int(view.shape[0] * view.shape[1])
    per_block = n_ids * (int(stats_kernels.N_INT) + int(stats_kernels.N_FLOAT)) * 8
    return max(1, min(_MAX_BLOCKS, rows // _ROWS_PER_BLOCK, _TABLE_BUDGET // per_block))


@accepts_tensors
def stats(
    labels: npt.NDArray[Any] | Any,
    image: npt.NDArray[Any] | Any | None = None,
    *,
    spacing: npt.ArrayLike | None = None,
    affine: npt.ArrayLike | None = None,
    ids: Iterable[int] | None = None,
    surface: bool = False,
    threads: int | None = None,
) -> InstanceStats:
    """Measure every instance of a label map in one pass.

    Parameters
    ----------
    labels : numpy.ndarray or nibabel image
        1-D to 3-D integer map of instance ids, 0 for background. A nibabel image brings
        its affine (and so its spacing) along.
    image : numpy.ndarray or nibabel image, optional
        Intensities of the same shape (and, for two images, the same affine); adds the
        ``mean``, ``std``, ``min``, ``max`` and ``sum`` columns.
    spacing : sequence of float, optional
        Voxel size per axis; by default taken from the affine, else 1.
    affine : array_like, optional
        4 x 4 voxel-to-world matrix (default: the labels image's); adds ``centroid_world``.
    ids : iterable of int, optional
        Report exactly these ids, in ascending order; absent ids get a count of 0 and
        NaN centroids and intensities. By default every id present.
    surface : bool, optional
        Add ``surface``: the area of the faces between an instance and anything else
        (other ids, background, the volume's border), with anisotropic spacing.
    threads : int, optional
        Threads to use; results are identical for any count.

    Returns
    -------
    InstanceStats

    Raises
    ------
    TypeError
        For float labels or a non-array input.
    ValueError
        For shape or affine mismatches, a malformed affine or spacing, negative labels.

    Examples
    --------
    >>> import numpy as np
    >>> import fastseg
    >>> labels = np.zeros((4, 4, 4), np.uint8)
    >>> labels[1:3, 1:3, 1:3] = 7
    >>> table = fastseg.stats(labels, spacing=(0.5, 0.5, 2.0))
    >>> table.ids, table.voxel_count, table.volume
    (array([7], dtype=uint64), array([8]), array([4.]))
    >>> table[7]["centroid_0"], table.slices(7)
    (1.5, (slice(1, 3, None), slice(1, 3, None), slice(1, 3, None)))
    """
    array, labels_affine = _geometry.unpack_image(labels, "labels")
    source = as_label_array(array, ndims=(1, 2, 3))
    geometry = _geometry.resolve(
        source.original.ndim, spacing, affine if affine is not None else labels_affine
    )
    ndim = source.original.ndim
    image_view = None if image is None else image_array(image, source, labels_affine)
    dense, old_ids = dense_ids(source)
    _, high = dense.value_range()
    n_ids = high + 1
    view, transposed = dense.view_3d()

    from fastseg._kernels import stats as stats_kernels

    blocks = block_count(view, n_ids)
    dummy = np.zeros((1, 1, 1), np.float64)
    with thread_limit(threads):
        if dense.size:
            ints, floats = stats_kernels.measure(
                view, dummy if image_view is None else image_view, image_view is not None,
                surface, n_ids, blocks,
            )  # fmt: skip
        else:
            ints = np.zeros((n_ids, stats_kernels.N_INT), np.int64)
            floats = np.zeros((n_ids, stats_kernels.N_FLOAT), np.float64)
        counts = ints[:, stats_kernels.COUNT]
        if image_view is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                means = floats[:, stats_kernels.TOTAL] / counts
            squares = stats_kernels.centered_squares(view, image_view, np.nan_to_num(means), blocks)
    present_dense = np.flatnonzero(counts[1:]) + 1
    measured = ints[present_dense]
    view_axes = list(range(3 - ndim, 3))
    caller = [dense.caller_axis(a, transposed) for a in view_axes]
    axes = [view_axes[i] for i in np.argsort(caller)]  # view axis of caller axis 0, 1, ...
    sums = IdSums(
        ids=present_dense.astype(np.uint64) if old_ids is None else old_ids[present_dense],
        count=measured[:, stats_kernels.COUNT],
        index_sums=measured[:, [stats_kernels.SUM0 + a for a in axes]],
        starts=measured[:, [stats_kernels.MIN0 + a for a in axes]],
        stops=measured[:, [stats_kernels.STOP0 + a for a in axes]],
        intensity=None
        if image_view is None
        else np.column_stack(
            [
                floats[present_dense, stats_kernels.TOTAL],
                squares[present_dense],
                floats[present_dense, stats_kernels.LOWEST],
                floats[present_dense, stats_kernels.HIGHEST],
            ]
        ),
        faces=measured[:, [stats_kernels.FACES0 + a for a in axes]] if surface else None,
    )
    wanted = None if ids is None else requested_ids(ids)
    return InstanceStats(**instance_columns(sums, geometry, wanted))


@accepts_tensors
def contacts(
    labels: npt.NDArray[Any] | Any,
    *,
    connectivity: int = 6,
    spacing: npt.ArrayLike | None = None,
    affine: npt.ArrayLike | None = None,
) -> dict[tuple[int, int], float]:
    """Which instances touch, and the area of the faces they share.

    The region adjacency graph of a label map (cc3d's ``contacts``): which vertebrae
    touch, which organs share a boundary.

    Parameters
    ----------
    labels : numpy.ndarray or nibabel image
        1-D to 3-D integer map of ids, 0 for background (never part of a contact).
    connectivity : int, optional
        6 (default): ids touch where voxels share a face. 18 and 26 (8 in 2-D) also
        report ids that touch only along an edge or at a corner, with area 0, as
        cc3d does.
    spacing : sequence of float, optional
        Voxel size per axis (default: from the affine or the image, else 1, which gives
        the number of shared faces).
    affine : array_like, optional
        4 x 4 voxel-to-world matrix used for the spacing when none is given.

    Returns
    -------
    dict[tuple[int, int], float]
        ``{(a, b): area}`` with ``a < b``, sorted by pair.

    Examples
    --------
    >>> import numpy as np
    >>> import fastseg
    >>> spine = np.array([[1, 1, 2, 2, 0, 3]], dtype=np.uint8)
    >>> fastseg.contacts(spine, spacing=(1.0, 2.5))
    {(1, 2): 1.0}
    """
    array, labels_affine = _geometry.unpack_image(labels, "labels")
    source = as_label_array(array, ndims=(1, 2, 3))
    ndim = source.original.ndim
    valid = {1: (2, 6, 18, 26), 2: (4, 8, 6, 18, 26), 3: (6, 18, 26)}[ndim]
    if isinstance(connectivity, bool) or connectivity not in valid:
        raise ValueError(
            f"connectivity {connectivity!r} is not valid for contacts in {ndim}-D; "
            f"choose one of {', '.join(str(c) for c in sorted(set(valid)))}"
        )
    kind = {2: 6, 4: 6, 8: 26}.get(connectivity, connectivity)
    geometry = _geometry.resolve(ndim, spacing, affine if affine is not None else labels_affine)
    low, high_ids, totals = contact_table(source, kind, geometry.face_areas())
    return {
        (int(a), int(b)): float(area)
        for a, b, area in zip(low.tolist(), high_ids.tolist(), totals.tolist(), strict=True)
    }


def contact_table(
    source: LabelArray, kind: int, face_areas: tuple[float, ...]
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64], npt.NDArray[np.float64]]:
    """Pairs of touching non-zero ids ``(a, b)`` with ``a < b``, sorted, and the area of
    the faces they share (``face_areas[axis]`` per face normal to a caller axis).

    ``kind`` is the 3-D neighbourhood (6, 18 or 26) of the contacts.
    """
    dense, old_ids = dense_ids(source)
    if dense.size == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0)
    _, high = dense.value_range()
    view, transposed = dense.view_3d()

    from fastseg._jit import chunks_for
    from fastseg._kernels import contacts as contacts_kernels

    n_ids = high + 1
    rows = view.shape[0] * view.shape[1]
    chunks = max(1, min(chunks_for(dense.size), rows))
    # Touching pairs grow with the number of ids (a few per id in real maps); start with
    # room for that and grow when a table overflows.
    bits = max(10, min(22, (4 * n_ids).bit_length()))
    while True:
        keys, counters, overflow = contacts_kernels.count_contacts(view, kind, n_ids, bits, chunks)
        if not overflow:
            break
        bits += 4
    face_area = np.zeros(contacts_kernels.N_COUNTERS)
    ndim = source.original.ndim
    for view_axis in range(3 - ndim, 3):
        face_area[view_axis] = face_areas[dense.caller_axis(view_axis, transposed)]
    per_entry = counters @ face_area
    order = np.argsort(keys, kind="stable")
    keys, per_entry = keys[order], per_entry[order]
    unique_keys, starts = np.unique(keys, return_index=True)
    totals = np.add.reduceat(per_entry, starts) if keys.size else per_entry
    low = unique_keys // np.uint64(n_ids)
    high_ids = unique_keys % np.uint64(n_ids)
    if old_ids is not None:
        low, high_ids = old_ids[low], old_ids[high_ids]
    return low, high_ids, totals

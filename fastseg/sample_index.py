"""A sample index per case: voxel counts, bounding boxes and sampled locations per class
and per instance, in one small versioned file that loads in milliseconds.

Data loaders read it instead of the label map to pick crop centres. The file (``.fsidx``,
format version 3) is a preamble (a signature, the format version, the header's length and
a CRC-32 of everything after the preamble), a zlib-compressed header (a JSON description:
shape, affine, seed, how many ids, the size of each part; then the small per-id arrays)
and the parts, the coded samples. Each id's sample is stored in the smallest of three
ways:

- the steps between its voxels' indices in the id's bounding box (row-major, sorted),
  each split into whole low bytes, kept as they are (they are close to random), and a
  high byte, compressed (a few bits);
- when the sample is every voxel of the id: the id's voxels in its box as runs along rows
  (voxels skipped before each run, and its length), zlib-compressed;
- when the id has at most 16 times more voxels than its sample: those runs and the
  largest key of the sample. The sample is the voxels with the smallest keys
  (:func:`fastseg.locations`), so reading computes the keys of the id's voxels and keeps
  those up to that key. A uniform sample of ``k`` of ``n`` voxels carries about
  ``log2(n choose k)`` bits; for small classes that is about what the label file spends
  on the class's shape, which runs store in less. Ids are stored this way while
  reading computes at most 4 keys per location.

Every id's high bytes (or runs) are a deflate stream of their own, so reading a file only
checks it (signature, version, CRC-32) and reads the small arrays; an id's locations are
decoded when first asked for, alone (what a crop needs), or all ids' at once with a few
numpy calls (:attr:`SampleIndex.indices`).

The classes may instead be stored all together, when the file is smaller that way: the
map of classes (each voxel's row in the class table, row-major) compressed once (LZMA or
deflate, whichever is smaller), and per class the shortest key limit that keeps its
sample and drops the next key (a bit count and that many high bits of the limit, about
3 bytes). This is chosen only for maps of at most 2^20 voxels and 4 voxels per
location, so that reading one class (decompressing the map, comparing, computing its
voxels' keys) stays within a few milliseconds; it is what keeps small label maps of
many small regions, whose runs compress worse than the whole map, under their label
files. The shape and affine of the label map are checked on request, a NIfTI file's from
its header alone.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from fastseg import _geometry
from fastseg._files import atomic_path
from fastseg._tensors import is_tensor, to_numpy
from fastseg.components import Connectivity
from fastseg.sampling import NNUNET_PER_CLASS, Locations, locations

__all__ = ["FORMAT", "SUFFIX", "VERSION", "SampleIndex", "load_index", "write_index"]

FORMAT = "fastseg-sample-index"
VERSION = 3
SUFFIX = ".fsidx"
"""The file name ending of sample index files, by convention."""

_SIGNATURE = b"\x89FSIDX\r\n"
_PREAMBLE = struct.Struct("<8sIII")  # signature, version, header bytes, CRC-32 of the rest

# How an id's sample is stored.
_STEPS, _EVERY, _BELOW = 0, 1, 2
# Runs are extracted for ids with at most this many voxels per sampled voxel.
_KEYED_RUNS_FACTOR = 16
# Ids are stored as runs and their largest key while reading the file back computes at
# most this many keys per location of their group.
_KEYED_BUDGET = 4
_ESCAPE = 255
# The classes may be stored as the whole class map (compressed once) and one key limit
# per class when the map has at most this many voxels, and at most _KEYED_BUDGET voxels
# per location (reading every class computes as many keys as the map has voxels).
_MAP_VOXELS = 1 << 20
# LZMA2 (lzma.FILTER_LZMA2) at its default preset with a 4 MiB window (the extreme
# presets save about 5 % on class maps for three times the writing time).
_LZMA_FILTERS = [{"id": 0x21, "preset": 6, "dict_size": 1 << 22}]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@dataclass(frozen=True, eq=False)
class SampleIndex:
    """The content of a sample index file (see :func:`write_index`, :func:`load_index`).

    Sampled voxels are kept as row-major flat indices into the label map, in ascending
    order per id; :meth:`coordinates` turns them into ``(n, ndim)`` coordinates.

    Examples
    --------
    >>> import numpy as np
    >>> import fastseg
    >>> labels = np.zeros((4, 4, 4), np.uint8)
    >>> labels[1:3, 1:3, 1:3] = 5
    >>> index = fastseg.SampleIndex.build(labels, per_class=3, seed=0)
    >>> index.ids.tolist(), index.counts.tolist(), index.coordinates(5).shape
    ([5], [8], (3, 3))
    """

    shape: tuple[int, ...]
    """Shape of the label map."""
    affine: npt.NDArray[np.float64] | None
    """Its voxel-to-world affine, when it had one."""
    seed: int
    """The seed the locations were drawn with."""
    ids: npt.NDArray[np.uint64]
    """Class ids, ascending."""
    counts: npt.NDArray[np.int64]
    """Voxels per class."""
    bbox: npt.NDArray[np.int64]
    """``(n, ndim, 2)`` half-open bounding box per class."""
    offsets: npt.NDArray[np.int64]
    """Class ``ids[j]``'s locations are ``indices[offsets[j]:offsets[j + 1]]``."""
    instance_ids: npt.NDArray[np.uint64]
    """Instance ids (components or the instance map's ids), ascending; may be empty."""
    instance_classes: npt.NDArray[np.uint64]
    instance_counts: npt.NDArray[np.int64]
    instance_bbox: npt.NDArray[np.int64]
    instance_offsets: npt.NDArray[np.int64]
    _samples: tuple[_Samples, _Samples] = field(repr=False)
    """The sampled voxels of the classes and of the instances (read from a file, they are
    decoded when first asked for: one id's alone, or all)."""

    @property
    def indices(self) -> npt.NDArray[np.int64]:
        """Row-major flat indices of the sampled voxels of every class."""
        return self._samples[0].all()

    @property
    def instance_indices(self) -> npt.NDArray[np.int64]:
        """Row-major flat indices of the sampled voxels of every instance."""
        return self._samples[1].all()

    # -- building ----------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        labels: npt.NDArray[Any] | Any,
        *,
        affine: npt.ArrayLike | None = None,
        per_class: int | None = NNUNET_PER_CLASS,
        fraction: float | None = None,
        per_instance: int | None = None,
        ids: Iterable[int] | None = None,
        instances: npt.NDArray[Any] | None = None,
        connectivity: Connectivity | None = None,
        seed: int | None = None,
        mode: Literal["nnunet"] | None = None,
        threads: int | None = None,
    ) -> SampleIndex:
        """Count, box and sample a label map (arguments as :func:`fastseg.locations`;
        ``affine`` defaults to a nibabel image's)."""
        import fastseg

        array, image_affine = _geometry.unpack_image(labels, "labels")
        if affine is not None:
            image_affine = _affine(affine)
        found = locations(
            array, per_class=per_class, fraction=fraction, per_instance=per_instance, ids=ids,
            instances=instances, connectivity=connectivity, seed=seed, mode=mode,
            threads=threads,
        )  # fmt: skip
        class_ids = np.array(sorted(found), np.uint64)
        table = fastseg.stats(array, ids=class_ids.tolist(), threads=threads)
        offsets, indices = _flat_indices([found[i] for i in class_ids.tolist()], found.shape)
        counts = np.array([found.counts[i] for i in class_ids.tolist()], np.int64)
        instance_fields, instance_map = _instance_fields(
            found, array, instances, connectivity, threads
        )
        volume = _numpy(array)
        size = int(np.prod(found.shape, dtype=np.int64))
        bbox = table.bbox
        if class_ids.size and class_ids[0] == 0 and counts[0]:
            # fastseg.stats counts 0 as background: its box from the map itself.
            bbox = bbox.copy()
            bbox[0] = _mask_box(volume == 0)
        class_runs = _candidate_runs(volume, class_ids, counts, bbox, offsets, size)
        codes = _class_codes(volume, class_ids, int(offsets[-1]))
        instance_indices = instance_fields.pop("instance_indices")
        instance_runs: dict[int, npt.NDArray[np.int64]] = {}
        if instance_map is not None:
            instance_runs = _candidate_runs(
                instance_map,
                instance_fields["instance_ids"],
                instance_fields["instance_counts"],
                instance_fields["instance_bbox"],
                instance_fields["instance_offsets"],
                size,
            )
        return cls(
            shape=found.shape,
            affine=image_affine,
            seed=found.seed,
            ids=class_ids,
            counts=counts,
            bbox=bbox,
            offsets=offsets,
            **instance_fields,
            _samples=(
                _Samples(offsets, indices, class_runs, codes=codes),
                _Samples(instance_fields["instance_offsets"], instance_indices, instance_runs),
            ),
        )

    # -- reading -----------------------------------------------------------------------

    def _row(self, ids: npt.NDArray[np.uint64], key: int, what: str) -> int:
        row = int(np.searchsorted(ids, np.uint64(key)))
        if row >= ids.size or int(ids[row]) != key:
            raise KeyError(f"no {what} {key} in this index")
        return row

    def flat(self, class_id: int) -> npt.NDArray[np.int64]:
        """The sampled voxels of a class as row-major flat indices (ascending)."""
        return self._samples[0].row(self._row(self.ids, class_id, "class"))

    def instance_flat(self, instance: int) -> npt.NDArray[np.int64]:
        """The sampled voxels of an instance as row-major flat indices (ascending)."""
        return self._samples[1].row(self._row(self.instance_ids, instance, "instance"))

    def coordinates(self, class_id: int) -> npt.NDArray[np.int64]:
        """The sampled voxels of a class as ``(n, ndim)`` coordinates."""
        return _unravel(self.flat(class_id), self.shape)

    def instance_coordinates(self, instance: int) -> npt.NDArray[np.int64]:
        """The sampled voxels of an instance as ``(n, ndim)`` coordinates."""
        return _unravel(self.instance_flat(instance), self.shape)

    def to_locations(self) -> Locations:
        """Everything as a :class:`fastseg.Locations` (locations in row-major order)."""
        classes: dict[int, npt.NDArray[np.integer]] = {
            int(i): self.coordinates(int(i)) for i in self.ids.tolist()
        }
        counts = dict(zip(self.ids.tolist(), self.counts.tolist(), strict=True))
        if not self.instance_ids.size:
            return Locations(classes, counts, self.shape, self.seed)
        names = self.instance_ids.tolist()
        return Locations(
            classes,
            counts,
            self.shape,
            self.seed,
            instances={int(i): self.instance_coordinates(int(i)) for i in names},
            instance_counts=dict(zip(names, self.instance_counts.tolist(), strict=True)),
            instance_classes=dict(zip(names, self.instance_classes.tolist(), strict=True)),
        )

    def check(self, shape: tuple[int, ...], affine: npt.ArrayLike | None = None) -> None:
        """Raise ValueError unless ``shape`` (and ``affine``, when both have one) match the
        label map the index was made from."""
        if tuple(shape) != self.shape:
            raise ValueError(
                f"the sample index was made from a label map of shape {self.shape}, "
                f"not {tuple(shape)}; rebuild it"
            )
        if affine is not None and self.affine is not None:
            given = _affine(affine)
            if not np.allclose(given, self.affine, rtol=1e-6, atol=1e-6):
                raise ValueError(
                    "the sample index was made from a label map with another affine; "
                    f"rebuild it\nindex:\n{self.affine}\ngiven:\n{given}"
                )


def _affine(affine: npt.ArrayLike) -> npt.NDArray[np.float64]:
    matrix = np.asarray(affine, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise ValueError(f"affine must be a 4 x 4 matrix, got shape {matrix.shape}")
    return matrix


def _mask_box(mask: np.ndarray) -> npt.NDArray[np.int64]:
    """The half-open bounding box ``(ndim, 2)`` of a mask with at least one voxel set."""
    box = np.zeros((mask.ndim, 2), np.int64)
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        box[axis] = hits[0], hits[-1] + 1
    return box


def _numpy(array: Any) -> np.ndarray:
    return to_numpy(array) if is_tensor(array) else np.asarray(array)


def _unravel(flat: npt.NDArray[np.int64], shape: tuple[int, ...]) -> npt.NDArray[np.int64]:
    if not shape:
        return np.zeros((flat.size, 0), np.int64)
    return np.stack(np.unravel_index(flat, shape), axis=1).astype(np.int64, copy=False)


def _flat_indices(
    arrays: list[npt.NDArray[np.integer]], shape: tuple[int, ...]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Offsets and the sorted row-major flat indices of each coordinate array."""
    offsets = np.zeros(len(arrays) + 1, np.int64)
    np.cumsum([len(a) for a in arrays], out=offsets[1:])
    indices = np.empty(int(offsets[-1]), np.int64)
    for j, coordinates in enumerate(arrays):
        if len(coordinates):
            flat = np.ravel_multi_index(tuple(coordinates.T.astype(np.int64)), shape)
            indices[offsets[j] : offsets[j + 1]] = np.sort(flat)
    return offsets, indices


def _instance_fields(
    found: Locations,
    labels: Any,
    instances: npt.NDArray[Any] | None,
    connectivity: Connectivity | None,
    threads: int | None,
) -> tuple[dict[str, npt.NDArray[Any]], np.ndarray | None]:
    """The instance fields of a :class:`SampleIndex`, and the instance map (None without
    instances)."""
    import fastseg

    ndim = len(found.shape)
    if found.instances is None:
        empty = {
            "instance_ids": np.zeros(0, np.uint64),
            "instance_classes": np.zeros(0, np.uint64),
            "instance_counts": np.zeros(0, np.int64),
            "instance_bbox": np.zeros((0, ndim, 2), np.int64),
            "instance_offsets": np.zeros(1, np.int64),
            "instance_indices": np.zeros(0, np.int64),
        }
        return empty, None
    assert found.instance_counts is not None
    assert found.instance_classes is not None
    names = np.array(sorted(found.instances), np.uint64)
    instance_map: Any
    if instances is None:
        instance_map = fastseg.label(labels, connectivity=connectivity, threads=threads).labels
    else:
        instance_map, _ = _geometry.unpack_image(instances, "instances")
    table = fastseg.stats(instance_map, ids=names.tolist(), threads=threads)
    offsets, indices = _flat_indices([found.instances[i] for i in names.tolist()], found.shape)
    fields = {
        "instance_ids": names,
        "instance_classes": np.array(
            [found.instance_classes[i] for i in names.tolist()], np.uint64
        ),
        "instance_counts": np.array([found.instance_counts[i] for i in names.tolist()], np.int64),
        "instance_bbox": table.bbox,
        "instance_offsets": offsets,
        "instance_indices": indices,
    }
    return fields, _numpy(instance_map)


# -- runs of an id's voxels in its box --------------------------------------------------------


def _candidate_runs(
    volume: np.ndarray,
    ids: npt.NDArray[np.uint64],
    counts: npt.NDArray[np.int64],
    bbox: npt.NDArray[np.int64],
    offsets: npt.NDArray[np.int64],
    size: int,
) -> dict[int, npt.NDArray[np.int64]]:
    """The runs (:func:`_box_runs`) of the ids whose file entry may be runs: those sampled
    whole, or with at most ``_KEYED_RUNS_FACTOR`` voxels per sampled voxel. Smallest
    boxes first, while the boxes read add up to at most four times the volume."""
    sizes = np.diff(offsets)
    boxes = np.prod(bbox[:, :, 1] - bbox[:, :, 0], axis=1) if len(ids) else np.zeros(0)
    eligible = (sizes > 0) & (counts <= _KEYED_RUNS_FACTOR * sizes)
    budget = 4 * size
    runs: dict[int, npt.NDArray[np.int64]] = {}
    for row in np.flatnonzero(eligible)[np.argsort(boxes[eligible], kind="stable")].tolist():
        budget -= int(boxes[row])
        if budget < 0:
            break
        box = tuple(slice(int(lo), int(hi)) for lo, hi in bbox[row])
        runs[row] = _box_runs(volume[box] == volume.dtype.type(ids[row]))
    return runs


def _box_runs(mask: np.ndarray) -> npt.NDArray[np.int64]:
    """The voxels of ``mask`` (a box) as runs along its rows, in row-major order: per run
    the voxels skipped since the end of the previous run (from the box's first voxel)
    and the run's length minus one, interleaved. Runs end at the end of each row."""
    width = mask.shape[-1] if mask.ndim else 1
    rows = mask.size // max(width, 1)
    padded = np.zeros((rows, width + 2), np.int8)
    padded[:, 1:-1] = mask.reshape(rows, width)
    edges = np.diff(padded, axis=1)
    start_row, start_col = np.nonzero(edges == 1)
    end_row, end_col = np.nonzero(edges == -1)
    starts = start_row.astype(np.int64) * width + start_col
    ends = end_row.astype(np.int64) * width + end_col
    skipped = starts - np.concatenate(([0], ends[:-1]))
    return np.stack([skipped, ends - starts - 1], axis=1).ravel()


def _seed_key_of(seed: int) -> np.uint64:
    """The 64-bit key :func:`fastseg.locations` mixes into voxel keys for ``seed``."""
    from fastseg.sampling import _seed_key

    return _seed_key(seed)[1]


def _voxel_keys(flat: npt.NDArray[np.int64], seed_key: np.uint64) -> npt.NDArray[np.uint64]:
    """The keys :func:`fastseg.locations` gives the voxels at row-major ``flat`` indices:
    the same function as its kernel's, in numpy's wrapping uint64 arithmetic, a block at
    a time so that the block stays in cache."""
    keys = flat.astype(np.uint64)
    block = 1 << 15
    spare = np.empty(min(block, keys.size), np.uint64)
    for start in range(0, keys.size, block):
        z = keys[start : start + block]
        shifted = spare[: z.size]
        z *= _GOLDEN
        z += seed_key
        np.right_shift(z, np.uint64(30), out=shifted)
        z ^= shifted
        z *= _M1
        np.right_shift(z, np.uint64(27), out=shifted)
        z ^= shifted
        z *= _M2
        np.right_shift(z, np.uint64(31), out=shifted)
        z ^= shifted
    return keys


# -- box-local indices ------------------------------------------------------------------------


def _to_box(
    flat: npt.NDArray[np.int64], shape: tuple[int, ...], box: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Row-major indices in ``box`` (ndim, 2) of the voxels at ``flat`` in ``shape``."""
    coordinates = np.unravel_index(flat, shape)
    low, extent = box[:, 0], box[:, 1] - box[:, 0]
    local: npt.NDArray[np.int64] = np.ravel_multi_index(
        tuple(c - lo for c, lo in zip(coordinates, low.tolist(), strict=True)), tuple(extent)
    ).astype(np.int64, copy=False)
    return local


def _box_starts(boxes: npt.NDArray[np.int64], shape: tuple[int, ...]) -> npt.NDArray[np.int64]:
    """The flat index of each box's first voxel."""
    strides = np.array([math.prod(shape[d + 1 :]) for d in range(len(shape))], np.int64)
    starts: npt.NDArray[np.int64] = (boxes[:, :, 0] * strides).sum(axis=1)
    return starts


def _whole_rows(boxes: npt.NDArray[np.int64], shape: tuple[int, ...]) -> bool:
    """Whether every box spans every axis but the first (box-local index = flat index
    minus the box's start)."""
    return bool(np.all(boxes[:, 1:, 1] - boxes[:, 1:, 0] == np.array(shape[1:], np.int64)))


def _from_box(
    local: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    boxes: npt.NDArray[np.int64],
    shape: tuple[int, ...],
) -> npt.NDArray[np.int64]:
    """Flat indices in ``shape`` of box-local indices: ``lengths[j]`` consecutive values
    of ``local`` lie in ``boxes[j]`` (``local`` is reused)."""
    starts = _box_starts(boxes, shape)
    if _whole_rows(boxes, shape):
        local += np.repeat(starts, lengths)
        return local
    result = np.repeat(starts, lengths)
    extent = boxes[:, :, 1] - boxes[:, :, 0]
    rest = local
    for d in range(len(shape) - 1, 0, -1):
        rest, within = np.divmod(rest, np.repeat(extent[:, d], lengths))
        within *= math.prod(shape[d + 1 :])
        result += within
    rest *= math.prod(shape[1:])
    result += rest
    return result


def _sums_before(
    cumulative: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Per segment (``lengths`` consecutive values), the running total before it, from
    the running totals ``cumulative`` of all values."""
    ends = np.cumsum(lengths)[:-1]
    before = np.zeros(lengths.size, np.int64)
    later = np.flatnonzero(ends > 0)
    before[later + 1] = cumulative[ends[later] - 1]
    return before


def _subtract_per_segment(
    values: npt.NDArray[np.int64], amounts: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]
) -> None:
    """Subtract ``amounts[j]`` from the ``lengths[j]`` values of segment ``j``, in place
    (segment by segment when there are few: no array as long as ``values``)."""
    if lengths.size > 64:
        values -= np.repeat(amounts, lengths)
        return
    start = 0
    for amount, length in zip(amounts.tolist(), lengths.tolist(), strict=True):
        values[start : start + length] -= amount
        start += length


# -- integer sequences ------------------------------------------------------------------------


def _width_and_bits(values: npt.NDArray[np.int64]) -> tuple[int, float]:
    """The number of low bytes stored as they are that makes ``values`` smallest, and
    the estimated size in bits (raw bytes, entropy of the high bytes, escapes)."""
    if values.size == 0:
        return 0, 0.0
    best = (0, math.inf)
    for width in range(8):
        raw = 8.0 * width * values.size
        if raw >= best[1]:
            break
        high = values >> (8 * width)
        escaped = high >= _ESCAPE
        histogram = np.bincount(np.minimum(high, _ESCAPE), minlength=_ESCAPE + 1)
        p = histogram[histogram > 0] / values.size
        bits = raw - values.size * float((p * np.log2(p)).sum()) + 48.0 * int(escaped.sum())
        if bits < best[1]:
            best = (width, bits)
    return best[0], best[1]


def _encode_values(
    values: npt.NDArray[np.int64], widths: npt.NDArray[np.uint8]
) -> dict[str, np.ndarray]:
    """Non-negative ``values`` as a high-byte plane, its escapes, and one plane of low
    bytes per width (``widths[i]`` low bytes of ``values[i]``)."""
    high = values >> (widths.astype(np.int64) * 8)
    parts: dict[str, np.ndarray] = {
        "high": np.minimum(high, _ESCAPE).astype(np.uint8),
        "escapes": high[high >= _ESCAPE].astype("<u8"),
    }
    for width in np.unique(widths).tolist():
        if width:
            chosen = values[widths == width].astype("<u8")
            parts[f"low{width}"] = np.ascontiguousarray(
                chosen.view(np.uint8).reshape(-1, 8)[:, :width]
            ).ravel()
    return parts


def _joined(high: np.ndarray, low: np.ndarray, width: int) -> npt.NDArray[np.int64]:
    """``high`` bytes above ``width`` low bytes each, as int64 (escapes not applied)."""
    count = high.size
    if low.size != count * width:
        raise ValueError("a plane of low bytes has the wrong size")
    if width == 0:
        return high.astype(np.int64)
    container = 2 if width == 1 else 4 if width <= 3 else 8
    joined = np.empty((count, container), np.uint8)
    joined[:, :width] = low.reshape(count, width)
    joined[:, width] = high
    joined[:, width + 1 :] = 0
    return joined.view(f"<u{container}").reshape(count).astype(np.int64)


def _decode_values(
    parts: dict[str, np.ndarray], widths: npt.NDArray[np.uint8], lengths: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """The values of :func:`_encode_values`, ``lengths[j]`` of them with ``widths[j]``."""
    high = parts["high"]
    if high.size != int(lengths.sum()):
        raise ValueError("the high bytes do not match the entries' lengths")
    distinct = np.unique(widths[lengths > 0]).tolist() or [0]
    if len(distinct) == 1:
        width = int(distinct[0])
        values = _joined(high, parts.get(f"low{width}", high[:0]), width)
        per_value: Any = width
    else:
        per_value = np.repeat(widths, lengths).astype(np.int64)
        values = np.zeros(high.size, np.int64)
        for width in distinct:
            chosen = per_value == width
            values[chosen] = _joined(high[chosen], parts.get(f"low{width}", high[:0]), width)
    escapes = parts["escapes"]
    if escapes.size:
        escaped = np.flatnonzero(high == _ESCAPE)
        if escaped.size != escapes.size:
            raise ValueError("escaped values do not match")
        shift = per_value if isinstance(per_value, int) else per_value[escaped]
        low_bits = values[escaped] & ((np.int64(1) << (8 * shift)) - 1)
        values[escaped] = (escapes.astype(np.int64) << (8 * shift)) | low_bits
    return values


# -- one group of ids (classes or instances) ----------------------------------------------------


def _zlib_bits(parts: dict[str, np.ndarray]) -> float:
    return 8.0 * sum(len(zlib.compress(part.tobytes(), 6)) for part in parts.values())


def _encode_group(
    shape: tuple[int, ...],
    counts: npt.NDArray[np.int64],
    bbox: npt.NDArray[np.int64],
    offsets: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int64],
    runs: dict[int, npt.NDArray[np.int64]],
    seed_key: np.uint64,
) -> tuple[dict[str, np.ndarray], dict[str, bytes]]:
    """Per id the smallest entry (steps, runs, runs and the largest key; the last only
    while reading back computes at most ``_KEYED_BUDGET`` keys per location), coded by
    :func:`_encode_values`: its high bytes as a deflate stream of its own (so that one id
    decodes alone), its low bytes and escapes in id order. Returns the small arrays
    (kinds, widths, entry lengths, stream lengths, escape counts, largest keys) and the
    parts (streams, low bytes, escapes)."""
    n = counts.size
    kinds = np.zeros(n, np.uint8)
    widths = np.zeros(n, np.uint8)
    steps: dict[int, npt.NDArray[np.int64]] = {}
    savings: list[tuple[float, int]] = []
    for row in range(n):
        sample = indices[offsets[row] : offsets[row + 1]]
        if sample.size == 0:
            continue
        steps[row] = np.diff(_to_box(sample, shape, bbox[row]), prepend=-1)
        width, bits = _width_and_bits(steps[row])
        widths[row] = width
        if row in runs:
            # Compare compressed sizes (runs repeat from row to row, which an entropy
            # estimate misses).
            bits = _zlib_bits(_encode_values(steps[row], np.full(steps[row].size, width, np.uint8)))
            run_bits = _zlib_bits(_encode_values(runs[row], np.zeros(runs[row].size, np.uint8)))
            if sample.size == counts[row]:
                if run_bits < bits:
                    kinds[row] = _EVERY
            elif run_bits + 64 < bits:
                savings.append(((bits - run_bits - 64) / counts[row], row))
    budget = _KEYED_BUDGET * int(offsets[-1])
    largest: dict[int, int] = {}
    for _, row in sorted(savings, reverse=True):
        if counts[row] > budget:
            continue
        budget -= int(counts[row])
        kinds[row] = _BELOW
        sample = indices[offsets[row] : offsets[row + 1]]
        largest[row] = int(_voxel_keys(sample, seed_key).max())
    lengths = np.zeros(n, np.int64)
    packed = np.zeros(n, np.int64)
    escaped = np.zeros(n, np.int64)
    blobs, low, escapes = bytearray(), bytearray(), bytearray()
    for row, row_steps in steps.items():
        if kinds[row] == _STEPS:
            sequence, width = row_steps, int(widths[row])
        else:
            sequence, width = runs[row], 0
        coded = _encode_values(sequence, np.full(sequence.size, width, np.uint8))
        blob = _deflate(coded["high"].tobytes())
        blobs += blob
        escapes += coded["escapes"].tobytes()
        if width:
            low += coded[f"low{width}"].tobytes()
        lengths[row], packed[row], escaped[row] = sequence.size, len(blob), coded["escapes"].size
    small: dict[str, np.ndarray] = {
        "kinds": kinds,
        "widths": np.where(kinds == _STEPS, widths, 0).astype(np.uint8),
        "lengths": lengths,
        "packed": packed,
        "escaped": escaped,
        "largest": np.array([largest[r] for r in sorted(largest)], np.uint64),
    }
    return small, {"blobs": bytes(blobs), "low": bytes(low), "escapes": bytes(escapes)}


def _deflate(data: bytes) -> bytes:
    """``data`` as a raw deflate stream (no zlib header or checksum: the file has one)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


def _parts(parts: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The parts of one coded sequence, escapes as uint64."""
    chosen = {name[len(prefix) :]: v for name, v in parts.items() if name.startswith(prefix)}
    chosen["escapes"] = chosen["escapes"].view("<u8")
    return chosen


def _expand_runs(
    pairs: npt.NDArray[np.int64],
    runs_per_id: npt.NDArray[np.int64],
    boxes: npt.NDArray[np.int64],
    shape: tuple[int, ...],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Flat indices of the voxels of runs (skipped, length - 1 pairs per id), and the
    number of voxels per id."""
    skipped, lengths = pairs[0::2], pairs[1::2] + 1
    ends = np.cumsum(skipped + lengths)
    ends -= np.repeat(_sums_before(ends, runs_per_id), runs_per_id)
    starts = _from_box(ends - lengths, runs_per_id, boxes, shape)
    per_id = np.bincount(
        np.repeat(np.arange(runs_per_id.size), runs_per_id), lengths, minlength=runs_per_id.size
    ).astype(np.int64)
    before = np.cumsum(lengths) - lengths
    voxels = np.arange(int(lengths.sum()), dtype=np.int64)
    voxels += np.repeat(starts - before, lengths)
    return voxels, per_id


def _decode_group(
    shape: tuple[int, ...],
    counts: npt.NDArray[np.int64],
    bbox: npt.NDArray[np.int64],
    sizes: npt.NDArray[np.int64],
    small: dict[str, np.ndarray],
    parts: dict[str, np.ndarray],
    seed_key: np.uint64 | None,
) -> tuple[npt.NDArray[np.int64], dict[int, npt.NDArray[np.int64]]]:
    """The sorted flat indices of every id's sample, and the runs of the ids stored as
    runs (kept, so that writing the index again stores them the same way)."""
    kinds, widths, lengths = small["kinds"], small["widths"], small["lengths"]
    as_steps = kinds == _STEPS
    if np.any(lengths[as_steps] != sizes[as_steps]) or np.any(lengths[~as_steps] % 2):
        raise ValueError("the entries' lengths do not match the sample sizes")
    step_sizes = sizes[as_steps]
    found = _decode_values(_parts(parts, "steps."), widths[as_steps], step_sizes)
    np.cumsum(found, out=found)
    # Steps are box-local indices' differences from the previous one (from -1).
    shift = _sums_before(found, step_sizes) + 1
    boxes = bbox[as_steps]
    whole_rows = _whole_rows(boxes, shape)
    if whole_rows:
        shift -= _box_starts(boxes, shape)
    _subtract_per_segment(found, shift, step_sizes)
    if not whole_rows:
        found = _from_box(found, step_sizes, boxes, shape)
    runs: dict[int, npt.NDArray[np.int64]] = {}
    if as_steps.all():
        return found, runs
    run_rows = np.flatnonzero(~as_steps)
    pairs = _decode_values(
        _parts(parts, "runs."), np.zeros(run_rows.size, np.uint8), lengths[run_rows]
    )
    bounds = np.concatenate(([0], np.cumsum(lengths[run_rows])))
    runs = {row: pairs[bounds[j] : bounds[j + 1]] for j, row in enumerate(run_rows.tolist())}
    indices = np.empty(int(sizes.sum()), np.int64)
    offsets = np.cumsum(sizes) - sizes
    results = [(np.flatnonzero(as_steps), found)]
    for kind in (_EVERY, _BELOW):
        rows = np.flatnonzero(kinds == kind)
        if rows.size == 0:
            continue
        chosen = np.repeat(kinds[run_rows] == kind, lengths[run_rows])
        voxels, per_id = _expand_runs(pairs[chosen], lengths[rows] // 2, bbox[rows], shape)
        if not np.array_equal(per_id, counts[rows]):
            raise ValueError("the runs do not cover the ids' voxels")
        if kind == _BELOW:
            assert seed_key is not None
            limits = small["largest"]
            if limits.size != rows.size:
                raise ValueError("the largest keys do not match the entries")
            keys = _voxel_keys(voxels, seed_key)
            if rows.size > 64:
                voxels = voxels[keys <= np.repeat(limits, per_id)]
            else:
                kept = np.empty(keys.size, np.bool_)
                start = 0
                for limit, count in zip(limits.tolist(), per_id.tolist(), strict=True):
                    np.less_equal(
                        keys[start : start + count], limit, out=kept[start : start + count]
                    )
                    start += count
                voxels = voxels[kept]
        if voxels.size != int(sizes[rows].sum()):
            raise ValueError("the runs and largest keys do not give the sample sizes")
        results.append((rows, voxels))
    for rows, values in results:
        placed = np.repeat(offsets[rows] - (np.cumsum(sizes[rows]) - sizes[rows]), sizes[rows])
        placed += np.arange(values.size, dtype=np.int64)
        indices[placed] = values
    return indices, runs


class _Coded:
    """One group's samples as a file holds them (:func:`_encode_group`): decoded for a
    few ids, or for all at once, with :func:`_decode_group`."""

    def __init__(
        self,
        shape: tuple[int, ...],
        fields: dict[str, np.ndarray],
        parts: dict[str, np.ndarray],
        seed: int,
    ) -> None:
        self.shape = shape
        self.fields = fields
        self.blobs = parts["blobs"].data
        self.low = parts["low"]
        self.escapes = parts["escapes"].view("<u8")
        self.seed = seed
        kinds, sizes = fields["kinds"], fields["sizes"]
        self.blob_ends = np.concatenate(([0], np.cumsum(fields["packed"])))
        self.escape_ends = np.concatenate(([0], np.cumsum(fields["escaped"])))
        low_sizes = np.where(kinds == _STEPS, sizes * fields["widths"], 0)
        self.low_ends = np.concatenate(([0], np.cumsum(low_sizes)))
        self.below_rank = np.cumsum(kinds == _BELOW) - 1
        steps = kinds == _STEPS
        if (
            self.blob_ends[-1] != self.blobs.nbytes
            or self.escape_ends[-1] != self.escapes.size
            or self.low_ends[-1] != self.low.size
            or int(np.count_nonzero(kinds == _BELOW)) != fields["largest"].size
            or np.any(fields["lengths"][steps] != sizes[steps])
            or np.any(kinds > _BELOW)
        ):
            raise ValueError("the parts do not match the ids' entries")

    def _high(self, row: int) -> np.ndarray:
        data = zlib.decompress(self.blobs[self.blob_ends[row] : self.blob_ends[row + 1]], -15)
        if len(data) != self.fields["lengths"][row]:
            raise ValueError("a coded sample has the wrong length")
        return np.frombuffer(data, np.uint8)

    def _escapes(self, rows: list[int]) -> np.ndarray:
        ends = self.escape_ends
        if not rows:
            return self.escapes[:0].view(np.uint8)
        chosen = [self.escapes[ends[r] : ends[r + 1]] for r in rows]
        return np.concatenate(chosen).view(np.uint8)

    def decode(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The sorted flat indices of the samples of ``rows`` (ascending), in turn."""
        fields = self.fields
        kinds = fields["kinds"][rows]
        small = {name: fields[name][rows] for name in ("kinds", "widths", "lengths")}
        below = rows[kinds == _BELOW]
        small["largest"] = fields["largest"][self.below_rank[below]]
        steps = rows[kinds == _STEPS].tolist()
        runs = rows[kinds != _STEPS].tolist()
        parts: dict[str, np.ndarray] = {
            "steps.high": _joined_bytes([self._high(r) for r in steps]),
            "steps.escapes": self._escapes(steps),
            "runs.high": _joined_bytes([self._high(r) for r in runs]),
            "runs.escapes": self._escapes(runs),
        }
        widths = fields["widths"]
        for width in sorted({int(widths[r]) for r in steps} - {0}):
            chosen = [r for r in steps if widths[r] == width]
            parts[f"steps.low{width}"] = _joined_bytes(
                [self.low[self.low_ends[r] : self.low_ends[r + 1]] for r in chosen]
            )
        seed_key = _seed_key_of(self.seed) if below.size else None
        indices, _ = _decode_group(
            self.shape, fields["counts"][rows], fields["bbox"][rows], fields["sizes"][rows],
            small, parts, seed_key,
        )  # fmt: skip
        return indices

    def runs(self) -> dict[int, npt.NDArray[np.int64]]:
        """The runs of the ids stored as runs (to write them the same way again)."""
        lengths = self.fields["lengths"]
        found = {}
        for row in np.flatnonzero(self.fields["kinds"] != _STEPS).tolist():
            parts = {"high": self._high(row), "escapes": self._escapes([row]).view("<u8")}
            found[row] = _decode_values(parts, np.zeros(1, np.uint8), lengths[row : row + 1])
        return found


def _joined_bytes(arrays: list[np.ndarray]) -> np.ndarray:
    if not arrays:
        return np.zeros(0, np.uint8)
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


# -- the whole map of classes ------------------------------------------------------------------


def _class_codes(
    volume: np.ndarray, class_ids: npt.NDArray[np.uint64], locations: int
) -> np.ndarray | None:
    """The label map with each voxel's class as its row in ``class_ids`` plus one (0: no
    class of the index), row-major, when the file may store the classes this way: at
    most ``_MAP_VOXELS`` voxels and ``_KEYED_BUDGET`` voxels per location (reading the
    classes back computes at most that many keys per location); else None."""
    size = volume.size
    n = class_ids.size
    if size == 0 or n == 0 or n >= 2**16 - 1:
        return None
    if size > _MAP_VOXELS or size > _KEYED_BUDGET * locations:
        return None
    values = np.ascontiguousarray(volume).reshape(-1).astype(np.uint64)
    rows = np.searchsorted(class_ids, values)
    found = class_ids[np.minimum(rows, n - 1)] == values
    codes = np.where(found, rows + 1, 0)
    return codes.astype(np.uint8 if n < 255 else np.uint16)


def _short_limit(largest: int, following: int | None) -> tuple[int, int]:
    """The shortest ``(bits, prefix)`` whose limit (:func:`_limit_of`) keeps the keys up
    to ``largest`` and drops ``following`` (the next larger key; None: there is none)."""
    if following is None:
        return 0, 0
    for bits in range(1, 65):
        prefix = largest >> (64 - bits)
        if _limit_of(bits, prefix) < following:
            return bits, prefix
    raise AssertionError("unreachable: 64 bits give the largest key itself")


def _limit_of(bits: int, prefix: int) -> int:
    """The largest key kept: ``prefix`` in the high ``bits`` bits, every bit below set."""
    return (prefix << (64 - bits)) | ((1 << (64 - bits)) - 1)


def _encode_limits(limits: list[tuple[int, int]]) -> bytes:
    """Per id its number of bits (one byte), then each prefix in whole bytes."""
    head = bytes(bits for bits, _ in limits)
    tail = b"".join(prefix.to_bytes((bits + 7) // 8, "little") for bits, prefix in limits)
    return head + tail


def _decode_limits(bits: np.ndarray, data: bytes) -> npt.NDArray[np.uint64]:
    limits = np.empty(bits.size, np.uint64)
    position = 0
    for j, b in enumerate(bits.tolist()):
        if b > 64:
            raise ValueError("a key limit has more than 64 bits")
        width = (b + 7) // 8
        prefix = int.from_bytes(data[position : position + width], "little")
        position += width
        limits[j] = _limit_of(b, prefix)
    if position != len(data):
        raise ValueError("the key limits do not add up")
    return limits


def _grouped(codes: np.ndarray, n: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The flat indices of the voxels of rows ``0 .. n - 1`` (code ``row + 1``), row by row
    and ascending within a row, and the number of voxels per row."""
    per_code = np.bincount(codes, minlength=n + 1)
    if per_code.size > n + 1:
        raise ValueError("the class map holds a class beyond the index's")
    order = np.argsort(codes, kind="stable")[int(per_code[0]) :]
    return order, per_code[1:].astype(np.int64)


def _encode_map(
    codes: np.ndarray,
    counts: npt.NDArray[np.int64],
    offsets: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int64],
    seed_key: np.uint64,
) -> tuple[bytes, bytes, str] | None:
    """The classes as the whole class map and one key limit per class: the compressed
    map, the limits, the codec; None when the samples are not the classes' smallest keys
    (then the classes are stored one by one)."""
    n = counts.size
    voxels, per_row = _grouped(codes, n)
    if not np.array_equal(per_row, counts):
        return None
    keys = _voxel_keys(voxels, seed_key)
    limits: list[tuple[int, int]] = []
    start = 0
    for row in range(n):
        count = int(counts[row])
        k = int(offsets[row + 1] - offsets[row])
        own = keys[start : start + count]
        start += count
        if k == count:
            limits.append((0, 0))
            continue
        if k == 0:
            return None
        sample = _voxel_keys(indices[offsets[row] : offsets[row + 1]], seed_key)
        smallest = np.partition(own, [k - 1, k])
        largest, following = int(smallest[k - 1]), int(smallest[k])
        if int(sample.max()) != largest:
            return None
        limits.append(_short_limit(largest, following))
    data = codes.tobytes()
    packed, codec = _deflate(data), "deflate"
    try:
        import lzma
    except ImportError:  # a Python built without liblzma: deflate only
        pass
    else:
        smaller = lzma.compress(data, lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
        if len(smaller) < len(packed):
            packed, codec = smaller, "lzma"
    return packed, _encode_limits(limits), codec


def _inflate_map(data: memoryview, codec: str, dtype: np.dtype[Any], size: int) -> np.ndarray:
    if dtype.str not in ("|u1", "<u2"):
        raise ValueError(f"a class map of dtype {dtype.str!r}")
    if codec == "deflate":
        try:
            raw = zlib.decompress(data, -15)
        except zlib.error as e:
            raise ValueError(f"the class map cannot be decompressed ({e})") from None
    elif codec == "lzma":
        import lzma

        try:
            raw = lzma.decompress(data, lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
        except lzma.LZMAError as e:
            raise ValueError(f"the class map cannot be decompressed ({e})") from None
    else:
        raise ValueError(f"unknown class map codec {codec!r}")
    if len(raw) != size * dtype.itemsize:
        raise ValueError("the class map has the wrong size")
    return np.frombuffer(raw, dtype)


class _Mapped:
    """The classes as a file holds them in map form (:func:`_encode_map`): the class map
    is decompressed when a class is first asked for, then each class's sample is its
    voxels whose keys are at most its limit."""

    def __init__(
        self,
        shape: tuple[int, ...],
        fields: dict[str, np.ndarray],
        data: memoryview,
        codec: str,
        dtype: np.dtype[Any],
        seed: int,
    ) -> None:
        self.shape = shape
        self.fields = fields
        self.data = data
        self.codec = codec
        self.dtype = dtype
        self.seed = seed
        self._codes: np.ndarray | None = None

    def codes(self) -> np.ndarray:
        if self._codes is None:
            size = math.prod(self.shape)
            self._codes = _inflate_map(self.data, self.codec, self.dtype, size)
        return self._codes

    def decode(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The sorted flat indices of the samples of ``rows`` (ascending), in turn."""
        codes = self.codes()
        counts, sizes = self.fields["counts"], self.fields["sizes"]
        limits = self.fields["limits"]
        seed_key = _seed_key_of(self.seed)
        if rows.size > 4 and np.array_equal(rows, np.arange(counts.size)):
            voxels, per_row = _grouped(codes, counts.size)
            if not np.array_equal(per_row, counts):
                raise ValueError("the class map does not match the classes' counts")
            voxels = voxels[_voxel_keys(voxels, seed_key) <= np.repeat(limits, counts)]
            if voxels.size != int(sizes.sum()):
                raise ValueError("the class map and key limits do not give the sample sizes")
            return voxels.astype(np.int64, copy=False)
        chosen = []
        for row in rows.tolist():
            voxels = np.flatnonzero(codes == row + 1)
            if voxels.size != counts[row]:
                raise ValueError("the class map does not match the classes' counts")
            voxels = voxels[_voxel_keys(voxels, seed_key) <= limits[row]]
            if voxels.size != sizes[row]:
                raise ValueError("the class map and key limits do not give the sample sizes")
            chosen.append(voxels.astype(np.int64))
        return np.concatenate(chosen) if chosen else np.zeros(0, np.int64)

    def runs(self) -> dict[int, npt.NDArray[np.int64]]:
        return {}


class _Samples:
    """The sampled voxels of one group of ids: decoded already (built), or coded (read
    from a file) and decoded when first asked for, one id at a time or all at once."""

    def __init__(
        self,
        offsets: npt.NDArray[np.int64],
        indices: npt.NDArray[np.int64] | None = None,
        runs: dict[int, npt.NDArray[np.int64]] | None = None,
        coded: _Coded | _Mapped | None = None,
        codes: np.ndarray | None = None,
    ) -> None:
        self.offsets = offsets
        self._all = indices
        self._runs = runs
        self._coded = coded
        self._codes = codes
        self._rows: dict[int, npt.NDArray[np.int64]] = {}

    def all(self) -> npt.NDArray[np.int64]:
        if self._all is None:
            assert self._coded is not None
            self._all = self._coded.decode(np.arange(self.offsets.size - 1))
        return self._all

    def row(self, row: int) -> npt.NDArray[np.int64]:
        if self._all is not None:
            return self._all[self.offsets[row] : self.offsets[row + 1]]
        found = self._rows.get(row)
        if found is None:
            assert self._coded is not None
            found = self._rows[row] = self._coded.decode(np.array([row], np.int64))
        return found

    def runs(self) -> dict[int, npt.NDArray[np.int64]]:
        if self._runs is None:
            self._runs = self._coded.runs() if self._coded is not None else {}
        return self._runs

    def codes(self) -> np.ndarray | None:
        """The class map (:func:`_class_codes`), when the group may be stored as one."""
        if self._codes is None and isinstance(self._coded, _Mapped):
            return self._coded.codes()
        return self._codes


# -- the file ---------------------------------------------------------------------------------

_GROUPS = ("classes", "instances")


def _layout(group: str, n: int, ndim: int) -> list[tuple[str, str, tuple[int, ...]]]:
    """Name, little-endian dtype and shape of the small arrays of a group of ``n`` ids,
    in the order the file keeps them (then one largest key per id stored as runs and
    its largest key)."""
    fields = [
        ("ids", "<u8", (n,)),
        ("counts", "<i8", (n,)),
        ("bbox", "<i8", (n, ndim, 2)),
        ("sizes", "<i8", (n,)),
        ("kinds", "|u1", (n,)),
        ("widths", "|u1", (n,)),
        ("lengths", "<i8", (n,)),
        ("packed", "<i8", (n,)),
        ("escaped", "<i8", (n,)),
    ]
    return fields + ([("classes", "<u8", (n,))] if group == "instances" else [])


def _map_layout(n: int, ndim: int) -> list[tuple[str, str, tuple[int, ...]]]:
    """The small arrays of the classes stored as the class map (then the key limits'
    prefixes, :func:`_encode_limits`)."""
    return [
        ("ids", "<u8", (n,)),
        ("counts", "<i8", (n,)),
        ("bbox", "<i8", (n, ndim, 2)),
        ("sizes", "<i8", (n,)),
    ]


def _group_fields(index: SampleIndex, group: str) -> dict[str, np.ndarray]:
    if group == "classes":
        return {
            "ids": index.ids,
            "counts": index.counts,
            "bbox": index.bbox,
            "sizes": np.diff(index.offsets),
        }
    return {
        "ids": index.instance_ids,
        "classes": index.instance_classes,
        "counts": index.instance_counts,
        "bbox": index.instance_bbox,
        "sizes": np.diff(index.instance_offsets),
    }


def _compressed(data: bytes) -> tuple[bytes, str]:
    packed = zlib.compress(data, 9)
    return (packed, "zlib") if len(packed) < 0.97 * len(data) else (data, "raw")


def _file_bytes(index: SampleIndex) -> bytes:
    """The file holding ``index`` (see the module's description): the classes one by
    one, or as the class map when the group has one and that file is smaller."""
    data = _file_bytes_as(index, mapped=False)
    codes = index._samples[0].codes()
    if codes is not None:
        mapped = _file_bytes_as(index, mapped=True)
        if mapped and len(mapped) < len(data):
            return mapped
    return data


def _file_bytes_as(index: SampleIndex, mapped: bool) -> bytes:
    seed_key = _seed_key_of(index.seed)
    ndim = len(index.shape)
    meta = bytearray()
    coded: dict[str, bytes] = {}
    counts: list[int] = []
    header: dict[str, Any] = {
        "shape": list(index.shape),
        "affine": None if index.affine is None else index.affine.tolist(),
        "seed": str(index.seed),
    }
    for g, group in enumerate(_GROUPS):
        fields = _group_fields(index, group)
        offsets, indices = (
            (index.offsets, index.indices) if g == 0 else
            (index.instance_offsets, index.instance_indices)
        )  # fmt: skip
        n = int(fields["ids"].size)
        counts.append(n)
        if g == 0 and mapped:
            codes = index._samples[0].codes()
            assert codes is not None
            found = _encode_map(codes, fields["counts"], offsets, indices, seed_key)
            if found is None:
                return b""
            packed, limits, codec = found
            header["map"] = [codec, codes.dtype.str]
            for name, dtype, shape in _map_layout(n, ndim):
                meta += np.ascontiguousarray(fields[name], dtype).reshape(shape).tobytes()
            meta += limits
            coded[f"{group}.map"] = packed
            continue
        small, parts = _encode_group(
            index.shape, fields["counts"], fields["bbox"], offsets, indices,
            index._samples[g].runs(), seed_key,
        )  # fmt: skip
        fields.update(small)
        for name, dtype, shape in [*_layout(group, n, ndim), ("largest", "<u8", (-1,))]:
            meta += np.ascontiguousarray(fields[name], dtype).reshape(shape).tobytes()
        coded.update({f"{group}.{name}": value for name, value in parts.items() if value})
    sections: dict[str, list[Any]] = {}
    payload = bytearray()
    for name, part in coded.items():
        # Each id's stream and the class map are compressed already; low bytes are
        # close to random.
        plain = name.endswith((".blobs", ".low", ".map"))
        stored, codec = (part, "raw") if plain else _compressed(part)
        sections[name] = [len(stored), codec, len(part)]
        payload += stored
    header["ids"] = counts
    header["sections"] = sections
    text = json.dumps(header, separators=(",", ":")).encode()
    packed_header = zlib.compress(struct.pack("<I", len(text)) + text + bytes(meta), 9)
    rest = packed_header + bytes(payload)
    preamble = _PREAMBLE.pack(_SIGNATURE, VERSION, len(packed_header), zlib.crc32(rest))
    return preamble + rest


def _read_file(path: str | os.PathLike[str]) -> SampleIndex:
    with open(path, "rb") as stream:
        data = stream.read()
    name = os.fspath(path)
    if data[:4] == b"PK\x03\x04":
        raise ValueError(
            f"{name} is a version 1 sample index (.npz) or another archive; this fastseg "
            f"reads version {VERSION}: rebuild the index with fastseg.write_index or "
            "`fastseg index`"
        )
    if len(data) < _PREAMBLE.size or data[:8] != _SIGNATURE:
        raise ValueError(f"{name} is not a fastseg sample index (no signature)")
    _, version, header_size, checksum = _PREAMBLE.unpack_from(data)
    if version != VERSION:
        raise ValueError(
            f"{name} is a version {version} sample index; this fastseg reads version "
            f"{VERSION} (rebuild the index)"
        )
    rest = memoryview(data)[_PREAMBLE.size :]
    if zlib.crc32(rest) != checksum:
        raise ValueError(f"{name}: the sample index is damaged or truncated (CRC-32 mismatch)")
    try:
        return _parse(rest, header_size)
    except (KeyError, ValueError, TypeError, IndexError, zlib.error, json.JSONDecodeError) as e:
        raise ValueError(f"{name}: not a readable sample index ({e})") from None


def _parse(rest: memoryview, header_size: int) -> SampleIndex:
    unpacked = zlib.decompress(rest[:header_size])
    (text_size,) = struct.unpack_from("<I", unpacked)
    header = json.loads(unpacked[4 : 4 + text_size])
    meta = np.frombuffer(unpacked, np.uint8)[4 + text_size :]
    sections: dict[str, np.ndarray] = {}
    start = header_size
    for name, (length, codec, size) in header["sections"].items():
        raw = rest[start : start + length]
        start += length
        data = zlib.decompress(raw) if codec == "zlib" else raw
        if len(data) != size:
            raise ValueError(f"part {name!r} has {len(data)} bytes, not {size}")
        sections[name] = np.frombuffer(data, np.uint8)
    if start != len(rest):
        raise ValueError("the parts do not add up to the file")
    shape = tuple(int(n) for n in header["shape"])
    seed = int(header["seed"])
    position = 0

    def take(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
        nonlocal position
        count = math.prod(shape)
        value = np.frombuffer(meta, dtype, count, position).reshape(shape)
        position += value.nbytes
        return value.astype(value.dtype.newbyteorder("="), copy=False)

    samples: list[_Samples] = []
    groups: list[dict[str, np.ndarray]] = []
    for group, n in zip(_GROUPS, header["ids"], strict=True):
        offsets = np.zeros(n + 1, np.int64)
        if group == "classes" and "map" in header:
            codec, dtype = header["map"]
            if np.dtype(dtype).str not in ("|u1", "<u2"):
                raise ValueError(f"a class map of dtype {dtype!r}")
            fields = {name: take(t, shape_) for name, t, shape_ in _map_layout(n, len(shape))}
            bits = take("|u1", (n,))
            width = int(((bits.astype(np.int64) + 7) // 8).sum())
            fields["limits"] = _decode_limits(bits, meta[position : position + width].tobytes())
            position += width
            np.cumsum(fields["sizes"], out=offsets[1:])
            data = sections.get(f"{group}.map", np.zeros(0, np.uint8)).data
            mapped = _Mapped(shape, fields, data, codec, np.dtype(dtype), seed)
            samples.append(_Samples(offsets, coded=mapped))
            groups.append(fields)
            continue
        fields = {
            name: take(dtype, shape_) for name, dtype, shape_ in _layout(group, n, len(shape))
        }
        fields["largest"] = take("<u8", (int(np.count_nonzero(fields["kinds"] == _BELOW)),))
        empty = np.zeros(0, np.uint8)
        parts = {
            name: sections.get(f"{group}.{name}", empty) for name in ("blobs", "low", "escapes")
        }
        np.cumsum(fields["sizes"], out=offsets[1:])
        samples.append(_Samples(offsets, coded=_Coded(shape, fields, parts, seed)))
        groups.append(fields)
    if position != meta.size:
        raise ValueError("the small arrays do not add up")
    affine = header["affine"]
    classes, instances = groups
    return SampleIndex(
        shape=shape,
        affine=None if affine is None else np.array(affine, np.float64),
        seed=seed,
        ids=classes["ids"],
        counts=classes["counts"],
        bbox=classes["bbox"],
        offsets=samples[0].offsets,
        instance_ids=instances["ids"],
        instance_classes=instances["classes"],
        instance_counts=instances["counts"],
        instance_bbox=instances["bbox"],
        instance_offsets=samples[1].offsets,
        _samples=(samples[0], samples[1]),
    )


def write_index(
    path: str | os.PathLike[str],
    labels: npt.NDArray[Any] | Any | SampleIndex,
    **kwargs: Any,
) -> SampleIndex:
    """Write a sample index file for one label map.

    Parameters
    ----------
    path : str or path-like
        The file to write (``.fsidx`` by convention), atomically: a temporary file
        renamed into place.
    labels : numpy.ndarray, nibabel image, path or SampleIndex
        The label map (a path is read with :func:`fastseg.load`), or an index already
        built.
    **kwargs
        For :meth:`SampleIndex.build`: ``per_class``, ``fraction``, ``per_instance``,
        ``ids``, ``instances``, ``connectivity``, ``seed``, ``mode``, ``threads``,
        ``affine``.

    Returns
    -------
    SampleIndex
        What was written.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> import fastseg
    >>> labels = np.zeros((6, 6, 6), np.uint8)
    >>> labels[:3] = 1
    >>> labels[4:, 4:, 4:] = 2
    >>> folder = tempfile.mkdtemp()
    >>> path = os.path.join(folder, "case.fsidx")
    >>> written = fastseg.write_index(path, labels, per_class=5, per_instance=2, seed=1)
    >>> index = fastseg.load_index(path, shape=(6, 6, 6))
    >>> index.counts.tolist(), index.instance_classes.tolist()
    ([108, 8], [1, 2])
    >>> bool((index.indices == written.indices).all())
    True
    """
    if isinstance(labels, SampleIndex):
        if kwargs:
            raise TypeError("an index already built takes no sampling arguments")
        index = labels
    else:
        if isinstance(labels, str | os.PathLike):
            from fastseg.io import load

            image = load(labels)
            kwargs.setdefault("affine", image.affine)
            labels = image.labels
        index = SampleIndex.build(labels, **kwargs)
    data = _file_bytes(index)
    with atomic_path(path, suffix=SUFFIX) as temporary, open(temporary, "wb") as stream:
        stream.write(data)
    return index


def load_index(
    path: str | os.PathLike[str],
    *,
    labels: str | os.PathLike[str] | Any | None = None,
    shape: tuple[int, ...] | None = None,
    affine: npt.ArrayLike | None = None,
) -> SampleIndex:
    """Read a sample index file, checked against the label map it describes.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`write_index`.
    labels : path, nibabel image or numpy.ndarray, optional
        The label map: its shape and affine must match the index's. A path of any
        volume format :func:`fastseg.load` reads; a NIfTI or MGH file is checked by its
        header alone (no voxel is read or decompressed).
    shape, affine : optional
        Or the shape (and affine) to check against.

    Returns
    -------
    SampleIndex
        Counts and boxes read; each id's locations are decoded when first asked for
        (:meth:`SampleIndex.flat`), or every id's through ``indices``.

    Raises
    ------
    ValueError
        If the file is not a sample index, has a version this fastseg cannot read, is
        damaged (its CRC-32 is checked), or was made from a label map of another shape
        or affine.

    Examples
    --------
    See :func:`write_index`.
    """
    index = _read_file(path)
    if labels is not None:
        if isinstance(labels, str | os.PathLike):
            shape, affine = _file_geometry(labels)
        else:
            array, image_affine = _geometry.unpack_image(labels, "labels")
            shape = tuple(np.shape(array))  # type: ignore[call-overload]
            affine = affine if affine is not None else image_affine
    if shape is not None:
        index.check(shape, affine)
    elif affine is not None:
        index.check(index.shape, affine)
    return index


def _file_geometry(
    path: str | os.PathLike[str],
) -> tuple[tuple[int, ...], npt.NDArray[np.float64]]:
    """Shape and affine of a label file as :func:`fastseg.load` gives them: a NIfTI or MGH
    file's from its header, other formats' by reading the file."""
    from fastseg.formats.registry import volume_format

    kind = volume_format(path).name
    if kind == "nifti":
        from fastseg.formats.nifti import read_geometry

        return read_geometry(path)
    if kind == "mgh" and os.path.exists(path):
        import nibabel

        header_image: Any = nibabel.load(os.fspath(path))
        return tuple(header_image.shape), np.asarray(header_image.affine, np.float64)
    from fastseg.io import load

    image = load(path)
    return tuple(image.labels.shape), np.asarray(image.affine, np.float64)

"""A sample index per case: voxel counts, bounding boxes and sampled locations per class
and per instance, in one small versioned file that loads in milliseconds.

Data loaders read it instead of the label map to pick crop centres. The file is an
``.npz`` archive (zlib-compressed): each id's sampled voxels are stored as row-major
flat indices, sorted and delta-encoded, which compresses to a few bits per location;
the shape and affine of the label map it was made from are checked on read.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from fastseg import _geometry
from fastseg._files import atomic_path
from fastseg.components import Connectivity
from fastseg.sampling import NNUNET_PER_CLASS, Locations, locations

__all__ = ["FORMAT", "VERSION", "SampleIndex", "load_index", "write_index"]

FORMAT = "fastseg-sample-index"
VERSION = 1

_EMPTY_INDICES = np.zeros(0, np.int64)


@dataclass(frozen=True)
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
    indices: npt.NDArray[np.int64]
    """Row-major flat indices of the sampled voxels."""
    instance_ids: npt.NDArray[np.uint64]
    """Instance ids (components or the instance map's ids), ascending; may be empty."""
    instance_classes: npt.NDArray[np.uint64]
    instance_counts: npt.NDArray[np.int64]
    instance_bbox: npt.NDArray[np.int64]
    instance_offsets: npt.NDArray[np.int64]
    instance_indices: npt.NDArray[np.int64]

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
        instance_fields = _instance_fields(found, array, instances, connectivity, threads)
        return cls(
            shape=found.shape,
            affine=image_affine,
            seed=found.seed,
            ids=class_ids,
            counts=np.array([found.counts[i] for i in class_ids.tolist()], np.int64),
            bbox=table.bbox,
            offsets=offsets,
            indices=indices,
            **instance_fields,
        )

    # -- reading -----------------------------------------------------------------------

    def _row(self, ids: npt.NDArray[np.uint64], key: int, what: str) -> int:
        row = int(np.searchsorted(ids, np.uint64(key)))
        if row >= ids.size or int(ids[row]) != key:
            raise KeyError(f"no {what} {key} in this index")
        return row

    def flat(self, class_id: int) -> npt.NDArray[np.int64]:
        """The sampled voxels of a class as row-major flat indices (ascending)."""
        row = self._row(self.ids, class_id, "class")
        return self.indices[self.offsets[row] : self.offsets[row + 1]]

    def instance_flat(self, instance: int) -> npt.NDArray[np.int64]:
        """The sampled voxels of an instance as row-major flat indices (ascending)."""
        row = self._row(self.instance_ids, instance, "instance")
        return self.instance_indices[self.instance_offsets[row] : self.instance_offsets[row + 1]]

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
) -> dict[str, npt.NDArray[Any]]:
    import fastseg

    ndim = len(found.shape)
    if found.instances is None:
        return {
            "instance_ids": np.zeros(0, np.uint64),
            "instance_classes": np.zeros(0, np.uint64),
            "instance_counts": np.zeros(0, np.int64),
            "instance_bbox": np.zeros((0, ndim, 2), np.int64),
            "instance_offsets": np.zeros(1, np.int64),
            "instance_indices": _EMPTY_INDICES,
        }
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
    return {
        "instance_ids": names,
        "instance_classes": np.array(
            [found.instance_classes[i] for i in names.tolist()], np.uint64
        ),
        "instance_counts": np.array([found.instance_counts[i] for i in names.tolist()], np.int64),
        "instance_bbox": table.bbox,
        "instance_offsets": offsets,
        "instance_indices": indices,
    }


# -- the file ------------------------------------------------------------------------------


def _deltas(
    offsets: npt.NDArray[np.int64], indices: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], np.ndarray, np.ndarray]:
    """Per id its first index; the steps between its next ones (0 at each id's first
    location) in one or two bytes, the largest value of that width standing for a step
    kept in the third array. Dense samples (steps of a few voxels) take one byte a step
    and compress well; sparse ones (the 1 % of nnU-Net's large classes, steps near 100)
    take two bytes, whose high byte compresses away."""
    starts = offsets[:-1][offsets[:-1] < offsets[1:]]
    firsts = indices[starts]
    deltas = np.diff(indices, prepend=0)
    deltas[starts] = 0
    wide = np.uint32 if int(deltas.max(initial=0)) < 2**32 else np.uint64
    best: tuple[int, np.ndarray, np.ndarray] | None = None
    for dtype in (np.uint8, np.uint16):
        escape = int(np.iinfo(dtype).max)
        large = deltas >= escape
        steps = np.where(large, escape, deltas).astype(dtype)
        kept = deltas[large].astype(wide)
        # The width whose file is smaller (written compressed, as here).
        size = len(zlib.compress(steps.tobytes(), 1)) + len(zlib.compress(kept.tobytes(), 1))
        if best is None or size < best[0]:
            best = (size, steps, kept)
    assert best is not None
    return firsts, best[1], best[2]


def _undelta(
    offsets: npt.NDArray[np.int64],
    firsts: npt.NDArray[np.int64],
    steps: np.ndarray,
    large: np.ndarray,
) -> npt.NDArray[np.int64]:
    deltas = steps.astype(np.int64)
    deltas[steps == np.iinfo(steps.dtype).max] = large
    running = np.cumsum(deltas, out=deltas)
    nonempty = offsets[:-1] < offsets[1:]
    starts, lengths = offsets[:-1][nonempty], np.diff(offsets)[nonempty]
    # Each id restarts from its first index.
    result: npt.NDArray[np.int64] = running + np.repeat(firsts - running[starts], lengths)
    return result


def write_index(
    path: str | os.PathLike[str],
    labels: npt.NDArray[Any] | Any | SampleIndex,
    **kwargs: Any,
) -> SampleIndex:
    """Write a sample index file for one label map.

    Parameters
    ----------
    path : str or path-like
        The file to write (``.npz`` by convention), atomically: a temporary file renamed
        into place.
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
    >>> path = os.path.join(folder, "case.npz")
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
    arrays: dict[str, Any] = {
        "format": np.array(FORMAT),
        "version": np.array(VERSION, np.int64),
        "shape": np.array(index.shape, np.int64),
        "affine": np.zeros(0) if index.affine is None else index.affine,
        "seed": np.array(str(index.seed)),
        "ids": index.ids,
        "counts": index.counts,
        "bbox": index.bbox,
        "offsets": index.offsets,
        **dict(
            zip(("firsts", "steps", "large"), _deltas(index.offsets, index.indices), strict=True)
        ),
        "instance_ids": index.instance_ids,
        "instance_classes": index.instance_classes,
        "instance_counts": index.instance_counts,
        "instance_bbox": index.instance_bbox,
        "instance_offsets": index.instance_offsets,
        **dict(
            zip(
                ("instance_firsts", "instance_steps", "instance_large"),
                _deltas(index.instance_offsets, index.instance_indices),
                strict=True,
            )
        ),
    }
    with atomic_path(path, suffix=".npz") as temporary, open(temporary, "wb") as stream:
        np.savez_compressed(stream, **arrays)
    return index


def _file_geometry(path: str) -> tuple[tuple[int, ...], Any]:
    """Shape and affine of a label file: from the header where nibabel reads the format
    (the voxels stay on disk), else as :func:`fastseg.load` reads it."""
    from fastseg.formats.registry import volume_format
    from fastseg.io import load

    if volume_format(path).name in ("nifti", "mgh") and os.path.exists(path):
        import nibabel

        header_image: Any = nibabel.load(path)
        return tuple(header_image.shape), header_image.affine
    image = load(path)
    return tuple(image.labels.shape), image.affine


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
        header alone (the voxels are not read).
    shape, affine : optional
        Or the shape (and affine) to check against.

    Returns
    -------
    SampleIndex

    Raises
    ------
    ValueError
        If the file is not a sample index, has a version this fastseg cannot read, or
        was made from a label map of another shape or affine.

    Examples
    --------
    See :func:`write_index`.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            data = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise ValueError(f"{path} is not a fastseg sample index: {error}") from None
    if "format" not in data or str(data["format"]) != FORMAT:
        raise ValueError(f"{path} is not a fastseg sample index (no {FORMAT!r} marker)")
    version = int(data["version"])
    if version != VERSION:
        raise ValueError(
            f"{path} is a version {version} sample index; this fastseg reads version "
            f"{VERSION} (rebuild the index)"
        )
    stored_affine = data["affine"]
    index = SampleIndex(
        shape=tuple(int(n) for n in data["shape"].tolist()),
        affine=stored_affine if stored_affine.size else None,
        seed=int(str(data["seed"])),
        ids=data["ids"],
        counts=data["counts"],
        bbox=data["bbox"],
        offsets=data["offsets"],
        indices=_undelta(data["offsets"], data["firsts"], data["steps"], data["large"]),
        instance_ids=data["instance_ids"],
        instance_classes=data["instance_classes"],
        instance_counts=data["instance_counts"],
        instance_bbox=data["instance_bbox"],
        instance_offsets=data["instance_offsets"],
        instance_indices=_undelta(
            data["instance_offsets"],
            data["instance_firsts"],
            data["instance_steps"],
            data["instance_large"],
        ),
    )
    if labels is not None:
        if isinstance(labels, str | os.PathLike):
            shape, affine = _file_geometry(os.fspath(labels))
        else:
            array, image_affine = _geometry.unpack_image(labels, "labels")
            shape = tuple(np.shape(array))  # type: ignore[call-overload]
            affine = affine if affine is not None else image_affine
    if shape is not None:
        index.check(shape, affine)
    elif affine is not None:
        index.check(index.shape, affine)
    return index

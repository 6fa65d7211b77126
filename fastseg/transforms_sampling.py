"""Class- and instance-balanced random crops for MONAI and TorchIO pipelines.

Crop centres are drawn from sampled voxel locations (:func:`fastseg.locations`), read
from a sample index file (:func:`fastseg.write_index`) or computed from the label map on
the fly, instead of from index arrays of every voxel (MONAI's ``ClassesToIndices``) or
probability maps the size of the volume (TorchIO's ``LabelSampler``):

- a class is chosen with probability proportional to its ratio (among the classes
  present), then, with ``balance="classes"``, a uniform location of that class; with
  ``balance="instances"``, a uniform instance of that class (a connected component, or an
  id of an instance map), then a uniform location of it, so that a small lesion is the
  centre of as many crops as a large one;
- the crop of ``spatial_size`` starts at ``centre - spatial_size // 2`` (MONAI's and
  TorchIO's convention); at the borders ``border="shift"`` moves the centre so the crop
  stays inside the image, as MONAI's ``RandCropByLabelClasses`` does, ``"pad"`` keeps the
  centre and pads outside the image (as nnU-Net does), and ``"inside"`` only draws centres
  whose crop fits (TorchIO's ``LabelSampler``).

Images and labels are cropped together; a MONAI ``MetaTensor`` keeps its metadata with
the affine moved to the crop's origin. torch, MONAI and TorchIO are imported only when
their objects are used.

=========================  ==============================  ================================
fastseg                    replaces                        with
=========================  ==============================  ================================
``RandCropByClasses``      ``RandCropByLabelClasses``      array version (crops ``img``)
``RandCropByClassesd``     ``RandCropByLabelClassesd``     dictionary version
``torchio_sampler``        ``torchio.LabelSampler``        a TorchIO patch sampler
=========================  ==============================  ================================
"""

from __future__ import annotations

import functools
import os
from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from fastseg._tensors import is_tensor, to_numpy
from fastseg.sample_index import SampleIndex, load_index
from fastseg.sampling import NNUNET_PER_CLASS, Locations, locations

__all__ = ["RandCropByClasses", "RandCropByClassesd", "crop", "torchio_sampler"]

Balance = Literal["classes", "instances"]
Border = Literal["shift", "pad", "inside"]
Source = Locations | SampleIndex | str | os.PathLike[str]

_DEFAULT_PER_INSTANCE = 100


def _is_meta_tensor(value: object) -> bool:
    return type(value).__module__.startswith("monai.")


def _size_tuple(spatial_size: Sequence[int] | int, ndim: int | None = None) -> tuple[int, ...]:
    if isinstance(spatial_size, int | np.integer) and not isinstance(spatial_size, bool):
        if ndim is None:
            raise ValueError("an int spatial_size needs the number of spatial dimensions")
        sizes: tuple[int, ...] = (int(spatial_size),) * ndim
    else:
        sizes = tuple(int(s) for s in spatial_size)  # type: ignore[union-attr]
    if not sizes or any(s < 1 for s in sizes):
        raise ValueError(f"spatial_size must be positive integers, got {spatial_size!r}")
    return sizes


# -- cropping ----------------------------------------------------------------------------


def shifted_centre(
    centre: Sequence[int], size: Sequence[int], shape: Sequence[int]
) -> tuple[int, ...]:
    """``centre`` moved so that the crop lies inside ``shape``: MONAI's
    ``correct_crop_centers`` (axes where the image is smaller keep the image's middle)."""
    result = []
    for c, s, n in zip(centre, size, shape, strict=True):
        if s > n:
            # The crop starts (s - n) // 2 before the image.
            result.append(s // 2 - (s - n) // 2)
            continue
        low = s // 2
        high = int(n + 1 - s / 2)
        if low == high:
            high += 1
        result.append(min(max(int(c), low), high - 1))
    return tuple(result)


def crop(array: Any, start: Sequence[int], size: Sequence[int], pad_value: float = 0) -> Any:
    """The box ``[start, start + size)`` of the last ``len(size)`` axes of ``array``,
    padded with ``pad_value`` where it leaves the array.

    Takes numpy arrays, torch tensors and MONAI ``MetaTensor``\\ s (whose affine moves to
    the crop's origin); a box inside the array is a view.

    Examples
    --------
    >>> import numpy as np
    >>> from fastseg.transforms_sampling import crop
    >>> crop(np.arange(6).reshape(1, 6), (4,), (3,), pad_value=-1)
    array([[ 4,  5, -1]])
    """
    data = to_numpy(array) if is_tensor(array) else np.asarray(array)
    nd = len(size)
    shape = data.shape[data.ndim - nd :]
    lead = data.shape[: data.ndim - nd]
    inside = all(b >= 0 and b + s <= n for b, s, n in zip(start, size, shape, strict=True))
    if inside:
        box: tuple[Any, ...] = (
            Ellipsis,
            *(slice(b, b + s) for b, s in zip(start, size, strict=True)),
        )
        out = data[box]
    else:
        out = np.full((*lead, *size), pad_value, dtype=data.dtype)
        source: list[slice] = []
        target: list[slice] = []
        for b, s, n in zip(start, size, shape, strict=True):
            low, high = max(b, 0), min(b + s, n)
            if high <= low:
                return _wrap(out, array, start)
            source.append(slice(low, high))
            target.append(slice(low - b, high - b))
        into: tuple[Any, ...] = (Ellipsis, *target)
        read: tuple[Any, ...] = (Ellipsis, *source)
        out[into] = data[read]
    return _wrap(out, array, start)


def _wrap(out: np.ndarray, like: Any, start: Sequence[int]) -> Any:
    if not is_tensor(like):
        return out
    import torch

    tensor = torch.from_numpy(out if out.flags.writeable else out.copy())
    if not _is_meta_tensor(like):
        return tensor
    result = type(like)(tensor)
    result.copy_meta_from(like)
    affine = like.affine
    if affine is not None:
        nd = len(start)
        shift = torch.eye(affine.shape[-1], dtype=affine.dtype)
        shift[:nd, -1] = torch.as_tensor(start, dtype=affine.dtype)
        result.affine = affine @ shift
    return result


# -- drawing centres -----------------------------------------------------------------------


class _Pool:
    """Candidate centres per class (and per instance) from locations or an index."""

    def __init__(self, source: Locations | SampleIndex) -> None:
        self.source = source
        if isinstance(source, SampleIndex):
            self.shape = source.shape
            self.classes = [int(i) for i in source.ids.tolist()]
            self.class_sizes = np.diff(source.offsets)
            self.instances_of: dict[int, list[int]] = {}
            for i, c in zip(
                source.instance_ids.tolist(), source.instance_classes.tolist(), strict=True
            ):
                self.instances_of.setdefault(int(c), []).append(int(i))
        else:
            self.shape = source.shape
            self.classes = list(source)
            self.class_sizes = np.array([len(source[i]) for i in self.classes], np.int64)
            self.instances_of = {}
            for i, c in (source.instance_classes or {}).items():
                self.instances_of.setdefault(c, []).append(i)

    def candidates(self, class_id: int, instance: int | None) -> np.ndarray:
        """(n, ndim) coordinates of a class or an instance."""
        source = self.source
        if isinstance(source, SampleIndex):
            if instance is None:
                return source.coordinates(class_id)
            return source.instance_coordinates(instance)
        if instance is None:
            return source[class_id]
        assert source.instances is not None
        return source.instances[instance]

    def pick(
        self, class_id: int, instance: int | None, rng: np.random.Generator
    ) -> tuple[int, ...]:
        source = self.source
        if isinstance(source, SampleIndex):
            flat = source.flat(class_id) if instance is None else source.instance_flat(instance)
            chosen = int(flat[rng.integers(flat.size)])
            return tuple(int(c) for c in np.unravel_index(chosen, self.shape))
        coordinates = self.candidates(class_id, instance)
        return tuple(int(c) for c in coordinates[rng.integers(len(coordinates))])


def _weights(
    ratios: Mapping[int, float] | Sequence[float] | None, classes: Sequence[int]
) -> np.ndarray:
    if ratios is None:
        return np.ones(len(classes))
    table = dict(ratios) if isinstance(ratios, Mapping) else dict(enumerate(ratios))
    return np.array([float(table.get(c, 0.0)) for c in classes])


def _check_ratios(ratios: object) -> Mapping[int, float] | Sequence[float] | None:
    if ratios is None:
        return None
    values = list(ratios.values()) if isinstance(ratios, Mapping) else list(ratios)  # type: ignore[call-overload]
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise TypeError(f"ratios must be numbers, got {value!r}")
        if value < 0 or value != value:
            raise ValueError(f"ratios must not be negative, got {value}")
    if not any(v > 0 for v in values):
        raise ValueError("ratios must give at least one class a positive weight")
    return ratios  # type: ignore[return-value]


class _CentreSampler:
    """What the MONAI and TorchIO crops share: arguments, random state, centres."""

    def __init__(
        self,
        spatial_size: Sequence[int] | int,
        ratios: Mapping[int, float] | Sequence[float] | None,
        balance: Balance,
        border: Border,
        per_class: int | None,
        per_instance: int | None,
        seed: int | None,
    ) -> None:
        if balance not in ("classes", "instances"):
            raise ValueError(f"balance must be 'classes' or 'instances', got {balance!r}")
        if border not in ("shift", "pad", "inside"):
            raise ValueError(f"border must be 'shift', 'pad' or 'inside', got {border!r}")
        self.spatial_size = spatial_size
        _size_tuple(spatial_size, 1)
        self.ratios = _check_ratios(ratios)
        self.balance = balance
        self.border = border
        self.per_class = per_class
        self.per_instance = per_instance if per_instance is not None else _DEFAULT_PER_INSTANCE
        self.seed = seed
        self._rng: np.random.Generator | None = None
        self._rng_pid = -1

    # MONAI's Randomizable interface, so that Compose.set_random_state reaches us.
    def set_random_state(self, seed: int | None = None, state: Any = None) -> _CentreSampler:
        """Reseed the crop positions (MONAI's ``Randomizable.set_random_state``)."""
        if state is not None:
            seed = int(state.randint(2**31))
        self.seed = seed
        self._rng = None
        return self

    @property
    def rng(self) -> np.random.Generator:
        """The generator of this process: a DataLoader worker seeds its own from the
        seed and its worker id (or, without a seed, from the worker's torch seed), so
        workers never repeat each other's crops."""
        pid = os.getpid()
        if self._rng is None or self._rng_pid != pid:
            entropy: list[int] = [] if self.seed is None else [self.seed]
            worker = _worker_info()
            if worker is not None:
                entropy += [worker.id] if self.seed is not None else [worker.seed]
            self._rng = np.random.default_rng(entropy or None)
            self._rng_pid = pid
        return self._rng

    def wanted_classes(self) -> list[int] | None:
        if self.ratios is None:
            return None
        if isinstance(self.ratios, Mapping):
            return sorted(int(k) for k, v in self.ratios.items() if v > 0)
        return [i for i, v in enumerate(self.ratios) if v > 0]

    def pool(self, label: Any, source: Any, shape: tuple[int, ...]) -> _Pool:
        """Candidates from ``source`` (locations, an index or its path) or, without one,
        from the label map (one sampling pass)."""
        if source is None:
            if label is None:
                raise ValueError("crops need a label map or precomputed locations / an index")
            array = to_numpy(label) if is_tensor(label) else np.asarray(label)
            lead = array.shape[: array.ndim - len(shape)]
            if any(n != 1 for n in lead):
                raise ValueError(
                    f"the label map must have one channel, got shape {array.shape} for "
                    f"spatial shape {shape}"
                )
            array = array.reshape(shape)
            found = locations(
                array,
                per_class=self.per_class,
                per_instance=self.per_instance if self.balance == "instances" else None,
                ids=self.wanted_classes(),
                seed=int(self.rng.integers(2**63)),
            )
            return _Pool(found)
        if isinstance(source, str | os.PathLike):
            source = load_index(source, shape=shape)
        if not isinstance(source, Locations | SampleIndex):
            raise TypeError(
                f"locations must be fastseg.Locations, a SampleIndex or the path of an index "
                f"file, got {type(source).__name__}"
            )
        if tuple(source.shape) != tuple(shape):
            raise ValueError(
                f"the locations were sampled from a label map of shape {source.shape}, "
                f"the image has spatial shape {shape}"
            )
        return _Pool(source)

    def centres(self, pool: _Pool, num_samples: int) -> list[tuple[int, ...]]:
        """``num_samples`` crop centres (before any border correction)."""
        rng = self.rng
        size = _size_tuple(self.spatial_size, len(pool.shape))
        classes = pool.classes
        weights = _weights(self.ratios, classes)
        if self.balance == "instances":
            available = np.array([len(pool.instances_of.get(c, ())) > 0 for c in classes])
        else:
            available = pool.class_sizes > 0
        weights = np.where(available, weights, 0.0)
        inside_only = self.border == "inside"
        fits: dict[tuple[int, int | None], np.ndarray] = {}
        if inside_only:
            low = np.array([s // 2 for s in size])
            high = np.array([n - (s - s // 2) for n, s in zip(pool.shape, size, strict=True)])
        result: list[tuple[int, ...]] = []
        while len(result) < num_samples:
            if not weights.sum():
                raise ValueError(
                    "no class with a positive ratio has voxels to centre a crop on"
                    + (" (inside the image)" if inside_only else "")
                )
            j = int(rng.choice(len(classes), p=weights / weights.sum()))
            class_id = classes[j]
            instance = None
            if self.balance == "instances":
                members = pool.instances_of[class_id]
                instance = members[int(rng.integers(len(members)))]
            if not inside_only:
                result.append(pool.pick(class_id, instance, rng))
                continue
            key = (class_id, instance)
            if key not in fits:
                coordinates = pool.candidates(class_id, instance)
                ok = np.all((coordinates >= low) & (coordinates <= high), axis=1)
                fits[key] = coordinates[ok]
            candidates = fits[key]
            if not len(candidates):
                if self.balance == "instances":
                    pool.instances_of[class_id] = [
                        i for i in pool.instances_of[class_id] if i != instance
                    ]
                    if pool.instances_of[class_id]:
                        continue
                weights[j] = 0.0
                continue
            result.append(tuple(int(c) for c in candidates[rng.integers(len(candidates))]))
        return result

    def start(self, centre: Sequence[int], shape: Sequence[int]) -> tuple[int, ...]:
        size = _size_tuple(self.spatial_size, len(shape))
        if self.border == "shift":
            centre = shifted_centre(centre, size, shape)
        return tuple(c - s // 2 for c, s in zip(centre, size, strict=True))


def _annotated(cropped: Any, index: int, start: Sequence[int], size: Sequence[int]) -> Any:
    """A MetaTensor crop gets MONAI's ``patch_index`` and ``crop_center`` metadata."""
    if _is_meta_tensor(cropped):
        cropped.meta["patch_index"] = index
        cropped.meta["crop_center"] = tuple(b + s // 2 for b, s in zip(start, size, strict=True))
    return cropped


def _worker_info() -> Any:
    import sys

    data = sys.modules.get("torch.utils.data")
    return None if data is None else data.get_worker_info()


# -- MONAI ---------------------------------------------------------------------------------


class RandCropByClasses(_CentreSampler):
    """Random crops centred on voxels of chosen classes or instances, like MONAI's
    ``RandCropByLabelClasses`` (array version: crops ``img``).

    Parameters
    ----------
    spatial_size : int or sequence of int
        Size of each crop (its length is the number of spatial axes, the last axes of
        the arrays; an int: the same size along every axis after the channel axis).
    ratios : mapping or sequence of float, optional
        Weight of each class id (a sequence is indexed by class id, 0 the background,
        as in MONAI). Default: every non-zero class present, equally.
    num_samples : int, optional
        Crops per call (default 1).
    balance : {"classes", "instances"}, optional
        Centres uniform over a class's voxels (default ``"classes"``), or uniform over
        its instances (connected components) first, then over the instance's voxels.
    border : {"shift", "pad", "inside"}, optional
        At the borders: move the crop inside (default ``"shift"``, MONAI's rule), pad
        around the centre (nnU-Net's), or draw only centres whose crop fits (TorchIO's).
    per_class : int or None, optional
        Locations sampled per class when they are computed from the label map on the
        fly (default 10000, nnU-Net's; ``None``: every voxel).
    per_instance : int, optional
        Locations sampled per instance with ``balance="instances"`` (default 100).
    pad_value : float, optional
        Fill value outside the image (default 0).
    seed : int, optional
        Seed of the crop positions (default ``None``: a fresh seed; DataLoader workers
        always draw different crops).

    Examples
    --------
    >>> import numpy as np
    >>> from fastseg.transforms_sampling import RandCropByClasses
    >>> labels = np.zeros((1, 20, 20), np.uint8)
    >>> labels[0, 2:4, 15:18] = 1
    >>> cropper = RandCropByClasses((5, 5), ratios={1: 1}, num_samples=2, seed=0)
    >>> crops = cropper(labels, labels)
    >>> [c.shape for c in crops], all(c.any() for c in crops)
    ([(1, 5, 5), (1, 5, 5)], True)
    """

    def __init__(
        self,
        spatial_size: Sequence[int] | int,
        ratios: Mapping[int, float] | Sequence[float] | None = None,
        *,
        num_samples: int = 1,
        balance: Balance = "classes",
        border: Border = "shift",
        per_class: int | None = NNUNET_PER_CLASS,
        per_instance: int | None = None,
        pad_value: float = 0,
        seed: int | None = None,
    ) -> None:
        super().__init__(spatial_size, ratios, balance, border, per_class, per_instance, seed)
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
        self.num_samples = num_samples
        self.pad_value = pad_value

    def spatial_shape(self, array: Any) -> tuple[int, ...]:
        """The last axes of ``array``, one per axis of ``spatial_size`` (an int size:
        every axis after the channel axis)."""
        shape = tuple(int(n) for n in array.shape)
        if isinstance(self.spatial_size, int | np.integer):
            nd = max(1, len(shape) - 1)
        else:
            nd = len(_size_tuple(self.spatial_size))
        if len(shape) < nd:
            raise ValueError(
                f"spatial_size {self.spatial_size!r} has {nd} axes, the array only "
                f"{len(shape)} (shape {shape})"
            )
        return shape[len(shape) - nd :]

    def draw(self, label: Any, source: Any, shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """Crop origins (``start`` per spatial axis) for one call."""
        pool = self.pool(label, source, shape)
        return [self.start(c, shape) for c in self.centres(pool, self.num_samples)]

    def __call__(
        self, img: Any, label: Any = None, *, locations: Source | None = None
    ) -> list[Any]:
        shape = self.spatial_shape(img)
        size = _size_tuple(self.spatial_size, len(shape))
        return [
            _annotated(crop(img, start, size, self.pad_value), i, start, size)
            for i, start in enumerate(self.draw(label, locations, shape))
        ]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(spatial_size={self.spatial_size!r}, ratios={self.ratios!r}, "
            f"num_samples={self.num_samples}, balance={self.balance!r}, border={self.border!r})"
        )


class RandCropByClassesd(RandCropByClasses):
    """Dictionary version of :class:`RandCropByClasses`, like MONAI's
    ``RandCropByLabelClassesd``: crops every entry of ``keys`` at the same places and
    returns ``num_samples`` dicts (other entries are shared, not copied).

    Parameters
    ----------
    keys : hashable or sequence of hashable
        Entries to crop (images and labels, channel-first).
    label_key : hashable
        The label map the locations are computed from when there is no index.
    spatial_size : int or sequence of int
        As in :class:`RandCropByClasses`.
    ratios : mapping or sequence of float, optional
        As in :class:`RandCropByClasses` (default: every non-zero class, equally).
    num_samples : int, optional
        As in :class:`RandCropByClasses` (default 1).
    balance : {"classes", "instances"}, optional
        As in :class:`RandCropByClasses` (default ``"classes"``).
    border : {"shift", "pad", "inside"}, optional
        As in :class:`RandCropByClasses` (default ``"shift"``).
    per_class : int or None, optional
        As in :class:`RandCropByClasses` (default 10000).
    per_instance : int, optional
        As in :class:`RandCropByClasses` (default 100).
    locations_key : hashable, optional
        An entry holding a :class:`fastseg.SampleIndex`, its path, or
        :class:`fastseg.Locations`; the label map is then not read (default ``None``:
        locations come from the label map).
    pad_values : float or mapping, optional
        Fill value outside the image, one for every key or a mapping key -> value
        (default 0; keys the mapping leaves out get 0).
    seed : int, optional
        As in :class:`RandCropByClasses` (default ``None``).
    allow_missing_keys : bool, optional
        Skip keys absent from the dict instead of raising ``KeyError`` (default False).

    Examples
    --------
    >>> import numpy as np
    >>> from fastseg.transforms_sampling import RandCropByClassesd
    >>> label = np.zeros((1, 8, 8, 8), np.uint8)
    >>> label[0, 6:, 6:, 6:] = 3
    >>> image = np.random.default_rng(0).random((2, 8, 8, 8), np.float32)
    >>> crops = RandCropByClassesd(["image", "label"], "label", 4, {3: 1}, seed=1)(
    ...     {"image": image, "label": label, "name": "case_0"}
    ... )
    >>> crops[0]["image"].shape, crops[0]["label"].shape, crops[0]["name"]
    ((2, 4, 4, 4), (1, 4, 4, 4), 'case_0')
    """

    def __init__(
        self,
        keys: Hashable | Sequence[Hashable],
        label_key: Hashable,
        spatial_size: Sequence[int] | int,
        ratios: Mapping[int, float] | Sequence[float] | None = None,
        *,
        num_samples: int = 1,
        balance: Balance = "classes",
        border: Border = "shift",
        per_class: int | None = NNUNET_PER_CLASS,
        per_instance: int | None = None,
        locations_key: Hashable | None = None,
        pad_values: float | Mapping[Hashable, float] = 0,
        seed: int | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(
            spatial_size, ratios, num_samples=num_samples, balance=balance, border=border,
            per_class=per_class, per_instance=per_instance, seed=seed,
        )  # fmt: skip
        self.keys: tuple[Hashable, ...] = tuple(keys) if isinstance(keys, list | tuple) else (keys,)
        self.label_key = label_key
        self.locations_key = locations_key
        self.pad_values = pad_values
        self.allow_missing_keys = allow_missing_keys

    def _pad_value(self, key: Hashable) -> float:
        if isinstance(self.pad_values, Mapping):
            return float(self.pad_values.get(key, 0))
        return float(self.pad_values)

    def __call__(  # type: ignore[override]
        self, data: Mapping[Hashable, Any]
    ) -> list[dict[Hashable, Any]]:
        present = [k for k in self.keys if k in data]
        missing = [k for k in self.keys if k not in data]
        if missing and not self.allow_missing_keys:
            raise KeyError(
                f"{type(self).__name__}: key {missing[0]!r} is not in the data (keys: "
                f"{', '.join(map(repr, data))}); pass allow_missing_keys=True to skip it"
            )
        source = None if self.locations_key is None else data.get(self.locations_key)
        label = data.get(self.label_key)
        reference = label if label is not None else data[present[0]]
        shape = self.spatial_shape(reference)
        for key in present:
            if self.spatial_shape(data[key]) != shape:
                raise ValueError(
                    f"{key!r} has spatial shape {self.spatial_shape(data[key])}, the label "
                    f"map {shape}: they must be cropped together"
                )
        size = _size_tuple(self.spatial_size, len(shape))
        results: list[dict[Hashable, Any]] = []
        for start in self.draw(label, source, shape):
            result = dict(data)
            for key in present:
                cropped = crop(data[key], start, size, self._pad_value(key))
                result[key] = _annotated(cropped, len(results), start, size)
            results.append(result)
        return results


# -- TorchIO -------------------------------------------------------------------------------


@functools.cache
def _torchio_sampler_class() -> type:
    import torchio

    class ClassBalancedSampler(torchio.data.PatchSampler):
        """Patches centred on sampled locations of chosen classes (or instances)."""

        def __init__(
            self,
            patch_size: Any,
            centres: _CentreSampler,
            label_name: str,
            locations_name: str | None,
        ) -> None:
            super().__init__(patch_size)
            self.centres = centres
            self.label_name = label_name
            self.locations_name = locations_name

        def _generate_patches(  # type: ignore[override]
            self, subject: Any, num_patches: int | None = None
        ) -> Iterator[Any]:
            shape = tuple(int(n) for n in subject.spatial_shape)
            source = None
            if self.locations_name is not None:
                source = subject.get(self.locations_name)
            label = None if source is not None else subject[self.label_name].data
            pool = self.centres.pool(label, source, shape)
            size = tuple(int(s) for s in self.patch_size.tolist())
            left = num_patches
            while left is None or left > 0:
                (centre,) = self.centres.centres(pool, 1)
                start = self.centres.start(centre, shape)
                if self.centres.border == "pad":
                    yield _padded_patch(self, subject, start, size)
                else:
                    yield self.extract_patch(subject, start)  # type: ignore[arg-type]
                if left is not None:
                    left -= 1

    return ClassBalancedSampler


def _padded_patch(sampler: Any, subject: Any, start: Sequence[int], size: Sequence[int]) -> Any:
    """A patch that may leave the image: pad the subject just enough, then crop."""
    import torchio

    shape = subject.spatial_shape
    before = [max(0, -b) for b in start]
    after = [max(0, b + s - n) for b, s, n in zip(start, size, shape, strict=True)]
    padding = tuple(v for pair in zip(before, after, strict=True) for v in pair)
    padded = torchio.Pad(padding)(subject) if any(padding) else subject
    patch = sampler.extract_patch(padded, tuple(b + p for b, p in zip(start, before, strict=True)))
    return patch


def torchio_sampler(
    patch_size: Sequence[int] | int,
    *,
    label_name: str = "label",
    ratios: Mapping[int, float] | Sequence[float] | None = None,
    balance: Balance = "classes",
    border: Border = "inside",
    locations_name: str | None = None,
    per_class: int | None = NNUNET_PER_CLASS,
    per_instance: int | None = None,
    seed: int | None = None,
) -> Any:
    """A TorchIO patch sampler with class- or instance-balanced centres, in place of
    ``torchio.LabelSampler`` (usable in ``torchio.Queue``).

    Parameters
    ----------
    patch_size : int or sequence of 3 int
        Patch size.
    label_name : str, optional
        The subject's label map, read when there are no precomputed locations
        (default ``"label"``).
    ratios : mapping or sequence of float, optional
        As in :class:`RandCropByClasses` (default: every non-zero class, equally); it
        plays the part of TorchIO's ``label_probabilities``.
    balance : {"classes", "instances"}, optional
        As in :class:`RandCropByClasses` (default ``"classes"``).
    border : {"inside", "shift", "pad"}, optional
        As in :class:`RandCropByClasses`, but by default ``"inside"`` (TorchIO's rule):
        only centres whose patch fits in the image.
    locations_name : str, optional
        A subject entry holding a :class:`fastseg.SampleIndex`, its path or
        :class:`fastseg.Locations` (default ``None``: locations come from the label map).
    per_class : int or None, optional
        As in :class:`RandCropByClasses` (default 10000).
    per_instance : int, optional
        As in :class:`RandCropByClasses` (default 100).
    seed : int, optional
        As in :class:`RandCropByClasses` (default ``None``).

    Returns
    -------
    torchio.data.PatchSampler

    Examples
    --------
    >>> import torch, torchio
    >>> from fastseg.transforms_sampling import torchio_sampler
    >>> label = torch.zeros(1, 10, 10, 10, dtype=torch.uint8)
    >>> label[0, 4:6, 4:6, 4:6] = 2
    >>> subject = torchio.Subject(label=torchio.LabelMap(tensor=label))
    >>> sampler = torchio_sampler(4, ratios={2: 1}, seed=0)
    >>> patch = next(iter(sampler(subject, num_patches=1)))
    >>> tuple(patch.label.shape), bool((patch.label.data == 2).any())
    ((1, 4, 4, 4), True)
    """
    size = _size_tuple(patch_size, 3)
    centres = _CentreSampler(size, ratios, balance, border, per_class, per_instance, seed)
    return _torchio_sampler_class()(size, centres, label_name, locations_name)

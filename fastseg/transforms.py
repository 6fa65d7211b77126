"""Label-map transforms for training pipelines: plain callables, MONAI-style dictionary
transforms and a TorchIO adapter.

Every transform takes a numpy array or a torch CPU tensor (MONAI's ``MetaTensor``
included) and returns the same kind; a ``MetaTensor`` keeps its metadata (affine,
file name, ...). Arrays are either spatial (1-D to 3-D) or channel-first
``(C, *spatial)``, the layout of MONAI and TorchIO: 4-D inputs and ``MetaTensor``\\ s are
channel-first, lower-dimensional arrays spatial, unless ``channel_first`` says otherwise
(a MONAI 2-D image ``(C, H, W)`` needs ``channel_first=True`` when ``C > 1``).
Operations that look at neighbours (components, statistics) run on each channel on its
own; value mappings run on the whole array at once.

torch, MONAI and TorchIO stay optional: nothing here imports them except
:func:`as_torchio`, which needs TorchIO.

=================  ==========================  ==========================================
transform          dictionary version          does what
=================  ==========================  ==========================================
``Remap``          ``Remapd``                  :func:`fastseg.remap` (MONAI MapLabelValue,
                                               TorchIO RemapLabels)
``ToSemantic``     ``ToSemanticd``             :func:`fastseg.to_semantic`
``ToInstances``    ``ToInstancesd``            :func:`fastseg.to_instances`
``KeepLargest``    ``KeepLargestd``            :func:`fastseg.largest_k` (MONAI
                                               KeepLargestConnectedComponent, TorchIO
                                               KeepLargestComponent)
``RemoveSmall``    ``RemoveSmalld``            :func:`fastseg.dust` (MONAI
                                               RemoveSmallObjects)
``Stats``          ``Statsd``                  :func:`fastseg.stats`
=================  ==========================  ==========================================

Examples
--------
>>> import numpy as np
>>> from fastseg.transforms import KeepLargest, Remapd
>>> KeepLargest()(np.array([[[1, 1, 0, 1]]]))  # (C, X, Y): one channel
array([[[1, 1, 0, 0]]])
>>> Remapd("label", {2: 1})({"label": np.array([0, 2, 2]), "image": "kept as is"})
{'label': array([0, 1, 1], dtype=uint8), 'image': 'kept as is'}
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Generic, Literal, TypeVar

import numpy as np
import numpy.typing as npt

import fastseg
from fastseg._tensors import is_tensor, to_numpy
from fastseg.components import Connectivity
from fastseg.relabel import Missing
from fastseg.schema import Schema
from fastseg.segmap import SegmentMap
from fastseg.stats import InstanceStats

__all__ = [
    "KeepLargest",
    "KeepLargestd",
    "Remap",
    "Remapd",
    "RemoveSmall",
    "RemoveSmalld",
    "Stats",
    "Statsd",
    "ToInstances",
    "ToInstancesd",
    "ToSemantic",
    "ToSemanticd",
    "as_torchio",
]

R = TypeVar("R")


def _is_meta_tensor(value: object) -> bool:
    return type(value).__module__.startswith("monai.")


class LabelTransform(Generic[R]):
    """Base of the plain transforms: unwraps tensors, splits channels, rewraps.

    Subclasses implement :meth:`apply` on one numpy array (spatial, or the whole
    channel-first array when :attr:`per_channel` is false).

    Parameters
    ----------
    channel_first : bool, optional
        Whether the first axis holds channels, each transformed on its own. Default
        (``None``): 4-D arrays and MONAI ``MetaTensor``\\ s are channel-first, 1-D to
        3-D arrays spatial.
    """

    per_channel = True

    def __init__(self, *, channel_first: bool | None = None) -> None:
        self.channel_first = channel_first

    def apply(self, labels: np.ndarray) -> R:
        raise NotImplementedError

    def has_channels(self, labels: object, ndim: int) -> bool:
        """Whether the first axis of ``labels`` holds channels."""
        if self.channel_first is not None:
            return self.channel_first
        return ndim == 4 or _is_meta_tensor(labels)

    def __call__(self, labels: Any) -> Any:
        array = to_numpy(labels) if is_tensor(labels) else labels
        if not isinstance(array, np.ndarray):
            raise TypeError(
                f"{type(self).__name__} takes a numpy array or a torch tensor, "
                f"got {type(labels).__name__}"
            )
        if not (self.per_channel and self.has_channels(labels, array.ndim)):
            return self.wrap(self.apply(array), labels)
        if array.ndim < 2:
            raise ValueError(
                f"{type(self).__name__}: channel-first labels need a channel axis and at "
                f"least one spatial axis, got shape {array.shape}"
            )
        results = [self.apply(channel) for channel in array]
        return self.wrap(self.stack(results), labels)

    def stack(self, results: list[R]) -> Any:
        """Join the per-channel results (arrays: along a new first axis)."""
        arrays: list[np.ndarray] = results  # type: ignore[assignment]
        return np.stack(arrays).astype(np.result_type(*arrays), copy=False)

    @staticmethod
    def wrap(result: Any, like: Any) -> Any:
        """``result`` as the same kind of object as ``like`` (tensor, MetaTensor)."""
        if not (isinstance(result, np.ndarray) and is_tensor(like)):
            return result
        import torch

        if not result.flags.writeable:
            result = result.copy()
        tensor = torch.from_numpy(result)
        if _is_meta_tensor(like):
            meta_tensor = type(like)(tensor)
            meta_tensor.copy_meta_from(like)
            return meta_tensor
        return tensor

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class Remap(LabelTransform[np.ndarray]):
    """Map label values through a dict, like MONAI's MapLabelValue and TorchIO's
    RemapLabels (see :func:`fastseg.remap`). Works on the whole array at once, channels
    included.

    Parameters
    ----------
    mapping : dict or numpy.ndarray
        ``{old: new}``, or a 1-D integer lookup array where value ``i`` maps to
        ``mapping[i]``.
    missing : {"keep", "error"} or int, optional
        What happens to labels the mapping does not cover: ``"keep"`` them unchanged
        (default), raise a ``ValueError`` (``"error"``), or replace them by the integer.
    out_dtype : dtype, optional
        Integer dtype of the result (default: the smallest unsigned type that holds
        every output value).

    Examples
    --------
    >>> import numpy as np
    >>> from fastseg.transforms import Remap
    >>> Remap({3: 1, 4: 1})(np.array([[0, 3, 4, 5]]))
    array([[0, 1, 1, 5]], dtype=uint8)
    """

    per_channel = False

    def __init__(
        self,
        mapping: Mapping[int, int] | npt.NDArray[np.integer],
        *,
        missing: Missing = "keep",
        out_dtype: npt.DTypeLike | None = None,
    ) -> None:
        super().__init__()
        self.mapping = mapping
        self.missing = missing
        self.out_dtype = out_dtype

    def apply(self, labels: np.ndarray) -> np.ndarray:
        return fastseg.remap(labels, self.mapping, missing=self.missing, out_dtype=self.out_dtype)


class ToSemantic(LabelTransform[np.ndarray]):
    """Instance map → semantic map (see :func:`fastseg.to_semantic`). Works on the
    whole array at once, channels included.

    Parameters
    ----------
    segment_map : SegmentMap
        The category of every instance id.
    schema : Schema
        The category values of the semantic map.
    unknown : {"error", "background", "keep"}, optional
        What to do with ids the segment map does not list: raise a ``ValueError``
        (default), make them background, or keep them.

    Examples
    --------
    >>> import numpy as np
    >>> from fastseg import Category, Schema, Segment, SegmentMap
    >>> from fastseg.transforms import ToSemantic
    >>> schema = Schema([Category("Vertebra", 1)])
    >>> ToSemantic(SegmentMap({7: Segment("Vertebra")}), schema)(np.array([0, 7, 7]))
    array([0, 1, 1], dtype=uint8)
    """

    per_channel = False

    def __init__(
        self,
        segment_map: SegmentMap,
        schema: Schema,
        *,
        unknown: Literal["error", "background", "keep"] = "error",
    ) -> None:
        super().__init__()
        self.segment_map = segment_map
        self.schema = schema
        self.unknown = unknown

    def apply(self, labels: np.ndarray) -> np.ndarray:
        return fastseg.to_semantic(labels, self.segment_map, self.schema, unknown=self.unknown)


class ToInstances(LabelTransform[np.ndarray]):
    """Semantic map → instance map, per channel (see :func:`fastseg.to_instances`; the
    segment map is dropped).

    Parameters
    ----------
    schema : Schema
        The categories whose values the semantic map holds.
    connectivity : int, optional
        As in :func:`fastseg.label`. Default: full connectivity (26 in 3-D, 8 in 2-D),
        as everywhere in fastseg; 26 also means full connectivity in 2-D.
    split : bool, optional
        One instance per connected component (default True) or per category.
    channel_first : bool, optional
        Whether the first axis holds channels, each transformed on its own. Default
        (``None``): 4-D arrays and MONAI ``MetaTensor``\\ s are channel-first, 1-D to
        3-D arrays spatial.

    Examples
    --------
    >>> import numpy as np
    >>> from fastseg import Category, Schema
    >>> from fastseg.transforms import ToInstances
    >>> ToInstances(Schema([Category("Vertebra", 1)]))(np.array([1, 1, 0, 1]))
    array([1, 1, 0, 2], dtype=uint8)
    """

    def __init__(
        self,
        schema: Schema,
        *,
        connectivity: int | None = None,
        split: bool = True,
        channel_first: bool | None = None,
    ) -> None:
        super().__init__(channel_first=channel_first)
        self.schema = schema
        self.connectivity = connectivity
        self.split = split

    def apply(self, labels: np.ndarray) -> np.ndarray:
        instances, _ = fastseg.to_instances(
            labels, self.schema, connectivity=self.connectivity, split=self.split
        )
        return instances


class KeepLargest(LabelTransform[np.ndarray]):
    """Keep the ``k`` largest connected components of every label, per channel (see
    :func:`fastseg.largest_k`).

    The same result as MONAI's ``KeepLargestConnectedComponent(num_components=k,
    independent=per_label, connectivity=connectivity)`` on a label map, and, with
    ``connectivity=1``, as TorchIO's ``KeepLargestComponent`` on a binary map.

    Parameters
    ----------
    k : int, optional
        Components kept per label (default 1).
    connectivity : int, optional
        As in :func:`fastseg.label` (default: full, 26 in 3-D and 8 in 2-D).
    per_label : bool, optional
        Keep ``k`` components of every label (default True), or the ``k`` largest
        regions of the foreground as a whole.
    channel_first : bool, optional
        Whether the first axis holds channels, each transformed on its own. Default
        (``None``): 4-D arrays and MONAI ``MetaTensor``\\ s are channel-first, 1-D to
        3-D arrays spatial.

    Examples
    --------
    >>> import numpy as np
    >>> from fastseg.transforms import KeepLargest
    >>> KeepLargest()(np.array([1, 1, 0, 1, 0, 2, 0, 2, 2]))
    array([1, 1, 0, 0, 0, 0, 0, 2, 2])
    """

    def __init__(
        self,
        k: int = 1,
        *,
        connectivity: Connectivity | None = None,
        per_label: bool = True,
        channel_first: bool | None = None,
    ) -> None:
        super().__init__(channel_first=channel_first)
        self.k = k
        self.connectivity = connectivity
        self.per_label = per_label

    def apply(self, labels: np.ndarray) -> np.ndarray:
        return fastseg.largest_k(
            labels, self.k, connectivity=self.connectivity, per_label=self.per_label
        )


class RemoveSmall(LabelTransform[np.ndarray]):
    """Remove connected components smaller than ``min_size`` voxels (or volume with
    ``spacing``), per label and channel (see :func:`fastseg.dust`).

    The same result as MONAI's ``RemoveSmallObjects(min_size, connectivity)`` on binary
    or one-hot maps (MONAI treats the values of a multi-label map as objects).

    Parameters
    ----------
    min_size : float
        Smallest size kept: voxels, or physical volume (e.g. mm³) with ``spacing``.
    connectivity : int, optional
        As in :func:`fastseg.label` (default: full, 26 in 3-D and 8 in 2-D).
    spacing : sequence of float, optional
        Voxel size per spatial axis; ``min_size`` is then a volume (default: none,
        ``min_size`` counts voxels).
    channel_first : bool, optional
        Whether the first axis holds channels, each transformed on its own. Default
        (``None``): 4-D arrays and MONAI ``MetaTensor``\\ s are channel-first, 1-D to
        3-D arrays spatial.

    Examples
    --------
    >>> import numpy as np
    >>> from fastseg.transforms import RemoveSmall
    >>> RemoveSmall(2)(np.array([1, 1, 0, 1, 0, 2, 2]))
    array([1, 1, 0, 0, 0, 2, 2])
    """

    def __init__(
        self,
        min_size: float,
        *,
        connectivity: Connectivity | None = None,
        spacing: Sequence[float] | None = None,
        channel_first: bool | None = None,
    ) -> None:
        super().__init__(channel_first=channel_first)
        self.min_size = min_size
        self.connectivity = connectivity
        self.spacing = spacing

    def apply(self, labels: np.ndarray) -> np.ndarray:
        return fastseg.dust(
            labels, self.min_size, connectivity=self.connectivity, spacing=self.spacing
        )


class Stats(LabelTransform["InstanceStats | list[InstanceStats]"]):
    """Per-instance statistics (see :func:`fastseg.stats`): one table for spatial labels,
    a list of tables (one per channel) for channel-first labels. A ``MetaTensor``'s
    affine gives the spacing and world centroids.

    Parameters
    ----------
    surface : bool, optional
        Add each instance's surface area (default False).
    channel_first : bool, optional
        Whether the first axis holds channels, each transformed on its own. Default
        (``None``): 4-D arrays and MONAI ``MetaTensor``\\ s are channel-first, 1-D to
        3-D arrays spatial.

    Examples
    --------
    >>> import numpy as np
    >>> from fastseg.transforms import Stats
    >>> Stats()(np.array([[[0, 4, 4]]])).voxel_count  # one channel of a (C, X, Y) map
    array([2])
    """

    def __init__(self, *, surface: bool = False, channel_first: bool | None = None) -> None:
        super().__init__(channel_first=channel_first)
        self.surface = surface

    def __call__(self, labels: Any) -> Any:
        self._affine = None
        if _is_meta_tensor(labels):
            self._affine = np.asarray(labels.affine, dtype=np.float64)
        return super().__call__(labels)

    def apply(self, labels: np.ndarray) -> InstanceStats | list[InstanceStats]:
        affine = self._affine
        if affine is not None and affine.shape[0] != labels.ndim + 1:
            affine = None
        return fastseg.stats(labels, affine=affine, surface=self.surface)

    def stack(self, results: list[InstanceStats | list[InstanceStats]]) -> Any:
        tables: list[InstanceStats] = results  # type: ignore[assignment]
        # Collapse one channel to its table, as MONAI label maps have one channel.
        return tables[0] if len(tables) == 1 else tables


# -- dictionary transforms ----------------------------------------------------------------


class DictionaryTransform:
    """Apply a transform to the entries ``keys`` of a dict (MONAI's MapTransform
    convention); other entries pass through unchanged, the input dict is not modified.

    Parameters
    ----------
    keys : hashable or sequence of hashable
        The entries of the dict to transform.
    transform : callable
        The transform of one entry.
    allow_missing_keys : bool, optional
        Skip keys absent from the dict instead of raising ``KeyError`` (default False).
    """

    def __init__(
        self,
        keys: Hashable | Sequence[Hashable],
        transform: Callable[[Any], Any],
        *,
        allow_missing_keys: bool = False,
    ) -> None:
        self.keys: tuple[Hashable, ...] = tuple(keys) if isinstance(keys, list | tuple) else (keys,)
        self.transform = transform
        self.allow_missing_keys = allow_missing_keys

    def output_key(self, key: Hashable) -> Hashable:
        """Where the result for ``key`` goes (the key itself)."""
        return key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        result = dict(data)
        for key in self.keys:
            if key not in result:
                if self.allow_missing_keys:
                    continue
                raise KeyError(
                    f"{type(self).__name__}: key {key!r} is not in the data (keys: "
                    f"{', '.join(map(repr, result))}); pass allow_missing_keys=True to skip it"
                )
            result[self.output_key(key)] = self.transform(result[key])
        return result

    def __repr__(self) -> str:
        return f"{type(self).__name__}(keys={self.keys!r}, transform={self.transform!r})"


class Remapd(DictionaryTransform):
    """Dictionary version of :class:`Remap`.

    Parameters
    ----------
    keys : hashable or sequence of hashable
        The entries of the dict to transform.
    mapping : dict or numpy.ndarray
        As in :class:`Remap`.
    missing : {"keep", "error"} or int, optional
        As in :class:`Remap` (default ``"keep"``).
    out_dtype : dtype, optional
        As in :class:`Remap` (default: the smallest unsigned type that fits).
    allow_missing_keys : bool, optional
        Skip keys absent from the dict instead of raising ``KeyError`` (default False).

    Examples
    --------
    >>> import numpy as np
    >>> from fastseg.transforms import Remapd
    >>> Remapd("seg", {2: 1})({"seg": np.array([0, 2, 2])})["seg"]
    array([0, 1, 1], dtype=uint8)
    """

    def __init__(
        self,
        keys: Hashable | Sequence[Hashable],
        mapping: Mapping[int, int] | npt.NDArray[np.integer],
        *,
        missing: Missing = "keep",
        out_dtype: npt.DTypeLike | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        transform = Remap(mapping, missing=missing, out_dtype=out_dtype)
        super().__init__(keys, transform, allow_missing_keys=allow_missing_keys)


class ToSemanticd(DictionaryTransform):
    """Dictionary version of :class:`ToSemantic`.

    Parameters
    ----------
    keys : hashable or sequence of hashable
        The entries of the dict to transform.
    segment_map : SegmentMap
        As in :class:`ToSemantic`.
    schema : Schema
        As in :class:`ToSemantic`.
    unknown : {"error", "background", "keep"}, optional
        As in :class:`ToSemantic` (default ``"error"``).
    allow_missing_keys : bool, optional
        Skip keys absent from the dict instead of raising ``KeyError`` (default False).

    Examples
    --------
    >>> import numpy as np
    >>> import fastseg
    >>> from fastseg.transforms import ToSemanticd
    >>> schema = fastseg.Schema([fastseg.Category("Vertebra", 1)])
    >>> vertebra = fastseg.Segment("Vertebra")
    >>> segments = fastseg.SegmentMap({5: vertebra, 6: vertebra})
    >>> ToSemanticd("seg", segments, schema)({"seg": np.array([0, 5, 6])})["seg"]
    array([0, 1, 1], dtype=uint8)
    """

    def __init__(
        self,
        keys: Hashable | Sequence[Hashable],
        segment_map: SegmentMap,
        schema: Schema,
        *,
        unknown: Literal["error", "background", "keep"] = "error",
        allow_missing_keys: bool = False,
    ) -> None:
        transform = ToSemantic(segment_map, schema, unknown=unknown)
        super().__init__(keys, transform, allow_missing_keys=allow_missing_keys)


class ToInstancesd(DictionaryTransform):
    """Dictionary version of :class:`ToInstances`.

    Parameters
    ----------
    keys : hashable or sequence of hashable
        The entries of the dict to transform.
    schema : Schema
        As in :class:`ToInstances`.
    connectivity : int, optional
        As in :class:`ToInstances` (default: full).
    split : bool, optional
        As in :class:`ToInstances` (default True).
    channel_first : bool, optional
        As in :class:`ToInstances` (default: decided from the input).
    allow_missing_keys : bool, optional
        Skip keys absent from the dict instead of raising ``KeyError`` (default False).

    Examples
    --------
    >>> import numpy as np
    >>> import fastseg
    >>> from fastseg.transforms import ToInstancesd
    >>> schema = fastseg.Schema([fastseg.Category("Vertebra", 1)])
    >>> ToInstancesd("seg", schema)({"seg": np.array([1, 0, 1])})["seg"]
    array([1, 0, 2], dtype=uint8)
    """

    def __init__(
        self,
        keys: Hashable | Sequence[Hashable],
        schema: Schema,
        *,
        connectivity: int | None = None,
        split: bool = True,
        channel_first: bool | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        transform = ToInstances(
            schema, connectivity=connectivity, split=split, channel_first=channel_first
        )
        super().__init__(keys, transform, allow_missing_keys=allow_missing_keys)


class KeepLargestd(DictionaryTransform):
    """Dictionary version of :class:`KeepLargest`.

    Parameters
    ----------
    keys : hashable or sequence of hashable
        The entries of the dict to transform.
    k : int, optional
        As in :class:`KeepLargest` (default 1).
    connectivity : int, optional
        As in :class:`KeepLargest` (default: full).
    per_label : bool, optional
        As in :class:`KeepLargest` (default True).
    channel_first : bool, optional
        As in :class:`KeepLargest` (default: decided from the input).
    allow_missing_keys : bool, optional
        Skip keys absent from the dict instead of raising ``KeyError`` (default False).

    Examples
    --------
    >>> import numpy as np
    >>> from fastseg.transforms import KeepLargestd
    >>> KeepLargestd("seg")({"seg": np.array([1, 1, 0, 1])})["seg"]
    array([1, 1, 0, 0])
    """

    def __init__(
        self,
        keys: Hashable | Sequence[Hashable],
        k: int = 1,
        *,
        connectivity: Connectivity | None = None,
        per_label: bool = True,
        channel_first: bool | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        transform = KeepLargest(
            k, connectivity=connectivity, per_label=per_label, channel_first=channel_first
        )
        super().__init__(keys, transform, allow_missing_keys=allow_missing_keys)


class RemoveSmalld(DictionaryTransform):
    """Dictionary version of :class:`RemoveSmall`.

    Parameters
    ----------
    keys : hashable or sequence of hashable
        The entries of the dict to transform.
    min_size : float
        As in :class:`RemoveSmall`.
    connectivity : int, optional
        As in :class:`RemoveSmall` (default: full).
    spacing : sequence of float, optional
        As in :class:`RemoveSmall` (default: none, ``min_size`` counts voxels).
    channel_first : bool, optional
        As in :class:`RemoveSmall` (default: decided from the input).
    allow_missing_keys : bool, optional
        Skip keys absent from the dict instead of raising ``KeyError`` (default False).

    Examples
    --------
    >>> import numpy as np
    >>> from fastseg.transforms import RemoveSmalld
    >>> RemoveSmalld("seg", 2)({"seg": np.array([1, 1, 0, 1])})["seg"]
    array([1, 1, 0, 0])
    """

    def __init__(
        self,
        keys: Hashable | Sequence[Hashable],
        min_size: float,
        *,
        connectivity: Connectivity | None = None,
        spacing: Sequence[float] | None = None,
        channel_first: bool | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        transform = RemoveSmall(
            min_size, connectivity=connectivity, spacing=spacing, channel_first=channel_first
        )
        super().__init__(keys, transform, allow_missing_keys=allow_missing_keys)


class Statsd(DictionaryTransform):
    """Dictionary version of :class:`Stats`: the table of each key goes to
    ``"<key>_stats"``, the labels stay.

    Parameters
    ----------
    keys : hashable or sequence of hashable
        The entries of the dict to transform.
    surface : bool, optional
        As in :class:`Stats` (default False).
    channel_first : bool, optional
        As in :class:`Stats` (default: decided from the input).
    allow_missing_keys : bool, optional
        Skip keys absent from the dict instead of raising ``KeyError`` (default False).

    Examples
    --------
    >>> import numpy as np
    >>> from fastseg.transforms import Statsd
    >>> Statsd("seg")({"seg": np.array([0, 3, 3])})["seg_stats"].ids
    array([3], dtype=uint64)
    """

    def __init__(
        self,
        keys: Hashable | Sequence[Hashable],
        *,
        surface: bool = False,
        channel_first: bool | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        transform = Stats(surface=surface, channel_first=channel_first)
        super().__init__(keys, transform, allow_missing_keys=allow_missing_keys)

    def output_key(self, key: Hashable) -> Hashable:
        return f"{key}_stats"


# -- TorchIO ------------------------------------------------------------------------------


@functools.cache
def _torchio_class() -> type:
    import torchio

    class FastsegLabelTransform(torchio.LabelTransform):
        """A fastseg transform applied to every label map of a TorchIO subject."""

        def __init__(self, transform: Callable[[Any], Any], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.transform = transform
            self.args_names = ["transform"]

        def apply_transform(self, subject: Any) -> Any:
            for image in self.get_images(subject):
                image.set_data(self.transform(image.data))
            return subject

    return FastsegLabelTransform


def as_torchio(transform: LabelTransform[Any], **kwargs: Any) -> Any:
    """A TorchIO transform that applies ``transform`` to the label maps of a subject.

    Image affines and every other entry of the subject are kept; ``kwargs`` go to
    TorchIO's transform (``include``, ``exclude``, ``p``, ``copy``, ...). Needs TorchIO.

    Parameters
    ----------
    transform : LabelTransform
        A transform that returns a label map (not :class:`Stats`).

    Returns
    -------
    torchio.LabelTransform

    Raises
    ------
    TypeError
        For :class:`Stats` or anything that is not a fastseg transform.
    ImportError
        Without TorchIO.

    Examples
    --------
    >>> import torch, torchio
    >>> from fastseg.transforms import KeepLargest, as_torchio
    >>> subject = torchio.Subject(seg=torchio.LabelMap(tensor=torch.tensor([[[[1, 0, 1, 1]]]])))
    >>> as_torchio(KeepLargest())(subject).seg.data.tolist()
    [[[[0, 0, 1, 1]]]]
    """
    if not isinstance(transform, LabelTransform) or isinstance(transform, Stats):
        raise TypeError(
            "as_torchio takes a fastseg transform that returns a label map "
            f"(Remap, ToSemantic, ToInstances, KeepLargest, RemoveSmall), got {transform!r}"
        )
    return _torchio_class()(transform, **kwargs)

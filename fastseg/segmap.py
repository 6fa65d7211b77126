"""Segment maps: which category each instance id of an instance label map belongs to.

Annotation tools export instance maps (every object its own voxel value) with a mapping
from those values to categories; RedBrick AI calls it a ``segmentMap``. Where objects
overlap, a voxel value can stand for a group of several instances.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from fastseg.schema import Category, Schema

__all__ = ["Segment", "SegmentMap"]


@dataclass(frozen=True)
class Segment:
    """One instance: its category (a name or a hierarchy path) and its attributes.

    ``extra`` keeps whatever else the source format stored for the instance, so that
    writing the map back loses nothing.

    Examples
    --------
    >>> from fastseg import Category, Schema, Segment
    >>> schema = Schema([Category("L1", 1, parents=("Spine", "Vertebrae"))])
    >>> Segment(["Spine", "Vertebrae", "L1"]).resolve(schema).value
    1
    """

    category: str | tuple[str, ...]
    attributes: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        category = self.category
        if isinstance(category, list | tuple):
            category = tuple(category)
            if not category or not all(isinstance(p, str) and p for p in category):
                raise ValueError(f"a category path must be non-empty strings, got {category!r}")
        elif not isinstance(category, str) or not category:
            raise ValueError(f"a segment's category must be a name or a path, got {category!r}")
        object.__setattr__(self, "category", category)
        object.__setattr__(self, "attributes", MappingProxyType(dict(self.attributes)))
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    def __reduce__(self) -> tuple[Any, ...]:
        # The read-only views do not pickle; their dicts do (segment maps travel to
        # worker processes).
        return (Segment, (self.category, dict(self.attributes), dict(self.extra)))

    def resolve(self, schema: Schema) -> Category:
        """The schema's category for this segment (by name, or by hierarchy path)."""
        if isinstance(self.category, str):
            return schema[self.category]
        return schema.by_path(self.category)


class SegmentMap:
    """Instance id -> :class:`Segment`, plus overlap groups.

    Parameters
    ----------
    segments : mapping of int to Segment
        Every instance id (a voxel value of the instance map, >= 1).
    groups : mapping of int to iterable of int, optional
        Voxel values that stand for several instances at once (overlaps): value -> the
        instance ids it covers. A group value must not also be an instance id.

    Examples
    --------
    >>> from fastseg import Segment, SegmentMap
    >>> spine = SegmentMap({1: Segment("Vertebra"), 2: Segment("Vertebra"), 3: Segment("Disc")})
    >>> sorted(spine), spine[3].category
    ([1, 2, 3], 'Disc')
    """

    def __init__(
        self,
        segments: Mapping[int, Segment],
        groups: Mapping[int, Iterable[int]] | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self._segments: dict[int, Segment] = {}
        for key, segment in segments.items():
            ident = _instance_id(key)
            if not isinstance(segment, Segment):
                raise TypeError(f"instance {ident}: expected a Segment, got {segment!r}")
            self._segments[ident] = segment
        self._groups: dict[int, tuple[int, ...]] = {}
        for key, members in (groups or {}).items():
            value = _instance_id(key)
            if value in self._segments:
                raise ValueError(f"value {value} is both an instance and an overlap group")
            ids = tuple(_instance_id(m) for m in members)
            missing = [m for m in ids if m not in self._segments]
            if missing:
                raise ValueError(f"overlap group {value} names unknown instances {missing}")
            self._groups[value] = ids
        self.metadata: Mapping[str, Any] = MappingProxyType(dict(metadata or {}))

    def __getitem__(self, instance: int) -> Segment:
        try:
            return self._segments[instance]
        except KeyError:
            raise KeyError(f"no instance {instance} in this segment map") from None

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._segments))

    def __len__(self) -> int:
        return len(self._segments)

    def __contains__(self, instance: object) -> bool:
        return instance in self._segments

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SegmentMap):
            return NotImplemented
        return (self._segments, self._groups, dict(self.metadata)) == (
            other._segments,
            other._groups,
            dict(other.metadata),
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuilt, (self._segments, self._groups, dict(self.metadata)))

    def __repr__(self) -> str:
        return f"SegmentMap({len(self._segments)} instances, {len(self._groups)} overlap groups)"

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        schema: Schema | None = None,
        *,
        series: str | None = None,
    ) -> SegmentMap:
        """Read a segment map from any file that holds one.

        RedBrick ``segmentMap`` JSON, a RedBrick export's ``tasks.json`` (``series``
        names the series, or ``task/series``; a single series is used without it), the
        SDK's ``labels.json``, dcmqi metadata, or a one-layer Slicer ``.seg.nrrd``.
        ``schema`` resolves RedBrick classId values.
        """
        from fastseg.formats.registry import load_segment_map

        return load_segment_map(path, schema, series=series)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write as RedBrick ``segmentMap`` JSON, atomically."""
        import json

        from fastseg._files import write_text_atomically
        from fastseg.formats.redbrick import segment_map_dict

        write_text_atomically(path, json.dumps(segment_map_dict(self), indent=2) + "\n")

    @property
    def groups(self) -> Mapping[int, tuple[int, ...]]:
        """Overlap group value -> the instance ids it stands for."""
        return MappingProxyType(self._groups)

    def items(self) -> Iterator[tuple[int, Segment]]:
        """(instance id, segment) in ascending id order."""
        for ident in sorted(self._segments):
            yield ident, self._segments[ident]

    def values(self) -> list[int]:
        """Every voxel value the map explains: instance ids and group values, ascending."""
        return sorted([*self._segments, *self._groups])


def _rebuilt(
    segments: Mapping[int, Segment], groups: Mapping[int, Iterable[int]], metadata: dict[str, Any]
) -> SegmentMap:
    return SegmentMap(segments, groups, metadata=metadata)


def _instance_id(key: object) -> int:
    """Instance ids arrive as ints or, from JSON, as decimal strings."""
    if isinstance(key, str) and key.strip().isdigit():
        key = int(key)
    if isinstance(key, bool) or not isinstance(key, int) or key < 1:
        raise ValueError(f"instance ids must be integers >= 1, got {key!r}")
    return key

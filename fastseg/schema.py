"""Categories and schemas: the names, values, colours and hierarchy behind label ids.

A :class:`Schema` is an ordered set of :class:`Category` objects with unique names and
unique values; it is what a semantic label map's ids mean. Readers and writers for the
formats people keep schemas in live in :mod:`fastseg.formats`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastseg.formats.registry import SchemaFormat

__all__ = ["Category", "Schema"]

Color = tuple[int, int, int]


def _check_color(color: object, name: str) -> Color | None:
    if color is None:
        return None
    if isinstance(color, str):
        text = color.removeprefix("#")
        if len(text) != 6 or any(c not in "0123456789abcdefABCDEF" for c in text):
            raise ValueError(f"category {name!r}: colour {color!r} is not #rrggbb")
        return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))
    values = tuple(color) if isinstance(color, Iterable) else ()
    if len(values) != 3 or not all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in values
    ):
        raise ValueError(f"category {name!r}: colour must be three integers 0-255, got {color!r}")
    return (int(values[0]), int(values[1]), int(values[2]))


@dataclass(frozen=True)
class Category:
    """One category: the id it takes in a semantic map, and what it is called.

    Parameters
    ----------
    name : str
        Unique within its schema, e.g. ``"Vertebra"``.
    value : int
        Its id in a semantic map, at least 1 (0 is background).
    color : tuple of three ints or "#rrggbb", optional
        RGB display colour.
    parents : tuple of str, optional
        Hierarchy above the category, outermost first, e.g. ``("Spine",)``.
    attributes : mapping, optional
        Anything else a format carries (kept on round trips).

    Examples
    --------
    >>> from fastseg import Category
    >>> Category("L1", 3, color="#ff8000", parents=("Spine", "Vertebrae")).path
    ('Spine', 'Vertebrae', 'L1')
    """

    name: str
    value: int
    color: Color | None = None
    parents: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"a category name must be a non-empty string, got {self.name!r}")
        if isinstance(self.value, bool) or not isinstance(self.value, int) or self.value < 1:
            raise ValueError(
                f"category {self.name!r}: value must be an integer >= 1 (0 is background), "
                f"got {self.value!r}"
            )
        object.__setattr__(self, "color", _check_color(self.color, self.name))
        parents = tuple(self.parents)
        if not all(isinstance(p, str) and p for p in parents):
            raise ValueError(f"category {self.name!r}: parents must be non-empty strings")
        object.__setattr__(self, "parents", parents)
        object.__setattr__(self, "attributes", MappingProxyType(dict(self.attributes)))

    @property
    def path(self) -> tuple[str, ...]:
        """The hierarchy path including the category itself."""
        return (*self.parents, self.name)

    def __hash__(self) -> int:
        return hash((self.name, self.value, self.color, self.parents))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Category):
            return NotImplemented
        return (self.name, self.value, self.color, self.parents, dict(self.attributes)) == (
            other.name,
            other.value,
            other.color,
            other.parents,
            dict(other.attributes),
        )


class Schema:
    """An ordered set of categories with unique names and unique values.

    Parameters
    ----------
    categories : iterable of Category
    metadata : mapping, optional
        Format-level information kept on round trips (e.g. nnU-Net's other keys).

    Raises
    ------
    ValueError
        If two categories share a name or a value.

    Examples
    --------
    >>> from fastseg import Category, Schema
    >>> schema = Schema([Category("liver", 1), Category("spleen", 2)])
    >>> schema["spleen"].value, schema.by_value(1).name, len(schema)
    (2, 'liver', 2)
    """

    def __init__(
        self, categories: Iterable[Category], *, metadata: Mapping[str, Any] | None = None
    ) -> None:
        self._categories = tuple(categories)
        self.metadata: Mapping[str, Any] = MappingProxyType(dict(metadata or {}))
        self._by_name: dict[str, Category] = {}
        self._by_value: dict[int, Category] = {}
        self._by_path: dict[tuple[str, ...], Category] = {}
        for category in self._categories:
            if not isinstance(category, Category):
                raise TypeError(f"a schema holds Category objects, got {category!r}")
            if category.name in self._by_name:
                raise ValueError(f"two categories are named {category.name!r}")
            if category.value in self._by_value:
                other = self._by_value[category.value].name
                raise ValueError(
                    f"categories {other!r} and {category.name!r} both have value {category.value}"
                )
            self._by_name[category.name] = category
            self._by_value[category.value] = category
            self._by_path[category.path] = category

    def __iter__(self) -> Iterator[Category]:
        return iter(self._categories)

    def __len__(self) -> int:
        return len(self._categories)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> Category:
        """The category called ``name``."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no category named {name!r} in this schema") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schema):
            return NotImplemented
        return self._categories == other._categories and dict(self.metadata) == dict(other.metadata)

    def __repr__(self) -> str:
        inside = ", ".join(f"{c.name}={c.value}" for c in self._categories)
        return f"Schema({inside})"

    @property
    def names(self) -> list[str]:
        return [c.name for c in self._categories]

    @property
    def values(self) -> list[int]:
        return [c.value for c in self._categories]

    def by_value(self, value: int) -> Category:
        """The category whose semantic id is ``value``."""
        try:
            return self._by_value[int(value)]
        except KeyError:
            raise KeyError(f"no category has value {value} in this schema") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str], format: SchemaFormat | None = None) -> Schema:
        """Read a schema file in any format of :mod:`fastseg.formats.registry`.

        The format follows the name (``.tsv``: BIDS, ``.txt``/``.label``: ITK-SNAP,
        ``.seg.nrrd``: 3D Slicer) and, for JSON, the content (nnU-Net ``dataset.json``,
        RedBrick taxonomy, dcmqi metadata, label list) unless ``format`` says.
        """
        from fastseg.formats.registry import load_schema

        return load_schema(path, format)

    def save(self, path: str | os.PathLike[str], format: SchemaFormat | None = None) -> None:
        """Write the schema in ``format`` (see :meth:`load`), atomically; without it the
        name decides (``dataset.json``: nnU-Net, ``.tsv``: BIDS, ``.txt``/``.label``:
        ITK-SNAP) and other JSON names need ``format``."""
        from fastseg.formats.registry import save_schema

        save_schema(self, path, format)

    def by_path(self, path: Iterable[str]) -> Category:
        """The category at a hierarchy path, e.g. ``("Spine", "Vertebrae", "L1")``; a
        path of one element is a name."""
        key = tuple(path)
        if len(key) == 1 and key[0] in self._by_name:
            return self._by_name[key[0]]
        try:
            return self._by_path[key]
        except KeyError:
            raise KeyError(f"no category at path {key!r} in this schema") from None

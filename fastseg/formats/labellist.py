"""Label-list JSON files of atlas viewers (niivue's colour tables and atlas labels).

The file lists the names of the label values and their colours as parallel arrays::

    {"R": [0, 71, 33], "G": [0, 46, 78], "B": [0, 154, 43],
     "labels": ["Air", "Precentral_L", "Precentral_R"]}

Without ``I``, ``labels[i]`` names value ``i``; with an ``I`` array of values, ``labels[i]``
names value ``I[i]``. ``A`` (alpha) and other keys are kept. Value 0 is background: its
name and colour go to ``schema.metadata`` (``"background"``, ``"background_color"``),
not to a :class:`~fastseg.Category`; so do the names of values that have an empty name
(``"unnamed"``), so that writing gives the file back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from fastseg._files import write_text_atomically
from fastseg.formats.registry import excerpt, read_json
from fastseg.schema import Category, Schema

_COLOURS = ("R", "G", "B")
_OWN = frozenset({"labels", "I", *_COLOURS})
_KEYS = "label_list_keys"


def recognise(document: Any) -> bool:
    """A JSON object whose ``labels`` is a list of names."""
    return isinstance(document, Mapping) and isinstance(document.get("labels"), list)


def read_schema(path_or_dict: str | os.PathLike[str] | Mapping[str, Any]) -> Schema:
    """Read a label-list JSON file as a schema.

    Parameters
    ----------
    path_or_dict : str, path-like or mapping
        The file, or its parsed content.

    Returns
    -------
    Schema
        One category per non-zero value with a name, in value order, coloured from
        ``R``/``G``/``B``; per-label ``A`` values go to ``attributes["alpha"]``.

    Raises
    ------
    ValueError
        If ``labels`` is not a list of strings, a colour or ``I`` array has another
        length or holds values outside 0-255 (colours) or below 0 (``I``), or two
        entries name the same value or share a name (naming them).

    Examples
    --------
    >>> from fastseg.formats.labellist import read_schema
    >>> schema = read_schema({"R": [0, 255, 0], "G": [0, 0, 255], "B": [0, 0, 0],
    ...                       "labels": ["Air", "Left", "Right"]})
    >>> [(c.name, c.value, c.color) for c in schema], schema.metadata["background"]
    ([('Left', 1, (255, 0, 0)), ('Right', 2, (0, 255, 0))], 'Air')
    """
    if isinstance(path_or_dict, Mapping):
        source, content = "<dict>", path_or_dict
    else:
        source = os.fspath(path_or_dict)
        content = read_json(source)
    if not recognise(content):
        raise ValueError(f"{source}: a label list is a JSON object with a 'labels' list")
    names = content["labels"]
    bad = [i for i, n in enumerate(names) if not isinstance(n, str)]
    if bad:
        raise ValueError(
            f"{source}: labels must be names (strings); entries {excerpt(str(bad[:20]))} are not"
        )
    count = len(names)
    values = _array(content, "I", count, source, 0, None) if "I" in content else list(range(count))
    colours = [
        _array(content, key, count, source, 0, 255) if key in content else None for key in _COLOURS
    ]
    alpha = _array(content, "A", count, source, 0, 255) if "A" in content else None
    seen_values: dict[int, int] = {}
    categories: list[Category] = []
    metadata: dict[str, Any] = {k: v for k, v in content.items() if k not in _OWN and k != "A"}
    metadata[_KEYS] = list(content)
    unnamed: list[int] = []
    for index, (name, value) in enumerate(zip(names, values, strict=True)):
        if value in seen_values:
            raise ValueError(
                f"{source}: entries {seen_values[value]} and {index} both name value {value}"
            )
        seen_values[value] = index
        color = None
        if all(c is not None for c in colours):
            color = (colours[0][index], colours[1][index], colours[2][index])  # type: ignore[index]
        if value == 0:
            metadata["background"] = name
            if color is not None:
                metadata["background_color"] = list(color)
            if alpha is not None:
                metadata["background_alpha"] = alpha[index]
            continue
        if not name.strip():
            unnamed.append(value)
            continue
        attributes = {"alpha": alpha[index]} if alpha is not None else {}
        categories.append(Category(name, value, color=color, attributes=attributes))
    if unnamed:
        metadata["unnamed"] = unnamed
    try:
        return Schema(categories, metadata=metadata)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None


def _array(
    content: Mapping[str, Any], key: str, count: int, source: str, low: int, high: int | None
) -> list[int]:
    values = content[key]
    if not isinstance(values, Sequence) or isinstance(values, str) or len(values) != count:
        length = len(values) if isinstance(values, Sequence) else type(values).__name__
        raise ValueError(
            f"{source}: {key} must be a list as long as labels ({count}), got {length}"
        )
    wrong = [
        v
        for v in values
        if isinstance(v, bool)
        or not isinstance(v, int)
        or v < low
        or (high is not None and v > high)
    ]
    if wrong:
        limit = f"{low}-{high}" if high is not None else f">= {low}"
        raise ValueError(
            f"{source}: {key} holds values that are not integers {limit}: "
            f"{excerpt(str(wrong[:20]))}"
        )
    return [int(v) for v in values]


def schema_dict(schema: Schema) -> dict[str, Any]:
    """A schema as a label-list JSON object (``I`` written when the values are not
    0..n-1; colours when every category has one)."""
    background = str(schema.metadata.get("background", "background"))
    entries: list[tuple[int, str, Any, Any]] = [
        (
            0,
            background,
            schema.metadata.get("background_color", [0, 0, 0]),
            schema.metadata.get("background_alpha", 0),
        )
    ]
    for value in schema.metadata.get("unnamed", ()):
        entries.append((int(value), "", [0, 0, 0], 0))
    for category in schema:
        entries.append(
            (category.value, category.name, category.color, category.attributes.get("alpha", 255))
        )
    entries.sort(key=lambda e: e[0])
    written: dict[str, Any] = {}
    values = [e[0] for e in entries]
    keys = list(schema.metadata.get(_KEYS, ["R", "G", "B", "labels"]))
    if values != list(range(len(values))) and "I" not in keys:
        keys.append("I")
    has_alpha = "A" in keys
    coloured = all(e[2] is not None for e in entries)
    for key in keys:
        if key in _COLOURS and coloured:
            written[key] = [int(e[2][_COLOURS.index(key)]) for e in entries]
        elif key == "A" and has_alpha:
            written[key] = [int(e[3]) for e in entries]
        elif key == "labels":
            written[key] = [e[1] for e in entries]
        elif key == "I":
            written[key] = values
        elif key in schema.metadata and key not in _OWN:
            written[key] = schema.metadata[key]
    return written


def write_schema(schema: Schema, path: str | os.PathLike[str]) -> None:
    """Write a schema as a label-list JSON file, atomically.

    Examples
    --------
    >>> import os, tempfile
    >>> from fastseg import Category, Schema
    >>> from fastseg.formats.labellist import read_schema, write_schema
    >>> path = os.path.join(tempfile.mkdtemp(), "labels.json")
    >>> write_schema(Schema([Category("Left", 1, color=(255, 0, 0))]), path)
    >>> read_schema(path).names
    ['Left']
    """
    write_text_atomically(path, json.dumps(schema_dict(schema), indent=1) + "\n")


def read_segment_map(
    path: str | os.PathLike[str], schema: Schema | None = None, series: str | None = None
) -> Any:
    """A label list as a segment map: every named value is an instance of the category
    of that name (the registry's reader)."""
    from fastseg.segmap import Segment, SegmentMap

    return SegmentMap({c.value: Segment(c.name) for c in read_schema(path)})

"""BIDS segmentation lookup tables (``*_dseg.tsv``).

A tab-separated table with a header row; ``index`` and ``name`` are required, and BIDS
defines the optional ``abbreviation``, ``color`` (``#rrggbb``) and ``mapping`` (an integer
in a standard lookup table). Missing cells are written ``n/a``::

    index	name	abbreviation	color	mapping
    1	Gray Matter	GM	#ff53bb	1
    2	White Matter	WM	#2f8bbe	2

How a table maps onto a :class:`~fastseg.Schema`:

- Each row with an index >= 1 is a :class:`~fastseg.Category`; ``color`` becomes its
  colour, ``abbreviation`` (str) and ``mapping`` (int) its attributes, and any other
  column an attribute of that name holding the cell's text. ``n/a`` cells are left out.
- A row with index 0 (background) is allowed: its name goes into
  ``schema.metadata["background"]``, and its other cells (as text) into
  ``metadata["bids_background"]``.
- ``metadata["bids_columns"]`` records the columns in file order, so that writing gives
  the same table.

Writing uses the recorded columns, adding ``abbreviation``, ``color`` and ``mapping``
when categories have them; attributes without a column (and parents) are not written.
The background row is written first, when ``metadata["background"]`` is set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastseg._files import read_text_or_path, write_text_atomically
from fastseg.schema import Category, Schema

__all__ = ["read_dseg_tsv", "write_dseg_tsv"]

_REQUIRED = ("index", "name")
_OPTIONAL = ("abbreviation", "color", "mapping")
_MISSING = "n/a"
_INDEX = re.compile(r"[0-9]+")
_MAPPING = re.compile(r"-?[0-9]+")
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


def read_dseg_tsv(path_or_text: str | os.PathLike[str]) -> Schema:
    """Read a BIDS ``*_dseg.tsv`` lookup table.

    Parameters
    ----------
    path_or_text : str or path-like
        The file, or its text: a ``str`` containing a line break is read as the text
        itself, any other ``str`` or path-like as a file name.

    Returns
    -------
    Schema
        The categories in row order.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        For a malformed table, naming the file (or ``<text>``) and the line: no header,
        a missing ``index`` or ``name`` column, an empty or repeated column name, a row
        with the wrong number of cells, an index that is not a non-negative integer, a
        colour that is not ``#rrggbb``, a non-integer mapping, or an index or name used
        twice.

    Examples
    --------
    >>> from fastseg.formats.bids import read_dseg_tsv
    >>> schema = read_dseg_tsv(
    ...     "index\\tname\\tabbreviation\\tcolor\\tmapping\\n"
    ...     "1\\tGray Matter\\tGM\\t#ff53bb\\t1\\n"
    ...     "2\\tWhite Matter\\tWM\\t#2f8bbe\\t2\\n"
    ... )
    >>> schema["White Matter"].color, dict(schema["White Matter"].attributes)
    ((47, 139, 190), {'abbreviation': 'WM', 'mapping': 2})
    """
    text, source = read_text_or_path(path_or_text)
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    numbered = [(n, line) for n, line in enumerate(lines, start=1) if line]
    if not numbered:
        raise ValueError(f"{source}: empty table, expected a header row")
    header_line, header = numbered[0]
    columns = header.split("\t")
    where = f"{source}, line {header_line}"
    for position, column in enumerate(columns):
        if not column.strip():
            raise ValueError(f"{where}: column {position + 1} has no name")
        if column in columns[:position]:
            raise ValueError(f"{where}: column {column!r} appears twice")
    for column in _REQUIRED:
        if column not in columns:
            raise ValueError(f"{where}: missing required column {column!r}")
    categories: list[Category] = []
    metadata: dict[str, Any] = {"bids_columns": tuple(columns)}
    index_lines: dict[int, int] = {}
    name_lines: dict[str, int] = {}
    for number, line in numbered[1:]:
        where = f"{source}, line {number}"
        cells = line.split("\t")
        if len(cells) != len(columns):
            raise ValueError(
                f"{where}: {len(cells)} cells, expected {len(columns)} (one per column)"
            )
        row = dict(zip(columns, cells, strict=True))
        index_text, name = row.pop("index"), row.pop("name")
        if not _INDEX.fullmatch(index_text):
            raise ValueError(f"{where}: index {index_text!r} is not a non-negative integer")
        index = int(index_text)
        if index in index_lines:
            raise ValueError(f"{where}: index {index} is also on line {index_lines[index]}")
        index_lines[index] = number
        color = row.pop("color", _MISSING)
        if color != _MISSING and not _COLOR.fullmatch(color):
            raise ValueError(f"{where}: color {color!r} is not #rrggbb")
        mapping = row.get("mapping", _MISSING)
        if mapping != _MISSING and not _MAPPING.fullmatch(mapping):
            raise ValueError(f"{where}: mapping {mapping!r} is not an integer")
        if index == 0:
            metadata["background"] = name
            if "color" in columns:
                row["color"] = color
            if row:
                metadata["bids_background"] = {c: row[c] for c in columns if c in row}
            continue
        if name in name_lines:
            raise ValueError(f"{where}: name {name!r} is also on line {name_lines[name]}")
        name_lines[name] = number
        attributes: dict[str, Any] = {k: v for k, v in row.items() if v != _MISSING}
        if "mapping" in attributes:
            attributes["mapping"] = int(attributes["mapping"])
        try:
            categories.append(Category(name, index, color=_rgb(color), attributes=attributes))
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
    return Schema(categories, metadata=metadata)


def write_dseg_tsv(schema: Schema, path: str | os.PathLike[str]) -> None:
    """Write a schema as a BIDS ``*_dseg.tsv`` lookup table.

    Parameters
    ----------
    schema : Schema
        Written in category order, after a background row when
        ``metadata["background"]`` is set. Columns as described in the module
        documentation; colours as lower-case ``#rrggbb``, missing values as ``n/a``.
    path : str or path-like
        Target file; its folder must exist. An existing file is replaced only once the
        new one is completely written.

    Raises
    ------
    ValueError
        If a cell would hold a tab or a line break, or a ``mapping`` attribute is not an
        integer.

    Examples
    --------
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> from fastseg import Category, Schema
    >>> from fastseg.formats.bids import write_dseg_tsv
    >>> folder = tempfile.TemporaryDirectory()
    >>> target = os.path.join(folder.name, "sub-01_dseg.tsv")
    >>> schema = Schema([
    ...     Category("Gray Matter", 1, color="#ff53bb", attributes={"abbreviation": "GM"}),
    ...     Category("White Matter", 2),
    ... ])
    >>> write_dseg_tsv(schema, target)
    >>> print(Path(target).read_text().expandtabs(16), end="")
    index           name            abbreviation    color
    1               Gray Matter     GM              #ff53bb
    2               White Matter    n/a             n/a
    >>> folder.cleanup()
    """
    recorded = schema.metadata.get("bids_columns", _REQUIRED)
    columns = [str(c) for c in recorded]
    for column in _REQUIRED:
        if column not in columns:
            columns.insert(_REQUIRED.index(column), column)
    for column in _OPTIONAL:
        if column not in columns and any(_cell(c, column) != _MISSING for c in schema):
            columns.append(column)
    rows = [columns]
    if "background" in schema.metadata:
        extra = schema.metadata.get("bids_background", {})
        if not isinstance(extra, Mapping):
            raise ValueError(f"metadata['bids_background'] must be a mapping, got {extra!r}")
        cells = {"index": "0", "name": str(schema.metadata["background"])}
        rows.append([cells.get(c, str(extra.get(c, _MISSING))) for c in columns])
    for category in schema:
        rows.append([_cell(category, column) for column in columns])
    for row in rows:
        for column, cell in zip(columns, row, strict=True):
            if any(c in cell for c in "\t\n\r"):
                raise ValueError(
                    f"column {column!r}: {cell!r} holds a tab or line break, which a TSV "
                    f"cell cannot"
                )
    write_text_atomically(Path(path), "".join("\t".join(row) + "\n" for row in rows))


def _rgb(color: str) -> tuple[int, int, int] | None:
    if color == _MISSING:
        return None
    return (int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16))


def _cell(category: Category, column: str) -> str:
    if column == "index":
        return str(category.value)
    if column == "name":
        return category.name
    if column == "color":
        if category.color is None:
            return _MISSING
        return "#{:02x}{:02x}{:02x}".format(*category.color)
    if column not in category.attributes:
        return _MISSING
    value = category.attributes[column]
    if column == "mapping" and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"category {category.name!r}: mapping must be an integer, got {value!r}")
    return str(value)

"""ITK-SNAP label description files (``Segmentation > Export Label Descriptions``).

ITK-SNAP writes a fixed comment header followed by one line per label::

    ################################################
    # ITK-SnAP Label Description File
    ...
    ################################################
        0     0    0    0        0  0  0    "Clear Label"
        1   255    0    0        1  1  1    "Label 1"

The fields are the label value, red, green and blue (0-255), opacity (0-1), visibility
and 3D mesh visibility (0 or 1), and the quoted name. Reading accepts any whitespace
between fields and skips blank lines and lines starting with ``#``.

How a file maps onto a :class:`~fastseg.Schema`:

- Label 0 ("Clear Label") is background, not a :class:`~fastseg.Category`: its name goes
  into ``schema.metadata["background"]``, and its colour and flags into
  ``metadata["itksnap_background"]`` when they differ from ITK-SNAP's all-zero ones.
- Every other line is a category; opacity, visibility and mesh visibility go into
  ``attributes["alpha"]`` (float), ``attributes["visible"]`` and
  ``attributes["mesh_visible"]`` (bool).

Writing reproduces ITK-SNAP's layout exactly (opacity with two significant digits, as
ITK-SNAP prints it; other values with as many digits as they need). Categories without
these attributes get ITK-SNAP's defaults for a new label (opaque, visible, mesh shown).
ITK-SNAP has no "no colour": a category whose ``color`` is None is written as black
(``0 0 0``) and reads back with that colour. Parents and other attributes are not
written. Label 0 is always written, named ``metadata["background"]`` or "Clear Label".
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastseg._files import read_text_or_path, write_text_atomically
from fastseg.schema import Category, Schema

__all__ = ["HEADER", "read_itksnap", "write_itksnap"]

HEADER = (
    "################################################\n"
    "# ITK-SnAP Label Description File\n"
    "# File format: \n"
    "# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL\n"
    "# Fields: \n"
    "#    IDX:   Zero-based index \n"
    "#    -R-:   Red color component (0..255)\n"
    "#    -G-:   Green color component (0..255)\n"
    "#    -B-:   Blue color component (0..255)\n"
    "#    -A-:   Label transparency (0.00 .. 1.00)\n"
    "#    VIS:   Label visibility (0 or 1)\n"
    "#    IDX:   Label mesh visibility (0 or 1)\n"
    "#  LABEL:   Label description \n"
    "################################################\n"
)
"""The comment block ITK-SNAP writes at the top of every label description file."""

_LINE = re.compile(r'\s*(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+"([^"]*)"\s*')
_INTEGER = re.compile(r"[0-9]+")
_CLEAR = {"color": (0, 0, 0), "alpha": 0.0, "visible": False, "mesh_visible": False}
_NEW_LABEL = {"alpha": 1.0, "visible": True, "mesh_visible": True}


def read_itksnap(path_or_text: str | os.PathLike[str]) -> Schema:
    """Read an ITK-SNAP label description file.

    Parameters
    ----------
    path_or_text : str or path-like
        The file, or its text: a ``str`` containing a line break is read as the text
        itself, any other ``str`` or path-like as a file name.

    Returns
    -------
    Schema
        The categories in file order.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        For a malformed line, naming the file (or ``<text>``) and the line: fields that
        are missing or not numbers, colour components outside 0-255, opacity outside
        0-1, flags other than 0 or 1, an unquoted or empty name, or a value or name
        used twice.

    Examples
    --------
    >>> from fastseg.formats.itksnap import HEADER, read_itksnap
    >>> schema = read_itksnap(
    ...     HEADER
    ...     + '    0     0    0    0        0  0  0    "Clear Label"\\n'
    ...     + '    1   255    0    0        1  1  1    "Liver"\\n'
    ...     + '    2     0  255    0      0.5  1  0    "Tumor"\\n'
    ... )
    >>> schema["Tumor"].color, dict(schema["Tumor"].attributes)
    ((0, 255, 0), {'alpha': 0.5, 'visible': True, 'mesh_visible': False})
    """
    text, source = read_text_or_path(path_or_text)
    categories: list[Category] = []
    metadata: dict[str, Any] = {}
    value_lines: dict[int, int] = {}
    name_lines: dict[str, int] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{source}, line {number}"
        match = _LINE.fullmatch(line)
        if match is None:
            raise ValueError(f'{where}: expected IDX R G B A VIS MSH "LABEL", got {line!r}')
        index, red, green, blue, alpha, visible, mesh, name = match.groups()
        value = _integer(index, "label value", where)
        color = (_component(red, where), _component(green, where), _component(blue, where))
        fields = {
            "alpha": _alpha(alpha, where),
            "visible": _flag(visible, "visibility (VIS)", where),
            "mesh_visible": _flag(mesh, "mesh visibility (MSH)", where),
        }
        if value in value_lines:
            raise ValueError(f"{where}: label value {value} is also on line {value_lines[value]}")
        value_lines[value] = number
        if value == 0:
            metadata["background"] = name
            if {"color": color, **fields} != _CLEAR:
                metadata["itksnap_background"] = {"color": color, **fields}
            continue
        if name in name_lines:
            raise ValueError(f"{where}: label name {name!r} is also on line {name_lines[name]}")
        name_lines[name] = number
        try:
            categories.append(Category(name, value, color=color, attributes=fields))
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
    return Schema(categories, metadata=metadata)


def write_itksnap(schema: Schema, path: str | os.PathLike[str]) -> None:
    """Write a schema as an ITK-SNAP label description file, exactly as ITK-SNAP does.

    Parameters
    ----------
    schema : Schema
        Written in category order after label 0. Missing colours are written as black
        (``0 0 0``); see the module documentation.
    path : str or path-like
        Target file; its folder must exist. An existing file is replaced only once the
        new one is completely written.

    Raises
    ------
    ValueError
        If a name holds a double quote or a line break, or an ``alpha``, ``visible`` or
        ``mesh_visible`` attribute is out of range.

    Examples
    --------
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> from fastseg import Category, Schema
    >>> from fastseg.formats.itksnap import write_itksnap
    >>> folder = tempfile.TemporaryDirectory()
    >>> target = os.path.join(folder.name, "labels.txt")
    >>> write_itksnap(Schema([Category("Liver", 1, color=(255, 0, 0))]), target)
    >>> print(Path(target).read_text().splitlines()[-1])
        1   255    0    0        1  1  1    "Liver"
    >>> folder.cleanup()
    """
    lines = [HEADER]
    background = schema.metadata.get("background", "Clear Label")
    clear = schema.metadata.get("itksnap_background", _CLEAR)
    if not isinstance(clear, Mapping):
        raise ValueError(f"metadata['itksnap_background'] must be a mapping, got {clear!r}")
    clear = {**_CLEAR, **clear}
    lines.append(_line(0, str(background), clear["color"], clear, "label 0 (background)"))
    for category in schema:
        fields = {**_NEW_LABEL, **category.attributes}
        color = category.color or (0, 0, 0)
        lines.append(_line(category.value, category.name, color, fields, repr(category.name)))
    write_text_atomically(Path(path), "".join(lines))


def _line(value: int, name: str, color: Any, fields: Mapping[str, Any], what: str) -> str:
    if '"' in name or "\n" in name or "\r" in name:
        raise ValueError(f"{what}: an ITK-SNAP label name cannot hold '\"' or a line break")
    if not (
        isinstance(color, (tuple, list))
        and len(color) == 3
        and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in color)
    ):
        raise ValueError(f"{what}: colour must be three integers 0-255, got {color!r}")
    alpha = fields["alpha"]
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"{what}: alpha must be a number from 0 to 1, got {alpha!r}")
    flags = []
    for key in ("visible", "mesh_visible"):
        flag = fields[key]
        if flag not in (0, 1) or not isinstance(flag, int):
            raise ValueError(f"{what}: {key} must be True/False or 0/1, got {flag!r}")
        flags.append(int(flag))
    red, green, blue = color
    return (
        f"  {value:>3}   {red:>3}  {green:>3}  {blue:>3}  {_alpha_text(alpha):>7}"
        f'  {flags[0]}  {flags[1]}    "{name}"\n'
    )


def _alpha_text(alpha: float) -> str:
    """Two significant digits as ITK-SNAP prints (C++ ``setprecision(2)``), unless that
    would lose the value."""
    text = f"{alpha:.2g}"
    return text if float(text) == alpha else repr(float(alpha))


def _integer(text: str, what: str, where: str) -> int:
    if not _INTEGER.fullmatch(text):
        raise ValueError(f"{where}: {what} {text!r} is not a non-negative integer")
    return int(text)


def _component(text: str, where: str) -> int:
    if not _INTEGER.fullmatch(text) or int(text) > 255:
        raise ValueError(f"{where}: colour component {text!r} is not an integer 0-255")
    return int(text)


def _alpha(text: str, where: str) -> float:
    try:
        alpha = float(text)
    except ValueError:
        alpha = math.nan
    if not 0 <= alpha <= 1:
        raise ValueError(f"{where}: opacity (A) {text!r} is not a number from 0 to 1")
    return alpha


def _flag(text: str, what: str, where: str) -> bool:
    if text not in ("0", "1"):
        raise ValueError(f"{where}: {what} {text!r} is not 0 or 1")
    return text == "1"

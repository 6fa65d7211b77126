"""The one table of file formats: every reader and writer, and how each file is recognised.

Each format is one module of :mod:`fastseg.formats` and one :class:`Format` entry here,
naming the module's functions rather than importing them, so that reading this table
imports nothing (no numpy work, no optional dependency, no cycle with
:mod:`fastseg.schema` and :mod:`fastseg.segmap`, which call in here lazily).

:func:`fastseg.load`, :func:`fastseg.save`, :meth:`fastseg.Schema.load` and ``save``,
:meth:`fastseg.SegmentMap.load` and the command line's folder walk all choose their format
here, so they cannot disagree about which names they accept. Adding a format means
writing its module and adding one entry to :data:`FORMATS`.

A format module provides, as it supports them:

- ``read_volume(path) -> LabelImage`` and ``write_volume(path, labels, affine, like)``;
- ``read_schema(path) -> Schema`` and ``write_schema(schema, path)``;
- ``read_segment_map(path, schema, series) -> SegmentMap``;
- for JSON formats, a function recognising the parsed document.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from fastseg.io import LabelImage
    from fastseg.schema import Schema
    from fastseg.segmap import SegmentMap

__all__ = [
    "FORMATS",
    "MAX_JSON_DEPTH",
    "Format",
    "SchemaFormat",
    "SeriesError",
    "VolumeFormat",
    "by_name",
    "load_schema",
    "load_segment_map",
    "read_json",
    "save_schema",
    "schema_format",
    "schema_formats",
    "volume_format",
    "volume_suffix_list",
    "volume_suffixes",
    "writable_schema_formats",
]

VolumeFormat = Literal["nifti", "mgh", "nrrd", "seg.nrrd", "metaimage"]
SchemaFormat = Literal[
    "nnunet", "redbrick", "redbrick-labels", "label-list", "dcmqi", "itksnap", "bids", "slicer"
]

_MAX_ERROR = 300
"""Longest excerpt of a user's file quoted in an error message, in characters."""


@dataclass(frozen=True)
class Format:
    """One file format, and the names of its module's functions.

    Attributes
    ----------
    name : str
        What users pass as ``format=`` (and the CLI as ``--from``/``--to``).
    module : str
        The module (below :mod:`fastseg.formats`) holding its functions.
    suffixes : tuple of str
        Lower-case file name endings, longest first where they overlap.
    description : str
        One line for help texts.
    volume : bool
        Holds label volumes: the module has ``read_volume`` and ``write_volume``.
    reads_schema, writes_schema, reads_segment_map : str or None
        The module's function reading a schema (``f(path) -> Schema``), writing one
        (``f(schema, path)``), reading a segment map (``f(path, schema, series)``).
    recognise : str or None
        For JSON formats told apart by content: ``f(document, kind) -> bool``.
    extra : str or None
        The optional dependency group (``pip install 'fastseg[extra]'``) it needs.
    chooses_series : bool
        A file may hold several segment maps, chosen with ``series=``.
    named_segments : bool
        A volume file names its ids (segments with names and colours, ``save``'s
        ``schema=``), so that what they mean has to follow when the ids change.
    """

    name: str
    module: str
    suffixes: tuple[str, ...]
    description: str
    volume: bool = False
    reads_schema: str | None = None
    writes_schema: str | None = None
    reads_segment_map: str | None = None
    recognise: str | None = None
    extra: str | None = None
    chooses_series: bool = False
    named_segments: bool = False

    @property
    def schema(self) -> bool:
        return self.reads_schema is not None

    @property
    def segment_map(self) -> bool:
        return self.reads_segment_map is not None

    @property
    def json(self) -> bool:
        return self.recognise is not None

    def function(self, name: str) -> Callable[..., Any]:
        """The format module's function ``name`` (imports the module)."""
        module = importlib.import_module(f"fastseg.formats.{self.module}")
        found: Callable[..., Any] = getattr(module, name)
        return found

    def matches(self, path: str | os.PathLike[str]) -> bool:
        """Whether the file name ends in one of the format's suffixes (any case)."""
        return Path(path).name.lower().endswith(self.suffixes)


FORMATS: tuple[Format, ...] = (
    # Volumes; seg.nrrd before nrrd, so that the longer suffix wins.
    Format("nifti", "nifti", (".nii.gz", ".nii"), "NIfTI-1/2 images", volume=True),
    Format("mgh", "mgh", (".mgz", ".mgh"), "FreeSurfer MGH/MGZ volumes", volume=True),
    Format(
        "seg.nrrd",
        "slicer",
        (".seg.nrrd",),
        "3D Slicer segmentations (voxels and segments)",
        volume=True,
        extra="slicer",
        named_segments=True,
    ),
    Format("nrrd", "nrrd", (".nrrd", ".nhdr"), "NRRD volumes", volume=True, extra="slicer"),
    Format(
        "metaimage",
        "metaimage",
        (".mha", ".mhd"),
        "MetaImage volumes (Grand Challenge)",
        volume=True,
        extra="metaimage",
    ),
    # Schemas and segment maps. JSON formats are told apart by content, in this order.
    Format(
        "redbrick",
        "redbrick",
        (".json",),
        "RedBrick AI taxonomy, segmentMap or export tasks.json",
        reads_schema="read_taxonomy",
        writes_schema="write_taxonomy",
        reads_segment_map="read_segment_map_file",
        recognise="recognise",
        chooses_series=True,
    ),
    Format(
        "redbrick-labels",
        "redbrick",
        (".json",),
        "RedBrick AI SDK labels.json (a list of labels)",
        reads_segment_map="read_labels_file",
        recognise="recognise_labels",
        chooses_series=True,
    ),
    Format(
        "dcmqi",
        "dcmqi",
        (".json",),
        "dcmqi segmentation metadata (segmentAttributes)",
        reads_schema="read_schema",
        writes_schema="write_schema",
        reads_segment_map="read_segment_map",
        recognise="recognise",
        chooses_series=True,
    ),
    Format(
        "label-list",
        "labellist",
        (".json",),
        "label-list JSON of atlas viewers (labels, R/G/B arrays)",
        reads_schema="read_schema",
        writes_schema="write_schema",
        reads_segment_map="read_segment_map",
        recognise="recognise",
    ),
    Format(
        "nnunet",
        "nnunet",
        (".json",),
        "nnU-Net dataset.json (v2; MSD / v1 read)",
        reads_schema="read_dataset_json",
        writes_schema="write_dataset_json",
        recognise="recognise",
    ),
    Format(
        "itksnap",
        "itksnap",
        (".txt", ".label", ".lbl"),
        "ITK-SNAP label descriptions",
        reads_schema="read_itksnap",
        writes_schema="write_itksnap",
    ),
    Format(
        "bids",
        "bids",
        (".tsv",),
        "BIDS *_dseg.tsv",
        reads_schema="read_dseg_tsv",
        writes_schema="write_dseg_tsv",
    ),
    Format(
        "slicer",
        "slicer",
        (".seg.nrrd", ".nrrd"),
        "3D Slicer .seg.nrrd segment metadata",
        reads_schema="read_schema",
        reads_segment_map="read_segment_map",
        extra="slicer",
    ),
)


def by_name(name: str, *, kind: Literal["volume", "schema", "segment map"] | None = None) -> Format:
    """The format called ``name``; ValueError listing the names there are."""
    for entry in FORMATS:
        if entry.name == name and (kind is None or _holds(entry, kind)):
            return entry
    names = [f.name for f in FORMATS if kind is None or _holds(f, kind)]
    what = f"a {kind} format" if kind else "a format"
    raise ValueError(f"{what} is one of {', '.join(names)}; got {name!r}")


def _holds(entry: Format, kind: str) -> bool:
    return {"volume": entry.volume, "schema": entry.schema, "segment map": entry.segment_map}[kind]


def volume_suffixes() -> tuple[str, ...]:
    """Every file name ending of a label volume format, lower case, longest first.

    Folder walks take the files whose lower-cased names end in one of these.

    Examples
    --------
    >>> from fastseg.formats import volume_suffixes
    >>> ".nii.gz" in volume_suffixes() and ".mgz" in volume_suffixes()
    True
    """
    suffixes = {s for f in FORMATS if f.volume for s in f.suffixes}
    return tuple(sorted(suffixes, key=lambda s: (-len(s), s)))


def volume_suffix_list() -> str:
    """Every volume file ending, alphabetically, for help texts and messages: written
    from :data:`FORMATS`, so that no text falls behind a new format.

    Examples
    --------
    >>> from fastseg.formats import volume_suffix_list
    >>> volume_suffix_list()
    '.mgh, .mgz, .mha, .mhd, .nhdr, .nii, .nii.gz, .nrrd, .seg.nrrd'
    """
    return ", ".join(sorted(volume_suffixes()))


def schema_formats() -> tuple[str, ...]:
    """The names of the formats a schema can be read from."""
    return tuple(f.name for f in FORMATS if f.schema)


def writable_schema_formats() -> tuple[str, ...]:
    """The names of the formats a schema alone can be written in."""
    return tuple(f.name for f in FORMATS if f.writes_schema is not None)


def split_volume_suffix(path: str) -> tuple[str, str]:
    """``"a/b.nii.gz"`` -> ``("a/b", ".nii.gz")``, for every volume suffix; other names
    split at their last dot."""
    lowered = path.lower()
    for suffix in volume_suffixes():
        if lowered.endswith(suffix):
            return path[: -len(suffix)], path[-len(suffix) :]
    return os.path.splitext(path)


def volume_format(path: str | os.PathLike[str], format: str | None = None) -> Format:
    """The volume format of ``path``: ``format`` if given, else by its suffix."""
    if format is not None:
        return by_name(format, kind="volume")
    for entry in FORMATS:
        if entry.volume and entry.matches(path):
            return entry
    raise ValueError(
        f"{os.fspath(path)}: not a label volume file name; fastseg reads and writes "
        f"{', '.join(volume_suffixes())}"
    )


class SeriesError(ValueError):
    """A segment map file holds several series and ``series`` chose none of them (or
    one it does not hold), or holds a single segment map and ``series`` was given.

    Attributes
    ----------
    source : str
        The file.
    problem : str
        What is wrong, e.g. ``"2 series have segment maps"``.
    available : tuple of str
        The series there are to choose from (empty: the file has none).
    naming : str
        How a series is named, e.g. ``"a name, or task/name"``.
    """

    def __init__(
        self, source: str, problem: str, available: Sequence[str] = (), naming: str = "a name"
    ) -> None:
        self.source = source
        self.problem = problem
        self.available = tuple(available)
        self.naming = naming
        super().__init__(f"{source}: {self.describe('series=')}")

    def describe(self, option: str) -> str:
        """The message without the file, naming ``option`` as the way to choose."""
        if not self.available:
            return (
                f"{self.problem}; {option} chooses a series of a RedBrick tasks.json or "
                "labels.json, or a label file of dcmqi metadata"
            )
        listed = excerpt(", ".join(self.available))
        return f"{self.problem}; choose one with {option} ({self.naming}): {listed}"


def excerpt(text: str, limit: int = _MAX_ERROR) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]} ... ({len(text) - limit} more characters)"


MAX_JSON_DEPTH = 64
"""JSON nested deeper than this is refused: schemas, segment maps, mappings and
``tasks.json`` are a few levels deep, and deeper documents would make readers recurse."""


def read_json(
    path: str | os.PathLike[str],
    *,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> Any:
    """A JSON document, or ValueError naming the file.

    Every JSON reader of :mod:`fastseg.formats` reads through here, so that a file that
    is not JSON, or is nested more than :data:`MAX_JSON_DEPTH` levels deep (where the
    readers would recurse without bound), is refused the same way everywhere.

    Parameters
    ----------
    path : str or path-like
        The JSON file (UTF-8, with or without a byte order mark).
    object_pairs_hook : callable, optional
        Passed to :func:`json.loads` (e.g. to refuse duplicate keys).

    Raises
    ------
    ValueError
        If the file is not JSON, or is nested too deeply (naming the file and where).
    OSError
        If the file cannot be read.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from fastseg.formats.registry import read_json
    >>> path = Path(tempfile.mkdtemp()) / "deep.json"
    >>> _ = path.write_text("[" * 65 + "]" * 65)
    >>> read_json(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ...deep.json: JSON nested more than 64 levels deep (at [0][0]...)
    """
    source = os.fspath(path)
    try:
        document = json.loads(
            Path(path).read_text(encoding="utf-8-sig"), object_pairs_hook=object_pairs_hook
        )
    except RecursionError:
        raise ValueError(f"{source}: JSON nested more than {MAX_JSON_DEPTH} levels deep") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{source}: not a readable JSON file ({error})") from None
    where = _too_deep(document)
    if where is not None:
        raise ValueError(
            f"{source}: JSON nested more than {MAX_JSON_DEPTH} levels deep (at {where})"
        )
    return document


def _too_deep(document: Any) -> str | None:
    """Where ``document`` first nests deeper than :data:`MAX_JSON_DEPTH` (a path of
    keys and indices, cut to a readable length), or None. Walks level by level, without
    recursing; the path is looked for only in a document that is too deep."""
    level = [document] if type(document) in (dict, list) else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_JSON_DEPTH:
            return _deep_path(document)
        below: list[Any] = []
        for value in level:
            children = value.values() if type(value) is dict else value
            below.extend([c for c in children if type(c) is dict or type(c) is list])
        level = below
    return None


def _deep_path(document: Any) -> str:
    """The keys and indices down to the first value deeper than :data:`MAX_JSON_DEPTH`."""
    trail: list[str] = []
    value = document
    while True:
        items = value.items() if type(value) is dict else enumerate(value)
        for key, child in items:
            if type(child) in (dict, list) and _deeper_than(child, MAX_JSON_DEPTH - len(trail) - 1):
                trail.append(f"[{json.dumps(key)}]")
                value = child
                break
        else:
            return excerpt("".join(trail), 60)
        if len(trail) >= MAX_JSON_DEPTH:
            return excerpt("".join(trail), 60)


def _deeper_than(document: Any, levels: int) -> bool:
    level = [document]
    for _ in range(levels):
        below: list[Any] = []
        for value in level:
            children = value.values() if type(value) is dict else value
            below.extend([c for c in children if type(c) is dict or type(c) is list])
        if not below:
            return False
        level = below
    return True


def _describe(document: Any) -> str:
    if isinstance(document, dict):
        return "a JSON object with keys " + excerpt(", ".join(map(str, document)) or "(none)")
    if isinstance(document, list):
        return f"a JSON list of {len(document)} item(s)"
    return f"a JSON {type(document).__name__}"


def _json_format(
    path: str | os.PathLike[str], document: Any, kind: Literal["schema", "segment map"]
) -> Format:
    for entry in FORMATS:
        if entry.recognise and _holds(entry, kind) and entry.function(entry.recognise)(document):
            return entry
    names = ", ".join(f"{f.name} ({f.description})" for f in FORMATS if f.json and _holds(f, kind))
    raise ValueError(
        f"{os.fspath(path)}: not a {kind} fastseg knows: {_describe(document)}; a JSON {kind} "
        f"is one of: {names}"
    )


def schema_format(path: str | os.PathLike[str]) -> str:
    """The format of an existing schema file: by name, and for JSON by content."""
    return _format_of(path, "schema").name


def _format_of(path: str | os.PathLike[str], kind: Literal["schema", "segment map"]) -> Format:
    name = Path(path).name.lower()
    for entry in FORMATS:
        if _holds(entry, kind) and not entry.json and entry.matches(name):
            return entry
    if name.endswith(".json"):
        return _json_format(path, read_json(path), kind)
    for entry in FORMATS:
        if _holds(entry, kind) and entry.name == "itksnap":
            return entry  # ITK-SNAP files come under many names
    raise AssertionError("the itksnap format reads schemas")


def load_schema(path: str | os.PathLike[str], format: str | None = None) -> Schema:
    """Read a schema file in ``format``, or the one its name and content say."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{os.fspath(path)}: no such file")
    entry = by_name(format, kind="schema") if format else _format_of(path, "schema")
    assert entry.reads_schema is not None
    schema: Schema = entry.function(entry.reads_schema)(path)
    return schema


def save_schema(schema: Schema, path: str | os.PathLike[str], format: str | None = None) -> None:
    """Write a schema in ``format``, or the one its name says (``dataset.json``:
    nnU-Net, ``.tsv``: BIDS, ``.txt``/``.label``: ITK-SNAP); other JSON needs
    ``format``."""
    entry = by_name(format, kind="schema") if format else target_schema_format(path)
    if entry.writes_schema is None:
        raise ValueError(
            f"a schema alone cannot be written as {entry.name} ({entry.description}); "
            f"write one of {', '.join(writable_schema_formats())}"
            + (
                ", or the labels with it: fastseg.save(path, labels, schema=schema)"
                if entry.name == "slicer"
                else ""
            )
        )
    entry.function(entry.writes_schema)(schema, path)


def target_schema_format(path: str | os.PathLike[str]) -> Format:
    """The format a schema written to ``path`` takes from its name alone."""
    name = Path(path).name.lower()
    if name == "dataset.json":
        return by_name("nnunet")
    for entry in FORMATS:
        if entry.writes_schema is not None and not entry.json and entry.matches(name):
            return entry
    raise ValueError(
        f"{os.fspath(path)}: say which format to write (format= one of "
        f"{', '.join(writable_schema_formats())}); the file name does not tell"
    )


def load_segment_map(
    path: str | os.PathLike[str],
    schema: Schema | None = None,
    *,
    series: str | None = None,
    format: str | None = None,
) -> SegmentMap:
    """Read a segment map from any file that holds one (see :data:`FORMATS`)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{os.fspath(path)}: no such file")
    entry = by_name(format, kind="segment map") if format else _format_of(path, "segment map")
    assert entry.reads_segment_map is not None
    if series is not None and not entry.chooses_series:
        raise SeriesError(
            os.fspath(path), f"a file of {entry.description} holds one segment map, no series"
        )
    segment_map: SegmentMap = entry.function(entry.reads_segment_map)(path, schema, series)
    return segment_map


def load_volume(path: str | os.PathLike[str], format: str | None = None) -> LabelImage:
    """Read a label volume in ``format``, or the one its name says."""
    image: LabelImage = volume_format(path, format).function("read_volume")(path)
    return image


def optional_module(module: str, package: str, extra: str, what: str) -> Any:
    """Import an optional dependency, or ImportError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{what} needs {package}: pip install 'fastseg[{extra}]'") from None

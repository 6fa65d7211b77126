"""dcmqi segmentation metadata (the JSON ``itkimage2segimage`` takes and
``segimage2itkimage`` writes beside DICOM SEG conversions).

The file describes the segments of one or more label files in ``segmentAttributes``, a
list (one per label file) of lists of segments::

    {"SeriesDescription": "Segmentation", "segmentAttributes": [[
        {"labelID": 1, "SegmentDescription": "Liver", "SegmentAlgorithmType": "MANUAL",
         "SegmentedPropertyCategoryCodeSequence": {"CodeValue": "123037004", ...},
         "SegmentedPropertyTypeCodeSequence": {"CodeValue": "10200004",
                                               "CodeMeaning": "Liver", ...},
         "recommendedDisplayRGBValue": [221, 130, 101]}]]}

Each segment becomes a :class:`~fastseg.Category`: ``labelID`` its value,
``SegmentLabel`` (else ``SegmentDescription``, else the type code's ``CodeMeaning``) its
name, ``recommendedDisplayRGBValue`` its colour; the segment's other fields are kept in
``attributes`` and the top-level fields in ``metadata``. As a segment map, each label
value is an instance of its category. Several label files may reuse values: pass
``series=`` (the file's index, from 0) to choose one.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from typing import Any

from fastseg._files import write_text_atomically
from fastseg.formats.registry import SeriesError, read_json
from fastseg.schema import Category, Schema
from fastseg.segmap import Segment, SegmentMap

_NAME_KEYS = ("SegmentLabel", "SegmentDescription")
_COLOR = "recommendedDisplayRGBValue"
_KEYS = "dcmqi_keys"


def recognise(document: Any) -> bool:
    """A JSON object with ``segmentAttributes``."""
    return isinstance(document, Mapping) and "segmentAttributes" in document


def _load(
    path_or_dict: str | os.PathLike[str] | Mapping[str, Any],
) -> tuple[Mapping[str, Any], str]:
    if isinstance(path_or_dict, Mapping):
        return path_or_dict, "<dict>"
    source = os.fspath(path_or_dict)
    content = read_json(source)
    if not recognise(content):
        raise ValueError(f"{source}: dcmqi metadata is a JSON object with segmentAttributes")
    return content, source


def _files(content: Mapping[str, Any], source: str) -> list[list[Category]]:
    files = content["segmentAttributes"]
    if not isinstance(files, list) or not all(isinstance(f, list) for f in files):
        raise ValueError(f"{source}: segmentAttributes must be a list of lists of segments")
    return [
        [
            _category(segment, f"{source}: segmentAttributes[{i}][{j}]")
            for j, segment in enumerate(f)
        ]
        for i, f in enumerate(files)
    ]


def _category(segment: object, where: str) -> Category:
    if not isinstance(segment, Mapping):
        raise ValueError(f"{where}: a segment is a JSON object, got {segment!r}")
    value = segment.get("labelID")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}: labelID must be an integer >= 1, got {value!r}")
    name = next(
        (segment[k] for k in _NAME_KEYS if isinstance(segment.get(k), str) and segment[k]), None
    )
    if name is None:
        meaning = segment.get("SegmentedPropertyTypeCodeSequence", {})
        name = meaning.get("CodeMeaning") if isinstance(meaning, Mapping) else None
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"{where}: the segment has no SegmentLabel, SegmentDescription or type CodeMeaning"
        )
    color = segment.get(_COLOR)
    attributes = {k: copy.deepcopy(v) for k, v in segment.items() if k != "labelID"}
    try:
        return Category(
            name,
            value,
            color=tuple(color) if isinstance(color, list) else None,
            attributes=attributes,
        )
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def read_schema(path_or_dict: str | os.PathLike[str] | Mapping[str, Any]) -> Schema:
    """Read the segments of dcmqi metadata as a schema.

    Raises
    ------
    ValueError
        If a segment lacks a value or a name, or two segments (of different label files)
        share a value or a name.

    Examples
    --------
    >>> from fastseg.formats.dcmqi import read_schema
    >>> schema = read_schema({"segmentAttributes": [[
    ...     {"labelID": 1, "SegmentDescription": "Liver",
    ...      "recommendedDisplayRGBValue": [221, 130, 101]}]]})
    >>> schema["Liver"].value, schema["Liver"].color
    (1, (221, 130, 101))
    """
    content, source = _load(path_or_dict)
    categories = [c for f in _files(content, source) for c in f]
    metadata = {k: copy.deepcopy(v) for k, v in content.items() if k != "segmentAttributes"}
    metadata[_KEYS] = list(content)
    try:
        return Schema(categories, metadata=metadata)
    except ValueError as error:
        raise ValueError(
            f"{source}: {error} (label files may reuse values; read one with "
            "SegmentMap.load(path, series='<index>'))"
        ) from None


def read_segment_map(
    path: str | os.PathLike[str], schema: Schema | None = None, series: str | None = None
) -> SegmentMap:
    """The segments of one label file of dcmqi metadata as a segment map."""
    content, source = _load(path)
    files = _files(content, source)
    available, naming = [str(i) for i in range(len(files))], "the index of a label file"
    if series is None:
        if len(files) != 1:
            raise SeriesError(source, f"describes {len(files)} label files", available, naming)
        chosen = files[0]
    else:
        if series not in available:
            raise SeriesError(source, f"no label file {series!r}", available, naming)
        chosen = files[int(series)]
    return SegmentMap({c.value: Segment(c.name) for c in chosen})


def schema_dict(schema: Schema) -> dict[str, Any]:
    """A schema as dcmqi metadata (one label file)."""
    segments = []
    for category in schema:
        entry: dict[str, Any] = {"labelID": category.value}
        attributes = dict(category.attributes)
        key = next((k for k in _NAME_KEYS if k in attributes), "SegmentDescription")
        attributes[key] = category.name
        if category.color is not None:
            attributes[_COLOR] = list(category.color)
        entry.update(copy.deepcopy(attributes))
        segments.append(entry)
    keys = list(schema.metadata.get(_KEYS, ["segmentAttributes"]))
    if "segmentAttributes" not in keys:
        keys.append("segmentAttributes")
    content: dict[str, Any] = {}
    for key in keys:
        if key == "segmentAttributes":
            content[key] = [segments]
        elif key in schema.metadata:
            content[key] = copy.deepcopy(schema.metadata[key])
    return content


def write_schema(schema: Schema, path: str | os.PathLike[str]) -> None:
    """Write a schema as dcmqi metadata, atomically."""
    write_text_atomically(path, json.dumps(schema_dict(schema), indent=2) + "\n")

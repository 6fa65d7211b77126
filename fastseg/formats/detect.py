"""Choosing the format of a schema or segment-map file from its name and content."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from fastseg._files import write_text_atomically
from fastseg.schema import Schema
from fastseg.segmap import SegmentMap

SchemaFormat = Literal["nnunet", "redbrick", "itksnap", "bids", "slicer"]
FORMATS: tuple[SchemaFormat, ...] = ("nnunet", "redbrick", "itksnap", "bids", "slicer")


def schema_format(path: str | os.PathLike[str]) -> SchemaFormat:
    """The format of an existing schema file: by name, and for JSON by content."""
    name = Path(path).name.lower()
    if name.endswith((".seg.nrrd", ".nrrd")):
        return "slicer"
    if name.endswith(".tsv"):
        return "bids"
    if name.endswith(".json"):
        content = _json_object(path)
        if "objectTypes" in content or isinstance(content.get("categories"), list):
            return "redbrick"
        if "labels" in content:
            return "nnunet"
        raise ValueError(
            f"{path}: a JSON schema is an nnU-Net dataset.json (with 'labels') or a RedBrick "
            f"taxonomy (with 'objectTypes'); this one has keys {sorted(content)}"
        )
    return "itksnap"


def _json_object(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        content = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable JSON file ({error})") from error
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(content).__name__}")
    return content


def load_schema(path: str | os.PathLike[str], format: SchemaFormat | None = None) -> Schema:
    """Read a schema file in the given format, or the one :func:`schema_format` detects."""
    chosen = format or schema_format(path)
    if chosen == "nnunet":
        from fastseg.formats.nnunet import read_dataset_json

        return read_dataset_json(path)
    if chosen == "redbrick":
        from fastseg.formats.redbrick import read_taxonomy

        return read_taxonomy(path)
    if chosen == "itksnap":
        from fastseg.formats.itksnap import read_itksnap

        return read_itksnap(path)
    if chosen == "bids":
        from fastseg.formats.bids import read_dseg_tsv

        return read_dseg_tsv(path)
    if chosen == "slicer":
        from fastseg.formats.slicer import read_seg_nrrd_schema

        return read_seg_nrrd_schema(path)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {chosen!r}")


def save_schema(
    schema: Schema, path: str | os.PathLike[str], format: SchemaFormat | None = None
) -> None:
    """Write a schema; without ``format`` it follows the file name (``.tsv``: BIDS,
    ``.txt``/``.label``: ITK-SNAP); a ``.json`` file needs ``format`` ("nnunet" or
    "redbrick")."""
    name = Path(path).name.lower()
    chosen = format
    if chosen is None:
        if name.endswith(".tsv"):
            chosen = "bids"
        elif name.endswith((".txt", ".label", ".lbl")):
            chosen = "itksnap"
        else:
            raise ValueError(
                f"{path}: say which format to write (format='nnunet', 'redbrick', 'itksnap' "
                f"or 'bids'); the file name does not tell"
            )
    if chosen == "nnunet":
        from fastseg.formats.nnunet import write_dataset_json

        write_dataset_json(schema, path)
    elif chosen == "redbrick":
        from fastseg.formats.redbrick import write_taxonomy

        write_taxonomy(schema, path)
    elif chosen == "itksnap":
        from fastseg.formats.itksnap import write_itksnap

        write_itksnap(schema, path)
    elif chosen == "bids":
        from fastseg.formats.bids import write_dseg_tsv

        write_dseg_tsv(schema, path)
    elif chosen == "slicer":
        raise ValueError(
            "a .seg.nrrd file holds the label data too: write it with "
            "fastseg.formats.slicer.write_seg_nrrd(path, labels, schema)"
        )
    else:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {chosen!r}")


def load_segment_map(path: str | os.PathLike[str], schema: Schema | None = None) -> SegmentMap:
    """Read a RedBrick-style segmentMap JSON file (voxel value -> category)."""
    from fastseg.formats.redbrick import read_segment_map

    return read_segment_map(_json_object(path), schema=schema)


def save_segment_map(segment_map: SegmentMap, path: str | os.PathLike[str]) -> None:
    """Write a segment map as RedBrick segmentMap JSON, atomically."""
    from fastseg.formats.redbrick import segment_map_dict

    write_text_atomically(path, json.dumps(segment_map_dict(segment_map), indent=2) + "\n")

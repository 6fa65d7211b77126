"""RedBrick AI taxonomies and segmentMaps: round trips, errors, and RedBrick's semantic rule."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fastseg
from fastseg import Category, Schema, Segment, SegmentMap
from fastseg.formats.redbrick import (
    read_segment_map,
    read_taxonomy,
    segment_map_dict,
    taxonomy_dict,
    write_taxonomy,
)


def _attribute(name: str, kind: str, attr_id: int, **fields: Any) -> dict[str, Any]:
    """An attribute definition with every field RedBrick's API returns."""
    return {
        "name": name,
        "attrType": kind,
        "attrId": attr_id,
        "options": fields.pop("options", None),
        "archived": False,
        "parents": None,
        "hint": None,
        "defaultValue": None,
        "minValue": None,
        "maxValue": None,
        "stepValue": None,
        **fields,
    }


LEVELS = [
    {"name": level, "optionId": i, "color": None, "archived": False}
    for i, level in enumerate(["C7", "T12", "L1", "L2", "L3"])
]

# A taxonomy as the SDK returns it (redbrick.utils.rb_tax_utils.format_taxonomy: orgId,
# name, createdAt, archived, isNew, taxId, the classify lists, objectTypes), objects with
# every field of the API's selection, in its order.
TAXONOMY: dict[str, Any] = {
    "orgId": "2f1d7c7e-51a0-4c36-9d8e-6f3f5f1b9a11",
    "name": "Spine CT v3",
    "createdAt": "2024-03-18T09:12:44.512843+00:00",
    "archived": False,
    "isNew": True,
    "taxId": "c1b8e7a2-0f64-4e3e-a2a5-3d3c41e0f9d2",
    "studyClassify": [
        _attribute(
            "Image quality",
            "SELECT",
            0,
            options=[
                {"name": "Diagnostic", "optionId": 0, "color": "#00ff00", "archived": False},
                {"name": "Limited", "optionId": 1, "color": "#ffaa00", "archived": False},
            ],
        )
    ],
    "seriesClassify": [_attribute("Contrast", "BOOL", 1)],
    "instanceClassify": [],
    "objectTypes": [
        {
            "category": "Vertebra",
            "classId": 0,
            "labelType": "SEGMENTATION",
            "attributes": [
                _attribute("Level", "SELECT", 0, options=LEVELS, defaultValue="L1"),
                _attribute("Fracture", "BOOL", 1, hint="Any cortical break"),
            ],
            "color": "#e0e0a0",
            "archived": False,
            "parents": ["Spine"],
            "hint": "<p>Whole vertebra incl. <b>posterior elements</b></p>",
        },
        {
            "category": "Disc",
            "classId": 1,
            "labelType": "SEGMENTATION",
            "attributes": [_attribute("Height", "NUMBER", 0, minValue=0, stepValue=0.5)],
            "color": "#5fa8d3",
            "archived": False,
            "parents": ["Spine"],
            "hint": None,
        },
        {
            # Upper-case colour, no parents (an empty list) and no attributes (null).
            "category": "Spinal canal",
            "classId": 2,
            "labelType": "SEGMENTATION",
            "attributes": None,
            "color": "#3366FF",
            "archived": False,
            "parents": [],
            "hint": None,
        },
        {
            "category": "Old vertebra",
            "classId": 3,
            "labelType": "SEGMENTATION",
            "attributes": [],
            "color": "#808080",
            "archived": True,
            "parents": None,
            "hint": None,
        },
        {
            # classIds need not follow list order, nor be consecutive.
            "category": "Pedicle screw",
            "classId": 7,
            "labelType": "SEGMENTATION",
            "attributes": [_attribute("Side", "SELECT", 0, options=[])],
            "color": "#ff3030",
            "archived": False,
            "parents": ["Hardware", "Fixation"],
            "hint": None,
        },
        {
            "category": "Osteophyte",
            "classId": 4,
            "labelType": "BBOX",
            "attributes": [],
            "color": "#a0522d",
            "archived": False,
            "parents": ["Spine", "Degeneration"],
            "hint": None,
        },
        {
            "category": "Cobb angle",
            "classId": 5,
            "labelType": "ANGLE",
            "attributes": [],
            "color": None,
            "archived": False,
            "parents": ["Measurements"],
            "hint": "Endplate to endplate",
        },
        {
            "category": "Canal diameter",
            "classId": 6,
            "labelType": "LENGTH",
            "attributes": [],
            "color": "#ff00ff",
            "archived": False,
            "parents": ["Measurements"],
            "hint": None,
        },
    ],
}

# The legacy form: a category tree under the root "object", colours in colorMap.
LEGACY: dict[str, Any] = {
    "orgId": "2f1d7c7e-51a0-4c36-9d8e-6f3f5f1b9a11",
    "name": "Abdomen (2021)",
    "version": 3,
    "createdAt": "2021-06-02T14:01:09.000000+00:00",
    "categories": [
        {
            "name": "object",
            "children": [
                {
                    "name": "Organ",
                    "classId": 0,
                    "disabled": False,
                    "children": [
                        {"name": "Liver", "classId": 1, "disabled": False, "children": []},
                        {"name": "Kidney", "classId": 2, "disabled": True, "children": []},
                    ],
                },
                {
                    "name": "Lesion",
                    "classId": 3,
                    "disabled": False,
                    "children": [{"name": "Cyst", "classId": 4, "disabled": False}],
                },
            ],
        }
    ],
    "attributes": [{"name": "Occluded", "attrType": "BOOL", "whitelist": [], "disabled": False}],
    "taskCategories": None,
    "taskAttributes": None,
    "colorMap": [
        {
            "name": "Liver",
            "color": "#aa3300",
            "classid": 1,
            "trail": ["object", "Organ", "Liver"],
            "taskcategory": False,
        },
        {
            "name": "Cyst",
            "color": "#00cc88",
            "classid": 4,
            "trail": ["object", "Lesion", "Cyst"],
            "taskcategory": False,
        },
        {"name": "Good", "color": "#123456", "classid": 0, "trail": ["Good"], "taskcategory": True},
    ],
    "archived": False,
    "isNew": False,
}


def dumps(value: Any) -> str:
    """JSON text: equal only if the key order is equal too."""
    return json.dumps(value, indent=1)


# --------------------------------------------------------------------------- taxonomy


def test_taxonomy_categories() -> None:
    schema = read_taxonomy(TAXONOMY)
    assert schema.names == [o["category"] for o in TAXONOMY["objectTypes"]]
    assert schema.values == [1, 2, 3, 4, 8, 5, 6, 7]
    vertebra = schema["Vertebra"]
    assert vertebra.parents == ("Spine",)
    assert vertebra.color == (0xE0, 0xE0, 0xA0)
    assert list(vertebra.attributes) == ["classId", "labelType", "attributes", "archived", "hint"]
    assert vertebra.attributes["attributes"][0]["options"][2]["name"] == "L1"
    assert schema.by_path(("Hardware", "Fixation", "Pedicle screw")).value == 8
    assert schema["Cobb angle"].attributes["labelType"] == "ANGLE"
    assert schema["Cobb angle"].color is None
    assert schema["Old vertebra"].attributes["archived"] is True
    # Values a Category field cannot give back are kept raw as well.
    assert schema["Spinal canal"].color == (0x33, 0x66, 0xFF)
    assert schema["Spinal canal"].attributes["color"] == "#3366FF"
    assert schema["Spinal canal"].attributes["parents"] == []
    assert schema["Old vertebra"].attributes["parents"] is None
    taxonomy_keys = [k for k in TAXONOMY if k != "objectTypes"]
    assert list(schema.metadata) == [*taxonomy_keys, "redbrick_taxonomy_keys"]
    assert schema.metadata["redbrick_taxonomy_keys"] == taxonomy_keys
    assert schema.metadata["studyClassify"] == TAXONOMY["studyClassify"]


def test_taxonomy_round_trip_keeps_everything_and_key_order(tmp_path: Path) -> None:
    original = copy.deepcopy(TAXONOMY)
    schema = read_taxonomy(TAXONOMY)
    assert dumps(taxonomy_dict(schema)) == dumps(TAXONOMY)
    assert original == TAXONOMY  # the input is not touched
    path = tmp_path / "taxonomy.json"
    assert write_taxonomy(schema, path) == path
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert dumps(json.loads(text)) == dumps(TAXONOMY)
    assert read_taxonomy(path) == schema
    assert read_taxonomy(str(path)) == schema
    assert [p.name for p in tmp_path.iterdir()] == ["taxonomy.json"]  # no temp file left


def test_taxonomy_written_dict_is_independent_of_the_schema() -> None:
    schema = read_taxonomy(TAXONOMY)
    written = taxonomy_dict(schema)
    written["objectTypes"][0]["attributes"][0]["name"] = "changed"
    written["studyClassify"].clear()
    assert dumps(taxonomy_dict(schema)) == dumps(TAXONOMY)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"color": None}, id="color-null"),
        pytest.param({"color": "#ABCDEF"}, id="color-upper"),
        pytest.param({"color": "abcdef"}, id="color-without-hash"),
        pytest.param({"parents": None}, id="parents-null"),
        pytest.param({"parents": []}, id="parents-empty"),
        pytest.param({"isMeasurement": False, "x-note": {"by": "qa"}}, id="unknown-keys"),
    ],
)
def test_taxonomy_round_trip_of_object_variants(change: dict[str, Any]) -> None:
    taxonomy = copy.deepcopy(TAXONOMY)
    taxonomy["objectTypes"][1].update(change)
    assert dumps(taxonomy_dict(read_taxonomy(taxonomy))) == dumps(taxonomy)


@pytest.mark.parametrize("drop", ["color", "parents", "hint", "attributes", "archived"])
def test_taxonomy_round_trip_without_optional_object_keys(drop: str) -> None:
    taxonomy = copy.deepcopy(TAXONOMY)
    for item in taxonomy["objectTypes"]:
        del item[drop]
    assert dumps(taxonomy_dict(read_taxonomy(taxonomy))) == dumps(taxonomy)


def test_taxonomy_round_trip_in_the_typed_dict_order() -> None:
    # redbrick.types.taxonomy.Taxonomy lists objectTypes before createdAt.
    order = ["orgId", "taxId", "name", "studyClassify", "seriesClassify", "instanceClassify"]
    order += ["objectTypes", "createdAt", "archived", "isNew"]
    taxonomy = {key: TAXONOMY[key] for key in order}
    assert dumps(taxonomy_dict(read_taxonomy(taxonomy))) == dumps(taxonomy)
    minimal = {"objectTypes": [{"category": "Liver", "classId": 0, "labelType": "SEGMENTATION"}]}
    assert dumps(taxonomy_dict(read_taxonomy(minimal))) == dumps(minimal)


def test_taxonomy_of_a_schema_built_in_fastseg() -> None:
    schema = Schema(
        [
            Category("Liver", 2, color="#AA3300"),
            Category("Segment IV", 5, parents=("Liver", "Couinaud")),
            Category("Ruler", 9, attributes={"labelType": "LENGTH", "hint": "mm"}),
        ],
        metadata={"name": "Abdomen"},
    )
    assert taxonomy_dict(schema) == {
        "name": "Abdomen",
        "objectTypes": [
            {"category": "Liver", "classId": 1, "labelType": "SEGMENTATION", "color": "#aa3300"},
            {
                "category": "Segment IV",
                "classId": 4,
                "labelType": "SEGMENTATION",
                "parents": ["Liver", "Couinaud"],
            },
            {"category": "Ruler", "classId": 8, "labelType": "LENGTH", "hint": "mm"},
        ],
    }
    again = read_taxonomy(taxonomy_dict(schema))
    assert [(c.name, c.value, c.color, c.parents) for c in again] == [
        (c.name, c.value, c.color, c.parents) for c in schema
    ]


def test_taxonomy_follows_edits_to_the_categories() -> None:
    schema = read_taxonomy(TAXONOMY)
    edited = Schema(
        [
            dataclasses.replace(schema["Spinal canal"], value=12, color=(0, 255, 0)),
            dataclasses.replace(schema["Old vertebra"], parents=("Archive",)),
            dataclasses.replace(schema["Disc"], color=None),
        ],
        metadata=schema.metadata,
    )
    canal, old, disc = taxonomy_dict(edited)["objectTypes"]
    assert canal["classId"] == 11
    assert canal["color"] == "#00ff00"
    assert canal["parents"] == []
    assert old["parents"] == ["Archive"]
    assert list(old) == list(TAXONOMY["objectTypes"][3])
    assert "color" not in disc
    assert list(disc) == [k for k in TAXONOMY["objectTypes"][1] if k != "color"]


def test_write_taxonomy_replaces_atomically_and_keeps_permissions(tmp_path: Path) -> None:
    path = tmp_path / "taxonomy.json"
    path.write_text("old", encoding="utf-8")
    os.chmod(path, 0o640)
    write_taxonomy(read_taxonomy(TAXONOMY), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert json.loads(path.read_text(encoding="utf-8")) == TAXONOMY
    with pytest.raises(TypeError):
        # Metadata that is not JSON: the old file stays, no temporary file is left.
        write_taxonomy(Schema([Category("a", 1)], metadata={"name": {1, 2}}), path)
    assert json.loads(path.read_text(encoding="utf-8")) == TAXONOMY
    assert [p.name for p in tmp_path.iterdir()] == ["taxonomy.json"]


def test_legacy_taxonomy() -> None:
    schema = read_taxonomy(LEGACY)
    assert [(c.name, c.value, c.parents, c.color) for c in schema] == [
        ("Organ", 1, (), None),
        ("Liver", 2, ("Organ",), (0xAA, 0x33, 0x00)),
        ("Kidney", 3, ("Organ",), None),
        ("Lesion", 4, (), None),
        ("Cyst", 5, ("Lesion",), (0x00, 0xCC, 0x88)),
    ]
    assert dict(schema["Kidney"].attributes) == {"classId": 2, "archived": True}
    assert schema.metadata["colorMap"] == LEGACY["colorMap"]
    assert "categories" not in schema.metadata
    # Written in the current form, without the legacy-only keys.
    written = taxonomy_dict(schema)
    assert list(written) == ["orgId", "name", "createdAt", "archived", "isNew", "objectTypes"]
    assert written["isNew"] is True
    assert written["objectTypes"][2] == {
        "category": "Kidney",
        "classId": 2,
        "labelType": "SEGMENTATION",
        "archived": True,
        "parents": ["Organ"],
    }
    again = read_taxonomy(written)
    assert [(c.name, c.value, c.parents, c.color) for c in again] == [
        (c.name, c.value, c.parents, c.color) for c in schema
    ]
    assert dumps(taxonomy_dict(again)) == dumps(written)


def test_legacy_taxonomy_without_is_new_is_still_written_in_the_current_form() -> None:
    legacy = {k: v for k, v in LEGACY.items() if k != "isNew"}
    schema = read_taxonomy(legacy)
    assert schema.metadata["isNew"] is False
    assert "colorMap" not in taxonomy_dict(schema)


def _object(index: int, **change: Any) -> dict[str, Any]:
    taxonomy = copy.deepcopy(TAXONOMY)
    taxonomy["objectTypes"][index].update(change)
    for key, value in change.items():
        if value is ...:
            del taxonomy["objectTypes"][index][key]
    return taxonomy


@pytest.mark.parametrize(
    ("taxonomy", "message"),
    [
        (_object(2, classId=1), r"classId 1 is used by \['Disc', 'Spinal canal'\]"),
        (_object(3, category="Disc"), r"name 'Disc' is used by classIds \[1, 3\]"),
        (_object(4, classId=...), r"objectTypes\[4\] \('Pedicle screw'\): no classId"),
        (_object(4, classId=None), r"objectTypes\[4\] \('Pedicle screw'\): no classId"),
        (_object(5, category=...), r"objectTypes\[5\]: no category"),
        (_object(5, category=7), r"objectTypes\[5\]: category must be a string"),
        (_object(1, classId=-1), r"objectTypes\[1\] \('Disc'\): classId must be an integer"),
        (_object(1, classId=True), r"classId must be an integer >= 0, got True"),
        (_object(1, classId="1"), r"classId must be an integer >= 0, got '1'"),
        (_object(1, color="teal"), r"objectTypes\[1\] \('Disc'\): .*'teal' is not #rrggbb"),
        (_object(1, parents="Spine"), r"parents must be a list of names"),
        (_object(1, parents=["Spine", ""]), r"parents must be non-empty strings"),
        ({"objectTypes": ["Liver"]}, r"objectTypes\[0\]: expected an object"),
        ({"name": "x", "objectTypes": None}, r"neither \(keys: \['name', 'objectTypes'\]\)"),
    ],
)
def test_taxonomy_errors(taxonomy: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_taxonomy(taxonomy)


def test_legacy_taxonomy_errors() -> None:
    legacy = copy.deepcopy(LEGACY)
    del legacy["categories"][0]["children"][0]["children"][1]["classId"]
    with pytest.raises(ValueError, match="categories: object/Organ/Kidney: no classId"):
        read_taxonomy(legacy)
    legacy = copy.deepcopy(LEGACY)
    legacy["categories"][0]["children"][1]["classId"] = 1
    with pytest.raises(ValueError, match=r"classId 1 is used by \['Liver', 'Lesion'\]"):
        read_taxonomy(legacy)
    legacy = copy.deepcopy(LEGACY)
    legacy["categories"][0]["children"][1]["children"][0] = {"classId": 4}
    with pytest.raises(ValueError, match="object/Lesion: child 0 has no name"):
        read_taxonomy(legacy)


def test_taxonomy_file_that_is_no_object(tmp_path: Path) -> None:
    path = tmp_path / "taxonomy.json"
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match="is a JSON object, got list"):
        read_taxonomy(path)


# ------------------------------------------------------------------------ segmentMap

SCHEMA = read_taxonomy(TAXONOMY)

# As redbrick.utils.rb_label_utils writes a series' segmentMap on export: id, category,
# attributes, group, readOnly, then mask and overlappingGroups. Instances 1 and 3 overlap
# (voxel value 9), so do 3 and 4 (voxel value 10).
EXPORTED: dict[str, Any] = {
    "1": {
        "id": "7d0c4b0e-7b51-4f4f-9a51-1bb1f4c0a001",
        "category": "Vertebra",
        "attributes": {"Level": "L1", "Fracture": False},
        "overlappingGroups": [9],
    },
    "2": {
        "id": "7d0c4b0e-7b51-4f4f-9a51-1bb1f4c0a002",
        "category": "Vertebra",
        "attributes": {"Level": "L2", "Fracture": True},
        "group": "c2a9a1b4-link",
        "readOnly": True,
    },
    "3": {
        "id": "7d0c4b0e-7b51-4f4f-9a51-1bb1f4c0a003",
        "category": "Disc",
        "attributes": {"Height": 7.5},
        "overlappingGroups": [9, 10],
    },
    "4": {
        "id": "7d0c4b0e-7b51-4f4f-9a51-1bb1f4c0a004",
        "category": "Spinal canal",
        "overlappingGroups": [10],
    },
    "5": {
        "id": "7d0c4b0e-7b51-4f4f-9a51-1bb1f4c0a005",
        "category": "Pedicle screw",
        "attributes": {"Side": "left"},
        "mask": "segmentations/study-1/series-0/instance-5.nii.gz",
    },
}

# Written for upload: every shorthand form.
SHORTHAND: dict[str, Any] = {
    "1": "Vertebra",
    "2": ["Spine", "Disc"],
    "3": 2,
    "4": [["object", "Hardware", "Fixation", "Pedicle screw"]],
    "5": [["object", "Vertebra"]],
    "6": ["Vertebra"],
}

# Everything unusual at once: key order and spelling, entries in odd key orders, empty
# attributes and groups, a full entry holding only a category, unknown keys, a comment,
# binary masks, a classId and a legacy path inside full entries, and a group order that
# differs from the order the groups first appear in.
UNUSUAL: dict[str, Any] = {
    "12": {"overlappingGroups": [21, 20], "category": "Disc", "score": 0.93},
    "3": {"category": "Vertebra"},
    "7": {"category": 7, "attributes": {}, "mask": ["screw-a.nii.gz", "screw-b.nii.gz"]},
    "05": {
        "category": [["object", "Spine", "Vertebra"]],
        "attributes": {"Level": "T12", "Fracture": False},
        "comment": {"text": "check the endplate", "pin": {"pointX": 1.5, "pointY": 2, "pointZ": 0}},
        "x-tool": {"name": "auto-seg", "version": [1, 4]},
        "overlappingGroups": [20],
        "id": "e5",
    },
    "1": {"category": "Spinal canal", "overlappingGroups": []},
    "2": {"category": "Disc", "attributes": {"Height": 6}, "overlappingGroups": [21, 21]},
}


@pytest.mark.parametrize(
    "source", [EXPORTED, SHORTHAND, UNUSUAL], ids=["exported", "short", "unusual"]
)
def test_segment_map_round_trip(source: dict[str, Any]) -> None:
    original = copy.deepcopy(source)
    segments = read_segment_map(source, schema=SCHEMA)
    assert dumps(segment_map_dict(segments)) == dumps(source)
    assert source == original
    # A copy rebuilt from the parts writes the same.
    rebuilt = SegmentMap(dict(segments.items()), segments.groups, metadata=segments.metadata)
    assert dumps(segment_map_dict(rebuilt)) == dumps(source)


def test_exported_segment_map_contents() -> None:
    segments = read_segment_map(EXPORTED)
    assert segments.metadata == {}  # RedBrick's own layout needs no notes
    assert [segments[k].category for k in segments] == [
        "Vertebra",
        "Vertebra",
        "Disc",
        "Spinal canal",
        "Pedicle screw",
    ]
    assert dict(segments.groups) == {9: (1, 3), 10: (3, 4)}
    assert dict(segments[2].attributes) == {"Level": "L2", "Fracture": True}
    assert dict(segments[2].extra) == {
        "id": "7d0c4b0e-7b51-4f4f-9a51-1bb1f4c0a002",
        "group": "c2a9a1b4-link",
        "readOnly": True,
    }
    assert segments[5].extra["mask"].endswith("instance-5.nii.gz")
    assert segments.values() == [1, 2, 3, 4, 5, 9, 10]


def test_shorthand_segment_map_contents() -> None:
    segments = read_segment_map(SHORTHAND, schema=SCHEMA)
    assert [segments[k].category for k in segments] == [
        "Vertebra",
        ("Spine", "Disc"),
        "Spinal canal",  # classId 2
        ("Hardware", "Fixation", "Pedicle screw"),
        "Vertebra",
        ("Vertebra",),
    ]
    values = [segments[k].resolve(SCHEMA).value for k in segments]
    assert values == [1, 2, 3, 8, 1, 1]
    assert segments.metadata == {
        "redbrick": {
            "entries": {
                3: {"classId": 2, "category": "Spinal canal"},
                4: {"root": "object"},
                5: {"root": "object"},
            }
        }
    }


def test_plain_shorthand_equals_a_map_built_in_fastseg() -> None:
    read = read_segment_map({"1": "Liver", "2": ["Abdomen", "Spleen"], 3: "Liver"})
    assert read == SegmentMap(
        {1: Segment("Liver"), 2: Segment(("Abdomen", "Spleen")), 3: Segment("Liver")}
    )
    assert segment_map_dict(read) == {"1": "Liver", "2": ["Abdomen", "Spleen"], "3": "Liver"}


def test_unusual_segment_map_contents() -> None:
    segments = read_segment_map(UNUSUAL, schema=SCHEMA)
    assert list(segments) == [1, 2, 3, 5, 7, 12]
    assert dict(segments.groups) == {21: (12, 2), 20: (12, 5)}
    assert segments[7].category == "Pedicle screw"
    assert segments[5].category == ("Spine", "Vertebra")
    assert list(segments[5].extra) == ["comment", "x-tool", "id"]
    assert dict(segments[12].extra) == {"score": 0.93}
    # Keys come back in the input's order and spelling.
    assert list(segment_map_dict(segments)) == list(UNUSUAL)


@pytest.mark.parametrize(
    "source", [EXPORTED, SHORTHAND, UNUSUAL], ids=["exported", "short", "unusual"]
)
def test_full_form_reads_back_to_the_same_map(source: dict[str, Any]) -> None:
    segments = read_segment_map(source, schema=SCHEMA)
    full = segment_map_dict(segments, form="full")
    assert all(isinstance(entry, dict) for entry in full.values())
    again = read_segment_map(full, schema=SCHEMA)
    assert dict(again.items()) == dict(segments.items())
    assert again.groups == segments.groups


def test_short_form() -> None:
    segments = read_segment_map(EXPORTED)
    plain = SegmentMap({k: Segment(s.category) for k, s in segments.items()})
    assert segment_map_dict(plain, form="short") == {k: v["category"] for k, v in EXPORTED.items()}
    assert segment_map_dict(
        read_segment_map({"2": {"category": 3}}, schema=SCHEMA), form="short"
    ) == {"2": 3}
    with pytest.raises(
        ValueError,
        match=r"instance 1: the short form .* attributes and extra keys \['id'\] and "
        r"overlapping groups \[9\]",
    ):
        segment_map_dict(segments, form="short")
    with pytest.raises(ValueError, match='form must be "auto", "short" or "full"'):
        segment_map_dict(segments, form="long")  # type: ignore[arg-type]


def test_writing_follows_edits() -> None:
    segments = read_segment_map(UNUSUAL, schema=SCHEMA)
    parts = dict(segments.items())
    parts[7] = Segment("Vertebra", extra=parts[7].extra)  # no longer the classId's category
    parts[4] = Segment("Disc")  # new instance
    del parts[3]
    edited = SegmentMap(parts, {21: (12,), 20: (12, 5, 4)}, metadata=segments.metadata)
    written = segment_map_dict(edited)
    assert list(written) == ["12", "7", "05", "1", "2", "4"]
    assert written["7"]["category"] == "Vertebra"
    assert written["12"]["overlappingGroups"] == [21, 20]
    assert written["2"] == {"category": "Disc", "attributes": {"Height": 6}}
    assert written["4"] == {"category": "Disc", "overlappingGroups": [20]}


def test_written_dict_is_independent_of_the_map() -> None:
    segments = read_segment_map(UNUSUAL, schema=SCHEMA)
    written = segment_map_dict(segments)
    written["05"]["comment"]["text"] = "changed"
    written["7"]["mask"].append("more.nii.gz")
    assert dumps(segment_map_dict(segments)) == dumps(UNUSUAL)


def test_extra_may_not_shadow_segment_fields() -> None:
    segments = SegmentMap({1: Segment("Liver", extra={"overlappingGroups": [3]})})
    with pytest.raises(ValueError, match=r"instance 1: extra holds \['overlappingGroups'\]"):
        segment_map_dict(segments)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"1": 0}, r"instance 1: category 0 is a classId; pass schema="),
        ({"1": {"category": 2}}, r"instance 1: category 2 is a classId; pass schema="),
        ({"abc": "Liver"}, r"segmentMap key 'abc' is not an instance id"),
        ({"0": "Liver"}, r"segmentMap key '0' is not an instance id"),
        ({"-2": "Liver"}, r"segmentMap key '-2' is not an instance id"),
        ({True: "Liver"}, r"segmentMap key True is not an instance id"),
        ({"1.5": "Liver"}, r"segmentMap key '1.5' is not an instance id"),
        ({"segmentMap": {}, "name": "CT"}, r"pass the series' segmentMap, not the whole series"),
        ({"1": "Liver", 1: "Spleen"}, r"segmentMap keys '1' and 1 are both instance 1"),
        ({"1": ""}, r"instance 1: a segment's category must be a name or a path"),
        ({"1": None}, r"instance 1: a category is a name, a path .*got None"),
        ({"1": True}, r"instance 1: a category is a name, a path .*got True"),
        ({"1": []}, r"instance 1: a category is a name, a path .*got \[\]"),
        ({"1": ["Spine", 3]}, r"instance 1: a category is a name, a path"),
        ({"1": ["Spine", ""]}, r"instance 1: a category path must be non-empty strings"),
        ({"1": [["object"]]}, r"instance 1: a legacy category \[\[root, ..., name\]\] needs"),
        ({"3": {"attributes": {}}}, r"instance 3: no category \(keys: \['attributes'\]\)"),
        (
            {"3": {"category": "a", "attributes": [{"name": "x"}]}},
            r"instance 3: attributes must be an object",
        ),
        (
            {"3": {"category": "a", "overlappingGroups": 4}},
            r"instance 3: overlappingGroups must be a list",
        ),
        (
            {"3": {"category": "a", "overlappingGroups": [4, True]}},
            r"instance 3: overlappingGroups",
        ),
        ({"3": {"category": "a", "overlappingGroups": [0]}}, r"instance 3: overlappingGroups"),
        (
            {"1": {"category": "a", "overlappingGroups": [2]}, "2": "b"},
            r"overlappingGroups value 2 \(listed by instance\(s\) \[1\]\) is also an instance id",
        ),
    ],
)
def test_segment_map_errors(source: dict[Any, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_segment_map(source)


def test_segment_map_errors_against_the_taxonomy() -> None:
    with pytest.raises(ValueError, match="instance 4: no category of the taxonomy has classId 42"):
        read_segment_map({"4": {"category": 42}}, schema=SCHEMA)
    with pytest.raises(ValueError, match=r"instance 2: category 'Kidney' is not in the taxonomy"):
        read_segment_map({"1": "Disc", "2": "Kidney"}, schema=SCHEMA)
    with pytest.raises(ValueError, match=r"instance 1: category \('Hardware', 'Disc'\) is not in"):
        read_segment_map({"1": ["Hardware", "Disc"]}, schema=SCHEMA)
    with pytest.raises(TypeError, match="a segmentMap is a mapping"):
        read_segment_map([("1", "Disc")])  # type: ignore[arg-type]


def test_class_id_without_a_class_id_attribute_uses_the_value() -> None:
    schema = Schema([Category("Liver", 1), Category("Spleen", 4)])
    assert read_segment_map({"1": 3}, schema=schema)[1].category == "Spleen"


# ---------------------------------------------------------------- RedBrick's semantic rule


def redbrick_labels(segment_map: dict[str, Any], taxonomy: dict[str, Any]) -> list[dict[str, Any]]:
    """The labels RedBrick's convert_to_semantic receives for a series: classid and
    instance id of every instance, with the overlap groups it is part of."""
    class_ids = {o["category"]: o["classId"] for o in taxonomy["objectTypes"]}
    labels = []
    for key, entry in segment_map.items():
        category = entry["category"] if isinstance(entry, dict) else entry
        labels.append(
            {
                "classid": class_ids[category] if isinstance(category, str) else category,
                "dicom": {
                    "instanceid": int(key),
                    "groupids": entry.get("overlappingGroups") if isinstance(entry, dict) else None,
                },
            }
        )
    return labels


def redbrick_semantic(instances: np.ndarray, labels: list[dict[str, Any]]) -> np.ndarray:
    """redbrick.utils.nifti.convert_to_semantic in numpy: labels sorted by classid; each
    claims its own id and its groups not yet claimed, as classid + 1 (so an overlap goes
    to the lowest classid)."""
    out = np.zeros(instances.shape, np.uint16)
    visited: set[int] = set()
    for label in sorted(labels, key=lambda item: item["classid"]):
        dicom = label["dicom"]
        claimed = ({dicom["instanceid"]} | set(dicom.get("groupids") or [])) - visited
        if claimed:
            out[np.isin(instances, sorted(claimed))] = label["classid"] + 1
            visited |= claimed
    return out


def spine_series(seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """An instance volume as RedBrick exports it, with its segmentMap: instances 1-8 of
    several categories, and overlap values 9-11 shared by instances of different classIds."""
    rng = np.random.default_rng(seed)
    instances = rng.integers(0, 9, (9, 11, 13)).astype(np.uint16)
    instances[rng.random(instances.shape) < 0.15] = 9
    instances[2:5, 3:8, 4:9] = 10
    instances[6:, :3, 10:] = 11
    categories = ["Spinal canal", "Vertebra", "Disc", "Pedicle screw"]
    order = rng.permutation(8)
    segment_map: dict[str, Any] = {}
    for position in order:
        ident = int(position) + 1
        segment_map[str(ident)] = {
            "id": f"label-{ident}",
            "category": categories[(ident + seed) % 4],
            "attributes": {"Level": f"L{ident}"} if ident % 2 else {},
        }
    groups = {9: [1, 2, 6], 10: [3, 4], 11: [5, 7, 8]}
    for group, members in groups.items():
        for member in members:
            entry = segment_map[str(member)]
            entry.setdefault("overlappingGroups", []).append(group)
    return instances, segment_map


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_to_semantic_matches_redbricks_rule(seed: int) -> None:
    instances, source = spine_series(seed)
    schema = read_taxonomy(TAXONOMY)
    segments = read_segment_map(source, schema=schema)
    expected = redbrick_semantic(instances, redbrick_labels(source, TAXONOMY))
    result = fastseg.to_semantic(instances, segments, schema)
    np.testing.assert_array_equal(result, expected)
    # Every overlap value went to the lowest classId among its instances.
    assert {int(v) for v in np.unique(result)} <= {0, *schema.values}
    assert dumps(segment_map_dict(segments)) == dumps(source)


def test_to_semantic_matches_the_redbrick_sdk(tmp_path: Path) -> None:
    """The numpy re-implementation above against the SDK itself, when it is installed."""
    nifti = pytest.importorskip("redbrick.utils.nifti")
    nibabel = pytest.importorskip("nibabel")
    instances, source = spine_series(5)
    path = tmp_path / "instances.nii.gz"
    fastseg.save(path, instances)
    labels = redbrick_labels(source, TAXONOMY)
    assert nifti.convert_to_semantic([str(path)], copy.deepcopy(labels), str(tmp_path), False)[0]
    sdk = np.asanyarray(nibabel.load(path).dataobj)
    np.testing.assert_array_equal(sdk, redbrick_semantic(instances, labels))
    schema = read_taxonomy(TAXONOMY)
    result = fastseg.to_semantic(instances, read_segment_map(source, schema=schema), schema)
    np.testing.assert_array_equal(result, sdk)


def test_other_formats_metadata_stays_out_of_a_taxonomy() -> None:
    schema = Schema(
        [Category("liver", 1)],
        metadata={"channel_names": {"0": "CT"}, "numTraining": 3, "name": "Abdomen"},
    )
    assert taxonomy_dict(schema) == {
        "name": "Abdomen",
        "objectTypes": [{"category": "liver", "classId": 0, "labelType": "SEGMENTATION"}],
    }

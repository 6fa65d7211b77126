"""Schema.load / Schema.save and SegmentMap.load / save: format detection and dispatch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shared_data import shared_data_path

from fastseg import Category, Schema, Segment, SegmentMap

SCHEMA = Schema(
    [
        Category("liver", 1, color=(220, 20, 60)),
        Category("spleen", 2, color=(0, 128, 0)),
        Category("kidney", 3, color=(0, 0, 255)),
    ]
)


@pytest.mark.parametrize(
    ("name", "format"),
    [
        ("dataset.json", "nnunet"),
        ("taxonomy.json", "redbrick"),
        ("labels.txt", "itksnap"),
        ("labels.label", None),
        ("seg_dseg.tsv", None),
    ],
)
def test_round_trip_through_every_format(tmp_path: Path, name: str, format: str | None) -> None:
    path = tmp_path / name
    SCHEMA.save(path, format=format)  # type: ignore[arg-type]
    loaded = Schema.load(path)
    assert [(c.name, c.value) for c in loaded] == [(c.name, c.value) for c in SCHEMA]
    if name != "dataset.json":  # nnU-Net keeps no colours
        assert [c.color for c in loaded] == [c.color for c in SCHEMA]


def test_json_content_decides_between_nnunet_and_redbrick(tmp_path: Path) -> None:
    SCHEMA.save(tmp_path / "a.json", format="redbrick")
    SCHEMA.save(tmp_path / "b.json", format="nnunet")
    assert "objectTypes" in json.loads((tmp_path / "a.json").read_text())
    assert "labels" in json.loads((tmp_path / "b.json").read_text())
    # RedBrick values are classId + 1; both read back the same categories.
    assert Schema.load(tmp_path / "a.json").values == Schema.load(tmp_path / "b.json").values


def test_convert_torso_labels_to_a_redbrick_taxonomy(tmp_path: Path) -> None:
    folder = shared_data_path("torso_labels.json")
    schema = Schema.load(folder / "torso_labels.json")
    assert len(schema) == 11
    schema.save(tmp_path / "taxonomy.json", format="redbrick")
    taxonomy = json.loads((tmp_path / "taxonomy.json").read_text())
    assert [o["classId"] for o in taxonomy["objectTypes"]] == [v - 1 for v in schema.values]
    assert "channel_names" not in taxonomy


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("x.json", "{}", "not a schema fastseg knows: a JSON object"),
        ("x.json", "[1, 2]", "not a schema fastseg knows: a JSON list"),
        ("x.json", "{nope", "not a readable JSON file"),
    ],
)
def test_unrecognised_files(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        Schema.load(path)


def test_save_needs_a_format_when_the_name_does_not_tell(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="say which format"):
        SCHEMA.save(tmp_path / "schema.json")
    with pytest.raises(ValueError, match="a schema format is one of"):
        SCHEMA.save(tmp_path / "schema.json", format="csv")  # type: ignore[arg-type]


def test_segment_map_round_trip(tmp_path: Path) -> None:
    segments = SegmentMap(
        {
            1: Segment("liver"),
            2: Segment("kidney", attributes={"side": "left"}),
            3: Segment("spleen"),
        },
        groups={9: (1, 2)},
    )
    segments.save(tmp_path / "segmentMap.json")
    content = json.loads((tmp_path / "segmentMap.json").read_text())
    assert content["3"] == "spleen"  # RedBrick's short form when nothing else is said
    assert content["1"] == {"category": "liver", "overlappingGroups": [9]}
    assert content["2"]["overlappingGroups"] == [9]
    assert SegmentMap.load(tmp_path / "segmentMap.json") == segments


def test_segment_map_class_ids_need_the_schema(tmp_path: Path) -> None:
    (tmp_path / "map.json").write_text(json.dumps({"1": 0, "2": 2}))
    with pytest.raises(ValueError, match="schema"):
        SegmentMap.load(tmp_path / "map.json")
    loaded = SegmentMap.load(tmp_path / "map.json", schema=SCHEMA)
    assert [loaded[k].resolve(SCHEMA).name for k in loaded] == ["liver", "kidney"]


def test_slicer_files_are_detected(tmp_path: Path) -> None:
    pytest.importorskip("nrrd")
    import numpy as np

    from fastseg.formats.slicer import write_seg_nrrd

    labels = np.zeros((4, 5, 6), np.uint8)
    labels[1:3, 1:3, 1:3] = 2
    labels[0, 0, 0] = 1
    write_seg_nrrd(tmp_path / "seg.seg.nrrd", labels, SCHEMA)
    loaded = Schema.load(tmp_path / "seg.seg.nrrd")
    assert [(c.name, c.value, c.color) for c in loaded] == [
        (c.name, c.value, c.color) for c in SCHEMA
    ]
    with pytest.raises(ValueError, match=r"fastseg.save\(path, labels, schema=schema\)"):
        SCHEMA.save(tmp_path / "x.seg.nrrd", format="slicer")

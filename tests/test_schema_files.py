"""Schemas and segment maps from the files users hold: label-list JSONs, dcmqi metadata,
RedBrick tasks.json and the SDK's labels.json; one registry deciding for all of them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from shared_data import shared_data_path

from fastseg import Category, Schema, Segment, SegmentMap
from fastseg.formats import registry
from fastseg.formats.labellist import schema_dict


def write(path: Path, content: Any) -> Path:
    path.write_text(json.dumps(content))
    return path


def test_aal_label_list(tmp_path: Path) -> None:
    folder = shared_data_path("aal.json")
    content = json.loads((folder / "aal.json").read_text())
    schema = Schema.load(folder / "aal.json")
    assert registry.schema_format(folder / "aal.json") == "label-list"
    assert len(schema) == len(content["labels"]) - 1 == 116
    assert schema.metadata["background"] == content["labels"][0]
    for category in schema:
        i = category.value
        assert category.name == content["labels"][i]
        assert category.color == (content["R"][i], content["G"][i], content["B"][i])
    # Written back, the same document.
    schema.save(tmp_path / "aal.json", "label-list")
    assert json.loads((tmp_path / "aal.json").read_text()) == content


def test_label_list_with_indices_alpha_and_gaps(tmp_path: Path) -> None:
    content = {
        "R": [0, 10, 20],
        "G": [0, 11, 21],
        "B": [0, 12, 22],
        "A": [0, 255, 128],
        "I": [0, 7, 42],
        "labels": ["", "cortex", "white matter"],
    }
    schema = Schema.load(write(tmp_path / "atlas.json", content))
    assert [(c.name, c.value, c.color) for c in schema] == [
        ("cortex", 7, (10, 11, 12)),
        ("white matter", 42, (20, 21, 22)),
    ]
    assert schema["white matter"].attributes == {"alpha": 128}
    assert schema_dict(schema) == content
    # A schema from elsewhere gets an I array when its values are not 0..n-1.
    plain = schema_dict(Schema([Category("a", 2, color=(1, 2, 3))]))
    assert plain == {
        "R": [0, 1],
        "G": [0, 2],
        "B": [0, 3],
        "labels": ["background", "a"],
        "I": [0, 2],
    }


def test_label_list_errors_are_cut_to_a_readable_length(tmp_path: Path) -> None:
    names = [f"region number {i} with a long name" for i in range(724)]
    bad = write(
        tmp_path / "bad.json", {"labels": names, "R": [300] * 724, "G": [0] * 724, "B": [0] * 724}
    )
    with pytest.raises(ValueError, match="R holds values that are not integers 0-255") as error:
        Schema.load(bad)
    assert len(str(error.value)) < 500
    twice = write(tmp_path / "twice.json", {"labels": ["bg", "a", "a"]})
    with pytest.raises(ValueError, match="two categories are named 'a'"):
        Schema.load(twice)
    unknown = write(tmp_path / "unknown.json", {f"key{i}": i for i in range(2000)})
    with pytest.raises(ValueError, match="not a schema fastseg knows") as error:
        Schema.load(unknown)
    assert len(str(error.value)) < 1200
    assert "more characters" in str(error.value)


DCMQI = {
    "@schema": "https://raw.githubusercontent.com/qiicr/dcmqi/master/doc/schemas/seg-schema.json#",
    "ContentCreatorName": "Reader1",
    "ClinicalTrialSeriesID": "Session1",
    "SeriesDescription": "Segmentation",
    "SeriesNumber": "300",
    "InstanceNumber": "1",
    "segmentAttributes": [
        [
            {
                "labelID": 1,
                "SegmentDescription": "Liver",
                "SegmentAlgorithmType": "SEMIAUTOMATIC",
                "SegmentAlgorithmName": "GrowCut",
                "SegmentedPropertyCategoryCodeSequence": {
                    "CodeValue": "123037004",
                    "CodingSchemeDesignator": "SCT",
                    "CodeMeaning": "Anatomical Structure",
                },
                "SegmentedPropertyTypeCodeSequence": {
                    "CodeValue": "10200004",
                    "CodingSchemeDesignator": "SCT",
                    "CodeMeaning": "Liver",
                },
                "recommendedDisplayRGBValue": [221, 130, 101],
            },
            {
                "labelID": 3,
                "SegmentLabel": "Tumor 1",
                "SegmentAlgorithmType": "MANUAL",
                "SegmentedPropertyTypeCodeSequence": {
                    "CodeValue": "108369006",
                    "CodingSchemeDesignator": "SCT",
                    "CodeMeaning": "Neoplasm",
                },
            },
        ]
    ],
    "ContentLabel": "SEGMENTATION",
}


def test_dcmqi_metadata(tmp_path: Path) -> None:
    path = write(tmp_path / "seg-meta.json", DCMQI)
    schema = Schema.load(path)
    assert [(c.name, c.value, c.color) for c in schema] == [
        ("Liver", 1, (221, 130, 101)),
        ("Tumor 1", 3, None),
    ]
    assert schema["Liver"].attributes["SegmentAlgorithmName"] == "GrowCut"
    assert schema.metadata["SeriesDescription"] == "Segmentation"
    segments = SegmentMap.load(path)
    assert [(i, s.category) for i, s in segments.items()] == [(1, "Liver"), (3, "Tumor 1")]
    schema.save(tmp_path / "again.json", "dcmqi")
    assert json.loads((tmp_path / "again.json").read_text()) == DCMQI
    # Two label files reusing a value: a schema cannot hold both, one file can be chosen.
    two = dict(
        DCMQI,
        segmentAttributes=[
            DCMQI["segmentAttributes"][0],
            [{"labelID": 1, "SegmentLabel": "Spleen"}],
        ],
    )
    path = write(tmp_path / "two.json", two)
    with pytest.raises(ValueError, match=r"both have value 1 .*series="):
        Schema.load(path)
    with pytest.raises(
        ValueError, match=r"describes 2 label files; choose one with series= \(the index of a label"
    ):
        SegmentMap.load(path)
    assert SegmentMap.load(path, series="1")[1].category == "Spleen"
    with pytest.raises(registry.SeriesError, match=r"no label file '2'; .*: 0, 1$"):
        SegmentMap.load(path, series="2")


def tasks_json(tmp_path: Path) -> Path:
    tasks = [
        {
            "taskId": "t1",
            "name": "case-1",
            "series": [
                {"name": "CT", "segmentations": "a.nii.gz", "segmentMap": {"1": "Liver"}},
                {"name": "MR", "items": ["x.dcm"]},
            ],
        },
        {
            "taskId": "t2",
            "name": "case-2",
            "series": [
                {
                    "segmentations": ["b.nii.gz"],
                    "segmentMap": {"1": {"category": "Spleen", "attributes": {"ok": True}}},
                },
            ],
        },
    ]
    return write(tmp_path / "tasks.json", tasks)


def test_tasks_json_as_a_segment_map(tmp_path: Path) -> None:
    path = tasks_json(tmp_path)
    with pytest.raises(registry.SeriesError) as error:
        SegmentMap.load(path)
    assert str(error.value) == (
        f"{path}: 2 series have segment maps; choose one with series= (a series name, or "
        "task/name): case-1/CT, case-2/A"
    )
    assert error.value.available == ("case-1/CT", "case-2/A")
    assert error.value.describe("--series").startswith("2 series have segment maps; choose one "
                                                       "with --series (")  # fmt: skip
    assert SegmentMap.load(path, series="CT")[1].category == "Liver"
    chosen = SegmentMap.load(path, series="case-2/A")
    assert chosen[1] == Segment("Spleen", attributes={"ok": True})
    with pytest.raises(ValueError, match=r"no series 'PET' has a segment map; .*case-1/CT, case"):
        SegmentMap.load(path, series="PET")
    # A name two tasks share needs its task.
    tasks = json.loads(path.read_text())
    tasks[1]["series"][0]["name"] = "CT"
    twice = write(tmp_path / "twice.json", tasks)
    with pytest.raises(
        ValueError, match=r"'CT' names 2 series; .*\(task/name\): case-1/CT, case-2"
    ):
        SegmentMap.load(twice, series="CT")
    assert SegmentMap.load(twice, series="case-2/CT")[1].category == "Spleen"
    single = write(tmp_path / "one.json", json.loads(path.read_text())[:1])
    assert SegmentMap.load(single)[1].category == "Liver"
    assert SegmentMap.load(single, series="CT")[1].category == "Liver"
    with pytest.raises(ValueError, match="no series 'MR' has a segment map"):
        SegmentMap.load(single, series="MR")  # MR has no segmentMap
    series = write(tmp_path / "series.json", {"segmentMap": {"4": ["Abdomen", "Liver"]}})
    assert SegmentMap.load(series)[4].category == ("Abdomen", "Liver")
    # series= for a file holding one segment map is refused, not ignored.
    plain = write(tmp_path / "segmentMap.json", {"1": "Liver"})
    for one, what in ((series, "one series"), (plain, "a segmentMap")):
        with pytest.raises(registry.SeriesError, match=f"{what} holds one segment map; series="):
            SegmentMap.load(one, series="CT")
    labels = write(tmp_path / "labels.json", {"labels": ["Air", "Liver"]})
    with pytest.raises(registry.SeriesError, match=r"label-list JSON .* holds one segment map"):
        SegmentMap.load(labels, series="0")
    taxonomy = write(tmp_path / "taxonomy.json", {"objectTypes": [{"category": "L", "classId": 0}]})
    with pytest.raises(ValueError, match="a RedBrick taxonomy names categories, not instances"):
        SegmentMap.load(taxonomy)


def test_sdk_labels_json_as_a_segment_map(tmp_path: Path) -> None:
    labels = [
        {
            "category": [["object", "Liver"]],
            "classid": 0,
            "labelid": "a1",
            "attributes": [{"name": "Lesion", "value": "true"}, {"name": "Grade", "value": 2}],
            "dicom": {"instanceid": 1, "groupids": [5]},
            "volumeindex": 0,
        },
        {
            "category": [["object", "Abdomen", "Kidney"]],
            "classid": 3,
            "linkid": "g",
            "dicom": {"instanceid": 2, "groupids": [5]},
            "volumeindex": 0,
        },
        {"category": [["object", "Study"]], "studyclassify": True, "labelid": "s"},
    ]
    path = write(tmp_path / "labels.json", labels)
    assert registry.by_name("redbrick-labels").function("recognise_labels")(labels)
    segments = SegmentMap.load(path)
    assert segments[1] == Segment(
        "Liver", attributes={"Lesion": True, "Grade": 2}, extra={"id": "a1"}
    )
    assert segments[2] == Segment(("Abdomen", "Kidney"), extra={"group": "g"})
    assert dict(segments.groups) == {5: (1, 2)}
    two = [
        *labels,
        {"category": [["object", "Liver"]], "dicom": {"instanceid": 1}, "volumeindex": 1},
    ]
    path = write(tmp_path / "two.json", two)
    with pytest.raises(
        ValueError,
        match=r"labels of 2 series \(volumeindex \[0, 1\]\); choose one with series= \(a "
        r"volumeindex\): 0, 1$",
    ):
        SegmentMap.load(path)
    assert list(SegmentMap.load(path, series="1")) == [1]
    for unknown in ("2", "CT", "\u0663"):  # ARABIC-INDIC DIGIT THREE is a digit, not an index
        with pytest.raises(registry.SeriesError, match=f"no labels of series '{unknown}'"):
            SegmentMap.load(path, series=unknown)


def test_schema_and_segment_map_modules_do_not_import_formats() -> None:
    """schema.py and segmap.py reach formats/ only when a file is read or written, and
    reading the registry imports no format module (no cycle, nothing optional)."""
    code = (
        "import sys, fastseg.schema, fastseg.segmap, fastseg.formats.registry as r\n"
        "r.volume_suffixes(); r.schema_formats()\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('fastseg.formats.'))\n"
        "print(loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "['fastseg.formats.registry']"


def test_every_registered_function_exists() -> None:
    for entry in registry.FORMATS:
        names = [entry.reads_schema, entry.writes_schema, entry.reads_segment_map, entry.recognise]
        if entry.volume:
            names += ["read_volume", "write_volume"]
        for name in names:
            if name is not None:
                assert callable(entry.function(name)), (entry.name, name)


def test_label_list_as_a_segment_map_and_nnunet_errors_cut(tmp_path: Path) -> None:
    names = ["bg", *(f"region {i}" for i in range(1, 725))]
    path = write(tmp_path / "atlas.json", {"labels": names})
    segments = SegmentMap.load(path)
    assert len(segments) == 724
    assert segments[724].category == "region 724"
    with pytest.raises(ValueError, match="'labels' must be a non-empty object") as error:
        Schema.load(path, "nnunet")
    assert len(str(error.value)) < 500


def test_schema_command_writes_a_complete_nnunet_dataset_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The keys nnU-Net v2's verify_dataset_integrity requires, and labels its
    LabelManager accepts (background 0, consecutive values)."""
    from fastseg.cli import main

    taxonomy = write(
        tmp_path / "taxonomy.json",
        {
            "objectTypes": [
                {"category": "Liver", "classId": 2},
                {"category": "Spleen", "classId": 7},
            ]
        },
    )
    dataset = tmp_path / "Dataset001_Organs"
    (dataset / "labelsTr").mkdir(parents=True)
    for case in ("a", "b", "c"):
        (dataset / "labelsTr" / f"{case}.nii.gz").write_bytes(b"")
    assert main(["schema", str(taxonomy), str(dataset / "dataset.json"), "--renumber"]) == 0
    content = json.loads((dataset / "dataset.json").read_text())
    assert content == {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, "Liver": 1, "Spleen": 2},
        "numTraining": 3,
        "file_ending": ".nii.gz",
    }
    target = str(tmp_path / "mr.json")
    options = ["--to", "nnunet", "--channel", "T1", "--channel", "T2", "--num-training", "9"]
    assert main(["schema", str(dataset / "dataset.json"), target, *options]) == 0
    content = json.loads((tmp_path / "mr.json").read_text())
    assert content["channel_names"] == {"0": "T1", "1": "T2"}
    assert content["numTraining"] == 9
    assert content["file_ending"] == ".nii.gz"
    capsys.readouterr()
    try:
        from nnunetv2.utilities.label_handling.label_handling import LabelManager
    except ImportError:
        return
    manager = LabelManager(content["labels"], content.get("regions_class_order"))
    assert list(manager.all_labels) == [0, 1, 2]


def _nest(levels: int) -> Any:
    """A list ``levels`` deep (``[]`` is one level)."""
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


# Each format's document, with a value where the format allows any JSON (attributes,
# metadata), so that only its depth is wrong; and how deep the containers around it go.
DEEP_DOCUMENTS: dict[str, tuple[Any, int]] = {
    "nnunet": ({"labels": {"background": 0, "Liver": 1}, "extra": "DEEP"}, 1),
    "redbrick": ({"objectTypes": [{"category": "Liver", "classId": 0, "hint": "DEEP"}]}, 3),
    "dcmqi": ({"segmentAttributes": [[{"labelID": 1, "SegmentLabel": "Liver", "x": "DEEP"}]]}, 4),
    "label-list": ({"labels": ["Air", "Liver"], "notes": "DEEP"}, 1),
}


@pytest.mark.parametrize("form", sorted(DEEP_DOCUMENTS))
@pytest.mark.parametrize("levels", [64, 65, 100_000])
def test_schema_load_refuses_json_nested_too_deeply(tmp_path: Path, form: str, levels: int) -> None:
    """Every JSON reader refuses more than 64 levels, naming the file and where, whether
    the format is detected or given; 64 levels read as usual."""
    document, around = DEEP_DOCUMENTS[form]
    # 100,000 levels are beyond what json.loads can recurse into.
    deep = json.dumps(_nest(levels - around)) if levels < 1000 else "[" * levels + "]" * levels
    path = tmp_path / "deep.json"
    path.write_text(json.dumps(document).replace('"DEEP"', deep))
    for format in (None, form):
        if levels == 64:
            assert Schema.load(path, format).names == ["Liver"]  # type: ignore[arg-type]
            continue
        with pytest.raises(ValueError, match="nested more than 64 levels deep") as error:
            Schema.load(path, format)  # type: ignore[arg-type]
        message = str(error.value)
        assert message.startswith(f"{path}: JSON nested more than 64 levels deep")
        if levels < 1000:
            assert "(at [" in message
        assert len(message) < 400


@pytest.mark.parametrize("name", ["tasks.json", "segmentMap.json", "labels.json"])
def test_segment_map_load_refuses_json_nested_too_deeply(tmp_path: Path, name: str) -> None:
    documents: dict[str, Any] = {
        "tasks.json": [{"name": "t", "series": [{"segmentMap": {"1": "DEEP"}}]}],
        "segmentMap.json": {"1": {"category": "Liver", "attributes": {"a": "DEEP"}}},
        "labels.json": [{"category": "DEEP", "dicom": {"instanceid": 1}}],
    }
    path = tmp_path / name
    path.write_text(json.dumps(documents[name]).replace('"DEEP"', json.dumps(_nest(70))))
    with pytest.raises(ValueError, match=r"nested more than 64 levels deep \(at \[") as error:
        SegmentMap.load(path)
    assert str(error.value).startswith(f"{path}: ")
    format = {"tasks.json": "redbrick", "segmentMap.json": "redbrick"}.get(name, "redbrick-labels")
    with pytest.raises(ValueError, match="nested more than 64 levels deep"):
        registry.load_segment_map(path, format=format)

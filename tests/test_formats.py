"""Schema file formats: nnU-Net dataset.json, ITK-SNAP label files and BIDS dseg.tsv.

Every example is a file as the tool writes it; round trips must give an equal schema and,
where the tool's output is canonical, the same bytes.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from shared_data import shared_data_path

from fastseg import Category, Schema
from fastseg.formats.bids import read_dseg_tsv, write_dseg_tsv
from fastseg.formats.itksnap import HEADER, read_itksnap, write_itksnap
from fastseg.formats.nnunet import read_dataset_json, write_dataset_json

# --- examples, as each tool writes them ---------------------------------------------------

# nnU-Net v2's generate_dataset_json: save_json(..., sort_keys=False), i.e. json.dump with
# indent=4 and no trailing newline.
NNUNET_V2 = """{
    "channel_names": {
        "0": "CT"
    },
    "labels": {
        "background": 0,
        "spleen": 1,
        "kidney_right": 2,
        "kidney_left": 3,
        "gallbladder": 4,
        "liver": 5
    },
    "numTraining": 30,
    "file_ending": ".nii.gz",
    "name": "AbdomenCT",
    "reference": "https://www.synapse.org/#!Synapse:syn3193805",
    "licence": "CC-BY 4.0",
    "converted_by": "fastseg tests"
}"""

# Region-based training (nnU-Net's BraTS 2021 conversion, Dataset137).
NNUNET_REGIONS = """{
    "channel_names": {
        "0": "T1",
        "1": "T1ce",
        "2": "T2",
        "3": "Flair"
    },
    "labels": {
        "background": 0,
        "whole tumor": [
            1,
            2,
            3
        ],
        "tumor core": [
            2,
            3
        ],
        "enhancing tumor": [
            3
        ]
    },
    "numTraining": 1251,
    "file_ending": ".nii.gz",
    "regions_class_order": [
        1,
        2,
        3
    ],
    "license": "see https://www.synapse.org/#!Synapse:syn25829067/wiki/610863",
    "reference": "see https://www.synapse.org/#!Synapse:syn25829067/wiki/610863",
    "release": "1.0"
}"""

# Sparse annotation with nnU-Net's ignore label (the highest value).
NNUNET_IGNORE = """{
    "channel_names": {
        "0": "MRI"
    },
    "labels": {
        "background": 0,
        "Anterior": 1,
        "Posterior": 2,
        "ignore": 3
    },
    "numTraining": 260,
    "file_ending": ".nii.gz"
}"""

# Regions and ignore label together, a region given as a plain int and
# regions_class_order out of value order (nnU-Net's Dataset996 integration test).
NNUNET_REGIONS_IGNORE = """{
    "channel_names": {
        "0": "MRI"
    },
    "labels": {
        "background": 0,
        "hippocampus": [
            1,
            2
        ],
        "anterior": 1,
        "ignore": 3
    },
    "numTraining": 260,
    "file_ending": ".nii.gz",
    "regions_class_order": [
        2,
        1
    ]
}"""

# Medical Segmentation Decathlon, Task03_Liver (its own hand formatting).
MSD = """{
"name": "Liver",
"description": "Liver and liver tumor segmentation",
"reference": "IRCAD Institut Hopitalo-Universitaire, Strasbourg, France",
"licence":"CC-BY-SA 4.0",
"relase":"1.0 04/05/2018",
"tensorImageSize": "3D",
"modality": {
   "0": "CT"
 },
 "labels": {
   "0": "background",
   "1": "liver",
   "2": "cancer"
 },
 "numTraining": 131,
 "numTest": 70,
 "training":[{"image":"./imagesTr/liver_0.nii.gz","label":"./labelsTr/liver_0.nii.gz"}],
 "test": ["./imagesTs/liver_132.nii.gz"]
 }
"""

# ITK-SNAP's ColorLabelTable::SaveToFile, line by line (the header has trailing spaces).
ITKSNAP = (
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
    '    0     0    0    0        0  0  0    "Clear Label"\n'
    '    1   255    0    0        1  1  1    "Liver"\n'
    '    2     0  255    0        1  1  1    "Spleen"\n'
    '    3     0    0  255      0.5  1  1    "Left kidney"\n'
    '    4   255  255    0        1  0  1    "Right kidney"\n'
    '    5     0  255  255     0.78  1  0    "Pancreas (head)"\n'
    '   12   255    0  255        1  1  1    "Aorta"\n'
    '  200   102  205  170        1  1  1    "Inferior vena cava"\n'
)

# BIDS dseg.tsv with every optional column, a background row and a column of its own.
BIDS_FULL = (
    "index\tname\tabbreviation\tcolor\tmapping\themisphere\n"
    "0\tbackground\tBG\t#000000\t0\tn/a\n"
    "1\tGray Matter\tGM\t#ff53bb\t1\tn/a\n"
    "2\tWhite Matter\tWM\t#2f8bbe\t2\tn/a\n"
    "3\tCerebrospinal Fluid\tCSF\t#36de72\t3\tn/a\n"
    "17\tLeft Hippocampus\tLHip\t#dcd814\tn/a\tleft\n"
    "53\tRight Hippocampus\tn/a\tn/a\tn/a\tright\n"
)

BIDS_MINIMAL = "index\tname\n1\tGray Matter\n2\tWhite Matter\n3\tCerebrospinal Fluid\n"

# Columns in an unusual order: written back in that order.
BIDS_REORDERED = "color\tname\tvolume_ml\tindex\n#ff0000\tlesion\t1.5\t1\nn/a\tedema\tn/a\t2\n"


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


# --- nnU-Net -----------------------------------------------------------------------------


def test_examples_are_what_nnunet_writes() -> None:
    for text in (NNUNET_V2, NNUNET_REGIONS, NNUNET_IGNORE, NNUNET_REGIONS_IGNORE):
        assert json.dumps(json.loads(text), indent=4) == text


def test_nnunet_v2_reads_labels_and_keeps_other_keys(tmp_path: Path) -> None:
    schema = read_dataset_json(write(tmp_path / "dataset.json", NNUNET_V2))
    assert schema.names == ["spleen", "kidney_right", "kidney_left", "gallbladder", "liver"]
    assert schema.values == [1, 2, 3, 4, 5]
    assert all(c.color is None and not c.attributes for c in schema)
    assert schema.metadata["channel_names"] == {"0": "CT"}
    assert schema.metadata["numTraining"] == 30
    assert schema.metadata["file_ending"] == ".nii.gz"
    assert schema.metadata["background"] == "background"
    assert schema.metadata["nnunet_key_order"][:4] == (
        "channel_names",
        "labels",
        "numTraining",
        "file_ending",
    )


def test_nnunet_regions(tmp_path: Path) -> None:
    schema = read_dataset_json(write(tmp_path / "dataset.json", NNUNET_REGIONS))
    assert [(c.name, c.value, c.attributes["regions"]) for c in schema] == [
        ("whole tumor", 1, [1, 2, 3]),
        ("tumor core", 2, [2, 3]),
        ("enhancing tumor", 3, [3]),
    ]
    assert "regions_class_order" not in schema.metadata


def test_nnunet_ignore_label(tmp_path: Path) -> None:
    schema = read_dataset_json(write(tmp_path / "dataset.json", NNUNET_IGNORE))
    assert schema["ignore"] == Category("ignore", 3, attributes={"ignore": True})
    assert not schema["Posterior"].attributes


def test_nnunet_regions_with_ignore_keep_file_order(tmp_path: Path) -> None:
    schema = read_dataset_json(write(tmp_path / "dataset.json", NNUNET_REGIONS_IGNORE))
    assert schema.names == ["hippocampus", "anterior", "ignore"]
    assert schema.values == [2, 1, 3]
    assert schema["anterior"].attributes == {"regions": 1}
    assert schema["ignore"].attributes == {"ignore": True}


@pytest.mark.parametrize("text", [NNUNET_V2, NNUNET_REGIONS, NNUNET_IGNORE, NNUNET_REGIONS_IGNORE])
def test_nnunet_v2_round_trip_is_byte_exact(tmp_path: Path, text: str) -> None:
    schema = read_dataset_json(write(tmp_path / "dataset.json", text))
    write_dataset_json(schema, tmp_path / "out.json")
    assert (tmp_path / "out.json").read_text(encoding="utf-8") == text
    assert read_dataset_json(tmp_path / "out.json") == schema


def test_nnunet_reads_a_dict_like_a_file(tmp_path: Path) -> None:
    content = json.loads(NNUNET_REGIONS)
    from_dict = read_dataset_json(content)
    assert from_dict == read_dataset_json(write(tmp_path / "dataset.json", NNUNET_REGIONS))
    from_dict.metadata["channel_names"]["0"] = "changed"
    assert content["channel_names"]["0"] == "T1"  # the metadata is a copy


def test_nnunet_v2_writes_labels_in_value_order_background_first(tmp_path: Path) -> None:
    shuffled = json.loads(NNUNET_V2)
    shuffled["labels"] = {"liver": 5, "spleen": 1, "background": 0, "gallbladder": 4} | {
        "kidney_left": 3,
        "kidney_right": 2,
    }
    schema = read_dataset_json(shuffled)
    assert schema.values == [1, 2, 3, 4, 5]
    write_dataset_json(schema, tmp_path / "dataset.json")
    assert (tmp_path / "dataset.json").read_text(encoding="utf-8") == NNUNET_V2


def test_msd_is_detected_and_round_trips(tmp_path: Path) -> None:
    schema = read_dataset_json(write(tmp_path / "dataset.json", MSD))
    assert [(c.name, c.value) for c in schema] == [("liver", 1), ("cancer", 2)]
    assert schema.metadata["background"] == "background"
    assert schema.metadata["modality"] == {"0": "CT"}
    assert schema.metadata["training"][0]["label"] == "./labelsTr/liver_0.nii.gz"
    write_dataset_json(schema, tmp_path / "out.json", version=1)
    out = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert list(out) == list(json.loads(MSD))  # key order kept
    assert out == json.loads(MSD)
    assert read_dataset_json(tmp_path / "out.json") == schema


def test_nnunet_v1_as_nnunet_v1_writes_it_is_byte_exact(tmp_path: Path) -> None:
    # nnU-Net v1's generate_dataset_json: save_json with sort_keys=True and indent=4.
    text = json.dumps(json.loads(MSD), indent=4, sort_keys=True)
    schema = read_dataset_json(write(tmp_path / "dataset.json", text))
    write_dataset_json(schema, tmp_path / "out.json", version=1)
    assert (tmp_path / "out.json").read_text(encoding="utf-8") == text


def test_msd_converts_to_nnunet_v2(tmp_path: Path) -> None:
    schema = read_dataset_json(write(tmp_path / "dataset.json", MSD))
    write_dataset_json(schema, tmp_path / "v2.json")
    out = json.loads((tmp_path / "v2.json").read_text(encoding="utf-8"))
    assert out["labels"] == {"background": 0, "liver": 1, "cancer": 2}
    assert list(out) == list(json.loads(MSD))
    assert read_dataset_json(out) == schema


def test_nnunet_background_name_of_msd_is_kept(tmp_path: Path) -> None:
    content = {"labels": {"0": "Clear", "1": "liver"}, "numTraining": 1}
    schema = read_dataset_json(content)
    assert schema.metadata["background"] == "Clear"
    write_dataset_json(schema, tmp_path / "out.json", version=1)
    assert json.loads((tmp_path / "out.json").read_text()) == content


def test_nnunet_write_with_base_for_a_foreign_schema(tmp_path: Path) -> None:
    schema = read_itksnap(ITKSNAP)
    base = {"channel_names": {"0": "CT"}, "numTraining": 30, "file_ending": ".nii.gz"}
    with pytest.raises(ValueError, match="not consecutive, value 6 is missing"):
        write_dataset_json(schema, tmp_path / "dataset.json", base=base)
    consecutive = Schema([c for c in schema if c.value <= 5], metadata=schema.metadata)
    write_dataset_json(consecutive, tmp_path / "dataset.json", base=base)
    out = json.loads((tmp_path / "dataset.json").read_text(encoding="utf-8"))
    # ITK-SNAP's metadata (background name, colours) stays out of dataset.json
    assert out == {
        "channel_names": {"0": "CT"},
        "labels": {
            "background": 0,
            "Liver": 1,
            "Spleen": 2,
            "Left kidney": 3,
            "Right kidney": 4,
            "Pancreas (head)": 5,
        },
        "numTraining": 30,
        "file_ending": ".nii.gz",
    }
    assert list(out) == ["channel_names", "labels", "numTraining", "file_ending"]


def test_nnunet_base_overrides_metadata_and_labels_come_from_the_schema(tmp_path: Path) -> None:
    schema = read_dataset_json(json.loads(NNUNET_V2))
    base = {"numTraining": 31, "labels": {"stale": 1}, "regions_class_order": [1], "new": 1}
    write_dataset_json(schema, tmp_path / "dataset.json", base=base)
    out = json.loads((tmp_path / "dataset.json").read_text(encoding="utf-8"))
    assert out["numTraining"] == 31
    assert out["labels"] == json.loads(NNUNET_V2)["labels"]
    assert "regions_class_order" not in out
    assert list(out)[-1] == "new"


def test_nnunet_without_key_order_puts_labels_after_channel_names(tmp_path: Path) -> None:
    schema = Schema([Category("liver", 1)])
    base = {"channel_names": {"0": "CT"}, "file_ending": ".nii.gz"}
    write_dataset_json(schema, tmp_path / "dataset.json", base=base)
    out = json.loads((tmp_path / "dataset.json").read_text(encoding="utf-8"))
    assert list(out) == ["channel_names", "labels", "file_ending"]
    write_dataset_json(schema, tmp_path / "bare.json")
    assert (tmp_path / "bare.json").read_text() == json.dumps(
        {"labels": {"background": 0, "liver": 1}}, indent=4
    )


def test_nnunet_schema_built_by_hand_with_regions(tmp_path: Path) -> None:
    schema = Schema(
        [
            Category("whole tumor", 1, attributes={"regions": (1, 2, 3)}),
            Category("tumor core", 2, attributes={"regions": [2, 3]}),
            Category("enhancing tumor", 3),  # region defaults to its own value
        ]
    )
    write_dataset_json(schema, tmp_path / "dataset.json")
    out = json.loads((tmp_path / "dataset.json").read_text(encoding="utf-8"))
    assert out == {
        "labels": {
            "background": 0,
            "whole tumor": [1, 2, 3],
            "tumor core": [2, 3],
            "enhancing tumor": 3,
        },
        "regions_class_order": [1, 2, 3],
    }


# Every way a dataset.json can be wrong, with the key the message names.
NNUNET_BAD: list[tuple[Any, str]] = [
    ([1, 2], "expected a JSON object, got list"),
    ({"name": "x"}, "no 'labels' key"),
    ({"labels": {}}, "'labels' must be a non-empty object"),
    ({"labels": [0, 1]}, "'labels' must be a non-empty object"),
    ({"labels": {"background": 0}, "background": "x"}, "key 'background' is reserved"),
    ({"labels": {"background": 0}, "nnunet_key_order": []}, "'nnunet_key_order' is reserved"),
    # MSD / v1
    ({"labels": {"0": "background", "x": "liver"}}, r"labels\['x'\]: the key is not"),
    ({"labels": {"0": "background", "-1": "liver"}}, r"labels\['-1'\]: the key is not"),
    (
        {"labels": {"0": "bg", "1": "a", "01": "b"}},
        r"labels\['01'\]: value 1 is also labels\['1'\]",
    ),
    ({"labels": {"0": "bg", "1": "a", "2": "a"}}, r"labels\['2'\]: name 'a' is also labels\['1'\]"),
    ({"labels": {"1": "liver"}}, r"no '0' \(background\) entry"),
    ({"labels": {"0": "bg", "1": " "}}, r"labels\['1'\]: a category name must be a non-empty"),
    # v2
    ({"labels": {"liver": 1, "bg": 0}}, "no 'background' entry"),
    ({"labels": {"background": 1, "liver": 2}}, r"labels\['background'\] must be 0, got 1"),
    ({"labels": {"background": [0], "a": 1}}, r"labels\['background'\] must be 0, got \[0\]"),
    ({"labels": {"background": False, "a": 1}}, r"labels\['background'\] must be 0"),
    ({"labels": {"background": 0, "liver": "1"}}, r"labels\['liver'\]: expected an integer"),
    ({"labels": {"background": 0, "liver": 1.0}}, r"labels\['liver'\]: expected an integer"),
    ({"labels": {"background": 0, "liver": True}}, r"labels\['liver'\]: expected an integer"),
    ({"labels": {"background": 0, "liver": -1}}, r"labels\['liver'\]: expected an integer >= 0"),
    ({"labels": {"background": 0, "liver": 0}}, r"labels\['liver'\]: value 0 is reserved"),
    (
        {"labels": {"background": 0, "a": 1, "b": 1}},
        r"labels\['b'\]: value 1 is also labels\['a'\]",
    ),
    ({"labels": {"background": 0, "a": 1, "b": 3}}, "not consecutive, value 2 is missing"),
    ({"labels": {"background": 0, "": 1}}, r"labels\[''\]: a category name must be"),
    ({"labels": {"background": 0, "a": [1, 2]}}, r"labels\['a'\]: a region .* needs 'regions_cl"),
    ({"labels": {"background": 0, "a": 1, "ignore": [2]}}, r"labels\['ignore'\] must be an int"),
    ({"labels": {"background": 0, "a": 1, "ignore": 5}}, r"labels\['ignore'\] is 5, but .* 2$"),
    ({"labels": {"background": 0, "ignore": 1, "a": 2}}, r"labels\['ignore'\] is 1, but .* 3$"),
    # regions
    ({"labels": {"background": 0, "a": [1]}, "regions_class_order": 1}, "must be a list"),
    ({"labels": {"background": 0, "a": [1]}, "regions_class_order": [0]}, "must be a list"),
    (
        {"labels": {"background": 0, "a": [1, 2], "b": 2}, "regions_class_order": [1]},
        "regions_class_order has 1 entries for 2 regions",
    ),
    (
        {"labels": {"background": 0, "a": [1, 2], "b": [2]}, "regions_class_order": [1, 1]},
        "regions_class_order: value 1 is given to both 'a' and 'b'",
    ),
    (
        {"labels": {"background": 0, "a": [1, 0]}, "regions_class_order": [1]},
        r"labels\['a'\]: a region must be an integer >= 1",
    ),
    (
        {"labels": {"background": 0, "a": []}, "regions_class_order": [1]},
        r"labels\['a'\]: a region must be",
    ),
    (
        {"labels": {"background": 0, "a": [1, 3]}, "regions_class_order": [1]},
        "not consecutive, value 2 is missing",
    ),
    (
        {"labels": {"background": 0, "a": [1, 2], "ignore": 3}, "regions_class_order": [3]},
        r"labels\['ignore'\]: value 3 is also regions_class_order's entry for 'a'",
    ),
]


@pytest.mark.parametrize(("content", "message"), NNUNET_BAD)
def test_nnunet_malformed_labels_raise_naming_file_and_key(
    tmp_path: Path, content: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as info:
        read_dataset_json(write(tmp_path / "broken.json", json.dumps(content)))
    assert str(info.value).startswith(f"{tmp_path / 'broken.json'}: ")
    if isinstance(content, dict):
        with pytest.raises(ValueError, match=message) as info:
            read_dataset_json(content)
        assert str(info.value).startswith("<dict>: ")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a readable JSON file"),
        (b'{"labels": {"background": 0,}}', "not a readable JSON file"),
        (b'{"labels": {"background": 0, "a": 1, "a": 2}}', "duplicate key 'a' in a JSON object"),
        (b'{"labels": {"background": 0}, "labels": {}}', "duplicate key 'labels'"),
        (b'{"labels": {"background": 0, "caf\xe9": 1}}', "not a readable JSON file"),
    ],
)
def test_nnunet_unreadable_json(tmp_path: Path, data: bytes, message: str) -> None:
    (tmp_path / "dataset.json").write_bytes(data)
    with pytest.raises(ValueError, match=rf"dataset\.json: {message}"):
        read_dataset_json(tmp_path / "dataset.json")


def test_nnunet_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_dataset_json(str(tmp_path / "nothing.json"))


@pytest.mark.parametrize(
    ("schema", "kwargs", "message"),
    [
        (Schema([Category("a", 1)]), {"version": 3}, "version must be 1 or 2, got 3"),
        (Schema([Category("a", 1), Category("b", 3)]), {}, "not consecutive, value 2 is miss"),
        (Schema([Category("background", 1)]), {}, "a category is named 'background'"),
        (
            Schema([Category("a", 1), Category("unlabeled", 2, attributes={"ignore": True})]),
            {},
            "category 'unlabeled' is marked as the ignore label, which nnU-Net requires",
        ),
        (
            Schema([Category("ignore", 1), Category("a", 2)]),
            {},
            r"labels\['ignore'\] is 1, but nnU-Net requires the ignore label to be the highest",
        ),
        (
            Schema([Category("ignore", 1, attributes={"regions": [1]})]),
            {},
            "the ignore label cannot be a region",
        ),
        (
            Schema([Category("a", 1, attributes={"regions": ["x"]})]),
            {},
            r"labels\['a'\]: a region must be an integer >= 1",
        ),
        (
            Schema([Category("a", 1, attributes={"regions": [1, 2]})]),
            {"version": 1},
            "category 'a' is a region or ignore label, which MSD / nnU-Net v1",
        ),
        (
            Schema([Category("ignore", 1, attributes={"ignore": True})]),
            {"version": 1},
            "category 'ignore' is a region or ignore label",
        ),
        (Schema([Category("a", 1)]), {"base": {"background": "x"}}, "base key 'background'"),
    ],
)
def test_nnunet_unwritable_schemas(
    tmp_path: Path, schema: Schema, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as info:
        write_dataset_json(schema, tmp_path / "dataset.json", **kwargs)
    if "version" not in str(info.value):
        assert str(info.value).startswith(f"cannot write {tmp_path / 'dataset.json'} as nnU-Net")
    assert not os.listdir(tmp_path)


# --- ITK-SNAP ----------------------------------------------------------------------------


def test_itksnap_header_is_itksnaps() -> None:
    assert ITKSNAP.startswith(HEADER)


def test_itksnap_reads_colours_flags_and_background(tmp_path: Path) -> None:
    schema = read_itksnap(write(tmp_path / "labels.txt", ITKSNAP))
    assert schema.values == [1, 2, 3, 4, 5, 12, 200]
    assert schema["Left kidney"] == Category(
        "Left kidney",
        3,
        color=(0, 0, 255),
        attributes={"alpha": 0.5, "visible": True, "mesh_visible": True},
    )
    assert schema["Right kidney"].attributes["visible"] is False
    assert schema["Pancreas (head)"].attributes == {
        "alpha": 0.78,
        "visible": True,
        "mesh_visible": False,
    }
    assert schema.by_value(200).name == "Inferior vena cava"
    assert dict(schema.metadata) == {"background": "Clear Label"}


def test_itksnap_round_trip_is_byte_exact(tmp_path: Path) -> None:
    schema = read_itksnap(write(tmp_path / "labels.txt", ITKSNAP))
    write_itksnap(schema, tmp_path / "out.txt")
    assert (tmp_path / "out.txt").read_bytes() == ITKSNAP.encode()
    assert read_itksnap(tmp_path / "out.txt") == schema
    assert read_itksnap(ITKSNAP) == schema  # text, not a file name


def test_itksnap_reads_any_whitespace_comments_and_crlf() -> None:
    text = (
        "# exported by hand\r\n"
        "\r\n"
        '0 0 0 0 0 0 0 "Clear Label"\r\n'
        "  # indented comment\n"
        '1\t255\t0\t0\t1\t1\t1\t"Liver"  \n'
        '\t2 0 255 0 1.0 1 1 "Spleen"'
    )
    schema = read_itksnap(text)
    assert [(c.name, c.value, c.color) for c in schema] == [
        ("Liver", 1, (255, 0, 0)),
        ("Spleen", 2, (0, 255, 0)),
    ]
    assert schema["Spleen"].attributes["alpha"] == 1.0


def test_itksnap_non_default_clear_label_is_kept(tmp_path: Path) -> None:
    text = HEADER + '    0    10   20   30      0.5  1  0    "Outside"\n'
    schema = read_itksnap(text)
    assert len(schema) == 0
    assert schema.metadata["itksnap_background"] == {
        "color": (10, 20, 30),
        "alpha": 0.5,
        "visible": True,
        "mesh_visible": False,
    }
    write_itksnap(schema, tmp_path / "out.txt")
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == text


def test_itksnap_file_without_label_zero_gains_clear_label(tmp_path: Path) -> None:
    schema = read_itksnap(HEADER + '    1   255    0    0        1  1  1    "Liver"\n')
    assert "background" not in schema.metadata
    write_itksnap(schema, tmp_path / "out.txt")
    again = read_itksnap(tmp_path / "out.txt")
    assert list(again) == list(schema)
    assert again.metadata["background"] == "Clear Label"


def test_itksnap_writes_defaults_for_a_plain_schema(tmp_path: Path) -> None:
    schema = Schema(
        [
            Category("liver", 1, color="#ff8000"),
            Category("no colour", 2),
            Category("faint", 3, color=(1, 2, 3), attributes={"alpha": 0.125}),
            Category("odd alpha", 4, attributes={"alpha": 0.784, "visible": 0}),
        ],
        metadata={"background": "background"},
    )
    write_itksnap(schema, tmp_path / "out.txt")
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == HEADER + (
        '    0     0    0    0        0  0  0    "background"\n'
        '    1   255  128    0        1  1  1    "liver"\n'
        '    2     0    0    0        1  1  1    "no colour"\n'
        '    3     1    2    3    0.125  1  1    "faint"\n'
        '    4     0    0    0    0.784  0  1    "odd alpha"\n'
    )
    again = read_itksnap(tmp_path / "out.txt")
    assert again["no colour"].color == (0, 0, 0)  # ITK-SNAP has no "no colour"
    assert again["odd alpha"].attributes["alpha"] == 0.784  # no precision lost


ITKSNAP_BAD = [
    ("    1   255    0    0        1  1  1    Liver", r'expected IDX R G B A VIS MSH "LABEL"'),
    ('    1   255    0    0        1  1       "Liver"', r'expected IDX R G B A VIS MSH "LABEL"'),
    ('    1   255    0    0        1  1  1    "Liver" x', r"expected IDX R G B A VIS MSH"),
    ('    x   255    0    0        1  1  1    "Liver"', "label value 'x' is not a non-negative"),
    ('   -1   255    0    0        1  1  1    "Liver"', "label value '-1' is not a non-negative"),
    ('    1   256    0    0        1  1  1    "Liver"', "colour component '256' is not an integ"),
    ('    1   255  1.5    0        1  1  1    "Liver"', "colour component '1.5' is not an integ"),
    ('    1   255    0   -3        1  1  1    "Liver"', "colour component '-3' is not an integ"),
    ('    1   255    0    0      1.5  1  1    "Liver"', r"opacity \(A\) '1.5' is not a number fr"),
    ('    1   255    0    0     half  1  1    "Liver"', r"opacity \(A\) 'half' is not a number"),
    ('    1   255    0    0      nan  1  1    "Liver"', r"opacity \(A\) 'nan' is not a number"),
    ('    1   255    0    0        1  2  1    "Liver"', r"visibility \(VIS\) '2' is not 0 or 1"),
    ('    1   255    0    0        1  1  x    "Liver"', r"mesh visibility \(MSH\) 'x' is not 0"),
    ('    1   255    0    0        1  1  1    ""', "a category name must be a non-empty"),
    ('    1   255    0    0        1  1  1    "Liver"\n    1  0 0 0 1 1 1 "B"', "value 1 is al"),
    ('    1   255    0    0        1  1  1    "Liver"\n    2  0 0 0 1 1 1 "Liver"', "name 'Liv"),
    ('    0   0 0 0 0 0 0 "Clear Label"\n    0  0 0 0 0 0 0 "Clear"', "label value 0 is also o"),
]


@pytest.mark.parametrize(("lines", "message"), ITKSNAP_BAD)
def test_itksnap_malformed_lines_raise_naming_file_and_line(
    tmp_path: Path, lines: str, message: str
) -> None:
    text = HEADER + lines + "\n"
    line = 14 + lines.count("\n") + 1
    with pytest.raises(ValueError, match=message) as info:
        read_itksnap(write(tmp_path / "labels.txt", text))
    assert str(info.value).startswith(f"{tmp_path / 'labels.txt'}, line {line}: ")
    with pytest.raises(ValueError, match=message) as info:
        read_itksnap(text)
    assert str(info.value).startswith(f"<text>, line {line}: ")


def test_itksnap_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "latin1.txt").write_bytes(b'    1   255 0 0 1 1 1 "Leb\xe9r"\n')
    with pytest.raises(ValueError, match=r"latin1\.txt: not UTF-8 text"):
        read_itksnap(tmp_path / "latin1.txt")
    with pytest.raises(FileNotFoundError):
        read_itksnap(str(tmp_path / "nothing.txt"))  # a str without line break is a path


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (Schema([Category('say "hi"', 1)]), r"""'say "hi"': an ITK-SNAP label name cannot"""),
        (Schema([Category("a\nb", 1)]), "an ITK-SNAP label name cannot hold"),
        (Schema([Category("a", 1, attributes={"alpha": 2})]), "'a': alpha must be a number"),
        (Schema([Category("a", 1, attributes={"alpha": "1"})]), "'a': alpha must be a number"),
        (Schema([Category("a", 1, attributes={"alpha": True})]), "'a': alpha must be a num"),
        (Schema([Category("a", 1, attributes={"visible": 2})]), "'a': visible must be True/F"),
        (Schema([Category("a", 1, attributes={"mesh_visible": "1"})]), "mesh_visible must be"),
        (Schema([], metadata={"background": 'x"y'}), "label 0 .*: an ITK-SNAP label name"),
        (Schema([], metadata={"itksnap_background": [0]}), "must be a mapping, got"),
        (
            Schema([], metadata={"itksnap_background": {"color": (0, 0, 300)}}),
            r"label 0 \(background\): colour must be three integers 0-255",
        ),
    ],
)
def test_itksnap_unwritable_schemas(tmp_path: Path, schema: Schema, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_itksnap(schema, tmp_path / "labels.txt")
    assert not os.listdir(tmp_path)


# --- BIDS --------------------------------------------------------------------------------


def test_bids_reads_optional_and_extra_columns(tmp_path: Path) -> None:
    schema = read_dseg_tsv(write(tmp_path / "sub-01_dseg.tsv", BIDS_FULL))
    assert schema.values == [1, 2, 3, 17, 53]
    assert schema["Gray Matter"] == Category(
        "Gray Matter", 1, color=(255, 83, 187), attributes={"abbreviation": "GM", "mapping": 1}
    )
    assert schema["Left Hippocampus"].attributes == {"abbreviation": "LHip", "hemisphere": "left"}
    assert schema["Right Hippocampus"] == Category(
        "Right Hippocampus", 53, attributes={"hemisphere": "right"}
    )
    assert dict(schema.metadata) == {
        "bids_columns": ("index", "name", "abbreviation", "color", "mapping", "hemisphere"),
        "background": "background",
        "bids_background": {
            "abbreviation": "BG",
            "color": "#000000",
            "mapping": "0",
            "hemisphere": "n/a",
        },
    }


@pytest.mark.parametrize("text", [BIDS_FULL, BIDS_MINIMAL, BIDS_REORDERED])
def test_bids_round_trip_is_byte_exact(tmp_path: Path, text: str) -> None:
    schema = read_dseg_tsv(write(tmp_path / "sub-01_dseg.tsv", text))
    write_dseg_tsv(schema, tmp_path / "out_dseg.tsv")
    assert (tmp_path / "out_dseg.tsv").read_bytes() == text.encode()
    assert read_dseg_tsv(tmp_path / "out_dseg.tsv") == schema
    assert read_dseg_tsv(text) == schema


def test_bids_minimal_table_has_plain_categories() -> None:
    schema = read_dseg_tsv(BIDS_MINIMAL)
    assert list(schema) == [
        Category("Gray Matter", 1),
        Category("White Matter", 2),
        Category("Cerebrospinal Fluid", 3),
    ]
    assert "background" not in schema.metadata


def test_bids_tolerates_crlf_bom_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "crlf_dseg.tsv"
    path.write_bytes(b"\xef\xbb\xbfindex\tname\tcolor\r\n1\tGM\t#FF53BB\r\n\r\n2\tWM\tn/a\r\n")
    assert list(read_dseg_tsv(path)) == [Category("GM", 1, color="#ff53bb"), Category("WM", 2)]


def test_bids_adds_columns_a_schema_needs(tmp_path: Path) -> None:
    schema = Schema(
        [
            Category("lesion", 1, color=(255, 0, 0), attributes={"mapping": 7, "alpha": 0.5}),
            Category("edema", 2, attributes={"abbreviation": "ED"}),
        ],
        metadata={"background": "Clear Label", "bids_columns": ("index", "name")},
    )
    write_dseg_tsv(schema, tmp_path / "out_dseg.tsv")
    assert (tmp_path / "out_dseg.tsv").read_text(encoding="utf-8") == (
        "index\tname\tabbreviation\tcolor\tmapping\n"
        "0\tClear Label\tn/a\tn/a\tn/a\n"
        "1\tlesion\tn/a\t#ff0000\t7\n"
        "2\tedema\tED\tn/a\tn/a\n"
    )


BIDS_BAD = [
    ("", 1, "empty table, expected a header row"),
    ("\n\n", 1, "empty table, expected a header row"),
    ("index\tlabel\n1\tGM\n", 1, "missing required column 'name'"),
    ("name\tcolor\nGM\t#ffffff\n", 1, "missing required column 'index'"),
    ("index\tname\tindex\n1\tGM\t1\n", 1, "column 'index' appears twice"),
    ("index\tname\t\n1\tGM\t\n", 1, "column 3 has no name"),
    ("index\tname\n1\tGM\tGray\n", 2, "3 cells, expected 2"),
    ("index\tname\tcolor\n1\tGM\n", 2, "2 cells, expected 3"),
    ("index\tname\none\tGM\n", 2, "index 'one' is not a non-negative integer"),
    ("index\tname\n-1\tGM\n", 2, "index '-1' is not a non-negative integer"),
    ("index\tname\n1.0\tGM\n", 2, "index '1.0' is not a non-negative integer"),
    ("index\tname\tcolor\n1\tGM\tff53bb\n", 2, "color 'ff53bb' is not #rrggbb"),
    ("index\tname\tcolor\n1\tGM\t#ff53b\n", 2, "color '#ff53b' is not #rrggbb"),
    ("index\tname\tcolor\n1\tGM\t\n", 2, "color '' is not #rrggbb"),
    ("index\tname\tcolor\n0\tbg\tblack\n", 2, "color 'black' is not #rrggbb"),
    ("index\tname\tmapping\n1\tGM\tx\n", 2, "mapping 'x' is not an integer"),
    ("index\tname\n1\tGM\n1\tWM\n", 3, "index 1 is also on line 2"),
    ("index\tname\n1\tGM\n2\tGM\n", 3, "name 'GM' is also on line 2"),
    ("index\tname\n1\t \n", 2, "a category name must be a non-empty string"),
]


@pytest.mark.parametrize(("text", "line", "message"), BIDS_BAD)
def test_bids_malformed_tables_raise_naming_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as info:
        read_dseg_tsv(write(tmp_path / "sub-01_dseg.tsv", text))
    where = f"{tmp_path / 'sub-01_dseg.tsv'}, line {line}: "
    if "empty table" in message:
        where = f"{tmp_path / 'sub-01_dseg.tsv'}: "
    assert str(info.value).startswith(where)


def test_bids_text_errors_are_named_text() -> None:
    with pytest.raises(ValueError, match=r"^<text>, line 2: index 'x' is not"):
        read_dseg_tsv("index\tname\nx\tGM\n")


def test_bids_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "latin1_dseg.tsv").write_bytes(b"index\tname\n1\tLeb\xe9r\n")
    with pytest.raises(ValueError, match=r"latin1_dseg\.tsv: not UTF-8 text"):
        read_dseg_tsv(tmp_path / "latin1_dseg.tsv")
    with pytest.raises(FileNotFoundError):
        read_dseg_tsv(tmp_path / "nothing_dseg.tsv")


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (Schema([Category("a\tb", 1)]), r"column 'name': 'a\\tb' holds a tab or line break"),
        (Schema([Category("a\rb", 1)]), "column 'name': .* holds a tab or line break"),
        (
            Schema([Category("a", 1, attributes={"abbreviation": "x\ny"})]),
            "column 'abbreviation'",
        ),
        (Schema([Category("a", 1, attributes={"mapping": "7"})]), "'a': mapping must be an int"),
        (Schema([Category("a", 1, attributes={"mapping": True})]), "mapping must be an integer"),
        (Schema([], metadata={"background": "bg", "bids_background": "x"}), "must be a mapping"),
    ],
)
def test_bids_unwritable_schemas(tmp_path: Path, schema: Schema, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_dseg_tsv(schema, tmp_path / "out_dseg.tsv")
    assert not os.listdir(tmp_path)


# --- atomic writes -----------------------------------------------------------------------

WRITERS: list[Callable[[Schema, Path], None]] = [
    write_dataset_json,
    write_itksnap,
    write_dseg_tsv,
]
PLAIN = Schema([Category("liver", 1, color=(255, 0, 0)), Category("spleen", 2)])


@pytest.mark.parametrize("writer", WRITERS)
def test_failed_replace_keeps_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: Callable[[Schema, Path], None]
) -> None:
    target = tmp_path / "labels"
    target.write_bytes(b"old contents")

    def refuse(source: Any, destination: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        writer(PLAIN, target)
    assert target.read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["labels"]


@pytest.mark.parametrize("writer", WRITERS)
def test_interrupted_write_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: Callable[[Schema, Path], None]
) -> None:
    def interrupt(descriptor: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        writer(PLAIN, tmp_path / "labels")
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("writer", WRITERS)
def test_rejected_schema_keeps_the_old_file(
    tmp_path: Path, writer: Callable[[Schema, Path], None]
) -> None:
    target = tmp_path / "labels"
    target.write_bytes(b"old contents")
    bad = Schema([Category('tab\t"quote"', 1), Category("gap", 3)])
    with pytest.raises(ValueError, match="cannot"):
        writer(bad, target)
    assert target.read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["labels"]


@pytest.mark.parametrize("writer", WRITERS)
def test_writing_onto_a_folder_fails_cleanly(
    tmp_path: Path, writer: Callable[[Schema, Path], None]
) -> None:
    (tmp_path / "labels").mkdir()
    with pytest.raises(OSError, match="labels"):
        writer(PLAIN, tmp_path / "labels")
    assert os.listdir(tmp_path) == ["labels"]


@pytest.mark.parametrize("writer", WRITERS)
def test_written_files_get_ordinary_permissions(
    tmp_path: Path, writer: Callable[[Schema, Path], None]
) -> None:
    umask = os.umask(0o022)
    try:
        writer(PLAIN, tmp_path / "new")
        assert stat.S_IMODE(os.stat(tmp_path / "new").st_mode) == 0o644
        (tmp_path / "kept").write_bytes(b"")
        os.chmod(tmp_path / "kept", 0o640)
        writer(PLAIN, tmp_path / "kept")
        assert stat.S_IMODE(os.stat(tmp_path / "kept").st_mode) == 0o640
    finally:
        os.umask(umask)


# --- conversions -------------------------------------------------------------------------


def test_real_nnunet_labels_convert_to_itksnap_and_bids(tmp_path: Path) -> None:
    path = shared_data_path("torso_labels.json") / "torso_labels.json"
    schema = read_dataset_json(path)
    assert len(schema) == 11
    assert schema.values == list(range(1, 12))
    assert schema.by_value(1).name == "spleen"

    write_itksnap(schema, tmp_path / "torso_labels.txt")
    from_itksnap = read_itksnap(tmp_path / "torso_labels.txt")
    assert [(c.name, c.value) for c in from_itksnap] == [(c.name, c.value) for c in schema]
    assert all(c.color == (0, 0, 0) for c in from_itksnap)  # no colours: written black
    assert from_itksnap.metadata["background"] == "background"

    write_dseg_tsv(schema, tmp_path / "torso_dseg.tsv")
    from_bids = read_dseg_tsv(tmp_path / "torso_dseg.tsv")
    assert list(from_bids) == list(schema)
    assert from_bids.metadata["background"] == "background"

    # ... and back: the same nnU-Net labels
    original = json.loads(path.read_text(encoding="utf-8"))
    for i, converted in enumerate((from_itksnap, from_bids)):
        write_dataset_json(converted, tmp_path / f"dataset{i}.json")
        back = json.loads((tmp_path / f"dataset{i}.json").read_text(encoding="utf-8"))
        assert back == original


def test_itksnap_to_bids_keeps_colours(tmp_path: Path) -> None:
    schema = read_itksnap(ITKSNAP)
    write_dseg_tsv(schema, tmp_path / "out_dseg.tsv")
    from_bids = read_dseg_tsv(tmp_path / "out_dseg.tsv")
    assert [(c.name, c.value, c.color) for c in from_bids] == [
        (c.name, c.value, c.color) for c in schema
    ]
    assert from_bids.metadata["background"] == "Clear Label"
    assert (tmp_path / "out_dseg.tsv").read_text(encoding="utf-8").splitlines()[:3] == [
        "index\tname\tcolor",
        "0\tClear Label\tn/a",
        "1\tLiver\t#ff0000",
    ]

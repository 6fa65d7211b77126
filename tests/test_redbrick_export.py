"""RedBrick AI export folders against plain numpy references."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from shared_data import shared_data_path

import fastseg
from fastseg.formats.redbrick import read_taxonomy
from fastseg.formats.redbrick_export import (
    ExportSeries,
    OutsidePathError,
    read_export,
    write_binary_export,
    write_binary_semantic_export,
    write_semantic_export,
)

AFFINE = np.diag([0.8, 0.8, 5.0, 1.0])
AFFINE[:3, 3] = (-10.0, 20.0, 3.5)


def taxonomy(names: list[str], seed: int) -> dict[str, Any]:
    """A RedBrick taxonomy whose classIds are a shuffled, gappy set."""
    rng = np.random.default_rng(seed)
    class_ids = rng.permutation(np.arange(2 * len(names)))[: len(names)]
    return {
        "name": "Torso",
        "isNew": True,
        "objectTypes": [
            {"category": name, "classId": int(c), "labelType": "SEGMENTATION", "color": "#102030"}
            for name, c in zip(names, class_ids, strict=True)
        ],
    }


def build_case(
    organs: np.ndarray, names: list[str], seed: int = 0
) -> tuple[np.ndarray, dict[str, Any], dict[str, Any], int, tuple[int, int], dict[int, int]]:
    """Instances = connected components of ``organs`` (values 1.. index ``names``), an
    overlap group of two instances of different organs, and a segmentMap mixing the
    full and short forms.

    Returns instances, taxonomy, segmentMap, the group value, its members and instance
    id -> classId.
    """
    components = fastseg.label(organs)
    instances = np.asarray(components.labels).astype(np.uint16)
    tax = taxonomy(names, seed)
    class_of_name = {o["category"]: o["classId"] for o in tax["objectTypes"]}
    organ_of = {k: int(components.values[k]) for k in range(1, components.count + 1)}
    class_of = {k: class_of_name[names[v - 1]] for k, v in organ_of.items()}
    # Two instances of different organs overlap where the second's first voxels are.
    first = 1
    second = next(k for k in class_of if organ_of[k] != organ_of[first])
    group = components.count + 1
    where = np.argwhere(instances == second)[:40]
    instances[tuple(where.T)] = group
    segment_map: dict[str, Any] = {}
    for k in sorted(class_of):
        name = names[organ_of[k] - 1]
        if k in (first, second):
            segment_map[str(k)] = {
                "category": class_of[k] if k == first else name,
                "attributes": {"confidence": "high"},
                "id": f"uid-{k}",
                "overlappingGroups": [group],
            }
        elif k % 3 == 0:
            segment_map[str(k)] = {"category": name, "id": f"uid-{k}"}
        else:
            segment_map[str(k)] = name
    return instances, tax, segment_map, group, (first, second), class_of


def write_export(
    folder: Path,
    files: dict[str, np.ndarray],
    segment_map: dict[str, Any],
    *,
    affines: dict[str, np.ndarray] | None = None,
    task: str = "patient-001",
    extra_series: list[dict[str, Any]] | None = None,
) -> Path:
    """An export as the SDK writes it: tasks.json and segmentations/<task>/<series>..."""
    paths = []
    for relative, labels in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        fastseg.save(path, labels, affine=(affines or {}).get(relative, AFFINE))
        paths.append(relative)
    series: dict[str, Any] = {
        "name": "CT",
        "items": [f"images/{task}/CT/0001.dcm"],
        "segmentations": paths[0] if len(paths) == 1 else paths,
        "segmentMap": segment_map,
        "binaryMask": False,
        "semanticMask": False,
        "pngMask": False,
    }
    tasks = [
        {
            "taskId": "b7e2c1",
            "name": task,
            "currentStageName": "END",
            "status": "COMPLETED",
            "series": [series, *(extra_series or [])],
            "classification": {"attributes": {}},
        }
    ]
    (folder / "tasks.json").write_text(json.dumps(tasks, indent=2))
    return folder


def semantic_reference(
    instances: np.ndarray, class_of: dict[int, int], groups: dict[int, tuple[int, ...]]
) -> np.ndarray:
    """classId + 1 per instance, overlap voxels to the lowest classId, by lookup."""
    lut = np.zeros(int(instances.max()) + 1, np.int64)
    for ident in sorted(class_of, key=lambda k: class_of[k]):
        lut[ident] = class_of[ident] + 1
    for group, members in groups.items():
        lut[group] = min(class_of[m] for m in members) + 1
    return lut[instances]


def binary_reference(instances: np.ndarray, ident: int, groups: dict[int, tuple[int, ...]]):
    expected = instances == ident
    for group, members in groups.items():
        if ident in members:
            expected |= instances == group
    return expected


def sdk_segment_map(
    segment_map: dict[str, Any],
    class_of: dict[int, int],
    name_of_class: dict[int, str],
    *,
    semantic: bool,
    masks: dict[str, str],
) -> dict[str, Any]:
    """The segmentMap the RedBrick SDK's export writes for these instances, following
    redbrick/utils/rb_label_utils.py (dicom_rb_series): one entry per label with id,
    category, attributes, group and readOnly in that order; keyed by instance id, or in
    the semantic layouts by classId + 1 (a later label of the class replaces an earlier
    one: the SDK compares the int key with the str keys it wrote); "mask" where the
    layout has a file named after the key; never overlappingGroups when masks are
    exported."""
    written: dict[str, Any] = {}
    for key, raw in segment_map.items():
        entry = raw if isinstance(raw, dict) else {"category": raw}
        category = entry["category"]
        if isinstance(category, int):
            category = name_of_class[category]
        label: dict[str, Any] = {}
        if entry.get("id"):
            label["id"] = entry["id"]
        label["category"] = category
        if entry.get("attributes"):
            label["attributes"] = entry["attributes"]
        instance = str(class_of[int(key)] + 1) if semantic else key
        if instance in masks:
            label["mask"] = masks[instance]
        written[instance] = label
    return written


def check_export(tmp_path: Path, organs: np.ndarray, names: list[str]) -> None:
    instances, tax, segment_map, group, members, class_of = build_case(organs, names)
    schema = read_taxonomy(tax)
    groups = {group: members}
    source = write_export(
        tmp_path / "export", {"segmentations/patient-001/CT.nii.gz": instances}, segment_map
    )

    (series,) = read_export(source, schema=schema)
    assert series.task == "patient-001"
    assert series.name == "CT"
    assert series.segmentations == [(source / "segmentations/patient-001/CT.nii.gz").resolve()]
    assert series.segmentations[0].is_absolute()
    assert not series.binary_mask
    assert not series.semantic_mask
    assert sorted(series.segment_map) == sorted(class_of)
    assert dict(series.segment_map.groups) == groups
    assert series.series["segmentMap"] == segment_map

    # Semantic.
    out = tmp_path / "semantic"
    tasks_file = write_semantic_export([series], schema, out)
    tasks = json.loads(tasks_file.read_text())
    assert [t["name"] for t in tasks] == ["patient-001"]
    assert tasks[0]["taskId"] == "b7e2c1"
    assert tasks[0]["status"] == "COMPLETED"
    (written,) = tasks[0]["series"]
    assert written["segmentations"] == ["segmentations/patient-001/CT.nii.gz"]
    assert written["semanticMask"] is True
    assert written["binaryMask"] is False
    assert written["pngMask"] is False
    assert written["items"] == series.series["items"]
    name_of_class = {o["classId"]: o["category"] for o in tax["objectTypes"]}
    expected_map = sdk_segment_map(segment_map, class_of, name_of_class, semantic=True, masks={})
    assert written["segmentMap"] == expected_map
    assert list(written["segmentMap"]) == sorted(expected_map, key=int)
    image = fastseg.load(out / written["segmentations"][0])
    np.testing.assert_array_equal(image.labels, semantic_reference(instances, class_of, groups))
    np.testing.assert_allclose(image.affine, AFFINE)

    # Binary.
    out = tmp_path / "binary"
    tasks = json.loads(write_binary_export([series], out).read_text())
    (written,) = tasks[0]["series"]
    assert written["binaryMask"] is True
    assert written["semanticMask"] is False
    present = sorted(k for k in class_of if binary_reference(instances, k, groups).any())
    masks = {str(k): f"segmentations/patient-001/CT/instance-{k}.nii.gz" for k in present}
    assert written["segmentMap"] == sdk_segment_map(
        segment_map, class_of, name_of_class, semantic=False, masks=masks
    )
    for entry in written["segmentMap"].values():
        assert list(entry) == [k for k in ("id", "category", "attributes", "mask") if k in entry]
    assert written["segmentations"] == list(masks.values())
    for ident in present:
        mask = fastseg.load(out / f"segmentations/patient-001/CT/instance-{ident}.nii.gz")
        assert mask.labels.dtype == np.uint8
        np.testing.assert_array_equal(mask.labels, binary_reference(instances, ident, groups))
        np.testing.assert_allclose(mask.affine, AFFINE)

    # Binary semantic: one mask per category present, category-<classId + 1>.
    by_category = tmp_path / "binary-semantic"
    tasks = json.loads(write_binary_semantic_export([series], schema, by_category).read_text())
    (written,) = tasks[0]["series"]
    assert written["binaryMask"] is True
    assert written["semanticMask"] is True
    expected = semantic_reference(instances, class_of, groups)
    values = sorted(int(v) for v in np.unique(expected) if v)
    assert written["segmentations"] == [
        f"segmentations/patient-001/CT/category-{v}.nii.gz" for v in values
    ]
    masks = {str(v): f"segmentations/patient-001/CT/category-{v}.nii.gz" for v in values}
    assert written["segmentMap"] == sdk_segment_map(
        segment_map, class_of, name_of_class, semantic=True, masks=masks
    )
    for value in values:
        mask = fastseg.load(by_category / f"segmentations/patient-001/CT/category-{value}.nii.gz")
        np.testing.assert_array_equal(mask.labels, expected == value)

    # The binary export reads back and gives the same semantic map.
    (again,) = read_export(out, schema=schema)
    assert again.binary_mask
    assert len(again.segmentations) == len(present)
    tasks = json.loads(write_semantic_export([again], schema, tmp_path / "round").read_text())
    image = fastseg.load(tmp_path / "round" / tasks[0]["series"][0]["segmentations"][0])
    np.testing.assert_array_equal(image.labels, semantic_reference(instances, class_of, groups))


def synthetic_organs(seed: int, shape: tuple[int, int, int] = (24, 20, 9)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    organs = np.zeros(shape, np.uint8)
    for value in range(1, 6):
        for _ in range(2):
            x, y, z = (int(rng.integers(0, s - 3)) for s in shape)
            organs[x : x + int(rng.integers(2, 7)), y : y + int(rng.integers(2, 6)), z : z + 3] = (
                value
            )
    return np.asfortranarray(organs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synthetic_export(tmp_path: Path, seed: int) -> None:
    check_export(tmp_path, synthetic_organs(seed), ["Liver", "Spleen", "Kidney", "Aorta", "Bone"])


def test_torso_export(tmp_path: Path) -> None:
    folder = shared_data_path("torso_labels.nii.gz", "torso_labels.json")
    # Every other voxel in plane: all organs stay, and the binary layout (a gzip file per
    # instance) writes a quarter of the bytes.
    organs = np.asfortranarray(fastseg.load(folder / "torso_labels.nii.gz").labels[::2, ::2])
    labels = json.loads((folder / "torso_labels.json").read_text())["labels"]
    names = [name for name, value in sorted(labels.items(), key=lambda kv: kv[1]) if value]
    check_export(tmp_path, organs, names)


def small_case(tmp_path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any], Any]:
    tax = taxonomy(["Liver", "Spleen", "Kidney"], 3)
    schema = read_taxonomy(tax)
    first = np.zeros((6, 5, 4), np.uint8)
    first[1:3, 1:3, 1:3] = 1
    first[4, :, :] = 2
    second = np.zeros_like(first)
    second[2:5, 2:4, 2] = 3  # overlaps instances 1 and 2
    second[0, 0, 0] = 4
    segment_map = {"1": "Liver", "2": "Kidney", "3": {"category": "Spleen"}, "4": "Liver"}
    return first, second, segment_map, schema


def test_several_files_make_one_semantic_map(tmp_path: Path) -> None:
    first, second, segment_map, schema = small_case(tmp_path)
    files = {"segmentations/t/CT/a.nii.gz": first, "segmentations/t/CT/b.nii.gz": second}
    source = write_export(tmp_path / "in", files, segment_map, task="t")
    (series,) = read_export(source, schema=schema)
    assert [p.name for p in series.segmentations] == ["a.nii.gz", "b.nii.gz"]
    value = {k: schema[segment_map[str(k)] if k != 3 else "Spleen"].value for k in (1, 2, 3, 4)}
    expected = np.zeros(first.shape, np.int64)
    for volume in (first, second):
        for k, v in value.items():
            here = volume == k
            expected[here] = np.where(expected[here] == 0, v, np.minimum(expected[here], v))
    tasks = json.loads(write_semantic_export([series], schema, tmp_path / "out").read_text())
    assert tasks[0]["series"][0]["segmentations"] == ["segmentations/t/CT.nii.gz"]
    np.testing.assert_array_equal(
        fastseg.load(tmp_path / "out/segmentations/t/CT.nii.gz").labels, expected
    )

    write_binary_export([series], tmp_path / "bin")
    for k in (1, 2, 3, 4):
        mask = fastseg.load(tmp_path / f"bin/segmentations/t/CT/instance-{k}.nii.gz").labels
        np.testing.assert_array_equal(mask, (first == k) | (second == k))


def test_series_without_segmentations_are_skipped(tmp_path: Path) -> None:
    first, _, segment_map, schema = small_case(tmp_path)
    empty = [{"name": "MR", "items": ["x.dcm"]}, {"name": "PET", "segmentations": []}]
    source = write_export(
        tmp_path, {"seg/t/CT.nii.gz": first}, segment_map, task="t", extra_series=empty
    )
    assert [s.name for s in read_export(source, schema=schema)] == ["CT"]


def test_missing_tasks_json(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"tasks\.json"):
        read_export(tmp_path)


def test_missing_segmentation_file(tmp_path: Path) -> None:
    first, _, segment_map, _ = small_case(tmp_path)
    source = write_export(tmp_path, {"seg/t/CT.nii.gz": first}, segment_map, task="t")
    (source / "seg/t/CT.nii.gz").unlink()
    with pytest.raises(ValueError, match=r"task 't'.*CT\.nii\.gz does not exist"):
        read_export(source)


def test_unknown_ids_name_the_file(tmp_path: Path) -> None:
    first, _, segment_map, schema = small_case(tmp_path)
    first[0, 0, 0] = 9
    source = write_export(tmp_path / "in", {"seg/t/CT.nii.gz": first}, segment_map, task="t")
    series = read_export(source, schema=schema)
    with pytest.raises(ValueError, match=r"CT\.nii\.gz.*segmentMap lacks: \[9\]"):
        write_semantic_export(series, schema, tmp_path / "out")
    with pytest.raises(ValueError, match=r"CT\.nii\.gz.*segmentMap lacks: \[9\]"):
        write_binary_export(series, tmp_path / "out")


def test_unknown_category_names_the_file(tmp_path: Path) -> None:
    first, _, segment_map, schema = small_case(tmp_path)
    segment_map["4"] = "Heart"
    source = write_export(tmp_path / "in", {"seg/t/CT.nii.gz": first}, segment_map, task="t")
    series = read_export(source)  # without the schema nothing checks the names yet
    with pytest.raises(ValueError, match=r"CT\.nii\.gz.*'Heart' is not in the schema"):
        write_semantic_export(series, schema, tmp_path / "out")


def test_shape_mismatch(tmp_path: Path) -> None:
    first, second, segment_map, schema = small_case(tmp_path)
    files = {"s/a.nii.gz": first, "s/b.nii.gz": second[:, :, :3]}
    series = read_export(write_export(tmp_path, files, segment_map), schema=schema)
    with pytest.raises(ValueError, match=r"b\.nii\.gz.*shape \(6, 5, 3\) differs"):
        write_semantic_export(series, schema, tmp_path / "out")


@pytest.mark.parametrize(("shift", "fails"), [(5e-5, False), (1e-3, True)])
def test_affine_tolerance(tmp_path: Path, shift: float, fails: bool) -> None:
    first, second, segment_map, schema = small_case(tmp_path)
    other = AFFINE.copy()
    other[0, 3] += shift
    files = {"s/a.nii.gz": first, "s/b.nii.gz": second}
    source = write_export(tmp_path, files, segment_map, affines={"s/b.nii.gz": other})
    series = read_export(source, schema=schema)
    if fails:
        with pytest.raises(ValueError, match=r"b\.nii\.gz.*affine differs"):
            write_binary_export(series, tmp_path / "out")
    else:
        write_binary_export(series, tmp_path / "out")


def test_export_series_is_frozen(tmp_path: Path) -> None:
    first, _, segment_map, schema = small_case(tmp_path)
    (series,) = read_export(
        write_export(tmp_path, {"s/a.nii.gz": first}, segment_map), schema=schema
    )
    assert isinstance(series, ExportSeries)
    with pytest.raises(AttributeError):
        series.name = "other"  # type: ignore[misc]


def test_semantic_export_converts_to_consecutive_labels(tmp_path: Path) -> None:
    """A semantic export (values classId + 1, with gaps) renumbers to 1..n through its
    segment map, as the nnU-Net layout needs; binary-semantic files read back too."""
    from fastseg.cli.schema import consecutive

    tax = {
        "objectTypes": [
            {"category": "Liver", "classId": 2, "labelType": "SEGMENTATION"},
            {"category": "Spleen", "classId": 7, "labelType": "SEGMENTATION"},
        ]
    }
    schema = read_taxonomy(tax)
    instances = np.zeros((6, 5, 4), np.uint8)
    instances[1:3, 1:3, 1:3] = 1
    instances[4, 0:2, 0] = 2
    instances[0, 4, 3] = 3
    segment_map = {"1": "Liver", "2": {"category": "Spleen", "id": "s"}, "3": "Liver"}
    source = write_export(
        tmp_path / "export", {"seg/t/CT.nii.gz": instances}, segment_map, task="t"
    )
    (series,) = read_export(source, schema=schema)
    semantic_folder = tmp_path / "semantic"
    write_semantic_export([series], schema, semantic_folder)
    write_binary_semantic_export([series], schema, tmp_path / "binary-semantic")
    lut = np.array([0, 3, 8, 3])
    for folder in (semantic_folder, tmp_path / "binary-semantic"):
        (semantic,) = read_export(folder, schema=schema)
        assert semantic.semantic_mask
        out = tmp_path / f"consecutive-{folder.name}"
        tasks = json.loads(write_semantic_export([semantic], consecutive(schema), out).read_text())
        written = tasks[0]["series"][0]
        labels = fastseg.load(out / written["segmentations"][0]).labels
        np.testing.assert_array_equal(labels, np.array([0, 1, 2, 1])[instances])
        assert {k: v["category"] for k, v in written["segmentMap"].items()} == {
            "1": "Liver",
            "2": "Spleen",
        }
    np.testing.assert_array_equal(
        fastseg.load(semantic_folder / "segmentations/t/CT.nii.gz").labels, lut[instances]
    )
    with pytest.raises(ValueError, match="semantic mask"):
        write_binary_export(read_export(semantic_folder, schema=schema), tmp_path / "nope")


# ----------------------------------------------------------------- untrusted tasks.json


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "link", "item"])
def test_paths_out_of_the_export_are_refused(tmp_path: Path, kind: str) -> None:
    """tasks.json is not trusted: a segmentation or item outside the folder refuses the
    whole file (also with on_error), naming the task, series, key and path."""
    first, _, segment_map, _ = small_case(tmp_path)
    outside = tmp_path / "elsewhere" / "ct.nii.gz"
    outside.parent.mkdir()
    fastseg.save(outside, first)
    export = write_export(tmp_path / "export", {"seg/t/CT.nii.gz": first}, segment_map, task="t")
    tasks = json.loads((export / "tasks.json").read_text())
    series = tasks[0]["series"][0]
    listed = {
        "absolute": str(outside),
        "dotdot": "../elsewhere/ct.nii.gz",
        "link": "seg/ln.nii.gz",
        "item": "../elsewhere/ct.nii.gz",
    }[kind]
    key = "items" if kind == "item" else "segmentations"
    if kind == "link":
        (export / "seg" / "ln.nii.gz").symlink_to(outside)
    series[key] = [listed]
    (export / "tasks.json").write_text(json.dumps(tasks))
    errors: list[ValueError] = []
    with pytest.raises(OutsidePathError) as raised:
        read_export(export, on_error=errors.append)
    assert errors == []
    message = str(raised.value)
    why = {"absolute": "is absolute", "link": "(through a link)"}.get(kind, "(..)")
    assert f"{export.resolve() / 'tasks.json'}: task 't', series 'CT': {key} path {listed} " in (
        message
    )
    assert why in message
    assert message.endswith("allow_outside_paths=True reads it")
    assert isinstance(raised.value, ValueError)
    (read,) = read_export(export, allow_outside_paths=True)
    expected = outside if key == "segmentations" else export / "seg/t/CT.nii.gz"
    assert read.segmentations == [expected.resolve()]


def test_item_urls_and_paths_inside_are_read(tmp_path: Path) -> None:
    first, _, segment_map, _ = small_case(tmp_path)
    export = write_export(tmp_path, {"seg/t/CT.nii.gz": first}, segment_map, task="t")
    tasks = json.loads((export / "tasks.json").read_text())
    tasks[0]["series"][0]["items"] = ["https://example.org/a/../ct.dcm", "s3://bucket/ct.dcm"]
    tasks[0]["series"][0]["segmentations"] = "./seg/t/CT.nii.gz"
    (export / "tasks.json").write_text(json.dumps(tasks))
    (series,) = read_export(export)
    assert series.segmentations == [(export / "seg/t/CT.nii.gz").resolve()]


@pytest.mark.parametrize("depth", [65, 100_000])
def test_deeply_nested_tasks_json_is_refused(tmp_path: Path, depth: int) -> None:
    (tmp_path / "tasks.json").write_text("[" * depth + "]" * depth)
    with pytest.raises(ValueError, match=r"tasks\.json: JSON nested more than 64 levels deep"):
        read_export(tmp_path)
    # 64 levels are JSON like any other: a list of (nested, empty) tasks.
    (tmp_path / "tasks.json").write_text("[" * 64 + "]" * 64)
    with pytest.raises(ValueError, match="task 0 is not an object"):
        read_export(tmp_path)

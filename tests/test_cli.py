"""The fastseg command line end to end, on NIfTI files written in tmp_path and the shared
volumes: results against numpy/scipy references, every error path, output rules,
worker processes and a dask.distributed cluster."""

from __future__ import annotations

import copy
import csv
import json
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import scipy.ndimage as ndi

import fastseg
from fastseg.cli import main

SPACING = (0.5, 0.75, 2.0)
VOXEL = 0.5 * 0.75 * 2.0
# A RedBrick taxonomy with a gap in its classIds: values (classId + 1) are 1, 2 and 5.
TAXONOMY = {
    "name": "test",
    "objectTypes": [
        {"category": "Vertebra", "classId": 0, "labelType": "SEGMENTATION", "color": "#ffe0a0"},
        {"category": "Disc", "classId": 1, "labelType": "SEGMENTATION"},
        {"category": "Liver", "classId": 4, "labelType": "SEGMENTATION"},
    ],
}
SEGMENT_MAP = {"1": "Vertebra", "2": "Vertebra", "3": "Disc", "4": "Liver", "5": "Vertebra"}
CATEGORY_VALUE = {"Vertebra": 1, "Disc": 2, "Liver": 5}


def blocky(seed: int, high: int = 6) -> np.ndarray:
    """24 x 20 x 10 ids 0..high-1 in 4 x 4 x 2 blocks (many components per id), F order."""
    coarse = np.random.default_rng(seed).integers(0, high, (6, 5, 5), dtype=np.uint8)
    return np.asfortranarray(coarse.repeat(4, 0).repeat(4, 1).repeat(2, 2))


def save(path: Path, labels: np.ndarray, spacing: tuple[float, ...] = SPACING) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fastseg.save(path, labels, affine=np.diag([*spacing, 1.0]))
    return path


def read(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(path).dataobj)


@dataclass
class Case:
    folder: Path
    inputs: list[Path]
    taxonomy: Path
    segment_map: Path
    dataset: Path


@pytest.fixture
def case(tmp_path: Path) -> Case:
    folder = tmp_path / "in"
    inputs = [save(folder / f"case{i}.nii.gz", blocky(i)) for i in range(3)]
    (folder / "taxonomy.json").write_text(json.dumps(TAXONOMY))
    (folder / "segmentMap.json").write_text(json.dumps(SEGMENT_MAP))
    labels = {"background": 0, "Vertebra": 1, "Disc": 2, "Liver": 3}
    (folder / "dataset.json").write_text(json.dumps({"labels": labels}))
    return Case(
        folder,
        inputs,
        folder / "taxonomy.json",
        folder / "segmentMap.json",
        folder / "dataset.json",
    )


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, out, err


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.read_text().splitlines()))


def failures(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("failed: ")]


def semantic_reference(instances: np.ndarray) -> np.ndarray:
    lut = np.zeros(256, np.uint8)
    for ident, name in SEGMENT_MAP.items():
        lut[int(ident)] = CATEGORY_VALUE[name]
    return lut[instances]


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components at full connectivity (26 in 3-D)."""
    labelled, count = ndi.label(mask, structure=np.ones((3,) * mask.ndim, bool))
    return labelled, int(count)


def largest_per_label(labels: np.ndarray) -> np.ndarray:
    """Keep the largest component of every value (ties: the first in C order)."""
    out = np.zeros_like(labels)
    for value in np.unique(labels[labels != 0]):
        labelled, count = components(labels == value)
        sizes = np.bincount(labelled.ravel(), minlength=count + 1)[1:]
        out[labelled == int(np.argmax(sizes)) + 1] = value
    return out


def dust_reference(labels: np.ndarray, min_volume: float, voxel: float) -> np.ndarray:
    out = labels.copy()
    for value in np.unique(labels[labels != 0]):
        labelled, count = components(labels == value)
        sizes = np.bincount(labelled.ravel(), minlength=count + 1)
        small = np.flatnonzero(sizes * voxel < min_volume)
        out[np.isin(labelled, small[small > 0])] = 0
    return out


def same_partition(found: np.ndarray, expected: np.ndarray) -> bool:
    """The same voxels grouped together (and the same background), whatever the ids."""
    if not np.array_equal(found == 0, expected == 0):
        return False
    pairs = np.unique(np.stack([found.ravel(), expected.ravel()]), axis=1)
    return pairs.shape[1] == np.unique(found).size == np.unique(expected).size


# --------------------------------------------------------------------------- help


COMMANDS = (
    "demo",
    "info",
    "label",
    "to-semantic",
    "to-instances",
    "stats",
    "relabel",
    "clean",
    "schema",
    "redbrick",
    "warmup",
)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, command, "--help")
    assert status == 0
    assert "examples:\n  fastseg " + command in out
    assert "exit status:" in out


def test_top_level_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--help")
    assert status == 0
    assert all(command in out for command in COMMANDS)
    assert run(capsys, "--version")[:2] == (0, f"fastseg {fastseg.__version__}\n")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["no-such-command"],
        ["info"],
        ["clean", "x.nii.gz", "-j", "-3", "--largest-k", "1"],
        ["clean", "x.nii.gz", "--connectivity", "5", "--largest-k", "1"],
        ["relabel", "x.nii.gz", "--renumber", "--missing", "minus"],
        ["to-semantic", "x.nii.gz", "--schema", "s.json"],
        ["clean", "x.nii.gz", "--overwrite", "--skip-existing", "--dust", "3"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, *argv)
    assert status == 2
    assert "error:" in err


def test_usage_errors_are_one_line_and_exit_2(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    checks = [
        (["clean", case.inputs[0]], "say what to clean"),
        (["info", case.inputs[0], "--schema", broken], "broken.json"),
        (["info", case.inputs[0], "--schema", tmp_path / "absent.json"], "absent.json"),
        (
            ["to-semantic", case.inputs[0], "--schema", case.taxonomy, "--segment-map", broken],
            "broken.json",
        ),
        (["relabel", case.inputs[0], "--mapping", broken], "broken.json"),
        (["stats", *case.inputs[:2], "--image", case.inputs[0]], "--image goes with a single"),
        (["stats", case.inputs[0], "--image-name", "{stem}.nii"], "goes with --images"),
        (["stats", case.inputs[0], "--images", tmp_path / "none"], "none: no such folder"),
        (
            ["stats", case.inputs[0], "--images", tmp_path, "--image-name", "{case}.nii"],
            "no placeholder {case}",
        ),
        (["schema", case.taxonomy, tmp_path / "out.json"], "--to"),
    ]
    for argv, expected in checks:
        status, _, err = run(capsys, *argv)
        assert status == 2, argv
        assert expected in err
        assert len(err.strip().splitlines()) == 1, err
        assert err.startswith(f"fastseg {argv[0]}: error: ")


# ---------------------------------------------------------------------------- info


def test_info_reports_ids_counts_volumes_and_names(
    case: Case, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(
        capsys, "info", case.folder, "--json", "--segment-map", case.segment_map,
        "--schema", case.taxonomy,
    )  # fmt: skip
    assert status == 0
    reports = [json.loads(line) for line in out.splitlines()]
    assert [r["file"] for r in reports] == [str(p) for p in case.inputs]
    for report, path in zip(reports, case.inputs, strict=True):
        labels = read(path)
        ids, counts = np.unique(labels, return_counts=True)
        assert report["shape"] == [24, 20, 10]
        assert report["dtype"] == "uint8"
        assert report["spacing"] == pytest.approx(SPACING)
        assert [row["id"] for row in report["ids"]] == ids.tolist()
        assert [row["voxels"] for row in report["ids"]] == counts.tolist()
        assert [row["volume"] for row in report["ids"]] == pytest.approx(counts * VOXEL)
        names = ["background"] + [SEGMENT_MAP[str(i)] for i in ids[1:]]
        assert [row["name"] for row in report["ids"]] == names
    assert "3 files: 3 done, 0 failed, 0 skipped" in err


def test_info_text_names_semantic_values_through_a_schema(
    case: Case, capsys: pytest.CaptureFixture[str]
) -> None:
    semantic = save(case.folder / "semantic.nii.gz", np.array([[[0, 1, 2, 3]]], np.uint8))
    status, out, _ = run(capsys, "info", semantic, "--schema", case.dataset)
    assert status == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"{semantic}: 1 x 1 x 4 uint8, spacing 0.5 x 0.75 x 2 mm")
    assert [line.split()[-1] for line in lines[2:]] == ["background", "Vertebra", "Disc", "Liver"]


@pytest.mark.parametrize("shared_data", [("torso_labels.nii.gz",)], indirect=True)
def test_info_and_stats_on_the_torso_volume(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torso, names = shared_data / "torso_labels.nii.gz", shared_data / "torso_labels.json"
    image = nib.load(torso)
    labels = np.asanyarray(image.dataobj)
    voxel = float(np.prod(image.header.get_zooms()[:3]))
    status, out, _ = run(capsys, "info", torso, "--schema", names, "--json")
    assert status == 0
    (report,) = [json.loads(line) for line in out.splitlines()]
    expected = json.loads(names.read_text())["labels"]
    assert {row["name"]: row["id"] for row in report["ids"]} == expected
    counts = np.bincount(labels.ravel())
    assert [row["voxels"] for row in report["ids"]] == counts.tolist()

    table = tmp_path / "torso.csv"
    status, _, _ = run(capsys, "stats", torso, "--schema", names, "-o", table)
    assert status == 0
    rows = read_csv(table)
    assert [r["name"] for r in rows] == [n for n in expected if n != "background"]
    assert [int(r["voxel_count"]) for r in rows] == counts[1:].tolist()
    assert [float(r["volume"]) for r in rows] == pytest.approx(counts[1:] * voxel)


# ----------------------------------------------------------- conversions


def test_to_semantic_matches_a_lookup_table(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "semantic"
    status, _, err = run(
        capsys, "to-semantic", case.folder, "-o", out, "--schema", case.taxonomy,
        "--segment-map", case.segment_map,
    )  # fmt: skip
    assert status == 0, err
    for path in case.inputs:
        written = nib.load(out / path.name)
        assert np.array_equal(np.asanyarray(written.dataobj), semantic_reference(read(path)))
        assert np.allclose(written.affine, nib.load(path).affine)
        assert written.get_data_dtype() == np.uint8


def test_to_semantic_fails_a_file_with_ids_the_segment_map_lacks(
    case: Case, capsys: pytest.CaptureFixture[str]
) -> None:
    stranger = save(case.folder / "stranger.nii.gz", np.array([[[0, 1, 9]]], np.uint8))
    status, _, err = run(
        capsys, "to-semantic", stranger, *case.inputs[:1], "--schema", case.taxonomy,
        "--segment-map", case.segment_map,
    )  # fmt: skip
    assert status == 1
    (line,) = failures(err)
    assert line.startswith(f"failed: {stranger}: ")
    assert "9" in line
    assert not (case.folder / "stranger_semantic.nii.gz").exists()
    assert (case.folder / "case0_semantic.nii.gz").exists()
    status, _, _ = run(
        capsys, "to-semantic", stranger, "--schema", case.taxonomy, "--segment-map",
        case.segment_map, "--unknown", "background",
    )  # fmt: skip
    assert status == 0
    assert read(case.folder / "stranger_semantic.nii.gz").ravel().tolist() == [0, 1, 0]


def test_to_instances_are_connected_components_of_every_category(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    semantic = save(case.folder / "semantic" / "s.nii.gz", semantic_reference(blocky(7)))
    out = tmp_path / "instances.nii.gz"
    status, _, err = run(capsys, "to-instances", semantic, "-o", out, "--schema", case.taxonomy)
    assert status == 0, err
    instances = read(out)
    segments = json.loads((tmp_path / "instances.segmentMap.json").read_text())
    labels = read(semantic)
    for name, value in CATEGORY_VALUE.items():
        mask = labels == value
        expected, count = components(mask)
        assert same_partition(np.where(mask, instances, 0), expected)
        assert sum(1 for v in segments.values() if v == name) == count
    status, _, _ = run(
        capsys, "to-instances", semantic, "-o", tmp_path / "per.nii.gz", "--schema",
        case.taxonomy, "--per-category",
    )  # fmt: skip
    assert status == 0
    assert same_partition(read(tmp_path / "per.nii.gz"), labels)


def test_relabel_with_a_mapping_file_and_renumber(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = read(case.inputs[0])
    (tmp_path / "merge.json").write_text(json.dumps({"1": 10, "2": 10, "5": 7}))
    (tmp_path / "merge.csv").write_text("old,new\n1,10\n2,10\n5,7\n")
    expected = source.copy()
    expected[np.isin(source, [1, 2])] = 10
    expected[source == 5] = 7
    for name in ("merge.json", "merge.csv"):
        target = tmp_path / f"{name}.nii.gz"
        status, _, _ = run(
            capsys, "relabel", case.inputs[0], "--mapping", tmp_path / name, "-o", target
        )
        assert status == 0
        assert np.array_equal(read(target), expected)

    status, _, err = run(
        capsys, "relabel", case.inputs[0], "--mapping", tmp_path / "merge.json", "--missing",
        "error", "-o", tmp_path / "strict.nii.gz",
    )  # fmt: skip
    assert status == 1
    (line,) = failures(err)
    assert "3" in line.split(":", 2)[2]
    assert not (tmp_path / "strict.nii.gz").exists()

    sparse = save(tmp_path / "sparse.nii.gz", (source.astype(np.uint32) * 1000))
    status, _, _ = run(capsys, "relabel", sparse, "--renumber")
    assert status == 0
    old = np.unique(source)
    assert np.array_equal(read(tmp_path / "sparse_relabeled.nii.gz"), np.searchsorted(old, source))


def test_renumber_writes_the_old_to_new_mapping_beside_each_output(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sparse = tmp_path / "sparse"
    sources = {
        path.name: save(sparse / path.name, read(path).astype(np.uint32) * 7919 + (read(path) > 0))
        for path in case.inputs
    }
    out = tmp_path / "out"
    status, _, err = run(capsys, "relabel", sparse, "-o", out, "--renumber")
    assert status == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*sources, *(name.replace(".nii.gz", ".mapping.json") for name in sources)]
    )
    for name, path in sources.items():
        source, renumbered = read(path), read(out / name)
        mapping_file = out / name.replace(".nii.gz", ".mapping.json")
        mapping = {int(old): new for old, new in json.loads(mapping_file.read_text()).items()}
        old_ids = np.unique(source)
        assert sorted(mapping) == old_ids.tolist()
        for old in old_ids:
            assert np.unique(renumbered[source == old]).tolist() == [mapping[int(old)]]
        assert sorted(mapping.values()) == list(range(old_ids.size))  # 0 stays 0, then 1..n

        # The file is what --mapping reads: applied to the input it gives the output, and
        # inverted to the output it gives the input back.
        again = tmp_path / f"again_{name}"
        assert run(capsys, "relabel", path, "--mapping", mapping_file, "-o", again)[0] == 0
        assert np.array_equal(read(again), renumbered)
        inverse = tmp_path / f"inverse_{name}.json"
        inverse.write_text(json.dumps({str(new): old for old, new in mapping.items()}))
        back = tmp_path / f"back_{name}"
        assert run(capsys, "relabel", out / name, "--mapping", inverse, "-o", back)[0] == 0
        assert np.array_equal(read(back), source)
    # A mapping file relabels; it writes no mapping of its own.
    assert not list(tmp_path.glob("again_*.mapping.json"))


def test_renumber_mapping_follows_the_output_rules(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = case.inputs[0]
    target, mapping = tmp_path / "new.nii.gz", tmp_path / "new.mapping.json"
    mapping.write_text("earlier mapping")
    status, _, err = run(capsys, "relabel", source, "-o", target, "--renumber")
    assert status == 1
    (line,) = failures(err)
    assert f"the output {mapping} exists" in line
    assert mapping.read_text() == "earlier mapping"
    assert not target.exists()
    # Only the mapping exists: --skip-existing does not skip, the input is not done.
    status, _, err = run(capsys, "relabel", source, "-o", target, "--renumber", "--skip-existing")
    assert status == 1
    assert mapping.read_text() == "earlier mapping"
    assert not target.exists()

    status, _, _ = run(capsys, "relabel", source, "-o", target, "--renumber", "--overwrite")
    assert status == 0
    expected, expected_mapping = fastseg.renumber(read(source))
    assert np.array_equal(read(target), expected)
    assert json.loads(mapping.read_text()) == {str(k): v for k, v in expected_mapping.items()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "new.mapping.json", "new.nii.gz"]

    status, _, err = run(capsys, "relabel", source, "-o", target, "--renumber", "--skip-existing")
    assert status == 0
    assert "0 done, 0 failed, 1 skipped" in err
    # a.nii and a.nii.gz would write the same a.mapping.json: the second input fails.
    first = save(tmp_path / "pair" / "a.nii", blocky(2))
    second = save(tmp_path / "pair" / "a.nii.gz", blocky(3))
    status, _, err = run(capsys, "relabel", first, second, "-o", tmp_path / "p", "--renumber")
    assert status == 1
    (line,) = failures(err)
    assert line == f"failed: {second}: {first} already writes the output " + str(
        tmp_path / "p" / "a.mapping.json"
    )
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["a.mapping.json", "a.nii"]


# -------------------------------------------------------------------------- clean


def test_clean_largest_k_and_dust_match_scipy(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, _ = run(capsys, "clean", case.folder, "-o", tmp_path / "largest", "--largest-k", "1")
    assert status == 0
    for path in case.inputs:
        assert np.array_equal(read(tmp_path / "largest" / path.name), largest_per_label(read(path)))
    # 32 voxels (one block) are 24 mm³ here: --dust-mm3 25 removes single blocks.
    status, _, _ = run(capsys, "clean", case.folder, "-o", tmp_path / "dust", "--dust-mm3", "25")
    assert status == 0
    for path in case.inputs:
        expected = dust_reference(read(path), 25, VOXEL)
        assert np.array_equal(read(tmp_path / "dust" / path.name), expected)
        assert not np.array_equal(expected, read(path))
    status, _, _ = run(
        capsys, "clean", case.inputs[0], "-o", tmp_path / "voxels.nii.gz", "--dust", "33"
    )
    assert status == 0
    assert np.array_equal(
        read(tmp_path / "voxels.nii.gz"), dust_reference(read(case.inputs[0]), 33, 1)
    )


def test_clean_fill_holes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = np.zeros((9, 9, 9), np.uint8)
    labels[1:8, 1:8, 1:8] = 2
    labels[3:6, 3:6, 3:6] = 0
    labels[4, 4, 4] = 3  # an island inside the hole stays
    source = save(tmp_path / "hollow.nii.gz", labels)
    status, _, _ = run(capsys, "clean", source, "--fill-holes")
    assert status == 0
    expected = labels.copy()
    expected[ndi.binary_fill_holes(labels == 2) & (labels == 0)] = 2
    assert np.array_equal(read(tmp_path / "hollow_clean.nii.gz"), expected)


# -------------------------------------------------------------------------- stats


def test_stats_table_as_csv_json_and_on_stdout(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, _ = run(
        capsys, "stats", *case.inputs, "-o", tmp_path / "t.csv", "--segment-map",
        case.segment_map, "--schema", case.taxonomy,
    )  # fmt: skip
    assert status == 0
    rows = read_csv(tmp_path / "t.csv")
    expected = []
    for path in case.inputs:
        ids, counts = np.unique(read(path), return_counts=True)
        expected += [(str(path), int(i), int(c)) for i, c in zip(ids[1:], counts[1:], strict=True)]
    assert [(r["file"], int(r["id"]), int(r["voxel_count"])) for r in rows] == expected
    assert [float(r["volume"]) for r in rows] == pytest.approx([c * VOXEL for *_, c in expected])
    assert [r["name"] for r in rows] == [SEGMENT_MAP[str(i)] for _, i, _ in expected]

    status, _, _ = run(capsys, "stats", case.inputs[0], "-o", tmp_path / "t.json")
    assert status == 0
    records = json.loads((tmp_path / "t.json").read_text())
    assert [r["id"] for r in records] == [i for f, i, _ in expected if f == str(case.inputs[0])]

    status, out, _ = run(capsys, "stats", case.inputs[0])
    assert status == 0
    assert out.splitlines()[0].startswith("file,id,voxel_count,volume,bbox_start_0")

    status, _, err = run(capsys, "stats", case.inputs[0], "-o", tmp_path / "t.json")
    assert status == 1  # an output that exists: the same status for every command
    assert "exists" in err


def test_stats_with_an_intensity_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = blocky(3)
    source = save(tmp_path / "labels.nii.gz", labels)
    ct = np.random.default_rng(0).normal(0, 100, labels.shape).astype(np.int16)
    image = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(ct, np.diag([*SPACING, 1.0])), image)
    status, _, _ = run(capsys, "stats", source, "--image", image, "-o", tmp_path / "s.csv")
    assert status == 0
    rows = read_csv(tmp_path / "s.csv")
    for row in rows:
        assert float(row["mean"]) == pytest.approx(ct[labels == int(row["id"])].mean())


@pytest.mark.parametrize(
    ("shape", "affine", "reason"),
    [
        ((24, 20, 9), np.diag([*SPACING, 1.0]), "shape"),
        ((24, 20, 10), np.diag([0.5, 0.75, 3.0, 1.0]), "affine"),
    ],
)
def test_stats_refuses_an_image_of_another_grid(
    shape: tuple[int, ...],
    affine: np.ndarray,
    reason: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = save(tmp_path / "labels.nii.gz", blocky(3))
    image = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(shape, np.int16), affine), image)
    status, _, err = run(capsys, "stats", source, "--image", image, "-o", tmp_path / "s.csv")
    assert status == 1
    (line,) = failures(err)
    assert line.startswith(f"failed: {source}: image {image}: ")
    assert reason in line


def intensities(seed: int, shape: tuple[int, ...] = (24, 20, 10)) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 100, shape).astype(np.int16)


def save_image(path: Path, values: np.ndarray, spacing: tuple[float, ...] = SPACING) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(values, np.diag([*spacing, 1.0])), path)
    return path


def check_intensity_rows(rows: list[dict[str, str]], labels: np.ndarray, ct: np.ndarray) -> None:
    ids = np.unique(labels[labels != 0])
    assert [int(r["id"]) for r in rows] == ids.tolist()
    for row, ident in zip(rows, ids, strict=True):
        inside = ct[labels == ident].astype(np.float64)
        assert float(row["mean"]) == pytest.approx(inside.mean())
        assert float(row["std"]) == pytest.approx(inside.std(ddof=1))  # the sample std
        assert float(row["min"]) == inside.min()
        assert float(row["max"]) == inside.max()
        assert float(row["sum"]) == pytest.approx(inside.sum())


def test_stats_pairs_a_batch_with_nnunet_images_and_fails_a_missing_one(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "imagesTr"
    cts = {path: intensities(i) for i, path in enumerate(case.inputs)}
    for path, ct in cts.items():
        if path.name != "case1.nii.gz":  # case1's image is missing
            save_image(images / path.name.replace(".nii.gz", "_0000.nii.gz"), ct)
    table = tmp_path / "s.csv"
    status, _, err = run(capsys, "stats", case.folder, "--images", images, "-o", table)
    assert status == 1
    (line,) = failures(err)
    assert line == (
        f"failed: {case.inputs[1]}: no intensity image: neither {images / 'case1.nii.gz'} "
        f"nor {images / 'case1_0000.nii.gz'} exists"
    )
    assert "3 files: 2 done, 1 failed" in err
    rows = read_csv(table)
    assert list(rows[0])[:3] == ["file", "image", "id"]
    for path in (case.inputs[0], case.inputs[2]):
        mine = [r for r in rows if r["file"] == str(path)]
        assert {r["image"] for r in mine} == {str(images / path.name.replace(".nii", "_0000.nii"))}
        check_intensity_rows(mine, read(path), cts[path])
    assert not [r for r in rows if r["file"] == str(case.inputs[1])]


def test_stats_images_keep_the_folder_structure_and_follow_image_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A BIDS-like pair of trees: derivatives/seg/sub-X/anat/sub-X_dseg.nii.gz with
    rawdata/sub-X/anat/sub-X_T1w.nii.gz; then images of the same names, one of another
    grid."""
    derivatives, raw = tmp_path / "derivatives" / "seg", tmp_path / "rawdata"
    labels, cts = {}, {}
    for i, subject in enumerate(["sub-01", "sub-02"]):
        labels[subject] = save(derivatives / subject / "anat" / f"{subject}_dseg.nii.gz", blocky(i))
        cts[subject] = intensities(10 + i)
        save_image(raw / subject / "anat" / f"{subject}_T1w.nii.gz", cts[subject])
    table = tmp_path / "bids.json"
    status, _, err = run(
        capsys, "stats", derivatives, "--images", raw, "--image-name", "{entities}_T1w.nii.gz",
        "-o", table, "-j", "2",
    )  # fmt: skip
    assert status == 0, err
    rows = json.loads(table.read_text())
    for subject, path in labels.items():
        mine = [r for r in rows if r["file"] == str(path)]
        assert {r["image"] for r in mine} == {str(raw / subject / "anat" / f"{subject}_T1w.nii.gz")}
        check_intensity_rows(mine, read(path), cts[subject])

    # Same names in a flat folder; sub-02's image is of another grid, sub-01's is found.
    flat = tmp_path / "images"
    save_image(flat / "sub-01_dseg.nii.gz", cts["sub-01"])
    other = save_image(flat / "sub-02_dseg.nii.gz", cts["sub-02"], (0.5, 0.75, 3.0))
    status, _, err = run(
        capsys, "stats", *labels.values(), "--images", flat, "-o", tmp_path / "f.csv"
    )
    assert status == 1
    (line,) = failures(err)
    assert line.startswith(f"failed: {labels['sub-02']}: image {other}: ")
    assert "affines differ" in line
    check_intensity_rows(read_csv(tmp_path / "f.csv"), read(labels["sub-01"]), cts["sub-01"])


# ----------------------------------------------------------------- error paths


def corrupt_files(folder: Path) -> dict[str, Path]:
    """Inputs no job can read, by what is wrong with them."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    files["missing"] = folder / "missing.nii.gz"
    garbage = folder / "garbage.nii.gz"
    garbage.write_bytes(b"this is not a NIfTI file at all")
    files["garbage"] = garbage
    truncated = folder / "truncated.nii.gz"
    whole = save(folder / "whole.nii.gz", blocky(5))
    truncated.write_bytes(whole.read_bytes()[:200])
    whole.unlink()
    files["truncated"] = truncated
    floats = folder / "floats.nii.gz"
    nib.save(nib.Nifti1Image(np.full((4, 4, 4), 0.5, np.float32), np.eye(4)), floats)
    files["float labels"] = floats
    negative = folder / "negative.nii.gz"
    nib.save(nib.Nifti1Image(np.full((4, 4, 4), -3, np.int16), np.eye(4)), negative)
    files["negative"] = negative
    return files


@pytest.mark.parametrize("kind", ["missing", "garbage", "truncated", "float labels", "negative"])
def test_a_bad_input_is_one_line_and_the_batch_goes_on(
    kind: str, case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = corrupt_files(tmp_path / "bad")[kind]
    out = tmp_path / "out"
    status, _, err = run(
        capsys, "clean", case.inputs[0], bad, case.inputs[1], "-o", out, "--largest-k", "1"
    )
    assert status == 1
    (line,) = failures(err)
    assert line.startswith(f"failed: {bad}: ")
    assert "internal error" not in line
    assert sorted(p.name for p in out.iterdir()) == ["case0.nii.gz", "case1.nii.gz"]
    assert "3 files: 2 done, 1 failed, 0 skipped" in err


def test_patterns_and_folders_that_name_nothing_fail(
    tmp_path: Path, case: Case, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    status, _, err = run(capsys, "info", tmp_path / "empty", f"{tmp_path}/*.nope", case.inputs[0])
    assert status == 1
    assert len(failures(err)) == 2
    endings = ".mgh, .mgz, .mha, .mhd, .nhdr, .nii, .nii.gz, .nrrd, .seg.nrrd"
    assert f"no label files ({endings}) in this folder" in err
    assert "no files match" in err


def test_glob_and_folder_inputs_keep_their_relative_paths(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nested = save(case.folder / "sub" / "deep.nii.gz", blocky(9))
    out = tmp_path / "out"
    status, _, _ = run(capsys, "relabel", case.folder, "-o", out, "--renumber")
    assert status == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.nii.gz"))
    assert written == ["case0.nii.gz", "case1.nii.gz", "case2.nii.gz", "sub/deep.nii.gz"]
    status, _, _ = run(
        capsys, "relabel", f"{case.folder}/**/d*.nii.gz", "-o", tmp_path / "g", "--renumber"
    )
    assert status == 0
    assert [p.name for p in (tmp_path / "g").glob("*.nii.gz")] == [nested.name]


# ----------------------------------------------------------------- output rules


def test_outputs_never_replace_inputs_or_existing_files_unasked(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = case.inputs[0]
    before = source.read_bytes()
    # Writing into the input's own folder under the same name is refused, even with
    # --overwrite.
    status, _, err = run(capsys, "relabel", source, "-o", case.folder, "--renumber", "--overwrite")
    assert status == 1
    assert "would replace an input" in err
    assert source.read_bytes() == before

    target = tmp_path / "out.nii.gz"
    target.write_bytes(b"earlier result")
    status, _, err = run(capsys, "relabel", source, "-o", target, "--renumber")
    assert status == 1
    assert "exists" in failures(err)[0]
    assert target.read_bytes() == b"earlier result"

    # --skip-existing skips an input once all its outputs exist (here with the mapping).
    (tmp_path / "out.mapping.json").write_text("earlier mapping")
    status, _, err = run(capsys, "relabel", source, "-o", target, "--renumber", "--skip-existing")
    assert status == 0
    assert "1 file: 0 done, 0 failed, 1 skipped" in err
    assert target.read_bytes() == b"earlier result"

    status, _, _ = run(capsys, "relabel", source, "-o", target, "--renumber", "--overwrite")
    assert status == 0
    assert np.array_equal(read(target), fastseg.renumber(read(source))[0])

    # Two inputs with the same name would write the same output: the second fails.
    twin = save(tmp_path / "other" / source.name, blocky(4))
    status, _, err = run(capsys, "relabel", source, twin, "-o", tmp_path / "both", "--renumber")
    assert status == 1
    (line,) = failures(err)
    assert line.startswith(f"failed: {twin}: ")
    assert "already writes" in line


def test_an_output_that_cannot_be_written_is_one_line(
    case: Case, capsys: pytest.CaptureFixture[str]
) -> None:
    blocked = case.inputs[0] / "table.csv"  # below a file, so no folder can be made
    for argv in (["stats", case.inputs[1], "-o", blocked], ["demo", "--out", blocked]):
        status, _, err = run(capsys, *argv)
        assert status == 1
        # stats measured its input (the summary says so) and could not write the table.
        *_, last = err.strip().splitlines()
        assert last.startswith(f"fastseg {argv[0]}: error: ")
        assert str(case.inputs[0]) in last


def test_a_failed_write_leaves_no_partial_file(case: Case, tmp_path: Path) -> None:
    """Real write errors halfway (the file size limit: EFBIG) in a subprocess. ``big``
    has a mapping too large to write, ``noisy`` a small mapping but labels too large:
    each fails on one line and leaves neither of its two files; the small one is
    written with its mapping."""
    small = save(tmp_path / "in" / "small.nii.gz", blocky(1))
    rng = np.random.default_rng(0)
    big = save(tmp_path / "in" / "big.nii.gz", rng.integers(1, 60000, (64, 64, 64), np.uint16))
    noisy = save(tmp_path / "in" / "noisy.nii.gz", rng.integers(0, 200, (64, 64, 64), np.uint8))
    inputs = [str(big), str(noisy), str(small)]
    warm = main(["relabel", *inputs, "-o", str(tmp_path / "warm"), "--renumber", "-q"])
    assert warm == 0  # compiles and caches the kernels the subprocess loads
    out = tmp_path / "out"
    limit = 64 * 1024
    size = {p.name: p.stat().st_size for p in (tmp_path / "warm").iterdir()}
    assert size["small.nii.gz"] < limit < size["big.mapping.json"]
    assert size["noisy.mapping.json"] < limit < size["noisy.nii.gz"]
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of dying
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
        from fastseg.cli import main
        sys.exit(main(sys.argv[1:]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, "relabel", *inputs, "-o", str(out), "--renumber"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = failures(result.stderr)
    assert [line.split(": ")[1] for line in lines] == [str(big), str(noisy)]
    assert all("File too large" in line for line in lines)
    assert sorted(p.name for p in out.iterdir()) == ["small.mapping.json", "small.nii.gz"]
    for name in ("small.mapping.json", "small.nii.gz"):
        assert (out / name).read_bytes() == (tmp_path / "warm" / name).read_bytes()


# ------------------------------------------------------------- executors


def test_worker_processes_give_the_same_files(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = corrupt_files(tmp_path / "bad")["garbage"]
    argv = ["clean", *case.inputs, bad, "--largest-k", "1", "--progress", "lines"]
    status, _, err = run(capsys, *argv, "-o", tmp_path / "serial")
    assert status == 1
    status, _, err = run(capsys, *argv, "-o", tmp_path / "parallel", "-j", "2")
    assert status == 1
    assert "2 worker processes" in err
    (line,) = failures(err)
    assert line.startswith(f"failed: {bad}: ")
    assert sum(line.startswith("[") and "done:" in line for line in err.splitlines()) == 3
    for path in case.inputs:
        assert np.array_equal(
            read(tmp_path / "parallel" / path.name), read(tmp_path / "serial" / path.name)
        )


def test_scheduler_runs_the_jobs_on_a_dask_cluster(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import distributed

    bad = corrupt_files(tmp_path / "bad")["truncated"]
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        status, _, err = run(
            capsys, "to-semantic", *case.inputs, bad, "-o", tmp_path / "out", "--schema",
            case.taxonomy, "--segment-map", case.segment_map, "--scheduler",
            cluster.scheduler_address,
        )  # fmt: skip
    assert status == 1
    (line,) = failures(err)
    assert line.startswith(f"failed: {bad}: ")
    assert f"dask.distributed at {cluster.scheduler_address}" in err
    for path in case.inputs:
        assert np.array_equal(read(tmp_path / "out" / path.name), semantic_reference(read(path)))


def test_scheduler_without_distributed_is_a_usage_error(
    case: Case, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    status, _, err = run(capsys, "info", case.inputs[0], "--scheduler", "tcp://127.0.0.1:8786")
    assert status == 2
    assert err.strip() == (
        "fastseg info: error: --scheduler needs dask.distributed: pip install distributed"
    )


def test_progress_bar_lines_and_quiet(case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "info", *case.inputs, "--progress", "bar")
    assert status == 0
    assert "3/3" in err
    status, out, err = run(capsys, "info", *case.inputs, "-q")
    assert status == 0
    assert err == ""
    assert out.count("ids besides 0") == 3


# ------------------------------------------------------------------ schema


def test_schema_conversions(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "dataset.json"
    status, _, err = run(capsys, "schema", case.taxonomy, target)
    assert status == 1
    assert "--renumber" in failures(err)[0]
    assert not target.exists()
    status, out, _ = run(capsys, "schema", case.taxonomy, target, "--renumber")
    assert status == 0
    assert out.startswith(f"wrote {target} (nnunet, 3 categories")
    labels = json.loads(target.read_text())["labels"]
    assert labels == {"background": 0, "Vertebra": 1, "Disc": 2, "Liver": 3}

    status, _, err = run(capsys, "schema", case.taxonomy, target, "--renumber")
    assert status == 1
    assert "exists" in err

    itksnap = tmp_path / "labels.txt"
    assert run(capsys, "schema", target, itksnap)[0] == 0
    assert fastseg.Schema.load(itksnap).names == ["Vertebra", "Disc", "Liver"]
    redbrick = tmp_path / "taxonomy.json"
    assert run(capsys, "schema", itksnap, redbrick, "--to", "redbrick")[0] == 0
    objects = json.loads(redbrick.read_text())["objectTypes"]
    assert [(o["category"], o["classId"]) for o in objects] == [
        ("Vertebra", 0),
        ("Disc", 1),
        ("Liver", 2),
    ]


# --------------------------------------------------------------- redbrick


def redbrick_export(folder: Path) -> Path:
    """An export folder: two tasks, three series (one made of two files), one series
    whose file is missing."""
    folder.mkdir(parents=True, exist_ok=True)
    save(folder / "segmentations" / "a.nii.gz", blocky(1))
    save(folder / "segmentations" / "b.nii.gz", blocky(2))
    part = np.where(blocky(3) == 4, 0, blocky(3))
    save(folder / "segmentations" / "c1.nii.gz", part)
    save(folder / "segmentations" / "c2.nii.gz", np.where(blocky(3) == 4, 4, 0).astype(np.uint8))
    class_ids = {"1": 0, "2": 0, "3": 1, "4": 4, "5": 0}
    tasks = [
        {
            "taskId": "t1",
            "name": "case one",
            "series": [
                {"name": "CT", "segmentations": "segmentations/a.nii.gz",
                 "segmentMap": SEGMENT_MAP},
                {"segmentations": ["segmentations/c1.nii.gz", "segmentations/c2.nii.gz"],
                 "segmentMap": class_ids},
            ],
        },
        {
            "taskId": "t2",
            "series": [
                {"name": "MR", "items": "scan.nii.gz"},
                {"segmentations": "segmentations/b.nii.gz", "segmentMap": SEGMENT_MAP},
                {"name": "lost", "segmentations": "segmentations/gone.nii.gz",
                 "segmentMap": SEGMENT_MAP},
            ],
        },
    ]  # fmt: skip
    (folder / "tasks.json").write_text(json.dumps(tasks))
    return folder


def sdk_tasks_json(folder: Path, series: list[tuple[str, dict[str, str]]]) -> Path:
    """A tasks.json as the RedBrick SDK's export writes it: one task, its series with
    items, a list of segmentations and a full-form segmentMap each."""
    listed = []
    for name, segment_map in series:
        listed.append(
            {
                "name": name,
                "items": [f"images/case-1/{name}/0001.dcm"],
                "segmentations": [f"segmentations/case-1/{name}.nii.gz"],
                "segmentMap": {
                    ident: {"category": category, "attributes": {"reviewed": ident == "1"}}
                    for ident, category in segment_map.items()
                },
                "binaryMask": False,
                "semanticMask": False,
                "pngMask": False,
            }
        )
    tasks = [
        {
            "taskId": "9c1f2b",
            "name": "case-1",
            "currentStageName": "END",
            "status": "COMPLETED",
            "series": [*listed, {"name": "PET", "items": ["images/case-1/PET/0001.dcm"]}],
            "classification": {"attributes": {}},
        }
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tasks.json").write_text(json.dumps(tasks, indent=2))
    return folder / "tasks.json"


CT_MAP = {"1": "Vertebra", "2": "Disc"}
MR_MAP = {"1": "Disc", "2": "Liver"}


def test_series_chooses_the_segment_map_of_a_tasks_json(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--segment-map tasks.json with several series needs --series (a name or task/name);
    the chosen series' map names the ids in info and stats and gives to-semantic's values."""
    tasks = sdk_tasks_json(tmp_path / "export", [("CT", CT_MAP), ("MR", MR_MAP)])
    labels = np.zeros((4, 3, 2), np.uint8)
    labels[0] = 1
    labels[1, :2] = 2
    source = save(tmp_path / "seg.nii.gz", labels)
    names = ["--segment-map", tasks, "--schema", case.taxonomy]
    for chosen, segment_map in (("MR", MR_MAP), ("case-1/CT", CT_MAP), ("CT", CT_MAP)):
        status, out, err = run(capsys, "info", source, "--json", *names, "--series", chosen)
        assert status == 0, err
        (report,) = [json.loads(line) for line in out.splitlines()]
        assert [row["name"] for row in report["ids"]] == [
            "background", segment_map["1"], segment_map["2"]
        ]  # fmt: skip

        table = tmp_path / f"stats-{chosen.replace('/', '-')}.csv"
        status, _, err = run(capsys, "stats", source, *names, "--series", chosen, "-o", table)
        assert status == 0, err
        rows = read_csv(table)
        assert [(r["id"], r["category"], r["reviewed"]) for r in rows] == [
            ("1", segment_map["1"], "True"),
            ("2", segment_map["2"], "False"),
        ]

        out_file = tmp_path / f"semantic-{chosen.replace('/', '-')}.nii.gz"
        status, _, err = run(
            capsys, "to-semantic", source, "-o", out_file, *names, "--series", chosen
        )
        assert status == 0, err
        values = np.array([0] + [CATEGORY_VALUE[segment_map[k]] for k in ("1", "2")])
        np.testing.assert_array_equal(read(out_file), values[labels])


def test_series_errors_are_one_usage_line_naming_the_series(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = sdk_tasks_json(tmp_path / "export", [("CT", CT_MAP), ("MR", MR_MAP)])
    source = case.inputs[0]
    command = ["--segment-map", tasks, "--schema", case.taxonomy]
    for argv, expected in (
        (
            ["info", source, *command],
            f"{tasks}: 2 series have segment maps; choose one with --series (a series "
            "name, or task/name): case-1/CT, case-1/MR",
        ),
        (
            ["to-semantic", source, *command, "--series", "PET"],
            f"{tasks}: no series 'PET' has a segment map; choose one with --series (a "
            "series name, or task/name): case-1/CT, case-1/MR",
        ),
        (
            ["stats", source, *command, "--series", "case-2/CT"],
            f"{tasks}: no series 'case-2/CT' has a segment map",
        ),
        (
            ["info", source, "--segment-map", case.segment_map, "--series", "CT"],
            f"{case.segment_map}: a segmentMap holds one segment map; --series chooses a "
            "series of a RedBrick tasks.json",
        ),
        (["info", source, "--series", "CT"], "--series chooses a series of --segment-map"),
    ):
        status, out, err = run(capsys, *argv)
        assert status == 2, argv
        assert out == ""
        assert len(err.strip().splitlines()) == 1, err
        assert err.startswith(f"fastseg {argv[0]}: error: {expected}"), err
        assert "series=" not in err
    assert not (case.folder / "case0_semantic.nii.gz").exists()


def test_a_tasks_json_with_one_series_needs_no_series(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = sdk_tasks_json(tmp_path / "export", [("CT", CT_MAP)])
    source = save(tmp_path / "seg.nii.gz", np.array([[[0, 1, 2]]], np.uint8))
    status, out, err = run(
        capsys, "info", source, "--json", "--segment-map", tasks, "--schema", case.taxonomy
    )
    assert status == 0, err
    assert [row["name"] for row in json.loads(out)["ids"]] == ["background", "Vertebra", "Disc"]


def test_redbrick_semantic_layout_with_stats(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = redbrick_export(tmp_path / "export")
    out = tmp_path / "semantic"
    status, _, err = run(
        capsys, "redbrick", export, "-o", out, "--taxonomy", case.taxonomy, "-j", "2"
    )
    assert status == 1
    (line,) = failures(err)
    assert "gone.nii.gz" in line
    assert "'lost'" in line
    assert "4 series: 3 done, 1 failed" in err
    tasks = json.loads((out / "tasks.json").read_text())
    written = {s["segmentations"][0]: s for t in tasks for s in t["series"]}
    assert sorted(written) == [
        "segmentations/case one/B.nii.gz",
        "segmentations/case one/CT.nii.gz",
        "segmentations/t2/B.nii.gz",
    ]
    for name, source in (("case one/CT", "a"), ("t2/B", "b")):
        labels = read(out / "segmentations" / f"{name}.nii.gz")
        assert np.array_equal(
            labels, semantic_reference(read(export / "segmentations" / f"{source}.nii.gz"))
        )
    assert np.array_equal(
        read(out / "segmentations" / "case one" / "B.nii.gz"), semantic_reference(blocky(3))
    )
    assert all(s["semanticMask"] for s in written.values())
    assert not any(p.name.startswith(".") for p in out.rglob("*"))
    rows = read_csv(out / "stats.csv")
    for row in rows:
        assert float(row["volume_mm3"]) == pytest.approx(int(row["voxel_count"]) * VOXEL)
    ct = [r for r in rows if r["series"] == "CT"]
    counts = np.bincount(blocky(1).ravel(), minlength=6)
    assert [int(r["voxel_count"]) for r in ct] == counts[1:].tolist()
    assert [r["category"] for r in ct] == list(SEGMENT_MAP.values())

    status, _, err = run(capsys, "redbrick", export, "-o", out, "--taxonomy", case.taxonomy)
    assert status == 1  # an output that exists: the same status for every command
    assert "not empty" in err


def test_redbrick_binary_and_nnunet_layouts(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = redbrick_export(tmp_path / "export")
    (export / "tasks.json").write_text(
        json.dumps(
            [t for t in json.loads((export / "tasks.json").read_text()) if t["taskId"] == "t1"]
        )
    )
    status, _, _ = run(
        capsys, "redbrick", export, "-o", tmp_path / "binary", "--layout", "binary", "--taxonomy",
        case.taxonomy,
    )  # fmt: skip
    assert status == 0
    masks = tmp_path / "binary" / "segmentations" / "case one" / "CT"
    source = blocky(1)
    for ident in range(1, 6):
        assert np.array_equal(read(masks / f"instance-{ident}.nii.gz"), source == ident)

    out = tmp_path / "nnunet"
    status, _, _ = run(
        capsys, "redbrick", export, "-o", out, "--layout", "nnunet", "--taxonomy", case.taxonomy
    )
    assert status == 0
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["labels"] == {"background": 0, "Vertebra": 1, "Disc": 2, "Liver": 3}
    assert dataset["numTraining"] == 2
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == [
        "case_one_B.nii.gz",
        "case_one_CT.nii.gz",
    ]
    consecutive = np.array([0, 1, 2, 0, 0, 3], np.uint8)  # values 1, 2, 5 -> 1, 2, 3
    expected = consecutive[semantic_reference(source)]
    assert np.array_equal(read(out / "labelsTr" / "case_one_CT.nii.gz"), expected)


def test_redbrick_nnunet_images(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """imagesTr/<case>_0000.nii.gz from a series' NIfTI image (a .nii gets compressed); a
    DICOM series gets none and the summary says so; an image off its segmentation's grid
    fails its series, which then writes nothing."""
    export = redbrick_export(tmp_path / "export")
    tasks = json.loads((export / "tasks.json").read_text())
    tasks = [t for t in tasks if t["taskId"] == "t1"]
    ct, other = tasks[0]["series"]
    ct["items"] = "images/ct.nii"
    other["items"] = ["images/b/0001.dcm", "images/b/0002.dcm"]
    image = np.random.default_rng(3).integers(-1000, 2000, blocky(1).shape).astype(np.int16)
    (export / "images").mkdir()
    affine = np.diag([*SPACING, 1.0])
    nib.save(nib.Nifti1Image(image, affine), export / "images" / "ct.nii")
    nib.save(nib.Nifti1Image(image[:, :, :5], affine), export / "images" / "off.nii.gz")
    off = copy.deepcopy(ct)
    off.update({"name": "off", "items": "images/off.nii.gz"})
    tasks.append({"taskId": "t3", "series": [off]})
    (export / "tasks.json").write_text(json.dumps(tasks))

    out = tmp_path / "nnunet"
    status, _, err = run(
        capsys, "redbrick", export, "-o", out, "--layout", "nnunet", "--taxonomy", case.taxonomy
    )
    assert status == 1
    (line,) = failures(err)
    assert "off.nii.gz: image shape (24, 20, 5) differs from its segmentation's" in line
    assert "imagesTr: 1 of 2 series; 1 without a NIfTI image" in err
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == [
        "case_one_B.nii.gz",
        "case_one_CT.nii.gz",
    ]
    (written,) = (out / "imagesTr").iterdir()
    assert written.name == "case_one_CT_0000.nii.gz"
    copied = nib.load(written)
    assert np.array_equal(np.asanyarray(copied.dataobj), image)
    assert np.allclose(copied.affine, affine)
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 2


def test_redbrick_refuses_to_write_into_the_export(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = redbrick_export(tmp_path / "export")
    for argv, expected in [
        (["-o", export, "--taxonomy", case.taxonomy, "--overwrite"], "is the export folder"),
        (
            ["-o", export / "segmentations", "--taxonomy", case.taxonomy, "--overwrite"],
            "holds the export's file",
        ),
        (["-o", tmp_path / "x"], "needs --taxonomy"),
    ]:
        status, _, err = run(capsys, "redbrick", export, *argv)
        assert status == 2
        assert expected in err
    status, _, err = run(capsys, "redbrick", tmp_path, "-o", tmp_path / "y", "--layout", "binary")
    assert status == 2
    assert "tasks.json: no such file" in err


# -------------------------------------------------------------- subprocesses


def test_python_m_fastseg_and_the_console_script(case: Case, tmp_path: Path) -> None:
    bad = corrupt_files(tmp_path / "bad")["garbage"]
    script = shutil.which("fastseg", path=str(Path(sys.executable).parent))
    assert script is not None, "the fastseg console script is not installed beside python"
    for command in ([sys.executable, "-m", "fastseg"], [script]):
        result = subprocess.run(
            [*command, "info", str(case.inputs[0]), str(bad)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 1
        assert result.stdout.startswith(f"{case.inputs[0]}: 24 x 20 x 10 uint8")
        assert "Traceback" not in result.stderr
        (line,) = failures(result.stderr)
        assert line.startswith(f"failed: {bad}: not a readable NIfTI image")
    result = subprocess.run(
        [sys.executable, "-m", "fastseg", "clean", str(case.inputs[0])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "fastseg clean: error: say what to clean: --dust, --dust-mm3, --largest-k or --fill-holes"
    )

"""The built-in demo: the phantom's anatomy, and every file ``fastseg demo`` writes checked
against numpy/scipy computations from the exported JSON."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import scipy.ndimage as ndi

from fastseg.cli import main
from fastseg.demo import SPACING, demo_files, spine_phantom

FULL = np.ones((3, 3, 3), bool)


def read(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(path).dataobj)


def category_lut(folder: Path) -> tuple[np.ndarray, dict[int, str]]:
    """Instance id -> semantic value (classId + 1) and id -> category name, from the JSON
    files with nothing but the json module."""
    taxonomy = json.loads((folder / "taxonomy.json").read_text())
    value = {o["category"]: o["classId"] + 1 for o in taxonomy["objectTypes"]}
    segment_map = json.loads((folder / "segmentMap.json").read_text())
    names = {int(k): (v if isinstance(v, str) else v["category"]) for k, v in segment_map.items()}
    lut = np.zeros(256, np.uint8)
    for ident, name in names.items():
        lut[ident] = value[name]
    return lut, names


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("demo") / "fastseg-demo"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["demo", "--out", str(folder)])
    assert status == 0
    return folder, printed.getvalue()


def test_the_phantom_is_a_spine_with_organs() -> None:
    phantom = spine_phantom()
    labels = phantom.instances
    assert labels.flags.f_contiguous
    assert np.allclose(np.diag(phantom.affine)[:3], SPACING)
    names = {k: phantom.segment_map[k].category for k in phantom.segment_map}
    assert sorted(names.values()).count("Vertebra") == 5
    assert sorted(names.values()).count("Intervertebral disc") == 4
    assert sorted(names.values()).count("Kidney") == 2
    assert np.unique(labels).tolist() == list(range(13))
    # Every instance is one body, plus the specks: stray components of a few voxels.
    strays = 0
    for ident in range(1, 13):
        labelled, count = ndi.label(labels == ident, structure=FULL)
        sizes = np.bincount(labelled.ravel())[1:]
        assert sizes.max() > 1000
        strays += count - 1
        assert (np.sort(sizes)[:-1] <= 4).all()
    assert strays == phantom.specks == 3
    # Vertebrae never touch each other, so connected components recover them.
    vertebrae = np.isin(labels, [k for k, v in names.items() if v == "Vertebra"])
    assert ndi.label(vertebrae, structure=FULL)[1] == 5 + 1  # one speck of L3

    # Discs lie between vertebral bodies along the slice axis (slices of more than a
    # speck's voxels).
    def slices(ident: int) -> np.ndarray:
        return np.flatnonzero((labels == ident).sum(axis=(0, 1)) > 4)

    for disc in range(6, 10):
        above, between, below = slices(disc - 5), slices(disc), slices(disc - 4)
        assert below.max() < between.min() <= between.max() < above.min()


def test_demo_writes_every_file_and_a_summary(demo: tuple[Path, str]) -> None:
    folder, out = demo
    assert sorted(p.name for p in folder.iterdir()) == sorted([*demo_files(), ".fastseg-demo.json"])
    for name in ("Vertebra", "Intervertebral disc", "Kidney", "Liver", "steps:", "cleanup"):
        assert name in out
    rows = {line.split("  ")[0]: line.split() for line in out.splitlines() if "   " in line}
    assert rows["Vertebra"][1:4] == ["5", "6", "5"]
    assert rows["Liver"][1:4] == ["1", "2", "1"]


def test_demo_semantic_maps_are_the_lookup_of_the_instances(demo: tuple[Path, str]) -> None:
    folder, _ = demo
    lut, _ = category_lut(folder)
    instances = nib.load(folder / "instances.nii.gz")
    semantic = nib.load(folder / "semantic.nii.gz")
    assert np.array_equal(np.asanyarray(semantic.dataobj), lut[np.asanyarray(instances.dataobj)])
    assert np.allclose(semantic.affine, instances.affine)
    assert semantic.header.get_zooms() == pytest.approx(SPACING)
    clean = read(folder / "instances_clean.nii.gz")
    assert np.array_equal(read(folder / "semantic_clean.nii.gz"), lut[clean])
    dataset = json.loads((folder / "dataset.json").read_text())
    taxonomy = json.loads((folder / "taxonomy.json").read_text())
    expected = {o["category"]: o["classId"] + 1 for o in taxonomy["objectTypes"]}
    assert dataset["labels"] == {"background": 0, **expected}


def test_demo_instances_from_semantic_are_its_components(demo: tuple[Path, str]) -> None:
    folder, _ = demo
    semantic = read(folder / "semantic.nii.gz")
    recovered = read(folder / "instances_from_semantic.nii.gz")
    segments = json.loads((folder / "instances_from_semantic.segmentMap.json").read_text())
    taxonomy = json.loads((folder / "taxonomy.json").read_text())
    for item in taxonomy["objectTypes"]:
        mask = semantic == item["classId"] + 1
        expected, count = ndi.label(mask, structure=FULL)
        inside = recovered[mask]
        assert np.unique(inside).size == count
        pairs = np.unique(np.stack([inside, expected[mask]]), axis=1)
        assert pairs.shape[1] == count  # one recovered id per scipy component
        assert sum(v == item["category"] for v in segments.values()) == count
    assert not recovered[semantic == 0].any()


def test_demo_statistics_are_consistent(demo: tuple[Path, str]) -> None:
    folder, _ = demo
    instances = read(folder / "instances.nii.gz")
    rows = list(csv.DictReader((folder / "stats.csv").read_text().splitlines()))
    counts = np.bincount(instances.ravel())
    voxel = float(np.prod(SPACING))
    assert [int(r["id"]) for r in rows] == list(range(1, 13))
    assert [int(r["voxel_count"]) for r in rows] == counts[1:].tolist()
    volumes = np.array([float(r["volume"]) for r in rows])
    assert (volumes > 0).all()
    assert volumes == pytest.approx(counts[1:] * voxel)
    assert volumes.sum() == pytest.approx(np.count_nonzero(instances) * voxel)


def test_demo_cleanup_keeps_the_largest_component_of_every_instance(
    demo: tuple[Path, str],
) -> None:
    folder, out = demo
    instances = read(folder / "instances.nii.gz")
    expected = np.zeros_like(instances)
    for ident in range(1, 13):
        labelled, _ = ndi.label(instances == ident, structure=FULL)
        largest = np.argmax(np.bincount(labelled.ravel())[1:]) + 1
        expected[labelled == largest] = ident
    assert np.array_equal(read(folder / "instances_clean.nii.gz"), expected)
    removed = np.count_nonzero(instances) - np.count_nonzero(expected)
    assert f"({removed} voxels)" in out


def test_demo_refuses_to_overwrite_without_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "stats.csv").write_text("mine")
    assert main(["demo", "--out", str(folder)]) == 1  # an output exists
    err = capsys.readouterr().err
    assert err.startswith(f"fastseg demo: error: {folder / 'stats.csv'} exists")
    assert sorted(p.name for p in folder.iterdir()) == ["stats.csv"]
    assert (folder / "stats.csv").read_text() == "mine"
    assert main(["demo", "--out", str(folder), "--overwrite"]) == 0
    assert (folder / "stats.csv").read_text().startswith("id,category,level,voxel_count,volume")


def test_demo_run_again_replaces_its_own_files_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "demo"
    assert main(["demo", "--out", str(folder)]) == 0
    first = (folder / "stats.csv").read_text()
    assert main(["demo", "--out", str(folder)]) == 0  # its own files: replaced
    assert (folder / "stats.csv").read_text() == first
    (folder / "stats.csv").write_text("edited since")
    capsys.readouterr()
    assert main(["demo", "--out", str(folder)]) == 1
    assert f"{folder / 'stats.csv'} exists" in capsys.readouterr().err
    assert (folder / "stats.csv").read_text() == "edited since"


def test_fastseg_demo_console_script(tmp_path: Path) -> None:
    """The README's first command, as a user runs it (into the default folder)."""
    script = shutil.which("fastseg", path=str(Path(sys.executable).parent))
    assert script is not None, "the fastseg console script is not installed beside python"
    result = subprocess.run(
        [script, "demo"], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "files written to fastseg-demo:" in result.stdout
    written = sorted(p.name for p in (tmp_path / "fastseg-demo").iterdir())
    assert written == sorted([*demo_files(), ".fastseg-demo.json"])

"""Every command of the README's command-line section runs, in a folder of generated
files named as the README names them."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import fastseg
from fastseg.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
SPACING = (0.8, 0.8, 2.5)
TAXONOMY = {
    "name": "spine",
    "objectTypes": [
        {"category": "Vertebra", "classId": 0, "labelType": "SEGMENTATION"},
        {"category": "Disc", "classId": 1, "labelType": "SEGMENTATION"},
        {"category": "Liver", "classId": 4, "labelType": "SEGMENTATION"},
    ],
}
DATASET = {
    "channel_names": {"0": "CT"},
    "labels": {"background": 0, "Vertebra": 1, "Disc": 2, "Liver": 3},
    "numTraining": 1,
    "file_ending": ".nii.gz",
}
SEGMENT_MAP = {"1": "Vertebra", "2": "Vertebra", "3": "Disc", "4": "Liver"}


def readme_commands() -> list[str]:
    """The commands of the first bash block in the README's command-line section."""
    section = README.read_text(encoding="utf-8").split("## Command line", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block is not None
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert all(line.startswith("fastseg ") for line in lines)
    return lines


def blocky(seed: int, high: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.kron(rng.integers(0, high, (5, 4, 3)), np.ones((2, 2, 2))).astype(np.uint8)


def save(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fastseg.save(path, labels, affine=np.diag([*SPACING, 1.0]))


def write_json(path: Path, content: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The files the README's commands read."""
    write_json(tmp_path / "dataset.json", DATASET)
    write_json(tmp_path / "taxonomy.json", TAXONOMY)
    write_json(tmp_path / "segmentMap.json", SEGMENT_MAP)
    write_json(tmp_path / "merge.json", {"11": 1, "12": 1})
    save(tmp_path / "labels.nii.gz", blocky(0, 4))
    save(tmp_path / "mask.nii.gz", blocky(1, 2))
    save(tmp_path / "instances" / "case.nii.gz", blocky(2, 5))
    save(tmp_path / "semantic.nii.gz", blocky(3, 4))
    save(tmp_path / "labelsTr" / "case.nii.gz", blocky(4, 4))
    image = np.random.default_rng(5).integers(-1000, 1000, blocky(4, 4).shape).astype(np.int16)
    (tmp_path / "imagesTr").mkdir()
    nib.save(
        nib.Nifti1Image(image, np.diag([*SPACING, 1.0])), tmp_path / "imagesTr" / "case_0000.nii.gz"
    )
    save(tmp_path / "seg.nii.gz", blocky(6, 3) + 11 * (blocky(6, 3) > 0))
    for i in range(2):
        save(tmp_path / "predictions" / f"p{i}.nii.gz", blocky(7 + i, 3))
        save(tmp_path / "labelsTs" / f"p{i}.nii.gz", blocky(10 + i, 3))
    save(tmp_path / "export" / "segmentations" / "s.nii.gz", blocky(9, 5))
    tasks = [{"taskId": "t1", "series": [{"segmentations": "segmentations/s.nii.gz",
                                          "segmentMap": SEGMENT_MAP}]}]  # fmt: skip
    write_json(tmp_path / "export" / "tasks.json", tasks)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_readme_command_runs(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commands = readme_commands()
    assert len(commands) >= 10
    for line in commands:
        argv = shlex.split(line, comments=True)[1:]
        status = main(argv)
        _, err = capsys.readouterr()
        assert status == 0, f"{line}\n{err}"
    # The renumbered map, turned back with --invert, is the input again.
    back = fastseg.load(workspace / "back.nii.gz").labels
    assert np.array_equal(back, fastseg.load(workspace / "seg.nii.gz").labels)
    assert (workspace / "mask_components.segmentMap.json").exists()
    assert (workspace / "semantic_instances.segmentMap.json").exists()
    assert (workspace / "Dataset042" / "dataset.json").exists()
    summary = json.loads((workspace / "summary.json").read_text())
    assert len(summary["metric_per_case"]) == 2


def test_readme_and_help_texts_name_every_volume_format(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The README's command-line section and every help text that names the label files
    a command reads list the registry's endings, so that none falls behind a format."""
    from fastseg.formats import volume_suffix_list, volume_suffixes

    intro = README.read_text(encoding="utf-8").split("## Command line", 1)[1].split("```")[0]
    assert all(f"`{suffix}`" in intro for suffix in volume_suffixes()), intro
    listed = volume_suffix_list()
    assert listed.split(", ") == sorted(volume_suffixes())
    reading = ("info", "label", "to-semantic", "to-instances", "stats", "relabel", "clean",
               "index", "evaluate")  # fmt: skip
    for argv in [[], *([command] for command in reading)]:
        assert main([*argv, "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        assert listed in text, argv
        assert "NIfTI files" not in text, argv
        assert "(NIfTI)" not in text, argv

"""The ``fastseg index`` command: one sample index per label file, checked on load."""

from __future__ import annotations

from pathlib import Path

import nibabel
import numpy as np
import pytest
from strategies import blocky_volume

import fastseg
from fastseg.cli import main

AFFINE = np.diag([0.8, 0.8, 2.5, 1.0])


def _run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str]:
    status = main([str(a) for a in argv])
    return status, capsys.readouterr().err


def _labels_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "labelsTr"
    (folder / "sub").mkdir(parents=True)
    for i, path in enumerate(["case_0.nii.gz", "sub/case_1.nii"]):
        labels = blocky_volume((14, 12, 10 - i), 4, 3, seed=i)
        nibabel.save(nibabel.Nifti1Image(labels, AFFINE), folder / path)
    return folder


def test_a_folder_of_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _labels_folder(tmp_path)
    out = tmp_path / "index"
    status, err = _run(capsys, "index", folder, "-o", out, "--nnunet", "--per-instance", 3, "-q")
    assert status == 0, err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.fsidx")) == [
        "case_0.fsidx",
        "sub/case_1.fsidx",
    ]
    index = fastseg.load_index(out / "case_0.fsidx", labels=folder / "case_0.nii.gz")
    expected = fastseg.SampleIndex.build(
        nibabel.load(folder / "case_0.nii.gz"), mode="nnunet", per_instance=3, seed=0
    )
    np.testing.assert_array_equal(index.indices, expected.indices)
    np.testing.assert_array_equal(index.instance_indices, expected.instance_indices)
    with pytest.raises(ValueError, match="shape"):
        fastseg.load_index(out / "case_0.fsidx", labels=folder / "sub" / "case_1.nii")
    # Existing outputs: refused unless asked.
    status, err = _run(capsys, "index", folder, "-o", out)
    assert status == 1
    assert "exists" in err
    status, _ = _run(capsys, "index", folder, "-o", out, "--skip-existing", "-q")
    assert status == 0


def test_beside_the_input_and_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _labels_folder(tmp_path)
    status, err = _run(capsys, "index", folder / "case_0.nii.gz", "--per-class", 5, "-q")
    assert status == 0, err
    index = fastseg.load_index(folder / "case_0.index.fsidx")
    assert max(np.diff(index.offsets)) == 5
    status, err = _run(capsys, "index", folder, "--nnunet", "--per-class", 5)
    assert status == 2
    assert "--nnunet" in err
    status, err = _run(capsys, "index", folder, "--fraction", "2")
    assert status == 2
    status, err = _run(capsys, "index", tmp_path / "missing.nii.gz", "-o", tmp_path / "o")
    assert status == 1
    assert "missing.nii.gz" in err

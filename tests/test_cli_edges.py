"""The command line at its edges: signals and dead parents, pipes, untrusted exports,
hostile JSON, outputs inside inputs, exit statuses and the words of its messages; the
folder walk and the batch core it shares with fastseg.dask; ``fastseg label``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import scipy.ndimage as ndi

import fastseg
from fastseg import _batch
from fastseg.cli import main

SPACING = (0.5, 0.75, 2.0)
TAXONOMY = {
    "name": "test",
    "objectTypes": [
        {"category": "Vertebra", "classId": 0, "labelType": "SEGMENTATION"},
        {"category": "Disc", "classId": 1, "labelType": "SEGMENTATION"},
    ],
}


def save(path: Path, labels: np.ndarray, spacing: tuple[float, ...] = SPACING) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fastseg.save(path, labels, affine=np.diag([*spacing, 1.0]))
    return path


def blocky(seed: int, high: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, high, (6, 5, 3)).astype(np.uint8)
    return np.kron(small, np.ones((2, 2, 2), np.uint8))


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def failures(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("failed: ")]


def command(*argv: object) -> list[str]:
    return [sys.executable, "-m", "fastseg", *map(str, argv)]


# ------------------------------------------------------------------- walk and batch


def test_walk_takes_every_volume_ending_and_leaves_out_hidden_items_and_outputs(
    tmp_path: Path,
) -> None:
    names = [
        "a.nii.gz",
        "B.NII.GZ",
        "c.nii",
        "d.mgz",
        "e.MGH",
        "notes.txt",
        ".hidden.nii.gz",
        ".a.nii.gz.1234.tmp",
        ".cache/x.nii.gz",
        "sub/f.nii.gz",
        "items/ct.nii.gz",  # no tasks.json beside it: an ordinary folder
        "export/tasks.json",
        "export/items/ct.nii.gz",  # an export's images
        "export/segmentations/s.nii.gz",
        "out/old.nii.gz",
    ]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    found = [
        os.path.relpath(p, tmp_path) for p in _batch.walk(tmp_path, exclude=[tmp_path / "out"])
    ]
    assert found == [
        "B.NII.GZ",
        "a.nii.gz",
        "c.nii",
        "d.mgz",
        "e.MGH",
        "export/segmentations/s.nii.gz",
        "items/ct.nii.gz",
        "sub/f.nii.gz",
    ]
    assert all(_batch.is_volume(p) for p in found)
    # Every volume format of the registry, longest ending first (.seg.nrrd before .nrrd).
    assert set(_batch.volume_suffixes()) >= {".nii.gz", ".nii", ".mgz", ".mgh", ".seg.nrrd"}
    assert _batch.volume_suffixes().index(".seg.nrrd") < _batch.volume_suffixes().index(".nrrd")


def test_expand_reports_a_second_name_of_one_file(tmp_path: Path) -> None:
    source = save(tmp_path / "a.nii.gz", blocky(0))
    os.symlink("a.nii.gz", tmp_path / "alias.nii.gz")
    inputs, problems = _batch.expand([str(tmp_path), str(source)])
    assert [item.path for item in inputs] == [str(source)]
    assert [(p.source, p.status, p.reason) for p in problems] == [
        (str(tmp_path / "alias.nii.gz"), "skipped", f"the same file as {source}"),
    ]


def test_run_all_catches_times_and_survives_a_dead_worker() -> None:
    with _batch.process_pool(2) as pool:
        results = _batch.run_all(os._exit, [3], pool)
    assert results[0].error is not None
    assert results[0].error.startswith("the worker failed")
    seen: list[int] = []
    results = _batch.run_all(lambda x: 10 // x, [5, 0], None, lambda i, _: seen.append(i))
    assert [r.value for r in results] == [2, None]
    assert (
        results[1].error == "internal error (ZeroDivisionError): integer division or modulo by zero"
    )
    assert seen == [0, 1]
    assert all(r.seconds >= 0 for r in results)


def test_temporary_files_never_look_like_volumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fastseg._files

    made: list[str] = []
    original = fastseg._files.tempfile.mkstemp

    def spy(*args: object, **kwargs: object) -> tuple[int, str]:
        handle, name = original(*args, **kwargs)  # type: ignore[call-overload]
        made.append(name)
        return handle, name  # type: ignore[no-any-return]

    monkeypatch.setattr(fastseg._files.tempfile, "mkstemp", spy)
    for name, labels in (("dense.nii.gz", blocky(1)), ("sparse.nii.gz", np.zeros((9, 9, 9)))):
        fastseg.save(tmp_path / name, labels.astype(np.uint8))
        assert np.array_equal(fastseg.load(tmp_path / name).labels, labels)
    fastseg.save(tmp_path / "plain.nii", blocky(2))
    assert len(made) == 3
    for name in made:
        base = os.path.basename(name)
        assert base.startswith(".")
        assert base.endswith(".tmp")
        assert not _batch.is_volume(base.lstrip("."))


# ----------------------------------------------------------------- signals and pipes


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        for child in _children(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


SLOW_LOADS = """\
import time

import fastseg

_load = fastseg.load


def _slow(path):
    if str(path).endswith("slow.nii.gz"):
        time.sleep(600)
    return _load(path)


fastseg.load = _slow
"""


def _blocked_batch(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], set[int]]:
    """``fastseg info`` with two workers, each stuck in a job (its files load slowly:
    a sitecustomize, which every process of the batch imports, slows them down)."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SLOW_LOADS)
    inputs = [save(tmp_path / f"{name}.slow.nii.gz", blocky(0)) for name in ("a", "b")]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(hooks), env.get("PYTHONPATH", "")])
    process = subprocess.Popen(
        command("info", *inputs, "-j", "2", *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=env,
    )
    deadline = time.monotonic() + 60
    while len(_descendants(process.pid)) < 4 and time.monotonic() < deadline:
        time.sleep(0.2)  # the forkserver, the resource tracker and two workers
    time.sleep(1.5)  # the workers start their jobs
    family = _descendants(process.pid)
    assert len(family) >= 4
    return process, family


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_parent_leaves_no_process_behind(tmp_path: Path) -> None:
    process, family = _blocked_batch(tmp_path)
    process.kill()
    # stderr reaches end of file only when every process holding it has ended.
    process.communicate(timeout=30)
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in family) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in family if _alive(pid)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_a_signal_stops_the_workers_and_sums_up(tmp_path: Path, signum: int, status: int) -> None:
    process, family = _blocked_batch(tmp_path)
    # Ctrl-C on a terminal reaches the whole process group; kill reaches the parent.
    if signum == signal.SIGINT:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    _, err = process.communicate(timeout=30)
    assert process.returncode == status, err
    assert "Traceback" not in err
    assert "fastseg info: interrupted: 2 files: 0 done, 0 failed, 0 skipped, 2 not run" in err
    time.sleep(0.5)
    assert not [pid for pid in family if _alive(pid)]


def test_a_closed_stdout_ends_quietly(tmp_path: Path) -> None:
    inputs = [save(tmp_path / f"c{i}.nii.gz", blocky(i)) for i in range(3)]
    process = subprocess.Popen(
        command("info", *inputs), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    process.stdout.close()  # as `| head` does once it has its lines
    _, err = process.communicate(timeout=120)
    assert process.returncode == 141
    assert "error" not in err
    assert "Broken pipe" not in err


def test_quiet_silences_the_line_saying_where_jobs_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = [save(tmp_path / f"c{i}.nii.gz", blocky(i)) for i in range(2)]
    status, _, err = run(capsys, "info", *inputs, "-j", "2")
    assert status == 0
    assert "fastseg info: running on 2 worker processes" in err
    status, out, err = run(capsys, "info", *inputs, "-j", "2", "-q")
    assert (status, err) == (0, "")
    assert out.count("ids besides 0") == 2


# ---------------------------------------------------------------- outputs and statuses


def test_an_output_folder_inside_the_input_folder_is_never_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "preds"
    for i in range(2):
        save(folder / f"c{i}.nii.gz", blocky(i))
    for _ in range(2):
        status, _, err = run(
            capsys, "clean", folder, "-o", folder / "cleaned", "--largest-k", "1", "--overwrite"
        )
        assert status == 0, err
        assert "2 files: 2 done" in err
    assert not (folder / "cleaned" / "cleaned").exists()
    assert sorted(p.name for p in (folder / "cleaned").iterdir()) == ["c0.nii.gz", "c1.nii.gz"]


def test_a_second_name_of_an_input_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save(tmp_path / "a.nii.gz", blocky(0))
    os.symlink("a.nii.gz", tmp_path / "b.nii.gz")
    status, _, err = run(capsys, "info", tmp_path)
    assert status == 0
    assert f"skipped: {tmp_path / 'b.nii.gz'}: the same file as {tmp_path / 'a.nii.gz'}" in err
    assert "2 files: 1 done, 0 failed, 1 skipped" in err


def test_an_output_that_exists_is_status_1_for_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = save(tmp_path / "in" / "seg.nii.gz", blocky(0))
    taxonomy = tmp_path / "taxonomy.json"
    taxonomy.write_text(json.dumps(TAXONOMY))
    export = tmp_path / "export"
    save(export / "s.nii.gz", blocky(1))
    (export / "tasks.json").write_text(
        json.dumps(
            [
                {
                    "taskId": "t",
                    "series": [
                        {
                            "segmentations": "s.nii.gz",
                            "segmentMap": {"1": "Disc", "2": "Disc", "3": "Disc"},
                        }
                    ],
                }
            ]
        )
    )
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("mine")
    taken_file = tmp_path / "taken.nii.gz"
    taken_file.write_text("mine")
    table = tmp_path / "table.csv"
    table.write_text("mine")
    schema_out = tmp_path / "dataset.json"
    schema_out.write_text("mine")
    (taken / "stats.csv").write_text("mine")
    for argv in (
        ["clean", source, "-o", taken_file, "--largest-k", "1"],
        ["relabel", source, "-o", taken_file, "--renumber"],
        ["label", source, "-o", taken_file],
        ["stats", source, "-o", table],
        ["schema", taxonomy, schema_out, "--renumber"],
        ["demo", "--out", taken],
        ["redbrick", export, "-o", taken, "--layout", "binary"],
    ):
        status, _, err = run(capsys, *argv)
        assert status == 1, (argv, err)
        assert "exists" in err or "not empty" in err
    assert taken_file.read_text() == table.read_text() == schema_out.read_text() == "mine"


def test_a_wrong_or_abbreviated_flag_shows_the_commands_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = save(tmp_path / "seg.nii.gz", blocky(0))
    for argv in (["clean", source, "--bogus"], ["clean", source, "--largest", "1"]):
        status, _, err = run(capsys, *argv)
        assert status == 2
        assert err.startswith("usage: fastseg clean ")
        assert "unrecognized arguments" in err
    assert not (tmp_path / "seg_clean.nii.gz").exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["clean", "{a}", "--largest-k", "0"], "expected a whole number >= 1"),
        (
            ["clean", "{a}", "{b}", "-o", "{out}", "--dust", "1"],
            "names one file but the inputs are 2",
        ),
        (["relabel", "{a}", "--renumber", "--invert"], "--invert goes with --mapping"),
    ],
)
def test_usage_errors_of_the_edges(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    paths = {
        "a": save(tmp_path / "a.nii.gz", blocky(0)),
        "b": save(tmp_path / "b.nii.gz", blocky(1)),
        "out": tmp_path / "two.nii.gz",
    }
    status, _, err = run(capsys, *[a.format(**paths) for a in argv])
    assert status == 2
    *_, last = err.strip().splitlines()  # argparse's usage first, then one line
    assert last.startswith(f"fastseg {argv[0]}: error: ")
    assert expected in last
    assert not (tmp_path / "two.nii.gz").exists()
    assert not (tmp_path / "a_clean.nii.gz").exists()


# ------------------------------------------------------------------------- messages


def test_messages_name_the_flags_and_background_is_no_unmapped_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = save(tmp_path / "seg.nii.gz", np.array([[[0, 1, 2, 2, 7]]], np.uint8))
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"1": 3, "2": 4, "7": 5}))
    status, _, err = run(capsys, "relabel", source, "--mapping", mapping, "--missing", "error")
    assert status == 0, err  # 0 is background, not an id the mapping lacks
    assert fastseg.load(tmp_path / "seg_relabeled.nii.gz").labels.ravel().tolist() == [
        0,
        3,
        4,
        4,
        5,
    ]
    mapping.write_text(json.dumps({"1": 3}))
    status, _, err = run(
        capsys, "relabel", source, "--mapping", mapping, "--missing", "error", "-o", tmp_path / "o"
    )
    assert status == 1
    (line,) = failures(err)
    assert "3 voxels hold ids the mapping lacks: 2, 7" in line
    assert "--missing keep" in line
    assert "missing=" not in line

    taxonomy = tmp_path / "taxonomy.json"
    taxonomy.write_text(json.dumps(TAXONOMY))
    segment_map = tmp_path / "segmentMap.json"
    segment_map.write_text(json.dumps({"1": "Vertebra", "2": "Disc"}))
    status, _, err = run(
        capsys, "to-semantic", source, "--schema", taxonomy, "--segment-map", segment_map
    )
    assert status == 1
    (line,) = failures(err)
    assert "1 voxels hold ids the segment map lacks: 7" in line
    assert "--unknown background" in line
    assert "missing=" not in line


def test_invert_turns_a_renumbered_map_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = np.array([[[0, 11, 12, 40, 40]]], np.uint8)
    source = save(tmp_path / "seg.nii.gz", labels)
    assert run(capsys, "relabel", source, "--renumber", "-o", tmp_path / "new.nii.gz")[0] == 0
    status, _, err = run(
        capsys, "relabel", tmp_path / "new.nii.gz", "--mapping", tmp_path / "new.mapping.json",
        "--invert", "-o", tmp_path / "back.nii.gz",
    )  # fmt: skip
    assert status == 0, err
    assert np.array_equal(fastseg.load(tmp_path / "back.nii.gz").labels, labels)
    merge = tmp_path / "merge.json"
    merge.write_text(json.dumps({"11": 1, "12": 1}))
    status, _, err = run(capsys, "relabel", source, "--mapping", merge, "--invert")
    assert status == 2
    assert "one-to-one" in err


def test_a_missing_file_is_named_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = save(tmp_path / "seg.nii.gz", blocky(0))
    absent = tmp_path / "nothere.json"
    for argv in (
        ["info", source, "--schema", absent],
        ["relabel", source, "--mapping", absent],
        ["info", tmp_path / "nothere.nii.gz"],
    ):
        status, _, err = run(capsys, *argv)
        assert status in (1, 2)
        line = next(line for line in err.splitlines() if "nothere" in line)
        assert line.count("nothere") == 1, line


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("where", ["--schema", "--segment-map", "--mapping", "tasks.json"])
def test_deeply_nested_json_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    source = save(tmp_path / "seg.nii.gz", blocky(0))
    hostile = tmp_path / "hostile.json"
    hostile.write_text(_nested(100_000))
    taxonomy = tmp_path / "taxonomy.json"
    taxonomy.write_text(json.dumps(TAXONOMY))
    argv: list[object] = {
        "--schema": ["info", source, "--schema", hostile],
        "--segment-map": ["info", source, "--schema", taxonomy, "--segment-map", hostile],
        "--mapping": ["relabel", source, "--mapping", hostile],
        "tasks.json": ["redbrick", tmp_path / "export", "-o", tmp_path / "out"],
    }[where]
    if where == "tasks.json":
        (tmp_path / "export").mkdir()
        (tmp_path / "export" / "tasks.json").write_text(_nested(100_000))
        (tmp_path / "export" / "taxonomy.json").write_text(json.dumps(TAXONOMY))
    status, _, err = run(capsys, *argv)
    assert status == 2
    assert "nested" in err
    assert len(err.strip().splitlines()) == 1, err


def test_info_shows_the_stored_dtype_spatial_spacing_and_rounded_volumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = np.zeros((4, 4, 1000), np.float32)
    labels.ravel()[:14828] = 1
    path = tmp_path / "float.nii.gz"
    nib.save(nib.Nifti1Image(labels, np.diag([1.0, 1.0, 1.6, 1.0])), path)
    status, out, _ = run(capsys, "info", path, "--json")
    assert status == 0
    report = json.loads(out)
    assert report["dtype"] == "float32"
    assert report["ids"][1]["volume"] == 23724.8
    status, out, _ = run(capsys, "info", path)
    assert "float32 (read as uint8)" in out.splitlines()[0]

    four = tmp_path / "four.nii.gz"
    image = nib.Nifti1Image(np.ones((2, 2, 2, 3), np.uint8), np.diag([0.5, 0.5, 2.0, 1.0]))
    image.header.set_zooms((0.5, 0.5, 2.0, 3.0))
    nib.save(image, four)
    status, out, _ = run(capsys, "info", four)
    assert status == 0
    assert "2 x 2 x 2 x 3 uint8, spacing 0.5 x 0.5 x 2 mm (0.5 mm³ per voxel)" in out


def test_stats_carries_categories_and_attributes_and_no_header_only_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = save(tmp_path / "seg.nii.gz", np.array([[[0, 1, 2, 2]]], np.uint8))
    taxonomy = tmp_path / "taxonomy.json"
    taxonomy.write_text(json.dumps(TAXONOMY))
    segment_map = tmp_path / "segmentMap.json"
    segment_map.write_text(
        json.dumps({"1": {"category": "Vertebra", "attributes": {"level": "L1"}}, "2": "Disc"})
    )
    table = tmp_path / "t.csv"
    status, _, err = run(
        capsys, "stats", source, "--schema", taxonomy, "--segment-map", segment_map, "-o", table
    )
    assert status == 0, err
    header, first, second = table.read_text().splitlines()
    assert header.startswith("file,id,name,category,level,voxel_count,volume")
    assert first.startswith(f"{source},1,Vertebra,Vertebra,L1,1,")
    assert second.startswith(f"{source},2,Disc,Disc,,2,")

    broken = tmp_path / "broken.nii.gz"
    broken.write_text("not a volume")
    status, out, _ = run(capsys, "stats", broken)
    assert (status, out) == (1, "")
    status, _, _ = run(capsys, "stats", broken, "-o", tmp_path / "none.csv")
    assert status == 1
    assert not (tmp_path / "none.csv").exists()


# ----------------------------------------------------------------------------- label


@pytest.mark.parametrize("connectivity", [6, 26])
def test_label_gives_components_of_every_value_with_their_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], connectivity: int
) -> None:
    labels = blocky(5, high=3)
    labels[::3, ::2, :] = 0
    source = save(tmp_path / "seg.nii.gz", labels)
    status, _, err = run(capsys, "label", source, "--connectivity", connectivity)
    assert status == 0, err
    found = fastseg.load(tmp_path / "seg_components.nii.gz").labels
    segments = json.loads((tmp_path / "seg_components.segmentMap.json").read_text())
    structure = ndi.generate_binary_structure(3, 1 if connectivity == 6 else 3)
    count = 0
    for value in (1, 2):
        expected, n = ndi.label(labels == value, structure)
        count += n
        for component in range(1, n + 1):
            (ident,) = np.unique(found[expected == component])
            assert np.array_equal(found == ident, expected == component)
            assert segments[str(ident)]["category"] == str(value)
    assert len(segments) == count == int(found.max())
    assert np.array_equal(found == 0, labels == 0)


# -------------------------------------------------------------------------- redbrick


def _export(folder: Path, listed: str = "segmentations/s.nii.gz") -> Path:
    save(folder / "segmentations" / "s.nii.gz", blocky(2, high=3))
    tasks = [
        {
            "taskId": "t1",
            "series": [{"segmentations": listed, "segmentMap": {"1": "Vertebra", "2": "Disc"}}],
        }
    ]
    (folder / "tasks.json").write_text(json.dumps(tasks))
    return folder


def test_redbrick_takes_tasks_json_and_its_own_taxonomy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = _export(tmp_path / "export")
    status, _, err = run(capsys, "redbrick", export / "tasks.json", "-o", tmp_path / "a")
    assert status == 2
    assert "needs --taxonomy" in err
    (export / "taxonomy.json").write_text(json.dumps(TAXONOMY))
    status, _, err = run(capsys, "redbrick", export / "tasks.json", "-o", tmp_path / "a")
    assert status == 0, err
    written = fastseg.load(tmp_path / "a" / "segmentations" / "t1" / "A.nii.gz").labels
    assert np.array_equal(written, blocky(2, high=3))  # values classId + 1: 1 and 2

    plain = tmp_path / "plain"
    plain.mkdir()
    status, _, err = run(capsys, "redbrick", plain, "-o", tmp_path / "b")
    assert status == 2
    assert "not a RedBrick export" in err
    assert "--taxonomy" not in err


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "link"])
def test_redbrick_refuses_paths_out_of_the_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    outside = save(tmp_path / "elsewhere" / "ct.nii.gz", blocky(2, high=3))
    export = tmp_path / "export"
    export.mkdir()
    listed = {"absolute": str(outside), "dotdot": "../elsewhere/ct.nii.gz", "link": "ln.nii.gz"}[
        kind
    ]
    if kind == "link":
        os.symlink(outside, export / "ln.nii.gz")
    _export(export, listed)
    (export / "taxonomy.json").write_text(json.dumps(TAXONOMY))
    out = tmp_path / "out"
    status, _, err = run(capsys, "redbrick", export, "-o", out)
    assert status == 2
    assert listed in err
    assert "--allow-outside-paths" in err
    assert not out.exists()
    status, _, err = run(capsys, "redbrick", export, "-o", out, "--allow-outside-paths")
    assert status == 0, err


def test_redbrick_a_series_the_library_refuses_fails_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = _export(tmp_path / "export")
    tasks = json.loads((export / "tasks.json").read_text())
    tasks.append({"taskId": "t2", "series": [{"name": "odd", "segmentations": [7]}]})
    (export / "tasks.json").write_text(json.dumps(tasks))
    (export / "taxonomy.json").write_text(json.dumps(TAXONOMY))
    status, _, err = run(capsys, "redbrick", export, "-o", tmp_path / "out")
    assert status == 1
    (line,) = failures(err)
    assert line.startswith(f"failed: {export / 'tasks.json'}: task 't2', series 'odd': ")
    assert "segmentations must be a path or a list of paths, got [7]" in line
    assert "2 series: 1 done, 1 failed" in err


# --------------------------------------------------------------------------- pairing


def test_pairing_rules() -> None:
    from fastseg.pairing import check_template, find_image, image_candidates

    assert image_candidates("sub-01/anat/sub-01_dseg.nii.gz", "raw", "{entities}_T1w{ext}") == (
        "raw/sub-01/anat/sub-01_T1w.nii.gz",
    )
    assert image_candidates("CASE.NII.GZ", "img") == ("img/CASE.NII.GZ", "img/CASE_0000.NII.GZ")
    # An image folder that is the label folder never pairs a file with itself.
    assert image_candidates("a.nii.gz", "labels", labels="labels/a.nii.gz") == (
        "labels/a_0000.nii.gz",
    )
    with pytest.raises(ValueError, match=r"no placeholder \{case\}"):
        check_template("{case}.nii.gz")
    with pytest.raises(ValueError, match=r"neither a\.nii nor b\.nii exists"):
        find_image(("a.nii", "b.nii"))


def test_warmup_command_fills_the_cache_folder_it_is_given(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "FASTSEG_CACHE_DIR")}
    result = subprocess.run(
        [sys.executable, "-m", "fastseg", "warmup", "files", "--cache-dir", str(cache), "-j", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"cache {cache}" in result.stdout
    assert "(2 processes)" in result.stdout
    assert list(cache.rglob("*.nbi"))
    wrong = subprocess.run(
        [sys.executable, "-m", "fastseg", "warmup", "sorting"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert wrong.returncode == 2
    assert wrong.stderr.strip().startswith("fastseg warmup: error: unknown groups sorting")


def test_dask_walks_a_folder_as_the_command_line_does(tmp_path: Path) -> None:
    pytest.importorskip("dask")
    import fastseg.dask

    for name in ("a.nii.gz", "UPPER.NII.GZ", ".hidden/x.nii", "e/tasks.json", "e/items/ct.nii.gz"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    found = fastseg.dask.nifti_files(tmp_path)
    assert {str(p) for p in found} == set(_batch.walk(tmp_path))
    assert sorted(p.name for p in found) == ["UPPER.NII.GZ", "a.nii.gz"]

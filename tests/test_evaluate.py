"""fastseg.evaluate against naive references, MONAI, DeepMind's surface-distance and
nnU-Net v2's counting; conventions for empty masks; instance matching; the metric class."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import reference as ref_impl
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage
from shared_data import shared_data_path

import fastseg

# -- inputs -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torso(request: pytest.FixtureRequest) -> tuple[np.ndarray, tuple[float, ...]]:
    """A crop of the torso labels (several organs, anisotropic voxels) as the reference."""
    nibabel = pytest.importorskip("nibabel")
    image = nibabel.load(shared_data_path("torso_labels.nii.gz") / "torso_labels.nii.gz")
    labels = np.asanyarray(image.dataobj)[150:250, 120:210, 35:60]
    spacing = tuple(float(z) for z in image.header.get_zooms())
    return np.asfortranarray(labels), spacing


def _predictions(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Predictions made from a reference: eroded, dilated, shifted, one organ dropped."""
    values = [int(v) for v in np.unique(labels) if v]
    eroded = np.where(ndimage.binary_erosion(labels > 0, iterations=1), labels, 0)
    dilated = ndimage.grey_dilation(labels, size=(3, 3, 1))
    shifted = np.roll(labels, (3, -2, 1), axis=(0, 1, 2))
    dropped = np.where(labels == values[0], 0, labels)
    return {
        "eroded": eroded.astype(labels.dtype),
        "dilated": dilated.astype(labels.dtype),
        "shifted": shifted,
        "dropped": dropped.astype(labels.dtype),
    }


def _one_hot(labels: np.ndarray, values: list[int]) -> object:
    torch = pytest.importorskip("torch")
    channels = np.stack([labels == v for v in values])[None].astype(np.float32)
    return torch.from_numpy(channels)


# -- a naive reference on small arrays ----------------------------------------------------


@st.composite
def _pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    ndim = draw(st.integers(1, 3))
    side = {1: 12, 2: 7, 3: 5}[ndim]
    shape = draw(hnp.array_shapes(min_dims=ndim, max_dims=ndim, min_side=1, max_side=side))
    elements = st.integers(0, 3)
    reference = draw(hnp.arrays(np.uint8, shape, elements=elements))
    prediction = draw(hnp.arrays(np.uint8, shape, elements=elements))
    spacing = tuple(draw(st.sampled_from([0.5, 1.0, 1.5, 3.0])) for _ in range(ndim))
    return prediction, reference, spacing


@given(_pairs(), st.booleans())
@settings(max_examples=40)
def test_matches_naive_reference(
    case: tuple[np.ndarray, np.ndarray, tuple[float, ...]], fortran: bool
) -> None:
    prediction, reference, spacing = case
    if fortran:
        prediction, reference = np.asfortranarray(prediction), np.asfortranarray(reference)
    # Class 4 never occurs: an empty class in both maps.
    result = fastseg.evaluate(prediction, reference, labels=[1, 2, 3, 4], spacing=spacing,
                              tolerance_mm=1.5)  # fmt: skip
    for value in (1, 2, 3, 4):
        row = result[str(value)]
        counts = ref_impl.overlap_reference(prediction, reference, [value])
        assert {k: row[k] for k in counts} == counts
        tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
        if tp + fp + fn:
            assert row["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
            assert row["iou"] == pytest.approx(tp / (tp + fp + fn))
        else:
            assert math.isnan(row["dice"])
            assert math.isnan(row["iou"])
        voxel = float(np.prod(spacing))
        assert row["ref_volume"] == pytest.approx((tp + fn) * voxel)
        in_ref, in_pred = (reference == value).any(), (prediction == value).any()
        if in_ref and in_pred:
            expected = ref_impl.surface_reference(prediction, reference, value, spacing,
                                                  tolerance=1.5)  # fmt: skip
            for key in ("hd", "hd95", "assd", "nsd"):
                # float32 distances and torch's float32 percentile arithmetic
                assert row[key] == pytest.approx(expected[key], rel=1e-5), key
        elif in_ref or in_pred:
            assert row["hd"] == math.inf
            assert row["nsd"] == 0.0
        else:
            assert math.isnan(row["hd"])
            assert math.isnan(row["nsd"])


@given(_pairs())
@settings(max_examples=25)
def test_instances_match_naive_panoptic_quality(
    case: tuple[np.ndarray, np.ndarray, tuple[float, ...]],
) -> None:
    prediction, reference, _ = case
    result = fastseg.evaluate(prediction, reference, labels=[1, 2, 3], metrics=["instances"])
    for value in (1, 2, 3):
        row = result[str(value)]
        expected = ref_impl.instance_reference(prediction, reference, value)
        assert row["ref_instances"] == expected["ref"]
        assert row["pred_instances"] == expected["pred"]
        assert row["instance_tp"] == expected["tp"]
        assert row["instance_fp"] == expected["fp"]
        assert row["instance_fn"] == expected["fn"]
        for key in ("rq", "pq"):
            assert row[key] == pytest.approx(expected[key], nan_ok=True), key


# -- real oracles -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["eroded", "dilated", "shifted", "dropped"])
def test_equals_monai(torso: tuple[np.ndarray, tuple[float, ...]], kind: str) -> None:
    monai = pytest.importorskip("monai.metrics")
    reference, spacing = torso
    prediction = _predictions(reference)[kind]
    values = [int(v) for v in np.union1d(np.unique(reference), np.unique(prediction)) if v]
    tolerance = 2.0
    result = fastseg.evaluate(prediction, reference, labels=values, spacing=spacing,
                              tolerance_mm=tolerance, empty="monai")  # fmt: skip
    y_pred, y = _one_hot(prediction, values), _one_hot(reference, values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns about empty classes
        dice = monai.DiceMetric(include_background=True, reduction="none")(y_pred, y)
        iou = monai.MeanIoU(include_background=True, reduction="none")(y_pred, y)
        hd95 = monai.HausdorffDistanceMetric(
            include_background=True, percentile=95, reduction="none"
        )(y_pred, y, spacing=spacing)
        hd = monai.HausdorffDistanceMetric(include_background=True, reduction="none")(
            y_pred, y, spacing=spacing
        )
        assd = monai.SurfaceDistanceMetric(
            include_background=True, symmetric=True, reduction="none"
        )(y_pred, y, spacing=spacing)
        nsd = monai.SurfaceDiceMetric(
            [tolerance] * len(values), include_background=True, reduction="none"
        )(y_pred, y, spacing=spacing)
    for expected, column, rel in (
        (dice, "dice", 1e-6),
        (iou, "iou", 1e-6),
        (hd, "hd", 0),
        (hd95, "hd95", 1e-6),
        (assd, "assd", 1e-5),
        (nsd, "nsd", 1e-6),
    ):
        want = expected.numpy()[0].astype(np.float64)
        got = result.column(column)
        if column == "hd95":
            # MONAI interpolates between infinite distances when one side is empty (NaN);
            # fastseg reports inf there, as for hd.
            want = np.where(np.isnan(want) & np.isinf(result.column("hd")), np.inf, want)
        np.testing.assert_allclose(got, want, rtol=rel, err_msg=column)


@pytest.mark.parametrize("kind", ["eroded", "shifted", "dropped"])
def test_equals_surface_distance_package(
    torso: tuple[np.ndarray, tuple[float, ...]], kind: str
) -> None:
    surface_distance = pytest.importorskip("surface_distance")
    reference, spacing = torso
    prediction = _predictions(reference)[kind]
    values = [int(v) for v in np.unique(reference) if v]
    result = fastseg.evaluate(prediction, reference, labels=values, spacing=spacing,
                              surface="deepmind", tolerance_mm=2.0)  # fmt: skip
    for value in values:
        if not (prediction == value).any():
            # The package itself fails here on numpy 2 (np.Inf); MONAI's convention holds.
            assert result[str(value)]["hd"] == math.inf
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            distances = surface_distance.compute_surface_distances(
                reference == value, prediction == value, spacing
            )
        row = result[str(value)]
        exact = pytest.approx  # distances agree to the last bit or two
        assert row["hd95"] == exact(surface_distance.compute_robust_hausdorff(distances, 95))
        assert row["hd"] == exact(surface_distance.compute_robust_hausdorff(distances, 100))
        assert row["nsd"] == exact(
            surface_distance.compute_surface_dice_at_tolerance(distances, 2.0), rel=1e-12
        )
        to_pred, to_ref = surface_distance.compute_average_surface_distance(distances)
        assert row["asd_ref_to_pred"] == exact(to_pred, rel=1e-12)
        assert row["asd_pred_to_ref"] == exact(to_ref, rel=1e-12)


@pytest.mark.parametrize("order", ["C", "F"])
def test_surface_distance_package_2d(
    torso: tuple[np.ndarray, tuple[float, ...]], order: str
) -> None:
    surface_distance = pytest.importorskip("surface_distance")
    reference, spacing = torso
    plane = np.asarray(reference[:, :, 12], order=order)
    prediction = np.asarray(np.roll(plane, 2, axis=1), order=order)
    result = fastseg.evaluate(prediction, plane, spacing=spacing[:2], surface="deepmind")
    assert len(result) == 2
    for name in result:
        value = int(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            distances = surface_distance.compute_surface_distances(
                plane == value, prediction == value, spacing[:2]
            )
        assert result[name]["hd95"] == pytest.approx(
            surface_distance.compute_robust_hausdorff(distances, 95)
        )
        assert result[name]["nsd"] == pytest.approx(
            surface_distance.compute_surface_dice_at_tolerance(distances, 1.0), rel=1e-12
        )


def test_equals_nnunet_counts_with_regions_and_ignore(
    torso: tuple[np.ndarray, tuple[float, ...]],
) -> None:
    reference, _ = torso
    reference = reference.copy()
    reference[:5] = 11  # the ignore label below
    prediction = _predictions(np.where(reference == 11, 0, reference))["dilated"]
    # What read_dataset_json makes of a region-based dataset.json with an ignore label.
    schema = fastseg.Schema([
        fastseg.Category("organs", 1, attributes={"regions": [2, 8, 9]}),
        fastseg.Category("veins", 2, attributes={"regions": [8, 9]}),
        fastseg.Category("ten", 3, attributes={"regions": 10}),
        fastseg.Category("ignore", 11, attributes={"ignore": True}),
    ])  # fmt: skip
    result = fastseg.evaluate(prediction, reference, labels=schema, metrics=["overlap"])
    ignore = reference == 11
    for name, region in (("organs", (2, 8, 9)), ("veins", (8, 9)), ("ten", 10)):
        mask_ref = ref_impl.nnunet_region_or_label_to_mask(reference, region)
        mask_pred = ref_impl.nnunet_region_or_label_to_mask(prediction, region)
        tp, fp, fn, tn = ref_impl.nnunet_tp_fp_fn_tn(mask_ref, mask_pred, ignore)
        row = result[name]
        assert tp > 0, name
        assert (row["tp"], row["fp"], row["fn"], row["tn"]) == (tp, fp, fn, tn)
        assert row["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_instances_split_and_dropped(torso: tuple[np.ndarray, tuple[float, ...]]) -> None:
    reference, spacing = torso
    values = [int(v) for v in np.unique(reference) if v]
    prediction = reference.copy()
    # Split one organ by a cut, drop another.
    prediction[:, 45, :] = np.where(prediction[:, 45, :] == values[1], 0, prediction[:, 45, :])
    prediction[prediction == values[2]] = 0
    result = fastseg.evaluate(prediction, reference, labels=values, spacing=spacing,
                              metrics=["instances"])  # fmt: skip
    for value in values:
        expected = ref_impl.instance_reference(prediction[::4, ::4], reference[::4, ::4], value)
        del expected  # the naive reference is too slow at full size; checked below instead
    dropped = result[str(values[2])]
    assert dropped["instance_tp"] == 0
    assert dropped["instance_fn"] == dropped["ref_instances"]
    assert dropped["pq"] == 0.0
    pairs = result.pairs
    assert pairs is not None
    assert len(pairs.matches()) == int(result.column("instance_tp").sum())
    assert (pairs.matches().iou >= 0.5).all()


# -- conventions for empty masks ----------------------------------------------------------


@pytest.mark.parametrize(
    ("empty", "both", "ref_only_missing"),
    [("nnunet", math.nan, 0.0), ("monai", math.nan, math.nan), ("one", 1.0, 0.0)],
)
def test_empty_conventions(empty: str, both: float, ref_only_missing: float) -> None:
    reference = np.zeros((4, 4), np.uint8)
    prediction = np.zeros((4, 4), np.uint8)
    prediction[1, 1] = 2  # class 2: predicted only; class 3: nowhere
    result = fastseg.evaluate(prediction, reference, labels=[2, 3], empty=empty,  # type: ignore[arg-type]
                              metrics=["overlap", "distance", "instances"])  # fmt: skip
    for column in ("dice", "iou", "nsd", "f1", "pq"):
        np.testing.assert_equal(result["3"][column], both, err_msg=column)
        np.testing.assert_equal(result["2"][column], ref_only_missing, err_msg=column)
    np.testing.assert_equal(result["2"]["hd"], math.nan if empty == "monai" else math.inf)


def test_empty_conventions_equal_monai_dice() -> None:
    monai = pytest.importorskip("monai.metrics")
    reference = np.zeros((1, 5, 5), np.uint8)
    prediction = reference.copy()
    prediction[0, 2, 2] = 1
    for ignore_empty, empty in ((True, "monai"), (False, "one")):
        expected = monai.DiceMetric(include_background=True, ignore_empty=ignore_empty)(
            _one_hot(prediction, [1, 2]), _one_hot(reference, [1, 2])
        )
        result = fastseg.evaluate(prediction, reference, labels=[1, 2], empty=empty,  # type: ignore[arg-type]
                                  metrics=["overlap"])  # fmt: skip
        np.testing.assert_equal(result.column("dice"), expected.numpy()[0])


# -- inputs, layouts, errors --------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int16, np.uint32, np.int64])
def test_dtypes_and_orders_agree(dtype: type) -> None:
    rng = np.random.default_rng(3)
    reference = (rng.random((6, 7, 5)) < 0.4).astype(dtype)
    prediction = (rng.random((6, 7, 5)) < 0.4).astype(dtype)
    metrics = ["overlap", "distance", "instances"]
    c_order = fastseg.evaluate(prediction, reference, spacing=(1, 2, 3), metrics=metrics)
    f_order = fastseg.evaluate(np.asfortranarray(prediction), reference, spacing=(1, 2, 3),
                               metrics=metrics)  # fmt: skip
    both_f = fastseg.evaluate(np.asfortranarray(prediction), np.asfortranarray(reference),
                              spacing=(1, 2, 3), metrics=metrics)  # fmt: skip
    assert c_order.to_json() == f_order.to_json() == both_f.to_json()


def test_empty_and_single_voxel_volumes() -> None:
    empty = fastseg.evaluate(np.zeros((0, 3), np.uint8), np.zeros((0, 3), np.uint8))
    assert len(empty) == 0
    one = fastseg.evaluate(np.ones((1, 1, 1), np.uint8), np.ones((1, 1, 1), np.uint8))
    assert one["1"]["dice"] == 1.0
    assert one["1"]["hd"] == 0.0
    assert one["1"]["nsd"] == 1.0


def test_sparse_ids() -> None:
    reference = np.zeros((5, 5), np.uint64)
    reference[1:4, 1:4] = 10**12
    prediction = np.roll(reference, 1, axis=0)
    result = fastseg.evaluate(prediction, reference)
    assert list(result) == [str(10**12)]
    assert result[str(10**12)]["hd"] == 1.0


def test_input_not_modified_and_threads_agree() -> None:
    rng = np.random.default_rng(5)
    reference = rng.integers(0, 4, (20, 30, 40), dtype=np.uint8)
    prediction = rng.integers(0, 4, (20, 30, 40), dtype=np.uint8)
    before = reference.copy(), prediction.copy()
    one = fastseg.evaluate(prediction, reference, threads=1)
    two = fastseg.evaluate(prediction, reference, threads=2)
    assert one.to_json() == two.to_json()
    np.testing.assert_array_equal(reference, before[0])
    np.testing.assert_array_equal(prediction, before[1])


def test_errors() -> None:
    a = np.zeros((3, 3), np.uint8)
    with pytest.raises(ValueError, match="same shape"):
        fastseg.evaluate(a, np.zeros((3, 4), np.uint8))
    with pytest.raises(TypeError, match="integer or bool"):
        fastseg.evaluate(a.astype(float), a)
    with pytest.raises(ValueError, match="unknown metrics"):
        fastseg.evaluate(a, a, metrics=["volume"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="list of names"):
        fastseg.evaluate(a, a, metrics="overlap")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty must be"):
        fastseg.evaluate(a, a, empty="zero")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1"):
        fastseg.evaluate(a, a, labels=[0])
    with pytest.raises(ValueError, match="spacing"):
        fastseg.evaluate(a, a, spacing=(1.0,))
    with pytest.raises(ValueError, match="deepmind"):
        fastseg.evaluate(np.ones(3, np.uint8), np.ones(3, np.uint8), surface="deepmind")


def test_nibabel_images_bring_spacing_and_must_agree() -> None:
    nibabel = pytest.importorskip("nibabel")
    labels = np.zeros((6, 6, 4), np.uint8)
    labels[1:4, 1:4, 1:3] = 1
    affine = np.diag([2.0, 1.0, 3.0, 1.0])
    reference = nibabel.Nifti1Image(labels, affine)
    prediction = nibabel.Nifti1Image(np.roll(labels, 1, axis=0), affine)
    result = fastseg.evaluate(prediction, reference)
    assert result.spacing == (2.0, 1.0, 3.0)
    assert result["1"]["hd"] == 2.0
    other = nibabel.Nifti1Image(labels, np.diag([1.0, 1.0, 3.0, 1.0]))
    with pytest.raises(ValueError, match="different spaces"):
        fastseg.evaluate(other, reference)


def test_table_outputs(tmp_path: Path) -> None:
    reference = np.array([[0, 1, 1, 2]], np.uint8)
    prediction = np.array([[0, 1, 2, 2]], np.uint8)
    result = fastseg.evaluate(prediction, reference, labels={"a": 1, "b": 2, "ab": [1, 2]})
    assert list(result) == ["a", "b", "ab"]
    assert result["ab"]["dice"] == 1.0
    records = json.loads(result.to_json())
    assert records[0]["class"] == "a"
    assert records[0]["values"] == "1"
    result.to_csv(tmp_path / "metrics.csv")
    text = (tmp_path / "metrics.csv").read_text()
    assert text.splitlines()[0].startswith("class,values,tp,fp,fn,tn,dice")
    frame = result.to_pandas()
    assert frame.loc["b", "dice"] == pytest.approx(2 / 3)
    assert result.to_dict()["a"]["tp"] == 1
    assert set(result.mean()) == set(result.columns)


# -- the metric class ---------------------------------------------------------------------


def test_metric_class_with_tensors() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (2, 8, 8, 4))
    noisy = np.where(rng.random(labels.shape) < 0.1, 0, labels)
    metric = fastseg.EvaluationMetric(labels=[1, 2], spacing=(1.0, 1.0, 2.0))
    one_hot = torch.nn.functional.one_hot(torch.from_numpy(noisy), 3).permute(0, 4, 1, 2, 3)
    metric(one_hot.float(), torch.from_numpy(labels)[:, None])
    metric(noisy, labels)
    assert len(metric.results) == 4
    expected = fastseg.evaluate(noisy[1], labels[1], labels=[1, 2], spacing=(1.0, 1.0, 2.0))
    assert metric.results[1].to_json() == expected.to_json()
    means = metric.aggregate()
    dice = np.mean([r["1"]["dice"] for r in metric.results])
    assert means["1"]["dice"] == pytest.approx(dice)
    metric.reset()
    assert metric.results == []
    with pytest.raises(ValueError, match="spatial axes"):
        metric(np.zeros((4, 4)), np.zeros((4, 4)))


# -- the command line ---------------------------------------------------------------------


def _write(path: Path, labels: np.ndarray, spacing: tuple[float, ...] = (1.0, 2.0, 3.0)) -> None:
    nibabel = pytest.importorskip("nibabel")
    nibabel.save(nibabel.Nifti1Image(labels, np.diag([*spacing, 1.0])), str(path))


def test_cli_pairs_folders_and_writes_nnunet_summary(tmp_path: Path) -> None:
    from fastseg.cli import main

    rng = np.random.default_rng(1)
    (tmp_path / "pred").mkdir()
    (tmp_path / "ref").mkdir()
    cases = {}
    for name in ("a.nii.gz", "b.nii.gz"):
        reference = rng.integers(0, 3, (6, 5, 4), dtype=np.uint8)
        prediction = np.where(rng.random(reference.shape) < 0.2, 0, reference).astype(np.uint8)
        _write(tmp_path / "pred" / name, prediction)
        _write(tmp_path / "ref" / name, reference)
        cases[name] = prediction, reference
    _write(tmp_path / "pred" / "lonely.nii.gz", reference)
    _write(tmp_path / "pred" / "c.nii.gz", reference[:3])
    _write(tmp_path / "ref" / "c.nii.gz", reference)
    out, summary_path = tmp_path / "m.csv", tmp_path / "summary.json"
    arguments = [str(tmp_path / "pred"), str(tmp_path / "ref"), "-o", str(out)]
    status = main(["evaluate", *arguments, "--summary", str(summary_path)])
    assert status == 1  # two cases failed, on a line each
    lines = out.read_text().splitlines()
    assert lines[0].startswith("case,class,values,tp,fp,fn,tn,dice")
    assert len(lines) == 1 + 2 * 2
    summary = json.loads(summary_path.read_text())
    assert set(summary) == {"metric_per_case", "mean", "foreground_mean"}
    assert len(summary["metric_per_case"]) == 2
    dices = []
    for entry, (name, (prediction, reference)) in zip(
        summary["metric_per_case"], sorted(cases.items()), strict=True
    ):
        assert entry["prediction_file"].endswith(name)
        for value in (1, 2):
            tp, fp, fn, tn = ref_impl.nnunet_tp_fp_fn_tn(reference == value, prediction == value)
            metrics = entry["metrics"][str(value)]
            assert (metrics["TP"], metrics["FP"], metrics["FN"], metrics["TN"]) == (tp, fp, fn, tn)
            assert metrics["n_ref"] == tp + fn
            assert metrics["Dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
            dices.append(metrics["Dice"])
    assert summary["foreground_mean"]["Dice"] == pytest.approx(np.mean(dices))


def test_cli_worker_processes_score_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``-j 2`` scores cases in worker processes, as every other command runs files; the
    table is the same as in one process, and an unpaired file fails on its own line."""
    from fastseg.cli import main

    rng = np.random.default_rng(3)
    for folder in ("pred", "ref"):
        (tmp_path / folder).mkdir()
    for name in ("a.nii.gz", "b.nii.gz", "c.nii.gz"):
        reference = rng.integers(0, 3, (7, 6, 5), dtype=np.uint8)
        _write(tmp_path / "ref" / name, reference)
        _write(tmp_path / "pred" / name, np.roll(reference, 1, axis=1))
    _write(tmp_path / "ref" / "unpaired.nii.gz", reference)
    tables = []
    for jobs in ("1", "2"):
        out = tmp_path / f"m{jobs}.csv"
        status = main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "ref"), "-o", str(out),
                       "-j", jobs, "--progress", "none"])  # fmt: skip
        assert status == 1
        err = capsys.readouterr().err
        failed = [line for line in err.splitlines() if line.startswith("failed:")]
        assert len(failed) == 1
        assert "unpaired.nii.gz: no prediction of that name" in failed[0]
        tables.append(out.read_text())
    assert tables[0] == tables[1]
    assert len(tables[0].splitlines()) == 1 + 3 * 2


def test_cli_single_files_and_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fastseg.cli import main

    labels = np.zeros((4, 4, 4), np.uint8)
    labels[1:3, 1:3, 1:3] = 1
    _write(tmp_path / "p.nii.gz", labels)
    _write(tmp_path / "r.nii.gz", np.roll(labels, 1, axis=0))
    out = tmp_path / "one.csv"
    assert main(["evaluate", str(tmp_path / "p.nii.gz"), str(tmp_path / "r.nii.gz"), "-o",
                 str(out), "--metrics", "overlap", "distance", "instances"]) == 0  # fmt: skip
    text = out.read_text()
    assert "pq" in text.splitlines()[0]
    assert len(text.splitlines()) == 2
    assert main(["evaluate", str(tmp_path / "missing"), str(tmp_path), "-o", str(out)]) == 2
    assert "neither a file nor a folder" in capsys.readouterr().err


def test_given_instance_maps_overlap_matching_and_size_bins() -> None:
    reference = np.zeros((1, 12), np.uint8)
    reference[0, 0:4] = 1
    reference[0, 6:12] = 1
    prediction = np.zeros((1, 12), np.uint8)
    prediction[0, 0:6] = 1  # one predicted object over the first reference object
    prediction[0, 9:12] = 1  # half of the second
    # The reference's two objects, given as an instance map with its own ids.
    ref_ids = np.zeros((1, 12), np.uint16)
    ref_ids[0, 0:4], ref_ids[0, 6:12] = 7, 9
    result = fastseg.evaluate(prediction, reference, metrics=["instances"], ref_instances=ref_ids,
                              size_bins_mm3=(0, 5, 100))  # fmt: skip
    row = result["1"]
    # IoUs: 4/6 with the first, 3/6 with the second: both >= 0.5.
    assert (row["instance_tp"], row["instance_fp"], row["instance_fn"]) == (2, 0, 0)
    assert row["sq"] == pytest.approx((4 / 6 + 3 / 6) / 2)
    assert row["recall_0_5mm3"] == 1.0
    assert row["recall_5_100mm3"] == 1.0
    pairs = result.pairs
    assert pairs is not None
    assert pairs.ref_id.tolist() == [7, 9]
    strict = fastseg.evaluate(prediction, reference, metrics=["instances"], ref_instances=ref_ids,
                              iou_threshold=0.6)  # fmt: skip
    assert strict["1"]["instance_tp"] == 1
    assert strict["1"]["instance_fn"] == 1
    loose = fastseg.evaluate(prediction, reference, metrics=["instances"], ref_instances=ref_ids,
                             iou_threshold=0.6, matching="overlap")  # fmt: skip
    assert loose["1"]["instance_tp"] == 2


def test_ignore_label_is_not_a_class() -> None:
    reference = np.array([[1, 1, 4, 4, 0]], np.uint8)
    prediction = np.array([[1, 0, 1, 4, 1]], np.uint8)
    result = fastseg.evaluate(prediction, reference, ignore_label=4, metrics=["overlap"])
    assert list(result) == ["1"]
    counts = ref_impl.overlap_reference(prediction, reference, [1], ignore=4)
    assert {k: result["1"][k] for k in counts} == counts


@pytest.mark.parametrize("kind", ["eroded", "shifted"])
def test_equals_panoptica(torso: tuple[np.ndarray, tuple[float, ...]], kind: str) -> None:
    """Needs panoptica, which pins older numpy and pandas than the test extra: it runs
    where panoptica is importable, and is skipped elsewhere."""
    package = pytest.importorskip("panoptica")
    from panoptica.metrics import Metric

    reference, _ = torso
    prediction = _predictions(reference)[kind]
    # Split the organs into pieces, so that there are instances to match and miss.
    prediction = np.where(np.arange(prediction.shape[1])[None, :, None] % 23 == 0, 0, prediction)
    values = [int(v) for v in np.unique(reference) if v]
    result = fastseg.evaluate(prediction, reference, labels=values, metrics=["instances"])
    evaluator = package.Panoptica_Evaluator(
        expected_input=package.InputType.SEMANTIC,
        instance_approximator=package.ConnectedComponentsInstanceApproximator(),
        instance_matcher=package.NaiveThresholdMatching(),
        instance_metrics=[Metric.IOU],
        global_metrics=[],
        decision_metric=None,
        decision_threshold=None,
        log_times=False,
        verbose=False,
    )
    for value in values:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outcome = evaluator.evaluate(
                (prediction == value).astype(np.uint8),
                (reference == value).astype(np.uint8),
                verbose=False,
            )
        expected = next(iter(outcome.values()))
        row = result[str(value)]
        assert row["instance_tp"] == expected.tp
        assert row["instance_fp"] == expected.fp
        assert row["instance_fn"] == expected.fn
        for key in ("sq", "rq", "pq"):
            assert row[key] == pytest.approx(getattr(expected, key)), key


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    from fastseg.cli import main

    assert main(["evaluate", "--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:\n  fastseg evaluate" in out
    assert "exit status:" in out
    assert main(["--help"]) == 0
    assert "evaluate" in capsys.readouterr().out

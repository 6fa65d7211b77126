"""Report rows for scoring predictions: ``fastseg.evaluate`` against MONAI's metrics on
CPU, DeepMind's surface-distance and panoptica.

References are the torso labels (384 x 320 x 89, 11 organs, 0.78 x 0.78 x 5 mm) and a
CT-sized synthetic case built here: 40 ellipsoid organs in 512 x 512 x 240 uint8 voxels
(0.8 x 0.8 x 2 mm, Fortran order). Predictions are made from them: the torso dilated in
plane and shifted by two voxels; the synthetic organs redrawn with jittered centres and
radii. MONAI's anchor includes its input format (one channel per class, float32), which
its metrics need; it runs Dice, HD95, the symmetric average surface distance and NSD,
class by class as MONAI's metrics loop internally. On the CT-sized case MONAI takes
about ten seconds per class and metric, so that row scores four of the forty classes,
fastseg the same four; surface-distance scores all forty (about two seconds a class).
panoptica runs on the torso and on the CT-sized case. Checks compare every metric of
every class.

The rows join the table of ``report.py`` through its ``ROW_MODULES``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from harness import Row, Verdict, anchor_module
from inputs import Volumes

import fastseg

TOLERANCE_MM = 2.0
CT_SHAPE = (512, 512, 240)
CT_SPACING = (0.8, 0.8, 2.0)
CT_SUBSET = [5, 15, 25, 35]


def ellipsoid_organs(seed: int = 0, jitter: bool = False) -> np.ndarray:
    """40 ellipsoids (radii 10-70 voxels in plane, 5-35 across) in a CT-sized volume; later
    organs overwrite earlier ones where they meet. ``jitter`` moves every centre by about
    two voxels and scales the radii by up to 10 %: a prediction of the same organs."""
    rng = np.random.default_rng(seed)
    noise = np.random.default_rng(seed + 1)
    labels = np.zeros(CT_SHAPE, np.uint8, order="F")
    shape = np.array(CT_SHAPE)
    for value in range(1, 41):
        radii = rng.uniform([10, 10, 5], [70, 70, 35])
        centre = rng.uniform(radii, shape - radii)
        if jitter:
            centre = centre + noise.normal(0, 2.0, 3)
            radii = radii * noise.uniform(0.9, 1.1, 3)
        low = np.maximum(np.floor(centre - radii).astype(int), 0)
        high = np.minimum(np.ceil(centre + radii).astype(int) + 1, shape)
        grid = np.ogrid[low[0] : high[0], low[1] : high[1], low[2] : high[2]]
        inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1
        box = labels[low[0] : high[0], low[1] : high[1], low[2] : high[2]]
        box[inside] = value
    return labels


def _torso_case(v: Volumes) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    def build() -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
        from scipy import ndimage

        reference = v["torso_labels"]
        dilated = ndimage.grey_dilation(reference, size=(3, 3, 1))
        prediction = np.asfortranarray(np.roll(dilated, 2, axis=0))
        return prediction, reference, (0.782, 0.782, 5.0)

    case: tuple[np.ndarray, np.ndarray, tuple[float, ...]] = v.derived("torso prediction", build)
    return case


def _ct_case(v: Volumes) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    def build() -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
        return ellipsoid_organs(jitter=True), ellipsoid_organs(), CT_SPACING

    case: tuple[np.ndarray, np.ndarray, tuple[float, ...]] = v.derived("ct organs", build)
    return case


def _classes(prediction: np.ndarray, reference: np.ndarray) -> list[int]:
    return [int(c) for c in np.union1d(np.unique(reference), np.unique(prediction)) if c]


def monai_metrics(
    prediction: np.ndarray, reference: np.ndarray, spacing: tuple[float, ...], values: list[int]
) -> dict[str, np.ndarray]:
    """Dice, HD95, ASSD and NSD per class with MONAI's metric classes on CPU tensors."""
    torch = anchor_module("torch")
    metrics = anchor_module("monai.metrics")
    results: dict[str, list[float]] = {"dice": [], "hd95": [], "assd": [], "nsd": []}
    for value in values:
        # One class at a time: the one-hot input of all classes at once needs gigabytes.
        y_pred = torch.from_numpy((prediction == value)[None, None].astype(np.float32))
        y = torch.from_numpy((reference == value)[None, None].astype(np.float32))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dice = metrics.DiceMetric(include_background=True)(y_pred, y)
            hd95 = metrics.HausdorffDistanceMetric(include_background=True, percentile=95)(
                y_pred, y, spacing=spacing
            )
            assd = metrics.SurfaceDistanceMetric(include_background=True, symmetric=True)(
                y_pred, y, spacing=spacing
            )
            nsd = metrics.SurfaceDiceMetric([TOLERANCE_MM], include_background=True)(
                y_pred, y, spacing=spacing
            )
        for name, tensor in (("dice", dice), ("hd95", hd95), ("assd", assd), ("nsd", nsd)):
            results[name].append(float(tensor.flatten()[0]))
    return {name: np.array(values_) for name, values_ in results.items()}


def surface_distance_metrics(
    prediction: np.ndarray, reference: np.ndarray, spacing: tuple[float, ...], values: list[int]
) -> dict[str, np.ndarray]:
    """HD95, the two directed average distances and NSD per class with surface-distance."""
    package = anchor_module("surface_distance")
    results: dict[str, list[float]] = {"hd95": [], "asd_ref_to_pred": [], "nsd": []}
    for value in values:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            distances = package.compute_surface_distances(
                reference == value, prediction == value, spacing
            )
        results["hd95"].append(package.compute_robust_hausdorff(distances, 95))
        results["asd_ref_to_pred"].append(package.compute_average_surface_distance(distances)[0])
        results["nsd"].append(package.compute_surface_dice_at_tolerance(distances, TOLERANCE_MM))
    return {name: np.array(values_) for name, values_ in results.items()}


def _torso_folder(v: Volumes) -> tuple[str, str, str]:
    """Three torso cases (reference; prediction dilated and shifted by 0, 1, 2 voxels) as
    .nii.gz files in a temporary folder: (predictions, references, scratch)."""

    def build() -> tuple[str, str, str]:
        import tempfile
        from pathlib import Path

        import nibabel

        from fastseg._geometry import unpack_image

        folder = Path(tempfile.mkdtemp(prefix="fastseg-evaluate-"))
        image = nibabel.load(str(v.folder / "torso_labels.nii.gz"))
        reference, affine = unpack_image(image, "labels")
        prediction, _, _ = _torso_case(v)
        for sub in ("pred", "ref", "out"):
            (folder / sub).mkdir()
        for case in range(3):
            name = f"case_{case:03d}.nii.gz"
            shifted = np.asfortranarray(np.roll(prediction, case, axis=1))
            nibabel.save(nibabel.Nifti1Image(shifted, affine), str(folder / "pred" / name))
            nibabel.save(nibabel.Nifti1Image(reference, affine), str(folder / "ref" / name))
        return str(folder / "pred"), str(folder / "ref"), str(folder / "out")

    folders: tuple[str, str, str] = v.derived("torso folder", build)
    return folders


def nnunet_folder_metrics(predictions: str, references: str) -> dict[str, Any]:
    """nnU-Net v2's ``compute_metrics_on_folder`` with one worker, mirrored line by line
    (its module does not import without nnU-Net's network and data-loading packages):
    SimpleITK reads both files, every label becomes a mask, tp/fp/fn/tn are counted."""
    import os

    sitk = anchor_module("SimpleITK")
    per_case = []
    for name in sorted(os.listdir(predictions)):
        seg_ref = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(references, name)))
        seg_pred = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(predictions, name)))
        labels = [int(c) for c in np.unique(seg_ref) if c]
        metrics = {}
        for label in labels:
            mask_ref, mask_pred = seg_ref == label, seg_pred == label
            tp = int(np.sum(mask_ref & mask_pred))
            fp = int(np.sum(~mask_ref & mask_pred))
            fn = int(np.sum(mask_ref & ~mask_pred))
            tn = int(np.sum(~mask_ref & ~mask_pred))
            dice = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
            metrics[label] = {"Dice": dice, "TP": tp, "FP": fp, "FN": fn, "TN": tn}
        per_case.append(metrics)
    return {"metric_per_case": per_case}


def same_dice(fast: int, anchor: dict[str, Any]) -> Verdict:
    """fastseg's summary.json Dice equal to the mirrored nnU-Net's, case by case."""
    import json
    from pathlib import Path

    if fast != 0:
        return Verdict(False, f"the command exited with status {fast}")
    summary = json.loads(Path(_FOLDER_SUMMARY[0]).read_text())
    for mine, theirs in zip(summary["metric_per_case"], anchor["metric_per_case"], strict=True):
        for label, metrics in theirs.items():
            if not np.isclose(mine["metrics"][str(label)]["Dice"], metrics["Dice"]):
                return Verdict(False, f"Dice of label {label} differs")
    return Verdict(True, f"Dice of {len(anchor['metric_per_case'])} cases, every label")


_FOLDER_SUMMARY: list[str] = []


def panoptica_metrics(
    prediction: np.ndarray, reference: np.ndarray, values: list[int]
) -> dict[str, np.ndarray]:
    """Instance TP/FP/FN, SQ, RQ and PQ per class with panoptica: connected components
    of each class's binary masks, naive threshold matching at IoU 0.5."""
    package = anchor_module("panoptica")
    from panoptica.metrics import Metric

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
    names = {"instance_tp": "tp", "instance_fp": "fp", "instance_fn": "fn", "sq": "sq",
             "rq": "rq", "pq": "pq"}  # fmt: skip
    results: dict[str, list[float]] = {name: [] for name in names}
    for value in values:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outcome = evaluator.evaluate(
                (prediction == value).astype(np.uint8),
                (reference == value).astype(np.uint8),
                verbose=False,
            )
        result = next(iter(outcome.values()))
        for name, attribute in names.items():
            results[name].append(float(getattr(result, attribute)))
    return {name: np.array(values_) for name, values_ in results.items()}


def same_metrics(fast: fastseg.Evaluation, anchor: dict[str, np.ndarray]) -> Verdict:
    """Every anchor metric equal to fastseg's column (relative 1e-5: MONAI's float32)."""
    worst = 0.0
    for name, expected in anchor.items():
        got = fast.column(name)
        if got.shape != expected.shape:
            return Verdict(False, f"{name}: {got.size} classes, anchor {expected.size}")
        if not np.allclose(got, expected, rtol=1e-5, atol=0, equal_nan=True):
            bad = int(np.argmax(~np.isclose(got, expected, rtol=1e-5, equal_nan=True)))
            return Verdict(False, f"{name} of class {bad}: {got[bad]} != {expected[bad]}")
        finite = np.isfinite(expected) & (expected != 0)
        if finite.any():
            worst = max(worst, float(np.max(np.abs(got[finite] / expected[finite] - 1))))
    names = ", ".join(anchor)
    return Verdict(True, f"{names} of {len(fast)} classes, within {worst:.1e}")


def rows(v: Volumes) -> list[Row]:
    def torso(surface: str = "monai", **options: Any) -> fastseg.Evaluation:
        prediction, reference, spacing = _torso_case(v)
        return fastseg.evaluate(prediction, reference, spacing=spacing, surface=surface,  # type: ignore[arg-type]
                                tolerance_mm=TOLERANCE_MM, **options)  # fmt: skip

    def torso_values() -> list[int]:
        prediction, reference, _ = _torso_case(v)
        return _classes(prediction, reference)

    def ct(surface: str = "monai", **options: Any) -> fastseg.Evaluation:
        prediction, reference, spacing = _ct_case(v)
        return fastseg.evaluate(prediction, reference, spacing=spacing, surface=surface,  # type: ignore[arg-type]
                                tolerance_mm=TOLERANCE_MM, **options)  # fmt: skip

    def panoptica_anchor(case: Any) -> dict[str, np.ndarray]:
        prediction, reference, _ = case(v)
        return panoptica_metrics(prediction, reference, _classes(prediction, reference))

    def folder() -> int:
        import contextlib
        import io

        from fastseg.cli import main

        predictions, references, out = _torso_folder(v)
        _FOLDER_SUMMARY[:] = [f"{out}/summary.json"]
        with contextlib.redirect_stdout(io.StringIO()):  # the table goes to stdout
            return main([
                "evaluate", predictions, references, "--metrics", "overlap", "--overwrite",
                "-o", f"{out}/metrics.csv", "--summary", _FOLDER_SUMMARY[0],
            ])  # fmt: skip

    return [
        Row(
            "fastseg evaluate (command) on a folder of 3 torso cases, Dice/IoU/TP/FP/FN",
            folder,
            "nnU-Net compute_metrics_on_folder, 1 worker (mirrored)",
            lambda: nnunet_folder_metrics(*_torso_folder(v)[:2]),
            target=0.2,
            check=same_dice,
        ),
        Row(
            "evaluate Dice+HD95+ASSD+NSD, torso (11 classes)",
            lambda: torso(),
            "MONAI metrics (CPU), per class",
            lambda: monai_metrics(*_torso_case(v), torso_values()),
            target=0.05,
            check=same_metrics,
        ),
        Row(
            "evaluate surface='deepmind', torso (11 classes)",
            lambda: torso("deepmind"),
            "surface-distance, summed over classes",
            lambda: surface_distance_metrics(*_torso_case(v), torso_values()),
            target=0.1,
            check=same_metrics,
        ),
        Row(
            "evaluate Dice+HD95+ASSD+NSD, CT-sized (512x512x240), 4 of 40 classes",
            lambda: ct(labels=CT_SUBSET),
            "MONAI metrics (CPU), per class",
            lambda: monai_metrics(*_ct_case(v), CT_SUBSET),
            target=0.05,
            check=same_metrics,
        ),
        Row(
            "evaluate surface='deepmind', CT-sized (512x512x240), 40 classes",
            lambda: ct("deepmind"),
            "surface-distance, summed over classes",
            lambda: surface_distance_metrics(*_ct_case(v), _classes(*_ct_case(v)[:2])),
            target=0.1,
            check=same_metrics,
            max_repeat=1,
        ),
        Row(
            "evaluate instances (PQ), torso (11 classes)",
            lambda: torso(metrics=["instances"]),
            "panoptica naive threshold matching, per class",
            lambda: panoptica_anchor(_torso_case),
            target=0.05,
            check=same_metrics,
            max_repeat=1,
        ),
        Row(
            "evaluate instances (PQ), CT-sized (512x512x240, 40 classes)",
            lambda: ct(metrics=["instances"]),
            "panoptica naive threshold matching, per class",
            lambda: panoptica_anchor(_ct_case),
            target=0.05,
            check=same_metrics,
        ),
    ]

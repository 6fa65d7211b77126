"""The ``evaluate`` command: score predicted label maps against references, folder by folder.

Files pair by name as nnU-Net's ``compute_metrics_on_folder`` pairs them: every
prediction needs a reference of the same name, and every reference a prediction. The
table has one row per case and class; the summary is nnU-Net v2's ``summary.json``
(``metric_per_case``, ``mean``, ``foreground_mean``), so scripts that read nnU-Net's
read it.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import os
import sys
from typing import Any

import numpy as np

import fastseg
from fastseg._batch import USER_ERRORS, Outcome, describe_error, is_volume
from fastseg.cli.batch import Job, UsageError
from fastseg.cli.common import (
    EXIT_FAILED,
    OutputExists,
    add_command,
    as_nibabel,
    batch_parent,
    execute,
    one_label_map,
    shared_schema,
)
from fastseg.evaluate import Evaluation, evaluate
from fastseg.formats.registry import volume_suffix_list

__all__ = ["register", "run_evaluate"]

# nnU-Net's names for the overlap counts of one class.
_NNUNET_METRICS = ("Dice", "IoU", "FP", "TP", "FN", "TN", "n_pred", "n_ref")


def _case_files(path: str, what: str) -> dict[str, str]:
    """``{file name: path}`` of the label volume files of a folder (or one file)."""
    if os.path.isfile(path):
        return {os.path.basename(path): path}
    if not os.path.isdir(path):
        raise UsageError(f"the {what} {path} is neither a file nor a folder")
    return {name: os.path.join(path, name) for name in sorted(os.listdir(path)) if is_volume(name)}


def pair_cases(
    predictions: str, references: str
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """(case name, prediction path, reference path) of every pair, and (path, reason)
    of every file without a partner."""
    pred = _case_files(predictions, "predictions")
    ref = _case_files(references, "references")
    if os.path.isfile(predictions) and os.path.isfile(references):
        return [(os.path.basename(predictions), predictions, references)], []
    pairs = [(name, pred[name], ref[name]) for name in sorted(pred) if name in ref]
    problems = [(pred[name], f"no reference of that name in {references}") for name in sorted(pred)
                if name not in ref]  # fmt: skip
    problems += [(ref[name], f"no prediction of that name in {predictions}") for name in sorted(ref)
                 if name not in pred]  # fmt: skip
    return pairs, problems


def score_case(options: dict[str, Any], job: Job) -> Evaluation:
    """Score one pair of files (``job.data``: case name, prediction, reference); runs in
    a worker process with ``-j``."""
    _, pred_path, ref_path = job.data
    loaded = fastseg.load(pred_path), fastseg.load(ref_path)
    for image in loaded:
        one_label_map(image)
    prediction, reference = (as_nibabel(image) for image in loaded)
    if prediction.shape != reference.shape:
        raise ValueError(f"shape {prediction.shape} differs from the reference's {reference.shape}")
    return evaluate(prediction, reference, **options)


def _number(value: Any) -> Any:
    """A JSON-safe number: NaN as null and infinity as a string, as nnU-Net writes them
    through its own encoder."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _class_key(values: tuple[int, ...]) -> str:
    """nnU-Net's key of a label (``"1"``) or a region (``"(1, 2, 3)"``)."""
    return str(values[0]) if len(values) == 1 else str(tuple(values))


def nnunet_summary(
    results: list[tuple[str, Evaluation]], predictions: str, references: str
) -> dict[str, Any]:
    """nnU-Net v2's ``summary.json`` content for the scored cases."""
    per_case = []
    collected: dict[str, dict[str, list[float]]] = {}
    for name, result in results:
        metrics: dict[str, dict[str, Any]] = {}
        for row, c in enumerate(result.classes):
            tp, fp, fn, tn = (int(result.columns[k][row]) for k in ("tp", "fp", "fn", "tn"))
            entry = {
                "Dice": float(result.columns["dice"][row]),
                "IoU": float(result.columns["iou"][row]),
                "FP": fp, "TP": tp, "FN": fn, "TN": tn,
                "n_pred": fp + tp, "n_ref": fn + tp,
            }  # fmt: skip
            key = _class_key(c.values)
            metrics[key] = {k: _number(v) for k, v in entry.items()}
            for k, v in entry.items():
                collected.setdefault(key, {}).setdefault(k, []).append(float(v))
        per_case.append(
            {
                "metrics": metrics,
                "prediction_file": os.path.join(predictions, name)
                if os.path.isdir(predictions)
                else predictions,
                "reference_file": os.path.join(references, name)
                if os.path.isdir(references)
                else references,
            }
        )
    means: dict[str, dict[str, float]] = {}
    for key, metrics_ in collected.items():
        means[key] = {}
        for metric, values in metrics_.items():
            array = np.array(values)
            finite = array[~np.isnan(array)]
            means[key][metric] = float(finite.mean()) if finite.size else math.nan
    foreground = {
        metric: float(np.mean([means[key][metric] for key in means])) if means else math.nan
        for metric in _NNUNET_METRICS
    }
    return {
        "foreground_mean": {k: _number(v) for k, v in foreground.items()},
        "mean": {key: {k: _number(v) for k, v in m.items()} for key, m in means.items()},
        "metric_per_case": per_case,
    }


def _write_table(path: str, results: list[tuple[str, Evaluation]]) -> None:
    from fastseg._files import atomic_path

    columns: list[str] = []
    for _, result in results:
        for column in result.columns:
            if column not in columns:
                columns.append(column)
    with (
        atomic_path(path, suffix=".csv") as temporary,
        open(temporary, "w", newline="", encoding="utf-8") as stream,
    ):
        writer = csv.DictWriter(stream, fieldnames=["case", "class", "values", *columns])
        writer.writeheader()
        for name, result in results:
            for record in result.to_records():
                writer.writerow({"case": name, **record})


def run_evaluate(args: argparse.Namespace) -> int:
    if args.tolerance < 0:
        raise UsageError(f"--tolerance must be >= 0, got {args.tolerance}")
    pairs, problems = pair_cases(args.predictions, args.references)
    for output in (args.output, args.summary):
        if output is not None and os.path.exists(output) and not args.overwrite:
            raise OutputExists(f"{output} exists (--overwrite replaces it)")
    if not pairs and not problems:
        raise UsageError(f"no label files in {args.predictions} and {args.references}")
    options: dict[str, Any] = {
        "metrics": args.metrics,
        "tolerance_mm": args.tolerance,
        "surface": args.surface,
        "empty": args.empty,
    }
    if args.schema is not None:
        try:
            options["labels"] = shared_schema(args.schema)
        except USER_ERRORS as error:
            raise UsageError(
                f"--schema {args.schema}: {describe_error(error, args.schema)}"
            ) from None
    elif args.labels:
        options["labels"] = args.labels
    jobs = [Job(source=pred_path, data=(name, pred_path, ref_path))
            for name, pred_path, ref_path in pairs]  # fmt: skip
    unpaired = [Outcome(path, "failed", reason) for path, reason in problems]
    status, outcomes = execute(
        args, functools.partial(score_case, options), jobs, unpaired, noun="case"
    )
    names = {job.source: job.data[0] for job in jobs}
    results = [(names[o.source], o.result) for o in outcomes if o.status == "done"]
    if results:
        _write_table(args.output, results)
        if args.summary is not None:
            from fastseg._files import write_text_atomically

            summary = nnunet_summary(results, args.predictions, args.references)
            write_text_atomically(args.summary, json.dumps(summary, indent=1) + "\n")
    elif status == EXIT_FAILED and not args.quiet:
        print(f"no case scored: {args.output} not written", file=sys.stderr)
    return status


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "evaluate",
        parents=[batch_parent()],
        summary="score predicted label maps against references (Dice, HD95, NSD, PQ)",
        description="Score every prediction against the reference of the same file name, "
        "class by class: overlap counts, Dice and IoU, and (--metrics distance) surface "
        "distances, (--metrics instances) instance matching. Writes one CSV row per case "
        "and class and, with --summary, nnU-Net v2's summary.json. Files without a "
        "partner, or whose shapes or affines disagree, fail on one line each; the rest "
        "are scored.",
        examples=(
            """\
  fastseg evaluate predictions/ labelsTs/ -o metrics.csv --summary summary.json
  fastseg evaluate pred/ ref/ --schema dataset.json --metrics overlap distance -o m.csv
  fastseg evaluate pred.nii.gz ref.nii.gz --tolerance 2 -o case.csv"""
        ),
    )
    endings = volume_suffix_list()
    parser.add_argument("predictions", help=f"folder (or file) of predicted label maps ({endings})")
    parser.add_argument("references", help="folder (or file) of reference label maps")
    parser.add_argument("-o", "--output", required=True, help="CSV table to write")
    parser.add_argument("--summary", help="nnU-Net v2 summary.json to write")
    parser.add_argument("--schema", help="classes (and regions) from a schema file")
    parser.add_argument(
        "--labels", type=int, nargs="+", help="the label values to score (default: all present)"
    )
    parser.add_argument(
        "--metrics",
        nargs="+",
        choices=("overlap", "distance", "instances"),
        default=["overlap", "distance"],
        help="what to compute (default: overlap distance)",
    )
    parser.add_argument(
        "--tolerance", type=float, default=1.0, help="NSD tolerance in mm (default 1)"
    )
    parser.add_argument(
        "--surface", choices=("monai", "deepmind"), default="monai", help="distance definitions"
    )
    parser.add_argument(
        "--empty", choices=("nnunet", "monai", "one"), default="nnunet",
        help="convention for classes absent from a map (default nnunet)",
    )  # fmt: skip
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing table or summary"
    )
    parser.set_defaults(handler=run_evaluate)

"""The ``index`` command: a sample index file per label map, for class-balanced crops."""

from __future__ import annotations

import argparse
import functools
import os
from dataclasses import dataclass
from typing import Any

import fastseg
from fastseg._batch import expand, split_suffix
from fastseg.cli.batch import Job, UsageError, prepare_folder
from fastseg.cli.common import (
    add_command,
    add_connectivity,
    add_inputs,
    add_overwrite_choice,
    batch_parent,
    execute,
    non_negative,
    policy,
)
from fastseg.sample_index import SUFFIX as SAMPLE_INDEX_SUFFIX
from fastseg.sampling import NNUNET_PER_CLASS

SUFFIX = SAMPLE_INDEX_SUFFIX


@dataclass(frozen=True)
class IndexOptions:
    per_class: int | None
    fraction: float | None
    per_instance: int | None
    nnunet: bool
    seed: int
    connectivity: int | None


def index_job(options: IndexOptions, job: Job) -> dict[str, Any]:
    """Count, box and sample one label map; write its index file."""
    image = fastseg.load(job.source)
    index = fastseg.SampleIndex.build(
        image.labels,
        affine=image.affine,
        per_class=NNUNET_PER_CLASS if options.nnunet else options.per_class,
        fraction=options.fraction,
        per_instance=options.per_instance,
        mode="nnunet" if options.nnunet else None,
        seed=options.seed,
        connectivity=options.connectivity,  # type: ignore[arg-type]
    )
    prepare_folder(job.outputs[0])
    fastseg.write_index(job.outputs[0], index)
    return {"classes": int(index.ids.size), "locations": int(index.indices.size)}


def _index_path(path: str, base: str | None, out: str | None) -> str:
    """``case.nii.gz`` -> ``case.fsidx`` below ``out`` (at its path below a folder argument),
    or ``case.index.fsidx`` beside the input."""
    if out is None:
        return split_suffix(path)[0] + ".index" + SUFFIX
    relative = os.path.relpath(path, base) if base else os.path.basename(path)
    return os.path.join(out, split_suffix(relative)[0] + SUFFIX)


def run_index(args: argparse.Namespace) -> int:
    if args.nnunet and (args.fraction is not None or args.per_class != NNUNET_PER_CLASS):
        raise UsageError("--nnunet sets nnU-Net's sizes; leave out --per-class and --fraction")
    exclude = [args.out] if args.out is not None else []
    inputs, problems = expand(args.inputs, exclude=exclude)
    problems = list(problems)
    rules = policy(args)
    rules.inputs.update(os.path.realpath(item.path) for item in inputs)
    jobs: list[Job] = []
    for item in inputs:
        target = _index_path(item.path, item.base, args.out)
        refused = rules.check(item.path, (target,))
        if refused is None:
            jobs.append(Job(item.path, (target,)))
        else:
            problems.append(refused)
    options = IndexOptions(
        per_class=args.per_class or None,
        fraction=args.fraction,
        per_instance=args.per_instance or None,
        nnunet=args.nnunet,
        seed=args.seed,
        connectivity=args.connectivity,
    )
    status, _ = execute(args, functools.partial(index_job, options), jobs, problems)
    return status


def _fraction(value: str) -> float:
    number: float = non_negative(float)(value)
    if not 0 < number <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {value!r}")
    return number


def register(commands: Any) -> None:
    """Add the ``index`` command to the ``commands`` subparsers."""
    parser = add_command(
        commands,
        "index",
        parents=[batch_parent()],
        summary="sample index files: voxel counts, boxes and sampled locations per class",
        description="Write one sample index file (.fsidx) per label map: per class (and per "
        "instance) the voxel count, the bounding box and a uniform sample of voxel "
        "locations, which the crop transforms of fastseg.transforms_sampling draw crop "
        "centres from without reading the label map. Files are checked against the label "
        "map's shape and affine when loaded.",
        examples=(
            """\
  fastseg index labelsTr/ -o index/ --nnunet
  fastseg index labelsTr/ -o index/ --per-class 5000 --per-instance 200 -j 2
  fastseg index case.nii.gz                     # writes case.index.fsidx beside it"""
        ),
    )
    add_inputs(parser)
    output = parser.add_argument_group("output")
    output.add_argument(
        "-o",
        "--out",
        metavar="FOLDER",
        help="output folder: <name>.fsidx at each input's path below a folder argument; "
        "default: <name>.index.fsidx beside each input",
    )
    add_overwrite_choice(output)
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument(
        "--per-class",
        type=non_negative(int),
        default=NNUNET_PER_CLASS,
        metavar="N",
        help="locations per class (default 10000; 0: every voxel)",
    )
    sampling.add_argument(
        "--fraction",
        type=_fraction,
        metavar="F",
        help="at least this fraction of each class's voxels",
    )
    sampling.add_argument(
        "--nnunet",
        action="store_true",
        help="nnU-Net v2's sample sizes: max(min(10000, n), ceil(0.01 n)) per class",
    )
    sampling.add_argument(
        "--per-instance",
        type=non_negative(int),
        default=0,
        metavar="N",
        help="also this many locations per instance (connected component of a class)",
    )
    add_connectivity(sampling, of="the instances")
    sampling.add_argument(
        "--seed", type=non_negative(int), default=0, help="seed of the sample (default 0)"
    )
    parser.set_defaults(handler=run_index)

"""``fastseg clean``: remove small components, keep the largest ones, fill holes."""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

import fastseg
from fastseg.cli.batch import Job, UsageError, plan, prepare_folder
from fastseg.cli.common import (
    add_command,
    add_connectivity,
    add_inputs,
    batch_parent,
    execute,
    non_negative,
    output_parent,
    policy,
    positive_int,
)
from fastseg.components import Connectivity


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "clean",
        parents=[batch_parent(), output_parent("_clean")],
        summary="remove small components (dust), keep the largest ones, fill holes",
        description="Post-process label maps, every label on its own: remove connected "
        "components smaller than a size (--dust voxels, --dust-mm3 volume), then keep the "
        "k largest components of every label (--largest-k), then fill holes "
        "(--fill-holes).",
        examples="""\
  fastseg clean pred.nii.gz --largest-k 1                  # nnU-Net's largest component
  fastseg clean predictions/ -o cleaned/ --dust-mm3 50 -j 2
  fastseg clean seg.nii.gz --dust 100 --largest-k 2 --connectivity 6 --fill-holes""",
    )
    add_inputs(parser)
    parser.add_argument(
        "--dust", type=non_negative(int), metavar="VOXELS", help="smallest size kept"
    )
    parser.add_argument(
        "--dust-mm3",
        type=non_negative(float),
        metavar="VOLUME",
        help="smallest volume kept, in mm³",
    )
    parser.add_argument(
        "--largest-k", type=positive_int, metavar="K", help="keep the K (>= 1) largest components"
    )
    parser.add_argument(
        "--foreground",
        action="store_true",
        help="with --largest-k and --fill-holes: treat the foreground as one region",
    )
    parser.add_argument(
        "--fill-holes", action="store_true", help="fill background enclosed by a label"
    )
    add_connectivity(parser)
    parser.set_defaults(handler=run)


@dataclass(frozen=True)
class CleanOptions:
    dust: float | None
    dust_mm3: float | None
    largest_k: int | None
    foreground: bool
    connectivity: Connectivity | None
    fill_holes: bool


def clean_job(options: CleanOptions, job: Job) -> int:
    """Dust, then keep the largest components, then fill holes; returns the voxels changed.
    The layers of a Slicer file with overlapping segments are label maps of their own,
    cleaned one by one."""
    image = fastseg.load(job.source)
    if image.labels.ndim == 4 and image.format == "seg.nrrd":
        layers = [
            cleaned(options, image.labels[..., k], image.spacing)
            for k in range(image.labels.shape[3])
        ]
        labels = np.stack(layers, axis=3)
    else:
        labels = cleaned(options, image.labels, image.spacing)
    prepare_folder(job.outputs[0])
    fastseg.save(job.outputs[0], labels, like=image)
    return int(np.count_nonzero(labels != image.labels))


def cleaned(options: CleanOptions, labels: Any, spacing: tuple[float, ...]) -> Any:
    """One label map cleaned as ``options`` say."""
    if options.dust is not None:
        labels = fastseg.dust(labels, options.dust, connectivity=options.connectivity)
    if options.dust_mm3 is not None:
        labels = fastseg.dust(
            labels,
            options.dust_mm3,
            connectivity=options.connectivity,
            spacing=spacing,
        )
    if options.largest_k is not None:
        labels = fastseg.largest_k(
            labels,
            options.largest_k,
            connectivity=options.connectivity,
            per_label=not options.foreground,
        )
    if options.fill_holes:
        labels = fastseg.fill_holes(labels, per_label=not options.foreground)
    return labels


def run(args: argparse.Namespace) -> int:
    if (
        args.dust is None
        and args.dust_mm3 is None
        and args.largest_k is None
        and not args.fill_holes
    ):
        raise UsageError("say what to clean: --dust, --dust-mm3, --largest-k or --fill-holes")
    jobs, problems = plan(args.inputs, args.out, args.suffix, policy(args))
    options = CleanOptions(
        args.dust,
        args.dust_mm3,
        args.largest_k,
        args.foreground,
        args.connectivity,
        args.fill_holes,
    )
    return execute(args, functools.partial(clean_job, options), jobs, problems)[0]

"""What the commands share: the exit-status table, help layout, the options of batch
commands, the files read once per process, and running jobs with progress and a
summary."""

from __future__ import annotations

import argparse
import functools
import os
import re
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, Literal

from fastseg._batch import USER_ERRORS, Outcome, describe_error, one_line
from fastseg.cli.batch import Job, OutputPolicy, UsageError, open_executor, run_jobs
from fastseg.cli.progress import PROGRESS_MODES, Progress, Timer, summary
from fastseg.formats.registry import SeriesError, volume_format, volume_suffix_list
from fastseg.schema import Category, Schema
from fastseg.segmap import SegmentMap

if TYPE_CHECKING:
    from fastseg.io import LabelImage

# ---------------------------------------------------------------------- exit statuses

EXIT_OK = 0
"""Every input was done (or skipped: --skip-existing, a second name of one file)."""
EXIT_FAILED = 1
"""Something failed: some inputs (the others were done), or an output that exists."""
EXIT_USAGE = 2
"""Nothing ran: bad arguments, or a file every input needs (schema, mapping) is unusable."""
EXIT_INTERRUPTED = 130
"""Interrupted by Ctrl-C; other signals give 128 + their number (TERM 143, HUP 129)."""
EXIT_BROKEN_PIPE = 141
"""Whoever read the output stopped reading (``| head``): 128 + SIGPIPE, as for other tools."""

EXIT_CODES = f"""\
exit status:
  {EXIT_OK}    done: every input done or skipped (--skip-existing, or a second name
       of a file already named)
  {EXIT_FAILED}    failed: some inputs failed (one line each on stderr, the others were
       done), or an output exists (--overwrite replaces it)
  {EXIT_USAGE}    usage error: bad arguments, or a file every input needs is unusable;
       nothing ran
  {EXIT_INTERRUPTED}  interrupted by Ctrl-C (another signal: 128 + its number, TERM 143,
       HUP 129); files written so far are complete, none is half-written
  {EXIT_BROKEN_PIPE}  the reader of stdout stopped reading (e.g. | head)"""


class OutputExists(Exception):
    """The command's own output (a table, a folder) exists and --overwrite was not given;
    exit status 1 like an input whose output exists."""


class Interrupted(KeyboardInterrupt):
    """A signal (TERM, HUP) stops the command as Ctrl-C does."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


@contextmanager
def stopping_on_signals() -> Iterator[None]:
    """TERM and HUP interrupt the command as Ctrl-C does (the batch stops its workers and
    sums up); the previous handlers come back afterwards."""
    wanted = [signal.SIGTERM, getattr(signal, "SIGHUP", None)]
    previous: dict[int, Any] = {}
    try:
        for signum in wanted:
            if signum is not None:
                previous[signum] = signal.signal(signum, _raise_interrupted)
    except ValueError:  # not the main thread: leave the handlers alone
        pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# ------------------------------------------------------------------------------- help

FORMATTER = argparse.RawDescriptionHelpFormatter


def epilog(examples: str) -> str:
    """A command's help epilog: its examples, then the exit statuses."""
    return f"examples:\n{examples}\n\n{EXIT_CODES}"


def add_command(
    commands: Any,
    name: str,
    *,
    summary: str,
    description: str,
    examples: str,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> argparse.ArgumentParser:
    """Add a command to the ``commands`` subparsers, its help ending in examples and
    the exit statuses; flags are never abbreviated."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        parents=list(parents),
        formatter_class=FORMATTER,
        help=summary,
        description=description,
        epilog=epilog(examples),
        allow_abbrev=False,
    )
    return parser


def non_negative(kind: type[int] | type[float]) -> Callable[[str], Any]:
    """An argparse type: a number of ``kind`` that is at least 0."""

    def parse(value: str) -> Any:
        try:
            number = kind(value)
        except ValueError:
            number = -1
        if number < 0:
            noun = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {noun} >= 0, got {value!r}")
        return number

    return parse


def positive_int(value: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value!r}")
    return number


def _job_count(value: str) -> int:
    count: int = non_negative(int)(value)
    return count or os.cpu_count() or 1


def add_inputs(parser: argparse.ArgumentParser) -> None:
    """The INPUT arguments of a batch command."""
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help=f"label files ({volume_suffix_list()}), folders (every such "
        "file below them, hidden ones left out) or glob patterns",
    )


def batch_parent() -> argparse.ArgumentParser:
    """The options of every command that runs over files."""
    parent = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    group = parent.add_argument_group("running")
    group.add_argument(
        "-j",
        "--jobs",
        type=_job_count,
        default=1,
        metavar="N",
        help="worker processes (default 1: this process; 0: one per CPU)",
    )
    group.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the jobs on a dask.distributed cluster, e.g. tcp://10.0.0.5:8786 "
        "(needs the distributed package; the files must be reachable from the workers)",
    )
    group.add_argument(
        "--progress",
        choices=PROGRESS_MODES,
        default="auto",
        help="auto: a bar on a terminal when tqdm is installed (default); bar; lines: "
        "a line per finished input; none",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress, no summary and no line saying where the jobs run; failures only",
    )
    return parent


def output_parent(default_suffix: str) -> argparse.ArgumentParser:
    """``-o``, ``--suffix``, ``--overwrite`` and ``--skip-existing``."""
    parent = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    group = parent.add_argument_group("output")
    group.add_argument(
        "-o",
        "--out",
        metavar="PATH",
        help="output folder (inputs keep their names and their paths below a folder "
        "argument; a folder inside an input folder is not read as input), or a "
        "label file name for a single input (out.nii.gz; its ending chooses the format); "
        "default: beside each input with --suffix added",
    )
    group.add_argument(
        "--suffix",
        default=default_suffix,
        help=f"added to the input's name without --out (default {default_suffix})",
    )
    add_overwrite_choice(group)
    return parent


def add_overwrite_choice(group: Any) -> None:
    """``--overwrite`` or ``--skip-existing``: what to do with outputs that exist."""
    overwrite = group.add_mutually_exclusive_group()
    overwrite.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs (never an input)"
    )
    overwrite.add_argument(
        "--skip-existing",
        action="store_true",
        help="skip inputs whose outputs exist (to resume an interrupted run)",
    )


SCHEMA_HELP = (
    "what the ids mean: nnU-Net dataset.json, RedBrick taxonomy, label-list JSON, dcmqi "
    "metadata, ITK-SNAP labels, BIDS dseg.tsv or a .seg.nrrd (detected from the file)"
)
SEGMENT_MAP_HELP = (
    "which category each instance id is: RedBrick segmentMap JSON or export tasks.json "
    "(see --series), the SDK's labels.json, dcmqi metadata, a label-list JSON or a "
    "one-layer .seg.nrrd (classIds need --schema)"
)
SERIES_HELP = (
    "the series whose segment map --segment-map takes when its file holds several: a "
    "series name or TASK/NAME of a tasks.json, a volumeindex of labels.json, a label file "
    "index of dcmqi metadata (a file with one is used without asking)"
)


def add_names(
    parser: argparse.ArgumentParser, *, segment_map: bool = True, required: bool = False
) -> None:
    """``--schema``, and ``--segment-map`` with ``--series``: what the ids mean
    (``required`` for commands that cannot run without them)."""
    parser.add_argument("--schema", metavar="FILE", required=required, help=SCHEMA_HELP)
    if segment_map:
        add_segment_map(parser, required=required)


def add_segment_map(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """``--segment-map FILE`` and ``--series NAME``."""
    parser.add_argument("--segment-map", metavar="FILE", required=required, help=SEGMENT_MAP_HELP)
    parser.add_argument("--series", metavar="NAME", help=SERIES_HELP)


CONNECTIVITIES = (4, 6, 8, 18, 26)


def add_connectivity(parser: Any, *, of: str = "the components") -> None:
    """``--connectivity``, of ``of``; default full connectivity, as in the library."""
    parser.add_argument(
        "--connectivity",
        type=int,
        choices=CONNECTIVITIES,
        help=f"of {of} (default: full, 26 in 3-D and 8 in 2-D)",
    )


def policy(args: argparse.Namespace) -> OutputPolicy:
    return OutputPolicy(
        overwrite=getattr(args, "overwrite", False),
        skip_existing=getattr(args, "skip_existing", False),
    )


# ---------------------------------------------------------------------------- running


def execute(
    args: argparse.Namespace,
    work: Callable[[Job], Any],
    jobs: Sequence[Job],
    problems: Sequence[Outcome] = (),
    *,
    on_done: Callable[[Outcome, Progress], None] | None = None,
    noun: str = "file",
) -> tuple[int, list[Outcome]]:
    """Run ``work`` over ``jobs`` as ``args`` says; report as it goes and sum up.

    ``problems`` are inputs that failed or were skipped before running (reported first);
    ``on_done`` sees every done outcome (e.g. to print its result). Returns the exit
    status and every outcome, ``problems`` first. Interrupted (Ctrl-C, TERM, HUP), the
    workers are stopped, the summary counts what was done and :class:`KeyboardInterrupt`
    is raised again.
    """
    timer = Timer()
    progress = Progress(len(jobs) + len(problems), mode=args.progress, quiet=args.quiet)
    outcomes: list[Outcome] = []

    def record(outcome: Outcome) -> None:
        outcomes.append(outcome)
        progress.record(outcome)
        if outcome.status == "done" and on_done is not None:
            on_done(outcome, progress)

    try:
        for problem in problems:
            record(problem)
        with open_executor(args.jobs, args.scheduler) as executor:
            if executor is not None and jobs and not args.quiet:
                progress.message(f"fastseg {args.command}: running on {_workers(args)}")
            ordered = run_jobs(work, jobs, executor, record)
    except KeyboardInterrupt:
        progress.close()
        if not args.quiet:
            total = len(jobs) + len(problems)
            progress.message(
                summary(args.command, outcomes, timer.seconds, _workers(args), noun, total=total)
            )
        raise
    finally:
        progress.close()
    results = [*problems, *ordered]
    if not args.quiet:
        progress.message(summary(args.command, results, timer.seconds, _workers(args), noun))
    failed = any(o.status == "failed" for o in results)
    return (EXIT_FAILED if failed else EXIT_OK), results


def _workers(args: argparse.Namespace) -> str:
    if args.scheduler:
        return f"dask.distributed at {args.scheduler}"
    return "this process" if args.jobs <= 1 else f"{args.jobs} worker processes"


# --------------------------------------------------------- files every input needs


def _stamp(path: str) -> tuple[str, int, int]:
    info = os.stat(path)
    return os.path.realpath(path), info.st_mtime_ns, info.st_size


@functools.lru_cache(maxsize=16)
def _cached_schema(stamp: tuple[str, int, int]) -> Schema:
    return Schema.load(stamp[0])


@functools.lru_cache(maxsize=16)
def _cached_segment_map(
    stamp: tuple[str, int, int], schema: tuple[str, int, int] | None, series: str | None
) -> SegmentMap:
    loaded = None if schema is None else _cached_schema(schema)
    return SegmentMap.load(stamp[0], schema=loaded, series=series)


def shared_schema(path: str) -> Schema:
    """A schema file (``--schema``), read once per process (and again if it changes)."""
    return _cached_schema(_stamp(path))


def shared_segment_map(path: str, schema: str | None, series: str | None = None) -> SegmentMap:
    """A segment map file (``schema`` resolves classIds, ``series`` chooses among the
    series of a file holding several), read once per process."""
    schema_stamp = None if schema is None else _stamp(schema)
    try:
        return _cached_segment_map(_stamp(path), schema_stamp, series)
    except SeriesError as error:
        # The library names its parameter (series=); the command line its flag.
        raise ValueError(f"{path}: {error.describe('--series')}") from None


def check_shared(
    schema: str | None, segment_map: str | None = None, series: str | None = None
) -> None:
    """Read the files every input needs once, up front: an unusable one stops the
    command before any job runs (:class:`UsageError`, naming the file once)."""
    if series is not None and segment_map is None:
        raise UsageError("--series chooses a series of --segment-map, which is missing")
    if schema is not None:
        try:
            shared_schema(schema)
        except USER_ERRORS as error:
            raise UsageError(f"{schema}: {describe_error(error, schema)}") from None
    if segment_map is not None:
        try:
            shared_segment_map(segment_map, schema, series)
        except USER_ERRORS as error:
            raise UsageError(f"{segment_map}: {describe_error(error, segment_map)}") from None


def id_names(
    schema: str | None, segment_map: str | None, series: str | None = None
) -> Callable[[int], str]:
    """Label id -> its name: the segment map's category for an instance id, else the
    schema's category for a semantic value; "" when neither knows the id."""
    loaded_schema = shared_schema(schema) if schema is not None else None
    segments = shared_segment_map(segment_map, schema, series) if segment_map is not None else None

    def name(ident: int) -> str:
        if ident == 0:
            return "background"
        if segments is not None:
            if ident in segments:
                return category_name(segments[ident].category)
            if ident in segments.groups:
                return "overlap of " + ", ".join(map(str, segments.groups[ident]))
            return ""
        if loaded_schema is not None and ident in loaded_schema.values:
            return loaded_schema.by_value(ident).name
        return ""

    return name


# ------------------------------------------------------ volumes whose ids have names


def names_segments(target: str) -> bool:
    """Whether a volume written to ``target`` names its ids (a Slicer ``.seg.nrrd``)."""
    return volume_format(target).named_segments


def relabeled_like(
    image: LabelImage,
    target: str,
    labels: Any,
    mapping: Mapping[int, int],
    missing: Literal["keep", "drop"] | int = "keep",
) -> LabelImage:
    """The ``like=`` image for ``labels`` (``image``'s ids mapped through ``mapping``)
    written to ``target``: where the format names its ids, the names follow them."""
    if names_segments(target):
        return image.relabeled(labels, mapping, missing=missing)
    return image


def segments_for(target: str, schema: Schema | None) -> Schema | None:
    """``schema`` for ``save(..., schema=)`` when ``target``'s format names its ids (new
    ids replace the input's, and so do their names), else None."""
    return schema if names_segments(target) else None


def instance_segments(segments: SegmentMap, schema: Schema | None) -> Schema:
    """Names for the ids of an instance map: instance ``k`` of category ``c`` is
    ``"c k"``, in ``c``'s colour where ``schema`` has it."""
    categories = []
    for ident, segment in segments.items():
        name = category_name(segment.category)
        color = None
        if schema is not None:
            with suppress(KeyError):
                color = segment.resolve(schema).color
        categories.append(Category(f"{name} {ident}", ident, color=color))
    return Schema(categories)


def one_label_map(image: LabelImage) -> None:
    """Refuse a Slicer file whose overlapping segments lie on several layers: its voxels
    are several label maps, and the command takes one."""
    if image.labels.ndim == 4 and image.segments is not None and len(image.segments) > 1:
        raise ValueError(
            f"its overlapping segments lie on {len(image.segments)} layers, and this command "
            "takes one label map (fastseg.load gives the layers as labels[..., layer])"
        )


def as_nibabel(image: LabelImage) -> Any:
    """A label image of any format as a nibabel image, for the functions that take its
    affine and voxel size with it (:func:`fastseg.stats`, :func:`fastseg.evaluate`): its
    own header where that is nibabel's (NIfTI, MGH), else the affine's."""
    import nibabel as _nibabel

    nibabel: Any = _nibabel  # partly annotated
    header = image.header if hasattr(image.header, "get_zooms") else None
    return nibabel.Nifti1Image(image.labels, image.affine, header)


def category_name(category: Any) -> str:
    """A segment's category: its name, or its path joined by ``/``."""
    return category if isinstance(category, str) else "/".join(category)


def round_volume(value: float) -> float:
    """A volume in mm³ without float noise: 7 significant digits (the precision of the
    float32 spacing NIfTI stores), no finer than 1e-6 mm³; ``23724.800707054143`` (14828
    voxels of 1.6 mm³ stored as float32) -> ``23724.8``."""
    if value != value or value == 0:  # NaN or zero
        return value
    return round(float(f"{value:.7g}"), 6)


def fold(text: object) -> str:
    """One line of text."""
    return one_line(str(text))


_UNMAPPED = re.compile(
    r"(\d+) voxels hold ids that the mapping does not map \(missing='error'\): ([^;]*);"
)


def unmapped(error: ValueError) -> tuple[str, str] | None:
    """The voxel count and the ids of :func:`fastseg.remap`'s error for unmapped ids (its
    message names Python parameters; the commands name their flags), or None."""
    found = _UNMAPPED.search(str(error))
    return None if found is None else (found.group(1), found.group(2))

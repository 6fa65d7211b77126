"""Argument parsing and the entry point: ``fastseg <command> ...``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fastseg import __version__
from fastseg.cli import demo, index, redbrick, schemas, volumes
from fastseg.cli.batch import UsageError, describe_error
from fastseg.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, FORMATTER, epilog


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command."""
    parser = argparse.ArgumentParser(
        prog="fastseg",
        formatter_class=FORMATTER,
        description="Fast tools for segmentation label volumes (NIfTI): conversions between "
        "instance and semantic maps, statistics, relabeling, cleanup and schema formats, over "
        "files, folders and glob patterns. 'fastseg <command> --help' shows a command's "
        "options and examples.",
        epilog=epilog(
            """\
  fastseg demo
  fastseg info labels.nii.gz --schema dataset.json
  fastseg clean predictions/ -o cleaned/ --largest-k 1 -j 2
  fastseg redbrick export/ -o nnunet/ --layout nnunet --taxonomy taxonomy.json"""
        ),
    )
    parser.add_argument("--version", action="version", version=f"fastseg {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo.register(commands)
    volumes.register(commands)
    schemas.register(commands)
    redbrick.register(commands)
    index.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit
    status: 0 done, 1 some inputs failed, 2 usage error, 130 interrupted.

    Examples
    --------
    >>> from fastseg.cli import main
    >>> main(["--version"])
    fastseg 0.1.0
    0
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, or an argparse error (status 2)
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    try:
        status: int = args.handler(args)
    except UsageError as error:
        print(f"fastseg {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:  # the command's own output (a table, a folder) cannot be written
        print(f"fastseg {args.command}: error: {describe_error(error, '')}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"fastseg {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return status

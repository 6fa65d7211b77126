"""Argument parsing and the entry point: ``fastseg <command> ...``.

Every command is one module of :mod:`fastseg.cli` with a ``register(commands)`` function
that adds its parser (with ``set_defaults(handler=...)``) to the subparsers; adding a
command is one new module plus one line in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from fastseg import __version__
from fastseg._batch import describe_error
from fastseg.cli import (
    clean,
    demo,
    evaluate,
    index,
    info,
    label,
    redbrick,
    relabel,
    schema,
    stats,
    to_instances,
    to_semantic,
    warmup,
)
from fastseg.cli.batch import UsageError
from fastseg.cli.common import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    FORMATTER,
    Interrupted,
    OutputExists,
    epilog,
    stopping_on_signals,
)
from fastseg.formats.registry import volume_suffix_list

COMMANDS: tuple[ModuleType, ...] = (
    demo,
    info,
    label,
    to_semantic,
    to_instances,
    stats,
    relabel,
    clean,
    schema,
    redbrick,
    evaluate,
    index,
    warmup,
)
"""The command modules, in the order ``fastseg --help`` lists them."""


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser of every command, and each command's own parser by name."""
    parser = argparse.ArgumentParser(
        prog="fastseg",
        formatter_class=FORMATTER,
        allow_abbrev=False,
        description=f"Fast tools for segmentation label volumes ({volume_suffix_list()}): "
        "conversions between instance and semantic maps, connected components, statistics, "
        "evaluation, relabeling, cleanup "
        "and schema formats, over files, folders and glob patterns. 'fastseg <command> "
        "--help' shows a command's options and examples.",
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
    for module in COMMANDS:
        module.register(commands)
    return parser, dict(commands.choices)


def _quiet_stdout() -> None:
    """stdout's reader is gone: send what is left to /dev/null, so that the flush at exit
    raises nothing."""
    with_devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(with_devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is no file (a test's capture)
        pass
    finally:
        os.close(with_devnull)


def _announce_compiling(prefix: str) -> None:
    """Say, just before the first kernel compiles (never when all come from the cache),
    that this run compiles, instead of waiting silently."""
    from fastseg._jit import on_first_compile

    def notice() -> None:
        print(
            f"{prefix}: compiling fastseg kernels for this machine (first run only, about "
            "10-30 s; `fastseg warmup` does it ahead of time)...",
            file=sys.stderr,
            flush=True,
        )

    on_first_compile(notice)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit
    status (see ``fastseg --help``): 0 done, 1 failed, 2 usage error, 130 interrupted.

    Examples
    --------
    >>> from fastseg.cli import main
    >>> main(["--version"])
    fastseg 0.1.0
    0
    """
    parser, command_parsers = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:
            # The command's own usage, not the top level's.
            command_parsers[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as stop:  # --help, --version, or an argparse error (status 2)
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    prefix = f"fastseg {args.command}"
    if not getattr(args, "quiet", False) and (
        sys.stderr.isatty() or getattr(args, "verbose", False)
    ):
        _announce_compiling(prefix)
    try:
        with stopping_on_signals():
            status: int = args.handler(args)
    except UsageError as error:
        print(f"{prefix}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OutputExists as error:
        print(f"{prefix}: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as error:  # the command's own output (a table, a folder) cannot be written
        print(f"{prefix}: error: {describe_error(error, '')}", file=sys.stderr)
        return EXIT_FAILED
    except Interrupted as stop:
        print(f"{prefix}: interrupted by signal {stop.signum}", file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return status

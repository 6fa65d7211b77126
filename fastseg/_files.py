"""Writing files so that nothing half-written is ever seen under the target name."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _target_mode(target: Path) -> int:
    """The existing file's permissions, or what a new file gets under the umask."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[str]:
    """A temporary path in ``target``'s folder; on success it replaces ``target``.

    Whatever is written there becomes ``target`` only when the block ends without an
    exception (one ``os.replace``); on any error, interruptions included, the temporary
    file is removed and ``target`` is left as it was. The new file gets the old file's
    permissions, or the default ones for a new file.
    """
    final = Path(target)
    handle, temporary = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix, dir=final.parent)
    os.close(handle)
    try:
        yield temporary
        os.chmod(temporary, _target_mode(final))
        os.replace(temporary, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise


def read_text_or_path(path_or_text: str | os.PathLike[str]) -> tuple[str, str]:
    """The text of a file, or ``path_or_text`` itself when it is a ``str`` holding a line
    break; and how to name it in errors (the file name, or ``<text>``)."""
    if isinstance(path_or_text, str) and "\n" in path_or_text:
        return path_or_text, "<text>"
    source = os.fspath(path_or_text)
    data = Path(source).read_bytes()
    try:
        return data.decode("utf-8-sig"), source
    except UnicodeDecodeError as error:
        raise ValueError(f"{source}: not UTF-8 text: {error}") from None


def write_text_atomically(target: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``target`` through :func:`atomic_path`."""
    with (
        atomic_path(target) as temporary,
        open(temporary, "w", encoding="utf-8", newline="\n") as stream,
    ):
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())

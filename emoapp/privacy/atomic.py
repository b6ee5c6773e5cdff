"""Write a file all at once or not at all.

The bytes go to a temporary file in the target's folder (``.NAME.XXXX.tmp``), which is
flushed and fsynced, then renamed over the target with :func:`os.replace`. A full disk,
a crash or an error half-way leaves the previous file (if any) untouched and no partial
file behind. Used for the consent file, the trimmed audit log and exports.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike[str],
    mode: int | None = None,
    newline: str | None = None,
) -> Iterator[IO[str]]:
    """A text file that replaces ``path`` when the ``with`` block ends without an error.

    ``mode`` sets the new file's permissions (e.g. 0o600); by default a new file gets the
    usual permissions (0o666 less the umask) and a replaced file keeps its own.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if mode is None:
        try:
            mode = target.stat().st_mode & 0o777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_folder(folder)


def atomic_write_text(path: str | os.PathLike[str], text: str, mode: int | None = None) -> None:
    """Replace ``path`` with ``text`` atomically."""
    with atomic_writer(path, mode=mode) as stream:
        stream.write(text)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX; folders cannot be opened on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a folder; the rename has still happened
    finally:
        os.close(fd)

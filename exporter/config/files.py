"""Reading the operator's files (config, secrets, web config) without ever blocking or reading without end:
only a regular file is read (a FIFO would wait for a writer, a device like /dev/zero never ends), and never
more than a bound."""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_CONFIG_BYTES = 4 * 1024 * 1024
"""Largest config or web config file read."""
MAX_SECRET_BYTES = 64 * 1024
"""Largest secret file read (tokens and keys are a few hundred bytes)."""

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


FileStamp = tuple[int, int, int, int]
"""A file's device, inode, modification time (ns) and size: what changes when it is rewritten in place or
replaced (a Kubernetes secret or certificate rotates by swapping a symlink)."""


def file_stamp(path: Path) -> FileStamp:
    """The file's current `FileStamp`, from a stat (which never blocks, whatever the file is); raises
    OSError when there is no file to stat."""
    status = os.stat(path)
    return (status.st_dev, status.st_ino, status.st_mtime_ns, status.st_size)


class UnreadableFile(Exception):
    """A file that cannot be read as asked: `reason` says why (never what it holds)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot read {path}: {reason}")
        self.reason = reason


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _open(path: Path) -> int:
    """A descriptor of `path` opened for reading without blocking (a FIFO opens at once); `UnreadableFile`
    when it cannot be, a name the OS cannot be given (a lone surrogate) included."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as error:
        raise UnreadableFile(path, f"{error.strerror or type(error).__name__}") from None
    except UnicodeEncodeError:
        raise UnreadableFile(path, "its name is not valid UTF-8") from None


def read_regular(path: Path, limit: int) -> tuple[bytes, os.stat_result]:
    """The content of a regular file of at most `limit` bytes, and its status. Opened without blocking (a
    FIFO opens at once and is then refused); anything else than a regular file, or a larger one, raises
    `UnreadableFile`."""
    descriptor = _open(path)
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise UnreadableFile(path, f"it is {_kind(status.st_mode)}, not a regular file")
        if status.st_size > limit:
            raise UnreadableFile(path, f"larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(descriptor, min(65536, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:  # it grew since fstat
                raise UnreadableFile(path, f"larger than {limit} bytes")
        return b"".join(chunks), status
    except OSError as error:
        raise UnreadableFile(path, f"{error.strerror or type(error).__name__}") from None
    finally:
        os.close(descriptor)


def check_regular(path: Path) -> None:
    """Raise `UnreadableFile` unless `path` is a regular file this process can open (checked without
    reading it or blocking)."""
    descriptor = _open(path)
    try:
        mode = os.fstat(descriptor).st_mode
    finally:
        os.close(descriptor)
    if not stat.S_ISREG(mode):
        raise UnreadableFile(path, f"it is {_kind(mode)}, not a regular file")

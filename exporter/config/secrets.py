"""Secrets from the config, the environment or a file; a file is re-read when it changes (rotation)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from exporter.config.files import MAX_SECRET_BYTES, FileStamp, UnreadableFile, file_stamp, read_regular

# How many past values of a rotating file secret are remembered for log redaction.
HISTORY = 8


# What an HTTP header value may hold: visible ASCII and inner spaces or tabs.
_HEADER_SAFE = re.compile(r"[\x20-\x7e\t]*")


class SecretUnavailable(Exception):
    """The secret's file cannot be read now (the message names the file, never the value)."""


def header_safe(value: str) -> bool:
    """Whether a credential can be sent as it is in an HTTP header (visible ASCII, inner spaces or tabs)."""
    return _HEADER_SAFE.fullmatch(value) is not None


def file_secret_text(content: bytes, path: Path) -> str:
    """A secret file's content as the value to send: a UTF-8 byte order mark and surrounding whitespace
    stripped. Anything an HTTP header cannot carry (non-ASCII, control characters, several lines) raises
    `SecretUnavailable` saying so, without the value."""
    try:
        text = content.decode("utf-8").removeprefix("\ufeff").strip()
    except UnicodeDecodeError:
        raise SecretUnavailable(f"{path} is not UTF-8 text") from None
    if not header_safe(text):
        raise SecretUnavailable(
            f"{path} holds characters a credential cannot have (non-ASCII, control characters or "
            "several lines)"
        )
    return text


@dataclass
class Secret:
    """A secret value. `repr` and `str` never show it; `get()` re-reads the file when it changes.

    `origin` says where the value comes from (`inline`, `env LENSES_HQ_TOKEN`, `file /path`) so `check` can
    describe it without showing it."""

    value: str | None = None
    file: Path | None = None
    origin: str = ""
    _cached: str | None = field(default=None, init=False, repr=False)
    _stamp: FileStamp | None = field(default=None, init=False, repr=False)
    _history: list[str] = field(default_factory=list, init=False, repr=False)

    def __repr__(self) -> str:
        return f"Secret(file={str(self.file)!r})" if self.file else "Secret(***)"

    __str__ = __repr__

    def get(self) -> str:
        """The current value; for a file-backed secret, the file's content without a byte order mark and
        surrounding whitespace (`file_secret_text`).

        The file is re-read when its inode, device, mtime or size changes (a Kubernetes secret rotates by
        swapping a symlink, an editor by rewriting in place)."""
        if self.file is None:
            return self.value or ""
        try:
            stamp = file_stamp(self.file)
            if stamp != self._stamp or self._cached is None:
                content, _ = read_regular(self.file, MAX_SECRET_BYTES)
                value = file_secret_text(content, self.file)
                self._remember(value)
                self._cached = value
                self._stamp = stamp
        except OSError as error:
            raise SecretUnavailable(
                f"cannot read {self.file}: {error.strerror or type(error).__name__}"
            ) from None
        except UnreadableFile as error:
            raise SecretUnavailable(str(error)) from None
        return self._cached

    def _remember(self, value: str) -> None:
        if value and value not in self._history:
            self._history.append(value)
            del self._history[:-HISTORY]

    def known_values(self) -> list[str]:
        """Every value this secret has had in this process (the last few, for log redaction)."""
        if self.file is None:
            return [self.value] if self.value else []
        return list(self._history)

"""Secrets from the config, the environment or a file; a file is re-read when it changes (rotation)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# How many past values of a rotating file secret are remembered for log redaction.
HISTORY = 8


class SecretUnavailable(Exception):
    """The secret's file cannot be read now (the message names the file, never the value)."""


@dataclass
class Secret:
    """A secret value. `repr` and `str` never show it; `get()` re-reads the file when it changes.

    `origin` says where the value comes from (`inline`, `env LENSES_HQ_TOKEN`, `file /path`) so `check` can
    describe it without showing it."""

    value: str | None = None
    file: Path | None = None
    origin: str = ""
    _cached: str | None = field(default=None, init=False, repr=False)
    _stamp: tuple[int, int, int, int] | None = field(default=None, init=False, repr=False)
    _history: list[str] = field(default_factory=list, init=False, repr=False)

    def __repr__(self) -> str:
        return f"Secret(file={str(self.file)!r})" if self.file else "Secret(***)"

    __str__ = __repr__

    def get(self) -> str:
        """The current value; for a file-backed secret, the file's content without trailing newlines.

        The file is re-read when its inode, device, mtime or size changes (a Kubernetes secret rotates by
        swapping a symlink, an editor by rewriting in place)."""
        if self.file is None:
            return self.value or ""
        try:
            stat = os.stat(self.file)
            stamp = (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if stamp != self._stamp or self._cached is None:
                value = self.file.read_text(encoding="utf-8").strip("\r\n")
                self._remember(value)
                self._cached = value
                self._stamp = stamp
        except (OSError, UnicodeDecodeError) as error:
            reason = (
                (error.strerror or type(error).__name__) if isinstance(error, OSError) else "not UTF-8 text"
            )
            raise SecretUnavailable(f"cannot read {self.file}: {reason}") from None
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

"""Secrets from the config, the environment or a file; a file is re-read when it changes (rotation)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


class SecretUnavailable(Exception):
    """The secret's file cannot be read now (the message names the file, never the value)."""


@dataclass
class Secret:
    """A secret value. `repr` and `str` never show it; `get()` re-reads the file when its mtime changes."""

    value: str | None = None
    file: Path | None = None
    _cached: str | None = field(default=None, init=False, repr=False)
    _stamp: tuple[int, int] | None = field(default=None, init=False, repr=False)

    def __repr__(self) -> str:
        return f"Secret(file={str(self.file)!r})" if self.file else "Secret(***)"

    __str__ = __repr__

    def get(self) -> str:
        """The current value; for a file-backed secret, the file's content without trailing newlines."""
        if self.file is None:
            return self.value or ""
        try:
            stat = os.stat(self.file)
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp != self._stamp or self._cached is None:
                self._cached = self.file.read_text(encoding="utf-8").strip("\r\n")
                self._stamp = stamp
        except OSError as error:
            raise SecretUnavailable(f"cannot read {self.file}: {error.strerror}") from None
        return self._cached

    def known_values(self) -> list[str]:
        """Every value this secret has had in this process (for log redaction)."""
        if self.file is None:
            return [self.value] if self.value else []
        return [self._cached] if self._cached else []

"""Secrets: never shown by repr, re-read from their file when it changes, remembered for redaction."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporter.config.secrets import HISTORY, Secret, SecretUnavailable


def test_repr_and_str_never_show_the_value(tmp_path: Path) -> None:
    inline = Secret(value="inline-value-123")
    assert "inline-value-123" not in repr(inline) and "inline-value-123" not in str(inline)
    (tmp_path / "token").write_text("file-value-456")
    from_file = Secret(file=tmp_path / "token")
    assert from_file.get() == "file-value-456"
    assert "file-value-456" not in repr(from_file) and "file-value-456" not in f"{from_file}"
    assert str(tmp_path / "token") in repr(from_file)


def test_trailing_newlines_are_stripped(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("value-with-newline\r\n\n")
    assert Secret(file=tmp_path / "token").get() == "value-with-newline"


def test_rewritten_in_place_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("aaaa-1")
    secret = Secret(file=path)
    assert secret.get() == "aaaa-1"
    path.write_text("bbbb-2")  # same size: the inode and mtime tell the change
    os.utime(path, ns=(1, 1))
    assert secret.get() == "bbbb-2"
    assert secret.known_values() == ["aaaa-1", "bbbb-2"]


def test_swapped_by_rename_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first-value")
    secret = Secret(file=path)
    assert secret.get() == "first-value"
    new = tmp_path / "token.new"
    new.write_text("other-value")
    os.replace(new, path)
    assert secret.get() == "other-value"


def test_history_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "token"
    secret = Secret(file=path)
    for number in range(HISTORY + 3):
        path.write_text(f"value-{number:04d}")
        os.utime(path, ns=(number, number))
        secret.get()
    assert len(secret.known_values()) == HISTORY
    assert secret.known_values()[-1] == f"value-{HISTORY + 2:04d}"


def test_unreadable_file_names_the_file_not_the_value(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("cached-value")
    secret = Secret(file=path)
    secret.get()
    path.unlink()
    with pytest.raises(SecretUnavailable) as caught:
        secret.get()
    assert str(path) in str(caught.value)
    assert "cached-value" not in str(caught.value)
    with pytest.raises(SecretUnavailable, match="cannot read"):
        Secret(file=tmp_path).get()


def test_inline_known_values() -> None:
    assert Secret(value="abc-123").known_values() == ["abc-123"]
    assert Secret(value="").known_values() == []

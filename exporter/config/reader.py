"""The strict reader of a YAML configuration: a loader that refuses duplicate keys, `${VAR}` expansion over
the document, and `Section`, the typed getters of one mapping whose errors name the field (`lenses.timeout:
expected a duration like 30s, got 'soon'`) and which refuses unknown keys."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from exporter.config.files import MAX_CONFIG_BYTES, read_regular
from exporter.config.secrets import Secret
from exporter.config.values import (
    ConfigError,
    Expanded,
    check_readable_file,
    environment_secret,
    expand,
    file_path,
    file_secret,
    inline_secret,
    parse_duration,
    parse_size,
    show,
    type_name,
)

MAX_VALUES = 100_000
"""Far more values than any configuration has; a YAML alias bomb (aliases of aliases) stops here."""


def join(where: str, key: Any) -> str:
    """The path of `key` inside the field `where` (`lenses` + `url` → `lenses.url`; at the top, `url`)."""
    return f"{where}.{key}" if where else str(key)


# --- YAML ----------------------------------------------------------------------------------------------


class StrictLoader(yaml.SafeLoader):
    """The safe loader, refusing duplicate keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
        return super().construct_mapping(node, deep)


class YAMLProblem(Exception):
    """Why a text is not the YAML the configuration accepts, and where (` at line 3, column 5`, or empty)."""

    def __init__(self, problem: str, location: str = "") -> None:
        super().__init__(f"{problem}{location}")
        self.problem = problem
        self.location = location


def parse_yaml(text: str) -> Any:
    """The document in `text`, through `StrictLoader`; raises `YAMLProblem`."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # StrictLoader is a SafeLoader
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        location = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise YAMLProblem(error.problem or error.context or "malformed", location) from None
    except yaml.YAMLError as error:
        raise YAMLProblem(str(error).splitlines()[0]) from None
    except ValueError:  # PyYAML's int() of a literal longer than Python allows (4300 digits)
        raise YAMLProblem("a number with thousands of digits") from None
    except RecursionError:  # PyYAML's parser and constructor recurse once per level of nesting
        raise YAMLProblem("nested too deeply") from None


def read_text(path: Path) -> tuple[str, int]:
    """A config file's text and mode (read as `read_regular` reads: a bounded regular file). Raises
    `UnreadableFile`, or `UnicodeDecodeError` when it is not UTF-8."""
    content, status = read_regular(path, MAX_CONFIG_BYTES)
    return content.decode("utf-8"), status.st_mode


def expand_tree(node: Any, environ: Mapping[str, str], where: str, budget: list[int] | None = None) -> Any:
    """The document with `${VAR}` expanded in every string; more than MAX_VALUES values is refused."""
    budget = [MAX_VALUES] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0:
        raise ConfigError(f"{where}: more than {MAX_VALUES} values in the file (YAML aliases of aliases?)")
    if isinstance(node, str):
        return expand(node, environ, where)
    if isinstance(node, list):
        return [expand_tree(item, environ, f"{where}[{i}]", budget) for i, item in enumerate(node)]
    if isinstance(node, dict):
        return {key: expand_tree(value, environ, join(where, key), budget) for key, value in node.items()}
    return node


# --- typed reading of one mapping ---------------------------------------------------------------------


class Section:
    """One mapping of the file: typed getters whose errors name `where.key`; unknown keys are refused.

    Each getter takes the default to return when the key is absent: callers pass the settings dataclass's
    own (`LensesSettings.timeout`), so that a default is written once."""

    def __init__(self, data: Any, where: str, keys: tuple[str, ...], base: Path) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type_name(data)}")
        for key in data:
            if not isinstance(key, str):
                raise ConfigError(f"{where}: key {show(key)} is not a string")
            if key not in keys:
                hint = difflib.get_close_matches(key, keys, n=1)
                suffix = f" (did you mean {hint[0]}?)" if hint else f" (known keys: {', '.join(keys)})"
                raise ConfigError(f"{join(where, key)}: unknown key{suffix}")
        self.data: dict[str, Any] = data
        self.where = where
        self.base = base

    def at(self, key: str) -> str:
        """The field path of `key` in this section, for messages."""
        return join(self.where, key)

    def has(self, key: str) -> bool:
        """Whether `key` is set (to anything but null)."""
        return self.data.get(key) is not None

    def raw(self, key: str) -> Any:
        """The value of `key` as loaded, unchecked."""
        return self.data.get(key)

    def string(self, key: str, default: str = "", *, secret: bool = False) -> str:
        """A string; a secret's wrong value is not shown."""
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            shown = "" if secret else f" {show(value)}"
            hint = " (quote it)" if secret and isinstance(value, int | float) else ""
            raise ConfigError(f"{self.at(key)}: expected a string, got {type_name(value)}{shown}{hint}")
        return value

    def required(self, key: str, hint: str = "") -> str:
        """A non-blank string that must be set."""
        value = self.string(key)
        if not value.strip():
            raise ConfigError(f"{self.at(key)}: missing{hint}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        """true or false (or, from `${VAR}`, yes/no/1/0)."""
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, Expanded) and value.strip().lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.strip().lower() in ("true", "yes", "1")
        if not isinstance(value, bool):
            raise ConfigError(f"{self.at(key)}: expected true or false, got {show(value)}")
        return value

    def duration(self, key: str, default: float) -> float:
        """A Prometheus-style duration longer than 0s, in seconds."""
        value = self.data.get(key)
        if value is None:
            return default
        seconds = parse_duration(value) if isinstance(value, str) else None
        if seconds is None:
            raise ConfigError(f"{self.at(key)}: expected a duration like 30s, got {show(value)}")
        if seconds <= 0:
            raise ConfigError(f"{self.at(key)}: must be longer than 0s, got {show(value)}")
        return seconds

    def integer(self, key: str, default: int, minimum: int = 1, maximum: int | None = None) -> int:
        """A whole number within the bounds."""
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, Expanded) and value.strip().isascii() and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.at(key)}: expected a whole number, got {show(value)}")
        return self._bounded(key, value, minimum, maximum)

    def size(self, key: str, default: int) -> int:
        """A size in bytes: a whole number, or text like `8MiB`."""
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, str) and (size := parse_size(value)) is not None:
            value = size
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.at(key)}: expected a size in bytes like 8MiB, got {show(value)}")
        return self._bounded(key, value, 1, None)

    def _bounded(self, key: str, value: int, minimum: int, maximum: int | None) -> int:
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise ConfigError(f"{self.at(key)}: must be {bounds}, got {show(value)}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        """One of `choices` (or an empty default left unset)."""
        value = self.string(key, default)
        if value not in choices and not (value == "" and default == ""):
            raise ConfigError(f"{self.at(key)}: expected one of {', '.join(choices)}, got {show(value)}")
        return value

    def path(self, key: str) -> Path | None:
        """A path, relative ones taken from the file's directory; None when unset."""
        value = self.string(key)
        if not value.strip():
            return None
        path = file_path(value, self.at(key))
        return path if path.is_absolute() else self.base / path

    def readable_path(self, key: str) -> Path | None:
        """A path to a regular file this process can open; None when unset."""
        path = self.path(key)
        return check_readable_file(path, self.at(key)) if path is not None else None

    def section(self, key: str, keys: tuple[str, ...]) -> Section:
        """The mapping under `key`, with its own known keys."""
        return Section(self.data.get(key), self.at(key), keys, self.base)

    def items(self, key: str) -> list[Any]:
        """The list under `key` (empty when unset)."""
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise ConfigError(f"{self.at(key)}: expected a list, got {type_name(value)}")
        return value

    def secret(self, key: str, env: str | None, environ: Mapping[str, str]) -> Secret | None:
        """`key` inline, `key_file`, or the environment variable `env`; None when none is set."""
        inline, file_key = self.data.get(key), f"{key}_file"
        if inline is not None and self.has(file_key):
            raise ConfigError(f"{self.at(key)}: set either {key} or {file_key}, not both")
        if inline is not None:
            text = self.string(key, secret=True)
            origin = "the environment (${...})" if isinstance(text, Expanded) else "the config file"
            return inline_secret(text, self.at(key), origin)
        path = self.path(file_key)
        if path is not None:
            return file_secret(path, self.at(file_key), f"file {path}")
        return environment_secret(environ, env) if env else None

    def inline_secrets(self, keys: tuple[str, ...]) -> list[str]:
        """The fields among `keys` whose value is written in the file itself."""
        return [
            self.at(key)
            for key in keys
            if isinstance(self.data.get(key), str) and not isinstance(self.data[key], Expanded)
        ]

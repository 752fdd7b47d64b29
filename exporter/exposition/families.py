"""Metric families declared as data, and the text rendering of one object's series.

A family is a name, a help text, its own label names and a reader that takes its samples off an object; a
group is the ordered families of one object kind plus the label names every one of its series carries. The
wings declare their families with the helpers here (`gauge`, `counter`, `one`) and render each object once,
when it changes, into one text per family (`Rendered`), which the store keeps.
"""

from __future__ import annotations

import codecs
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

Sample = tuple[tuple[str, ...], float]
"""The values of a family's own labels, in declaration order, and the sample value."""

Reader = Callable[[T], Iterable[Sample]]
"""How a family reads its samples off an object."""

Rendered = tuple[bytes, ...]
"""One object's sample lines, one text per family of its group (empty bytes where it has none)."""


LABEL_ERRORS = "exporter.replacement-character"
"""How text UTF-8 cannot encode (a lone surrogate, e.g. from a non-UTF-8 environment variable) is rendered:
as U+FFFD, not `?`, so it never renders like a name that has a real `?` there. Upstream values are made
valid before they get here (`exporter.decode.as_label`), colliding names dropped by their source."""


def _replacement_character(error: UnicodeError) -> tuple[bytes, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    return "\ufffd".encode() * (error.end - error.start), error.end


codecs.register_error(LABEL_ERRORS, _replacement_character)


def escape_label_value(value: str) -> str:
    """Escape a label value for the text format (backslash, double quote, newline)."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def escape_help(text: str) -> str:
    """Escape HELP text (backslash and newline)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """Format a sample value the way Prometheus' own Go exporters do."""
    if type(value) is int:
        return str(value)
    number = float(value)
    if number.is_integer():
        return str(int(number)) if abs(number) < 2**53 else repr(number)
    if number != number:
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    return repr(number)


@dataclass(frozen=True)
class Family(Generic[T]):
    """One metric family: its name, help, own label names, and how to read its samples off an object."""

    name: str
    help: str
    labels: tuple[str, ...]
    read: Reader[T]
    type: str = "gauge"

    def header(self, openmetrics: bool = False) -> bytes:
        """The HELP and TYPE lines. A counter's `name` is its sample name (`..._total`), which the text
        format also uses as the family's name; OpenMetrics names the family without `_total`."""
        name = self.name
        if openmetrics and self.type == "counter":
            name = name.removesuffix("_total")
        return f"# HELP {name} {escape_help(self.help)}\n# TYPE {name} {self.type}\n".encode()


def one(value: float | None) -> Iterable[Sample]:
    """A family's single sample without labels of its own, or none when the value is unknown."""
    return () if value is None else (((), value),)


def gauge(name: str, help_: str, read: Reader[T], labels: tuple[str, ...] = ()) -> Family[T]:
    """A gauge family."""
    return Family(name, help_, labels, read)


def counter(name: str, help_: str, read: Reader[T], labels: tuple[str, ...] = ()) -> Family[T]:
    """A counter family; `name` is its sample name, ending in `_total`."""
    return Family(name, help_, labels, read, "counter")


@dataclass(frozen=True)
class FamilyGroup(Generic[T]):
    """The ordered families of one object kind, and the label names every one of its series carries."""

    common_labels: tuple[str, ...]
    families: tuple[Family[T], ...]

    def render(self, obj: T, common_values: Sequence[str]) -> Rendered:
        """Render every family's sample lines for one object (on the hot path of every update)."""
        common = ",".join(
            [
                f'{name}="{escape_label_value(value)}"'
                for name, value in zip(self.common_labels, common_values, strict=True)
            ]
        )
        separator = "," if common else ""
        texts: list[bytes] = []
        for family in self.families:
            prefix = family.name + "{" + common
            lines: list[str] = []
            for label_values, value in family.read(obj):
                if label_values:
                    own = ",".join(
                        [
                            f'{name}="{escape_label_value(value_)}"'
                            for name, value_ in zip(family.labels, label_values, strict=True)
                        ]
                    )
                    lines.append(f"{prefix}{separator}{own}}} {format_value(value)}\n")
                else:
                    lines.append(f"{prefix}}} {format_value(value)}\n")
            texts.append("".join(lines).encode("utf-8", LABEL_ERRORS) if lines else b"")
        return tuple(texts)

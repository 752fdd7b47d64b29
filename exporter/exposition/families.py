"""Metric families declared as data, and the text rendering of one object's series.

A family is a name, a help text, its own label names and a reader that takes its samples off an object; a
group is the ordered families of one object kind plus the label names every one of its series carries. The
wings declare their families with the helpers here (`gauge`, `counter`, `one`) and render each object once,
when it changes, into one text per family (`Rendered`), which the store keeps.

A family may also say which of an object's fields it reads (`inputs`): an object rendered again against
the version of it the store holds renders only the families whose inputs differ, the others marked
unchanged (`Changes`), so an update that moves one figure costs one family's text, not the group's.
"""

from __future__ import annotations

import codecs
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

T = TypeVar("T")

Sample = tuple[tuple[str, ...], float]
"""The values of a family's own labels, in declaration order, and the sample value."""

Reader = Callable[[T], Iterable[Sample]]
"""How a family reads its samples off an object."""

Rendered = tuple[bytes, ...]
"""One object's sample lines, one text per family of its group (empty bytes where it has none)."""

Changes = tuple[bytes | None, ...]
"""`Rendered`, with None for each family whose text is the one the store holds for the object already."""

Inputs = Callable[[T], object]
"""The fields of an object a family's reader uses, as one value comparable with `==`."""


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
    inputs: Inputs[T] | None = None
    """What `read` uses of an object besides the group's common labels; None: everything (always rendered).
    Families that read the same fields share one function, so it is called once per rendering."""

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


def gauge(
    name: str, help_: str, read: Reader[T], labels: tuple[str, ...] = (), inputs: Inputs[T] | None = None
) -> Family[T]:
    """A gauge family."""
    return Family(name, help_, labels, read, "gauge", inputs)


def counter(
    name: str, help_: str, read: Reader[T], labels: tuple[str, ...] = (), inputs: Inputs[T] | None = None
) -> Family[T]:
    """A counter family; `name` is its sample name, ending in `_total`."""
    return Family(name, help_, labels, read, "counter", inputs)


@dataclass(frozen=True)
class FamilyGroup(Generic[T]):
    """The ordered families of one object kind, and the label names every one of its series carries."""

    common_labels: tuple[str, ...]
    families: tuple[Family[T], ...]
    _inputs: tuple[Inputs[T], ...] = field(init=False, repr=False, compare=False)
    """Each distinct `inputs` function of the families, once."""
    _inputs_of: tuple[int, ...] = field(init=False, repr=False, compare=False)
    """Per family, its `inputs` function's place in `_inputs` (-1: none)."""

    def __post_init__(self) -> None:
        distinct: dict[Inputs[T], int] = {}
        places = [
            -1 if family.inputs is None else distinct.setdefault(family.inputs, len(distinct))
            for family in self.families
        ]
        object.__setattr__(self, "_inputs", tuple(distinct))
        object.__setattr__(self, "_inputs_of", tuple(places))

    def render(self, obj: T, common_values: Sequence[str]) -> Rendered:
        """Render every family's sample lines for one object."""
        return cast(Rendered, self._render(obj, common_values, None))  # no `same`: no family left out

    def render_changes(
        self, obj: T, common_values: Sequence[str], previous: T, previous_common_values: Sequence[str]
    ) -> Changes:
        """Render the families whose inputs differ between `obj` and `previous`, None for the others; every
        family when a common label value differs (it is in every series). On the hot path of every stream
        update."""
        if tuple(common_values) != tuple(previous_common_values):
            return self.render(obj, common_values)
        same = [inputs(obj) == inputs(previous) for inputs in self._inputs]
        return self._render(obj, common_values, same)

    def _render(self, obj: T, common_values: Sequence[str], same: list[bool] | None) -> Changes:
        common = ",".join(
            [
                f'{name}="{escape_label_value(value)}"'
                for name, value in zip(self.common_labels, common_values, strict=True)
            ]
        )
        separator = "," if common else ""
        texts: list[bytes | None] = []
        for family, place in zip(self.families, self._inputs_of, strict=True):
            if same is not None and place >= 0 and same[place]:
                texts.append(None)
                continue
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

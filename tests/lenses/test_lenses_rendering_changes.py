"""An update renders only the families whose inputs changed: whatever two versions of an environment are,
the families it leaves out (None) render exactly as the held version did, and a one-figure update renders
one family."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.config import LensesSettings
from exporter.config.secrets import Secret
from exporter.exposition.store import Store
from exporter.lenses import metrics
from exporter.lenses.model import Environment, decode_environment, with_transitions
from exporter.lenses.rendering import EnvironmentRenderer
from tests.lenses.test_lenses import SEED_ENVIRONMENT
from tests.lenses.test_lenses_property import PATHS

SETTINGS = LensesSettings(
    name="hq", url="http://127.0.0.1:1", token=Secret("t"), metadata_labels=("team", "owner")
)
# Paths into an environment that an update may change: the property test's, and the fields it leaves out.
FIELDS = [
    *PATHS,
    ("metadata", "owner"),
    ("status", "agent", "agent", "protocol_version"),
    ("status", "agent", "metrics", "kafka", "num_brokers"),
    ("status", "agent", "metrics", "kafka", "updated_at"),
    ("status", "agent", "metrics", "data", "data_in_bytes_per_sec"),
    ("status", "agent", "metrics", "data", "updated_at"),
    ("status", "agent", "metrics", "apps"),
    ("status", "agent", "metrics", "connect", "num_connectors"),
    ("status", "agent", "metrics", "other", "num_issues"),
]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["production", "development", "2025-10-24T16:23:30Z", "x", ""]),
    st.dictionaries(st.sampled_from(["metrics", "k2k", "sql"]), st.booleans(), max_size=3),
)


@st.composite
def versions(draw: st.DrawFn) -> dict[str, Any]:
    """The seed's environment with a few fields changed, removed or retyped."""
    environment = copy.deepcopy(SEED_ENVIRONMENT)
    environment["metadata"] = {"team": "a", "owner": "b"}
    for path in draw(st.lists(st.sampled_from(FIELDS), max_size=4)):
        parent: Any = environment
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            if draw(st.booleans()):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = draw(VALUES)
    return environment


def decoded(raw: dict[str, Any], held: Environment | None = None) -> Environment:
    return with_transitions(decode_environment(raw, SETTINGS.metadata_labels), held, 1_700_000_000.0)


@pytest.mark.parametrize("unit", ["ns", "ms"])
@settings(max_examples=300, deadline=None)
@given(first=versions(), second=versions())
def test_families_left_out_render_as_the_held_version_did(
    unit: str, first: dict[str, Any], second: dict[str, Any]
) -> None:
    group = metrics.build_group("ns", SETTINGS.metadata_labels)
    # A group in another unit than the HQ's converts the round trip; the comparison sees what is rendered.
    renderer = EnvironmentRenderer(SETTINGS, group, unit)
    held = decoded(first)
    environment = decoded(second, held)
    changes = renderer.render_changes(environment, held)
    before, after = renderer.render(held), renderer.render(environment)
    assert len(changes) == len(after)
    for family, change, was, now in zip(group.families, changes, before, after, strict=True):
        assert (was if change is None else change) == now, family.name


def test_a_one_figure_update_renders_one_family_and_the_store_keeps_the_rest() -> None:
    group = metrics.build_group("ns", SETTINGS.metadata_labels)
    renderer = EnvironmentRenderer(SETTINGS, group)
    raw = copy.deepcopy(SEED_ENVIRONMENT)
    held = decoded(raw)
    raw["status"]["agent"]["metrics"]["other"]["num_issues"] = 7
    environment = decoded(raw, held)

    changes = renderer.render_changes(environment, held)

    rendered = [family.name for family, text in zip(group.families, changes, strict=True) if text is not None]
    assert rendered == ["lenses_environment_issues"]
    store = Store([group])
    store.put(group, "hq", "text", renderer.render(held))
    store.put(group, "hq", "text", changes)
    served = Store([group])
    served.put(group, "hq", "text", renderer.render(environment))
    assert b"".join(store.parts().parts) == b"".join(served.parts().parts)
    assert b'lenses_environment_issues{environment="text",tier="development",target="hq"} 7\n' in b"".join(
        store.parts().parts
    )


def test_a_tier_change_renders_every_family() -> None:
    """The tier is a label of every series: all of them change."""
    renderer = EnvironmentRenderer(SETTINGS, metrics.build_group("ns", SETTINGS.metadata_labels))
    raw = copy.deepcopy(SEED_ENVIRONMENT)
    held = decoded(raw)
    raw["tier"] = "production"
    assert None not in renderer.render_changes(decoded(raw, held), held)


def test_an_object_the_store_does_not_hold_needs_every_family() -> None:
    group = metrics.build_group("ns")
    store = Store([group])
    changes = (None,) * len(group.families)
    with pytest.raises(ValueError, match="not held"):
        store.put(group, "hq", "text", changes)

"""Rendering one HQ's environments into the group of families every HQ shares."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

from exporter.config import LensesSettings
from exporter.exposition.families import Changes, FamilyGroup, Rendered
from exporter.lenses.metrics import ROUNDTRIP_UNITS, common_values
from exporter.lenses.model import Environment


class EnvironmentRenderer:
    """Renders an HQ's environments for the shared group: the round trip converted to the group's unit when
    it is not this HQ's, and only this HQ's metadata keys (other HQs may allow more)."""

    def __init__(
        self,
        settings: LensesSettings,
        group: FamilyGroup[Environment],
        group_roundtrip_unit: str | None = None,
        group_metadata_labels: tuple[str, ...] | None = None,
    ) -> None:
        self.group = group
        self.target = settings.name
        self._roundtrip_scale = (
            ROUNDTRIP_UNITS[settings.roundtrip_duration_unit]
            / ROUNDTRIP_UNITS[group_roundtrip_unit or settings.roundtrip_duration_unit]
        )
        self._metadata_keys = frozenset(settings.metadata_labels)
        self._strip_metadata = bool(set(group_metadata_labels or ()) - self._metadata_keys)
        self._preparations = 0  # listings being prepared now
        self._prepared: dict[str, tuple[Environment, Rendered]] = {}  # what they rendered, while they run

    def render(self, environment: Environment) -> Rendered:
        """The environment's series."""
        return self.group.render(self._for_group(environment), common_values(environment, self.target))

    def render_changes(self, environment: Environment, held: Environment) -> Changes:
        """The environment's series where they differ from those of `held`, the version of it the store
        holds: None for each family that reads nothing that changed (every family when its tier did)."""
        return self.group.render_changes(
            self._for_group(environment),
            common_values(environment, self.target),
            self._for_group(held),
            common_values(held, self.target),
        )

    @contextlib.contextmanager
    def preparing(self) -> Iterator[None]:
        """A listing is being prepared: what `prepare` renders is shared with the others in preparation,
        and forgotten once none is left."""
        self._preparations += 1
        try:
            yield
        finally:
            self._preparations -= 1
            if not self._preparations:
                self._prepared.clear()

    def prepare(self, environment: Environment) -> tuple[Environment, Rendered]:
        """The environment rendered, or the rendering another listing in preparation made of an equal one
        (the first listing and the stream's snapshot arrive together)."""
        ready = self._prepared.get(environment.name)
        if ready is None or ready[0] != environment:
            ready = self._prepared[environment.name] = (environment, self.render(environment))
        return ready

    def _for_group(self, environment: Environment) -> Environment:
        agent = environment.agent
        if self._roundtrip_scale != 1.0 and agent is not None and agent.roundtrip_duration is not None:
            agent = dataclasses.replace(
                agent, roundtrip_duration=agent.roundtrip_duration * self._roundtrip_scale
            )
            environment = dataclasses.replace(environment, agent=agent)
        if self._strip_metadata and environment.metadata.keys() - self._metadata_keys:
            metadata = {
                key: value for key, value in environment.metadata.items() if key in self._metadata_keys
            }
            environment = dataclasses.replace(environment, metadata=metadata)
        return environment

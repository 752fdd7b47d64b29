"""The Lenses list + watch loop (being written)."""

from __future__ import annotations

import asyncio

from exporter.config import LensesSettings
from exporter.health import Health, Telemetry
from exporter.lenses.model import Environment
from exporter.sharding import Shard
from exporter.store import FamilyGroup, Store


class LensesSync:
    """Keeps every environment of one HQ in the store: re-list on a timer, live stream in between."""

    def __init__(
        self,
        settings: LensesSettings,
        group: FamilyGroup[Environment],
        store: Store,
        health: Health,
        telemetry: Telemetry,
        shard: Shard | None = None,
    ) -> None:
        self.settings = settings

    async def run(self) -> None:
        """Sync forever."""
        await asyncio.Event().wait()

    async def aclose(self) -> None:
        """Close connections."""

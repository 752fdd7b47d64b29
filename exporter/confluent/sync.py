"""Polling Confluent Flink agents (placeholder until the wing lands)."""

from __future__ import annotations

import asyncio

from exporter.config import ConfluentSettings
from exporter.health import Health, Telemetry
from exporter.sharding import Shard
from exporter.store import Store


class ConfluentSync:
    """Polls every configured Confluent target and keeps its agents in the store."""

    def __init__(
        self,
        settings: ConfluentSettings,
        store: Store,
        health: Health,
        telemetry: Telemetry,
        shard: Shard | None = None,
    ) -> None:
        self.settings = settings

    async def run(self) -> None:
        """Poll forever."""
        await asyncio.Event().wait()

    async def aclose(self) -> None:
        """Close connections."""

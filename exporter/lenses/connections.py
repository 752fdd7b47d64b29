"""Counting each environment's Kafka connections (when `kafka_connections` is on): one request per
environment after each listing, a few at a time; the counts and details ride on the environments."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Collection

import structlog

from exporter.config import LensesSettings
from exporter.lenses.client import LensesClient
from exporter.lenses.model import Environment, KafkaConnection, decode_kafka_connection
from exporter.upstream import UpstreamError

log = structlog.get_logger("exporter.lenses")


class KafkaConnections:
    """Per environment, how many Kafka connections HQ lists and the usable ones' details."""

    def __init__(self, settings: LensesSettings, client: LensesClient) -> None:
        self.settings = settings
        self.client = client
        self.target = settings.name
        self._connections: dict[str, tuple[int, tuple[KafkaConnection, ...]]] = {}

    async def poll(self, environments: Collection[str]) -> None:
        """Count (and detail) each listed environment's Kafka connections, a few requests at a time; an
        environment whose count fails loses its count (no stale figure) and the poll goes on."""
        limit = asyncio.Semaphore(max(1, self.settings.kafka_connections_concurrency))

        async def one(name: str) -> None:
            async with limit:
                try:
                    items = await self.client.list_kafka_connections(name)
                    decoded = (decode_kafka_connection(item) for item in items)
                    details = tuple(sorted({c for c in decoded if c is not None}))
                    self._connections[name] = (len(items), details)
                except UpstreamError as error:
                    self._connections.pop(name, None)
                    log.warning(
                        "kafka_connections_failed", target=self.target, environment=name, **error.log_fields()
                    )

        # A task group, not gather: a failure that is not an upstream's cancels the other counts instead of
        # leaving them running behind a restarted listing loop.
        async with asyncio.TaskGroup() as group:
            for name in environments:
                group.create_task(one(name))
        for name in set(self._connections) - set(environments):
            del self._connections[name]

    def added_to(self, environment: Environment) -> Environment:
        """The environment carrying its last counted Kafka connections (itself when there are none)."""
        known = self._connections.get(environment.name)
        if known is None or not self.settings.kafka_connections:
            return environment
        count, details = known
        if count == environment.kafka_connections and details == environment.kafka_connection_details:
            return environment
        return dataclasses.replace(environment, kafka_connections=count, kafka_connection_details=details)

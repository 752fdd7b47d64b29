"""The simulated upstream state: Lenses HQ environments (with their agents' metrics, Kafka connections and
agent keys) and Confluent Flink agents, generated from a seed and changed by `tick()` or by tests.

Objects are kept as the raw JSON the APIs serve. Each one's serialised bytes are cached and the whole
environment list is cached too, so serving 10,000 environments is a join, not a re-encoding."""

from __future__ import annotations

import bisect
import json
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from exporter.simulator.options import SimulatorOptions

TIERS = ("development", "staging", "production")
PHASES = ("READY", "RUNNING")
RARE_PHASES = ("DEGRADED",)
SECTIONS = ("kafka", "data", "apps", "connect", "other")
NAME_PATTERN = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
MAX_NAME_LENGTH = 63
AGENT_NAME_PATTERN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
MAX_AGENT_NAME_LENGTH = 100

# Agents' `metadata.self` is stored with this stand-in base and rewritten to the base URL a client used.
SELF_BASE = "http://simulator.invalid"

TEAMS = ("payments", "search", "checkout", "identity", "ledger", "fraud", "logistics", "analytics",
         "mobile", "platform", "marketing", "risk")  # fmt: skip
REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-south-1")
TIER_SHORT = {"development": "dev", "staging": "stg", "production": "prod"}
AGENT_VERSIONS = ("6.0.2", "6.0.3", "6.1.0")
KAFKA_VERSIONS = ("3.6.2", "3.7.1", "3.8.0")
MODELS = ("gpt-4o-chat", "claude-sonnet", "llama-3-70b", "embedding-small", "chat_listener")
TOOLS = ("linear-mcp-tool", "jira-mcp-tool", "github-mcp-tool", "slack-notify", "web-search", "sql-runner")
AGENT_PURPOSES = ("chat-listener", "ticket-triage", "fraud-screen", "order-router", "summariser",
                  "doc-indexer", "alert-explainer", "churn-predictor")  # fmt: skip
MAX_CHANGES = 100  # per kind and churn step, so that a large world's churn stays a trickle
# Seeded objects are created before the simulator starts, so anything created later sorts after them.
EPOCH = datetime(2025, 6, 1, tzinfo=UTC).timestamp()

MISSING: Any = object()
"""`set_agent_connected`: remove the key."""
NO_STATUS: Any = object()
"""`set_agent_connected`: remove the whole `status`."""

Listener = Callable[[str, str, bytes | None], None]
"""Called on every Lenses change: (event name, environment name, encoded environment or None if deleted)."""


def encode(value: Any) -> bytes:
    """Compact JSON bytes, as the simulator serves them."""
    return json.dumps(value, separators=(",", ":")).encode()


def timestamp(seconds: float) -> str:
    """RFC 3339 with milliseconds in UTC, the way the seeds print times (sortable as text)."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def valid_environment_name(name: object) -> bool:
    """An HQ resource name: lowercase alphanumerics and `-`, not at either end, at most 63 characters."""
    return isinstance(name, str) and len(name) <= MAX_NAME_LENGTH and NAME_PATTERN.fullmatch(name) is not None


def valid_agent_name(name: object) -> bool:
    """A Flink agent name as Confluent's schema allows it."""
    return (
        isinstance(name, str)
        and len(name) <= MAX_AGENT_NAME_LENGTH
        and AGENT_NAME_PATTERN.fullmatch(name) is not None
    )


def _agent_sort_key(agent: Any) -> tuple[str, str]:
    metadata = agent.get("metadata") if isinstance(agent, dict) else None
    created = metadata.get("created_at") if isinstance(metadata, dict) else None
    name = agent.get("name") if isinstance(agent, dict) else None
    return (created if isinstance(created, str) else "", name if isinstance(name, str) else "")


class UnknownObject(KeyError):
    """No environment, Kafka connection, Confluent environment or agent by that name."""


class World:
    """Environments and agents, their cached encodings, and the churn that changes them."""

    def __init__(self, options: SimulatorOptions, clock: Callable[[], float] = time.time) -> None:
        self.options = options
        self.clock = clock
        self.base_url = "http://127.0.0.1"
        self._rng = random.Random(options.seed)
        self._churn_rng = random.Random(f"churn-{options.seed}")
        self.organization_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        self.confluent_environment_ids = [
            f"env-{self._token(6)}" for _ in range(max(1, options.confluent_environments))
        ]
        self.kafka_cluster_ids = {
            environment_id: [
                f"lkc-{self._token(6)}" for _ in range(max(1, options.kafka_clusters_per_environment))
            ]
            for environment_id in self.confluent_environment_ids
        }
        self.environments: dict[str, Any] = {}
        self.kafka_connections: dict[str, dict[str, dict[str, Any]]] = {}
        self.agent_keys: dict[str, str] = {}
        self._parked: dict[str, dict[str, Any]] = {}
        self._encoded: dict[str, bytes] = {}
        self._list: bytes | None = None
        self._raw_serial = 0
        self._listeners: list[Listener] = []
        self._agents: dict[str, dict[str, Any]] = {env: {} for env in self.confluent_environment_ids}
        self._agent_clusters: dict[tuple[str, str], str] = {}
        self._agent_encoded: dict[tuple[str, str], bytes] = {}
        self._agent_order: dict[str, tuple[list[tuple[str, str]], list[str]]] = {}
        self._agent_serial: dict[str, int] = dict.fromkeys(self.confluent_environment_ids, 0)
        self._version = 0
        self._generate()

    # ----- generation -------------------------------------------------------------------------------

    def _token(self, length: int) -> str:
        return f"{self._rng.getrandbits(4 * length):0{length}x}"

    def _uuid(self, rng: random.Random) -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def _generate(self) -> None:
        count = max(0, self.options.environments)
        width = max(2, len(str(count)))
        tiers = [TIERS[index % 3] for index in range(count)]
        self._rng.shuffle(tiers)
        disconnected = set(self._rng.sample(range(count), count // 8 or 1)) if count >= 3 else set()
        for index in range(count):
            team = TEAMS[index % len(TEAMS)]
            tier = tiers[index]
            name = f"{team}-{TIER_SHORT[tier]}-{index + 1:0{width}d}"
            metadata = {"team": team, "region": self._rng.choice(REGIONS)}
            display_name = f"{team.capitalize()} {tier} {index + 1}"
            environment = self._new_environment(name, tier, display_name, metadata, EPOCH + index * 600.0)
            if index not in disconnected:
                environment["status"] = {"agent_connected": True, "agent": self._new_agent(name, self._rng)}
            self._store(name, environment)
            self.kafka_connections[name] = {
                connection["name"]: connection
                for connection in (
                    self._new_connection(name, f"cluster-{n}") for n in range(self._rng.randint(0, 2))
                )
            }
        for index in range(max(0, self.options.agents)):
            environment_id = self.confluent_environment_ids[index % len(self.confluent_environment_ids)]
            created_at = EPOCH + (index // 3) * 60.0  # groups of three share a time: the name breaks ties
            self._insert_agent(environment_id, self._generated_agent(environment_id, created_at))

    def _new_environment(
        self, name: str, tier: str, display_name: str, metadata: dict[str, Any], created_at: float
    ) -> dict[str, Any]:
        self.agent_keys[name] = f"agent_key_{self._token(24)}"
        return {
            "name": name,
            "display_name": display_name,
            "lrn": f"lrn:v1:hq:environments:{name}",
            "id": self._uuid(self._rng),
            "created_at": timestamp(created_at),
            "tier": tier,
            "status": {"agent_connected": False},
            "metadata": metadata,
        }

    def _new_agent(self, name: str, rng: random.Random) -> dict[str, Any]:
        now = timestamp(self.clock())
        brokers = rng.randint(3, 9)
        topics = rng.randint(10, 2000)
        return {
            "updated_at": now,
            "roundtrip_duration": rng.randint(1_500_000, 80_000_000),
            "agent": {
                "hostname": f"lenses-agent-{name}-0",
                "version": rng.choice(AGENT_VERSIONS),
                "protocol_version": 3,
                "capabilities": {"metrics": True, "k2k": rng.random() < 0.7, "publish": rng.random() < 0.5},
            },
            "metrics": {
                "kafka": {"version": rng.choice(KAFKA_VERSIONS), "num_brokers": brokers, "updated_at": now},
                "data": {
                    "num_topics": topics,
                    "num_partitions": topics * rng.randint(3, 12),
                    "num_schemas": int(topics * rng.uniform(0.4, 0.9)),
                    "num_policies": rng.randint(0, 20),
                    "topic_data_total_bytes": rng.randint(10**8, 5 * 10**12),
                    "data_in_bytes_per_sec": round(rng.uniform(1e3, 5e7), 2),
                    "data_out_bytes_per_sec": round(rng.uniform(1e3, 9e7), 2),
                    "data_in_messages_per_sec": round(rng.uniform(1, 5e4), 2),
                    "updated_at": now,
                },
                "apps": {
                    "num_consumers": rng.randint(0, 400),
                    "num_other_apps": rng.randint(0, 40),
                    "updated_at": now,
                },
                "connect": {
                    "num_clusters": rng.randint(0, 4),
                    "num_connectors": rng.randint(0, 60),
                    "updated_at": now,
                },
                "other": {"num_issues": rng.randint(0, 5), "updated_at": now},
            },
        }

    def _new_connection(self, environment: str, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "override_broker_addresses": [f"{environment}-{name}-{n}.kafka.internal:9092" for n in range(3)],
            "auth": {},
        }

    def _generated_agent(
        self,
        environment_id: str,
        created_at: float,
        name: str | None = None,
        *,
        phase: str | None = None,
        model: str | None = None,
        tools: list[str] | None = None,
        kafka_cluster_id: str | None = None,
    ) -> dict[str, Any]:
        serial = self._agent_serial[environment_id] = self._agent_serial[environment_id] + 1
        rng = self._rng
        purpose = AGENT_PURPOSES[serial % len(AGENT_PURPOSES)]
        cluster = kafka_cluster_id or rng.choice(self.kafka_cluster_ids[environment_id])
        chosen_tools = tools if tools is not None else rng.sample(TOOLS, rng.randint(0, 3))
        return self._agent_object(
            environment_id,
            name or f"{purpose}-{serial}",
            cluster,
            created_at,
            phase=phase or rng.choice(PHASES),
            model=model or rng.choice(MODELS),
            tools=chosen_tools,
            description=f"An agent for {purpose.replace('-', ' ')}",
            prompt=f"You are the {purpose} agent. Answer briefly and cite the source topic.",
            properties={"max_iterations": str(rng.randint(3, 10))},
            labels={"team": rng.choice(TEAMS)},
        )

    def _agent_object(
        self,
        environment_id: str,
        name: str,
        cluster: str,
        created_at: float,
        *,
        phase: str,
        model: str,
        tools: list[str],
        description: str,
        prompt: str,
        properties: dict[str, str],
        labels: dict[str, str],
    ) -> dict[str, Any]:
        created = timestamp(created_at)
        path = f"/sql/v1/environments/{environment_id}/databases/{cluster}/agents/{name}"
        return {
            "api_version": "sql/v1",
            "kind": "Agent",
            "metadata": {
                "self": SELF_BASE + path,
                "uid": self._uuid(self._rng),
                "resource_version": self._next_version(),
                "resource_name": (
                    f"crn://confluent.cloud/organization={self.organization_id}/environment={environment_id}"
                    f"/cloud-cluster={cluster}/agent={name}"
                ),
                "created_at": created,
                "updated_at": created,
                "labels": labels,
            },
            "name": name,
            "organization_id": self.organization_id,
            "environment_id": environment_id,
            "spec": {
                "description": description,
                "model": model,
                "prompt": prompt,
                "tools": tools,
                "properties": properties,
            },
            "status": {"phase": phase},
        }

    def _next_version(self) -> str:
        self._version += 1
        return f"v{self._version:x}"

    # ----- Lenses: reading --------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        """Be told of every Lenses change (the SSE hub subscribes here)."""
        self._listeners.append(listener)

    def environment_list_bytes(self) -> bytes:
        """`{"items": [...]}` for every environment, cached until the next change."""
        if self._list is None:
            self._list = b'{"items":[' + b",".join(self._encoded.values()) + b"]}"
        return self._list

    def environment_bytes(self, name: str) -> bytes:
        """One environment's encoding (raises `UnknownObject`)."""
        try:
            return self._encoded[name]
        except KeyError:
            raise UnknownObject(name) from None

    def environment(self, name: str) -> dict[str, Any]:
        """One environment as a fresh copy (raises `UnknownObject`)."""
        result: dict[str, Any] = json.loads(self.environment_bytes(name))
        return result

    def connected(self, name: str) -> bool:
        """Whether the environment's agent is connected."""
        status = self._environment(name).get("status")
        return isinstance(status, dict) and status.get("agent_connected") is True

    def _environment(self, name: str) -> Any:
        try:
            return self.environments[name]
        except KeyError:
            raise UnknownObject(name) from None

    # ----- Lenses: changes --------------------------------------------------------------------------

    def _store(self, name: str, environment: Any) -> bytes:
        self.environments[name] = environment
        encoded = self._encoded[name] = encode(environment)
        self._list = None
        return encoded

    def _changed(self, name: str) -> None:
        encoded = self._store(name, self.environments[name])
        for listener in self._listeners:
            listener("environment_updated", name, encoded)

    def create_environment(
        self,
        name: str,
        tier: str = "development",
        display_name: str | None = None,
        metadata: dict[str, Any] | None = None,
        connected: bool = True,
    ) -> dict[str, Any]:
        """Add an environment (with a connected agent unless `connected=False`); returns it with its
        `agent_key`, as HQ's create call does."""
        environment = self._new_environment(
            name, tier, display_name or name, dict(metadata or {}), self.clock()
        )
        if connected:
            environment["status"] = {"agent_connected": True, "agent": self._new_agent(name, self._rng)}
        self.environments[name] = environment
        self.kafka_connections.setdefault(name, {})
        self._changed(name)
        return {**self.environment(name), "agent_key": self.agent_keys[name]}

    def update_environment(self, name: str, **changes: Any) -> dict[str, Any]:
        """Replace top-level fields (`display_name`, `tier`, `metadata`, `status`, ...)."""
        environment = self._environment(name)
        environment.update(changes)
        self._changed(name)
        return self.environment(name)

    def set_tier(self, name: str, tier: str) -> dict[str, Any]:
        """Move an environment to another tier."""
        return self.update_environment(name, tier=tier)

    def set_metrics(self, name: str, section: str, **values: Any) -> dict[str, Any]:
        """Set fields of one `status.agent.metrics` block (the agent must be connected)."""
        agent = self._environment(name)["status"]["agent"]
        block = agent["metrics"].setdefault(section, {})
        block.update(values)
        block["updated_at"] = agent["updated_at"] = timestamp(self.clock())
        self._changed(name)
        return self.environment(name)

    def disconnect_agent(self, name: str) -> None:
        """The environment's agent goes away: `agent_connected` false and no `status.agent`."""
        environment = self._environment(name)
        status = environment.get("status")
        if isinstance(status, dict) and isinstance(status.get("agent"), dict):
            self._parked[name] = status["agent"]
        environment["status"] = {"agent_connected": False}
        self._changed(name)

    def connect_agent(self, name: str) -> None:
        """The environment's agent (the one that left, or a new one) connects."""
        environment = self._environment(name)
        agent = self._parked.pop(name, None) or self._new_agent(name, self._rng)
        agent["updated_at"] = timestamp(self.clock())
        environment["status"] = {"agent_connected": True, "agent": agent}
        self._changed(name)

    def set_agent_connected(self, name: str, value: Any = MISSING) -> None:
        """Put any JSON value in `status.agent_connected` (a schema change upstream: `None`, a string...);
        `MISSING` removes the key, and `NO_STATUS` the whole `status`. `status.agent` is left as it is."""
        environment = self._environment(name)
        if value is NO_STATUS:
            environment.pop("status", None)
        else:
            status = environment.setdefault("status", {})
            if value is MISSING:
                status.pop("agent_connected", None)
            else:
                status["agent_connected"] = value
        self._changed(name)

    def delete_environment(self, name: str) -> None:
        """Remove an environment (its connections and key too)."""
        self._environment(name)
        del self.environments[name]
        del self._encoded[name]
        self._list = None
        self._parked.pop(name, None)
        self.kafka_connections.pop(name, None)
        self.agent_keys.pop(name, None)
        for listener in self._listeners:
            listener("environment_deleted", name, None)

    def put_raw_environment(self, obj: Any) -> str:
        """Store arbitrary JSON as an environment, listed as-is and sent as `environment_updated`.
        Kept under its `name` when that is a string, else under a made-up key; returns the key."""
        name = obj.get("name") if isinstance(obj, dict) else None
        if not isinstance(name, str):
            self._raw_serial += 1
            name = f"\x00raw-{self._raw_serial}"
        self.environments[name] = obj
        self.kafka_connections.setdefault(name, {})
        self._changed(name)
        return name

    def renew_key(self, name: str) -> dict[str, Any]:
        """A new agent key; the environment plus the key, as HQ answers."""
        self._environment(name)
        self.agent_keys[name] = f"agent_key_{self._token(24)}"
        return {**self.environment(name), "agent_key": self.agent_keys[name]}

    def drift(self, name: str, rng: random.Random | None = None) -> bool:
        """Move a connected environment's figures a little, as a live agent would; False if not connected."""
        rng = rng or self._churn_rng
        environment = self.environments.get(name)
        status = environment.get("status") if isinstance(environment, dict) else None
        agent = status.get("agent") if isinstance(status, dict) else None
        if not isinstance(agent, dict) or not isinstance(agent.get("metrics"), dict):
            return False
        now = timestamp(self.clock())
        agent["updated_at"] = now
        agent["roundtrip_duration"] = max(
            500_000, int(agent.get("roundtrip_duration", 0) * rng.uniform(0.8, 1.25))
        )
        metrics = agent["metrics"]
        data = metrics.get("data")
        if isinstance(data, dict):
            for key in ("data_in_bytes_per_sec", "data_out_bytes_per_sec", "data_in_messages_per_sec"):
                if isinstance(data.get(key), int | float):
                    data[key] = round(data[key] * rng.uniform(0.7, 1.4) + rng.uniform(0, 10), 2)
            if isinstance(data.get("topic_data_total_bytes"), int):
                data["topic_data_total_bytes"] += rng.randint(0, 10**7)
            if isinstance(data.get("num_topics"), int) and rng.random() < 0.2:
                data["num_topics"] = max(1, data["num_topics"] + rng.randint(-2, 3))
        apps = metrics.get("apps")
        if isinstance(apps, dict) and isinstance(apps.get("num_consumers"), int):
            apps["num_consumers"] = max(0, apps["num_consumers"] + rng.randint(-3, 3))
        other = metrics.get("other")
        if isinstance(other, dict) and isinstance(other.get("num_issues"), int) and rng.random() < 0.2:
            other["num_issues"] = max(0, other["num_issues"] + rng.choice((-1, 1)))
        for block in metrics.values():
            if isinstance(block, dict):
                block["updated_at"] = now
        self._changed(name)
        return True

    def nudge(self, name: str, rng: random.Random | None = None) -> bool:
        """Change one figure of a connected environment (its issue count, by one) and nothing else: the
        smallest update an agent sends; False if the environment has no such figure."""
        rng = rng or self._churn_rng
        environment = self.environments.get(name)
        status = environment.get("status") if isinstance(environment, dict) else None
        agent = status.get("agent") if isinstance(status, dict) else None
        metrics = agent.get("metrics") if isinstance(agent, dict) else None
        other = metrics.get("other") if isinstance(metrics, dict) else None
        if not isinstance(other, dict) or not isinstance(other.get("num_issues"), int):
            return False
        other["num_issues"] = max(0, other["num_issues"] + rng.choice((-1, 1)))
        self._changed(name)
        return True

    # ----- Lenses: Kafka connections ----------------------------------------------------------------

    def connections(self, environment: str) -> list[dict[str, Any]]:
        """The environment's Kafka connections."""
        self._environment(environment)
        return list(self.kafka_connections.get(environment, {}).values())

    def connection(self, environment: str, name: str) -> dict[str, Any]:
        """One Kafka connection (raises `UnknownObject`)."""
        try:
            return self.kafka_connections[environment][name]
        except KeyError:
            raise UnknownObject(name) from None

    def put_connection(self, environment: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create or replace a Kafka connection."""
        self._environment(environment)
        connection: dict[str, Any] = {
            "name": name,
            "override_broker_addresses": list(body.get("override_broker_addresses") or []),
            "auth": body.get("auth") if isinstance(body.get("auth"), dict) else {},
        }
        self.kafka_connections.setdefault(environment, {})[name] = connection
        return connection

    def delete_connection(self, environment: str, name: str) -> None:
        """Remove a Kafka connection (raises `UnknownObject`)."""
        self.connection(environment, name)
        del self.kafka_connections[environment][name]

    # ----- Confluent: reading -----------------------------------------------------------------------

    def _agent_map(self, environment_id: str) -> dict[str, Any]:
        try:
            return self._agents[environment_id]
        except KeyError:
            raise UnknownObject(environment_id) from None

    def has_confluent_environment(self, environment_id: str) -> bool:
        """Whether the Confluent environment id is served."""
        return environment_id in self._agents

    def agent_order(self, environment_id: str) -> tuple[list[tuple[str, str]], list[str]]:
        """Sort keys (`created_at`, `name`) and agent keys, in listing order (cached)."""
        order = self._agent_order.get(environment_id)
        if order is None:
            agents = self._agent_map(environment_id)
            pairs = sorted((_agent_sort_key(agent), key) for key, agent in agents.items())
            order = self._agent_order[environment_id] = ([p[0] for p in pairs], [p[1] for p in pairs])
        return order

    def agent_bytes(self, environment_id: str, key: str) -> bytes:
        """One agent's encoding, `metadata.self` still on `SELF_BASE`."""
        cached = self._agent_encoded.get((environment_id, key))
        if cached is None:
            cached = self._agent_encoded[(environment_id, key)] = encode(self._agents[environment_id][key])
        return cached

    def agent_page(
        self, environment_id: str, after: tuple[str, str] | None, size: int
    ) -> tuple[list[bytes], int, tuple[str, str] | None]:
        """Up to `size` encoded agents sorted after the cursor; the total count; the last key given (None
        when this is the last page)."""
        keys, names = self.agent_order(environment_id)
        start = 0 if after is None else bisect.bisect_right(keys, after)
        chosen = names[start : start + size]
        more = start + size < len(names)
        return (
            [self.agent_bytes(environment_id, key) for key in chosen],
            len(names),
            (keys[start + size - 1] if more else None),
        )

    def agents(self, environment_id: str) -> list[dict[str, Any]]:
        """Every agent of a Confluent environment, in listing order, as fresh copies (self on `base_url`)."""
        _, names = self.agent_order(environment_id)
        return [self._agent_copy(environment_id, key) for key in names]

    def _agent_copy(self, environment_id: str, key: str) -> dict[str, Any]:
        data = self.agent_bytes(environment_id, key).replace(SELF_BASE.encode(), self.base_url.encode())
        result: dict[str, Any] = json.loads(data)
        return result

    def agent(self, environment_id: str, name: str, kafka_cluster_id: str | None = None) -> dict[str, Any]:
        """One agent (raises `UnknownObject`, also when it lives in another Kafka cluster)."""
        agents = self._agent_map(environment_id)
        if name not in agents or (
            kafka_cluster_id is not None
            and self._agent_clusters.get((environment_id, name)) != kafka_cluster_id
        ):
            raise UnknownObject(name)
        return self._agent_copy(environment_id, name)

    def agent_count(self) -> int:
        """Agents across every Confluent environment."""
        return sum(len(agents) for agents in self._agents.values())

    # ----- Confluent: changes -----------------------------------------------------------------------

    def _insert_agent(self, environment_id: str, agent: dict[str, Any], key: str | None = None) -> str:
        key = key or agent["name"]
        self._agents[environment_id][key] = agent
        self_url = (
            agent.get("metadata", {}).get("self", "") if isinstance(agent.get("metadata"), dict) else ""
        )
        match = re.search(r"/databases/([^/]+)/", self_url if isinstance(self_url, str) else "")
        if match:
            self._agent_clusters[(environment_id, key)] = match.group(1)
        self._agent_encoded.pop((environment_id, key), None)
        self._agent_order.pop(environment_id, None)
        return key

    def _touch_agent(self, environment_id: str, key: str) -> None:
        agent = self._agents[environment_id][key]
        agent["metadata"]["updated_at"] = timestamp(self.clock())
        agent["metadata"]["resource_version"] = self._next_version()
        self._agent_encoded.pop((environment_id, key), None)

    def add_agent(
        self,
        environment_id: str,
        name: str,
        phase: str = "READY",
        model: str | None = None,
        tools: list[str] | None = None,
        kafka_cluster_id: str | None = None,
        **spec: Any,
    ) -> dict[str, Any]:
        """Create an agent now (in the given or a random Kafka cluster); `spec` overrides spec fields."""
        agents = self._agent_map(environment_id)
        if name in agents:
            raise ValueError(f"agent {name!r} already exists in {environment_id}")
        agent = self._generated_agent(
            environment_id, self.clock(), name, phase=phase, model=model, tools=tools,
            kafka_cluster_id=kafka_cluster_id,
        )  # fmt: skip
        agent["spec"].update(spec)
        self._insert_agent(environment_id, agent)
        return self._agent_copy(environment_id, name)

    def replace_agent_spec(self, environment_id: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Update an agent's spec (PUT); bumps `resource_version` and `updated_at`."""
        agent = self._agent_map(environment_id)[name]
        agent["spec"].update({key: value for key, value in spec.items() if key in agent["spec"]})
        self._touch_agent(environment_id, name)
        return self._agent_copy(environment_id, name)

    def set_agent_phase(self, environment_id: str, name: str, phase: str) -> None:
        """Set an agent's `status.phase` (any string: the enum is extensible)."""
        agents = self._agent_map(environment_id)
        if name not in agents:
            raise UnknownObject(name)
        agents[name]["status"] = {"phase": phase}
        self._touch_agent(environment_id, name)

    def delete_agent(self, environment_id: str, name: str) -> None:
        """Remove an agent."""
        agents = self._agent_map(environment_id)
        if name not in agents:
            raise UnknownObject(name)
        del agents[name]
        self._agent_clusters.pop((environment_id, name), None)
        self._agent_encoded.pop((environment_id, name), None)
        self._agent_order.pop(environment_id, None)

    def set_agent_count(self, environment_id: str, count: int) -> None:
        """Grow (new agents, created now) or shrink (newest first) an environment's agents to `count`."""
        agents = self._agent_map(environment_id)
        if len(agents) > count:
            _, names = self.agent_order(environment_id)
            for key in names[count:]:
                del agents[key]
                self._agent_clusters.pop((environment_id, key), None)
                self._agent_encoded.pop((environment_id, key), None)
            self._agent_order.pop(environment_id, None)
        now = self.clock()
        while len(agents) < count:
            agent = self._generated_agent(environment_id, now)
            while agent["name"] in agents:
                agent = self._generated_agent(environment_id, now)
            self._insert_agent(environment_id, agent)

    def put_raw_agent(self, environment_id: str, obj: Any) -> str:
        """Store arbitrary JSON as an agent of the environment, listed as-is; returns its key."""
        agents = self._agent_map(environment_id)
        name = obj.get("name") if isinstance(obj, dict) else None
        if not isinstance(name, str) or not name:
            self._raw_serial += 1
            name = f"\x00raw-{self._raw_serial}"
        agents[name] = obj
        self._agent_encoded.pop((environment_id, name), None)
        self._agent_order.pop(environment_id, None)
        return name

    # ----- churn ------------------------------------------------------------------------------------

    def tick(self) -> None:
        """One deterministic churn step: figures drift, agents leave and come back, Flink agents change
        phase (READY and RUNNING, rarely DEGRADED)."""
        rng = self._churn_rng
        names = [name for name, env in self.environments.items() if isinstance(env, dict)]
        connected = [name for name in names if self._is_connected(name)]
        disconnected = [name for name in names if not self._is_connected(name)]
        for name in rng.sample(connected, min(len(connected), max(1, min(MAX_CHANGES, len(connected) // 4)))):
            self.drift(name, rng)
        # Leaving at 4% and coming back at 30% a step keeps about one environment in nine without an agent.
        leaving = [name for name in connected if rng.random() < 0.04][:MAX_CHANGES]
        returning = [name for name in disconnected if rng.random() < 0.3][:MAX_CHANGES]
        for name in returning:
            self.connect_agent(name)
        for name in leaving:
            self.disconnect_agent(name)
        for environment_id in self.confluent_environment_ids:
            agents = self._agents[environment_id]
            keys = [
                key
                for key, agent in agents.items()
                if isinstance(agent, dict) and isinstance(agent.get("status"), dict)
            ]
            for key in rng.sample(keys, min(len(keys), max(1, min(MAX_CHANGES, len(keys) // 10)))):
                phase = agents[key]["status"].get("phase")
                if phase in RARE_PHASES:
                    new_phase = "READY"
                elif rng.random() < 0.05:
                    new_phase = rng.choice(RARE_PHASES)
                else:
                    new_phase = "READY" if phase == "RUNNING" else "RUNNING"
                self.set_agent_phase(environment_id, key, new_phase)

    def _is_connected(self, name: str) -> bool:
        try:
            return self.connected(name)
        except UnknownObject:
            return False

    def random_names(self, rng: random.Random, count: int) -> Iterable[str]:
        """`count` random environment names (with repeats), for generated update streams."""
        names = [name for name, env in self.environments.items() if isinstance(env, dict)]
        if not names:
            return []
        return (rng.choice(names) for _ in range(count))

"""Splitting objects between replicas by a stable hash (`--shard=I --total-shards=N`)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Shard:
    """This process's shard: it exports the objects whose key hashes to `index` modulo `total`."""

    index: int = 0
    total: int = 1

    def owns(self, key: str) -> bool:
        """Whether this shard exports the object with this key (stable across processes and restarts)."""
        if self.total <= 1:
            return True
        return zlib.crc32(key.encode("utf-8", "surrogatepass")) % self.total == self.index

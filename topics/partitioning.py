"""Which partition a key lands in. Every producer of cda uses librdkafka's `consistent_random` partitioner
(set explicitly in `EventProducer`): a non-empty key goes to CRC-32(key) mod the partition count. Knowing
it lets a reader go straight to the one partition that holds a company's events."""

from __future__ import annotations

import zlib

PARTITIONER = "consistent_random"


def partition_for(key: bytes, partitions: int) -> int:
    if not key:
        raise ValueError("an empty key has no fixed partition (consistent_random spreads it)")
    return zlib.crc32(key) % partitions

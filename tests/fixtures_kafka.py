"""Writing and reading whole topics on the session's real broker, for the integration tests.

Plain async functions (no fixtures): every test that produces a stream or checks what a plane
wrote does it the same way, with one producer or one group-less consumer it closes again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import ConsumerRecord, TopicPartition

from modelmedic.config import Settings
from modelmedic.kafka import consumer, producer, topic_partitions


async def produce(settings: Settings, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]) -> None:
    """Write ``(key, value)`` records to ``topic`` in order, and return once the broker has them all."""
    p = producer(settings.kafka, linger_ms=5)
    await p.start()
    try:
        for key, value in records:
            await p.send(topic, value, key=key)
        await p.flush()
    finally:
        await p.stop()


async def read_to_end(settings: Settings, topic: str, timeout: float = 30.0) -> list[ConsumerRecord]:
    """Every record of ``topic`` from its beginning to its end offsets as of the call: partition by
    partition, each in offset order."""
    c = consumer(settings.kafka, group_id=None)
    await c.start()
    try:
        tps = await topic_partitions(c, topic)
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        ends = await c.end_offsets(tps)
        out: dict[TopicPartition, list[ConsumerRecord]] = {tp: [] for tp in tps}
        async with asyncio.timeout(timeout):
            while [tp for tp in tps if await c.position(tp) < ends[tp]]:
                for tp, records in (await c.getmany(timeout_ms=200)).items():
                    out[tp] += records
        return [r for tp in tps for r in out[tp]]
    finally:
        await c.stop()


async def read_first(settings: Settings, topic: str, n: int, timeout: float = 30.0) -> list[ConsumerRecord]:
    """At least the first ``n`` records of ``topic`` (in the order they are fetched), waiting up to
    ``timeout`` seconds for them to be written."""
    c = consumer(settings.kafka, group_id=None)
    await c.start()
    out: list[ConsumerRecord] = []
    try:
        tps = await topic_partitions(c, topic)
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        async with asyncio.timeout(timeout):
            while len(out) < n:
                for records in (await c.getmany(timeout_ms=200)).values():
                    out.extend(records)
    finally:
        await c.stop()
    return out

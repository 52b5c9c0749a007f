"""Kafka clients and topics, built from :class:`~modelmedic.config.KafkaSettings`.

One place maps our settings (TLS, SASL, batching) onto aiokafka's arguments, and one
place creates the topics modelmedic owns with the right cleanup policy: the state and
incident topics are *compacted* (the latest record per key is the truth, forever), the
rest are ordinary retention topics.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from modelmedic.config import KafkaSettings
from modelmedic.errors import KafkaUnavailable

MAX_STATE_BYTES = 16 * 1024 * 1024
"""Largest snapshot record; the state topic is created to accept it."""


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Connection options shared by producers, consumers and the admin client."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None)
        if settings.ssl_certfile:
            context.load_cert_chain(str(settings.ssl_certfile), str(settings.ssl_keyfile) if settings.ssl_keyfile else None)
        options["ssl_context"] = context
    if settings.security_protocol.startswith("SASL"):
        options.update(
            sasl_mechanism=settings.sasl_mechanism,
            sasl_plain_username=settings.sasl_username,
            sasl_plain_password=settings.sasl_password,
        )
    return options


def producer(settings: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """A producer for our outputs: acks from all replicas, small linger for low latency."""
    options = {"acks": "all", "linger_ms": 2, "max_request_size": MAX_STATE_BYTES, "enable_idempotence": True}
    options.update(overrides)
    return AIOKafkaProducer(**client_options(settings), **options)


ProducerFactory = Callable[..., AIOKafkaProducer]
"""How a plane gets its producer: called as ``factory(kafka_settings, **overrides)`` (default :func:`producer`;
``modelmedic.testing`` hands in fakes)."""

ConsumerFactory = Callable[..., AIOKafkaConsumer]
"""How a plane gets its consumer: called as ``factory(kafka_settings, group_id=..., **overrides)`` (default
:func:`consumer`)."""


def consumer(settings: KafkaSettings, *topics: str, group_id: str | None, **overrides: Any) -> AIOKafkaConsumer:
    """A consumer that never auto-commits: offsets are committed after the work they cover."""
    options = {
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": settings.max_poll_records,
        "fetch_max_bytes": 64 * 1024 * 1024,
        "max_partition_fetch_bytes": 1024 * 1024,
        "fetch_max_wait_ms": 50,
        # Range assignment gives partition p of every subscribed topic to the same member:
        # inference and labels are co-partitioned (same key, same partition count).
        "partition_assignment_strategy": (RangePartitionAssignor,),
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **client_options(settings), **options)


async def ensure_topics(settings: KafkaSettings, timeout_s: float = 30.0) -> None:
    """Create modelmedic's topics if they do not exist (idempotent)."""
    t = settings.topics
    compacted = {"cleanup.policy": "compact", "segment.ms": "60000", "min.cleanable.dirty.ratio": "0.1"}
    specs = [
        NewTopic(t.inference, settings.partitions, 1),
        NewTopic(t.labels, settings.partitions, 1),
        NewTopic(t.anomalies, settings.partitions, 1),
        NewTopic(t.dlq, settings.partitions, 1),
        NewTopic(t.audit, settings.partitions, 1),
        NewTopic(t.incidents, settings.partitions, 1, topic_configs=compacted),
        NewTopic(t.silences, 1, 1, topic_configs=compacted),  # a handful of records: one partition keeps their order
        NewTopic(t.state, settings.partitions, 1, topic_configs={**compacted, "max.message.bytes": str(MAX_STATE_BYTES)}),
    ]
    admin = AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
    except (KafkaConnectionError, asyncio.TimeoutError, OSError) as exc:
        raise KafkaUnavailable(
            f"cannot reach Kafka at {settings.bootstrap_servers} ({exc!r}): check kafka.bootstrap_servers "
            "(MODELMEDIC_KAFKA__BOOTSTRAP_SERVERS) and that the brokers are up"
        ) from None
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another replica created it first
    finally:
        await admin.close()


async def topic_partitions(c: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic``, asking the brokers when the client's metadata is not fresh yet."""
    partitions = c.partitions_for_topic(topic) or set()
    if not partitions:
        await c._client.force_metadata_update()  # noqa: SLF001 - aiokafka's public API lacks this
        partitions = c.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, p) for p in sorted(partitions)]


async def read_compacted(settings: KafkaSettings, topic: str, timeout_s: float = 30.0) -> dict[bytes, bytes]:
    """The latest value per key of a compacted topic, read from its beginning to its end.

    This is how state survives a crash: whatever the last writer wrote per key is the
    truth. A tombstone (null value) deletes the key.
    """
    c = consumer(settings, group_id=None, enable_auto_commit=False, max_poll_records=10_000)
    await c.start()
    try:
        tps = await topic_partitions(c, topic)
        if not tps:
            return {}
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        ends = await c.end_offsets(tps)
        latest: dict[bytes, bytes] = {}
        remaining = {tp for tp in tps if ends[tp] > 0}
        deadline = asyncio.get_running_loop().time() + timeout_s
        while remaining:
            if asyncio.get_running_loop().time() > deadline:
                raise KafkaUnavailable(f"timed out reading {topic} to its end: is the broker overloaded?")
            batch = await c.getmany(timeout_ms=200)
            for tp, records in batch.items():
                for r in records:
                    if r.value is None:
                        latest.pop(r.key, None)
                    else:
                        latest[r.key] = r.value
            for tp in list(remaining):
                if await c.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return latest
    finally:
        await c.stop()

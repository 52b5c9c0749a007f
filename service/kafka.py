"""Kafka clients and topics, built from :class:`~modelmedic.config.KafkaSettings`.

One place maps our settings (TLS, SASL, batching) onto aiokafka's arguments, and one
place creates the topics modelmedic owns with the right cleanup policy, replication and
``min.insync.replicas`` (:func:`ensure_topics`), and checks those that exist at start: the
state, incident and silence topics are *compacted* (the latest record per key is the truth,
forever), the rest are ordinary retention topics.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata
from aiokafka.consumer import fetcher
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from modelmedic.config import KafkaSettings
from modelmedic.errors import KafkaUnavailable, TopicMisconfigured

log = logging.getLogger("modelmedic.kafka")

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


class BacklogAssignor(AbstractPartitionAssignor):
    """Shares partitions by backlog, sticky, co-partitioned: one per consumer (it carries that consumer's lags).

    Like range assignment, partition p of every subscribed topic goes to one member (inference and
    labels are co-partitioned). Unlike it, which splits by count, it weighs each partition by
    1 + the records behind its end that its current owner reported when it joined (:attr:`lag`, kept
    up to date by the owner), so a replica with three drained partitions does not idle while
    another still has three full ones; a partition nobody reported weighs the mean of those
    reported. Each member first keeps its own partitions, heaviest first, while it stays within
    its fair share (its heaviest one at least), then the rest go heaviest first to the least
    loaded member: a joining replica takes partitions from the others without reshuffling them,
    and a partition that stays is kept in memory by its owner (no snapshot reload;
    modelmedic.detection.plane).
    """

    name = "modelmedic-backlog"
    version = 0

    def __init__(self) -> None:
        self.lag: dict[TopicPartition, int] = {}
        """Records behind the log end per assigned partition, as last seen (set by the consumer's owner)."""
        self.owned: list[int] = []
        """Partition numbers of the last assignment."""

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:  # type: ignore[override]
        behind: dict[int, int] = {p: 0 for p in self.owned}
        for tp, n in self.lag.items():
            if tp.partition in behind:
                behind[tp.partition] += n
        return ConsumerProtocolMemberMetadata(self.version, sorted(topics), json.dumps(behind).encode())

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:  # type: ignore[override]
        tps = set(assignment.partitions())
        self.owned = sorted({tp.partition for tp in tps})
        self.lag = {tp: n for tp, n in self.lag.items() if tp in tps}

    def assign(self, cluster: ClusterMetadata,  # type: ignore[override]
               members: Mapping[str, ConsumerProtocolMemberMetadata]) -> dict[str, ConsumerProtocolMemberAssignment]:
        topics = sorted({t for m in members.values() for t in m.subscription})
        counts = {t: len(cluster.partitions_for_topic(t) or ()) for t in topics}
        units = range(max(counts.values(), default=0))
        reported = {m: _reported(meta.user_data) for m, meta in members.items()}
        shares = share_by_backlog(list(units), reported)
        return {m: ConsumerProtocolMemberAssignment(
            self.version, [(t, [p for p in shares[m] if p < counts[t]]) for t in sorted(meta.subscription)], b"")
            for m, meta in members.items()}


def _reported(user_data: bytes) -> dict[int, int]:
    """A member's report: its partitions and their lags (none from a member of an older release)."""
    try:
        return {int(p): int(n) for p, n in json.loads(user_data or b"{}").items()}
    except (ValueError, AttributeError):
        return {}


def share_by_backlog(units: list[int], reported: dict[str, dict[int, int]]) -> dict[str, list[int]]:
    """Partition numbers per member (:class:`BacklogAssignor`): each member keeps what it reported owning,
    heaviest first, within its fair share (its heaviest one at least); the rest go heaviest first to the
    least loaded member."""
    lags = {p: n for owned in reported.values() for p, n in owned.items() if p in units}
    unknown = sum(lags.values()) / len(lags) if lags else 0.0
    weight = {p: 1.0 + lags.get(p, unknown) for p in units}
    fair = sum(weight.values()) / max(1, len(reported))
    shares: dict[str, list[int]] = {m: [] for m in sorted(reported)}
    load = dict.fromkeys(shares, 0.0)
    taken: set[int] = set()
    for m in shares:
        for p in sorted(reported[m], key=lambda p: (-weight.get(p, 0.0), p)):
            if p in weight and p not in taken and (not shares[m] or load[m] + weight[p] <= fair + 1e-9):
                shares[m].append(p)
                load[m] += weight[p]
                taken.add(p)
    for p in sorted((p for p in units if p not in taken), key=lambda p: (-weight[p], p)):
        m = min(shares, key=lambda m: (load[m], len(shares[m]), m))
        shares[m].append(p)
        load[m] += weight[p]
    return {m: sorted(ps) for m, ps in shares.items()}


ConsumerFactory = Callable[..., AIOKafkaConsumer]
"""How a plane gets its consumer: called as ``factory(kafka_settings, group_id=..., **overrides)`` (default
:func:`consumer`)."""


IDLE_WAIT_MS = 1000
"""How long a consumer with nothing to read waits before its loop turns again: the broker's hold of a
fetch (which returns as soon as a record arrives, so it costs no latency), the fetcher's own wake-up
(aiokafka's ``consumer_timeout_ms``; a rebalance wakes it anyway) and a follower's ``getmany``. At
aiokafka's defaults and 50 ms fetches an idle service woke ~100 times a second and burned 5% of a
core (load/bench_service.py)."""


def consumer(settings: KafkaSettings, *topics: str, group_id: str | None, assignor: BacklogAssignor | None = None,
             **overrides: Any) -> AIOKafkaConsumer:
    """A consumer that never auto-commits: offsets are committed after the work they cover. ``assignor``:
    the one to report this consumer's lags to its group (a fresh one, reporting none, by default)."""
    options = {
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": settings.max_poll_records,
        "fetch_max_bytes": 64 * 1024 * 1024,
        "max_partition_fetch_bytes": 1024 * 1024,
        "fetch_max_wait_ms": IDLE_WAIT_MS,
        "consumer_timeout_ms": IDLE_WAIT_MS,
        # Partition p of every subscribed topic to the same member (inference and labels are
        # co-partitioned: same key, same partition count). Range too, for a group that still has
        # a replica of a release before the backlog assignor: the group uses what all members offer.
        "partition_assignment_strategy": (assignor or BacklogAssignor(), RangePartitionAssignor),
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **client_options(settings), **options)


def as_fetched(value: bytes | None) -> bytes | None:
    """The ``value_deserializer`` that makes a consumer's ``getmany`` hand out aiokafka's own records.

    They have ``offset``, ``key``, ``value``, ``timestamp`` and ``headers``, but no ``topic`` or
    ``partition`` (the batch's keys say them): a ``ConsumerRecord`` per record (a dataclass of
    eleven fields, a headers tuple, two lengths) was 9% of a draining ``modelmedic run``'s samples, start-up
    included (py-spy of load/bench_service.py). Only the detection plane, which reads millions, asks for them.
    Should aiokafka no longer build records where :class:`_PartitionRecords` expects, this
    identity keeps values as they are and the records are ``ConsumerRecord``s again."""
    return value


def _as_is(tp: TopicPartition, record: Any) -> Any:
    return record


class _PartitionRecords(fetcher.PartitionRecords):
    """aiokafka's fetched records of one partition, as aiokafka's record objects for a consumer asking for
    them (:func:`as_fetched`), as ``ConsumerRecord``s (unchanged) for every other consumer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._value_deserializer is as_fetched:
            self._consumer_record = _as_is  # the records are built lazily: this takes effect for every one


fetcher.PartitionRecords = _PartitionRecords  # the name the fetcher builds each fetch's records by


COMPACTED = {"cleanup.policy": "compact", "segment.ms": "60000", "min.cleanable.dirty.ratio": "0.1"}
"""A compacted topic's settings: the latest record per key is kept forever, older ones cleaned within minutes."""


@dataclass(frozen=True)
class TopicSpec:
    """A topic modelmedic uses: how it is created when missing, and what is demanded of it when it exists."""

    name: str
    partitions: int
    configs: dict[str, str]
    written: bool
    """modelmedic writes it: settings that lose or refuse its records fail start (an input topic's only warn)."""

    @property
    def compacted(self) -> bool:
        return self.configs["cleanup.policy"] == "compact"


@dataclass(frozen=True)
class ExistingTopic:
    """A topic as the cluster describes it."""

    partitions: int
    replication_factor: int
    """The fewest replicas of any of its partitions."""
    configs: dict[str, str]


@dataclass(frozen=True)
class Finding:
    """Something about an existing topic that differs from what modelmedic asks (``fatal``: it fails start)."""

    fatal: bool
    message: str


def topic_specs(settings: KafkaSettings) -> list[TopicSpec]:
    """Every topic modelmedic uses, with the settings of :class:`~modelmedic.config.KafkaSettings`: the keyed
    state (incidents, silences, detection snapshots) compacted, the rest kept for a time."""
    t, n = settings.topics, settings.partitions
    isr = {"min.insync.replicas": str(settings.min_insync_replicas)}
    kept = {**isr, "cleanup.policy": "delete", "retention.ms": str(settings.retention_ms)}
    compacted = {**isr, **COMPACTED}
    return [
        TopicSpec(t.inference, n, kept, written=False),
        TopicSpec(t.labels, n, kept, written=False),
        TopicSpec(t.anomalies, n, kept, written=True),
        TopicSpec(t.dlq, n, kept, written=True),
        TopicSpec(t.audit, n, {**kept, "retention.ms": str(settings.audit_retention_ms)}, written=True),
        TopicSpec(t.incidents, n, compacted, written=True),
        TopicSpec(t.silences, 1, compacted, written=True),  # a handful of records: one partition keeps their order
        TopicSpec(t.state, n, {**compacted, "max.message.bytes": str(MAX_STATE_BYTES)}, written=True),
    ]


def check_topic(spec: TopicSpec, found: ExistingTopic, settings: KafkaSettings) -> list[Finding]:
    """What differs between an existing topic and ``spec``. Unsafe differences (records lost or refused)
    are fatal on a topic modelmedic writes and warnings on an input topic; the rest (retention, partition
    count) are warnings: the topic is used as it is."""
    name, out = spec.name, []
    alter = (f"kafka-configs.sh --bootstrap-server <broker> --alter --entity-type topics --entity-name {name} "
             "--add-config")

    def unsafe(message: str) -> None:
        out.append(Finding(spec.written, f"topic {name}: {message}"))

    def differs(message: str) -> None:
        out.append(Finding(False, f"topic {name}: {message}"))

    rf, isr = found.replication_factor, int(found.configs.get("min.insync.replicas", "1"))
    if rf < settings.replication_factor:
        unsafe(f"replication factor {rf}, kafka.replication_factor asks for {settings.replication_factor}: losing a "
               "broker loses its records. Add replicas (kafka-reassign-partitions.sh), or on a development cluster "
               "with fewer brokers set kafka.replication_factor and kafka.min_insync_replicas to what it holds")
    if isr < settings.min_insync_replicas:
        unsafe(f"min.insync.replicas={isr}, kafka.min_insync_replicas asks for {settings.min_insync_replicas}: a "
               f"write would be confirmed before enough replicas hold it. Fix: {alter} "
               f"min.insync.replicas={settings.min_insync_replicas}")
    policy = found.configs.get("cleanup.policy", "delete")
    if spec.compacted and policy != "compact":
        unsafe(f"cleanup.policy={policy}, but it holds keyed state (the latest record per key is the truth): "
               f"old keys would expire, and the state with them. Fix: {alter} cleanup.policy=compact")
    if not spec.compacted and "compact" in policy:
        unsafe(f"cleanup.policy={policy}: compaction keeps one record per key (per model) and drops the rest of its "
               f"history. Fix: {alter} cleanup.policy=delete")
    wanted_bytes = spec.configs.get("max.message.bytes")
    if wanted_bytes is not None and int(found.configs.get("max.message.bytes", "0")) < int(wanted_bytes):
        unsafe(f"max.message.bytes={found.configs.get('max.message.bytes')} is below a snapshot's largest "
               f"({wanted_bytes}): checkpoints would be refused. Fix: {alter} max.message.bytes={wanted_bytes}")
    wanted_retention = spec.configs.get("retention.ms")
    if wanted_retention is not None and found.configs.get("retention.ms") != wanted_retention:
        differs(f"retention.ms={found.configs.get('retention.ms')}, modelmedic would create it with {wanted_retention} "
                "(kafka.retention_ms / kafka.audit_retention_ms): used as it is")
    if found.partitions != spec.partitions and spec.name != settings.topics.silences:
        differs(f"{found.partitions} partitions, kafka.partitions says {spec.partitions}: the existing count is used")
    return out


def check_topics(specs: list[TopicSpec], found: dict[str, ExistingTopic], settings: KafkaSettings) -> list[Finding]:
    """:func:`check_topic` for every existing topic, and the co-partitioning of inference and labels."""
    findings = [f for spec in specs if spec.name in found for f in check_topic(spec, found[spec.name], settings)]
    t = settings.topics
    if t.inference in found and t.labels in found and found[t.inference].partitions != found[t.labels].partitions:
        findings.append(Finding(True, f"topics {t.inference} and {t.labels} have {found[t.inference].partitions} and "
                                      f"{found[t.labels].partitions} partitions: a model's labels must land on the "
                                      "partition of its predictions. Give both the same count "
                                      "(kafka-topics.sh --alter --partitions N)"))
    return findings


async def ensure_topics(settings: KafkaSettings, timeout_s: float = 30.0) -> None:
    """Create modelmedic's topics that do not exist (idempotent), and check those that do.

    Fails start with :class:`TopicMisconfigured` (every unsafe setting of every topic, each with
    its fix) rather than run on a state topic that is not compacted or an audit that one broker's
    loss would lose; logs a warning for each setting that merely differs (:func:`check_topic`).
    """
    specs = topic_specs(settings)
    admin = AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
    except (KafkaConnectionError, asyncio.TimeoutError, OSError) as exc:
        raise KafkaUnavailable(
            f"cannot reach Kafka at {settings.bootstrap_servers} ({exc!r}): check kafka.bootstrap_servers "
            "(MODELMEDIC_KAFKA__BOOTSTRAP_SERVERS) and that the brokers are up"
        ) from None
    try:
        names = set(await admin.list_topics())  # (a metadata request naming a missing topic may auto-create it)
        names |= await _create([s for s in specs if s.name not in names], admin, settings)
        found = await describe_topics([s.name for s in specs if s.name in names], admin)
    finally:
        await admin.close()
    findings = check_topics(specs, found, settings)
    for finding in findings:
        if not finding.fatal:
            log.warning("%s", finding.message)
    fatal = [f.message for f in findings if f.fatal]
    if fatal:
        raise TopicMisconfigured("; ".join(fatal))


async def _create(specs: list[TopicSpec], admin: AIOKafkaAdminClient, settings: KafkaSettings) -> set[str]:
    """Create the topics of ``specs``; returns those someone else created meanwhile (to be checked)."""
    if not specs:
        return set()
    new = [NewTopic(s.name, s.partitions, settings.replication_factor, topic_configs=s.configs) for s in specs]
    response = await admin.create_topics(new)
    existed = set()
    for topic, code, message in (e[:3] for e in response.topic_errors):
        if code == TopicAlreadyExistsError.errno:
            existed.add(topic)
        elif code:
            raise TopicMisconfigured(
                f"cannot create topic {topic}: {message} (Kafka error {code}). With kafka.replication_factor="
                f"{settings.replication_factor} and kafka.min_insync_replicas={settings.min_insync_replicas}: a cluster "
                "with fewer brokers needs lower values (1 and 1 on a single broker: MODELMEDIC_KAFKA__REPLICATION_FACTOR"
                "=1, MODELMEDIC_KAFKA__MIN_INSYNC_REPLICAS=1)")
    return existed


async def describe_topics(names: list[str], admin: AIOKafkaAdminClient, timeout_s: float = 10.0) -> dict[str, ExistingTopic]:
    """Partition count, replication factor and configuration of each existing topic in ``names``.

    A topic created a moment ago (by another replica, say) can be missing from the brokers' metadata
    for a few milliseconds: it is asked for again, every 100 ms for up to ``timeout_s``."""
    if not names:
        return {}
    partitions: dict[str, list] = {t["topic"]: t["partitions"] for t in await admin.describe_topics(names)}
    deadline = asyncio.get_running_loop().time() + timeout_s
    while missing := [n for n in names if not partitions.get(n)]:
        if asyncio.get_running_loop().time() > deadline:
            raise KafkaUnavailable(f"topics {missing} exist but the brokers did not describe them within {timeout_s:g} s: "
                                   "is the cluster healthy (kafka-topics.sh --describe)?")
        await asyncio.sleep(0.1)
        partitions.update({t["topic"]: t["partitions"] for t in await admin.describe_topics(missing)})
    configs: dict[str, dict[str, str]] = {}
    for response in await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names]):
        for resource in response.to_object()["resources"]:
            configs[resource["resource_name"]] = {e["config_names"]: e["config_value"]
                                                  for e in resource["config_entries"]}
    return {n: ExistingTopic(len(partitions[n]), min(len(p["replicas"]) for p in partitions[n]), configs[n])
            for n in names}


async def topic_partitions(c: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic``, asking the brokers when the client's metadata is not fresh yet."""
    partitions = c.partitions_for_topic(topic) or set()
    if not partitions:
        await c._client.force_metadata_update()  # noqa: SLF001 - aiokafka's public API lacks this
        partitions = c.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, p) for p in sorted(partitions)]


FOLLOWER_HOLD_MS = 5000
"""How long the broker may hold a follower's fetch when nothing is new. The hold ends as soon as a record
arrives, so it costs no latency; and a follower reads fixed partitions (no rebalance to wake it for),
so at this hold a followed topic that is quiet costs one fetch request per 5 s instead of per second."""


def follower(settings: KafkaSettings) -> AIOKafkaConsumer:
    """A consumer for :func:`follow_assigned`: no group (it assigns its partitions itself), fetches held
    :data:`FOLLOWER_HOLD_MS` by the broker while there is nothing to read (its loop still turns every
    :data:`IDLE_WAIT_MS`, to notice ``stop``)."""
    return consumer(settings, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=FOLLOWER_HOLD_MS)


LOADING_WAIT_MS = 200
"""A follower's fetch wait while it reads its topic back (short turns: ``loaded`` is set soon after the end)."""


async def follow_assigned(c: AIOKafkaConsumer, ends: dict[TopicPartition, int], loaded: asyncio.Event,
                          stop: asyncio.Event, apply: Callable[[TopicPartition, Any], None]) -> None:
    """Hand every record of ``c``'s assigned partitions to ``apply`` until ``stop``; set ``loaded`` once each
    partition is read to its offset in ``ends``. A follower (the audit tail, the silences) reads back
    in short turns, then waits :data:`IDLE_WAIT_MS` a turn like the other consumers."""
    while not stop.is_set():
        wait_ms = IDLE_WAIT_MS if loaded.is_set() else LOADING_WAIT_MS
        for tp, records in (await c.getmany(timeout_ms=wait_ms)).items():
            for record in records:
                apply(tp, record)
        if not loaded.is_set() and all([await c.position(tp) >= end for tp, end in ends.items()]):
            loaded.set()


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

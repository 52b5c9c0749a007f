"""Topic settings on the real broker: created as configured, checked at start, and a write the
broker refuses is an error where it is made (issue 18, part 4)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from modelmedic.alerting import Alerter
from modelmedic.app import Service
from modelmedic.config import Settings
from modelmedic.errors import TopicMisconfigured
from modelmedic.kafka import describe_topics, client_options, ensure_topics, producer
from modelmedic.response.incidents import Incident
from modelmedic.response.plane import ResponsePlane

pytestmark = pytest.mark.integration


async def _create(settings: Settings, name: str, configs: dict[str, str]) -> None:
    """Create ``name`` (one replica: the session broker) as someone else might have, before modelmedic starts."""
    admin = AIOKafkaAdminClient(**client_options(settings.kafka))
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(name, settings.kafka.partitions, 1, topic_configs=configs)])
        assert [e[1] for e in response.topic_errors] == [0]
    finally:
        await admin.close()


async def _existing(settings: Settings) -> dict:
    admin = AIOKafkaAdminClient(**client_options(settings.kafka))
    await admin.start()
    try:
        return await describe_topics(list(settings.kafka.topics.model_dump().values()), admin)
    finally:
        await admin.close()


async def test_topics_are_created_as_configured_and_pass_the_check_at_the_next_start(settings: Settings):
    await ensure_topics(settings.kafka)
    found, t, k = await _existing(settings), settings.kafka.topics, settings.kafka
    assert {found[name].configs["cleanup.policy"] for name in (t.state, t.incidents, t.silences)} == {"compact"}
    assert {found[name].configs["cleanup.policy"] for name in (t.inference, t.labels, t.anomalies, t.dlq, t.audit)} \
        == {"delete"}
    assert found[t.audit].configs["retention.ms"] == str(k.audit_retention_ms)
    assert found[t.anomalies].configs["retention.ms"] == str(k.retention_ms)
    assert {f.configs["min.insync.replicas"] for f in found.values()} == {str(k.min_insync_replicas)}
    assert {f.replication_factor for f in found.values()} == {k.replication_factor}
    await ensure_topics(settings.kafka)  # what it created, it accepts


async def test_a_state_topic_that_is_not_compacted_fails_start_naming_topic_setting_and_fix(settings: Settings):
    state = settings.kafka.topics.state
    await _create(settings, state, {"cleanup.policy": "delete", "max.message.bytes": str(16 * 1024 * 1024)})
    with pytest.raises(TopicMisconfigured, match=rf"topic {state}: cleanup.policy=delete.*--entity-name {state} "
                                                 r"--add-config cleanup.policy=compact"):
        await ensure_topics(settings.kafka)


async def test_more_replicas_than_the_cluster_has_fail_start_with_the_setting_to_change(settings: Settings):
    three = settings.model_copy(update={"kafka": settings.kafka.model_copy(
        update={"replication_factor": 3, "min_insync_replicas": 2})})
    with pytest.raises(TopicMisconfigured, match=r"cannot create topic .*only 1 broker.*kafka.replication_factor=3"
                                                 r".*MODELMEDIC_KAFKA__REPLICATION_FACTOR=1"):
        await ensure_topics(three.kafka)


async def test_an_existing_topic_with_fewer_replicas_than_asked_fails_start(settings: Settings):
    await ensure_topics(settings.kafka)  # one replica each, as the session broker holds
    asks_two = settings.kafka.model_copy(update={"replication_factor": 2})
    with pytest.raises(TopicMisconfigured, match=rf"topic {settings.kafka.topics.state}: replication factor 1, "
                                                 r"kafka.replication_factor asks for 2"):
        await ensure_topics(asks_two)


async def test_an_audit_record_the_broker_refuses_is_an_error_for_the_action_that_wrote_it(settings: Settings):
    """An audit topic whose records may be at most 64 bytes: the broker refuses the record. Written
    without awaiting its delivery, the audit record would be lost while the action went on as audited."""
    await _create(settings, settings.kafka.topics.audit, {"max.message.bytes": "64"})
    plane = ResponsePlane(settings, Alerter([]))
    plane._producer = producer(settings.kafka, request_timeout_ms=3000)
    await plane._producer.start()
    incident = Incident(id="i-1", series="m/v1/production", model="m", version="v1", role="production",
                        anomaly_class="latency", kinds=["latency_spike"], firing=["latency_spike"], anomaly_ids=["a-1"],
                        summary="latency up", evidence={}, opened_at_ms=0)
    try:
        with pytest.raises(KafkaError):
            await plane._audit(incident, "paged", {})
    finally:
        await plane._producer.stop()


async def test_a_running_service_checks_the_topics_once_for_all_its_consumers(settings: Settings, caplog):
    """The detection plane, the response plane and the audit tail each checked the topics at their start:
    every warning about a topic was logged three times. ``modelmedic run`` checks once; a new run again."""
    anomalies = settings.kafka.topics.anomalies
    await _create(settings, anomalies, {"retention.ms": "3600000"})  # differs from kafka.retention_ms: a warning
    caplog.set_level(logging.WARNING, logger="modelmedic.kafka")
    for run in (1, 2):
        service = Service(settings)
        task = asyncio.create_task(service.run())
        try:
            await asyncio.wait_for(asyncio.gather(service.detection.ready.wait(), service.response.ready.wait(),
                                                  service.audit_tail.loaded.wait()), 60)
        finally:
            service.stop.set()
            await asyncio.wait_for(task, 60)
        warned = [r for r in caplog.records if r.getMessage().startswith(f"topic {anomalies}: retention.ms=3600000")]
        assert len(warned) == run

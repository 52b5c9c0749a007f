"""Which differences between an existing topic and modelmedic's settings fail start, and which only
warn (modelmedic.kafka.check_topics; on the real broker: tests/integration/test_topics_real.py)."""

from __future__ import annotations

import pytest

from modelmedic.config import KafkaSettings, load_settings
from modelmedic.errors import ConfigError
from modelmedic.kafka import ExistingTopic, check_topics, topic_specs

SETTINGS = load_settings().kafka


def as_created(settings: KafkaSettings, **changes: dict[str, str] | int) -> dict[str, ExistingTopic]:
    """Every topic as modelmedic would create it, with ``changes`` by topic role (``state={...}``: configs
    over the created ones; ``state_replicas=1``: its replication factor)."""
    found = {}
    roles = {getattr(settings.topics, role): role for role in type(settings.topics).model_fields}
    for spec in topic_specs(settings):
        role = roles[spec.name]
        configs = {**spec.configs, **changes.get(role, {})}  # type: ignore[dict-item]
        rf = changes.get(f"{role}_replicas", settings.replication_factor)
        found[spec.name] = ExistingTopic(int(changes.get(f"{role}_partitions", spec.partitions)), int(rf), configs)  # type: ignore[arg-type]
    return found


def findings(**changes) -> list[tuple[bool, str]]:
    return [(f.fatal, f.message) for f in check_topics(topic_specs(SETTINGS), as_created(SETTINGS, **changes), SETTINGS)]


def test_topics_as_modelmedic_creates_them_pass():
    assert findings() == []


def test_defaults_are_safe_for_production():
    assert (SETTINGS.replication_factor, SETTINGS.min_insync_replicas) == (3, 2)
    by_name = {s.name: s for s in topic_specs(SETTINGS)}
    t = SETTINGS.topics
    assert {by_name[n].compacted for n in (t.state, t.incidents, t.silences)} == {True}
    assert {by_name[n].compacted for n in (t.inference, t.labels, t.anomalies, t.dlq, t.audit)} == {False}


@pytest.mark.parametrize(("changes", "says"), [
    ({"state": {"cleanup.policy": "delete"}}, "modelmedic.state: cleanup.policy=delete"),
    ({"incidents": {"cleanup.policy": "compact,delete"}}, "incidents: cleanup.policy=compact,delete"),
    ({"audit": {"cleanup.policy": "compact"}}, "modelmedic.audit: cleanup.policy=compact: compaction keeps one record"),
    ({"audit_replicas": 1}, "modelmedic.audit: replication factor 1, kafka.replication_factor asks for 3"),
    ({"state": {"min.insync.replicas": "1"}}, "modelmedic.state: min.insync.replicas=1, kafka.min_insync_replicas"),
    ({"state": {"max.message.bytes": "1048588"}}, "modelmedic.state: max.message.bytes=1048588 is below"),
    ({"labels_partitions": 12}, "modelmedic.inference and modelmedic.labels have 6 and 12 partitions"),
])
def test_what_loses_or_refuses_a_record_fails_start(changes, says):
    fatal = [message for is_fatal, message in findings(**changes) if is_fatal]
    assert len(fatal) == 1 and says in fatal[0]


@pytest.mark.parametrize(("changes", "says"), [
    ({"inference_replicas": 1}, "modelmedic.inference: replication factor 1"),  # an input: not ours to write
    ({"audit": {"retention.ms": "86400000"}}, "modelmedic.audit: retention.ms=86400000, modelmedic would create it"),
    ({"anomalies_partitions": 12}, "modelmedic.anomalies: 12 partitions, kafka.partitions says 6"),
])
def test_what_is_safe_to_differ_is_warned_about(changes, says):
    found = findings(**changes)
    assert len(found) == 1 and not found[0][0] and says in found[0][1]


def test_more_in_sync_replicas_than_replicas_is_a_config_error():
    with pytest.raises(ConfigError, match="min_insync_replicas=2 exceeds replication_factor=1"):
        load_settings(kafka={"replication_factor": 1})

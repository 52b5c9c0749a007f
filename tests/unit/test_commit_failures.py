"""A refused commit is a rejoin, never an exit; a record keyed other than by its model is counted.

Measured (issue 13 item 5, issue 17 item 5): draining a backlog, the checkpoint's commit
raised ``CommitFailedError`` (the group had rebalanced while the loop was blocked) and the
detection plane stopped the service. The consumer rejoins on its next fetch by itself;
whoever owns each partition then restores the snapshot the checkpoint wrote just before.
"""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from modelmedic import metrics
from modelmedic.config import load_settings
from modelmedic.events import InferenceEvent, encode
from modelmedic.testing import FakeConsumer, FakeProducer, Record, offline_plane

T0 = 1_767_225_600_000


class _RefusingConsumer(FakeConsumer):
    """Owns partition 0 of both topics; every commit is refused the way aiokafka refuses it."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error
        self.topics = ("modelmedic.inference", "modelmedic.labels")

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(topic, 0) for topic in self.topics}

    async def commit(self, offsets: dict) -> None:
        raise self.error


@pytest.mark.parametrize("error", [CommitFailedError("Commit cannot be completed since the group has already rebalanced"),
                                   IllegalStateError("partition not assigned")])
async def test_a_refused_commit_is_counted_and_the_snapshot_still_written(error: Exception) -> None:
    producer = FakeProducer()
    plane = offline_plane(load_settings(), consumer=_RefusingConsumer(error), producer=producer)
    failures = metrics.COMMIT_FAILURES.labels(plane="detection")._value.get()
    await plane._checkpoint([0])  # raised before: the plane, and the service, stopped
    assert metrics.COMMIT_FAILURES.labels(plane="detection")._value.get() == failures + 1
    assert [topic for topic, _ in producer.sent] == [plane.settings.kafka.topics.state]


async def test_a_record_keyed_other_than_by_its_model_is_counted_and_kept() -> None:
    plane = offline_plane(load_settings(detection={"quality": False}))
    tp = TopicPartition(plane.settings.kafka.topics.inference, 0)
    records = [Record(tp.topic, 0, i, encode(InferenceEvent("fraud", "1", "production", f"r{i}", T0 + i, 5.0, True, 0.5)),
                      key) for i, key in enumerate([b"fraud", b"churn", None, b"fraud"])]
    records.append(Record(tp.topic, 0, 4, b'{"model":"fraud","model":"fraud","version":"1","role":"production",'
                                          b'"request_id":"r4","ts":1767225600004,"latency_ms":5,"ok":true}', b"other"))
    misrouted, ok = metrics.MISROUTED._value.get(), metrics.EVENTS.labels("ok")._value.get()
    await plane._process({tp: records})
    assert metrics.MISROUTED._value.get() - misrouted == 3  # "churn", no key, and one msgspec decoded
    assert metrics.EVENTS.labels("ok")._value.get() - ok == 5

"""``modelmedic_consumer_lag_records``: how far behind the detection plane is now, over every partition it owns.

It feeds ModelmedicIngestionStopped (nothing consumed while the lag is above 0) and the lag alert.
Before, it was the lag of the last batch's partitions only: a partition missing from a batch
counted 0, and a replica whose backlogged partitions went to another replica kept showing
their lag until its next batch, which on an idle replica never came.
"""

from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from modelmedic import metrics
from modelmedic.config import load_settings
from modelmedic.events import InferenceEvent, encode
from modelmedic.testing import Record, offline_plane
from modelmedic.testing.plane import FakeConsumer

T0 = 1_767_225_600_000
END = 25  # every partition holds 25 records


class AssignedConsumer(FakeConsumer):
    """The inference topic's ``partitions`` assigned, each ending at offset END."""

    def __init__(self, topic: str, partitions: list[int]) -> None:
        super().__init__(lambda _: END)
        self.tps = {TopicPartition(topic, p) for p in partitions}

    def assignment(self) -> set[TopicPartition]:
        return self.tps


def _records(tp: TopicPartition, first: int, n: int) -> list[Record]:
    return [Record(tp.topic, tp.partition, i, encode(InferenceEvent(f"m{tp.partition}", "1", "production", f"r{i}",
                                                                    T0 + i, 20.0, True, 0.5)), b"m")
            for i in range(first, first + n)]


async def test_the_gauge_sums_every_owned_partition_and_follows_a_rebalance_without_a_batch() -> None:
    settings = load_settings(detection={"quality": False})
    topic = settings.kafka.topics.inference
    consumer = AssignedConsumer(topic, [0, 1])
    plane = offline_plane(settings, partitions=2, consumer=consumer)
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    await plane._process({p0: _records(p0, 0, 10), p1: _records(p1, 0, 5)})
    assert metrics.CONSUMER_LAG._value.get() == 15 + 20
    await plane._process({p0: _records(p0, 10, 15)})  # p0 caught up; p1 still 20 behind (before: 0)
    assert metrics.CONSUMER_LAG._value.get() == 20
    # p1 goes to another replica; this one has nothing more to fetch (before: 20 until its next batch)
    consumer.tps = {p0}
    plane.assignor.on_assignment(ConsumerProtocolMemberAssignment(0, [(topic, [0])], b""))
    await plane._process({})
    assert metrics.CONSUMER_LAG._value.get() == 0

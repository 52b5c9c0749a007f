"""An offline detection plane: the real hot path fed by hand, with a fake consumer and producer.

``offline_plane(settings)`` owns partitions afresh (as after an assignment with no snapshot);
a test or benchmark hands batches of :class:`Record` to ``plane._process`` (what ``run`` does
with each ``getmany`` batch) and reads what was published from the :class:`FakeProducer`.
Decode, windows, the quality monitor, closing and judging all run; only the fetch is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition

from modelmedic.config import KafkaSettings, Settings
from modelmedic.detection.plane import DetectionPlane, PartitionState
from modelmedic.detection.quality import QualityMonitor
from modelmedic.detection.replay import MemoryProducer
from modelmedic.detection.windows import PartitionWindows


@dataclass
class Record:
    """What the plane reads of aiokafka's ConsumerRecord."""

    topic: str
    partition: int
    offset: int
    value: bytes
    key: bytes = b"fraud"


class FakeProducer(MemoryProducer):
    """Takes every record at once and remembers (topic, value): ``modelmedic replay``'s producer."""


class FakeConsumer:
    """Nothing assigned; each partition's high watermark is what ``highwater`` says (default: unknown, no lag)."""

    def __init__(self, highwater: Callable[[TopicPartition], int | None] = lambda tp: None) -> None:
        self.highwater = highwater
        """Set it to make the plane see a lag (catching up) or none."""

    def assignment(self) -> set[TopicPartition]:
        return set()


def offline_plane(settings: Settings, partitions: int = 1, quality: Callable[[], QualityMonitor] | None = None, *,
                  consumer: FakeConsumer | None = None, producer: FakeProducer | None = None) -> DetectionPlane:
    """A plane owning partitions 0..n-1 afresh, its Kafka clients ``consumer`` and ``producer`` (fresh fakes
    when not given); ``quality`` builds each partition's quality monitor (None: no monitor), and with it
    comes the input monitor when ``quality.features`` is on."""

    def consumer_factory(kafka: KafkaSettings, **options: Any) -> Any:
        return consumer or FakeConsumer()

    def producer_factory(kafka: KafkaSettings, **options: Any) -> Any:
        return producer or FakeProducer()

    plane = DetectionPlane(settings, consumer_factory=consumer_factory, producer_factory=producer_factory)
    plane.open_clients()
    w = settings.windows
    for p in range(partitions):
        windows = PartitionWindows(w.size_ms, w.allowed_lateness_ms, w.series_ttl_windows, plane.pool)
        plane.parts[p] = PartitionState(windows, quality=quality() if quality else None,
                                        features=plane._feature_monitor() if quality else None)
    return plane

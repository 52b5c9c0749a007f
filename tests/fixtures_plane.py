"""A detection plane without Kafka, for unit tests that drive ``DetectionPlane._process``.

The plane's consumer and producer are replaced by fakes that answer what it asks between
polls; records are plain objects with what aiokafka's ConsumerRecord has and the plane reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from modelmedic.config import Settings
from modelmedic.detection import DetectionPlane, PartitionState
from modelmedic.quality import QualityMonitor
from modelmedic.windows import PartitionWindows


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    value: bytes
    key: bytes = b"fraud"


class FakeProducer:
    """Takes every record at once and remembers (topic, value)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def send(self, topic: str, value: bytes, **kwargs):
        self.sent.append((topic, value))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


class FakeConsumer:
    """No lag known (tests set ``highwater`` to make one), nothing assigned."""

    def highwater(self, tp):
        return None

    def assignment(self):
        return set()


def offline_plane(settings: Settings, partitions: int = 1,
                  quality: Callable[[], QualityMonitor] | None = None) -> DetectionPlane:
    """A plane owning partitions 0..n-1 afresh, as after an assignment with no snapshot."""
    plane = DetectionPlane(settings)
    plane._producer, plane._consumer = FakeProducer(), FakeConsumer()
    w = settings.windows
    for p in range(partitions):
        windows = PartitionWindows(w.size_ms, w.allowed_lateness_ms, w.series_ttl_windows, plane.pool)
        plane.parts[p] = PartitionState(windows, quality=quality() if quality else None)
    return plane

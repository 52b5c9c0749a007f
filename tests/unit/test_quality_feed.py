"""What the detection plane hands the quality monitor: the sampled requests, once each.

Not the records past the event-time horizon (they go to the dead-letter topic), and not
the records replayed after a restart (the monitor's restored state counted them).
"""

from __future__ import annotations

import asyncio
import time
import zlib

from aiokafka import TopicPartition

from modelmedic.config import load_settings
from modelmedic.detection.plane import DetectionPlane
from modelmedic.events import InferenceEvent, encode
from modelmedic.detection.quality import QualityMonitor
from modelmedic.testing import FakeProducer, Record, offline_plane


def _plane(sample_every: int, producer: FakeProducer | None = None) -> DetectionPlane:
    settings = load_settings()
    settings = settings.model_copy(update={"detection": settings.detection.model_copy(
        update={"quality_sample_every": sample_every})})
    return offline_plane(settings, quality=lambda: QualityMonitor(settings.windows.size_ms, settings.quality,
                                                                  label_sample_every=sample_every), producer=producer)


def _records(plane: DetectionPlane, ts: list[int]) -> dict:
    tp = TopicPartition(plane.settings.kafka.topics.inference, 0)
    return {tp: [Record(tp.topic, 0, i, encode(InferenceEvent("fraud", "1", "production", f"r{i}", t, 5.0, True, 0.5)))
                 for i, t in enumerate(ts)]}


def _pending(plane: DetectionPlane) -> list[str]:
    """Request ids of the production predictions waiting for their labels."""
    return [rid for _, rid in plane.parts[0].quality._label_join.items]


async def test_records_past_the_horizon_are_not_fed_to_the_monitor() -> None:
    producer = FakeProducer()
    plane = _plane(sample_every=1, producer=producer)
    now = int(time.time() * 1000)
    await plane._process(_records(plane, [now, now + 10, now + 3_600_000, now + 20]))
    assert _pending(plane) == ["r0", "r1", "r3"]
    await asyncio.gather(*plane._pending)
    assert [topic for topic, _ in producer.sent] == [plane.settings.kafka.topics.dlq]


async def test_records_replayed_after_a_restart_are_not_fed_twice() -> None:
    plane = _plane(sample_every=1)
    plane.parts[0].replay_until = 3
    now = int(time.time() * 1000)
    await plane._process(_records(plane, [now + i for i in range(5)]))
    assert _pending(plane) == ["r3", "r4"]


async def test_only_the_sample_reaches_the_monitor() -> None:
    plane = _plane(sample_every=4)
    now = int(time.time() * 1000)
    await plane._process(_records(plane, [now + i for i in range(400)]))
    pending = _pending(plane)
    assert pending == [f"r{i}" for i in range(400) if zlib.crc32(f"r{i}".encode()) % 4 == 0]
    assert 50 < len(pending) < 150  # about one in four, by request id

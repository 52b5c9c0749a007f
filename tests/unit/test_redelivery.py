"""Records a consumer hands over twice are processed once.

Measured with aiokafka: after a restore, a fetch that raced the seek to the resume offset
delivered the same 6,000 records twice, and every window in them was counted double (a
throughput surge out of nothing). The plane drops what is below the offset it expects next.
"""

from __future__ import annotations

from aiokafka import TopicPartition

from modelmedic.config import load_settings
from modelmedic.detection.plane import DetectionPlane
from modelmedic.events import InferenceEvent, encode
from modelmedic.testing import Record, offline_plane

T0 = 1_767_225_600_000


def _plane() -> DetectionPlane:
    return offline_plane(load_settings())


def _records(topic: str, first: int, n: int) -> list[Record]:
    return [Record(topic, 0, first + i, encode(InferenceEvent("fraud", "1", "production", f"r{first + i}", T0 + 10 * (first + i),
                                                             5.0, True, 0.5)))
            for i in range(n)]


def _counts(plane: DetectionPlane) -> dict[int, int]:
    return {w: sum(chunk[0].size for chunk in chunks) for w, chunks in plane.parts[0].windows.open.items()}


async def test_a_batch_delivered_twice_is_counted_once() -> None:
    plane, reference = _plane(), _plane()
    tp = TopicPartition(plane.settings.kafka.topics.inference, 0)
    await plane._process({tp: _records(tp.topic, 0, 150)})
    await plane._process({tp: _records(tp.topic, 0, 150)})  # the same records again
    await plane._process({tp: _records(tp.topic, 100, 100)})  # again, overlapping the next ones
    await reference._process({tp: _records(tp.topic, 0, 200)})
    assert _counts(plane) == _counts(reference) and sum(_counts(plane).values()) == 200
    assert plane.processed == 200 and plane.parts[0].next_offset == 200

"""A stream that simply ends is no evidence about any model (issue 13).

Every drained backlog ended in a storm incident: when the partition went quiet, the idle
close advanced its event time by the wall clock, and the empty windows it closed read as
every model's traffic dropping. Now a partition replaying history (its records stamped far
behind our clock) closes only the windows its records reached; a live one still advances,
so a fleet-wide outage is still seen.
"""

from __future__ import annotations

import time

from aiokafka import TopicPartition

from modelmedic.config import load_settings
from modelmedic.detection.plane import DetectionPlane
from modelmedic.events import InferenceEvent, encode
from modelmedic.testing import Record, offline_plane

MODELS, RATE, MINUTES = 8, 4, 15
QUIET_S = 180
"""Longer than a throughput drop's minimum duration (``throughput_sustain_s``, 120 s)."""


def _records(topic: str, start_ms: int) -> list[Record]:
    """MODELS models at RATE requests a second for MINUTES minutes, in time order."""
    out = []
    for i in range(MINUTES * 60 * RATE):
        ts = start_ms + i * 1000 // RATE
        for m in range(MODELS):
            event = InferenceEvent(f"model-{m}", "1", "production", f"r{i}-{m}", ts, 20.0 + (i * 7 + m) % 5, True, 0.5)
            out.append(Record(topic, 0, len(out), encode(event), f"model-{m}".encode()))
    return out


async def _drain_then_go_quiet(start_ms: int) -> DetectionPlane:
    plane = offline_plane(load_settings())
    tp = TopicPartition(plane.settings.kafka.topics.inference, 0)
    records = _records(tp.topic, start_ms)
    for at in range(0, len(records), 5000):
        await plane._process({tp: records[at:at + 5000]})
    plane.parts[0].last_record_wall = time.monotonic() - QUIET_S  # the stream ended QUIET_S seconds ago
    await plane._close_idle()
    return plane


async def test_a_drained_backlog_that_stops_raises_no_throughput_drop() -> None:
    plane = await _drain_then_go_quiet(start_ms=1_767_225_600_000)  # a day of history, long before now
    state = plane.parts[0]
    assert state.windows.closed_through == state.windows.max_ts // 1000, "closed through its last record's window, no further"
    assert [a.summary for a in plane.published if a.kind == "throughput_drop"] == []


async def test_a_live_stream_that_stops_still_advances_event_time() -> None:
    now_ms = int(time.time() * 1000) - QUIET_S * 1000
    plane = await _drain_then_go_quiet(start_ms=now_ms - MINUTES * 60_000)  # stamped as it happened
    state = plane.parts[0]
    assert state.windows.closed_through >= state.windows.max_ts // 1000 + QUIET_S - 5, "the silence was judged"
    drops = {a.model for a in plane.published if a.kind == "throughput_drop" and a.state == "firing"}
    assert drops == {f"model-{m}" for m in range(MODELS)}, "an outage of a live stream is still seen"

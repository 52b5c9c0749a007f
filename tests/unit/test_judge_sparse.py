"""Sparse series are not forgotten between their requests (issue 13 items 1-2): series expire after
``windows.series_ttl_s`` of event time (hours), not after 300 one-second windows.

Through the offline plane at default settings (windows, expiry and judge as in the service),
with a busy model on the same partition moving its event time on, as in a real fleet."""

from __future__ import annotations

import numpy as np
from aiokafka import TopicPartition

from modelmedic.config import load_settings
from modelmedic.detection.plane import DetectionPlane
from modelmedic.detection.windows import MAX_GAP_MS, PartitionWindows
from modelmedic.events import Anomaly, InferenceEvent, decode_anomaly, encode
from modelmedic.testing import FakeProducer, Record, offline_plane

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC


async def _run(events: list[tuple[str, int]]) -> tuple[DetectionPlane, list[Anomaly]]:
    """(model, ts) events in time order through one partition, as polls of a minute of event time."""
    producer = FakeProducer()
    plane = offline_plane(load_settings(detection={"quality": False}), 1, producer=producer)
    topic = plane.settings.kafka.topics.inference
    tp = TopicPartition(topic, 0)
    records = [Record(topic, 0, i, encode(InferenceEvent(model, "1", "production", f"r{i}", ts, 40.0, True, 0.5)),
                      model.encode()) for i, (model, ts) in enumerate(sorted(events, key=lambda e: e[1]))]
    minute = [(ts - T0) // 60_000 for _, ts in sorted(events, key=lambda e: e[1])]
    start = 0
    for i in range(1, len(records) + 1):
        if i == len(records) or minute[i] != minute[start]:
            await plane._process({tp: records[start:i]})
            start = i
    await plane._checkpoint([0])
    return plane, [decode_anomaly(v) for t, v in producer.sent if t == plane.settings.kafka.topics.anomalies]


def _keeper(hours: float) -> list[tuple[str, int]]:
    return [("busy", T0 + s * 1000 + 500) for s in range(int(hours * 3600))]


async def test_a_series_at_0_01_req_s_keeps_its_state_across_10_minute_gaps() -> None:
    sparse = [("sparse", T0 + k * 600_000 + 250) for k in range(18)]  # one request every 10 minutes, 3 hours
    plane, anomalies = await _run(_keeper(3) + sparse)
    windows = plane.parts[0].windows
    slot = windows.slot_of[("sparse", "1", "production")]
    # Every one of its 18 windows with a request went into the same state (300-window TTL: reset after each gap).
    assert plane.judge.latency.bank.state("n", np.array([slot]))[0] == 18
    assert plane.judge.errors.bank.state("seen", np.array([slot]))[0] == 18
    assert not [a for a in anomalies if a.model == "sparse"]


async def test_a_0_05_req_s_model_that_goes_silent_is_declared_a_drop() -> None:
    rng = np.random.default_rng(5)
    arrivals = np.cumsum(rng.exponential(20.0, 600))  # 0.05 req/s
    sparse = [("sparse", T0 + int(s * 1000)) for s in arrivals if s < 3 * 3600]
    plane, anomalies = await _run(_keeper(4) + sparse)
    silent_ms = sparse[-1][1]
    drops = [a for a in anomalies if a.model == "sparse" and a.kind == "throughput_drop" and a.state == "firing"]
    assert drops, "the model went silent an hour before the end: a drop (a 300-window TTL forgot it after 5 minutes)"
    assert drops[0].window_end - silent_ms <= 30 * 60_000
    assert not [a for a in anomalies if a.model == "busy"]


def test_a_long_silence_of_a_partition_closes_two_hours_of_windows_in_one_window_s_memory() -> None:
    """With series kept for hours, a partition silent for 5 hours closes the last 2 hours of empty
    windows (MAX_GAP_MS: enough for a 0.01 req/s drop), all sharing one set of read-only arrays."""
    pw = PartitionWindows(1000, 0, load_settings().windows.series_ttl_windows)
    for i in range(1000):
        pw.add(InferenceEvent(f"m{i}", "1", "production", "r", T0, 40.0, True, 0.5), i)
    pw.add(InferenceEvent("m0", "1", "production", "r", T0 + 5 * 3_600_000, 40.0, True, 0.5), 1000)
    closed = pw.close_through(pw.ready_through())
    assert len(closed) == 1 + MAX_GAP_MS // 1000 and closed[0].count.sum() == 1000
    gap = closed[1:]
    assert [c.window for c in gap] == list(range(closed[-1].window - len(gap) + 1, closed[-1].window + 1))
    assert all(c.count is gap[0].count and c.group_count is gap[0].group_count for c in gap)
    assert gap[0].count.sum() == 0 and not gap[0].count.flags.writeable and gap[-1].end_ms == T0 + 5 * 3_600_000

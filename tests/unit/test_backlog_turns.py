"""Draining a backlog never blocks the event loop (issue 13 item 5).

Measured before: one batch of a two-day backlog closed about a million series-windows at
once (70 windows of 100,000 series: 3.4 s in one loop turn, RSS 363 MB); the consumer's
heartbeats stopped, the group rebalanced and the checkpoint's commit was refused. The
detection plane now closes, judges and expires a bounded number of series-windows per
loop turn (``DetectionPlane.turn_series_windows``), yielding to the loop in between,
and publishes exactly what it published unchunked.
"""

from __future__ import annotations

import time

import msgspec
import numpy as np
from aiokafka import TopicPartition

from modelmedic.config import load_settings
from modelmedic.detection.plane import DetectionPlane
from modelmedic.detection.windows import PartitionWindows
from modelmedic.events import InferenceEvent, decode_anomaly, encode
from modelmedic.testing import FakeProducer, Record, offline_plane
from modelmedic.testing.looplag import LoopLag

T0 = 1_767_225_600_000


def _batch(plane: DetectionPlane, partition: int, events: list[InferenceEvent]) -> dict:
    tp = TopicPartition(plane.settings.kafka.topics.inference, partition)
    first = plane.parts[partition].next_offset
    return {tp: [Record(tp.topic, partition, first + i, encode(e), e.model.encode()) for i, e in enumerate(events)]}


def _event(model: str, i: int, ts: int) -> InferenceEvent:
    return InferenceEvent(model, "1", "production", f"{model}-{i}", ts, 20.0, True, 0.5)


async def test_a_batch_closing_a_million_series_windows_yields_to_the_loop() -> None:
    """10,000 series, then a record 110 windows later: a million series-windows to close and judge in
    one batch, then every series but one expires. Before: one loop turn of 0.84-1.17 s (0.7 s of
    CPU); now ~100 turns, the longest 26-39 ms, on a loaded 2-core machine."""
    plane = offline_plane(load_settings(windows={"series_ttl_s": 100}, detection={"quality": False}))
    n, size = 10_000, plane.settings.windows.size_ms
    await plane._process(_batch(plane, 0, [_event(f"m{i}", 0, T0 + i % 1000) for i in range(n)]))
    started = time.perf_counter()
    async with LoopLag() as lag:
        await plane._process(_batch(plane, 0, [_event("m0", 1, T0 + 110 * size + 5_000)]))
    took = time.perf_counter() - started
    assert plane.parts[0].windows.closed_through >= (T0 + 110 * size) // size
    assert len(plane.parts[0].windows.keys) == 1  # the expiry ran: only m0 is left
    # A million series-windows, 10,000 a turn: the loop turned about 100 times (before: not once).
    assert lag.turns >= 90, lag.turns
    # (CPU time: a busy machine's other processes stretch the wall-clock gaps, not the work per turn)
    assert lag.longest_cpu < 0.5, f"the loop was blocked for {lag.longest_cpu:.2f} CPU s ({lag.longest:.2f} s) of {took:.2f} s"


def _traffic(seed: int, models: int, seconds: int) -> list[InferenceEvent]:
    """A few req/s per model; model 3's latency x4 from second 300, model 5 stops at 250 (a
    drop, then it expires), model 7 fails 30% from 350, model 9 gets a new version at 200."""
    rng = np.random.default_rng(seed)
    events = []
    for m in range(models):
        rate = 2 + m % 5
        n = rng.poisson(rate * seconds)
        ts = np.sort(rng.uniform(0, seconds * 1000, n)).astype(np.int64)
        latency = rng.lognormal(np.log(20 + m), 0.25, n)
        ok = rng.random(n) > 0.005
        for i, (t, lat, good) in enumerate(zip(ts.tolist(), latency.tolist(), ok.tolist())):
            if m == 5 and t > 250_000:
                break
            if m == 3 and t > 300_000:
                lat *= 4
            if m == 7 and t > 350_000:
                good = good and rng.random() > 0.3
            version = "2" if m == 9 and t > 200_000 else "1"
            events.append(InferenceEvent(f"model-{m:03d}", version, "production", f"{m}-{i}", T0 + t, lat, good, 0.5))
    events.sort(key=lambda e: e.ts)
    return events


async def _published(turn_series_windows: int, events: list[InferenceEvent], batch: int) -> tuple[list, dict]:
    """What an offline plane with this budget publishes for ``events`` (2 partitions, ``batch`` records a poll)."""
    # (model 5's drop must fire before its series expires: a minimum duration under the ttl)
    settings = load_settings(windows={"series_ttl_s": 60},
                             detection={"quality": False, "grace_windows": 20, "throughput_sustain_s": 30})
    producer = FakeProducer()
    plane = offline_plane(settings, 2, producer=producer)
    plane.turn_series_windows = turn_series_windows
    for lo in range(0, len(events), batch):
        polled: dict = {}
        for e in events[lo:lo + batch]:
            p = int(e.model[-3:]) % 2
            tp = TopicPartition(settings.kafka.topics.inference, p)
            records = polled.setdefault(tp, [])
            records.append(Record(tp.topic, p, plane.parts[p].next_offset + len(records), encode(e), e.model.encode()))
        await plane._process(polled)
    await plane._checkpoint([0, 1])
    rows = {p: repr(plane.judge.rows(sorted(plane.parts[p].windows.keys), sorted(plane.parts[p].windows.group_keys)))
            for p in plane.parts}
    # closed_at_ms is the wall clock of the close: the rest is the record
    return [msgspec.structs.replace(decode_anomaly(v), closed_at_ms=0) for t, v in producer.sent
            if t == settings.kafka.topics.anomalies], rows


async def test_chunked_closing_and_judging_publish_what_one_pass_publishes() -> None:
    """The same anomaly records (ids, states, evidence), in the same order, and the same detector
    state, whether a batch's windows are closed and judged at once or a few series at a time."""
    events = _traffic(seed=7, models=12, seconds=600)
    whole, whole_rows = await _published(10 ** 9, events, batch=2_000)
    kinds = {(a.model, a.kind, a.state) for a in whole}
    assert {("model-003", "latency", "firing"), ("model-007", "errors", "firing"),
            ("model-005", "throughput_drop", "firing")} <= kinds, kinds
    for budget in (4, 40):  # below one window's series: rows are split within a window too
        chunked, chunked_rows = await _published(budget, events, batch=2_000)
        assert [(a.id, a.state, a.window_end, a.summary) for a in chunked] == \
               [(a.id, a.state, a.window_end, a.summary) for a in whole]
        assert chunked == whole and chunked_rows == whole_rows


def test_expiry_in_bounded_chunks_forgets_what_one_pass_forgets() -> None:
    """``expire(window, most)`` lets go of at most ``most`` series a call, oldest-inserted first, and
    the calls together forget exactly the series (and groups) one call forgets."""
    def tracked() -> PartitionWindows:
        pw = PartitionWindows(1000, 0, series_ttl_windows=10)
        for i in range(5):
            pw.add(_event(f"m{i}", 0, T0 + i), offset=i)
        pw.add(_event("m0", 1, T0 + 20_000), offset=5)  # m0 stays live
        pw.close_through(T0 // 1000 + 19)
        return pw

    whole, chunked = tracked(), tracked()
    at = T0 // 1000 + 19
    one_pass = whole.expire(at)
    steps = [chunked.expire(at, 2) for _ in range(3)]
    assert [len(step.slots) for step in steps] == [2, 2, 0]
    assert sum((step.slots for step in steps), []) == one_pass.slots
    assert sorted(sum((step.groups for step in steps), [])) == sorted(one_pass.groups)
    assert chunked.keys == whole.keys and len(whole.keys) == 1

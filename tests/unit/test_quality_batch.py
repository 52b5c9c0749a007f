"""QualityMonitor's batch entry point, activity from closed windows, and the canary join. Seeded."""

from __future__ import annotations

import pickle
import zlib

import numpy as np
import pytest

from modelmedic.config import QualitySettings
from modelmedic.detection.columns import RecordDecoder
from modelmedic.detection.quality import QualityMonitor
from modelmedic.events import InferenceEvent, LabelEvent

W = 60_000  # window size, ms
T0 = 1_700_000_040_000  # a window boundary (multiple of W)


def fixed_clock() -> float:
    return 1_700_000_000.0


def in_sample(request_id: str, k: int) -> bool:
    return k == 1 or zlib.crc32(request_id.encode()) % k == 0


def mixed_stream(rng: np.random.Generator) -> list:
    """Inference events (some None: rejected records) and labels, in arrival order.

    Model "a": class predictions, a canary on 60% of requests that starts disagreeing on 15%
    (its twin sometimes first, sometimes repeated), labels whose accuracy drops. Model "b":
    numbers that drift, with shadow copies, failed requests and missing predictions.
    """
    items: list[tuple[int, int, object]] = []  # (ts, tie-break, item)
    n = 24_000
    for i in range(n):
        ts = T0 + i * 25
        rid = f"a{i}"
        pred = ["cat", "dog", "bird"][int(rng.integers(3))]
        items.append((ts, 0, InferenceEvent("a", "2.0", "production", rid, ts, 5.0, True, pred)))
        if rng.random() < 0.6:
            canary = pred if i < n // 3 or rng.random() >= 0.15 else "fish"
            lag = int(rng.integers(-5, 40))  # the canary sometimes first
            items.append((ts + lag, 1, InferenceEvent("a", "1.0", "canary", rid, ts + lag, 5.0, True, canary)))
            if rng.random() < 0.03:  # a repeated canary event
                again = InferenceEvent("a", "1.0", "canary", rid, ts + lag + 7, 5.0, True, canary)
                items.append((ts + lag + 7, 1, again))
        if rng.random() < 0.8:
            correct = rng.random() < (0.9 if i < n // 2 else 0.7)
            label = pred if correct else "other"
            delay = int(rng.integers(30_000, 300_000))
            for _ in range(1 + (rng.random() < 0.05)):  # some labels twice
                items.append((ts + delay, 2, LabelEvent("a", rid, ts + delay, label)))
        ts_b = ts + 11
        value = float(rng.normal(0.0 if i < n // 2 else 1.0, 1.0))
        ok = rng.random() >= 0.02
        prediction = None if rng.random() < 0.01 else value
        items.append((ts_b, 0, InferenceEvent("b", "7", "production", f"b{i}", ts_b, 5.0, ok, prediction)))
        if rng.random() < 0.2:
            items.append((ts_b, 1, InferenceEvent("b", "6", "shadow", f"b{i}", ts_b + 2, 5.0, True, value)))
        if rng.random() < 0.01:
            items.append((ts_b, 3, None))
    items.sort(key=lambda t: (t[0], t[1]))
    return [item for _, _, item in items]


def observe_batch(mon: QualityMonitor, events: list) -> None:
    """What the plane does with a batch: its decoder picks the sample, the monitor takes those rows."""
    cols = RecordDecoder(sample_every=mon.label_sample_every).columns([e for e in events if e is not None])
    mon.observe_sampled(cols.sample, cols.names)


def replay(mon: QualityMonitor, stream: list, batched: bool, rng: np.random.Generator | None = None) -> list:
    """Feed ``stream`` as the plane does: inference events in batches (or one by one), labels
    as they come, a poll with the window's active series once event time passes a window's end."""
    out: list = []
    batch: list = []
    active: set[tuple[str, str, str]] = set()
    next_end = (T0 // W + 1) * W
    last_ts = T0

    def flush() -> None:
        if batched:
            observe_batch(mon, batch)
        else:
            for event in batch:
                if event is not None:
                    mon.observe_inference(event)
        batch.clear()

    for item in stream:
        ts = last_ts if item is None else item.ts
        if ts >= next_end:
            flush()
            while ts >= next_end:
                out.append((next_end, mon.poll(next_end, sorted(active))))
                active.clear()
                next_end += W
        last_ts = ts
        if isinstance(item, LabelEvent):
            flush()
            mon.observe_label(item)
            continue
        batch.append(item)
        if item is not None:
            active.add((item.model, item.version, item.role))
        if rng is not None and rng.random() < 1 / 300:  # batches of random length
            flush()
    flush()
    for _ in range(12):  # the stream ends: idle versions are recovered
        out.append((next_end, mon.poll(next_end, sorted(active))))
        active.clear()
        next_end += W
    return out


@pytest.mark.parametrize("k", [1, 4])
def test_a_batch_gives_exactly_what_one_event_at_a_time_gives(k):
    stream = mixed_stream(np.random.default_rng(71))
    settings = QualitySettings(canary_expected_rate=0.01, label_warmup=300, label_min_outcomes=100)
    single, batched = (QualityMonitor(W, settings, label_sample_every=k, clock=fixed_clock) for _ in range(2))
    expected = replay(single, stream, batched=False)
    got = replay(batched, stream, batched=True, rng=np.random.default_rng(72))
    assert got == expected
    kinds = [(a.kind, a.state) for _, records in expected for a in records]
    assert {("canary_divergence", "firing"), ("label_performance", "firing"), ("drift", "firing")} <= set(kinds)
    assert batched.counters() == single.counters() and batched.sizes() == single.sizes()
    counters = single.counters()
    assert counters["labels_duplicate"] > 0 and counters["predictions_skipped"] > 0
    assert counters["canary_expired"] > 0  # repeated canary events that found their twin paired already
    assert pickle.loads(pickle.dumps(batched)).counters() == counters


def test_activity_reported_by_poll_keeps_a_firing_version_whose_requests_are_unsampled():
    k = 4
    rng = np.random.default_rng(73)
    mon = QualityMonitor(W, QualitySettings(canary_expected_rate=0.01), label_sample_every=k, clock=fixed_clock)
    # 10% canary disagreement: the canary decision fires.
    n = 20_000
    ts = T0
    records = []
    next_end = T0 + W
    for i in range(n):
        ts = T0 + i * 20
        while ts >= next_end:
            records += mon.poll(next_end, [("m", "2.0", "production"), ("m", "1.0", "canary")])
            next_end += W
        pred = int(rng.integers(3))
        mon.observe_inference(InferenceEvent("m", "2.0", "production", f"r{i}", ts, 5.0, True, pred))
        canary = (pred + 1) % 3 if rng.random() < 0.1 else pred
        mon.observe_inference(InferenceEvent("m", "1.0", "canary", f"r{i}", ts + 3, 5.0, True, canary))
    assert [(a.kind, a.state) for a in records] == [("canary_divergence", "firing")]
    # From now on, only requests outside the sample: the monitor does not look at them.
    unsampled = (f"u{j}" for j in range(10**6) if not in_sample(f"u{j}", k))
    blind = pickle.loads(pickle.dumps(mon))  # fed the same, but nobody reports the activity
    blind_records = []
    for _ in range(3 * mon.idle_recover_ms // W):
        batch = [InferenceEvent("m", "2.0", "production", next(unsampled), next_end - W + j * 500, 5.0, True, 1)
                 for j in range(100)]
        observe_batch(mon, batch)
        observe_batch(blind, batch)
        assert mon.poll(next_end, [("m", "2.0", "production"), ("other", "1", "production")]) == []
        blind_records += blind.poll(next_end)
        next_end += W
    assert [a.state for a in blind_records] == ["recovered"], "unsampled events alone are not activity"
    assert mon.firing() == [("m", "2.0", "canary_divergence")]
    assert "other" not in mon._models, "activity of an unknown model creates no state"
    # The version stops serving: recovered once idle_recover_ms passed since its last active window.
    last_active = next_end - W
    out = []
    while not out:
        out = mon.poll(next_end, [("m", "1.0", "canary"), ("m", "2.0", "shadow")])
        next_end += W
    assert next_end - W - (last_active - 1) >= mon.idle_recover_ms > next_end - 2 * W - (last_active - 1)
    assert [(a.kind, a.state) for a in out] == [("canary_divergence", "recovered")]
    assert "no longer serving traffic" in out[0].summary and out[0].id == records[0].id
    assert mon.sizes()["versions"] == 0


def pairs(mon: QualityMonitor, model: str = "m", version: str = "2.0") -> int:
    det = mon._models[model].versions[version].canary
    return 0 if det is None else det.decision().evidence["pairs"]


def test_canary_twins_pair_whichever_comes_first_once_and_production_alone_leaves_no_canary_entry():
    mon = QualityMonitor(W, QualitySettings(canary_expected_rate=0.01), clock=fixed_clock)
    prod = lambda rid, ts, v=1: InferenceEvent("m", "2.0", "production", rid, ts, 5.0, True, v)  # noqa: E731
    canary = lambda rid, ts, v=1: InferenceEvent("m", "1.0", "canary", rid, ts, 5.0, True, v)  # noqa: E731
    # Production first, then its canary twin: found in the label join, which keeps it for the label.
    observe_batch(mon, [prod("r1", T0), canary("r1", T0 + 5)])
    assert pairs(mon) == 1 and len(mon._canary_join.items) == 0 and ("m", "r1") in mon._label_join.items
    # The same canary event again (a redelivery): no second pair; it waits, then expires.
    mon.observe_inference(canary("r1", T0 + 9))
    assert pairs(mon) == 1 and list(mon._canary_join.items) == [("m", "r1")]
    # Canary first, then production: paired from the canary join, which is left empty.
    observe_batch(mon, [canary("r2", T0 + 10), prod("r2", T0 + 12)])
    assert pairs(mon) == 2 and list(mon._canary_join.items) == [("m", "r1")]
    assert mon._label_join.items[("m", "r2")][3] is True  # paired already: its canary twin never pairs again
    mon.observe_inference(canary("r2", T0 + 14))
    assert pairs(mon) == 2
    # A production prediction paired with a canary still meets its label.
    mon.observe_label(LabelEvent("m", "r1", T0 + 30_000, 1))
    assert mon.labels_orphan == 0 and ("m", "r1") not in mon._label_join.items
    # Production predictions of a model with a canary, but without their twin: nothing in the canary join.
    mon.poll(T0 + 2 * W)
    assert len(mon._canary_join.items) == 0 and mon.canary_expired == 2  # the two repeated canary events
    observe_batch(mon, [prod(f"p{i}", T0 + 2 * W + i) for i in range(1000)])
    assert len(mon._canary_join.items) == 0
    mon.poll(T0 + 4 * W)
    assert mon.canary_expired == 2 and mon.canary_dropped == 0 and pairs(mon) == 2
    # A canary twin later than canary_join_ms does not pair; it waits for a production twin in vain.
    mon.observe_inference(canary("p0", T0 + 2 * W + mon.canary_join_ms + 1))
    assert pairs(mon) == 2 and len(mon._canary_join.items) == 1

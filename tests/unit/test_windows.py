"""Per-partition event-time windows: aggregation, watermark, late records, TTL, restart offsets."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import pytest

from modelmedic.detection.columns import RecordDecoder
from modelmedic.events import InferenceEvent
from modelmedic.detection.windows import QUANTILES, ClosedWindow, PartitionWindows

SIZE = 1000
LATENESS = 2000
T0 = 1_700_000_000_000  # a window boundary
W0 = T0 // SIZE


def ev(ts: int, model: str = "fraud", version: str = "1.0", role: str = "production", latency: float = 10.0,
       ok: bool = True, prediction: float | str | list[float] | None = 0.5) -> InferenceEvent:
    return InferenceEvent(model, version, role, "r", ts, latency, ok, prediction)


@dataclass
class At:
    offset: int


def windows(ttl: int = 300) -> PartitionWindows:
    return PartitionWindows(SIZE, LATENESS, ttl)


def row(pw: PartitionWindows, cw: ClosedWindow, key: tuple[str, str, str]) -> int:
    """Index of a version-level series in a closed window's arrays."""
    return int(np.flatnonzero(cw.slots == pw.slot_of[key])[0])


def group_row(pw: PartitionWindows, cw: ClosedWindow, gkey: tuple[str, str]) -> int:
    return int(np.flatnonzero(cw.groups == pw.group_of[gkey])[0])


def close_all(pw: PartitionWindows) -> list[ClosedWindow]:
    """Close everything buffered (as if event time moved far enough ahead)."""
    return pw.close_through(max(pw.open))


def contents(pw: PartitionWindows, window: int) -> list[tuple]:
    """The records buffered for an open window, as sorted (slot, latency, ok, prediction) rows."""
    slots, latency, ok, prediction = (np.concatenate(c) for c in zip(*pw.open[window]))
    return sorted(zip(slots.tolist(), latency.tolist(), ok.tolist(), np.nan_to_num(prediction, nan=-1.0).tolist()))


def nearest_rank(sample: np.ndarray, q: float) -> float:
    return float(np.percentile(sample, q * 100, method="inverted_cdf"))


# -- aggregation --------------------------------------------------------------------------


def test_counts_errors_quantiles_and_prediction_moments() -> None:
    rng = np.random.default_rng(7)
    pw = windows()
    sizes = {"a": 1, "b": 2, "c": 3, "d": 20, "e": 101, "f": 1000}
    samples: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    offset = 0
    for version, n in sizes.items():
        latency = rng.lognormal(3.0, 0.7, n).round(3)
        ok = rng.random(n) > 0.1
        pred = rng.normal(0.3, 0.1, n)
        samples[version] = (latency, ok, pred)
    # Interleave the series, as a real partition would.
    order = [(v, i) for v, n in sizes.items() for i in range(n)]
    for j in rng.permutation(len(order)):
        v, i = order[j]
        latency, ok, pred = samples[v]
        assert pw.add(ev(T0 + int(rng.integers(0, SIZE)), version=v, latency=float(latency[i]), ok=bool(ok[i]),
                         prediction=float(pred[i])), offset)
        offset += 1
    [cw] = close_all(pw)
    assert (cw.window, cw.start_ms, cw.end_ms) == (W0, T0, T0 + SIZE)
    assert cw.slots.size == len(sizes)
    for v, (latency, ok, pred) in samples.items():
        i = row(pw, cw, ("fraud", v, "production"))
        assert cw.count[i] == latency.size
        assert cw.errors[i] == (~ok).sum()
        for q, got in zip(QUANTILES, (cw.p50[i], cw.p95[i], cw.p99[i])):
            assert got == nearest_rank(latency, q), (v, q)
            assert got == np.sort(latency)[math.ceil(q * latency.size) - 1]
        assert cw.pred_mean[i] == pytest.approx(pred.mean(), rel=1e-12)
        if pred.size > 1:
            assert cw.pred_var[i] == pytest.approx(pred.var(), rel=1e-9)
        else:
            assert np.isnan(cw.pred_var[i])  # one value has no spread


def test_predictions_that_are_not_numbers_are_not_averaged() -> None:
    pw = windows()
    for i, pred in enumerate(["cat", [0.1, 0.9], None, 2.0, 4.0]):
        pw.add(ev(T0, prediction=pred), i)
    pw.add(ev(T0, version="labels-only", prediction="dog"), 5)
    [cw] = close_all(pw)
    i = row(pw, cw, ("fraud", "1.0", "production"))
    assert cw.count[i] == 5
    assert (cw.pred_mean[i], cw.pred_var[i]) == (3.0, 1.0)
    j = row(pw, cw, ("fraud", "labels-only", "production"))
    assert np.isnan(cw.pred_mean[j]) and np.isnan(cw.pred_var[j])


def test_per_model_group_totals_and_top_version() -> None:
    pw = windows()
    traffic = [("fraud", "1.0", "production", 30, 3), ("fraud", "2.0", "production", 70, 1),
               ("fraud", "1.0", "canary", 5, 5), ("churn", "7", "production", 12, 0)]
    offset = 0
    for model, version, role, n, errors in traffic:
        for k in range(n):
            pw.add(ev(T0 + k, model=model, version=version, role=role, ok=k >= errors), offset)
            offset += 1
    [cw] = close_all(pw)
    assert cw.groups.size == 3
    expected = {("fraud", "production"): (100, 4, "2.0"), ("fraud", "canary"): (5, 5, "1.0"),
                ("churn", "production"): (12, 0, "7")}
    for gkey, (count, errors, top_version) in expected.items():
        g = group_row(pw, cw, gkey)
        assert (cw.group_count[g], cw.group_errors[g]) == (count, errors)
        top = int(cw.group_top_slot[g])
        assert pw.keys[top] == (gkey[0], top_version, gkey[1])
    assert cw.group_count.sum() == cw.count.sum() == 117


def test_top_version_tie_goes_to_the_highest_slot() -> None:
    pw = windows()
    for i in range(10):
        pw.add(ev(T0, version="old"), 2 * i)
        pw.add(ev(T0, version="new"), 2 * i + 1)
    [cw] = close_all(pw)
    assert pw.keys[int(cw.group_top_slot[0])][1] == "new"


def test_series_are_separated_by_model_version_and_role() -> None:
    pw = windows()
    keys = [("a", "1", "production"), ("a", "1", "canary"), ("a", "2", "production"), ("b", "1", "production")]
    for n, (model, version, role) in enumerate(keys, start=1):
        for _ in range(n):
            pw.add(ev(T0, model=model, version=version, role=role), 0)
    [cw] = close_all(pw)
    assert [cw.count[row(pw, cw, k)] for k in keys] == [1, 2, 3, 4]


# -- watermark and lateness ---------------------------------------------------------------


def test_window_closes_when_event_time_passes_its_end_by_the_allowed_lateness() -> None:
    pw = windows()
    pw.add(ev(T0 + 500), 0)
    end = T0 + SIZE
    pw.add(ev(end + LATENESS - 1), 1)
    assert pw.ready_through() == W0 - 1
    assert pw.close_through(pw.ready_through()) == []
    pw.add(ev(end + LATENESS), 2)
    assert pw.ready_through() == W0
    [cw] = pw.close_through(pw.ready_through())
    assert cw.window == W0 and cw.count.sum() == 1
    assert pw.closed_through == W0


def test_wall_clock_can_advance_the_watermark_but_not_move_it_back() -> None:
    pw = windows()
    pw.add(ev(T0 + 500), 0)
    assert pw.ready_through(now_ts=T0 + SIZE + LATENESS) == W0
    assert pw.ready_through(now_ts=T0) == pw.ready_through() == W0 - 3


def test_out_of_order_records_within_the_lateness_are_aggregated() -> None:
    pw = windows()
    pw.add(ev(T0 + 100, latency=1.0), 0)
    pw.add(ev(T0 + SIZE + 1500, latency=2.0), 1)  # event time moves on ...
    assert pw.add(ev(T0 + 900, latency=3.0), 2)  # ... and an older record still counts
    [cw] = pw.close_through(W0)
    assert cw.count.sum() == 2 and cw.p99[0] == 3.0
    assert pw.late == 0


def test_late_records_are_counted_and_not_aggregated() -> None:
    pw = windows()
    pw.add(ev(T0 + 100), 0)
    pw.add(ev(T0 + 4 * SIZE), 1)
    closed = pw.close_through(pw.ready_through())
    assert [c.window for c in closed] == [W0, W0 + 1]
    assert not pw.add(ev(T0 + 200, latency=999.0), 2)
    assert not pw.add(ev(T0 + SIZE + 5, latency=999.0), 3)
    assert pw.late == 2
    assert W0 not in pw.open and W0 + 1 not in pw.open
    pw.add(ev(T0 + 9 * SIZE), 4)
    later = pw.close_through(pw.ready_through())
    assert [c.window for c in later] == list(range(W0 + 2, W0 + 7))
    assert [c.count.sum() for c in later] == [0, 0, 1, 0, 0]
    assert all(np.nanmax(np.r_[c.p99, 0.0]) < 999.0 for c in later)


def test_late_record_of_a_new_series_creates_no_series() -> None:
    pw = windows()
    pw.add(ev(T0), 0)
    pw.close_through(W0)
    assert not pw.add(ev(T0 + 1, model="other"), 1)
    assert list(pw.slot_of) == [("fraud", "1.0", "production")]


def test_empty_windows_are_emitted_with_count_zero_for_known_series() -> None:
    pw = windows()
    pw.add(ev(T0, version="1.0"), 0)
    pw.add(ev(T0, version="2.0", role="canary"), 1)
    pw.close_through(W0)
    pw.add(ev(T0 + 3 * SIZE, version="1.0"), 2)
    closed = pw.close_through(W0 + 3)
    assert [c.window for c in closed] == [W0 + 1, W0 + 2, W0 + 3]
    for c in closed[:2]:
        assert c.slots.size == 2 and c.count.tolist() == [0.0, 0.0] and c.errors.tolist() == [0.0, 0.0]
        assert np.isnan(c.p50).all() and np.isnan(c.p95).all() and np.isnan(c.p99).all()
        assert np.isnan(c.pred_mean).all()
        assert c.group_count.tolist() == [0.0, 0.0]
    last = closed[2]
    assert last.count[row(pw, last, ("fraud", "1.0", "production"))] == 1
    assert last.count[row(pw, last, ("fraud", "2.0", "canary"))] == 0


def test_close_through_is_idempotent() -> None:
    pw = windows()
    pw.add(ev(T0), 0)
    assert len(pw.close_through(W0)) == 1
    assert pw.close_through(W0) == [] and pw.close_through(W0 - 5) == []


# -- series TTL ---------------------------------------------------------------------------


def test_series_ttl_expiry_frees_slots_and_groups_and_they_are_reused() -> None:
    ttl = 5
    pw = windows(ttl)
    retired, steady = ("fraud", "1.0", "production"), ("fraud", "2.0", "production")
    lonely = ("churn", "3", "shadow")
    pw.add(ev(T0, version="1.0"), 0)
    pw.add(ev(T0, model="churn", version="3", role="shadow"), 1)
    for w in range(0, 12):
        pw.add(ev(T0 + w * SIZE, version="2.0"), 2 + w)
    pw.close_through(W0 + 10)
    old_slots, old_group = sorted([pw.slot_of[retired], pw.slot_of[lonely]]), pw.group_of[("churn", "shadow")]
    assert pw.expire(W0 + ttl) == ([], [], [])  # silent exactly TTL windows: still kept
    slots, groups, _ = pw.expire(W0 + ttl + 1)
    assert sorted(slots) == old_slots
    assert retired not in pw.slot_of and lonely not in pw.slot_of and steady in pw.slot_of
    assert groups == [old_group]  # (fraud, production) lives on through 2.0
    assert ("fraud", "production") in pw.group_of and ("churn", "shadow") not in pw.group_of
    [cw] = pw.close_through(W0 + 11)
    assert [pw.keys[s] for s in cw.slots] == [steady]
    # New series take the freed slots and group.
    pw.add(ev(T0 + 12 * SIZE, version="3.0"), 20)
    pw.add(ev(T0 + 12 * SIZE, model="new", version="1", role="canary"), 21)
    assert {pw.slot_of[("fraud", "3.0", "production")], pw.slot_of[("new", "1", "canary")]} == set(slots)
    assert pw.group_of[("new", "canary")] == old_group
    assert len(pw.keys) == 3 and len(pw.group_keys) == 2
    [cw] = pw.close_through(W0 + 12)
    counts = {pw.keys[s]: c for s, c in zip(cw.slots, cw.count)}
    assert counts == {steady: 0.0, ("fraud", "3.0", "production"): 1.0, ("new", "1", "canary"): 1.0}
    g = group_row(pw, cw, ("new", "canary"))
    assert cw.group_count[g] == 1 and pw.keys[int(cw.group_top_slot[g])] == ("new", "1", "canary")
    # An expired series that comes back is a new series: not counted in the slot it used to have.
    pw.add(ev(T0 + 13 * SIZE, version="1.0"), 22)
    assert retired in pw.slot_of and pw.slot_of[retired] not in {pw.slot_of[("fraud", "3.0", "production")],
                                                                 pw.slot_of[("new", "1", "canary")]}
    [cw] = pw.close_through(W0 + 13)
    counts = {pw.keys[s]: c for s, c in zip(cw.slots, cw.count)}
    assert counts[retired] == 1 and counts[("fraud", "3.0", "production")] == 0


def test_expiry_keeps_series_with_data_in_open_windows() -> None:
    pw = windows(ttl=3)
    pw.add(ev(T0), 0)
    pw.close_through(W0)
    pw.add(ev(T0 + 10 * SIZE), 1)  # the series comes back in a window still open
    assert pw.expire(W0 + 9).slots == []
    [cw] = pw.close_through(W0 + 10)[-1:]
    assert cw.count.tolist() == [1.0]


# -- restart offsets ----------------------------------------------------------------------


def test_resume_offset_is_the_first_offset_of_the_earliest_open_window() -> None:
    pw = windows()
    assert pw.resume_offset(42) == 42  # nothing open: carry on where we are
    pw.add(ev(T0 + 5 * SIZE), 100)
    pw.add(ev(T0 + 6 * SIZE), 101)
    pw.add(ev(T0 + 5 * SIZE + 1), 102)
    pw.add(ev(T0 + 4 * SIZE), 103)  # out of order: opens an earlier window at a later offset
    assert pw.resume_offset(104) == 100
    pw.close_through(W0 + 4)
    assert pw.resume_offset(104) == 100
    pw.close_through(W0 + 5)
    assert pw.resume_offset(104) == 101
    pw.close_through(W0 + 6)
    assert pw.resume_offset(104) == 104


def test_replay_from_the_resume_offset_rebuilds_the_open_windows_exactly() -> None:
    """What a restart does: restore the closed state, re-read from resume_offset, skip closed windows."""
    rng = np.random.default_rng(3)
    log = [ev(T0 + int(t), version=f"v{int(rng.integers(3))}", latency=float(rng.gamma(2, 5)), ok=bool(rng.random() > .05))
           for t in np.sort(rng.integers(0, 20 * SIZE, 600)) + rng.integers(-1500, 1500, 600)]
    live = windows()
    for offset, e in enumerate(log[:400]):
        live.add(e, offset)
        live.close_through(live.ready_through())
    resume = live.resume_offset(400)
    restored = windows()
    restored.closed_through, restored.max_ts = live.closed_through, live.max_ts
    for name in ("slot_of", "keys", "group_of_slot", "group_of", "group_keys", "last_window", "pool"):
        setattr(restored, name, copy.deepcopy(getattr(live, name)))
    for offset in range(resume, 400):
        restored.add(log[offset], offset)
    assert sorted(restored.open) == sorted(live.open)
    for w in live.open:
        assert contents(restored, w) == contents(live, w)
    assert restored.first_offset == live.first_offset


# -- gaps and the first data --------------------------------------------------------------


def test_first_data_does_not_close_windows_since_the_epoch() -> None:
    pw = windows()
    pw.add(ev(T0 + 300), 0)
    closed = pw.close_through(pw.ready_through(now_ts=T0 + 10 * SIZE))
    assert [c.window for c in closed] == list(range(W0, W0 + 8))
    assert closed[0].count.tolist() == [1.0]


def test_first_close_before_any_data_window_closes_nothing() -> None:
    pw = windows()
    pw.add(ev(T0 + 300), 0)
    assert pw.close_through(W0 - 1) == []
    assert pw.open and pw.add(ev(T0 + 400), 1)


def test_a_long_idle_gap_closes_at_most_ttl_windows() -> None:
    ttl = 50
    pw = windows(ttl)
    pw.add(ev(T0), 0)
    pw.close_through(W0)
    pw.add(ev(T0 + 100_000 * SIZE), 1)
    closed = pw.close_through(pw.ready_through())
    assert len(closed) == ttl
    assert [c.window for c in closed] == list(range(W0 + 100_000 - 2 - ttl, W0 + 100_000 - 2))
    assert all(c.count.sum() == 0 for c in closed)
    [data] = pw.close_through(W0 + 100_000)[-1:]
    assert data.count.sum() == 1


def test_an_idle_gap_inside_one_batch_closes_at_most_ttl_windows_per_gap() -> None:
    """A consumer catching up reads both sides of a gap in one batch: still bounded."""
    ttl = 50
    pw = windows(ttl)
    pw.add(ev(T0), 0)
    pw.close_through(W0)
    pw.add(ev(T0 + 1 * SIZE), 1)
    pw.add(ev(T0 + 86_400 * SIZE), 2)
    pw.add(ev(T0 + 200_000 * SIZE), 3)
    closed = pw.close_through(pw.ready_through())
    got = [c.window - W0 for c in closed]
    assert got == [1, *range(86_400 - ttl, 86_401), *range(200_000 - 2 - ttl, 200_000 - 2)]
    assert [c.count.sum() for c in closed if c.count.sum()] == [1, 1]
    assert pw.closed_through == W0 + 200_000 - 3


def test_a_first_batch_spanning_hours_closes_at_most_ttl_windows_per_gap() -> None:
    ttl = 20
    pw = windows(ttl)
    pw.add(ev(T0 - 3_600 * SIZE), 0)
    pw.add(ev(T0), 1)
    closed = pw.close_through(pw.ready_through())
    assert len(closed) == 1 + ttl  # the old window, then the TTL windows before the watermark
    assert closed[0].window == W0 - 3_600


def test_a_timestamp_far_in_the_future_costs_at_most_ttl_closes() -> None:
    """A producer writing microseconds: the decoder rejects it, and windows stay bounded anyway."""
    ttl = 10
    pw = windows(ttl)
    pw.add(ev(T0), 0)
    pw.add(ev(T0 * 1000), 1)
    closed = pw.close_through(pw.ready_through())
    assert len(closed) <= 2 * ttl + 1


def test_a_record_past_the_horizon_is_returned_not_added() -> None:
    """One record from a producer with a wrong clock must not make every honest record late."""
    pw = windows()
    cols = RecordDecoder().columns([ev(T0), ev(T0 + 10 * 3_600_000), ev(T0 + 100)])
    records = [At(0), At(1), At(2)]
    late, future = pw.add_columns(cols, records, horizon_ts=T0 + 300_000)
    assert (late.tolist(), future.tolist()) == ([], [1])
    assert pw.max_ts == T0 + 100 and list(pw.open) == [W0] and len(contents(pw, W0)) == 2
    late, future = windows().add_columns(cols, records)  # no horizon: taken as it is
    assert late.size == future.size == 0

"""Tail-only latency regressions: the share of requests over the usual p99, judged per request.

Windows are drawn as :class:`ClosedWindow` records with every request's latency (ascending per
series, as the windows keep them): lognormal around a model's median (sigma 0.3, the realistic
fleet's), with a ``tail`` incident slowing a random fraction of requests. Seeded.
"""

from __future__ import annotations

import numpy as np

from modelmedic.config import DetectionSettings
from modelmedic.detection.judge import WindowJudge, _rows
from modelmedic.detection.windows import ClosedWindow, PartitionWindows
from modelmedic.detectors import TailCusumBank
from modelmedic.detectors.sequential import SUSPICION
from modelmedic.events import Anomaly, InferenceEvent

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC


class Fleet:
    """``k`` series (one model each) judged window by window, with per-request latencies."""

    def __init__(self, k: int, size_s: float, seed: int, settings: DetectionSettings = DetectionSettings()) -> None:
        self.size_ms = int(size_s * 1000)
        self.windows = PartitionWindows(self.size_ms, 0, 10**9)
        for i in range(k):
            self.windows.add(InferenceEvent(f"m{i}", "1", "production", "r", T0, 1.0, True, None), 0)
        self.windows.open.clear()
        self.slots = np.array([self.windows.slot_of[(f"m{i}", "1", "production")] for i in range(k)])
        self.judge = WindowJudge(settings)
        self.rng = np.random.default_rng(seed)
        self.w = T0 // self.size_ms
        self.requests = np.zeros(k)

    def step(self, rate: float, median_ms: float | np.ndarray, slow: float = 0.0, factor: float = 4.0,
             sigma: float = 0.3, df: float | None = None) -> list[Anomaly]:
        """One window: Poisson(``rate`` x seconds) requests per series; a random ``slow`` share of them
        ``factor`` times slower; Student-t(``df``) log noise instead of normal when given."""
        k = self.slots.size
        count = self.rng.poisson(rate * self.size_ms / 1000, k)
        row = np.repeat(np.arange(k), count)
        noise = self.rng.standard_t(df, row.size) if df else self.rng.standard_normal(row.size)
        latency = np.broadcast_to(median_ms, k)[row] * np.exp(sigma * noise)
        latency *= np.where(self.rng.random(row.size) < slow, factor, 1.0)
        latency = latency[np.lexsort((latency, row))]
        start = np.cumsum(count) - count
        q = [np.where(count > 0, latency[np.minimum(start + np.maximum(np.ceil(p * count) - 1, 0).astype(int),
                                                     max(latency.size - 1, 0))] if latency.size else 0.0, np.nan)
             for p in (0.5, 0.95, 0.99)]
        c = count.astype(float)
        cw = ClosedWindow(
            window=self.w, start_ms=self.w * self.size_ms, end_ms=(self.w + 1) * self.size_ms, slots=self.slots,
            count=c, errors=np.zeros(k), p50=q[0], p95=q[1], p99=q[2], pred_mean=np.full(k, np.nan),
            pred_var=np.full(k, np.nan), groups=self.slots, group_count=c, group_errors=np.zeros(k),
            group_top_slot=self.slots, source=self.windows, latency_ms=latency, latency_start=start,
        )
        self.w += 1
        self.requests += count
        return self.judge.judge(cw)

    def run(self, hours: float, *args: object, **kwargs: object) -> list[Anomaly]:
        return [a for _ in range(int(hours * 3_600_000 / self.size_ms)) for a in self.step(*args, **kwargs)]


def firing(records: list[Anomaly]) -> list[Anomaly]:
    return [a for a in records if a.state == "firing"]


def test_a_tail_regression_with_the_median_unchanged_pages_as_latency_tail() -> None:
    """1 req/s, 10 s windows: 10% of requests 4x slower (p99 ~3x, median +4%) fires ``latency_tail``
    within 300 requests; the median's CUSUM never fires; the summary says p99 and the share."""
    fleet = Fleet(1, 10.0, seed=1)
    assert fleet.run(6, 1.0, 100.0) == []
    before = fleet.requests[0]
    fired: list[Anomaly] = []
    while not fired and fleet.requests[0] - before < 600:
        fired = firing(fleet.step(1.0, 100.0, slow=0.1))
    assert [(a.kind, a.anomaly_class) for a in fired] == [("latency_tail", "latency")]
    assert fleet.requests[0] - before <= 300
    assert 0.06 < fired[0].observed < 0.3 and 0.005 < fired[0].baseline < 0.02
    # About 100 ms x exp(2.33 x 0.3) = 201 ms; ten requests a window quote no p99 of their own.
    assert fired[0].summary.startswith("m0 1 (production): p99 latency above its usual 2")
    assert "% of requests over 2" in fired[0].summary and "usually 0." in fired[0].summary
    assert [a.kind for a in firing(fleet.run(1, 1.0, 100.0, slow=0.1))] == []  # one episode


def test_a_sparse_tail_regression_is_found_and_a_busy_one_within_two_windows() -> None:
    """0.05 req/s (1 s windows: most are empty) within 300 requests; 500 req/s in its second window."""
    sparse = Fleet(1, 1.0, seed=2)
    assert sparse.run(3, 0.05, 50.0) == []
    before, fired = sparse.requests[0], []
    while not fired and sparse.requests[0] - before < 600:
        fired = firing(sparse.step(0.05, 50.0, slow=0.1))
    assert [a.kind for a in fired] == ["latency_tail"] and sparse.requests[0] - before <= 300

    busy = Fleet(1, 1.0, seed=3)
    assert busy.run(0.5, 500.0, 20.0) == []
    assert firing(busy.step(500.0, 20.0, slow=0.1)) == []  # one window is never an incident
    fired = firing(busy.step(500.0, 20.0, slow=0.1))
    assert [a.kind for a in fired] == ["latency_tail"]
    assert fired[0].summary.startswith("m0 1 (production): p99 latency ") and " vs usual 4" in fired[0].summary


def test_healthy_deploys_and_heavy_tails_never_fire() -> None:
    """Over 12 hours: a +3% step at 1 and 50 req/s, and series whose log latency is Student-t (df 4:
    a tail heavier than the lognormal reference says, more than 1% over its p99) stay quiet."""
    for seed, rate in ((4, 1.0), (5, 50.0)):
        deploy = Fleet(1, 10.0, seed=seed)
        assert firing(deploy.run(2, rate, 80.0) + deploy.run(10, rate, 80.0 * 1.03)) == []
    heavy = Fleet(3, 10.0, seed=6)
    assert firing(heavy.run(12, 2.0, 100.0, df=4.0)) == []
    usual = heavy.judge.tail.bank.usual_rate(heavy.slots)
    assert (usual > 0.011).all()  # the share the series usually has over its bound: learned, not assumed


def test_a_median_step_fires_latency_alone() -> None:
    """A 2x step slows every request: one incident, the median's (the tail is part of it)."""
    fleet = Fleet(1, 10.0, seed=7)
    assert fleet.run(6, 2.0, 100.0) == []
    assert [a.kind for a in firing(fleet.run(1, 2.0, 200.0))] == ["latency"]


def test_the_bound_is_held_while_the_tail_is_under_suspicion() -> None:
    """The bound follows the reference, except while the CUSUM is above h / 3."""
    bank, one, h = TailCusumBank(), np.array([0]), 20.0
    for w in range(400):
        bank.score_learn(one, np.array([0.0]), np.array([1.0]), np.array([100.0 + w % 2]), np.array([w * 1000.0]),
                         1.0, h)
    assert np.isclose(bank.bound_ms(one, np.array([999.0]))[0], 101.0)
    w = 400
    while bank.state("s", one)[0] <= SUSPICION * h:
        bank.score_learn(one, np.array([1.0]), np.array([1.0]), np.array([100.0]), np.array([w * 1000.0]), 1.0, h)
        w += 1
    held = bank.bound_ms(one, np.array([0.0]))[0]
    bank.score_learn(one, np.array([1.0]), np.array([1.0]), np.array([150.0]), np.array([w * 1000.0]), 1.0, h)
    assert bank.bound_ms(one, np.array([0.0]))[0] == held  # the incident does not lift its own bar


def test_requests_over_counts_each_row_against_its_bound_across_windows() -> None:
    """Two windows closed together share one latency array; a third has its own: the vectorized count
    equals counting each row's requests by hand."""
    windows = PartitionWindows(1000, 0, 10**9)
    for i in range(3):
        windows.add(InferenceEvent(f"m{i}", "1", "production", "r", T0, 1.0, True, None), 0)
    windows.open.clear()
    slots = np.array(sorted(windows.keys))
    rng = np.random.default_rng(8)

    def window(w: int, latency: np.ndarray, count: np.ndarray, start: np.ndarray) -> ClosedWindow:
        c = count.astype(float)
        nan = np.full(3, np.nan)
        return ClosedWindow(w, w * 1000, w * 1000 + 1000, slots, c, np.zeros(3), nan, nan, nan, nan, nan, slots, c,
                            np.zeros(3), slots, windows, latency_ms=latency, latency_start=start)

    shared = np.sort(rng.exponential(100.0, 20))
    a = window(1, shared, np.array([3, 0, 5]), np.array([0, 3, 3]))
    b = window(2, shared, np.array([4, 6, 2]), np.array([8, 12, 18]))
    own = np.sort(rng.exponential(100.0, 7))
    c = window(3, own, np.array([7, 0, 0]), np.array([0, 7, 7]))
    hand = window(4, np.empty(0), np.array([2, 2, 2]), np.empty(0, dtype=np.int64))  # built without latencies
    bound = rng.uniform(50, 150, 12)
    over, judged = _rows([a, b, c, hand]).requests_over(bound)
    expected, i = [], 0
    for cw in (a, b, c):
        for r in range(3):
            lat = cw.latency_ms[cw.latency_start[r]:cw.latency_start[r] + int(cw.count[r])]
            expected.append(np.count_nonzero(lat > bound[i]))
            i += 1
    assert over.tolist() == expected + [0, 0, 0]
    assert judged.tolist() == [3, 0, 5, 4, 6, 2, 7, 0, 0, 0, 0, 0]


def test_after_a_median_step_ends_the_tail_neither_pages_nor_has_learned_it() -> None:
    """A 3x step for 30 minutes at 0.2 req/s (the storm of the harness's fleet): the median's episode
    owns it; once it is over, nothing more fires and the usual share over the bound is still ~1%."""
    fleet = Fleet(1, 10.0, seed=9)
    assert fleet.run(6, 0.2, 100.0) == []
    during = firing(fleet.run(0.5, 0.2, 300.0))
    assert [a.kind for a in during] == ["latency"]
    assert firing(fleet.run(3, 0.2, 100.0)) == []
    assert fleet.judge.tail.bank.usual_rate(fleet.slots)[0] < 0.02

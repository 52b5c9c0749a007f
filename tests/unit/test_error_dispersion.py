"""The errors bank's overdispersion: errors that come in clumps are the service's normal, not an incident.

A client that retries a failed call, a pod restart failing its in-flight requests: errors arrive several
in the same second. The Bernoulli charts read every error as an independent trial, so at a usual 0.5% a
clump of two or three in one window is strong evidence, and a model whose errors normally clump paged
again and again (docs/detection.md, "Errors in clumps"). ``BernoulliCusumBank`` learns the errors' variance
beyond their mean and divides every chart's evidence by it, as the throughput bank divides by ``phi``.
Synthetic 1 s windows (the judge's default), seeded.
"""

from __future__ import annotations

import numpy as np

from load.errors_null import errors
from modelmedic.detectors import BernoulliCusumBank
from modelmedic.detectors.sequential import threshold_for

WINDOW_S = 1.0
H = threshold_for(WINDOW_S, 1e-4)
MONDAY_MS = 1_767_571_200_000
RATES = np.geomspace(2.0, 50.0, 12)
"""Requests a second: where a window often holds two errors of a clump."""
SLOTS = np.arange(RATES.size)


def _run(seed: int, hours: float, clump: float, burst: tuple[float, float] | None = None,
         ) -> tuple[BernoulliCusumBank, np.ndarray]:
    """The bank after ``hours`` of every series of :data:`RATES` at 0.5% errors (``burst``: 13% independent
    errors from ``burst[0]`` for ``burst[1]`` seconds); each series' first alarm (s, NaN: none)."""
    rng = np.random.default_rng(seed)
    bank = BernoulliCusumBank()
    first = np.full(RATES.size, np.nan)
    for t_s in range(int(hours * 3600)):
        requests = rng.poisson(RATES * WINDOW_S)
        failed = errors(rng, requests, np.full(RATES.size, 0.005), clump)
        if burst is not None and burst[0] <= t_s < burst[0] + burst[1]:
            failed = rng.binomial(requests, 0.13).astype(float)
        served = requests > 0
        ev = bank.score_learn(SLOTS[served], failed[served], requests[served].astype(float),
                              np.full(served.sum(), MONDAY_MS + t_s * 1000.0), WINDOW_S, H, H / 2)
        fired = SLOTS[served][ev.warm & (ev.cusum >= H)]
        first[fired] = np.where(np.isnan(first[fired]), t_s, first[fired])
    return bank, first


def test_errors_in_clumps_page_no_one() -> None:
    # Clumps of two on average (a variance of about three times the mean): before the bank learned it, 6 of these
    # 12 series fired within 6 hours.
    bank, first = _run(seed=7, hours=6, clump=2.0)
    assert np.isnan(first).all(), first.tolist()
    assert np.all(bank.dispersion(SLOTS)[RATES > 10] > 2.0), bank.dispersion(SLOTS).round(2).tolist()


def test_independent_errors_keep_their_full_weight() -> None:
    bank, first = _run(seed=8, hours=3, clump=1.0)
    assert np.isnan(first).all(), first.tolist()
    assert np.all(bank.dispersion(SLOTS) < 1.1), bank.dispersion(SLOTS).round(3).tolist()


def test_a_burst_over_clumped_errors_is_found_and_not_learned() -> None:
    # 13% errors from the fourth hour: found at every rate within two minutes. The burst's errors do not raise the
    # dispersion the series learned from its clumps (``excess`` learns from no window that is or ends past a third
    # of h; the pooled errors it is divided by take the burst's at a tenth, so it falls by about a third in the hour).
    before, _ = _run(seed=9, hours=3, clump=2.0)
    bank, first = _run(seed=9, hours=4, clump=2.0, burst=(3 * 3600, 3600))
    assert np.all(first - 3 * 3600 <= 120), (first - 3 * 3600).tolist()
    assert np.all(bank.dispersion(SLOTS) <= before.dispersion(SLOTS)), (before.dispersion(SLOTS), bank.dispersion(SLOTS))


def test_a_snapshot_from_before_the_dispersion_restores_without_it() -> None:
    bank, _ = _run(seed=10, hours=1, clump=2.0)
    rows = bank.rows(SLOTS)
    again, before = BernoulliCusumBank(), BernoulliCusumBank()
    again.set_rows(SLOTS, rows)
    before.set_rows(SLOTS, {**rows, "_f": rows["_f"][:, :8]})  # the eight columns of a release before it
    assert again.dispersion(SLOTS).tolist() == bank.dispersion(SLOTS).tolist() and bank.dispersion(SLOTS).max() > 1.5
    assert before.dispersion(SLOTS).tolist() == [1.0] * RATES.size
    assert before.state("err", SLOTS).tolist() == bank.state("err", SLOTS).tolist()


def test_a_new_version_inherits_the_dispersion_not_what_is_pending() -> None:
    bank, _ = _run(seed=10, hours=1, clump=2.0)
    bank._f[0, BernoulliCusumBank._COLUMNS.index("pending")] = 40.0  # a suspicion under way on the old version
    new = np.array([RATES.size])
    bank.inherit(new, np.array([0]))
    assert bank.dispersion(new).tolist() == bank.dispersion(np.array([0])).tolist()
    assert bank.state("pending", new).tolist() == [0.0]


def test_two_batches_failing_whole_at_a_sparse_series_page_no_one() -> None:
    # A client's batch meets one fault, so at 0.5-1 req/s a series whose errors come in clumps sees a whole batch
    # fail now and then, and its retry fail the next second. Each such window reached the window's most (h / 2)
    # whatever the dispersion, and two of them fired: all 8 series here (and rough seed 3's model-003, batches of 7
    # and 5 failing 23 s apart with no request between, at a usual 0.15%). The most now applies before the
    # dispersion divides; an outage is still found within two minutes.
    rates = np.geomspace(0.5, 1.0, 8)
    bank, outage_s = BernoulliCusumBank(), 25 * 3600
    first, peak = _batches_then_outage(bank, rates, np.random.default_rng(11), 0.0015, 2.0,
                                       {24 * 3600: 7.0, 24 * 3600 + 1: 5.0}, outage_s, 120)
    assert np.all(bank.dispersion(np.arange(rates.size)) > 1.3), bank.dispersion(np.arange(rates.size)).round(2).tolist()
    # Before, the two batches took every series to h itself (20.577 of 20.577): whether it fired was the rounding's.
    assert np.all(peak < 0.75 * H), (peak / H).round(3).tolist()
    assert np.all(first >= outage_s) and np.all(first - outage_s <= 120), (first - outage_s).tolist()


def _young(clump_prior: float, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """16 series at 1-5 req/s and a usual 0.2% of independent errors: a client's retries failing in batches of 6, 3
    and 2 within 30 s at 21 minutes (a few lone errors seen before), then an outage at 30 minutes. Each series'
    first alarm (s) and its highest statistic before the outage."""
    outage_s = 1800
    first, peak = _batches_then_outage(BernoulliCusumBank(clump_prior=clump_prior), np.geomspace(1.0, 5.0, 16),
                                       np.random.default_rng(seed), 0.002, 1.0, {1260: 6.0, 1270: 3.0, 1290: 2.0},
                                       outage_s, 60)
    return first - outage_s, peak / H


def _batches_then_outage(bank: BernoulliCusumBank, rates: np.ndarray, rng: np.random.Generator, usual: float,
                         clump: float, batches_s: dict[int, float], outage_s: int, after_s: int,
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Series at ``rates`` with ``usual`` errors (in clumps of ``clump``), every series' window at ``batches_s``
    a batch of that many requests failing as one, and every request failing from ``outage_s`` for ``after_s``:
    each series' first alarm (s, NaN: none) and its highest statistic before the outage."""
    slots = np.arange(rates.size)
    first, peak = np.full(rates.size, np.nan), np.zeros(rates.size)
    for t_s in range(outage_s + after_s):
        requests = rng.poisson(rates * WINDOW_S)
        failed = errors(rng, requests, np.full(rates.size, usual), clump)
        requests = requests.astype(float)
        if t_s in batches_s:
            requests[:] = failed[:] = batches_s[t_s]
        if t_s >= outage_s:
            failed = requests.copy()
        served = requests > 0
        ev = bank.score_learn(slots[served], failed[served], requests[served],
                              np.full(served.sum(), MONDAY_MS + t_s * 1000.0), WINDOW_S, H, H / 2)
        fired = slots[served][ev.warm & (ev.cusum >= H)]
        first[fired] = np.where(np.isnan(first[fired]), t_s, first[fired])
        if t_s < outage_s:
            peak[slots[served]] = np.maximum(peak[slots[served]], ev.cusum)
    return first, peak


def test_a_young_series_first_clumps_are_not_independent_failures() -> None:
    """A series that has seen a few lone errors has learned nothing of its clumps yet (``D`` = 1): a batch failing
    as one read as that many independent failures, and rough seed 20's model-016 paged 0.39 h into its life. A
    window of several errors is judged with at least the dispersion of one pseudo-error at 3 beside those learned
    (``clump_prior``); an outage is still found within half a minute."""
    after, peak = _young(clump_prior=1.0)
    assert np.all(after >= 0) and np.all(after <= 30), after.tolist()
    assert np.all(peak < 0.85), peak.round(2).tolist()
    before_after, before_peak = _young(clump_prior=0.0)  # the bank before: 3 of the 16 fired on the batches
    assert np.sum(before_after < 0) >= 2 and before_peak.max() >= 1.0, (before_after.tolist(), before_peak.round(2).tolist())


def test_a_lone_error_keeps_its_evidence() -> None:
    """Sparse series (windows of one request) never see two errors in a window: the clump prior leaves their
    evidence as it was, bit for bit."""
    rates = np.geomspace(0.05, 0.5, 8)
    slots = np.arange(rates.size)
    charts = []
    for prior in (0.0, 1.0):
        rng, bank, seen = np.random.default_rng(3), BernoulliCusumBank(clump_prior=prior), []
        for t_s in range(4 * 3600):
            requests = np.minimum(rng.poisson(rates * WINDOW_S), 1).astype(float)
            failed = rng.binomial(requests.astype(int), 0.13 if t_s >= 3 * 3600 else 0.005).astype(float)
            served = requests > 0
            ev = bank.score_learn(slots[served], failed[served], requests[served],
                                  np.full(served.sum(), MONDAY_MS + t_s * 1000.0), WINDOW_S, H, H / 2)
            seen.append(ev.cusum.copy())
        charts.append(np.concatenate(seen))
    assert np.array_equal(charts[0], charts[1]) and charts[1].max() >= H

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

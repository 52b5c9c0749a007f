"""Metric-stream detectors: one shared check suite over every bank, then each detector's own behaviour."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from modelmedic.detectors import (
    CalibratedBank,
    CusumBank,
    EnsembleBank,
    EwmaBank,
    OneSeries,
    RobustBank,
    SeasonalBank,
    default_bank,
)

HOUR = 3600.0
BANKS = [
    EwmaBank,
    RobustBank,
    lambda: RobustBank(order=1),
    CusumBank,
    lambda: SeasonalBank(period=86400.0, buckets=24),
    EnsembleBank,
    CalibratedBank,
]
IDS = ["ewma", "robust", "robust-diff", "cusum", "seasonal-daily", "ensemble", "calibrated"]


def series(seed: int, n: int = 24 * 40, spikes: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hourly values with a daily cycle and noise, ``spikes`` isolated spikes after day 10."""
    rng = np.random.default_rng(seed)
    t = 1.7e9 + HOUR * np.arange(n)
    x = 100 + 30 * np.sin(2 * np.pi * np.arange(n) / 24) + rng.normal(0, 3, n)
    where = np.sort(rng.choice(np.arange(min(240, n // 2), n, 12), spikes, replace=False))
    x[where] += rng.choice([-1, 1], spikes) * 40
    return t, x, where


def run(bank, t: np.ndarray, x: np.ndarray, slot: int = 0) -> np.ndarray:
    slots = np.array([slot])
    return np.array([bank.score_learn(slots, x[i : i + 1], t[i : i + 1])[0][0] for i in range(len(x))])


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a positive outscores a negative (ties count half)."""
    pos, neg = scores[positive], scores[~positive]
    greater = (pos[:, None] > neg[None, :]).mean()
    return float(greater + 0.5 * (pos[:, None] == neg[None, :]).mean())


# ---------------------------------------------------------------- shared suite


@pytest.mark.parametrize("make", BANKS, ids=IDS)
def test_clone_is_fresh_with_same_parameters(make):
    t, x, _ = series(1, n=300)
    bank = make()
    trained = run(bank, t, x)
    fresh = bank.clone()
    assert repr(fresh) == repr(bank)
    assert np.array_equal(run(fresh, t, x), trained)


@pytest.mark.parametrize("make", BANKS, ids=IDS)
def test_pickle_round_trip_continues_identically(make):
    t, x, _ = series(2)
    bank = make()
    run(bank, t[:500], x[:500])
    restored = pickle.loads(pickle.dumps(bank))
    assert np.array_equal(run(restored, t[500:], x[500:]), run(bank, t[500:], x[500:]))


@pytest.mark.parametrize("make", BANKS, ids=IDS)
def test_deterministic_and_input_not_mutated(make):
    t, x, _ = series(3, n=400)
    t0, x0 = t.copy(), x.copy()
    slots = np.arange(3)
    first, second = make(), make()
    outs = []
    for bank in (first, second):
        for i in range(len(x)):
            xs, ts = np.full(3, x[i]) + slots, np.full(3, t[i])
            before = (slots.copy(), xs.copy(), ts.copy())
            outs.append(bank.score_learn(slots, xs, ts))
            assert all(np.array_equal(a, b) for a, b in zip(before, (slots, xs, ts)))
    half = len(outs) // 2
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(outs[:half], outs[half:]))
    assert np.array_equal(t, t0) and np.array_equal(x, x0)


@pytest.mark.parametrize("make", BANKS, ids=IDS)
def test_scores_in_unit_interval_and_non_finite_scores_zero(make):
    t, x, _ = series(4, n=500)
    x = x.copy()
    x[::37] = np.nan
    x[5] = np.inf
    scores = run(make(), t, x)
    assert np.all(np.isfinite(scores)) and scores.min() >= 0.0 and scores.max() <= 1.0
    assert np.all(scores[~np.isfinite(x)] == 0.0)


@pytest.mark.parametrize("make", BANKS, ids=IDS)
def test_vectorized_equals_one_series_at_a_time(make):
    """Many series in one bank score exactly as each alone: slots do not leak into each other."""
    data = [series(seed, n=300) for seed in (5, 6, 7)]
    bank = make()
    together = np.zeros((3, 300))
    for i in range(300):
        s, _ = bank.score_learn(np.array([2, 0, 1]), np.array([d[1][i] for d in data]), data[0][0][i])
        together[:, i] = s
    for k, (t, x, _) in enumerate(data):
        alone = OneSeries(make())
        expected = [alone.score_learn_one(x[i], t[i]) for i in range(300)]
        assert np.allclose(together[k], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("make", BANKS, ids=IDS)
def test_forget_returns_a_slot_to_untrained(make):
    t, x, _ = series(8, n=300)
    bank = make()
    run(bank, t, x, slot=3)
    bank.forget(np.array([3]))
    assert np.array_equal(run(bank, t, x, slot=3), run(make(), t, x, slot=3))


@pytest.mark.parametrize("make", BANKS, ids=IDS)
def test_finds_synthetic_spikes(make):
    t, x, where = series(9)
    flat = x - 30 * np.sin(2 * np.pi * np.arange(len(x)) / 24)  # level + noise + spikes, for non-seasonal detectors
    positive = np.zeros(len(x), dtype=bool)
    positive[where] = True
    data = x if make in (BANKS[4], BANKS[5], BANKS[6]) else flat
    scores = run(make(), t, data)
    assert auc(scores[240:], positive[240:]) > 0.8


# ---------------------------------------------------------------- per detector


def quiet(seed: int, n: int) -> np.ndarray:
    return 50 + np.random.default_rng(seed).normal(0, 2, n)


def test_robust_baseline_quiet_false_positives_and_spike_vs_drop():
    x = quiet(10, 3000)
    bank = RobustBank()
    scores = run(bank, np.zeros(3000), x)
    assert (scores[100:] >= 0.999).mean() < 0.005  # Gaussian 3.3-sigma tail is 0.1%
    s, base = bank.score_learn(np.array([0, 1]), np.array([80.0, 20.0]))
    assert s[0] > 0.999 and abs(base[0] - 50) < 0.5


def test_robust_baseline_is_not_dragged_by_the_anomaly_it_flags():
    bank = RobustBank(alpha=0.1)
    run(bank, np.zeros(500), quiet(11, 500))
    for _ in range(5):
        s, base = bank.score_learn(np.array([0]), np.array([500.0]))
    assert s[0] > 0.999 and abs(base[0] - 50) < 1.0


def test_differences_ignore_a_random_walk_but_see_its_spike():
    walk = np.cumsum(np.random.default_rng(12).normal(0, 1, 3000)) + 1000
    walk[2500] += 15
    level, diff = run(RobustBank(), np.zeros(3000), walk), run(RobustBank(order=1), np.zeros(3000), walk)
    assert int(np.argmax(diff[100:])) + 100 == 2500 != int(np.argmax(level[100:])) + 100
    assert (diff[100:] >= 0.999).sum() <= 12  # about the 0.1% Gaussian tail of 2900 steps


def test_cusum_finds_a_small_shift_no_single_point_shows_and_few_false_alarms():
    x = quiet(13, 3000)
    x[2500:] += 2.0  # one standard deviation
    scores = run(CusumBank(), np.zeros(3000), x)
    assert (scores[200:2500] >= 0.997).sum() <= 3  # false alarms over 2300 quiet points
    assert (scores[2500:2560] >= 0.997).any()
    single = run(RobustBank(), np.zeros(3000), x)
    assert (single[2500:2560] >= 0.999).mean() < 0.1  # no single point shows it


def test_seasonal_flags_a_value_normal_by_day_at_night_and_needs_time():
    t, x, _ = series(14, n=24 * 20, spikes=1)
    x = 100 + 30 * np.sin(2 * np.pi * np.arange(len(x)) / 24)
    bank = SeasonalBank(period=86400.0, buckets=24)
    run(bank, t, x)
    peak_hour, trough_hour = t[-24 + 6], t[-24 + 18]  # sin peaks at hour 6, troughs at 18
    s, base = bank.score_learn(np.array([0]), np.array([130.0]), np.array([trough_hour + 86400]))
    assert s[0] > 0.999 and abs(base[0] - 70) < 1
    s, _ = bank.score_learn(np.array([0]), np.array([130.0]), np.array([peak_hour + 86400]))
    assert s[0] < 0.9
    assert bank.score_learn(np.array([1]), np.array([130.0]))[0][0] == 0.0  # no time: no opinion


def ensemble_flags(bank: EnsembleBank, t, x) -> np.ndarray:
    return np.flatnonzero(run(bank, t, x) >= 0.5)


def test_ensemble_quiet_seasonal_series_rarely_alarms():
    n = 24 * 60
    rng = np.random.default_rng(15)
    t = 1.7e9 + HOUR * np.arange(n)
    x = 100 + 30 * np.sin(2 * np.pi * np.arange(n) / 24) + rng.normal(0, 3, n)
    assert len(ensemble_flags(EnsembleBank(), t, x)) <= 2  # over 60 days of hourly values


@pytest.mark.parametrize(
    "kind, change",
    [
        ("spike", lambda x: x.__setitem__(slice(1000, 1001), x[1000] + 40)),
        ("level shift", lambda x: x.__setitem__(slice(1000, None), x[1000:] + 12)),
        ("missing daily peak", lambda x: x.__setitem__(slice(1000, 1010), 100.0)),
    ],
)
def test_ensemble_detects_each_kind_of_anomaly_promptly_and_once(kind, change):
    n = 24 * 60
    rng = np.random.default_rng(16)
    t = 1.7e9 + HOUR * np.arange(n)
    x = 100 + 30 * np.sin(2 * np.pi * (np.arange(n) - 994) / 24) + rng.normal(0, 3, n)
    change(x)
    flags = ensemble_flags(EnsembleBank(), t, x)
    assert any(1000 <= f <= 1012 for f in flags), (kind, flags)
    assert sum(1000 <= f < 1100 for f in flags) == 1  # one alarm per incident
    assert len(flags) <= 3


def test_ensemble_sensitivity_is_one_monotone_knob():
    t, x, _ = series(17, n=24 * 40)
    counts = [len(ensemble_flags(EnsembleBank(sensitivity=s), t, x)) for s in (0.2, 0.5, 0.8)]
    assert counts[0] <= counts[1] <= counts[2] and counts[0] < counts[2]


def test_ensemble_baseline_tells_spike_from_drop():
    t, x, _ = series(18, n=24 * 30, spikes=1)
    bank = EnsembleBank()
    run(bank, t, x)
    s, base = bank.score_learn(np.array([0, 0])[:1], np.array([x[-1] + 60]), t[-1:] + HOUR)
    assert s[0] >= 0.5 and base[0] < x[-1] + 60 - 30


def test_default_bank_is_the_calibrated_bank_and_state_is_small():
    bank = default_bank()
    assert isinstance(bank, CalibratedBank)
    bank.ensure(1000)
    assert bank.state_bytes() <= 4096
    assert copy.deepcopy(bank).state_bytes() == bank.state_bytes()


def test_ewma_bank_keeps_the_scores_baselines_contract():
    bank = EwmaBank(alpha=0.1, grace=5)
    run(bank, np.zeros(50), quiet(19, 50))
    scores, baselines = bank.score_learn(np.array([0, 1]), np.array([90.0, 10.0]))
    assert scores[0] > 0.999 and scores[1] == 0.0 and 45 < baselines[0] < 55


def test_ensemble_recurring_incidents_count_against_themselves_a_first_one_does_not():
    rng = np.random.default_rng(20)
    n = 2000
    x = 50 + rng.normal(0, 1, n)
    x[600::100] += 15  # the same spike every 100 points from 600 on
    t = 1.7e9 + 300 * np.arange(n)
    on, off = run(EnsembleBank(), t, x), run(EnsembleBank(recurring=False), t, x)
    assert on[600] == off[600] >= 0.5  # the first spike: an alarm, unchanged
    later = np.arange(700, n, 100)
    assert np.all(on[later] < off[later])  # each repeat is worth a little less (log of the count)
    assert np.all(on[later] >= 0.5)  # but a 15-sigma spike is still an anomaly


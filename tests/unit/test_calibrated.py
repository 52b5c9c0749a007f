"""CalibratedBank: calibrated, non-saturating scores; one alarm per incident; counts; the fast replay path."""

from __future__ import annotations

import pickle

import numpy as np

from modelmedic.detectors import CalibratedBank, OneSeries, replay_lockstep, replay_series

FIVE_MIN = 300.0


def per_point(bank, x, t=None, slot: int = 0):
    """The streaming path: one ``score_learn`` call per value."""
    slots = np.array([slot])
    out = [bank.score_learn(slots, x[i : i + 1], None if t is None else t[i : i + 1]) for i in range(len(x))]
    return np.array([o[0][0] for o in out]), np.array([o[1][0] for o in out])


def quiet(seed: int, n: int) -> np.ndarray:
    return 50 + np.random.default_rng(seed).normal(0, 1, n)


def test_score_does_not_saturate_a_1000_sigma_spike_ranks_above_10_sigma():
    scores = {}
    for size in (10.0, 1000.0):
        x = quiet(1, 1200)
        x[1000] += size
        s, _ = CalibratedBank().score_series(x)
        scores[size] = s[1000]
    assert 0.5 <= scores[10.0] < scores[1000.0] < 1.0


def test_a_level_shift_is_reported_once_not_pinned():
    x = quiet(2, 3000)
    x[1500:] += 12.0
    s, base = CalibratedBank().score_series(x)
    flags = np.flatnonzero(s >= 0.5)
    assert flags.size and 1500 <= flags[0] <= 1505, flags
    assert ((flags >= 1500) & (flags < 1800)).sum() == 1, flags
    assert len(flags) <= 2
    assert abs(base[-1] - 62.0) < 1.5  # the new level is learned once reported


def test_a_sparse_count_burst_is_an_anomaly_and_the_quiet_part_is_not():
    rng = np.random.default_rng(3)
    x = rng.poisson(0.05, 3000).astype(float)  # mostly zero
    x[2000:2012] = rng.poisson(4.0, 12)  # a burst of events
    s, _ = CalibratedBank().score_series(x)
    assert s[2000:2012].max() >= 0.5
    assert s[:2000].max() < 0.5


def test_an_idle_disk_burst_of_bytes_is_an_anomaly():
    rng = np.random.default_rng(4)
    n = 3000
    x = np.where(rng.random(n) < 0.05, 1e5 * rng.lognormal(0, 0.5, n), 0.0).round()
    x[2500] = 4e6  # one write 40x the usual
    s, _ = CalibratedBank().score_series(x)
    assert s[2500] >= 0.5 and int(np.argmax(s)) == 2500


def test_an_idle_disk_whose_writes_were_flagged_does_not_starve_its_floor():
    """Writes of ~3 MB at 5% of 5-minute points: the first ones score as alarms, and a floor that
    learned only unflagged (idle) points shrank until every later write was an alarm (60 here)."""
    rng = np.random.default_rng(5)
    n = 4032
    t = 1.4e9 + FIVE_MIN * np.arange(n)
    x = np.where(rng.random(n) < 0.05, 3e6 * rng.lognormal(0, 0.7, n), 0.0).round()
    s, _ = CalibratedBank().score_series(x, t)
    assert (s >= 0.5).sum() <= 2, np.flatnonzero(s >= 0.5)
    x[3500] = 40 * 3e6  # one write 40x the usual is still an anomaly
    s, _ = CalibratedBank().score_series(x, t)
    assert s[3500] >= 0.5


def test_bursty_but_normal_counts_stay_below_one_half():
    """Mention counts every 5 minutes: a daily cycle, overdispersion and normal bursts raise no alarm."""
    rng = np.random.default_rng(5)
    n = 4032
    i = np.arange(n)
    mu = 40 * (1 + 0.6 * np.sin(2 * np.pi * i / 288))
    for at in rng.choice(n, 10, replace=False):  # ten normal bursts, up to 1.5x the level
        k = np.arange(at, min(n, at + 40))
        mu[k] *= 1 + 0.5 * np.exp(-(k - at) / 6.0)
    x = rng.negative_binomial(10, 10 / (10 + mu)).astype(float)
    t = 1.4e9 + FIVE_MIN * i
    s, _ = CalibratedBank().score_series(x, t)
    assert s.max() < 0.5, np.flatnonzero(s >= 0.5)


def test_an_episode_that_keeps_growing_is_reported_once():
    x = quiet(3, 700)
    x[500:510] = 56 + 8 * np.arange(10)  # ten flagged points in a row, each far above the last
    muted, _ = CalibratedBank().score_series(x)
    every, _ = CalibratedBank(mute_flagged_run=False, hold=0).score_series(x)
    assert muted[500] >= 0.5 and np.count_nonzero(muted[500:510]) == 1
    assert np.count_nonzero(every[500:510] >= 0.5) >= 3  # without: each step 1.5x the peak is a new alarm
    assert np.array_equal(muted[:500], every[:500])


def test_an_episode_goes_on_through_a_point_just_under_the_alarm_level():
    """A jam that builds: a point at 0.46 (4.3 digits, under the alarm level) then one far above it. The
    second is the same episode (NAB counts it as a false positive at a threshold under 0.46)."""
    x = quiet(3, 700)
    x[500] = x[480:500].mean() + 3.5
    x[501] = x[500] + 30
    s, _ = CalibratedBank().score_series(x)
    before, _ = CalibratedBank(episode=1.0).score_series(x)  # only a flagged point (5 digits) continued an episode
    assert 0.444 < s[500] < 0.5 and s[501] == 0.0
    assert before[500] == s[500] and before[501] >= 0.5
    x[500] = x[480:500].mean() + 2.5  # under 4 digits: the next point is an episode of its own
    assert CalibratedBank().score_series(x)[0][501] >= 0.5


def test_nothing_is_reported_for_hold_points_after_an_alarm():
    """One alarm per incident: a stronger spike 6 points after a reported alarm is not a new page; one 30
    points after is."""
    x = quiet(3, 700)
    x[500] += 12
    x[506] += 40  # far above 1.5x the peak: reported without the hold
    x[530] += 200
    held, _ = CalibratedBank().score_series(x)
    free, _ = CalibratedBank(hold=0).score_series(x)
    assert held[500] >= 0.5 and held[506] == 0.0 and held[530] >= 0.5
    assert free[506] >= 0.5 and np.array_equal(held[:506], free[:506])


def test_state_from_before_the_hold_restores_with_nothing_muted():
    """A snapshot taken before ``_quiet`` existed: the series keeps what it learned and reports freely."""
    x = quiet(9, 800)
    x[700] += 30
    a = CalibratedBank()
    a.score_series(x[:600], slot=0)
    old = {k: v for k, v in a.rows(np.array([0])).items() if k != "_quiet"}
    b = CalibratedBank()
    b.score_series(np.r_[quiet(10, 300), 90.0], slot=5)  # a slot in use before, muted at its end
    assert b._quiet[5] > 0
    b.forget(np.array([5]))
    b.set_rows(np.array([5]), old)
    assert b._quiet[5] == 0 and np.array_equal(b._tail[5], a._tail[0])
    assert np.array_equal(b.score_series(x[600:], slot=5)[0], a.score_series(x[600:], slot=0)[0])


def test_batch_path_equals_per_point_path_and_leaves_the_same_state():
    rng = np.random.default_rng(6)
    n = 1500
    t = 1.4e9 + FIVE_MIN * np.arange(n)
    x = 100 + 20 * np.sin(2 * np.pi * np.arange(n) / 288) + rng.normal(0, 2, n)
    x[::89] = np.nan
    x[400] = np.inf
    x[700:] += 15
    x[1000] = 1e9
    counts = rng.poisson(3, n).astype(float)
    counts[900] = 2.5  # not a count after all: the series starts again on raw values
    disk_rng, days = np.random.default_rng(7), 1.4e9 + FIVE_MIN * np.arange(4032)
    disk = np.where(disk_rng.random(4032) < 0.05, 3e6 * disk_rng.lognormal(0, 0.7, 4032), 0.0).round()  # flagged writes
    assert (CalibratedBank().score_series(disk, days)[0] >= 0.5).sum() >= 3  # so the floors learn flagged points here
    dropouts = _sensor(True)  # recurring exact values (0) in short episodes, then a longer one
    dropouts[0][3800:3812] = 0.0
    cases = [(x, t, {}), (x, None, {}), (disk, days, {}), (counts, t, {}), (*dropouts, {}), (*_sensor(False), {})]
    for series, times, kw in cases + [(x, t, {"mute_flagged_run": False}), (x, t, {"mute_flagged_run": False, "hold": 0}), (x, t, {"episode": 1.0, "hold": 40})]:
        fast, slow = CalibratedBank(**kw), CalibratedBank(**kw)
        s1, b1 = fast.score_series(series, times, slot=2)
        s2, b2 = per_point(slow, series, times, slot=2)
        assert np.allclose(s1, s2, rtol=0, atol=1e-12)
        assert np.array_equal(np.isnan(b1), np.isnan(b2)) and np.allclose(b1[~np.isnan(b1)], b2[~np.isnan(b2)])
        rows = fast.rows(np.array([2])), slow.rows(np.array([2]))
        for name in rows[0]:
            assert np.allclose(rows[0][name], rows[1][name], rtol=1e-12, atol=1e-12), name
    assert fast._count[2] == 0 and CalibratedBank().score_series(counts[:800])[0].size == 800


def test_replay_helpers_use_the_fast_path_and_lockstep_equals_alone():
    xs = [quiet(7, 700), quiet(8, 500) + np.r_[np.zeros(400), np.full(100, 9.0)]]
    alone = [replay_series(CalibratedBank(), x)[0] for x in xs]
    together = replay_lockstep(CalibratedBank(), xs)
    assert all(np.allclose(a, b, rtol=0, atol=1e-12) for a, b in zip(alone, together))
    one = OneSeries(CalibratedBank())
    assert np.allclose([one.score_learn_one(v) for v in xs[1]], alone[1], rtol=0, atol=1e-12)


def test_state_moves_between_banks_and_pickles():
    x = quiet(9, 800)
    x[700] += 30
    a = CalibratedBank()
    a.score_series(x[:600], slot=0)
    b = CalibratedBank()
    b.set_rows(np.array([5]), a.rows(np.array([0])))
    restored = pickle.loads(pickle.dumps(a))
    s_a = a.score_series(x[600:], slot=0)[0]
    assert np.array_equal(b.score_series(x[600:], slot=5)[0], s_a)
    assert np.array_equal(restored.score_series(x[600:], slot=0)[0], s_a)
    assert s_a[100] >= 0.5


def test_state_from_before_the_sustained_channel_restores_with_that_channel_afresh():
    """A snapshot taken before ``sustain`` existed has no ``_ring``/``_stail`` rows: the series
    keeps everything else it learned and the sustained channel starts from its prior."""
    x = quiet(9, 800)
    x[700] += 30
    a = CalibratedBank()
    a.score_series(x[:600], slot=0)
    old = {k: v for k, v in a.rows(np.array([0])).items() if k not in ("_ring", "_stail")}
    b = CalibratedBank()
    b.score_series(quiet(10, 300), slot=5)  # a slot in use before: the restore must not keep its channel
    b.forget(np.array([5]))
    b.set_rows(np.array([5]), old)
    assert np.array_equal(b._tail[5], a._tail[0]) and np.array_equal(b._pred[5], a._pred[0])
    assert not b._ring[5].any() and np.array_equal(b._stail[5, 0], b._prior_tail())
    s_b = b.score_series(x[600:], slot=5)[0]
    assert s_b[100] >= 0.5 and (s_b >= 0.5).sum() == 1


def test_the_sustained_channel_keeps_the_last_points_context_surprise_and_costs_no_state_when_off():
    x = quiet(11, 400)
    on, off = CalibratedBank(), CalibratedBank(sustain=0)
    on.score_series(x)
    off.score_series(x)
    assert on._ring.shape[1] == 12 and on._ring[0].min() >= 0.0 and on._ring[0].max() > 0.0
    assert on._stail[0, 0, 0] > on.prior  # it learned the points it kept
    assert off._ring.shape[1] == 0 and np.array_equal(off._stail[0, 0], off._prior_tail())
    assert on.state_bytes() - off.state_bytes() == 12 * 8


def test_state_is_bounded():
    bank = CalibratedBank()
    bank.ensure(100)
    assert bank.state_bytes() <= 4096


def _sensor(whole: bool) -> tuple[np.ndarray, np.ndarray]:
    """A road sensor every 5 minutes (speed around 60 with a daily cycle) that reports 0 for 1-2
    points once a day: normal dropouts, the same exact value each time."""
    rng = np.random.default_rng(8)
    n = 4032
    x = 60 + 5 * np.sin(2 * np.pi * np.arange(n) / 288) + rng.normal(0, 2, n)
    x = x.round() if whole else x.round(2)
    for a in range(300, n, 288):
        x[a : a + 1 + (a // 288) % 2] = 0.0
    return x, 1.4e9 + FIVE_MIN * np.arange(n)


def test_a_value_that_recurs_in_short_episodes_stops_alarming_but_a_longer_stay_alarms():
    """Dropouts to 0 once a day alarmed every day (13 of 13) because a flagged value was never
    learned; after two (decayed) episodes 0 is a known value for as long as its longest episode (2 points).
    Whole values (the count path) and raw values alike."""
    for whole in (True, False):
        x, t = _sensor(whole)
        s, _ = CalibratedBank().score_series(x, t)
        assert (s >= 0.5).sum() <= 4, np.flatnonzero(s >= 0.5)
        assert (CalibratedBank(recur=0.0).score_series(x, t)[0] >= 0.5).sum() == 13
        x[3800:3812] = 0.0  # the sensor dead for an hour: longer than any dropout, found by its third point
        s, _ = CalibratedBank().score_series(x, t)
        assert s[3800:3803].max() >= 0.5, s[3800:3812]

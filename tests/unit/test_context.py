"""ContextBank: CalibratedBank's reports capped by how often their context recurred; both paths equal; bounded state."""

from __future__ import annotations

import pickle

import numpy as np

from modelmedic.detectors import CalibratedBank
from modelmedic.detectors.context import ContextBank, _levels

DAY = 288  # points a day at 5 minutes


def stamps(days: int) -> np.ndarray:
    return 300.0 * np.arange(days * DAY)


def daily_jam(seed: int, noise: float = 0.2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A quiet series with the same jam (+35) every day 08:30-09:10 from day 1: ``(t, x, onsets)``."""
    t = stamps(14)
    x = 10 + np.random.default_rng(seed).normal(0, noise, t.size)
    jam = (t % 86400 >= 30600) & (t % 86400 < 33000) & (t >= 86400)
    x[jam] += 35
    return t, x, np.flatnonzero(jam & ~np.roll(jam, 1))


def mixed(seed: int, n: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Four series of different kinds (noise with a daily jam and a gap, counts, a daily cycle, a constant that steps)."""
    rng = np.random.default_rng(seed)
    t = 300.0 * np.arange(n)
    jammed = 10 + rng.normal(0, 0.2, n)
    jammed[(t % 86400 >= 30600) & (t % 86400 < 33000)] += 35
    jammed[100] = np.nan
    constant = np.full(n, 4.0)
    constant[n // 2 :] = 9.0
    cycle = 5 * np.sin(2 * np.pi * t / 86400) + rng.normal(0, 0.3, n)
    return t, [jammed, rng.poisson(3, n).astype(float), cycle, constant]


def test_a_jam_that_recurs_at_the_same_hour_and_levels_stops_alarming_but_the_first_ones_alarm():
    caps = []
    for seed in range(4):
        t, x, onsets = daily_jam(seed)
        inner, _ = CalibratedBank().score_series(x, t)
        capped, _ = ContextBank().score_series(x, t)
        assert all((inner[a : a + 10] >= 0.5).any() for a in onsets)  # the inner bank alarms every day
        found = [bool((capped[a : a + 10] >= 0.5).any()) for a in onsets]
        assert all(found[:5]), found  # the first days: the context is new
        caps.append(len(onsets) - sum(found))
        assert np.all(capped <= inner + 1e-12)  # only ever lowered
    assert sum(caps) >= 3, caps  # and once it recurred, some days are not news


def test_the_same_jam_at_a_new_hour_still_alarms():
    t, x, onsets = daily_jam(3)
    night = 12 * DAY + 24  # 02:00 on day 12: levels seen every day, never at this hour
    x[night : night + 8] += 35
    capped, _ = ContextBank().score_series(x, t)
    assert (capped[night : night + 8] >= 0.5).any()


def test_without_times_it_is_the_calibrated_bank():
    x = 10 + np.random.default_rng(7).normal(0, 1, 2000)
    x[1500] += 20
    np.testing.assert_array_equal(ContextBank().score_series(x)[0], CalibratedBank().score_series(x)[0])


def test_levels_outside_the_range_are_new_levels_not_the_top_one():
    lo, hi = np.array([0.0, 0.0, 0.0, 5.0]), np.array([10.0, 10.0, 10.0, 5.0])
    got = _levels(np.array([9.99, 30.0, -100.0, 7.0]), lo, hi, 32)
    assert got.tolist() == [31, 63, -32, 63]


def test_batch_path_equals_per_point_path_and_leaves_the_same_state():
    t, xs = mixed(5, 3000)
    fast = ContextBank()
    ref = [fast.score_series(x, t, slot=k) for k, x in enumerate(xs)]
    slow = ContextBank()
    got = [np.zeros(t.size) for _ in xs]
    for i in range(t.size):
        s, _ = slow.score_learn(np.arange(len(xs)), np.array([x[i] for x in xs]), np.full(len(xs), t[i]))
        for k in range(len(xs)):
            got[k][i] = s[k]
    for k in range(len(xs)):
        np.testing.assert_allclose(got[k], ref[k][0], rtol=0, atol=1e-12)
    a, b = fast.rows(np.arange(len(xs))), slow.rows(np.arange(len(xs)))
    for name in a:
        if name == "bank":
            for inner in a[name]:
                np.testing.assert_allclose(a[name][inner], b[name][inner], rtol=0, atol=1e-12)
        else:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-12, atol=1e-12)
    assert any((r[0] >= 0.5).any() for r in ref)  # the series do alarm: the comparison is not of zeros


def test_state_moves_between_banks_pickles_and_clones():
    t, xs = mixed(6, 2500)
    bank = ContextBank(levels=16)
    for k, x in enumerate(xs):
        bank.score_series(x[:2000], t[:2000], slot=k)
    moved = ContextBank(levels=16)
    moved.set_rows(np.array([7, 3, 5, 1]), bank.rows(np.arange(4)))
    copy = pickle.loads(pickle.dumps(bank))
    fresh_differs = []
    for k, at in enumerate([7, 3, 5, 1]):
        a = moved.score_series(xs[k][2000:], t[2000:], slot=at)[0]
        b = copy.score_series(xs[k][2000:], t[2000:], slot=k)[0]
        np.testing.assert_array_equal(a, b)
        fresh_differs.append(not np.array_equal(a, bank.clone().score_series(xs[k][2000:], t[2000:])[0]))
    assert any(fresh_differs)  # the state moved is what decides: an untrained bank answers otherwise
    assert repr(bank.clone()) == repr(bank) and "levels=16" in repr(bank)


def test_state_is_bounded():
    t = stamps(60)
    x = np.random.default_rng(9).uniform(0, 100, t.size)  # 17,280 points, far more contexts than places
    bank = ContextBank()
    bank.score_series(x, t)
    assert bank._key.shape == (bank._capacity, bank.table) and int((bank._key[0] > 0).sum()) <= bank.table
    assert bank.state_bytes() < 12_000  # the inner bank's ~2.9 KB and the table's 512 x 16 B

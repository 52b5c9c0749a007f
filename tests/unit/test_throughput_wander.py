"""Busy traffic wanders more than Poisson over minutes, and the throughput null reaches as far
(``PoissonCusumBank``'s ``block_s``, its docstring): a rate that moves +-10% from one minute to the next is
nothing at 10 req/s in a 1 s window (``phi`` 1.1), yet the small drop chart, which accumulates over minutes,
read two low minutes as a -30% drop. Synthetic 1 s windows on a daily sine of amplitude 0.6 (trough a quarter of
the peak), every time zone, seeded."""

from __future__ import annotations

import numpy as np

from modelmedic.detectors import PoissonCusumBank
from modelmedic.detectors.sequential import RESET, threshold_for

from batches import batched
from load.throughput_null import rate_paths

H = threshold_for(1.0, 1e-4)
MONDAY_MS = 1_767_571_200_000
DAY_S = 86_400


def _rates(base: np.ndarray, seed: int, hours: int, jitter: float) -> np.ndarray:
    """Per second (hours x 3600, series): the daily sine times a lognormal factor drawn anew each minute."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, base.size)
    t = np.arange(hours * 3600)[:, None]
    minutes = np.exp(jitter * rng.standard_normal((hours * 60, base.size)) - jitter**2 / 2)
    return base * (1.0 + 0.6 * np.sin(2 * np.pi * t / DAY_S + phase)) * np.repeat(minutes, 60, axis=0)


def _episodes(bank: PoissonCusumBank, rates: np.ndarray, seed: int, drop_at: np.ndarray | None = None,
              t0_s: int = 0) -> np.ndarray:
    """Per series: drop episodes (the statistic at ``h`` until under ``RESET h``); with ``drop_at``, the seconds
    from it to the first drop firing instead (nan: none). ``rates[0]`` is ``t0_s`` from Monday 00:00."""
    rng = np.random.default_rng(seed)
    slots, on = np.arange(rates.shape[1]), np.zeros(rates.shape[1], dtype=bool)
    episodes, found = np.zeros(rates.shape[1], dtype=int), np.full(rates.shape[1], np.nan)
    for s, lam in enumerate(rates):
        ev = bank.score_learn(slots, rng.poisson(lam).astype(float), np.full(slots.size, MONDAY_MS + (t0_s + s) * 1000.0),
                              1.0, H, H / 2)
        drop = (ev.cusum >= H) & (ev.kind == 0)
        episodes += drop & ~on
        on = drop | (on & (ev.cusum >= RESET * H))
        if drop_at is not None:
            found = np.where(drop & np.isnan(found) & (s >= drop_at), s - drop_at, found)
    return episodes if drop_at is None else found


def test_a_rate_that_wanders_minute_to_minute_is_not_a_drop() -> None:
    # +-10% a minute at 10 and 100 req/s over the first 12 h: 447 drop episodes on all 16 series without the wander,
    # 8 on 3 series with it, when the level's memory was an hour; at half an hour (2026-12-05) 123 on 11 without it,
    # 2 on 1 with it.
    base = np.repeat([10.0, 100.0], 8)
    rates = _rates(base, seed=1, hours=12, jitter=0.1)
    wide = _episodes(PoissonCusumBank(), rates, seed=2)
    assert wide.sum() <= 12, (base[wide > 0], wide[wide > 0])
    plain = _episodes(PoissonCusumBank(wander_z=0.0), rates, seed=2)
    assert np.count_nonzero(plain) >= 10 and plain.sum() >= 100, "the law no longer shows what the wander is for"


def test_a_drop_on_the_second_day_is_found_in_smooth_and_in_wandering_traffic() -> None:
    # -30% from 26 h at 3, 10 and 100 req/s; a third of its deadline (1 h) is 1,200 s. Smooth and +-10% a minute:
    # 15 of 16 within it (16 while the wander was in use only from 3.3 req/s on the second day: the third series,
    # at 1.8 req/s at 26 h, has a v whose widening of 10% is the second day's seasonal error, and with it the drop
    # never lifts the charts past a third, so its blocks teach v as wander; session 18).
    base = np.repeat([3.0, 10.0, 100.0], [6, 5, 5])
    at = np.full(base.size, 26 * 3600)
    for jitter, least in ((0.0, 15), (0.1, 14)):
        rates = _rates(base, seed=3, hours=30, jitter=jitter)
        rates[26 * 3600:] *= 0.7
        found = _episodes(PoissonCusumBank(), rates, seed=4, drop_at=at)
        assert np.count_nonzero(found <= 1200) >= least, (jitter, found)


def test_a_rate_that_walks_over_half_hours_is_not_a_drop() -> None:
    # rough()'s walk (load/throughput_null.py's law: an Ornstein-Uhlenbeck walk of the log rate, sd 0.1, 1,800 s) on
    # the daily sine at 1, 3 and 10 req/s, 8 series each, two days: 93 false drop episodes on the first day (in 12
    # series) and 43 on the second (in 8) when no block under suspicion taught v and the wander was in use from 3.3
    # req/s only; 27 (in 7; in 6 at fa48e07) and 25 (in 4: three re-cross 7-9 times) with the shadow and the gates at
    # 1.67 and 0.83 req/s (session 18); 2 (in 1) and 11 (in 3: one 10 req/s series re-crosses 9 times) with the
    # wander in use wherever it is heard over the noise (wander_over_noise: the 1 req/s series learned it, under the
    # gates).
    rates = rate_paths(np.repeat([1.0, 3.0, 10.0], 8), 48, np.random.default_rng(5), 0.0, 0.1, 1800.0)
    bank = PoissonCusumBank()
    first, second = _episodes(bank, rates[:DAY_S], seed=15), _episodes(bank, rates[DAY_S:], seed=16, t0_s=DAY_S)
    assert first.sum() <= 8 and second.sum() <= 15 and np.count_nonzero(second) <= 3, (first, second)


def _busy_drops(bank: PoissonCusumBank, rates: np.ndarray, seed: int, at: int) -> tuple[np.ndarray, np.ndarray]:
    """Each series twice, in batches of two (``rough()``'s): as it is, and thinned to 0.7 from second ``at``.
    Per series: the seconds from ``at`` to the thinned copy's first drop (nan: none), and the drop episodes of the
    copy left as it is."""
    rng = np.random.default_rng(seed)
    n = rates.shape[1]
    slots, on = np.arange(2 * n), np.zeros(2 * n, dtype=bool)
    found, false = np.full(n, np.nan), np.zeros(n, dtype=int)
    for s, lam in enumerate(rates):
        quiet = batched(rng, rng.poisson(lam / 2))
        thinned = rng.binomial(quiet.astype(np.int64), 0.7).astype(float) if s >= at else quiet
        ev = bank.score_learn(slots, np.concatenate([quiet, thinned]), np.full(2 * n, MONDAY_MS + s * 1000.0), 1.0, H,
                              H / 2)
        drop = (ev.cusum >= H) & (ev.kind == 0)
        false += (drop & ~on)[:n]
        found = np.where(drop[n:] & np.isnan(found) & (s >= at), s - at, found)
        on = drop | (on & (ev.cusum >= RESET * H))
    return found, false


def test_a_drop_from_busy_wandering_traffic_is_judged_against_the_recent_level() -> None:
    # rough() traffic at 80 req/s (the half-hour walk of sd 0.1, batches of two), -30% from 2 h into the series'
    # lives: against the level (half an hour) and the walk's band the drop read as 0.85x, and 29 of 40 were found
    # within a third of the deadline (1,200 s); against the recent level (two minutes) as well, 36. Seeds 8 and 9:
    # 28 -> 36 and 24 -> 35. The copies left as they are raise no drop either way.
    rates = rate_paths(np.full(40, 80.0), 3, np.random.default_rng(7), 0.0, 0.1, 1800.0)
    found, false = _busy_drops(PoissonCusumBank(), rates, seed=107, at=2 * 3600)
    assert np.count_nonzero(found <= 1200) >= 34 and false.sum() == 0, (found, false)
    found, false = _busy_drops(PoissonCusumBank(recent_s=0.0), rates, seed=107, at=2 * 3600)
    assert np.count_nonzero(found <= 1200) <= 31 and false.sum() == 0, "the law no longer shows what the recent level is for"

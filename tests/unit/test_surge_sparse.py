"""A traffic surge on a sparse series' first day (``PoissonCusumBank``): judged from its first events.

A series under about 0.04 req/s (the trough of a 0.06 req/s model whose night is a quarter of its
peak) needs a level memory of 300 events, longer than 2 h; such a level lags the day too far for a
drop to be judged against it before the hour-of-day factors have seen a day. The surge was gated the
same way, so a x3 surge near that trough waited for the level to learn the surge itself
(``load/detection_harness.py --models 50 --seed 2``: 3,449 s where 650 s is what the data allow). It
is now judged from the first events against the highest the rate may be now, the rate of the last
hour among the candidates (docs/detection.md, "Surges at low rate"). Synthetic Poisson windows, seeded.
"""

from __future__ import annotations

import numpy as np

from modelmedic.detectors import PoissonCusumBank
from modelmedic.detectors.sequential import threshold_for

WINDOW_S = 10.0
H = threshold_for(WINDOW_S, 1e-4)
MONDAY_MS = 1_767_571_200_000
DAY_S = 86_400.0


def _first_crossings_s(rates: np.ndarray, phase: np.ndarray, seed: int, hours: float, surge_at_s: float = np.inf,
                       ratio: float = 1.0, until_s: float = np.inf) -> tuple[np.ndarray, np.ndarray]:
    """Seconds of event time at which each series' surge CUSUM, and its drop statistic, first reached ``h`` (NaN:
    never); the rate follows a daily sine of amplitude 0.6 (the trough a quarter of the peak) from midnight, times
    ``ratio`` from ``surge_at_s`` to ``until_s``."""
    rng = np.random.default_rng(seed)
    bank, slots = PoissonCusumBank(), np.arange(rates.size)
    first, dropped = np.full(rates.size, np.nan), np.full(rates.size, np.nan)
    for t_s in np.arange(0.0, hours * 3600.0, WINDOW_S):
        lam = rates * (1.0 + 0.6 * np.sin(2 * np.pi * t_s / DAY_S + phase)) * WINDOW_S
        lam = lam * (ratio if surge_at_s <= t_s < until_s else 1.0)
        ev = bank.score_learn(slots, rng.poisson(lam).astype(float), np.full(rates.size, MONDAY_MS + t_s * 1000),
                              WINDOW_S, H, H / 2)
        fired = (ev.cusum >= H) & (ev.kind == 1) & np.isnan(first)
        first[fired] = t_s + WINDOW_S
        fell = (ev.cusum >= H) & (ev.kind == 0) & np.isnan(dropped)
        dropped[fell] = t_s + WINDOW_S
    return first, dropped


def test_a_surge_on_the_first_day_is_found_at_any_time_of_day() -> None:
    # 0.06 req/s on average, every phase of the day; the surge at 8 h. Was (gated): 16 of 20 within 1,800 s
    # (median 370 s), the others at 4,810-4,920 s or not within 2 h; now 19 of 20 (median 305 s).
    rng = np.random.default_rng(31)
    delay = _first_crossings_s(np.full(20, 0.06), rng.uniform(0, 2 * np.pi, 20), seed=32, hours=10,
                               surge_at_s=8 * 3600.0, ratio=3.0)[0] - 8 * 3600.0
    delay = np.nan_to_num(delay, nan=np.inf)  # not found within 2 h
    assert np.median(delay) <= 900 and np.sum(delay <= 1800) >= 19, delay.tolist()


def test_a_surge_near_the_first_days_trough_is_found_within_its_deadline() -> None:
    # 0.06 req/s on average, the surge at 8 h within two hours of each series' trough (0.024 req/s), where
    # the level is too slow to be judged: about 500-650 s is what the data allow there. Was (hour factors as steps,
    # 3cf4e2f) a strict xfail: median 1,020 s, 2 of 20 never. Three draws of this law pooled (60 series): with the
    # level's and the hour's rate's memory at an hour, medians 835, 715 and 740 s and one never; at half an hour
    # (2026-12-05: deep daily cycles, docs/detection.md) 880, 750 and 850 s and two never. Since the level restarts
    # when a first-day drop ends (2026-12-06), a surge that comes while a drop is suspected is read as the traffic's
    # return: one series (seed 41), whose decline to the trough raised a drop at 5.01 h, no longer finds its surge
    # (1,070 s before). Of the two never found before, one had raised a drop too (seed 61, 5.28 h).
    delays, dropped = [], []
    for seed in (21, 41, 61):
        rng = np.random.default_rng(seed)
        trough = 1.5 * np.pi - 2 * np.pi * 8 * 3600 / DAY_S  # the phase putting the trough at 8 h
        phase = trough + rng.uniform(-np.pi / 6, np.pi / 6, 20)
        surge, drop = _first_crossings_s(np.full(20, 0.06), phase, seed=seed + 1, hours=10, surge_at_s=8 * 3600.0,
                                         ratio=3.0)
        delays.append(surge - 8 * 3600.0)
        dropped.append(drop < 8 * 3600.0)
    delay = np.nan_to_num(np.concatenate(delays), nan=np.inf)  # not found within 2 h
    returned = np.concatenate(dropped)  # a drop crossed before the surge: the surge may be read as its return
    assert (delay >= 0).all() and np.median(delay) <= 900, delay.tolist()
    assert np.isinf(delay[~returned]).sum() <= 1 and returned.sum() <= 2, (delay.tolist(), returned.tolist())


def test_the_first_day_of_sparse_series_is_not_a_surge() -> None:
    # Was one false surge: a 0.065 req/s series 22 h into its first day, out of the gate in its steepest rise,
    # where the level under suspicion froze at 0.66x of the rate; the last hour's rate is in the ceiling now.
    rng = np.random.default_rng(23)
    rates = 0.01 * 20 ** rng.random(200)  # 0.01-0.2 req/s, log-uniform
    phase = rng.uniform(0, 2 * np.pi, rates.size)  # every time zone
    first = _first_crossings_s(rates, phase, seed=24, hours=26)[0]
    assert np.isnan(first).all(), f"false surges at rates {rates[~np.isnan(first)].round(3).tolist()}"


def test_the_start_of_the_second_day_is_not_a_surge() -> None:
    # Another draw of the same law: two false surges at 24.8 and 25.5 h (0.017 and 0.021 req/s) when the
    # level alone (seasoned) was the surge's reference; the hour factors had seen one visit each.
    rng = np.random.default_rng(501)
    rates = 0.01 * 20 ** rng.random(200)
    first = _first_crossings_s(rates, rng.uniform(0, 2 * np.pi, rates.size), seed=502, hours=26)[0]
    assert np.isnan(first).all(), f"false surges at rates {rates[~np.isnan(first)].round(3).tolist()}"


def test_the_hour_of_a_first_day_drop_is_not_the_surges_reference() -> None:
    # 0.5-5 req/s, every phase of the day, traffic at a tenth from 12 h to 13 h. On the first day the surge is judged
    # against the rate of the last hour too (``_fast``), which learned the drop at full speed while the level learned
    # it ten times slower: when traffic came back, 3, 3 and 3 of these 40 series in three draws (0.83-4.39 req/s)
    # read it as a surge (the 40-model Saturday fleet's model-031, ``load/detection_harness.py --seed 4 --start
    # 2026-03-14``). The rate of the last hour now learns ten times slower under any suspicion: 0, 0 and 1 with an
    # hour's memory, 1, 0 and 0 with half an hour's (2026-12-05); none since the level restarts when a first-day
    # drop ends (2026-12-06: the level held at the drop's onset had missed the day's move over the hour).
    false = []
    for seed in (51, 61, 71):
        rng = np.random.default_rng(seed)
        rates, phase = 0.5 * 10 ** rng.random(40), rng.uniform(0, 2 * np.pi, 40)
        first = _first_crossings_s(rates, phase, seed=seed + 1, hours=15, surge_at_s=12 * 3600.0, ratio=0.1,
                                   until_s=13 * 3600.0)[0]
        false += [(round(float(r), 2), round(float(t) / 3600, 2)) for r, t in zip(rates, first) if not np.isnan(t)]
    assert not false, false  # (req/s, hour)

"""The throughput null on business days: traffic that ramps up at 08:00 and down at 17:00 over an hour or two
(``PoissonCusumBank``'s half-hour buckets, their bend and their learning under a suspicion; docs/detection.md,
"Business days"). Synthetic Poisson windows of 60 s on ``load/fleet.py``'s business day (nights at 10% of the day),
each series in its own time zone, seeded."""

from __future__ import annotations

import numpy as np

from load.fleet import START_MS, daily_factor
from modelmedic.detectors import PoissonCusumBank
from modelmedic.detectors.sequential import RESET, threshold_for

WINDOW_S = 60.0
H = threshold_for(WINDOW_S, 1e-4)
DAY_S = 86_400.0
NIGHT = 0.1
SEASONALITY = (1 - NIGHT) / (1 + NIGHT)
"""The sine's amplitude whose trough-to-peak ratio is ``NIGHT`` (``daily_factor``'s business night)."""


def _series_with_a_false_drop_per_day(bank: PoissonCusumBank, ramp_h: float, days: int, seed: int) -> np.ndarray:
    """How many of 400 healthy series at 0.05-5 req/s (log-uniform) raise a drop episode on each day."""
    rng = np.random.default_rng(seed)
    rates, phase = 0.05 * 100 ** rng.random(400), rng.uniform(0, 2 * np.pi, 400)
    slots, on = np.arange(400), np.zeros(400, dtype=bool)
    dropped = np.zeros((days, 400), dtype=bool)
    for w in range(int(days * DAY_S / WINDOW_S)):
        t_ms = START_MS + w * WINDOW_S * 1000
        lam = rates * daily_factor(SEASONALITY, phase, t_ms, ramp_h=ramp_h) * WINDOW_S
        ev = bank.score_learn(slots, rng.poisson(lam).astype(float), np.full(400, t_ms), WINDOW_S, H, H / 2)
        drop = (ev.cusum >= H) & (ev.kind == 0)
        dropped[int(w * WINDOW_S // DAY_S)] |= drop & ~on
        on = drop | (on & (ev.cusum >= RESET * H))
    return dropped.sum(axis=1)


def test_a_two_hour_evening_ramp_is_not_a_drop_once_the_half_hours_have_seen_it() -> None:
    # Hour buckets alone, linear between their centres, draw a ramp of two hours over three, and through the evening
    # ramp the expected count stood up to 1.6x above the traffic: 247 and 250 of the 400 series raised a drop on
    # their third and fourth days. The half hours' detail where it shows beyond noise, and the null reaching as far
    # as a chord may be from a bending day: 45 and 28 (on the first two days, 372 and 163: a first day has no factors
    # to draw a ramp with, a second has one visit of each).
    days = _series_with_a_false_drop_per_day(PoissonCusumBank(min_windows=10), ramp_h=2.0, days=4, seed=5)
    assert days[2] <= 100 and days[3] <= 40, days.tolist()
    hours_alone = PoissonCusumBank(min_windows=10, half_hour_z=np.inf, bend=0.0)
    before = _series_with_a_false_drop_per_day(hours_alone, ramp_h=2.0, days=4, seed=5)
    assert before[3] >= 4 * days[3], (before.tolist(), days.tolist())


def test_the_half_hours_learn_an_evening_that_raised_a_suspicion() -> None:
    # Kept from every suspicion, a half hour whose null was off learned only on evenings it already fitted, so the
    # same series raised a drop evening after evening: 45 / 23 / 13 of the 400 on days 3 / 4 / 5. Learning under a
    # suspicion that has not crossed, at half a window's weight (``suspect_learning``): 20 / 6 / 1.
    kept = _series_with_a_false_drop_per_day(PoissonCusumBank(min_windows=10, suspect_learning=0.0), ramp_h=2.0,
                                             days=5, seed=5)
    learned = _series_with_a_false_drop_per_day(PoissonCusumBank(min_windows=10), ramp_h=2.0, days=5, seed=5)
    assert learned[4] <= 3 and learned[2] <= 30, learned.tolist()
    assert kept[4] >= 8 and kept[2] >= 1.5 * learned[2], (kept.tolist(), learned.tolist())


def _found_within_an_hour(bank: PoissonCusumBank, seed: int) -> int:
    """Of 300 series at 0.3-5 req/s on the fleets' sine day, how many find a -30% drop of two hours that starts at a
    random time of their second day within an hour of its start."""
    rng = np.random.default_rng(seed)
    rates, phase = 0.3 * (5 / 0.3) ** rng.random(300), rng.uniform(0, 2 * np.pi, 300)
    start = rng.uniform(30 * 3600, 44 * 3600, 300)
    found = np.zeros(300, dtype=bool)
    for w in range(int(47 * 3600 / WINDOW_S)):
        t = w * WINDOW_S
        during = (t >= start) & (t < start + 7200)
        lam = rates * daily_factor(0.6, phase, START_MS + t * 1000) * np.where(during, 0.7, 1.0) * WINDOW_S
        ev = bank.score_learn(np.arange(300), rng.poisson(lam).astype(float), np.full(300, START_MS + t * 1000),
                              WINDOW_S, H, H / 2)
        found |= (ev.cusum >= H) & (ev.kind == 0) & during & (t < start + 3600)
    return int(np.count_nonzero(found))


def test_on_a_sine_day_a_thirty_percent_drop_is_found_about_as_often() -> None:
    # A sine's half hours stand within their noise of its hours and it bends gently: the null barely widens. 206 found
    # with the hours alone, 205 with the half hours and the bend; with the bend's noise gate at one standard error
    # (``bend_z`` 1) 199, without it (0) 181.
    with_half_hours = _found_within_an_hour(PoissonCusumBank(min_windows=10), seed=11)
    hours_alone = _found_within_an_hour(PoissonCusumBank(min_windows=10, half_hour_z=np.inf, bend=0.0), seed=11)
    assert with_half_hours >= 0.95 * hours_alone, (with_half_hours, hours_alone)


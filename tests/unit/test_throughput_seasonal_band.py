"""From the second day the throughput null is widened by the seasonal factors' own uncertainty
(``PoissonCusumBank``'s ``seasonal_z``, its docstring): an hour factor of a sparse series rests on a few dozen
events after a day, and the CUSUMs read its error as a lasting bias; and a sparse series' hour factors' prior from
their own spread (``spread_z``), where a prior of a visit is the bias itself. Synthetic Poisson windows of 60 s on a
daily sine of amplitude 0.6 (trough a quarter of the peak; 0.95, nights at 5% of the mean, where said), every time
zone, seeded."""

from __future__ import annotations

import numpy as np

from modelmedic.detectors import PoissonCusumBank
from modelmedic.detectors.sequential import RESET, threshold_for

WINDOW_S = 60.0
H = threshold_for(WINDOW_S, 1e-4)
MONDAY_MS = 1_767_571_200_000
DAY_S = 86_400.0


def _episodes_after_the_first_day(bank: PoissonCusumBank, rates: np.ndarray, seed: int, days: int,
                                  amplitude: float = 0.6) -> np.ndarray:
    """Per series, the drop episodes (the statistic at ``h``, until it falls under ``RESET h``) after its first day."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, rates.size)
    slots, episodes, on = np.arange(rates.size), np.zeros(rates.size, dtype=int), np.zeros(rates.size, dtype=bool)
    for w in range(int(days * DAY_S / WINDOW_S)):
        t_s = w * WINDOW_S
        lam = rates * (1.0 + amplitude * np.sin(2 * np.pi * t_s / DAY_S + phase)) * WINDOW_S
        ev = bank.score_learn(slots, rng.poisson(lam).astype(float), np.full(rates.size, MONDAY_MS + t_s * 1000),
                              WINDOW_S, H, H / 2)
        drop = (ev.cusum >= H) & (ev.kind == 0)
        episodes += drop & ~on & (t_s >= DAY_S)
        on = drop | (on & (ev.cusum >= RESET * H))
    return episodes


def test_the_second_and_third_days_of_sparse_series_are_not_drops() -> None:
    # 0.01-0.1 req/s, log-uniform. Without the band (seasonal_z=0) 117 of the 200 raised a drop (221 episodes) on
    # 3cf4e2f; 78 (116) once the factors learned against the season's level, 44 (55) with the second day's prior of a
    # quarter visit: better factors leave the band less to do, but the law still shows it. With the hour factors'
    # prior from their own spread (``spread_z``, the next test) 11 without the band, and 13 (20) once the day
    # factors were interpolated between noons: the premise is measured with the prior of a visit (42 there). 0 either
    # way with the band.
    rates = 0.01 * 10 ** np.random.default_rng(1).random(200)
    widened = _episodes_after_the_first_day(PoissonCusumBank(min_windows=10), rates, seed=2, days=3)
    assert np.count_nonzero(widened) <= 10, rates[widened > 0].round(3).tolist()
    plain = _episodes_after_the_first_day(PoissonCusumBank(min_windows=10, seasonal_z=0.0, spread_z=0.0), rates,
                                          seed=2, days=3)
    assert np.count_nonzero(plain) >= 30, "the law no longer shows what the band is for"


def test_a_sparse_series_whose_nights_are_near_zero_is_not_a_drop_after_its_first_day() -> None:
    # Nights at 5% of the day's mean (amplitude 0.95): with the hour factors' prior a visit at the level, a night's
    # factor after one visit was about halfway to 1, ten times the night's rate, and a level of hours' memory could
    # not make that up: 101 of these 200 series raised a drop (143 episodes) on their second and third days. With
    # the prior from the factors' own spread (``spread_z``) where the level's memory is too long to follow the day,
    # 6 (8); 8 (10) with it at every rate; another draw (seed 3): 104 -> 8. With the day factors interpolated
    # between noons (docs/detection.md, "Weekends") 17 (20), 94 (142) with a visit's prior: a day factor learned
    # in the first day reached into the second; they learn from the second day (28 where they learned on the first).
    rates = 0.01 * 10 ** np.random.default_rng(1).random(200)
    spread = _episodes_after_the_first_day(PoissonCusumBank(min_windows=10), rates, seed=2, days=3, amplitude=0.95)
    assert np.count_nonzero(spread) <= 25, rates[spread > 0].round(3).tolist()
    visit = _episodes_after_the_first_day(PoissonCusumBank(min_windows=10, spread_z=0.0), rates, seed=2, days=3,
                                          amplitude=0.95)
    assert np.count_nonzero(visit) >= 60, "the law no longer shows what the spread's prior is for"

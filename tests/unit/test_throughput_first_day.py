"""The throughput drop test on a series' first day, before its hour-of-day factors are learned.

Until then the expected rate is the level, an EWMA that trails the daily cycle: on a fleet whose
nightly trough is a quarter of its peak it was up to 0.68x behind the afternoon decline, past the
0.72x the drop CUSUM tolerates, and the first afternoon paged as a drop (four false pages in a
20-model day of ``load/detection_harness.py``). The bank now tests the drop against the lower end
of the level and its trend forecast (``PoissonCusumBank``'s docstring). Synthetic Poisson windows,
seeded: the bank before that raised 16 false drops over the 200 series of the first test (0.05-0.54
req/s, 4-18 h into the day), and found the halvings of the second in 60-300 s (now 120-480 s: it no
longer counts the decline as evidence; at 0.5 req/s about 340 s is what the data allow).
"""

from __future__ import annotations

import numpy as np
import pytest

from batches import batched
from modelmedic.detectors import PoissonCusumBank
from modelmedic.detectors.sequential import threshold_for

WINDOW_S = 60.0
H = threshold_for(WINDOW_S, 1e-4)
MONDAY_MS = 1_767_571_200_000
DAY_S = 86_400.0


def _diurnal(rates: np.ndarray, phase: np.ndarray, t_s: float) -> np.ndarray:
    """The expected count of a window: a daily sinusoid of amplitude 0.6 (trough a quarter of the peak)."""
    return rates * (1.0 + 0.6 * np.sin(2 * np.pi * t_s / DAY_S + phase)) * WINDOW_S


def _first_drop_s(rates: np.ndarray, phase: np.ndarray, seed: int, hours: float,
                  drop_at_s: float = np.inf, ratio: float = 1.0) -> np.ndarray:
    """Seconds of event time at which each series' drop CUSUM first reached ``h`` (NaN: never)."""
    rng = np.random.default_rng(seed)
    bank, slots = PoissonCusumBank(min_windows=10), np.arange(rates.size)
    first = np.full(rates.size, np.nan)
    for w in range(int(hours * 3600 / WINDOW_S)):
        t_s = w * WINDOW_S
        lam = _diurnal(rates, phase, t_s) * (ratio if t_s >= drop_at_s else 1.0)
        ev = bank.score_learn(slots, rng.poisson(lam).astype(float), np.full(rates.size, MONDAY_MS + t_s * 1000),
                              WINDOW_S, H)
        fired = (ev.cusum >= H) & (ev.kind == 0) & np.isnan(first)
        first[fired] = t_s
    return first


def _false_drops(draw: int, seed: int, hours: float) -> list[float]:
    """The rates of 200 healthy diurnal series (0.05-5 req/s, log-uniform; every time zone: each series' decline
    at another hour) that raised a drop within ``hours`` of 60 s windows."""
    rng = np.random.default_rng(draw)
    rates = 0.05 * 100 ** rng.random(200)
    phase = rng.uniform(0, 2 * np.pi, rates.size)
    first = _first_drop_s(rates, phase, seed=seed, hours=hours)
    return rates[~np.isnan(first)].round(3).tolist()


def test_the_first_days_daily_decline_is_not_a_drop() -> None:
    assert _false_drops(11, 12, 24) == []


def test_a_halving_in_the_steepest_first_day_decline_is_still_found() -> None:
    # Noon is where each series declines fastest (sin -0.6, falling): the level lags most there.
    rates = np.geomspace(0.5, 5.0, 20)
    phase = np.full(rates.size, np.arcsin(0.6))  # at noon the angle is pi + arcsin 0.6
    noon = 12 * 3600.0
    first = _first_drop_s(rates, phase, seed=13, hours=13, drop_at_s=noon, ratio=0.5)
    delay = first - noon
    assert (delay >= 0).all() and (delay <= 900).all(), delay.tolist()


def _drop_statistic(rates: np.ndarray, phase: np.ndarray, seed: int, hours: float, drop_at_s: float,
                    drop_end_s: float, ratio: float, window_s: float, swing: float = 0.6,
                    drops: tuple[np.ndarray, float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each series' drop statistic per window (rows) and the window start times (s); ``swing``: the daily
    sine's amplitude; ``drops``: (each series' start, duration, ratio), a drop per series at its own time."""
    rng = np.random.default_rng(seed)
    h = threshold_for(window_s, 1e-4)
    bank, slots = PoissonCusumBank(min_windows=10), np.arange(rates.size)
    times = np.arange(0.0, hours * 3600, window_s)
    out = np.zeros((times.size, rates.size))
    for w, t_s in enumerate(times):
        lam = rates * (1.0 + swing * np.sin(2 * np.pi * t_s / DAY_S + phase)) * window_s
        lam = lam * (ratio if drop_at_s <= t_s < drop_end_s else 1.0)
        if drops is not None:
            lam = np.where((drops[0] <= t_s) & (t_s < drops[0] + drops[1]), lam * drops[2], lam)
        ev = bank.score_learn(slots, rng.poisson(lam).astype(float), np.full(rates.size, MONDAY_MS + t_s * 1000),
                              window_s, h, h / 2)
        out[w] = np.where(ev.kind == 0, ev.cusum, 0.0)
    return out, times


def test_a_first_day_drop_in_the_decline_is_one_episode() -> None:
    # Two hours at 0.7x from 10:30 on the first day, the models in their decline (as model-002 of the
    # 20-model day, 4.15 req/s): the level, learning ten times slower under suspicion, stayed where the
    # cycle had been, and the decline after the drop ended was a second drop (two pages). 1 s windows, four draws.
    # Found in 24 of 24 with the level's memory at an hour; at half an hour 18 (2026-12-05: deep daily cycles,
    # docs/detection.md: the shorter memory absorbs more of a -30% drop before the chart's suspicion slows it).
    rates = np.geomspace(1.0, 5.0, 6)
    phase = np.full(rates.size, 1.0)
    start, end = 10.5 * 3600, 12.5 * 3600
    h = threshold_for(1.0, 1e-4)
    found, again = 0, []
    for seed in (14, 114, 214, 314):
        drop, times = _drop_statistic(rates, phase, seed=seed, hours=16, drop_at_s=start, drop_end_s=end, ratio=0.7,
                                      window_s=1.0)
        during, after = drop[(times >= start) & (times < end)], drop[times >= end]
        assert (drop[times < start] < h).all()
        found += int((during >= h).any(axis=0).sum())
        # After it ends the statistic comes down and stays down: no second episode of the same drop.
        ended = np.argmax(after < 0.75 * h, axis=0)
        again += [(seed, round(end / 3600 + (int(np.argmax(after[ended[i]:, i] >= h)) + ended[i]) / 3600, 2))
                  for i in range(rates.size) if (after[ended[i]:, i] >= h).any()]  # hours of day
    assert found >= 18 and again == [], (found, again)


def test_a_thirty_percent_drop_is_found_from_the_second_day() -> None:
    # From the second day the small-drop CUSUM (0.7x) runs: -30% at 1-5 req/s (no daily cycle, so its null
    # is the level alone), found within 1,200 s (a third of the harness's deadline; the data allow 82-409 s
    # on average), where the 0.5x CUSUM alone drifts down and never fires. Six draws (120 series): 2 later than
    # 1,200 s (one never) with the level's memory at an hour, 4 (three never) at half an hour (2026-12-05).
    rates = np.geomspace(1.0, 5.0, 20)
    start = 30 * 3600.0
    h = threshold_for(60.0, 1e-4)
    late, delays = 0, []
    for seed in range(16, 22):
        drop, times = _drop_statistic(rates, np.zeros(rates.size), seed=seed, hours=32, drop_at_s=start,
                                      drop_end_s=np.inf, ratio=0.7, window_s=60.0, swing=0.0)
        assert (drop[times < start] < h).all()
        found = np.where((drop >= h).any(axis=0), times[np.argmax(drop >= h, axis=0)] - start, np.inf)
        late += int((found > 1200).sum())
        delays += found.tolist()
    assert late <= 4 and np.median(delays) <= 300, (late, delays)


def test_the_second_days_cycle_is_not_a_drop() -> None:
    assert _false_drops(17, 18, 48) == []


@pytest.mark.parametrize("draw, seed, hours", [(17, 19, 48), (21, 22, 26)])
def test_healthy_diurnal_series_in_ten_second_windows_raise_no_drop(draw: int, seed: int, hours: float) -> None:
    # The deep-drop CUSUM (0.25x, at h + ln 4) drifts up on any dip below 0.54x: over two days of 10 s windows
    # (the harness's resolution) it stays under its threshold on 200 healthy diurnal series, as the others do. So
    # does the small-drop CUSUM on the first day at 1.75x its threshold; at its second day's threshold it fired on
    # the first day of two of the second draw's series (and of 6 of 600 such series in 60 s windows, three seeds;
    # 9 of 600 in 1 s windows).
    rng = np.random.default_rng(draw)
    rates = 0.05 * 100 ** rng.random(200)
    phase = rng.uniform(0, 2 * np.pi, rates.size)
    drop, _ = _drop_statistic(rates, phase, seed=seed, hours=hours, drop_at_s=np.inf, drop_end_s=np.inf, ratio=1.0,
                              window_s=10.0)
    h = threshold_for(10.0, 1e-4)
    assert (drop < h).all(), f"false drops at rates {rates[(drop >= h).any(axis=0)].round(3).tolist()}"


@pytest.mark.parametrize(("table", "kept"), [("_deep", 0), ("_quick", 0), ("_block", 0), ("_season_level", 0),
                                            ("_block", 6), ("_season_level", 2), ("_season_level", 3), ("_f", 11)])
def test_a_snapshot_from_before_a_table_restores_with_it_at_zero(table: str, kept: int) -> None:
    # Snapshots before the deep-drop CUSUM have no ``_deep``, those before the quick level no ``_quick``, those before
    # the wander no ``_block``, those before the season's level no ``_season_level``, those before the wander's shadow
    # only ``_block``'s first 6 columns, those before the week's level ``_season_level``'s first 2, those before the
    # level's restart after a first-day drop its first 3, those before the recent level ``_f``'s first 11: such a
    # series restores with what is missing at 0 (for the quick, the season's and the recent level: the level, until it
    # learns; for the week's level: the season's) and then judges as a bank whose table is at 0 there, window for window.
    rng = np.random.default_rng(20)
    bank, slots = PoissonCusumBank(min_windows=10), np.arange(4)
    for w in range(200):
        bank.score_learn(slots, rng.poisson(0.2 * WINDOW_S, 4).astype(float), np.full(4, MONDAY_MS + w * 60_000),
                         WINDOW_S, H)
    rows = bank.rows(slots)
    old = {name: value[:, :kept] if name == table else value for name, value in rows.items() if name != table or kept}
    restored, reference = PoissonCusumBank(min_windows=10), PoissonCusumBank(min_windows=10)
    restored.set_rows(slots, old)
    zeroed = np.zeros_like(rows[table])
    if kept:
        zeroed[:, :kept] = rows[table][:, :kept]
    reference.set_rows(slots, {**rows, table: zeroed})
    for w in range(200, 230):  # a -90% drop: the deep CUSUM's own evidence
        x = rng.poisson(0.02 * WINDOW_S, 4).astype(float)
        t = np.full(4, MONDAY_MS + w * 60_000)
        got, want = restored.score_learn(slots, x, t, WINDOW_S, H), reference.score_learn(slots, x, t, WINDOW_S, H)
        assert np.array_equal(got.cusum, want.cusum) and np.array_equal(got.since_ms, want.since_ms)
    assert (got.cusum >= H).all()


def _first_day_drops(window_s: float) -> np.ndarray:
    """40 series at 0.3-3 req/s (log-uniform), every phase of the day, each losing 30% of its traffic for two
    hours from a random time 3-20 h into its first day: each one's delay to its first drop alarm (inf: none
    within the two hours)."""
    rng = np.random.default_rng(7)
    rates = 0.3 * 10 ** rng.random(40)
    phase = rng.uniform(0, 2 * np.pi, rates.size)
    at = rng.uniform(3, 20, rates.size) * 3600
    drop, times = _drop_statistic(rates, phase, seed=8, hours=23, drop_at_s=0.0, drop_end_s=0.0, ratio=1.0,
                                  window_s=window_s, drops=(at, 7200.0, 0.7))
    h = threshold_for(window_s, 1e-4)
    fired = (drop >= h) & (times[:, None] >= at) & (times[:, None] < at + 7200.0)
    return np.where(fired.any(axis=0), times[np.argmax(fired, axis=0)] + window_s - at, np.inf)


def test_a_thirty_percent_drop_on_the_first_day_is_found_within_its_deadline_on_most_of_the_series() -> None:
    # The small-drop CUSUM runs on the first day at 1.75x its threshold, and on a rise the drops' reference is
    # raised towards the level's forecast as far as the quick level's goes: 24 of these 40 within 3,600 s and 18
    # within 1,200 s (27 and 19 before the wander was in use wherever it is heard over the noise: on a first day its
    # v also holds the null's own error, and a wider null finds fewer -30% drops; 26 and 19 with wander_over_noise 2;
    # 29 and 21 with session 17's code, whose first-day wander was in use from 3.3 req/s, not 1.67;
    # 21 and 15 with the level alone as the rise's reference, before 2026-12-03's afternoon; 15 and 12 with the small
    # CUSUM off on the first day, as before that morning). With the level's memory at half an hour (2026-12-05: deep
    # daily cycles, docs/detection.md) 20 and 18; over four draws of this law 81 and 67 of 160, where an hour's
    # memory found 93 and 73.
    delay = _first_day_drops(10.0)
    assert np.sum(delay <= 3600) >= 20 and np.sum(delay <= 1200) >= 17, delay.round().tolist()


def test_a_level_catching_up_after_a_suspicion_is_not_read_as_a_rise() -> None:
    # Another draw of the first test's law in 60 s windows. A 0.092 req/s series' level, held for hours by a
    # surge's suspicion on its morning rise, catches up after it; its twice- and thrice-smoothed levels read
    # that as a rise (lag 1.27 in its afternoon decline), and a reference raised towards that forecast was
    # 1.1x of the rate: a false drop at 20.3 h. The raise waits until the level is less than CAUGHT_UP
    # memories behind.
    assert _false_drops(31, 32, 26) == []


@pytest.mark.parametrize("day, before", [(0, 57), (1, 99)])
def test_a_surge_that_ended_is_not_read_as_a_drop(day: int, before: int) -> None:
    # 200 healthy diurnal series (0.05-5 req/s), each with a x3 surge of an hour at its own time of the first or the
    # second day. A level that learned the surge, even ten times slower under its suspicion, stood 1.2-1.6x above the
    # rate when it ended, and the model's own rate read as a drop (``before`` of these series; the 200-model day's
    # model-099): the level now learns no more than the surge's ceiling while it is suspected.
    rng = np.random.default_rng(41)
    rates, phase = 0.05 * 100 ** rng.random(200), rng.uniform(0, 2 * np.pi, 200)
    starts = rng.uniform(4 * 3600, 18 * 3600, rates.size) + day * DAY_S
    drop, times = _drop_statistic(rates, phase, seed=42, hours=24 * (day + 1), drop_at_s=np.inf, drop_end_s=np.inf,
                                  ratio=1.0, window_s=60.0, drops=(starts, 3600.0, 3.0))
    after = (drop >= H) & (times[:, None] >= starts + 3600.0)
    assert after.any(axis=0).sum() <= 1, rates[after.any(axis=0)].round(3).tolist()


def test_a_lasting_rise_is_not_followed_by_a_drop() -> None:
    # Traffic tripling for good at 6 h of the first day (a flat rate, 1-100 req/s). The surge episode ends once the
    # hour's rate has learned it, and the level, held ten times slower by the suspicion, catches up: its twice- and
    # thrice-smoothed levels read that catch-up as a rise of 1.36x a memory, and a drop reference raised by it (to
    # the power of the memories the level had fallen behind) stood 1.2-3x above the rate: a drop from about 16 h on,
    # for the rest of the day (every rate here on 6ccfab2; 3 req/s and up on a3aa989). The smoothings now move with
    # the level until it has caught up.
    rates = np.geomspace(1.0, 100.0, 12)
    start = np.full(rates.size, 6 * 3600.0)
    drop, times = _drop_statistic(rates, np.zeros(rates.size), seed=43, hours=40, drop_at_s=np.inf,
                                  drop_end_s=np.inf, ratio=1.0, window_s=60.0, swing=0.0,
                                  drops=(start, np.inf, 3.0))
    assert (drop < H).all(), rates[(drop >= H).any(axis=0)].round(1).tolist()


def _batched_false_drops(level_z: float, seed: int) -> int:
    """How many of 200 healthy series at 0.1-1 req/s (log-uniform), their requests in batches of two on average
    (Poisson batches of geometric size, as ``load/fleet.py``'s ``rough()``), raised a drop in their first hour
    of 1 s windows."""
    rng = np.random.default_rng(seed)
    rates = 0.1 * 10 ** rng.random(200)
    bank, slots, h = PoissonCusumBank(level_z=level_z), np.arange(rates.size), threshold_for(1.0, 1e-4)
    fired = np.zeros(rates.size, dtype=bool)
    for w in range(3600):
        x = batched(rng, rng.poisson(rates / 2.0))
        ev = bank.score_learn(slots, x, np.full(rates.size, MONDAY_MS + w * 1000), 1.0, h)
        fired |= (ev.cusum >= h) & (ev.kind == 0)
    return int(fired.sum())


def test_a_level_learned_from_a_few_batched_requests_is_not_trusted_as_the_rate() -> None:
    # A level taken from a first minute of batches is several standard errors off the rate, and the drop charts read
    # that as a lasting deficit: 7 of these 800 series paged with the band off (level_z=0), 1 with it (the rough
    # 200-model fleet's model-172, 0.30 req/s, paged from its third minute before the band).
    with_band = sum(_batched_false_drops(2.0, seed) for seed in (1, 2, 3, 4))
    without = sum(_batched_false_drops(0.0, seed) for seed in (1, 2, 3, 4))
    assert with_band <= 1 and without >= 5, (with_band, without)


def _surges_after_a_drop(seed: int, window_s: float = 10.0) -> list[float]:
    """200 diurnal series (0.05-5 req/s, log-uniform, every phase), each losing 90% of its traffic for an hour from a
    random time 4-20 h into its first day: the rates of those whose surge CUSUM crossed its threshold more than 900 s
    (the harness's grace) and less than 6 h after the drop ended."""
    rng = np.random.default_rng(seed)
    rates, phase = 0.05 * 100 ** rng.random(200), rng.uniform(0, 2 * np.pi, 200)
    start = rng.uniform(4, 20, rates.size) * 3600
    bank, slots, h = PoissonCusumBank(), np.arange(rates.size), threshold_for(window_s, 1e-4)
    surged = np.zeros(rates.size, dtype=bool)
    for t_s in np.arange(0.0, 32 * 3600.0, window_s):
        lam = rates * (1.0 + 0.6 * np.sin(2 * np.pi * t_s / DAY_S + phase)) * window_s
        lam = np.where((start <= t_s) & (t_s < start + 3600), 0.1 * lam, lam)
        ev = bank.score_learn(slots, rng.poisson(lam).astype(float), np.full(rates.size, MONDAY_MS + t_s * 1000),
                              window_s, h, h / 2)
        after = (t_s >= start + 3600 + 900) & (t_s < start + 3600 + 6 * 3600)
        surged |= (ev.cusum >= h) & (ev.kind == 1) & after
    return rates[surged].round(3).tolist()


def test_the_traffic_coming_back_after_a_first_day_drop_is_not_a_surge() -> None:
    # The level stood where it was at the drop's onset through the drop's suspicion, and on the first day no factor
    # tells how far the day moved meanwhile: when the traffic came back, a morning's rise read as a surge, often
    # hours later at low rates (the 40-model fleet `--seed 6 --seasonality 0.8` paged for model-027 that way). The
    # level now restarts once such a drop ends: 23 of these series -> 5, all under 0.1 req/s (another draw: 19 -> 6;
    # in a scratch law of 1 s windows, each such series' drop had not crossed its threshold: nothing restarted).
    surged = _surges_after_a_drop(81)
    assert len(surged) <= 6 and max(surged, default=0.0) < 0.1, surged

"""The banks' native recursion (``native/src/banks.rs``) against the numpy code it replaced, bit for bit.

The reference below is ``detectors/sequential.py``'s numpy recursion as it was before it moved to Rust
(f6672ac), unchanged but for its docstrings: each bank and its reference twin step the same seeded windows
(``load/bank_fingerprint.py``'s: sparse and busy series, drops, surges, error and tail bursts, latency steps
and a creep, series missing from windows, tail resets), and every field of every ``Evidence`` and the final state
must be the same bytes. numpy's SIMD ``log``, ``exp``, ``expm1`` and ``pow`` differ from the C library's in the
last bit for a few percent of arguments, so the native code leaves them to numpy; a bank that computed one
itself would fail here within a few windows.
"""

from __future__ import annotations

import numpy as np
import pytest

from load.bank_fingerprint import EVERY, synthetic_windows
from modelmedic.detectors import sequential
from modelmedic.detectors.sequential import (CAP, CAUGHT_UP, MAX_BAND, PEARSON_KEPT, SLOWDOWN, STALE, SURGE_CLIPPED, SUSPICION,
                                             BernoulliCusumBank, Evidence,
                                             LatencyCusumBank, PoissonCusumBank, TailCusumBank)

_BIAS, _GAP, _LAW_MAX = sequential._BIAS, sequential._GAP, sequential._LAW_MAX
_clip = np.clip
SHADOW_CROSSED, SHADOW_DROPPED = 2.0, 3.0
"""``native/src/banks.rs``: the wander shadow's state (``_block``'s last column) once the series crossed its threshold,
and once its halving's or deep drop chart did."""


def _rate(share: np.ndarray, elapsed_s: np.ndarray | float, tau_s: np.ndarray | float, suspect: np.ndarray) -> np.ndarray:
    a = -np.expm1(-elapsed_s / (tau_s * np.where(suspect, SLOWDOWN, 1.0)))
    return np.where(suspect, a, np.maximum(a, share))



def _median_law(n: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = np.minimum(n, _LAW_MAX).astype(np.int64)
    return _BIAS[m], np.pi / (2.0 * (np.maximum(n, 1.0) + np.pi / 2 - 1.0)), _GAP[m]



def _upward(prev: np.ndarray, since: np.ndarray, since_x: np.ndarray, since_n: np.ndarray, r: np.ndarray,
            v: np.ndarray, d: float, h: float, max_step: float, served: np.ndarray, warm: np.ndarray, t_ms: np.ndarray,
            count: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    step = np.minimum((d * r - 0.5 * d * d) / v, max_step) * served
    s = _clip(prev + step, 0.0, CAP * h) * warm
    fresh = (prev <= 0) & served
    return s, np.where(fresh, t_ms, since), since_x * ~fresh + count * x, since_n * ~fresh + count



def _buckets(t_ms: np.ndarray, span_ms: float, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two buckets of a cycle each time lies between (each centred on the middle of its span) and the second
    one's weight."""
    u = t_ms / span_ms - 0.5
    below = np.floor(u)
    first = (below % n).astype(np.int64)
    return first, (first + 1) % n, u - below


def _interpolated(obs: np.ndarray, exp: np.ndarray, slots: np.ndarray, between: tuple, k: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The observed counts and the shrinkage factors of two buckets, each interpolated."""
    b0, b1, w = between
    o0, o1 = obs[slots, b0], obs[slots, b1]
    f0, f1 = ((obs[slots, b] + k) / (exp[slots, b] + k) for b in (b0, b1))
    return o0 + w * (o1 - o0), f0 + w * (f1 - f0)


def _learn_between(obs: np.ndarray, exp: np.ndarray, slots: np.ndarray, between: tuple, learn: np.ndarray,
                   forget: float, x: np.ndarray, base: np.ndarray, factor: np.ndarray) -> None:
    """Two buckets learn a window in their shares, and forget in the same shares."""
    b0, b1, w = between
    for b, part in ((b0, 1.0 - w), (b1, w)):
        keep = 1.0 - part * learn * forget
        obs[slots, b] = obs[slots, b] * keep + part * x * learn
        exp[slots, b] = exp[slots, b] * keep + part * base * factor


class NumpyPoisson(PoissonCusumBank):
    def _spread_prior(self, obs: np.ndarray, exp: np.ndarray, phi: np.ndarray) -> np.ndarray:
        so, se, oo, se2, seen = (np.zeros(len(obs)) for _ in range(5))
        for b in range(obs.shape[1]):  # in the native code's order, so the sums are its own
            o, e = obs[:, b], exp[:, b]
            on = e > 0
            so, se, seen = so + np.where(on, o, 0.0), se + np.where(on, e, 0.0), seen + on
            oo, se2 = oo + np.where(on, o * o / np.where(on, e, 1.0), 0.0), se2 + np.where(on, e * e, 0.0)
        ok = (seen >= 2) & (so > 0)
        m = so / np.where(ok, se, 1.0)
        noise = m * phi
        with np.errstate(divide="ignore", invalid="ignore"):
            between = ((oo - m * so - (seen - 1.0) * noise - self.spread_z * np.sqrt(2.0 * (seen - 1.0)) * noise)
                       / (se - se2 / se))
            return np.where(ok & (between > 0), m * m / between, np.inf)

    def _half_hours(self, obs: np.ndarray, exp: np.ndarray, slots: np.ndarray, halves: tuple, k_hour: np.ndarray,
                    f_hour: np.ndarray, phi: np.ndarray, seasoned: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The half-hour buckets' detail beyond noise, and how far the day may bend from their chord."""
        k = 0.5 * k_hour
        seen, f_half = _interpolated(obs, exp, slots, halves, k)
        d = f_half - f_hour
        shrunk = np.maximum(np.abs(d) - self.half_hour_z * f_half * np.sqrt(phi / (seen + k)), 0.0)
        f = np.where(seasoned, np.where(d < 0, f_hour - shrunk, f_hour + shrunk), f_hour)
        if self.bend <= 0:
            return f, np.zeros_like(f), np.zeros_like(f)
        b0, b1, w = halves
        around = [(b0 + 47) % 48, b0, b1, (b1 + 1) % 48]
        factor = [(obs[slots, b] + k) / (exp[slots, b] + k) for b in around]
        var = [fb * fb * phi / (obs[slots, b] + k) for fb, b in zip(factor, around)]
        second = [factor[j - 1] - 2.0 * factor[j] + factor[j + 1] for j in (1, 2)]
        se = [np.sqrt(var[j - 1] + 4.0 * var[j] + var[j + 1]) for j in (1, 2)]
        g = self.bend * w * (1.0 - w) / np.maximum(f_half, 1e-9)

        def reach(sign: float) -> np.ndarray:
            up0, up1 = (np.maximum(sign * d - self.bend_z * e, 0.0) for d, e in zip(second, se))
            return np.where(seasoned, np.minimum(g * np.maximum(up0, up1), MAX_BAND), 0.0)

        return f, reach(1.0), reach(-1.0)

    def score_learn(self, slots: np.ndarray, x: np.ndarray, t_ms: np.ndarray, window_s: float, h: float,
                    max_step: float = np.inf) -> Evidence:
        slots = self._prepare(slots)
        x, t_ms = np.asarray(x, dtype=np.float64), np.asarray(t_ms, dtype=np.float64)
        n, first, events, stored, phi, down_prev, up_prev, down_since, up_since, down_x, up_x = self._f[slots, :11].T
        recent_prev, recent_block, recent_v, recent_shadow = self._f[slots, 11:].T  # the recent level (since 33)
        phi = np.maximum(phi, 1.0)
        block = self._block[slots]
        hours, days = _buckets(t_ms, 3_600_000.0, 24), _buckets(t_ms, 21_600_000.0, 28)  # days: quarter days
        # Each bucket's prior is worth one visit of it (an hour, a day) at the current level, so a
        # bucket moves by at most half within its first visit, and an outage minutes old barely.
        first = np.where(n > 0, first, t_ms)
        age = t_ms - first
        seasoned = age >= 86_400_000  # the hour-of-day factors have seen a day
        # an hour bucket's prior: one visit, going down over the second day to later_prior
        later = np.minimum(np.maximum(age / 86_400_000.0 - 1.0, 0.0), 1.0)
        k_visit = np.maximum(self.prior_events, stored * 3600.0 * (1.0 - later * (1.0 - self.later_prior)))
        # The level remembers about tau_events events (at least tau_s): a drop must not be absorbed
        # before a sparse series has the events to show it. A memory much longer than tau_s cannot
        # follow a daily cycle, so such a series' drops are judged once its seasonal buckets had a day.
        tau = np.minimum(np.maximum(self.tau_s, self.tau_events / np.maximum(stored, 1e-9)), 7 * 86_400.0)
        sparse = _clip((tau - self.tau_s) / (self.judged_tau_s - self.tau_s), 0.0, 1.0)
        drawn = seasoned & (sparse > 0) & (self.spread_z > 0)

        def toward_spread(k: np.ndarray, obs: np.ndarray, exp: np.ndarray) -> np.ndarray:
            return np.where(drawn, k + sparse * (np.minimum(k, self._spread_prior(obs[slots], exp[slots], phi)) - k), k)

        hour_tables = self._hour_obs[:, :24], self._hour_exp[:, :24]  # then the day's 48 half hours
        half_tables = self._hour_obs[:, 24:], self._hour_exp[:, 24:]
        k_hour = toward_spread(k_visit, *hour_tables)
        k_day = toward_spread(np.maximum(self.prior_events, stored * 86_400.0),  # the week buckets: a day at the level
                              self._day_obs, self._day_exp)
        hour_obs, f_hour = _interpolated(*hour_tables, slots, hours, k_hour)
        halves = _buckets(t_ms, 1_800_000.0, 48)
        f_hour, bend_down, bend_up = self._half_hours(*half_tables, slots, halves, k_hour, f_hour, phi, seasoned)
        day_obs, f_day = _interpolated(self._day_obs, self._day_exp, slots, days, k_day)
        seasonal = np.where(seasoned, self.seasonal_z * np.sqrt(1.0 / (hour_obs + k_hour) + 1.0 / (day_obs + k_day)),
                            0.0)  # the factors' own uncertainty, once in use
        filling = np.where(events < self.tau_events, self.level_z * np.sqrt(phi / np.maximum(events, 1.0))
                           * (1.0 - events / self.tau_events), 0.0)  # the level's, while its memory fills
        band = np.minimum(np.maximum(seasonal, filling), MAX_BAND)
        warm_up = (n >= self.min_windows) & (events >= self.min_events)
        warm = warm_up & ((tau <= self.judged_tau_s) | seasoned)
        small, deep = self._small[slots].T, self._deep[slots].T
        drops_prev = np.array([[down_prev, small[0], deep[0]], [down_since, small[1], deep[1]],
                               [down_x, small[2], deep[2]]])  # (cusum, onset, requests since) x chart x series
        h_drops = h + self._drop_penalty  # three drop CUSUMs, one statistic's budget
        # Suspicion from the halving's and the small drop's CUSUMs only: a drop deep enough for the deep one
        # lifts the halving's past a third as well, while healthy dips lifting the deep one alone would
        # slow the level (one more false drop in 200 diurnal series over 48 h, 10 s windows).
        h_small = h_drops[1] * np.where(seasoned, 1.0, self.small_first_day)
        suspect_up = warm_up & (up_prev > SUSPICION * h)
        suspect = (warm & ((down_prev > SUSPICION * h_drops[0]) | (small[0] > SUSPICION * h_small))) | suspect_up
        # the return from a first-day drop that crossed a halving's or the deep chart's threshold: the level restarts
        restart = ~seasoned & (block[:, 8] == SHADOW_DROPPED) & (~suspect | (suspect_up & (down_prev <= SUSPICION * h_drops[0])))
        hold, holding = self._season_level[slots, 1], ~seasoned & suspect  # a first-day suspicion holds the season
        factors = f_hour * f_day
        season = np.where(holding & (hold > 0), hold, factors)
        rescale = np.where(~holding & (hold > 0), hold / factors, 1.0)  # once, when the hold ends: to the factors' units
        level = stored * rescale
        lam = np.maximum(level * season * window_s, 1e-12)
        # where a block expects wander_events requests (more on the first day), or where the wander's variance over a
        # block is at least wander_over_noise times its Poisson variance, the rate's own wander over a block
        gate = np.where(seasoned, self.wander_events, self.wander_events_first_day)
        expected = lam / window_s * self.block_s
        heard = (self.wander_over_noise > 0) & (np.maximum(block[:, 5], 0.0) * expected >= self.wander_over_noise * phi)
        judged = (self.block_s > 0) & ((expected >= gate) | heard)
        wander = np.where(judged, np.minimum(self.wander_z * np.sqrt(np.maximum(block[:, 5], 0.0)), MAX_BAND), 0.0)
        slow, behind = self._slow[slots] * rescale[:, None], self._behind[slots]
        fast = np.where(self._fast[slots] > 0, self._fast[slots] * rescale, level)  # 0: none yet (older snapshots)
        stored_slow = self._slow[slots]  # the ratio of the stored ones: the native code takes it before any rescaling
        lag = np.divide(stored_slow[:, 0], stored_slow[:, 1], out=np.ones(slots.size),
                        where=stored_slow[:, 1] > 0) ** (1.0 + behind)
        # On a rise the drops' reference is raised towards the level's forecast as far as the quick level's own
        # forecast goes, once the level has caught up with any suspicion.
        quick = np.where(self._quick[slots] > 0, self._quick[slots] * rescale, level)
        rq = np.divide(quick, level, out=np.ones(slots.size), where=level > 0)
        lower = np.minimum(lag, 1.0)
        raised = np.maximum(lower, np.minimum(lag, rq * lag ** self.quick_memory))
        lam_down = lam * np.where((self.quick_memory > 0) & (suspect | (behind < CAUGHT_UP)), raised, lower)
        rel = np.divide(fast, level, out=np.ones(slots.size), where=level > 0)
        lam_up = lam * self._surge_ceiling(rel, lag, tau, seasoned)
        wander_down = np.maximum(wander - np.maximum(1.0 - lam_down / lam, 0.0), 0.0)  # beyond the level's lag only
        wander_up = np.maximum(wander - np.maximum(lam_up / lam - 1.0, 0.0), 0.0)
        lam_drops = lam_down * (1.0 - band) * (1.0 - wander_down) * (1.0 - bend_down)
        # the recent level's reference where in use (stored, warm): the higher of the two lower ends
        stored_recent = recent_prev > 0
        recent = np.where(stored_recent, recent_prev * rescale, level)
        recent_v = np.where(stored_recent, recent_v, block[:, 5])
        lam_recent = np.divide(lam * recent, level, out=lam.copy(), where=level > 0)
        band_recent = self.wander_z * np.sqrt(np.maximum(recent_v, 0.0)
                                              + phi / np.maximum(2.0 * lam / window_s * self.recent_s, 1e-12))
        lam_drops = np.where((self.recent_s > 0) & warm & stored_recent & (band_recent < MAX_BAND),
                             np.maximum(lam_drops, lam_recent * (1.0 - band) * (1.0 - band_recent) * (1.0 - bend_down)),
                             lam_drops)
        drops = self._step_drops(drops_prev, x, lam_drops, phi, warm, h_small, ~seasoned & (behind > STALE), t_ms, h,
                                 max_step)
        drops[0] = np.where(restart, 0.0, drops[0])
        down, down_since, down_x = drops[:, 0]
        self._small[slots], self._deep[slots] = drops[:, 1].T, drops[:, 2].T
        lam_surge = lam_up * (1.0 + band) * (1.0 + wander_up) * (1.0 + bend_up)
        step_up = np.minimum((x * np.log(self.surge) - lam_surge * (self.surge - 1.0)) / phi, max_step)
        up = _clip(up_prev + step_up, 0.0, CAP * h) * (warm_up & ~restart)
        up_going = up_prev > 0
        up_since = np.where(up_going, up_since, t_ms)
        up_x = up_x * up_going + x

        # Learn: the level (deseasonalized rate), the overdispersion, the seasonal buckets.
        since_restart = np.where(restart, 0.0, self._season_level[slots, 3])
        share_level = np.maximum(1.0 / (n + 1.0), np.where(restart | (since_restart > 0), 1.0 / (since_restart + 1.0), 0.0))
        a = _rate(share_level, window_s, tau, suspect & ~restart)
        a_phi = _rate(1.0 / (n + 1.0), window_s, np.maximum(tau, self.dispersion_s), suspect)
        x_level = np.where(suspect_up & (behind < SURGE_CLIPPED) & ~restart, np.minimum(x, lam_up), x)  # the surge not learned
        new_level = level + a * (x_level / (season * window_s) - level)
        # The hour's rate learns ten times slower under any suspicion: learning a first-day drop at full speed, it
        # made the drop's hour the surge's reference.
        a_fast = _rate(share_level, window_s, self.tau_s, suspect & ~restart)
        self._fast[slots] = fast + a_fast * (x / (season * window_s) - fast)
        with np.errstate(divide="ignore"):  # quick_memory 0: off, the quick level is the last window's rate
            a_quick = _rate(share_level, window_s, tau * self.quick_memory, suspect & ~restart)
        self._quick[slots] = quick + a_quick * (x_level / (season * window_s) - quick)
        pearson = np.minimum((x - lam) ** 2 / lam, np.maximum(50.0, PEARSON_KEPT**2 / lam))
        new_phi = np.where(warm_up & ~restart, np.where(suspect & ~suspect_up, phi, phi + a_phi * (pearson - phi)),
                           phi)  # not a drop's
        held = suspect | (behind >= CAUGHT_UP)  # the smoothings keep the trend from before the suspicion
        moved = np.divide(new_level, level, out=np.ones(slots.size), where=level > 0)
        twice = np.where((slow[:, 0] > 0) & ~restart,
                         np.where(held, slow[:, 0] * moved, slow[:, 0] + a * (new_level - slow[:, 0])), new_level)
        thrice = np.where((slow[:, 1] > 0) & ~restart,
                          np.where(held, slow[:, 1] * moved, slow[:, 1] + a * (twice - slow[:, 1])), twice)
        self._slow[slots] = np.stack([twice, thrice], axis=1)
        self._behind[slots] = (behind + a * ((SLOWDOWN - 1.0) * suspect - behind)) * ~restart
        self._f[slots, :11] = np.stack([n + 1, first, np.where(restart, x, events + x), new_level, new_phi, down, up,
                                        down_since, up_since, down_x, up_x], axis=1)
        learn = (n >= self.min_windows) & ~suspect  # the buckets learn what the level does not explain
        # from the second day the half hours learn under a suspicion that has not crossed, at suspect_learning
        uncrossed = block[:, 8] < SHADOW_CROSSED  # no crossing in the current suspicion
        learn_halves = np.where(suspect & seasoned & uncrossed & (n >= self.min_windows), self.suspect_learning, learn)
        season_level = np.where(self._season_level[slots, 0] > 0, self._season_level[slots, 0], level)
        base = season_level * window_s  # the buckets learn against the season's level, not the level
        _learn_between(*hour_tables, slots, hours, learn, window_s / (self.hour_memory_days * 3600.0), x,
                       base * learn, f_day)
        _learn_between(*half_tables, slots, halves, learn_halves, window_s / (self.hour_memory_days * 1800.0), x,
                       base * learn_halves, f_day)
        week_level = np.where(self._season_level[slots, 2] > 0, self._season_level[slots, 2], season_level)
        # The week buckets: from day two, against the week's level; in the first week under a suspicion too, until
        # it crosses.
        open_ = (age < 7 * 86_400_000) & uncrossed
        learn_week = seasoned & (n >= self.min_windows) & (~suspect | open_)
        _learn_between(self._day_obs, self._day_exp, slots, days, learn_week,
                       window_s / (self.day_memory_weeks * 21_600.0), x, week_level * window_s * learn_week, f_hour)
        a_own = -np.expm1(-window_s / (tau * np.where(suspect, SLOWDOWN, 1.0)))  # the level's own rate
        a_season = np.maximum(window_s / (self.season_memory_s + window_s), 1.0 / (n + 1.0)) * learn
        a_week = np.maximum(window_s / (self.week_memory_s + window_s), 1.0 / (n + 1.0)) * learn
        self._season_level[slots] = np.stack([season_level + a_season * (x / (season * window_s) - season_level),
                                              np.where(holding, season, 0.0),
                                              week_level + a_week * (x / (f_hour * window_s) - week_level),
                                              np.where(restart | ((since_restart > 0) & (share_level > a_own)),
                                                       since_restart + 1.0, 0.0)], axis=1)

        # One drop statistic for the judge: the drop CUSUM furthest along, less its share of the budget.
        penalty = np.repeat(self._drop_penalty[:, None], slots.size, axis=1)
        penalty[1] = np.where(~seasoned & (h_small > 0), h_small - h, penalty[1])
        ahead = drops[0] - penalty
        lead = drops[1:, ahead.argmax(axis=0), np.arange(slots.size)]  # its onset and requests since
        drop = ahead.max(axis=0)
        surge = up > drop
        since = np.where(surge, up_since, lead[0])
        observed = np.where(surge, up_x, lead[1]) / ((t_ms - since) / 1000.0 + window_s)
        rising = (drop > (drops_prev[0] - penalty).max(axis=0)) | (up > up_prev)
        new_block = self._step_block(
            block, x, lam_down * (1.0 - band) * (1.0 - bend_down), lam_up * (1.0 + band) * (1.0 + bend_up), tau, phi,
            warm, suspect,
            np.where((ahead[0] >= h) | (ahead[2] >= h), SHADOW_DROPPED, np.where(np.maximum(drop, up) >= h, SHADOW_CROSSED, 0.0)),
            window_s)
        self._block[slots] = new_block
        # The recent level's v and shadow move as the level's; its block's expected count by it; then it learns.
        recent_shadow = np.where(warm & suspect & (block[:, 8] == 0), recent_v, recent_shadow)
        recent_v = np.where(warm & ~suspect & (block[:, 8] == 1), recent_shadow, recent_v)
        blocks = warm & (self.block_s > 0)
        expected_recent = np.where(blocks, recent_block + lam_recent, 0.0)
        closed = blocks & (new_block[:, 0] == 0)
        count, span = block[:, 1] + x, (block[:, 0] + 1.0) * window_s
        term = np.minimum(((count - expected_recent) ** 2 - phi * expected_recent) / np.maximum(expected_recent**2, 1e-12), 0.25)
        w = np.maximum(span / (tau + span), 1.0 / np.maximum(np.where(suspect, new_block[:, 7], new_block[:, 4]), 1.0))
        recent_shadow = np.where(closed & suspect, recent_shadow + w * (term - recent_shadow), recent_shadow)
        recent_v = np.where(closed & ~suspect, recent_v + w * (term - recent_v), recent_v)
        a_recent = _rate(share_level, window_s, self.recent_s, suspect & ~restart)
        x_recent = np.where(suspect_up & ~restart, np.minimum(x_level, lam_recent), x_level)  # a surge not learned
        self._f[slots, 11:] = np.stack([recent + a_recent * (x_recent / (season * window_s) - recent),
                                        np.where(closed, 0.0, expected_recent), recent_v, recent_shadow], axis=1)
        return Evidence(np.maximum(np.maximum(drop, up), 0.0), surge.astype(np.int8), since.astype(np.int64), observed,
                        np.where(surge, lam_up, lam_down) / window_s, warm_up, rising)

    def _step_drops(self, prev: np.ndarray, x: np.ndarray, lam: np.ndarray, phi: np.ndarray, warm: np.ndarray,
                    h_small: np.ndarray, stale: np.ndarray, t_ms: np.ndarray, h: float,
                    max_step: float) -> np.ndarray:
        h_each = (h + self._drop_penalty)[:, None]
        step = np.minimum((x * np.log(self._drops)[:, None] - lam * (self._drops - 1.0)[:, None]) / phi,
                          max_step * h_each / h)
        s = np.maximum(prev[0] + step, 0.0)
        cap = h_small + (CAP - 1.0) * h_each[1]
        left = stale & (prev[0][0] > SUSPICION * h_each[0])
        hold = np.where(s[0] > SUSPICION * h_each[0], h_small, np.where(left, SUSPICION * h_small, cap))
        s[1] = np.minimum(s[1], hold) * (warm & (h_small > 0))
        s[::2] = np.minimum(s[::2], CAP * h_each[::2]) * warm
        going = prev[0] > 0
        return np.array([s, np.where(going, prev[1], t_ms), prev[2] * going + x])

    def _step_block(self, b: np.ndarray, x: np.ndarray, lam_down: np.ndarray, lam_up: np.ndarray, tau: np.ndarray,
                    phi: np.ndarray, warm: np.ndarray, suspect: np.ndarray, crossing: np.ndarray,
                    window_s: float) -> np.ndarray:
        learn = warm & (self.block_s > 0)
        blocks, v = b[:, 4], b[:, 5]
        sv, sn, sx = b[:, 6:].T  # the shadow: its v, its blocks, its state (0 none, 1 on, 2 on and crossed, 3 dropped)
        onset = warm & suspect & (sx == 0)  # the shadow starts from v; its state is kept without blocks too
        sv, sn, sx = np.where(onset, v, sv), np.where(onset, blocks, sn), np.where(onset, 1.0, sx)
        sx = np.where(warm & suspect, np.maximum(sx, crossing), sx)
        ended = warm & ~suspect & (sx > 0)  # the shadow becomes v unless the series crossed its threshold in it
        taken = ended & (sx == 1)
        v, blocks = np.where(taken, sv, v), np.where(taken, sn, blocks)
        keep = warm & ~ended
        sv, sn, sx = (np.where(keep, z, 0.0) for z in (sv, sn, sx))
        windows, count, low, high = b[:, 0] + 1.0, b[:, 1] + x, b[:, 2] + lam_down, b[:, 3] + lam_up
        full = learn & ((windows * window_s >= self.block_s) | (0.5 * (low + high) >= self.block_events))
        end = np.where(count < low, low, np.where(count > high, high, 0.5 * (low + high)))
        dev = np.maximum(np.maximum(low - count, count - high), 0.0)  # beyond the null's ends only
        term = np.minimum((dev**2 - phi * end) / np.maximum(end**2, 1e-12), 0.25)
        span = windows * window_s
        into_shadow, into_v = full & suspect, full & ~suspect
        sv = np.where(into_shadow, sv + np.maximum(span / (tau + span), 1.0 / (sn + 1.0)) * (term - sv), sv)
        v = np.where(into_v, v + np.maximum(span / (tau + span), 1.0 / (blocks + 1.0)) * (term - v), v)
        summed = np.where(learn & ~full, 1.0, 0.0)[:, None] * np.stack([windows, count, low, high], axis=1)
        blocks = np.where(learn, blocks + into_v, blocks)
        return np.concatenate([summed, np.stack([blocks, v, sv, sn + into_shadow, sx], axis=1)], axis=1)

    def _surge_ceiling(self, fast: np.ndarray, lag: np.ndarray, tau: np.ndarray, seasoned: np.ndarray) -> np.ndarray:
        floor = np.where(seasoned, 1.0, np.minimum(fast, 1.0))
        return np.maximum(np.maximum(floor, lag), fast * lag ** (self.tau_s / tau))



class NumpyBernoulli(BernoulliCusumBank):
    def _judge_learn(self, slots: np.ndarray, errors: np.ndarray, requests: np.ndarray, t_ms: np.ndarray,
                     window_s: float, h: float, max_step: float) -> tuple[Evidence, np.ndarray]:
        slots = self._prepare(slots)
        e, m = np.asarray(errors, dtype=np.float64), np.asarray(requests, dtype=np.float64)
        t_ms = np.asarray(t_ms, dtype=np.float64)
        f, others = self._f[slots], self._charts[slots]
        seen, t, err, req = f[:, :4].T
        p0 = np.maximum((err + self.prior_rate * self.prior_requests) / (req + self.prior_requests), self.floor)
        excess, prior_err = np.maximum(f[:, 8], 0.0), self.prior_rate * self.prior_requests
        dispersion = 1.0 + excess / (err + prior_err)
        clumped = 1.0 + (excess + self.clump_prior * (self.clump_dispersion - 1.0)) / (err + prior_err + self.clump_prior)
        dispersion = np.where(self._DISPERSED & (e > 1), np.maximum(dispersion, clumped), dispersion)
        warm = seen >= self.min_requests
        s_prev = np.concatenate([f[:, 4:5], others[:, :, 0]], axis=1)
        reported_prev = np.maximum(np.maximum.reduce(s_prev - self._penalty, axis=1), 0.0)
        reported, since = np.zeros(slots.size), t_ms.copy()
        observed = np.divide(e, m, out=np.full(slots.size, np.nan), where=m > 0)
        # Only a series with errors now or a chart above 0 can move a chart (a window without errors only
        # lowers them), and a chart at 0 takes its onset and counts afresh from its next window: the others
        # (most series, most windows) are left as they are, which decides the same. When every series
        # moves (a busy fleet), a slice of all stands for their indices (no gathers).
        moved = np.flatnonzero((e > 0) | (np.maximum.reduce(s_prev, axis=1) > 0))
        if moved.size:
            rows = slice(None) if moved.size == slots.size else moved
            chart = self._step_charts(slots[rows], f[rows], others[rows], e[rows], m[rows], p0[rows], warm[rows],
                                      t_ms[rows], h, max_step, dispersion[rows])
            f[rows, 4:8] = chart[:, 0]
            ahead = chart[:, :, 0] - self._penalty
            lead = chart[np.arange(moved.size), ahead.argmax(axis=1)]
            reported[rows], since[rows] = np.maximum(np.maximum.reduce(ahead, axis=1), 0.0), lead[:, 1]
            observed[rows] = np.divide(lead[:, 2], lead[:, 3], out=np.full(moved.size, np.nan), where=lead[:, 3] > 0)

        # Pooled sums decayed by the event time since the series last had requests (a running sum
        # while warming up); under suspicion a window counts a tenth and the memory is ten times longer.
        served = m > 0
        slow = np.where(warm & (reported_prev > SUSPICION * h), SLOWDOWN, 1.0)
        elapsed = np.where(t > 0, (t_ms - t) / 1000.0, window_s)
        keep = np.where(warm & served, np.exp(-elapsed / (self.tau_s * slow)), 1.0)
        f[:, :4] = np.array([seen + m, np.where(served, t_ms, t), err * keep + e / slow, req * keep + m / slow]).T
        learn = self._DISPERSED & warm
        beyond = (e - m * p0) * (e - m * p0) - e
        fired, calm = reported >= h, np.maximum(reported_prev, reported) <= SUSPICION * h
        excess, pending = f[:, 8], f[:, 9]
        f[:, 8] = np.where(learn & ~fired & calm, excess * keep + (pending * keep + beyond), excess)
        f[:, 9] = np.where(learn, np.where(fired | calm, 0.0, pending * keep + beyond), pending)
        self._f[slots] = f
        return Evidence(reported, np.zeros(slots.size, dtype=np.int8), since.astype(np.int64), observed, p0, warm,
                        reported > reported_prev), reported_prev

    def _step_charts(self, slots: np.ndarray, f: np.ndarray, others: np.ndarray, e: np.ndarray, m: np.ndarray,
                     p0: np.ndarray, warm: np.ndarray, t_ms: np.ndarray, h: float, max_step: float,
                     dispersion: np.ndarray) -> np.ndarray:
        chart = np.concatenate([f[:, None, 4:8], others], axis=1)
        s_prev, since, since_err, since_req = chart.transpose(2, 0, 1)
        # ln(p1 / p0) per chart: k ln(ratio), up to the cap's (one log per series); ln((1 - p1) / (1 - p0)): one per chart.
        cap = 0.5 * (1.0 + p0)
        up = np.minimum(self._log_ratios, np.log(cap / p0)[:, None])
        down = np.log1p(-np.minimum(p0[:, None] * self._ratios, cap[:, None])) - np.log1p(-p0)[:, None]
        llr = e[:, None] * up + (m - e)[:, None] * down
        # Each CUSUM's threshold is h + its penalty: a window's most (h / trigger_windows in the judge) grows with
        # it, so a busy series still fires in trigger_windows windows. The dispersion divides the capped evidence.
        penalty = self._penalty
        step = np.minimum(llr, max_step * (1.0 + penalty / h)) / dispersion[:, None]
        s = _clip(s_prev + step, 0.0, CAP * h + penalty) * warm[:, None]
        going = s_prev > 0
        chart = np.array([s, np.where(going, since, t_ms[:, None]), since_err * going + e[:, None],
                          since_req * going + m[:, None]]).transpose(1, 2, 0)
        self._charts[slots] = chart[:, 1:]
        return chart


class NumpyTail(TailCusumBank):
    _judge_learn = NumpyBernoulli._judge_learn
    _step_charts = NumpyBernoulli._step_charts


class NumpyLatency(LatencyCusumBank):
    def score_learn(self, slots: np.ndarray, count: np.ndarray, p50: np.ndarray, p95: np.ndarray, t_ms: np.ndarray,
                    window_s: float, h: float, max_step: float = np.inf, log_ss: np.ndarray | None = None) -> Evidence:
        slots = self._prepare(slots)
        count, t_ms = np.asarray(count, dtype=np.float64), np.asarray(t_ms, dtype=np.float64)
        (n, req, t, mu, sig2, tau2, p95_usual, s_prev, since, since_x, since_n, rate, quiet,
         c_prev, c_since, c_x, c_n, mu_c, c_led, sig2_c, l_w, l_m, x_m, l_v, l_c) = self._f[slots].T
        served = count > 0
        # Net of what the load explains: the bank's own _load_shift (what quantile_ms adds), checked here against
        # the native code's.
        log_rate = np.log(np.maximum(rate, 1e-9))
        shift = self._load_shift(slots)
        raw = np.log(np.where(served, np.maximum(p50, 1e-3), 1.0))
        x = raw - shift
        x95 = np.log(np.where(served, np.maximum(p95, 1e-3), 1.0)) - shift
        warm = (req >= self.min_requests) & (n >= self.min_windows)
        bias, spread, gap = _median_law(count)
        sigma = np.sqrt(sig2)
        r = x - mu - sigma * bias
        v = np.maximum(sig2 * spread + np.maximum(tau2, 0.0), 1e-6)
        h_creep = h + np.log(2.0)
        s, since, since_x, since_n = _upward(s_prev, since, since_x, since_n, r, v, np.log(self.ratio), h, max_step,
                                             served, warm, t_ms, count, mu + r)
        r_c = x - mu_c - np.sqrt(sig2_c) * bias
        v_c = np.maximum(sig2_c * spread + np.maximum(tau2, 0.0), 1e-6)
        elapsed = np.where(n > 0, (t_ms - t) / 1000.0, window_s)  # since the last served window
        kept = c_prev * (1.0 + np.expm1(np.where(served, -elapsed / self.creep_memory_s, 0.0)))  # the creep's fades
        c, c_since, c_x, c_n = _upward(kept, c_since, c_x, c_n, r_c, v_c, np.log(self.creep_ratio), h_creep, max_step,
                                       served, warm, t_ms, count, mu_c + r_c)
        # Past a third of its h the step CUSUM has the change: the creep's stands down (it would take five
        # times as long to come back down and hold a step's episode open after the step ended). Unless the
        # creep's fired first (``c_led``, until it is back at 0): a creep lifts the step CUSUM past a third
        # of h long after, and handed to that statistic, under RESET, its episode ended and paged again.
        c_led = ((c_led > 0) | ((c >= h_creep) & (s <= SUSPICION * h))) & (c > 0)
        c = c * ((s <= SUSPICION * h) | c_led)

        # Learn where served: a requests-weighted running mean at first, then the event-time EWMA.
        suspect = warm & ((s_prev > SUSPICION * h) | (c_prev > SUSPICION * h_creep))
        a = _rate(count / np.maximum(req + count, 1.0), elapsed, self.tau_s, suspect) * served
        first = n == 0
        bound = 3.0 * np.sqrt(v)
        new_mu = np.where(first, x, mu + a * np.where(warm, _clip(r, -bound, bound), r))
        # A window stands for at most the time its requests take at the usual rate: back after an hour's
        # silence (a rolled-back release), one window of a few requests would otherwise weigh half of mu_c.
        stands_for = np.divide(count, rate, out=np.full(count.size, np.inf), where=rate > 0)
        a_c = _rate(count / np.maximum(req + count, 1.0), np.minimum(elapsed, stands_for), self.creep_tau_s,
                    suspect) * served
        bound_c = 3.0 * np.sqrt(v_c)
        new_mu_c = np.where(first, x, mu_c + a_c * np.where(warm, _clip(r_c, -bound_c, bound_c), r_c))
        # Within-window spread: p95 and p50 are the order statistics ceil(.95 n) and ceil(.5 n).
        several = count >= 2
        r2 = np.minimum(r * r, 9.0 * v)
        within = np.where(several, ((x95 - x) / np.maximum(gap, 1e-3)) ** 2, r2)
        prior = self.prior_sigma**2
        new_sig2 = np.where(first, np.where(several, within, prior),
                            sig2 + a * (np.minimum(within, 9.0 * np.maximum(sig2, prior)) - sig2))
        new_tau2 = np.where(first | ~several, tau2, tau2 + a * (r2 - sig2 * spread - tau2))
        new_p95 = np.where(first, x95, p95_usual + a * (x95 - p95_usual))
        # The creep chart's per-request variance: the unbiased sample variance of the window's log latencies
        # where it kept them, else as ``sig2`` (then it is ``sig2``, window for window).
        if log_ss is not None:
            within = np.where(several & np.isfinite(log_ss), log_ss / np.maximum(count - 1.0, 1.0), within)
        new_sig2_c = np.where(first, np.where(several, within, prior),
                              sig2_c + a * (np.minimum(within, 9.0 * np.maximum(sig2_c, prior)) - sig2_c))
        # The load's moments, from warm served windows: a running mean at first, then an EWMA of load_tau_s.
        learn_load = served & warm & (rate > 0) & (self.load_tau_s > 0)
        a_l = _rate(1.0 / (l_w + 1.0), elapsed, self.load_tau_s, suspect) * learn_load
        d_l, d_x = log_rate - l_m, raw - sigma * bias - x_m
        load = [l_w + learn_load, l_m + a_l * d_l, x_m + a_l * d_x, (1.0 - a_l) * (l_v + a_l * d_l * d_l),
                (1.0 - a_l) * (l_c + a_l * d_l * d_x)]
        n_new = n + served
        rate_a = np.maximum(-np.expm1(-window_s / self.rate_tau_s), 1.0 / (n_new + 1.0))
        new_rate = rate + rate_a * (count / window_s - rate)
        new_quiet = (quiet + new_rate * window_s) * ~served
        self._f[slots] = np.array([n_new, req + count, np.where(served, t_ms, t), new_mu, new_sig2, new_tau2, new_p95, s,
                                   since, since_x, since_n, new_rate, new_quiet, c, c_since, c_x, c_n, new_mu_c, c_led,
                                   new_sig2_c, *load]).T
        # One statistic for the judge: the step CUSUM, or the creep's when it is further along (kind 1).
        creep = c - np.log(2.0) > s
        s_prev, s = np.maximum(s_prev, c_prev - np.log(2.0)), np.maximum(s, c - np.log(2.0))
        since, since_x, since_n = (np.where(creep, of_creep, of_step)
                                   for of_creep, of_step in ((c_since, since), (c_x, since_x), (c_n, since_n)))
        observed = np.exp(np.divide(since_x, since_n, out=np.full(s.size, np.nan), where=since_n > 0) + shift)
        return Evidence(s, creep.astype(np.int8), since.astype(np.int64), observed,
                        np.exp(np.where(creep, mu_c, mu) + shift), warm, s > s_prev)


def _same(native: object, reference: object, what: str) -> None:
    for name, a, b in zip(Evidence._fields, native, reference):
        a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), f"{what}: Evidence.{name} differs"


@pytest.mark.parametrize("seed", [1, 2])
def test_every_bank_decides_and_learns_as_the_numpy_code_did(seed: int) -> None:
    """``load/bank_fingerprint.py``'s seeded run (40 series, regime changes, a creep, tail resets), 1,500 windows of
    120 s (50 h: the drops' second-day charts and the seasonal buckets run), every other window with a most a
    window may add."""
    window_s = 120.0
    h = sequential.threshold_for(window_s, 1e-4)
    pairs = {"throughput": (PoissonCusumBank(), NumpyPoisson()),
             "throughput, small drops from the second day": (PoissonCusumBank(small_first_day=0.0),
                                                             NumpyPoisson(small_first_day=0.0)),
             "throughput, no quick level": (PoissonCusumBank(quick_memory=0.0), NumpyPoisson(quick_memory=0.0)),
             "throughput, no seasonal band": (PoissonCusumBank(seasonal_z=0.0), NumpyPoisson(seasonal_z=0.0)),
             "throughput, no level band": (PoissonCusumBank(level_z=0.0), NumpyPoisson(level_z=0.0)),
             "throughput, no block dispersion": (PoissonCusumBank(block_s=0.0), NumpyPoisson(block_s=0.0)),
             "throughput, the hour factors' prior a visit": (PoissonCusumBank(spread_z=0.0), NumpyPoisson(spread_z=0.0)),
             "throughput, no half-hour detail": (PoissonCusumBank(half_hour_z=np.inf), NumpyPoisson(half_hour_z=np.inf)),
             "throughput, no bend": (PoissonCusumBank(bend=0.0), NumpyPoisson(bend=0.0)),
             "throughput, every bend": (PoissonCusumBank(bend_z=0.0), NumpyPoisson(bend_z=0.0)),  # these days bend gently
             "errors": (BernoulliCusumBank(), NumpyBernoulli()),
             "latency": (LatencyCusumBank(), NumpyLatency()), "latency_tail": (TailCusumBank(), NumpyTail())}
    alarms = dict.fromkeys(pairs, 0)
    for w, win in enumerate(synthetic_windows(window_s, 1500, seed)):
        slots, t_ms, count = win.slots, win.t_ms, win.count
        max_step = h / 2 if w % 2 else np.inf
        for name, banks in pairs.items():
            if name == "latency_tail":
                reference = pairs["latency"][0].quantile_ms(slots, banks[0].quantile)
                evidence = [bank.score_learn(slots, win.over, count, reference, t_ms, window_s, h, max_step,
                                             reset=win.reset) for bank in banks]
            elif name == "latency":  # the window's log latencies' spread, kept in two windows of three
                p50, p95 = (np.maximum(np.where(count > 0, q, 1.0), 1e-3) for q in (win.p50, win.p95))
                spread = np.log(p95 / p50)
                log_ss = np.where(count >= 1 if w % 3 else False, (count - 1.0) * spread**2 / 3, np.nan)
                evidence = [bank.score_learn(slots, count, win.p50, win.p95, t_ms, window_s, h, max_step, log_ss)
                            for bank in banks]
            elif name == "errors":
                evidence = [bank.score_learn(slots, win.errors, count, t_ms, window_s, h, max_step) for bank in banks]
            else:
                evidence = [bank.score_learn(slots, count, t_ms, window_s, h, max_step) for bank in banks]
            _same(*evidence, f"{name}, window {w}")
            alarms[name] += int(np.count_nonzero(evidence[0].cusum >= h))
    for name, (native, reference) in pairs.items():
        mine, theirs = native.rows(EVERY), reference.rows(EVERY)
        assert all(mine[k].tobytes() == theirs[k].tobytes() for k in theirs), f"{name}: state differs"
    assert min(alarms.values()) > 0, alarms  # every bank was driven past its threshold
    assert (pairs["errors"][0].state("excess", EVERY) > 0).any()  # and the errors' dispersion was learned


def test_a_state_array_the_native_step_cannot_write_in_place_is_refused() -> None:
    bank = BernoulliCusumBank()
    one = np.array([0])
    bank.score_learn(one, np.array([1.0]), np.array([10.0]), np.array([0.0]), 60.0, h=16.5)
    bank._f = bank._f[:, ::-1].copy()[:, ::-1]  # the same values, not C-contiguous
    with pytest.raises(ValueError, match="C-contiguous"):
        bank.score_learn(one, np.array([1.0]), np.array([10.0]), np.array([60_000.0]), 60.0, h=16.5)
    bank._f = np.ascontiguousarray(bank._f)
    bank._f.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        bank.score_learn(one, np.array([1.0]), np.array([10.0]), np.array([60_000.0]), 60.0, h=16.5)

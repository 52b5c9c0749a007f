"""Sequential tests that accumulate evidence across windows: CUSUMs for counts, errors and latency.

A window judged on its own needs enough requests in that window: a model serving 0.05
requests a second never has them in a 1 s window, and a 30% drop from 5 to 3.5 requests
a minute is invisible in any one minute. A CUSUM adds up each window's log-likelihood
ratio of "changed by the minimum effect that matters" against "as usual" and fires when
the sum reaches ``h``; it forgets evidence only through windows that argue the other way
(the sum is floored at 0). So a sparse series is judged after a handful of requests, a
busy one within a window or two, with no per-model setting.

Calibration: for a CUSUM of log-likelihood ratios the run length between false alarms
of a healthy series is at least ``exp(h)`` observations (Lorden 1971; the usual
Siegmund approximation is of the same order). :func:`threshold_for` picks ``h`` from a
false-alarm budget per series and day; with estimated baselines the bound is approximate.

Every bank keeps O(1) state per series in numpy arrays indexed by slot
(:class:`~modelmedic.detectors.base.SlotState`), so it moves between processes with
``rows``/``set_rows`` and every call is a fixed number of numpy operations whatever the
number of series. Time constants are in event time (seconds), so a bank behaves the
same with 1 s and 60 s windows. Baselines learn only from windows not under suspicion:
while a CUSUM holds more than a third of ``h`` they learn ten times slower, so a slow
degradation does not drag its reference along, and a change that lasts many time
constants still becomes the new normal in the end.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

try:
    from numpy._core.umath import clip as _clip  # numpy 2
except ImportError:  # numpy 1.26
    from numpy.core.umath import clip as _clip

from modelmedic.detectors.base import SlotState, _Params
from modelmedic.detectors.special import ndtri

# A bank makes about a hundred numpy calls a window on a few dozen rows, where numpy's Python-level
# wrappers cost more than the arithmetic: ``np.clip`` 11 us against 3 for the ufunc it calls (``_clip``),
# ``np.stack(.., axis=1)`` 11 against 2.5 for ``np.array(..).T``, ``np.moveaxis`` 12 against 0.1 for a
# transpose, ``a.max(axis=1)`` against ``np.maximum.reduce``. The cheaper forms are the same functions
# underneath: the same values bit for bit (``np.minimum(np.maximum(..))`` is not: it turns -0.0 into 0.0).

SUSPICION = 1.0 / 3.0
"""A CUSUM above this fraction of ``h`` marks its series as under suspicion (learns slowly)."""
SLOWDOWN = 10.0
"""How much slower a series under suspicion learns."""
CAP = 1.25
"""CUSUMs are capped at ``CAP * h``: an episode never holds more evidence than its end must undo."""
RESET = 0.75
"""An episode goes on while its CUSUM is at or above ``RESET * h``: ending one from the cap takes
evidence worth ``h / 2`` against it (as long as with the former cap of ``1.5 h`` and an end below
``h``), and a sparse series whose CUSUM hovers about ``h`` must move ``h / 4`` away from it, so it
neither ends nor restarts its episode with each request or empty window."""


def threshold_for(window_s: float, false_alarms_per_day: float) -> float:
    """``h`` such that a healthy series raises at most ``false_alarms_per_day`` per statistic.

    A CUSUM's mean run length to a false alarm is at least ``exp(h)`` windows, so
    ``h = ln(windows per day / false_alarms_per_day)``: 20.6 for 1 s windows and a budget of
    1e-4 (one false alarm per series in 27 years), 16.5 for 60 s windows.

    >>> round(threshold_for(1.0, 1e-4), 1), round(threshold_for(60.0, 1e-4), 1)
    (20.6, 16.5)
    """
    return float(np.log(86_400.0 / window_s / false_alarms_per_day))


def alpha_for(test_interval_s: float, false_alarms_per_day: float, tests: int = 1) -> float:
    """The p-value each of ``tests`` tests run every ``test_interval_s`` must be below so that a healthy
    version raises at most ``false_alarms_per_day`` a day (the day's budget spread over the day's tests,
    Bonferroni): the repeated-test counterpart of :func:`threshold_for`.

    >>> alpha_for(60.0, 1e-4, tests=2)  # two windows tested once a minute
    3.472222222222222e-08
    """
    return false_alarms_per_day * test_interval_s / (86_400.0 * tests)


class _Bank(_Params, SlotState):
    """Per-slot state in one float matrix ``_f`` (a column per name in ``_COLUMNS``) plus any
    ``_TABLES`` (``name -> trailing shape``): one gather and one scatter per call, whatever the
    number of quantities, since a numpy call on a few hundred rows costs about its overhead.
    Event times (ms) are exact in float64 until the year 287,000."""

    _COLUMNS: tuple[str, ...] = ()
    _TABLES: dict[str, tuple[int, ...]] = {}
    _ACCUMULATORS: tuple[str, ...] = ()
    """Columns a series does not inherit from its predecessor: its evidence, not its baseline."""
    _STARTS_FROM: dict[str, str] = {}
    """Columns added after a release whose snapshots lack them, and the column each starts from
    when such a snapshot is restored (absent: from 0)."""

    def _init_state(self) -> None:
        self._f = np.zeros((0, len(self._COLUMNS)))
        for name, shape in self._TABLES.items():
            setattr(self, name, np.zeros((0, *shape)))

    def _arrays(self) -> list[str]:
        return ["_f", *self._TABLES]

    def _slot_capacity(self) -> int:
        return len(self._f)

    def ensure(self, n_slots: int) -> None:
        have = self._slot_capacity()
        if n_slots > have:
            n = max(n_slots, 2 * have, 64)
            for name in self._arrays():
                a = getattr(self, name)
                setattr(self, name, np.concatenate([a, np.zeros((n - have, *a.shape[1:]))]))

    def forget(self, slots: np.ndarray) -> None:
        slots = np.asarray(slots, dtype=np.int64)
        slots = slots[slots < self._slot_capacity()]
        for name in self._arrays():
            getattr(self, name)[slots] = 0

    def inherit(self, dst: np.ndarray, src: np.ndarray) -> None:
        """A new version starts from its predecessor's baseline, with no evidence of its own yet."""
        super().inherit(dst, src)
        dst = np.asarray(dst, dtype=np.int64)
        for name in self._ACCUMULATORS:
            self._f[dst, self._COLUMNS.index(name)] = 0

    def set_rows(self, slots: np.ndarray, values: dict[str, object]) -> None:
        """:meth:`SlotState.set_rows`, also from an older release's snapshot with fewer columns (appended
        ones last): each missing column starts from the one ``_STARTS_FROM`` names, or from 0."""
        old = values.get("_f")
        if isinstance(old, np.ndarray) and old.shape[1] < len(self._COLUMNS):
            f = np.zeros((len(old), len(self._COLUMNS)))
            f[:, :old.shape[1]] = old
            for name in self._COLUMNS[old.shape[1]:]:
                if name in self._STARTS_FROM:
                    f[:, self._COLUMNS.index(name)] = f[:, self._COLUMNS.index(self._STARTS_FROM[name])]
            values = {**values, "_f": f}
        super().set_rows(slots, values)

    def state(self, name: str, slots: np.ndarray) -> np.ndarray:
        """One named quantity of series ``slots`` (for inspection and tests)."""
        slots = self._prepare(slots)
        return self._f[slots, self._COLUMNS.index(name)]

    def _prepare(self, slots: np.ndarray) -> np.ndarray:
        slots = np.asarray(slots, dtype=np.int64)
        if slots.size:
            self.ensure(int(np.maximum.reduce(slots)) + 1)
        return slots


def _rate(share: np.ndarray, elapsed_s: np.ndarray | float, tau_s: np.ndarray | float, suspect: np.ndarray) -> np.ndarray:
    """EWMA weight of the newest observation: its ``share`` of everything seen so far while
    warming up (a running mean), then ``1 - exp(-elapsed / tau)`` in event time; under
    suspicion only the latter, ``SLOWDOWN`` times slower (a young baseline must not absorb
    an incident either)."""
    a = -np.expm1(-elapsed_s / (tau_s * np.where(suspect, SLOWDOWN, 1.0)))
    return np.where(suspect, a, np.maximum(a, share))


def _chart_penalties(charts: int) -> np.ndarray:
    """What each of a multi-chart CUSUM's ``charts`` adds to ``h`` so that together they keep one CUSUM's
    false-alarm budget (``sum exp(-penalty) = 1``): the first (the minimum effect's) half of it, the
    others the other half in equal shares.

    >>> [round(float(p), 2) for p in _chart_penalties(6)], float(_chart_penalties(1)[0])
    ([0.69, 2.3, 2.3, 2.3, 2.3, 2.3], 0.0)
    """
    if charts == 1:
        return np.zeros(1)
    return np.log(np.r_[2.0, np.full(charts - 1, 2.0 * (charts - 1))])


class Evidence(NamedTuple):
    """What a bank says of each row of a call."""

    cusum: np.ndarray
    """The CUSUM statistic (nats); ``>= h`` is an alarm."""
    kind: np.ndarray
    """Which CUSUM (int8): 0 for the only or the downward one, 1 for the upward one."""
    since_ms: np.ndarray
    """Event time the CUSUM last left 0: the estimated onset of the change."""
    observed: np.ndarray
    """The metric since ``since_ms`` (requests/s, error rate, latency ms), NaN without data."""
    baseline: np.ndarray
    """What it usually is, in the same unit."""
    warm: np.ndarray
    """False while the series has too little history to be judged (insufficient data)."""
    rising: np.ndarray
    """The CUSUM grew in this window: evidence for a change, even while still below ``h``."""


class PoissonCusumBank(_Bank):
    """Request counts against a seasonal rate: Poisson CUSUMs for a drop (three) and a surge.

    The expected count of a window is ``level * hour_factor * weekday_factor * seconds``.
    ``level`` is an EWMA of the deseasonalized rate in event time, zero windows included, so
    a sparse series keeps its true small rate instead of a median of zeros; its memory is
    ``tau_events`` events (at least ``tau_s``), so a drop is not absorbed before the
    series has had the events to show it.
    Each seasonal factor is a Gamma-Poisson shrinkage estimate ``(observed + k) / (expected
    + k)`` of its bucket's decayed counts, the prior ``k`` worth one visit of the bucket (an
    hour, a day) at the current level and at least ``prior_events``: a factor learns over
    visits, so minutes of an outage barely move it. A series whose memory must be longer than
    2 h (under about 0.04 req/s on average) has its drops judged once it has seen a day; its
    surges from its first events (the surge's ceiling below).

    **The level's lag is part of the null.** Before the factors are learned (the first day)
    the level trails the daily cycle: an EWMA of memory ``tau`` lags a rate that declines by
    ``g`` per second by about ``exp(g tau)``: the rate is 0.82x of it at a 4x swing's steepest
    with 1 h, 0.68x with 2 h. The drop CUSUM's drift is negative down to 0.72x, but its
    false-alarm bound is not a matter of drift: ``exp(h)`` windows between false alarms hold
    when the rate is what it expects; at 0.9x of it the sum reaches ``h`` as often as an exact
    one reaches ``0.66 h``, at 0.82x ``0.38 h`` (7.8 of 20.6 nats: the root ``theta`` of
    ``rho (r^theta - 1) + theta (1 - r) = 0`` for ``r`` = 0.5), so the first afternoon's decline
    was a drop (four false pages in a 20-model day of ``load/detection_harness.py``). The level
    smoothed again, twice and three times with the same weights, lags ``2 tau`` and ``3 tau``,
    so the ratio of the two estimates the level's own lag ``exp(-g tau)`` (Brown's multiple
    smoothing) and ``level x lag`` where the rate is now. The expected count is not moved to
    that forecast (it is noisy and late at the turns of the cycle): the null becomes the
    interval between the level and the forecast, and each one-sided CUSUM is tested against
    its least favourable end, the drop against the lower, the surge against the higher. On a
    flat or seasonally explained rate (once the factors are learned) both ends agree and
    nothing changes. The lag is read from the twice- and thrice-smoothed levels, not from the
    level and the twice-smoothed one: a real drop moves those by the square and the cube of
    the minutes of a 1 h memory it has had before the CUSUM's suspicion slows their learning,
    so it barely widens the null against itself (with the level and the twice-smoothed one, a
    halving at the steepest decline of the first day took up to 780 s at 0.5 req/s instead
    of 420; ``tests/unit/test_throughput_first_day.py``).

    **Under suspicion the level falls further behind.** It learns ``SLOWDOWN`` times slower then, so
    a trend it lagged by ``lag`` (one memory ``tau``) it lags by up to ``lag ** SLOWDOWN`` (its memory
    then): ``behind``, the lag's exponent less one, follows the level's own EWMA towards
    ``SLOWDOWN - 1`` while the series is under suspicion and back to 0 after, and the smoothings keep
    the trend from before the suspicion. Without it, a two-hour drop on the first day left the level
    where the cycle had been two hours before, and the model's own afternoon decline after the drop
    ended read as a second drop (two pages for one -30% drop in a 20-model day of
    ``load/detection_harness.py``; ``tests/unit/test_throughput_first_day.py``).

    **The surge's ceiling** (:meth:`_surge_ceiling`). The surge is judged from a series' first events
    (gated as the drops are, a x3 surge at the trough of a 0.06 req/s model's first day waited for the
    level to learn it: 3,449 s where the data allow 650 s) against the highest the rate may be now: the
    level, the rate of the last ``tau_s`` (``_fast``, learning ten times slower under the surge's own
    suspicion only) and their trend forecasts. Without the hour's rate, a level frozen by suspicion below
    the first day's rise, or expecting too little from hour factors that had seen one visit at the start
    of the second day, raised false surges on healthy sparse series (``tests/unit/test_surge_sparse.py``).

    Each CUSUM is designed for the minimum effect that matters (``drop`` and ``surge``
    ratios): a window adds ``(x ln r - lambda (r - 1)) / phi``, where ``phi >= 1`` is the
    learned overdispersion (quasi-Poisson: real traffic at 5,000 req/s varies more than
    Poisson). Its drift is negative for changes smaller than ``(r - 1) / ln r`` (0.72x for
    a 0.5 drop ratio, 1.44x for a 2.0 surge ratio): those never fire, larger ones always do.

    A -30% drop is under the 0.72x, so a second drop CUSUM is designed for ``small_drop`` (0.7;
    it drifts up below 0.84x), as the latency bank runs one for a slow creep. The drop CUSUMs
    share one statistic's false-alarm budget (below: this one fires at ``h + ln 4``, reported as
    ``cusum - ln 4``; a window's most grows with it). While the large one is above a third of its
    threshold the small one holds at most its threshold, so after a large drop the episode ends
    about as fast as before, and during a drop between the two it stays one episode. It runs from
    a series' second day (the hour-of-day factors have seen a day): on the first, against the level
    and its lag, it fired on healthy diurnal series (synthetic, 60 s windows: 3 of 400 at 0.14-0.53
    req/s) and on a 0.036 req/s model's afternoon decline in the 20-model day, the lag's estimate
    not being within the 0.84x it tolerates.

    A third drop CUSUM is designed for ``deep_drop`` (0.25; it drifts up below 0.54x): of the evidence
    a -90% drop holds (0.67 nats per usual request) the halving's gains 0.43, this one 0.61, so at
    0.12 req/s (a 0.22 req/s model at that hour) the drop is found in about 300 s where the halving's
    took 410 (``tests/unit/test_judge_sequential.py``). The three share the budget as the error bank's
    charts do (:func:`_chart_penalties`): the halving's fires at ``h + ln 2``, the small and the deep one
    at ``h + ln 4``; the judge sees the one furthest along, less its share. The deep one does not mark
    a series as under suspicion: a drop deep enough for it lifts the halving's past a third as well.

    >>> bank = PoissonCusumBank()
    >>> one = np.array([0])
    >>> for w in range(600):
    ...     ev = bank.score_learn(one, np.array([2.0 + 2 * (w % 2)]), np.array([w * 60_000]), 60.0, h=16.5)
    >>> bool(ev.warm[0]), float(ev.cusum[0]) < 16.5, round(float(ev.baseline[0]) * 60, 1)
    (True, True, 3.0)
    >>> for w in range(600, 615):
    ...     ev = bank.score_learn(one, np.array([0.0]), np.array([w * 60_000]), 60.0, h=16.5)
    >>> float(ev.cusum[0]) >= 16.5, int(ev.kind[0])
    (True, 0)
    """

    _COLUMNS = ("n", "first", "events", "level", "phi", "down", "up", "down_since", "up_since", "down_x", "up_x")
    _TABLES = {"_hour_obs": (24,), "_hour_exp": (24,), "_day_obs": (7,), "_day_exp": (7,), "_slow": (2,),
               "_behind": (), "_small": (3,), "_fast": (), "_deep": (3,)}
    """``_slow``: the level smoothed twice and three times with its own weights (0: none yet, as in snapshots
    from before them); ``_behind``: how much further than one memory the level lags (in memories);
    ``_small``, ``_deep``: the small- and the deep-drop CUSUM, each with its onset and the requests since
    (0: none yet, as in snapshots from before them)."""
    _ACCUMULATORS = ("down", "up", "down_x", "up_x")

    def __init__(self, drop: float = 0.5, surge: float = 2.0, tau_s: float = 3600.0, tau_events: float = 300.0,
                 min_events: float = 30.0, min_windows: int = 10, prior_events: float = 20.0,
                 hour_memory_days: float = 7.0, day_memory_weeks: float = 4.0, small_drop: float = 0.7,
                 deep_drop: float = 0.25):
        self.drop, self.surge, self.small_drop, self.tau_s, self.tau_events = drop, surge, small_drop, tau_s, tau_events
        self.deep_drop = deep_drop
        self._drops = np.array([drop, small_drop, deep_drop])
        self._drop_penalty = _chart_penalties(self._drops.size)
        self.min_events, self.min_windows, self.prior_events = min_events, min_windows, prior_events
        self.hour_memory_days, self.day_memory_weeks = hour_memory_days, day_memory_weeks
        self._init_state()

    def score_learn(self, slots: np.ndarray, x: np.ndarray, t_ms: np.ndarray, window_s: float, h: float,
                    max_step: float = np.inf) -> Evidence:
        """Judge and learn one window's count per slot; ``t_ms`` is each window's start."""
        slots = self._prepare(slots)
        x, t_ms = np.asarray(x, dtype=np.float64), np.asarray(t_ms, dtype=np.float64)
        n, first, events, level, phi, down_prev, up_prev, down_since, up_since, down_x, up_x = self._f[slots].T
        phi = np.maximum(phi, 1.0)
        hour = ((t_ms // 3_600_000) % 24).astype(np.int64)
        day = ((t_ms // 86_400_000) % 7).astype(np.int64)
        # Each bucket's prior is worth one visit of it (an hour, a day) at the current level, so a
        # bucket moves by at most half within its first visit, and an outage minutes old barely.
        k_hour = np.maximum(self.prior_events, level * 3600.0)
        k_day = np.maximum(self.prior_events, level * 86_400.0)
        hour_obs, hour_exp = self._hour_obs[slots, hour], self._hour_exp[slots, hour]
        day_obs, day_exp = self._day_obs[slots, day], self._day_exp[slots, day]
        f_hour = (hour_obs + k_hour) / (hour_exp + k_hour)
        f_day = (day_obs + k_day) / (day_exp + k_day)
        season = f_hour * f_day
        lam = np.maximum(level * season * window_s, 1e-12)
        # The level remembers about tau_events events (at least tau_s): a drop must not be absorbed
        # before a sparse series has the events to show it. A memory much longer than tau_s cannot
        # follow a daily cycle, so such a series' drops are judged once its seasonal buckets had a day.
        tau = np.minimum(np.maximum(self.tau_s, self.tau_events / np.maximum(level, 1e-9)), 7 * 86_400.0)
        first = np.where(n > 0, first, t_ms)
        seasoned = t_ms - first >= 86_400_000  # the hour-of-day factors have seen a day
        warm_up = (n >= self.min_windows) & (events >= self.min_events)
        warm = warm_up & ((tau <= 2.0 * self.tau_s) | seasoned)
        small, deep = self._small[slots].T, self._deep[slots].T
        drops_prev = np.array([[down_prev, small[0], deep[0]], [down_since, small[1], deep[1]],
                               [down_x, small[2], deep[2]]])  # (cusum, onset, requests since) x chart x series
        h_drops = h + self._drop_penalty  # three drop CUSUMs, one statistic's budget
        # Suspicion from the halving's and the small drop's CUSUMs only: a drop deep enough for the deep one
        # lifts the halving's past a third as well, while healthy dips lifting the deep one alone would
        # slow the level (one more false drop in 200 diurnal series over 48 h, 10 s windows).
        suspect = (warm & ((down_prev > SUSPICION * h_drops[0]) | (small[0] > SUSPICION * h_drops[1]))) | (
            warm_up & (up_prev > SUSPICION * h))
        slow, behind = self._slow[slots], self._behind[slots]
        fast = np.where(self._fast[slots] > 0, self._fast[slots], level)  # 0: none yet (older snapshots)
        lag = np.divide(slow[:, 0], slow[:, 1], out=np.ones(slots.size), where=slow[:, 1] > 0) ** (1.0 + behind)
        lam_down = lam * np.minimum(lag, 1.0)
        rel = np.divide(fast, level, out=np.ones(slots.size), where=level > 0)
        lam_up = lam * self._surge_ceiling(rel, lag, tau, seasoned)
        drops = self._step_drops(drops_prev, x, lam_down, phi, warm, seasoned, t_ms, h, max_step)
        down, down_since, down_x = drops[:, 0]
        self._small[slots], self._deep[slots] = drops[:, 1].T, drops[:, 2].T
        step_up = np.minimum((x * np.log(self.surge) - lam_up * (self.surge - 1.0)) / phi, max_step)
        up = np.clip(up_prev + step_up, 0.0, CAP * h) * warm_up
        up_going = up_prev > 0
        up_since = np.where(up_going, up_since, t_ms)
        up_x = up_x * up_going + x

        # Learn: the level (deseasonalized rate), the overdispersion, the seasonal buckets.
        a = _rate(1.0 / (n + 1.0), window_s, tau, suspect)
        new_level = level + a * (x / (season * window_s) - level)
        # The hour's rate follows the surge's suspicion only: a drop's holding it above a decline would
        # only make a surge harder to see.
        a_fast = _rate(1.0 / (n + 1.0), window_s, self.tau_s, warm_up & (up_prev > SUSPICION * h))
        self._fast[slots] = fast + a_fast * (x / (season * window_s) - fast)
        pearson = np.minimum((x - lam) ** 2 / lam, 50.0)
        new_phi = np.where(warm, phi + a * (pearson - phi), 1.0)
        trend = a * ~suspect  # the smoothings keep the trend from before the suspicion
        twice = np.where(slow[:, 0] > 0, slow[:, 0] + trend * (new_level - slow[:, 0]), new_level)
        thrice = np.where(slow[:, 1] > 0, slow[:, 1] + trend * (twice - slow[:, 1]), twice)
        self._slow[slots] = np.stack([twice, thrice], axis=1)
        self._behind[slots] = behind + a * ((SLOWDOWN - 1.0) * suspect - behind)
        self._f[slots] = np.stack([n + 1, first, events + x, new_level, new_phi, down, up, down_since, up_since,
                                   down_x, up_x], axis=1)
        learn = (n >= self.min_windows) & ~suspect  # the buckets learn what the level does not explain
        hour_keep = np.where(learn, 1.0 - window_s / (self.hour_memory_days * 3600.0), 1.0)
        day_keep = np.where(learn, 1.0 - window_s / (self.day_memory_weeks * 86_400.0), 1.0)
        base = level * window_s * learn
        self._hour_obs[slots, hour] = hour_obs * hour_keep + x * learn
        self._hour_exp[slots, hour] = hour_exp * hour_keep + base * f_day
        self._day_obs[slots, day] = day_obs * day_keep + x * learn
        self._day_exp[slots, day] = day_exp * day_keep + base * f_hour

        # One drop statistic for the judge: the drop CUSUM furthest along, less its share of the budget.
        ahead = drops[0] - self._drop_penalty[:, None]
        lead = drops[1:, ahead.argmax(axis=0), np.arange(slots.size)]  # its onset and requests since
        drop = ahead.max(axis=0)
        surge = up > drop
        since = np.where(surge, up_since, lead[0])
        observed = np.where(surge, up_x, lead[1]) / ((t_ms - since) / 1000.0 + window_s)
        rising = (drop > (drops_prev[0] - self._drop_penalty[:, None]).max(axis=0)) | (up > up_prev)
        return Evidence(np.maximum(np.maximum(drop, up), 0.0), surge.astype(np.int8), since.astype(np.int64), observed,
                        np.where(surge, lam_up, lam_down) / window_s, warm_up, rising)

    def _step_drops(self, prev: np.ndarray, x: np.ndarray, lam: np.ndarray, phi: np.ndarray, warm: np.ndarray,
                    seasoned: np.ndarray, t_ms: np.ndarray, h: float, max_step: float) -> np.ndarray:
        """The drop CUSUMs (designed for ``drop``, ``small_drop``, ``deep_drop``) one window on against an
        expected count ``lam``: ([cusum, onset, requests since], chart, series) from ``prev`` of that shape.

        Each fires at ``h`` plus its share of the budget, and a window's most grows with it. The small one
        runs from a series' second day (``seasoned``) and holds at most its threshold while the halving's is
        above a third of its own: a drop between the two stays one episode."""
        h_each = (h + self._drop_penalty)[:, None]
        step = np.minimum((x * np.log(self._drops)[:, None] - lam * (self._drops - 1.0)[:, None]) / phi,
                          max_step * h_each / h)
        s = np.maximum(prev[0] + step, 0.0)
        s[1] = np.minimum(s[1], np.where(s[0] > SUSPICION * h_each[0], h_each[1], CAP * h_each[1])) * (warm & seasoned)
        s[::2] = np.minimum(s[::2], CAP * h_each[::2]) * warm
        going = prev[0] > 0
        return np.array([s, np.where(going, prev[1], t_ms), prev[2] * going + x])

    def _surge_ceiling(self, fast: np.ndarray, lag: np.ndarray, tau: np.ndarray, seasoned: np.ndarray) -> np.ndarray:
        """The surge's reference as a multiple of the expected rate: the highest the rate may be now.

        The level (memory ``tau``) and the rate of the last ``tau_s`` (``fast``, relative to the level) both
        trail a trend, the latter less; each has its trend forecast (``lag``, and ``lag ** (tau_s / tau)``
        for the shorter memory). On a rise the forecasts are the higher end. On a decline both rates are
        above the rate now; before the hour-of-day factors have seen a day (not ``seasoned``) the lower of
        the two replaces the level, which trails the first day's decline furthest. From then on the level
        stays in the ceiling: the factors explain the cycle, and the hour's rate only covers what they do
        not explain yet."""
        floor = np.where(seasoned, 1.0, np.minimum(fast, 1.0))
        return np.maximum(np.maximum(floor, lag), fast * lag ** (self.tau_s / tau))


class BernoulliCusumBank(_Bank):
    """Error counts against the learned error rate: Bernoulli CUSUMs per request, one per design.

    A window with ``e`` errors in ``n`` requests adds ``e ln(p1/p0) + (n - e) ln((1 - p1)/(1 - p0))``
    with ``p1 = ratio * p0`` (the minimum effect that matters), so three requests count for
    three and a thousand for a thousand. ``p0`` is a pooled rate in event time (errors and
    requests decayed separately, ``tau_s``) shrunk towards ``prior_rate`` by
    ``prior_requests`` pseudo-requests, and never below ``floor``: a model that never
    failed may still fail now and then, and one error never pages (it adds ``ln ratio``).

    **One CUSUM per design** (a multi-chart CUSUM): a CUSUM designed for ``ratio`` gains only
    ``0.14`` nats a request from 13% errors over a usual 0.18%, a third of what the change
    holds (``0.44``: the Kullback-Leibler divergence, what a test designed for 13% gains),
    so at 0.07 req/s it took 2,187 s where 660 s is what the data allow
    (``load/detection_harness.py --models 20 --seed 1``). The bank runs ``charts`` CUSUMs
    on the same requests, designed for ``ratio``, ``ratio**2``, ... times ``p0`` (each ``p1``
    capped at ``(1 + p0) / 2``), a factor ``ratio`` apart from the minimum effect up to a
    coin flip at the lowest ``p0`` (``floor``): ``charts = ceil(ln(0.5 / floor) / ln ratio)``,
    6 at the defaults. Every change of at least the minimum effect is then within a factor
    ``sqrt(ratio)`` of a design, where a CUSUM gains most of the divergence. Each CUSUM fires
    at ``h + ln(charts)`` (so the charts together keep one CUSUM's false-alarm budget) and the
    bank reports the leading one as ``cusum - ln(charts)``, with its onset and observed rate:
    the judge's ``h``, cap and reset apply unchanged. The cost is ``ln(charts)`` more nats for
    a change of exactly ``ratio`` (1.8 of 20.6 at the defaults).

    >>> bank = BernoulliCusumBank()
    >>> one = np.array([0])
    >>> for w in range(300):
    ...     ev = bank.score_learn(one, np.array([float(w % 4 == 0)]), np.array([60.0]), np.array([w * 60_000]), 60.0, h=16.5)
    >>> bank.charts, round(float(ev.baseline[0]), 4), float(ev.cusum[0]) < 16.5
    (6, 0.0042, True)
    >>> for w in range(300, 303):
    ...     ev = bank.score_learn(one, np.array([8.0]), np.array([60.0]), np.array([w * 60_000]), 60.0, h=16.5)
    >>> float(ev.cusum[0]) >= 16.5, round(float(ev.observed[0]), 3)
    (True, 0.133)
    """

    _COLUMNS = ("seen", "t", "err", "req", "s", "since", "since_err", "since_req")
    """``s``, ``since``, ``since_err``, ``since_req``: the CUSUM designed for ``ratio``, its onset and the
    errors and requests since; the other designs' in ``_charts`` (``charts - 1`` rows of the same four)."""
    _ACCUMULATORS = ("s", "since_err", "since_req")
    _CHART = ("s", "since", "since_err", "since_req")

    def __init__(self, ratio: float = 3.0, tau_s: float = 6 * 3600.0, min_requests: float = 200.0,
                 prior_rate: float = 0.005, prior_requests: float = 200.0, floor: float = 0.001):
        self.ratio, self.tau_s, self.min_requests = ratio, tau_s, min_requests
        self.prior_rate, self.prior_requests, self.floor = prior_rate, prior_requests, floor
        self.charts = max(1, int(np.ceil(np.log(0.5 / floor) / np.log(ratio))))
        self._penalty = _chart_penalties(self.charts)
        self._ratios = ratio ** np.arange(1.0, self.charts + 1.0)
        self._log_ratios = np.log(self._ratios)
        self._TABLES = {**type(self)._TABLES, "_charts": (self.charts - 1, len(self._CHART))}
        self._init_state()

    def inherit(self, dst: np.ndarray, src: np.ndarray) -> None:
        """A new version starts from its predecessor's baseline, with no evidence of its own yet (no chart's)."""
        super().inherit(dst, src)
        self._charts[np.asarray(dst, dtype=np.int64)] = 0

    def score_learn(self, slots: np.ndarray, errors: np.ndarray, requests: np.ndarray, t_ms: np.ndarray,
                    window_s: float, h: float, max_step: float = np.inf) -> Evidence:
        return self._judge_learn(slots, errors, requests, t_ms, window_s, h, max_step)[0]

    def _judge_learn(self, slots: np.ndarray, errors: np.ndarray, requests: np.ndarray, t_ms: np.ndarray,
                     window_s: float, h: float, max_step: float) -> tuple[Evidence, np.ndarray]:
        """:meth:`score_learn`'s evidence, and what the bank reported of each series before this window
        (the leading CUSUM less ``ln(charts)``: the tail's bound is held by it)."""
        slots = self._prepare(slots)
        e, m = np.asarray(errors, dtype=np.float64), np.asarray(requests, dtype=np.float64)
        t_ms = np.asarray(t_ms, dtype=np.float64)
        f, others = self._f[slots], self._charts[slots]
        seen, t, err, req = f[:, :4].T
        p0 = np.maximum((err + self.prior_rate * self.prior_requests) / (req + self.prior_requests), self.floor)
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
                                      t_ms[rows], h, max_step)
            f[rows, 4:] = chart[:, 0]
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
        self._f[slots] = f
        return Evidence(reported, np.zeros(slots.size, dtype=np.int8), since.astype(np.int64), observed, p0, warm,
                        reported > reported_prev), reported_prev

    def _step_charts(self, slots: np.ndarray, f: np.ndarray, others: np.ndarray, e: np.ndarray, m: np.ndarray,
                     p0: np.ndarray, warm: np.ndarray, t_ms: np.ndarray, h: float, max_step: float) -> np.ndarray:
        """Every chart of series ``slots`` one window on, stored and returned as (series, charts, [s, since,
        since_err, since_req]), the ratio's chart first (``f``: their rows of ``_f`` before the window,
        ``others``: of ``_charts``)."""
        chart = np.concatenate([f[:, None, 4:], others], axis=1)
        s_prev, since, since_err, since_req = chart.transpose(2, 0, 1)
        # ln(p1 / p0) per chart: k ln(ratio), up to the cap's (one log per series); ln((1 - p1) / (1 - p0)): one per chart.
        cap = 0.5 * (1.0 + p0)
        up = np.minimum(self._log_ratios, np.log(cap / p0)[:, None])
        down = np.log1p(-np.minimum(p0[:, None] * self._ratios, cap[:, None])) - np.log1p(-p0)[:, None]
        llr = e[:, None] * up + (m - e)[:, None] * down
        # Each CUSUM's threshold is h + its penalty: a window's most (h / trigger_windows in the judge) grows with
        # it, so a busy series still fires in trigger_windows windows.
        penalty = self._penalty
        s = _clip(s_prev + np.minimum(llr, max_step * (1.0 + penalty / h)), 0.0, CAP * h + penalty) * warm[:, None]
        going = s_prev > 0
        chart = np.array([s, np.where(going, since, t_ms[:, None]), since_err * going + e[:, None],
                          since_req * going + m[:, None]]).transpose(1, 2, 0)
        self._charts[slots] = chart[:, 1:]
        return chart

    def certify(self, slots: np.ndarray, error_rate: np.ndarray, t_ms: np.ndarray, weight: float) -> None:
        """Start series ``slots`` from a known error rate (a version's certification) worth ``weight``
        requests, judged from their next window on: no warm-up."""
        slots = self._prepare(slots)
        self._f[slots] = 0.0
        self._charts[slots] = 0.0
        c = self._COLUMNS.index
        self._f[slots, c("seen")] = max(self.min_requests, weight)
        self._f[slots, c("t")] = t_ms
        self._f[slots, c("err")] = np.asarray(error_rate, dtype=np.float64) * weight
        self._f[slots, c("req")] = weight

    def usual_rate(self, slots: np.ndarray) -> np.ndarray:
        """The learned error rate of series ``slots`` (before the floor)."""
        err, req = self.state("err", slots), self.state("req", slots)
        return (err + self.prior_rate * self.prior_requests) / (req + self.prior_requests)


class TailCusumBank(BernoulliCusumBank):
    """Requests slower than the series' usual p99: a Bernoulli CUSUM on their share (tail regressions).

    A regression that slows only some requests (a slow dependency on a few calls, GC pauses)
    leaves the median where it was, so :class:`LatencyCusumBank` never sees it, while the
    users it hits wait three times longer. Here every request is a trial: slower than the
    series' bound or not. The bound is the latency reference's ``quantile`` (the 99th by
    default, :meth:`LatencyCusumBank.quantile_ms`), so about 1% of requests exceed it; a
    window adds the Bernoulli log-likelihood ratio of "``ratio`` times the usual share"
    (5% for a ratio of 5) against the usual share, and one CUSUM per larger design as the
    errors bank (25x, 125x, capped at a coin flip: 4 charts with the 0.2% floor); the usual
    share is learned as :class:`BernoulliCusumBank` learns an error rate (6 h, shrunk towards
    ``1 - quantile``).
    Per-request evidence: one request at 0.05 req/s counts for one and 5,000 for 5,000, and
    counting the requests over a bound is O(1) per request. The share is measured against
    the same bound it is judged by, so a tail heavier than the lognormal reference only makes
    the usual share larger than 1%, never a false alarm by itself; a +3% deploy moves it
    to about 1.3% (its drift is negative below about 2.5%).

    The bound follows the reference but is held while this CUSUM is under suspicion (above a
    third of ``h``): the latency reference learns its spread from every window, and an
    incident must not lift its own bar.
    """

    _TABLES = {"_bound": ()}
    """Log of the bound (ms) each series' requests are counted against; 0: none yet."""

    def __init__(self, quantile: float = 0.99, ratio: float = 5.0, tau_s: float = 6 * 3600.0,
                 min_requests: float = 200.0, prior_requests: float = 1000.0, floor: float = 0.002):
        super().__init__(ratio=ratio, tau_s=tau_s, min_requests=min_requests, prior_rate=1.0 - quantile,
                         prior_requests=prior_requests, floor=floor)
        self.quantile = quantile

    def bound_ms(self, slots: np.ndarray, reference_ms: np.ndarray) -> np.ndarray:
        """The latency each series' requests are counted against: the held bound, or ``reference_ms``
        (the latency reference's quantile now) for a series without one yet."""
        slots = self._prepare(slots)  # first: it may grow ``_bound``
        held = self._bound[slots]
        return np.where(held != 0, np.exp(held), reference_ms)

    def score_learn(self, slots: np.ndarray, over: np.ndarray, requests: np.ndarray, reference_ms: np.ndarray,
                    t_ms: np.ndarray, window_s: float, h: float, max_step: float = np.inf,
                    reset: np.ndarray | None = None) -> Evidence:
        """Judge and learn one window: ``over`` of ``requests`` were slower than :meth:`bound_ms`;
        the bound then moves to ``reference_ms`` unless the series is under suspicion. ``reset``:
        series whose CUSUM starts again from 0 (their slowness is another statistic's episode)."""
        slots = self._prepare(slots)
        ev, s_prev = self._judge_learn(slots, over, requests, t_ms, window_s, h, max_step)
        if reset is not None:
            self._f[slots[reset], self._COLUMNS.index("s")] = 0.0
            self._charts[slots[reset], :, 0] = 0.0
            ev = ev._replace(cusum=np.where(reset, 0.0, ev.cusum), rising=ev.rising & ~reset)
        held = self._bound[slots]
        hold = (held != 0) & (s_prev > SUSPICION * h)
        self._bound[slots] = np.where(hold, held, np.log(np.maximum(reference_ms, 1e-3)))
        return ev


@functools.cache
def _z(q: float) -> float:
    """The standard normal quantile of ``q``, computed once per ``q``: :func:`ndtri` costs 9 us a call,
    and the judge asks for the same quantile every round."""
    return float(ndtri(q))


def _median_law(n: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and variance of the nearest-rank median of ``n`` normal draws (in standard
    deviations), and the mean gap from it to the nearest-rank 95th percentile.

    Rank ``ceil(n / 2)``: the middle one for odd ``n`` (unbiased), the lower middle for even
    ``n`` (Blom's approximation of its mean: -0.59 at n = 2, -0.30 at n = 4). Variance
    ``pi / (2 (n + pi/2 - 1))``: 1 for one draw, ``pi / 2n`` for many. Means come from a
    table (computed once) up to 4,096 draws; beyond, the bias is below 0.01.
    """
    m = np.minimum(n, _LAW_MAX).astype(np.int64)
    return _BIAS[m], np.pi / (2.0 * (np.maximum(n, 1.0) + np.pi / 2 - 1.0)), _GAP[m]


def _law_tables(top: int) -> tuple[np.ndarray, np.ndarray]:
    m = np.maximum(np.arange(top + 1, dtype=np.float64), 1.0)
    bias = ndtri((np.ceil(m / 2) - 0.375) / (m + 0.25))
    return bias, ndtri((np.ceil(0.95 * m) - 0.375) / (m + 0.25)) - bias


_LAW_MAX = 4096
_BIAS, _GAP = _law_tables(_LAW_MAX)


def _upward(prev: np.ndarray, since: np.ndarray, since_x: np.ndarray, since_n: np.ndarray, r: np.ndarray,
            v: np.ndarray, d: float, h: float, max_step: float, served: np.ndarray, warm: np.ndarray, t_ms: np.ndarray,
            count: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One window of an upward Gaussian CUSUM for a shift ``d`` of residuals ``r`` (variance ``v``):
    the new sum (capped at ``CAP * h``), and its onset, requests-weighted log latency and requests
    since it last left 0 (for the observed latency of an episode)."""
    step = np.minimum((d * r - 0.5 * d * d) / v, max_step) * served
    s = _clip(prev + step, 0.0, CAP * h) * warm
    fresh = (prev <= 0) & served
    return s, np.where(fresh, t_ms, since), since_x * ~fresh + count * x, since_n * ~fresh + count


class LatencyCusumBank(_Bank):
    """The window's median latency against a long-horizon reference: an upward Gaussian CUSUM.

    Per-request log latency is modelled as ``N(mu, sigma^2)`` plus a window-level wobble
    of variance ``tau^2`` (busy models slow down and speed up with load, more than their
    sampling noise). A window with ``n`` requests gives its median ``m``: the residual
    ``r = log m - mu - sigma b(n)`` has variance ``v = sigma^2 s^2(n) + tau^2``
    (:func:`_median_law`), so one request at 0.05 req/s and 5,000 requests in a busy
    window are weighed by what they are worth. The window adds ``(d r - d^2 / 2) / v`` for
    a shift of ``d = ln(ratio)`` (the minimum effect that matters): steps below half of it
    (22% for a ratio of 1.5; a +3% deploy) drift down and never fire.

    ``mu`` is the long-horizon reference (an EWMA in event time, ``tau_s`` = 6 h, ten times
    slower while under suspicion): a creep of +2% every 10 minutes runs away from it (at
    2 h it has absorbed +3% of the creep's +27%).

    A second CUSUM is designed for slow degradations, ``creep_ratio`` (1.1): +2% every 10
    minutes is above 22% only after 100 minutes, and the first CUSUM gains nothing before, while
    this one drifts up from +4.9% (30 minutes in). Its residuals are taken against a reference of
    its own, ``mu_c``, an EWMA of ``creep_tau_s`` (1.5 h) slowed by the same suspicion: a reference
    of time constant ``T`` trails a movement of slope ``k`` by at most ``k T``, so it trails a daily
    cycle of amplitude ``A`` (slope at most ``A 2 pi / 24 h``) by ``0.37 A`` (within +-13% of the
    median stays under +4.9%; against the 6 h reference, ``0.84 A``), while a creep (12% an hour)
    runs away from it until the CUSUM's suspicion slows it ten times. A +3% deploy drifts down
    under it. Two CUSUMs double the false alarms of one, so this one fires at ``h + ln 2``
    (reported as ``cusum - ln 2``). It is reset while the step CUSUM is above a third of ``h``: a
    step is that one's, and ends as fast. Unless it fired first (``c_led``: a creep, which lifts the
    step CUSUM past a third of ``h`` an hour later): then it keeps its episode until it is back at 0.
    ``sigma^2`` comes from the window's own spread (``log p95 - log p50``) when it has two
    requests or more, else from the residuals; ``tau^2`` from what the residuals show
    beyond ``sigma^2 s^2(n)``.

    The bank also tracks the series' request rate, so the judge can tell a series that
    stopped serving (``stopped``: it would have expected ``stop_requests`` requests since
    its last) from a sparse one between requests.
    """

    _COLUMNS = ("n", "req", "t", "mu", "sig2", "tau2", "p95", "s", "since", "since_x", "since_n", "rate", "quiet",
                "c", "c_since", "c_x", "c_n", "mu_c", "c_led")
    _ACCUMULATORS = ("s", "since_x", "since_n", "quiet", "c", "c_x", "c_n", "c_led")
    _STARTS_FROM = {"mu_c": "mu"}

    def __init__(self, ratio: float = 1.5, tau_s: float = 6 * 3600.0, min_requests: float = 20.0, min_windows: int = 10,
                 prior_sigma: float = 0.3, stop_requests: float = 10.0, rate_tau_s: float = 3600.0,
                 creep_ratio: float = 1.1, creep_tau_s: float = 1.5 * 3600.0):
        self.ratio, self.tau_s, self.min_requests, self.min_windows = ratio, tau_s, min_requests, min_windows
        self.creep_ratio, self.creep_tau_s = creep_ratio, creep_tau_s
        self.prior_sigma = prior_sigma
        self.stop_requests, self.rate_tau_s = stop_requests, rate_tau_s
        self._init_state()

    def stopped(self, slots: np.ndarray) -> np.ndarray:
        """Series silent for longer than their rate explains (rolled back, scaled away)."""
        return self.state("quiet", slots) >= self.stop_requests

    def score_learn(self, slots: np.ndarray, count: np.ndarray, p50: np.ndarray, p95: np.ndarray, t_ms: np.ndarray,
                    window_s: float, h: float, max_step: float = np.inf) -> Evidence:
        slots = self._prepare(slots)
        count, t_ms = np.asarray(count, dtype=np.float64), np.asarray(t_ms, dtype=np.float64)
        (n, req, t, mu, sig2, tau2, p95_usual, s_prev, since, since_x, since_n, rate, quiet,
         c_prev, c_since, c_x, c_n, mu_c, c_led) = self._f[slots].T
        served = count > 0
        x = np.log(np.where(served, np.maximum(p50, 1e-3), 1.0))
        x95 = np.log(np.where(served, np.maximum(p95, 1e-3), 1.0))
        warm = (req >= self.min_requests) & (n >= self.min_windows)
        bias, spread, gap = _median_law(count)
        sigma = np.sqrt(sig2)
        r = x - mu - sigma * bias
        v = np.maximum(sig2 * spread + np.maximum(tau2, 0.0), 1e-6)
        h_creep = h + np.log(2.0)
        s, since, since_x, since_n = _upward(s_prev, since, since_x, since_n, r, v, np.log(self.ratio), h, max_step,
                                             served, warm, t_ms, count, x)
        r_c = x - mu_c - sigma * bias
        c, c_since, c_x, c_n = _upward(c_prev, c_since, c_x, c_n, r_c, v, np.log(self.creep_ratio), h_creep, max_step,
                                       served, warm, t_ms, count, x)
        # Past a third of its h the step CUSUM has the change: the creep's stands down (it would take five
        # times as long to come back down and hold a step's episode open after the step ended). Unless the
        # creep's fired first (``c_led``, until it is back at 0): a creep lifts the step CUSUM past a third
        # of h long after, and handed to that statistic, under RESET, its episode ended and paged again.
        c_led = ((c_led > 0) | ((c >= h_creep) & (s <= SUSPICION * h))) & (c > 0)
        c = c * ((s <= SUSPICION * h) | c_led)

        # Learn where served: a requests-weighted running mean at first, then the event-time EWMA.
        suspect = warm & ((s_prev > SUSPICION * h) | (c_prev > SUSPICION * h_creep))
        elapsed = np.where(n > 0, (t_ms - t) / 1000.0, window_s)
        a = _rate(count / np.maximum(req + count, 1.0), elapsed, self.tau_s, suspect) * served
        first = n == 0
        bound = 3.0 * np.sqrt(v)
        new_mu = np.where(first, x, mu + a * np.where(warm, _clip(r, -bound, bound), r))
        # A window stands for at most the time its requests take at the usual rate: back after an hour's
        # silence (a rolled-back release), one window of a few requests would otherwise weigh half of mu_c.
        stands_for = np.divide(count, rate, out=np.full(count.size, np.inf), where=rate > 0)
        a_c = _rate(count / np.maximum(req + count, 1.0), np.minimum(elapsed, stands_for), self.creep_tau_s,
                    suspect) * served
        new_mu_c = np.where(first, x, mu_c + a_c * np.where(warm, _clip(r_c, -bound, bound), r_c))
        # Within-window spread: p95 and p50 are the order statistics ceil(.95 n) and ceil(.5 n).
        several = count >= 2
        r2 = np.minimum(r * r, 9.0 * v)
        within = np.where(several, ((x95 - x) / np.maximum(gap, 1e-3)) ** 2, r2)
        prior = self.prior_sigma**2
        new_sig2 = np.where(first, np.where(several, within, prior),
                            sig2 + a * (np.minimum(within, 9.0 * np.maximum(sig2, prior)) - sig2))
        new_tau2 = np.where(first | ~several, tau2, tau2 + a * (r2 - sig2 * spread - tau2))
        new_p95 = np.where(first, x95, p95_usual + a * (x95 - p95_usual))
        n_new = n + served
        rate_a = np.maximum(-np.expm1(-window_s / self.rate_tau_s), 1.0 / (n_new + 1.0))
        new_rate = rate + rate_a * (count / window_s - rate)
        new_quiet = (quiet + new_rate * window_s) * ~served
        self._f[slots] = np.array([n_new, req + count, np.where(served, t_ms, t), new_mu, new_sig2, new_tau2, new_p95, s,
                                   since, since_x, since_n, new_rate, new_quiet, c, c_since, c_x, c_n, new_mu_c, c_led]).T
        # One statistic for the judge: the step CUSUM, or the creep's when it is further along (kind 1).
        creep = c - np.log(2.0) > s
        s_prev, s = np.maximum(s_prev, c_prev - np.log(2.0)), np.maximum(s, c - np.log(2.0))
        since, since_x, since_n = (np.where(creep, of_creep, of_step)
                                   for of_creep, of_step in ((c_since, since), (c_x, since_x), (c_n, since_n)))
        observed = np.exp(np.divide(since_x, since_n, out=np.full(s.size, np.nan), where=since_n > 0))
        return Evidence(s, creep.astype(np.int8), since.astype(np.int64), observed, np.exp(mu), warm, s > s_prev)

    def certify(self, slots: np.ndarray, p50_ms: np.ndarray, p95_ms: np.ndarray, t_ms: np.ndarray,
                weight: float) -> None:
        """Start series ``slots`` from known latencies (a version's certification: per-request p50
        and p95, lognormal) worth ``weight`` requests, judged from their next window on: no warm-up."""
        slots = self._prepare(slots)
        mu, x95 = np.log(np.maximum(p50_ms, 1e-3)), np.log(np.maximum(p95_ms, 1e-3))
        sigma = np.maximum(x95 - mu, 0.0) / ndtri(0.95)
        self._f[slots] = 0.0
        c = self._COLUMNS.index
        self._f[slots, c("n")] = self.min_windows
        self._f[slots, c("req")] = max(self.min_requests, weight)
        self._f[slots, c("t")] = t_ms
        self._f[slots, c("mu")] = mu
        self._f[slots, c("mu_c")] = mu
        self._f[slots, c("sig2")] = np.where(sigma > 0, sigma**2, self.prior_sigma**2)
        self._f[slots, c("p95")] = x95

    def usual_p95(self, slots: np.ndarray) -> np.ndarray:
        """The series' usual p95 latency (ms): an EWMA of the windows' p95, for the summary."""
        return np.exp(self.state("p95", slots))

    def quantile_ms(self, slots: np.ndarray, q: float) -> np.ndarray:
        """The reference's ``q`` quantile of a request's latency (ms): the lognormal of ``mu`` and
        ``sigma``, whose spread is measured within windows (robust to how busy a series is)."""
        return np.exp(self.state("mu", slots) + _z(q) * np.sqrt(self.state("sig2", slots)))

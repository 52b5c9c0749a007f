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

from modelmedic import _columns as _native
from modelmedic.detectors.base import SlotState, _Params
from modelmedic.detectors.special import ndtri

# Each bank's per-window recursion is native (``native/src/banks.rs``: one call a bank a round, where numpy
# took about a hundred calls on a few dozen rows, each costing its overhead, not its arithmetic); numpy keeps
# the transcendental functions (its SIMD ``log``, ``exp``, ``expm1``, ``pow`` differ from the C library's in the
# last bit), so the values are the same bit for bit as the numpy code's were.

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
STALE = 1.5
"""Memories further behind than its trend (``PoissonCusumBank``'s ``behind``) past which a first-day suspicion
leaves the level stale: when the halving's chart falls back under a third, the small one drops to a third of
its threshold."""
CAUGHT_UP = 1.0
"""Memories further behind than its trend under which a level not under suspicion has caught up: only then does
a rise's forecast raise the drop's reference, and do the twice- and thrice-smoothed levels learn again (until then
they move with the level: they read its catch-up as a rise)."""
SURGE_CLIPPED = 2.0
"""Memories behind (``behind``) under which a surge's suspicion keeps the surge out of the level: the level and the
quick level learn a window's count only up to the surge's ceiling. Past it a lasting rise is learned, ten times
slower (a new client's traffic ends its surge episode; a whole episode is one page)."""
PEARSON_KEPT = 4.0
"""Requests over its expected count that a window's Pearson residual keeps whole as ``PoissonCusumBank``'s ``phi``
learns it (beyond, and beyond 50, it is clipped, so one wild window does not move ``phi``): at 0.04 req/s a batch of
two requests in a 1 s window is a residual of about 100, and a bound of 50 alone left the learned mean at 0.76 where
batches of two disperse 3x (2.3 with this; Poisson counts 0.97 -> 1.00; from 1 req/s unchanged)."""
MAX_BAND = 0.25
"""The most the seasonal factors' uncertainty (``PoissonCusumBank``'s ``seasonal_z``) moves the null's ends apart, as a
share of the rate: a drop of a third or more, and a doubling, stay in reach of the charts designed for them."""


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
        ones last): each missing column of ``_f`` starts from the one ``_STARTS_FROM`` names, or from 0, and
        each missing column of a table from 0."""
        old = values.get("_f")
        if isinstance(old, np.ndarray) and old.shape[1] < len(self._COLUMNS):
            f = np.zeros((len(old), len(self._COLUMNS)))
            f[:, :old.shape[1]] = old
            for name in self._COLUMNS[old.shape[1]:]:
                if name in self._STARTS_FROM:
                    f[:, self._COLUMNS.index(name)] = f[:, self._COLUMNS.index(self._STARTS_FROM[name])]
            values = {**values, "_f": f}
        for name, shape in self._TABLES.items():
            table = values.get(name)
            if isinstance(table, np.ndarray) and len(shape) == 1 and table.shape[1:] != shape:
                wide = np.zeros((len(table), *shape))
                wide[:, :table.shape[1]] = table
                values = {**values, name: wide}
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
    """Which CUSUM (int8): 0 for the only or the downward one, 1 for the upward one (the latency bank's: the creep's)."""
    since_ms: np.ndarray
    """Event time the CUSUM last left 0: the estimated onset of the change."""
    observed: np.ndarray
    """The metric since ``since_ms`` (requests/s, error rate, latency ms), NaN without data."""
    baseline: np.ndarray
    """What it usually is, in the same unit: the reference of the CUSUM that ``kind`` names."""
    warm: np.ndarray
    """False while the series has too little history to be judged (insufficient data)."""
    rising: np.ndarray
    """The CUSUM grew in this window: evidence for a change, even while still below ``h``."""


class PoissonCusumBank(_Bank):
    """Request counts against a seasonal rate: Poisson CUSUMs for a drop (three) and a surge.

    The expected count of a window is ``level * hour_factor * week_factor * seconds``.
    ``level`` is an EWMA of the deseasonalized rate in event time, zero windows included, so
    a sparse series keeps its true small rate instead of a median of zeros; its memory is
    ``tau_events`` events (at least ``tau_s``), so a drop is not absorbed before the
    series has had the events to show it.
    Each seasonal factor is a Gamma-Poisson shrinkage estimate ``(observed + k) / (expected + k)`` of its
    bucket's decayed counts, the prior ``k`` worth one visit of an hour bucket (a day for a week bucket) at the
    current level and at least ``prior_events``: a factor learns over visits, so minutes of an outage barely move
    it. From the second day an hour bucket's prior goes down, over that day, to ``later_prior`` visits: after a prior of one
    visit and one visit of data a factor had half the day's amplitude, and the level's lag made up the rest.
    **From the second day a sparse series' hour buckets have a prior no stronger than the factors' own spread
    supports** (``spread_z``, empirical Bayes). A prior of a visit says the hour is like the day's mean and leaves the
    level to make up the rest of the day; where nights fall to 5% of it (a business application's) a night's factor
    after one visit was halfway to 1, ten times the night's rate, and a sparse series' level (hours of memory) cannot
    make that up: 101 of 200 healthy series at 0.01-0.1 req/s raised a drop on their second and third days
    (synthetic, 60 s windows), and a 40-model fleet with such nights paged three times on its second day for models
    at 0.01-0.03 req/s. So once seasoned the prior is drawn towards a gamma prior of mean 1 whose variance is the
    hour factors' variance across the 24 buckets beyond what Poisson noise of dispersion ``phi`` explains, less
    ``spread_z`` standard errors of that noise (a flat series' buckets, whose spread is noise, keep a visit's prior):
    not at all where the level's memory ``tau`` is ``tau_s``, in full from ``judged_tau_s`` (about 0.04 req/s),
    linearly between. 17 of the 200 (6 while the day factors were steps;
    ``tests/unit/test_throughput_seasonal_band.py``). At every rate it also did for busier series what it does for
    sparse ones, but there the level had followed the day with factors of half its amplitude, and the factors'
    change at the end of the first day read as a drop (two false pages on that fleet at 1.7 and 3.2 req/s, at
    24 h). 0 = off.
    Hour bucket ``b`` stands for the rate at ``b:30``; between two such centres the factor is interpolated
    linearly, and each of the two buckets learns a window in its share: as steps, the factors erred by up to a
    tenth of the rate in a day whose trough is a quarter of its peak, which the charts read as drops and surges.
    The week's buckets are **quarter days** (UTC; bucket ``q`` stands for the middle of its six hours), likewise
    interpolated between their centres. As days interpolated between noons, a weekend eased in over six hours of a
    model's morning was a drop to a sparse series' level all the same (200 healthy series at 0.01-0.1 req/s with
    weekends at 30%, 1 s windows: 221 false drop episodes on their first weekend, 191 on their second; with the
    weekend eased in linearly between noons, none); as a step at midnight, every model whose weekend eased in or out
    across that midnight read it as a drop (at 1-100 req/s and weekends at 60%, 197 episodes on the second Sunday;
    ``tests/unit/test_throughput_weekly.py``). They learn from the second day (the first day's season's level is a
    running mean of hours, and a bucket learned against it reached into the next day), against the **week's
    level**, an EWMA of the rate without its hours over ``week_memory_s`` (a week; a running mean until then):
    against the season's level, which follows a weekend within a day, the learned week trailed the true one by
    about a day (Friday 0.76, Sunday 1.28 for a weekend at 60%; session 26's measurement). Their prior is
    worth a day at the level (four of their visits) and, from the second day, a sparse series' is drawn towards their
    own spread as the hour buckets' is: a weekend's factor is then its own after a visit, not a fifth of the way
    there; with a quarter's worth, a bucket in its first visit followed a second day's surge as a level does, and
    read its end as a drop. In the series' **first week** they learn under a suspicion too, until it crosses its
    threshold: every bucket is then in its first visit and has nothing to tell the traffic's own week from a drop,
    and kept from it, a first weekend that raised a suspicion left its quarters empty (factor 1) and raised it again
    the next week (the law above: 49 -> 6 episodes in 13 days; a first-week outage is still paged and, once it has
    crossed, not learned). From the second day the **half hours** likewise learn under a suspicion that has not
    crossed its threshold, at ``suspect_learning`` (0.5) of a window's weight: kept from every suspicion, a half
    hour whose null was off learned only on the days it already fitted, so a business day's evening ramp raised a
    drop evening after evening (400 healthy series at 0.05-5 req/s, ramps of 2 h, 60 s windows: a drop on 45 / 23 / 13
    of them on days 3 / 4 / 5, 20 / 6 / 1 so; ``tests/unit/test_throughput_business_days.py``). The hours do not:
    the half hours are in use only where they stand beyond their noise of the hours (a ramp, not a sine), while hours
    that learn a drop's first minutes find fewer -30% drops on a sine (second-day drops found within the hour, 300
    series: 205 -> 197 with the hours learning too, 205 so). 0 = under no suspicion.
    The buckets learn each window against the **season's level**, an EWMA of the deseasonalized rate over
    ``season_memory_s`` (a day; from the first window, as a running mean until then), not against the level: a
    level of an hour's memory (half an hour's now) follows the day, so buckets learning against it learned only its
    lag (after five days of a 4x day at 100 req/s the hour factors spanned 0.74-1.29 for a true 0.41-1.60, their
    peak six hours early, and the expected count 19% off at its 95th percentile; against the season's level
    0.50-1.36 in phase, 7%, and 4% with the weaker prior from the second day). On the first day the factors are
    the day so far, which keeps sparse series' daily rise from reading as a surge; the hours a suspicion keeps them
    from learning stay at 1, so a first-day suspicion **holds the season** where it was at its onset, and when it
    ends the level and its kin move to the factors' units (the expected count goes on where it was): held in the
    onset's units, the level read the decline after a first-day drop as a second drop. A series whose memory
    must be longer than ``judged_tau_s`` (2 h: under about 0.04 req/s on average) has its drops judged once it has
    seen a day; its surges from its first events (the surge's ceiling below).

    **The level's memory is half an hour** (``tau_s``; longer where ``tau_events`` need it). With an hour, a fleet
    whose nights are 2.6% of its peak (``load/detection_harness.py --models 40 --hours 48 --seed 5 --seasonality 0.95
    --weekend 0.3``) paged 53 times for nothing in two days: through the steep evening decline of the first day the
    level stood 13-25% above the rate, past what the lag's forecast below makes up, and the small chart's suspicion
    then kept those hours' factors from learning, so the second day paged at the same hours. Half an hour lags half
    as far: 4 false pages. The overdispersion keeps at least ``dispersion_s`` (an hour) of memory: a noisier ``phi``
    divides every chart's evidence (-30% drops at 1-5 req/s on a second day found later than 1,200 s: 4 of 120 with
    it, 6 with ``phi`` at half an hour, 2 with both at an hour). The cost is in the first day's smaller and sparser
    changes: the level absorbs more of a -30% drop before the chart's suspicion slows it. docs/detection.md, "The
    level's memory at half an hour".

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
    the trend from before the suspicion (they move with the level until it has caught up: learning the
    catch-up after a lasting rise's surge episode read it as a rise of 1.36x a memory, and a drop's
    reference raised by it stood 1.2-3x above the rate for the rest of the day). Without it, a two-hour drop on the first day left the level
    where the cycle had been two hours before, and the model's own afternoon decline after the drop
    ended read as a second drop (two pages for one -30% drop in a 20-model day of
    ``load/detection_harness.py``; ``tests/unit/test_throughput_first_day.py``).

    **A surge is not learned while it is suspected.** The level learned an hour's x3 surge ten times slower and
    still ended it 1.2-1.6x above the rate, so the model's own rate read as a drop once the surge ended: 172 of 600
    synthetic first-day series (0.05-5 req/s, 60 s windows, a x3 surge of an hour at a random time) and 285 of 600 on
    the second day raised a false drop after it (the 200-model day's one false page, model-099). Under a surge's
    suspicion the level and the quick level now learn each window's count only up to the surge's ceiling, for the
    first ``SURGE_CLIPPED`` memories of it (``behind``): 0 and 6 of 600 (7 with no surge at all).

    **The surge's ceiling** (``max(floor, lag, fast * lag ** (tau_s / tau))``). The surge is judged from a
    series' first events (gated as the drops are, a x3 surge at the trough of a 0.06 req/s model's first day
    waited for the level to learn it: 3,449 s where the data allow 650 s) against the highest the rate may be now: the
    level, the rate of the last ``tau_s`` (``_fast``, learning ten times slower under any suspicion: learning a
    first-day drop at full speed, it made the hour of the drop the surge's reference, and the traffic coming back
    read as a surge) and their trend forecasts. Without the hour's rate, a level frozen by suspicion below
    the first day's rise, or expecting too little from hour factors that had seen one visit at the start
    of the second day, raised false surges on healthy sparse series (``tests/unit/test_surge_sparse.py``).

    Each CUSUM is designed for the minimum effect that matters (``drop`` and ``surge``
    ratios): a window adds ``(x ln r - lambda (r - 1)) / phi``, where ``phi >= 1`` is the
    learned overdispersion (quasi-Poisson: real traffic at 5,000 req/s varies more than
    Poisson), an EWMA of each window's Pearson residual ``(x - lambda)^2 / lambda`` with the level's
    memory or ``dispersion_s``, the longer. **It does not learn under a drop's suspicion**: it learned the deficit
    ten times slower, as the level did (1.0 to 1.14-1.18 over an hour at 0.1x of 3 req/s, 1 s windows), and every
    chart's evidence stayed divided by that for hours after. Under a surge's it still learns (1.0 to 1.6 over an
    hour's x3 at 1 req/s, 1.1 to 6.9 in a live trace): frozen there, it no longer masked the drop that a
    first-day level left 1.5x above the rate in the decline reads after the surge (4 and 3 of 200 series of
    ``test_a_surge_that_ended_is_not_read_as_a_drop``; ``tests/unit/test_throughput_dispersion.py``). **It
    learns from the series' warm-up**, when the surge CUSUM starts, not only once drops are judged: a series
    under about 0.04 req/s has its drops judged from the second day, and with ``phi`` at 1 until then requests
    in batches (geometric, two on average: three times Poisson's variance) raised a false surge on 30 of 200
    such series over their first day (none once ``phi`` learns). Its
    drift is negative for changes smaller than ``(r - 1) / ln r`` (0.72x for a 0.5 drop ratio, 1.44x for a
    2.0 surge ratio): those never fire, larger ones always do.

    A -30% drop is under the 0.72x, so a second drop CUSUM is designed for ``small_drop`` (0.7;
    it drifts up below 0.84x), as the latency bank runs one for a slow creep. The drop CUSUMs
    share one statistic's false-alarm budget (below: this one fires at ``h + ln 4``, reported as
    ``cusum - ln 4``; a window's most grows with it). While the large one is above a third of its
    threshold the small one holds at most its threshold, so after a large drop the episode ends
    about as fast as before, and during a drop between the two it stays one episode. Before a series
    has seen a day its null is the level and its lag, which are not always within the 0.84x it
    tolerates (at its usual threshold it fired on 6 of 600 healthy diurnal series, synthetic, 60 s
    windows), so there it fires at ``small_first_day`` (1.75) times its threshold (0 = not on the
    first day, as before 2026-12-03, when every -30% drop on the CI fleets' first day was missed).
    When the halving's falls back under a third after a first-day suspicion that left the level 1.5
    memories further behind (``behind``), the small one drops to a third of its threshold: against
    that stale level the model's own decline went on reading as 0.8x after the drop had ended (a
    re-fire, ``tests/unit/test_throughput_first_day.py``). The 1.5 lies between that case (1.6-1.7)
    and a -30% drop on a CI fleet that 1.0 split into two pages (``--small --seed 1``, model-005).

    **On a rise the drops' reference is raised towards the forecast, as far as a quick level's own forecast
    goes.** The lower end of the null is the level there, which trails a first day's morning rise (0.82x of the
    rate at its steepest with a 1 h memory), so a -30% drop read as 0.85x, beyond the 0.84x the small chart
    sees. The level's forecast alone raised false drops where the trend reading is late (turns of the cycle);
    a second EWMA of the same rate with ``quick_memory`` (0.5) times the level's memory (``_quick``, learning
    ten times slower under the same suspicion) trails less and its forecast extrapolates the same trend over
    half the horizon, so the drops are tested against ``level x min(lag, quick / level x lag ** quick_memory)``
    when that is higher than the lower end. Not while a level that was held by a suspicion catches up
    (``behind`` at ``CAUGHT_UP`` or more, outside a suspicion): the smoothings then read the catch-up as a rise
    (a false drop on a healthy 0.09 req/s series of the synthetic first-day law, 60 s windows). 0 = off.

    **Busy wandering traffic: the drops are also tested against a recent level.** Over half an hour a busy rate
    wanders (``rough()``: an Ornstein-Uhlenbeck walk of sd 0.1 and 30 minutes) as far as a -30% drop's share of
    it, so against the level and the wander's band learned against it a drop read as 0.85x, and at 80 req/s 70 of
    100 such drops were found where the requests allow seconds (docs/detection.md, session 33). A second EWMA of the
    rate with a memory of ``recent_s`` (120 s; the ``_f`` columns ``recent``...) trails the walk far less; its
    wander ``v`` is learned from the same blocks against its own expected count (under a suspicion into its own
    shadow), its own Poisson error (``phi / (2 rate recent_s)``) is added, and the drops are tested against the
    higher of the two lower ends where that band is within ``MAX_BAND`` (from about 0.3 req/s of Poisson traffic,
    1 req/s in batches of two). It learns ten times slower under a suspicion, as the level does, and under a
    surge's no more than its own expected count. Found, of 100 a rate: 87 / 98 / 58 at 80 / 300 / 20 req/s
    (70 / 76 / 55 without); no quiet series raised a drop more in 32 h at 3-300 req/s. 0 = off.

    **From the second day the null is widened by the seasonal factors' own uncertainty.** Each hour-of-day and
    week factor is a shrinkage estimate whose prior is worth one visit of its bucket (a week bucket's a day); after a
    day, an hour factor of a 0.01 req/s series rests on a few dozen events, 10-15% of relative error, which the CUSUMs
    read as a lasting bias: the 0.7x chart (it drifts up below 0.84x) fired on 117 of 200 healthy diurnal series at
    0.01-0.1 req/s over their second and third days (synthetic, 60 s windows; 114 of 200 at 10 s), and on a
    20-model fleet of ``load/fleet.py`` (0.01-5 req/s, 48 h) paged five times on its second day, all on models at
    0.01-0.02 req/s. So once a series is seasoned the drops are tested against ``lam_down (1 - band)`` and the
    surge against ``lam_up (1 + band)``, ``band = seasonal_z`` standard errors of the factors (a gamma
    posterior's relative error, ``sqrt(1 / (hour events + prior) + 1 / (day events + prior))``, at most
    ``MAX_BAND``): 2.7% at 1 req/s after a day, 0.5% at 20 req/s, 10-20% at 0.01-0.05 req/s, shrinking as the
    buckets fill. ``seasonal_z`` 2: 4 and 1 of those 200 series (3: none, at a larger cost below); the cost, on
    the same synthetic law's second day (60 s windows, 40 series a rate): -30% drops of two hours found 34 -> 28
    of 40 at 1 req/s, 33 -> 31 at 5 req/s, 9 -> 1 at 0.05 req/s (where the bias found them as much as the drop);
    -90% drops median 932 -> 1,140 s at 0.05 req/s and the same from 1 req/s; x3 surges 39 -> 36 of 40 found at
    0.05 req/s. 0 = off (this band is none on the first day: its factors are not in use).

    **Once seasoned, the day's half hours draw what its hours cannot: a business day's ramps.** Beside the 24 hour
    buckets the hour tables hold the day's 48 half-hour buckets (72 columns), learned alike (each window in its share
    of the two it lies between). Hour buckets alone, linear between their centres, draw a ramp of one or two hours
    over three (with ramps of an hour, the evening's expected count stood up to 1.7x above the traffic): on a business
    day (``load/fleet.py``'s ``business_ramp_h``: nights at 10% of the day, ramps of two hours at 08:00 and 17:00
    local) 250 of 400 healthy series at 0.05-5 req/s raised a drop on their fourth day. So the hour factor moves towards the half hours' (their
    prior half the hours') as far as they stand more than ``half_hour_z`` standard errors (Poisson noise of dispersion
    ``phi``) from it; and where the half hours bend up (down) the drops' expected count is lowered (the surge's
    raised) by ``bend w (1 - w)`` times the larger second difference of the two centres, less ``bend_z`` of its
    standard errors, over the factor (at most ``MAX_BAND``): a chord between two centres is up to half the second
    difference from a day that turns at a corner between them. 28 of the 400 on their fourth day
    (``tests/unit/test_throughput_business_days.py``); on a sine the half hours stand within their noise and it bends
    gently, and second-day -30% drops are found as before (205 of 300 against 206). ``half_hour_z`` inf or ``bend`` 0
    = off. docs/detection.md, "Business days".

    **While the level's memory fills, the null is widened by the level's own uncertainty.** A level learned from
    ``events`` requests of dispersion ``phi`` is ``sqrt(phi / events)`` of itself off (one standard error), and
    the CUSUMs read that as a lasting bias: a 0.3 req/s series whose first minute was a batch at 0.83 req/s went on
    at 0.2-0.5 req/s and paged a drop from its third minute (``load/detection_harness.py --models 200 --rough``).
    So until it has seen ``tau_events`` events the band is at least ``level_z`` such errors, fading linearly to
    none at ``tau_events`` (the level's memory is then full and its error is the wander's and the season's),
    combined with the seasonal band by the larger and at most ``MAX_BAND``. 0 = off.

    **Busy traffic wanders more than Poisson over minutes, and the null reaches as far.** A rate that moves +-10%
    from one minute to the next is nothing in a 1 s window at 10 req/s (``phi`` 1.1), yet the small chart, which
    accumulates over minutes, read a low minute or two as a -30% drop: 273 false drop episodes in 40 healthy
    series at 0.3-10 req/s over two days (synthetic, 1 s windows), 447 in 16 at 10 and 100 req/s over 12 hours;
    an Ornstein-Uhlenbeck wander of the log rate (sd 0.1, half an hour) 264 in the 40. So each series sums its
    windows into blocks that close once they expect ``block_events`` requests (or span ``block_s``); a closed
    block's squared deviation beyond the null's ends (none within them: the first day's lag is in the null
    already), less what the windows' ``phi`` explains, over its expected count squared, is learned into ``v``,
    the rate's relative variance over a block (an EWMA with the level's memory; nothing while cold). Under a
    suspicion the blocks teach a **shadow** of ``v`` instead, which becomes ``v`` when the suspicion ends unless
    the series crossed its threshold in it: a dip that raised suspicion and went away is the traffic's wander,
    and those are the blocks a calm-only ``v`` never saw (a half-hour walk of sd 0.1 at 10 req/s: 79 false drop
    episodes over two days, 6 with the shadow, -30% drops found as before). Where a block of ``block_s`` expects
    ``wander_events`` requests (0.83 req/s; ``wander_events_first_day``, 1.67 req/s, before the series has seen a
    day: below them Poisson noise outweighs such a wander, and on the first day a wider null costs -30% drops at
    0.4-3 req/s, docs/detection.md), **or wherever the wander is heard over the noise** (``v`` times a block's
    expected count at least ``wander_over_noise`` times ``phi``: the wander's variance over a block at least the
    block's Poisson variance), the drops' expected count is lowered and the surge's raised by ``wander_z`` standard
    deviations (``wander_z sqrt(v)``, at most ``MAX_BAND``), as far as the level's lag does not already reach (in a
    first-day decline the lower end is already 0.8x of the rate). The event gates alone ignored a wander plain to see
    below them: a 0.65 req/s model of a rough fleet whose walk fell 30% within an hour of its first day's decline had
    learned ``v`` 0.0067 (a block's wander 1.4 times its Poisson variance at ``phi`` 2.6) and paged a drop twice
    (``load/detection_harness.py --models 40 --hours 48 --rough --seed 2``; ``tests/unit/test_throughput_wander.py``).
    On a first day ``v`` also holds the null's own error, so this costs -30% drops there on smooth traffic (at 2, a
    wander twice the Poisson variance, fewer; docs/detection.md). The cost on smooth Poisson series (measured while
    the hour factors were steps, their null a few percent off within an hour): -30% drops of an hour at 3 and 10
    req/s found within it 39 -> 35 of 40 (``tests/unit/test_throughput_wander.py``: on a second day all 16 at
    3-100 req/s within 1,200 s, as before); in wandering traffic a -30% drop is harder to tell from the wander, as it should be.
    0 = off (``block_s`` or ``wander_z``).

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

    _COLUMNS = ("n", "first", "events", "level", "phi", "down", "up", "down_since", "up_since", "down_x", "up_x",
                "recent", "recent_block", "recent_v", "recent_shadow")
    _TABLES = {"_hour_obs": (72,), "_hour_exp": (72,), "_day_obs": (28,), "_day_exp": (28,), "_slow": (2,),
               "_behind": (), "_small": (3,), "_fast": (), "_deep": (3,), "_quick": (), "_block": (9,),
               "_season_level": (4,)}
    """``_slow``: the level smoothed twice and three times with its own weights (0: none yet, as in snapshots
    from before them); ``_behind``: how much further than one memory the level lags (in memories);
    ``_small``, ``_deep``: the small- and the deep-drop CUSUM, each with its onset and the requests since
    (0: none yet, as in snapshots from before them); ``_quick``: the quick level (0: the level, as in snapshots
    from before it); ``_block``: the current block's windows, count and the null's two ends summed, the blocks learned
    and ``v``, the rate's relative variance over a block, then its shadow: ``v`` and the blocks learned as they would
    be if the current suspicion is the traffic's own wander, and the shadow's state (0: no suspicion; 1: one is on;
    2: and the series crossed its threshold in it; 3: and the halving's or the deep drop chart crossed) (0: none yet,
    as in snapshots from before it or its shadow);
    ``_f``'s last four columns: the recent level, the current block's expected count by it, its ``v`` and that
    ``v``'s shadow (0: the level and its ``v``, as in snapshots from before it);
    ``_hour_obs``, ``_hour_exp``: the day's 24 hour buckets, then its 48 half-hour buckets (a snapshot with the 24 alone
    restores each hour over its two halves, :meth:`set_rows`);
    ``_season_level``: what the hour buckets learn against (0: the level, as in snapshots from before it), the
    season held through a first-day suspicion (0: none), what the week buckets learn against (0: the season's
    level, as in snapshots from before it), and the windows since the level restarted after a first-day drop (0: not
    restarting, as in snapshots from before it)."""
    _ACCUMULATORS = ("down", "up", "down_x", "up_x")

    def __init__(self, drop: float = 0.5, surge: float = 2.0, tau_s: float = 1800.0, tau_events: float = 300.0,
                 min_events: float = 30.0, min_windows: int = 10, prior_events: float = 20.0,
                 hour_memory_days: float = 7.0, day_memory_weeks: float = 4.0, small_drop: float = 0.7,
                 deep_drop: float = 0.25, small_first_day: float = 1.75, quick_memory: float = 0.5,
                 seasonal_z: float = 2.0, block_s: float = 600.0, block_events: float = 2000.0,
                 wander_z: float = 2.0, season_memory_s: float = 86_400.0, later_prior: float = 0.25,
                 wander_events: float = 500.0, wander_events_first_day: float = 1000.0, level_z: float = 2.0,
                 wander_over_noise: float = 1.0, dispersion_s: float = 3600.0,
                 judged_tau_s: float = 7200.0, spread_z: float = 2.0, week_memory_s: float = 604_800.0,
                 half_hour_z: float = 2.0, bend: float = 2.0, bend_z: float = 2.0, recent_s: float = 120.0,
                 suspect_learning: float = 0.5):
        self.drop, self.surge, self.small_drop, self.tau_s, self.tau_events = drop, surge, small_drop, tau_s, tau_events
        self.deep_drop, self.small_first_day, self.quick_memory = deep_drop, small_first_day, quick_memory
        self.seasonal_z, self.block_s, self.block_events, self.wander_z = seasonal_z, block_s, block_events, wander_z
        self._drops = np.array([drop, small_drop, deep_drop])
        self._drop_penalty = _chart_penalties(self._drops.size)
        self._consts = np.r_[tau_s, tau_events, min_events, min_windows, prior_events, hour_memory_days, day_memory_weeks,
                             surge, np.log(surge), small_first_day, quick_memory, seasonal_z, block_s, block_events,
                             wander_z, season_memory_s, later_prior, wander_events, wander_events_first_day, level_z,
                             wander_over_noise, dispersion_s, judged_tau_s, spread_z, week_memory_s, half_hour_z, bend,
                             bend_z, recent_s, suspect_learning, self._drops,
                             np.log(self._drops), self._drop_penalty]
        """What ``native/src/banks.rs`` reads of the parameters (``Poisson::new``)."""
        self.min_events, self.min_windows, self.prior_events = min_events, min_windows, prior_events
        self.hour_memory_days, self.day_memory_weeks = hour_memory_days, day_memory_weeks
        self.season_memory_s, self.later_prior = season_memory_s, later_prior
        self.wander_events, self.wander_events_first_day, self.level_z = wander_events, wander_events_first_day, level_z
        self.wander_over_noise, self.dispersion_s, self.judged_tau_s = wander_over_noise, dispersion_s, judged_tau_s
        self.spread_z, self.week_memory_s = spread_z, week_memory_s
        self.half_hour_z, self.bend, self.bend_z, self.recent_s = half_hour_z, bend, bend_z, recent_s
        self.suspect_learning = suspect_learning
        self._init_state()

    def set_rows(self, slots: np.ndarray, values: dict[str, object]) -> None:
        """:meth:`_Bank.set_rows`, also from a snapshot whose week buckets were days (seven, noon-centred, before
        quarter days): each day's counts are spread evenly over its four quarters, so its factor is kept; and from
        one whose hour tables had no half hours (24 columns): each hour's counts are spread evenly over its two
        halves (empty half hours would read a factor of 1 against the hours' own)."""
        older = {"_day": (7, lambda t: np.repeat(t, 4, axis=1) / 4),
                 "_hour": (24, lambda t: np.hstack([t, np.repeat(t, 2, axis=1) / 2]))}
        now = {f"{cycle}{part}": widen(table) for cycle, (width, widen) in older.items() for part in ("_obs", "_exp")
               if isinstance(table := values.get(f"{cycle}{part}"), np.ndarray) and table.ndim == 2
               and table.shape[1] == width}
        super().set_rows(slots, {**values, **now})

    def score_learn(self, slots: np.ndarray, x: np.ndarray, t_ms: np.ndarray, window_s: float, h: float,
                    max_step: float = np.inf) -> Evidence:
        """Judge and learn one window's count per slot; ``t_ms`` is each window's start.

        The recursion is native (``poisson_args``, ``poisson_step`` in ``native/src/banks.rs``), in this order
        per series: the expected count ``level * hour factor * week factor * window`` (each factor a shrinkage
        estimate whose prior is worth one visit of its bucket at the current level, a week bucket's a day's, a
        sparse series' from the second day no more than their spread supports); the level's memory
        ``tau`` (``tau_events`` events, at least ``tau_s``, at most a week); warm once it has ``min_windows``
        windows and ``min_events`` events, its drops judged once ``tau <= judged_tau_s`` or it has seen a day;
        suspicion from the halving's and the small drop's CUSUMs past a third of their thresholds, or the
        surge's; the level's lag (twice- over thrice-smoothed level, to the power ``1 + behind``) lowering the
        drops' expected count on a decline (on a rise the quick level's forecast raises it towards the level's),
        the surge's ceiling raising the surge's, both ends moved out by the seasonal band and by the rate's wander
        over a block where the lag does not reach as far; the three drop CUSUMs (each adds ``(x ln r - lam (r - 1)) /
        phi``, at most a window's most, which grows with its share of the budget; the
        small one at ``small_first_day`` times its threshold on the first day and held at its threshold while the
        halving's is past a third of its own, at a third of it when that ends a long first-day suspicion)
        and the surge's (the drops' null the higher lower end of the level's and, where its band is within
        ``MAX_BAND``, the recent level's); then the level, the hour's rate, the quick level (these two no further
        than the surge's ceiling under its suspicion), the overdispersion (not under a drop's suspicion), the block
        and its wander (under a suspicion into its shadow), the recent level, its block and wander (likewise), the
        smoothings (which move with the level, keeping the trend from before a suspicion, until it has caught up),
        ``behind``, the seasonal buckets (the two hour buckets around the
        window in their shares against the season's level, the two week buckets against the week's) and the
        season's and the week's levels (none under suspicion, but the week buckets in the series' first week until
        the suspicion crosses its threshold) learn. On a series' first day, once a drop that crossed the halving's or
        the deep chart's threshold ends (its suspicion over, or a surge's taking over), the level and its kin restart:
        the charts go to 0, the events are counted anew, and the level is the running mean of the windows since
        (``_season_level``'s last column counts them) until its share falls under its own rate. The judge sees the
        drop chart furthest along less its share of the budget, or the surge's when it is higher. numpy takes the
        powers and the learning rates' ``expm1``, so the values are its own."""
        slots = self._prepare(slots)
        x, t_ms = np.asarray(x, dtype=np.float64), np.asarray(t_ms, dtype=np.float64)
        n = slots.size
        tables = [getattr(self, name) for name in self._TABLES]
        args = np.empty((8, n))
        _native.poisson_args(self._f, tables, self._consts, slots, t_ms, h, window_s, args)
        lag = args[0] ** args[1]
        out, since, kind, flags = np.empty((3, n)), np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int8), np.empty(
            (2, n), dtype=bool)
        _native.poisson_step(self._f, tables, self._consts, slots, x, t_ms, h, window_s, max_step, lag, lag ** args[2],
                             lag ** self.quick_memory, np.expm1(args[3:]), out, since, kind, flags.view(np.uint8))
        cusum, observed, baseline = out
        return Evidence(cusum, kind, since, observed, baseline, flags[0], flags[1])


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

    **Errors in clumps.** A client retrying a failed call, a restart failing its in-flight
    requests: errors often come several in one window, and read as independent trials a clump
    of two at a usual 0.5% is strong evidence. Errors in clumps of two on average (geometric)
    at 2-50 req/s fired 6 of 12 healthy series within 6 hours (``tests/unit/test_error_dispersion.py``).
    So every chart's evidence is divided by the errors' dispersion ``D = 1 + excess / (err + prior)``,
    ``excess`` the pooled ``(e - n p0)^2 - e`` (the variance of a window's errors beyond their mean,
    0 on average for independent errors at any rate: a window of one request adds nothing) as the
    throughput bank divides by ``phi``: a quasi-likelihood, about 3 for clumps of two. It is learned
    as the pooled rate, once warm; a window that is or leaves the series past a third of ``h`` is held
    apart (``pending``) until the series is back under a third (then it was the series' clumps) or
    fires (then it was a burst's: its first window, 19 errors of 58 over a usual 1%, is a residual of
    321, and learned at once it made ``D`` 10). ``D`` is at least 1. It divides the window's most too (the judge's
    ``h / 2``): a client's batch fails as one, so at a sparse series a window of errors may be a single clump, and
    two such windows in a row reached ``h`` whatever ``D`` was (rough seed 3's model-003 at 0.61 req/s, batches of
    7 and 5 failing 23 s apart). A strong burst at a series whose ``D`` came out a little over 1 takes a third
    window where it took two.

    **Several errors in one window may be one clump, until the series has seen its own.** A young series has
    learned ``D`` from a handful of errors, mostly alone in their windows, so its first large clump (a batch of ten
    failing as one) read as ten independent failures, and a second clump soon after fired it: 12 false alarms in
    8,000 healthy series' first three hours at 0.3-10 req/s (Poisson batches of geometric size two failing as one,
    as ``load/fleet.py``'s ``rough()``; 7 in the first hour; over a day, 1,000 series raised 4, none after 1.04 h), and
    rough seed 20's one false page (``load/detection_harness.py --small --rough --seed 20``, model-016 at 1.83
    req/s, 0.39 h into its life). So a window with more than one error is judged with at least the dispersion
    learned beside ``clump_prior`` pseudo-errors of dispersion ``clump_dispersion`` (one pseudo-error at 3, the
    index of clumps of two): 2 before any error, 1.4 after 3 errors, 1.06 after 30 (with none in clumps). A lone
    error in its window is no clump, so sparse series (windows of one request) keep their evidence. None of the 12
    fires now. 13% bursts 1.5-5 h into such series' lives (1,000 series) found within 300 s at 0.3-1 req/s 129 ->
    114 of 319 (one, at 0.3 req/s, not within its hour), at 1-10 req/s 626 -> 625 of 681; the bursts of
    ``load/errors_null.py`` (independent errors, seasoned series) at 0.05-0.2 req/s within 900 s 29 -> 28, every
    other band the same. 0 = off.

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

    _COLUMNS = ("seen", "t", "err", "req", "s", "since", "since_err", "since_req", "excess", "pending")
    """``s``, ``since``, ``since_err``, ``since_req``: the CUSUM designed for ``ratio``, its onset and the
    errors and requests since; the other designs' in ``_charts`` (``charts - 1`` rows of the same four).
    ``excess``: the pooled ``(e - n p0)^2 - e`` (the errors' variance beyond their mean), decayed as ``err``;
    ``pending``: the same of the windows since the series passed a third of ``h``, not yet the series' own (a new
    version inherits ``excess``, not ``pending``).
    Both 0 in a snapshot from before them."""
    _ACCUMULATORS = ("s", "since_err", "since_req", "pending")
    _CHART = ("s", "since", "since_err", "since_req")
    _DISPERSED = True
    """Whether the evidence is divided by the counts' learned dispersion ``D`` (``excess`` learned)."""

    def __init__(self, ratio: float = 3.0, tau_s: float = 6 * 3600.0, min_requests: float = 200.0,
                 prior_rate: float = 0.005, prior_requests: float = 200.0, floor: float = 0.001,
                 clump_prior: float = 1.0, clump_dispersion: float = 3.0):
        self.ratio, self.tau_s, self.min_requests = ratio, tau_s, min_requests
        self.prior_rate, self.prior_requests, self.floor = prior_rate, prior_requests, floor
        self.clump_prior, self.clump_dispersion = clump_prior, clump_dispersion
        self.charts = max(1, int(np.ceil(np.log(0.5 / floor) / np.log(ratio))))
        self._penalty = _chart_penalties(self.charts)
        self._ratios = ratio ** np.arange(1.0, self.charts + 1.0)
        self._log_ratios = np.log(self._ratios)
        self._consts = np.r_[prior_rate * prior_requests, prior_requests, floor, min_requests, tau_s,
                             float(self._DISPERSED), clump_prior, clump_dispersion, self._ratios, self._log_ratios,
                             self._penalty]
        """What ``native/src/banks.rs`` reads of the parameters (``Bernoulli::new``)."""
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
        (the leading CUSUM less ``ln(charts)``: the tail's bound is held by it).

        The recursion is native (``bernoulli_args``, ``bernoulli_step`` in ``native/src/banks.rs``): per
        series, ``p0`` is the pooled rate shrunk towards the prior; each chart adds ``min(e ln(p1 / p0) +
        (n - e) ln((1 - p1) / (1 - p0)), most) / D`` (a window's most grows with its penalty), is
        clipped to ``[0, CAP h + penalty]`` and held at 0 until warm; a chart leaving 0 takes the window's
        onset and counts its errors and requests afresh. Only a series with errors now or a chart above 0
        moves its charts (a window without errors only lowers them). The leading chart less its penalty
        is reported. Then the pooled sums decay by the event time since the series last had requests (a
        running sum while warming up); under suspicion a window counts a tenth and the memory is ten
        times longer, and ``excess`` learns a window at once only where the statistic was and stays under a
        third of ``h`` (else through ``pending``).
        numpy takes the logarithms and the decay's exponential, so the values are its own."""
        slots = self._prepare(slots)
        e, m = np.asarray(errors, dtype=np.float64), np.asarray(requests, dtype=np.float64)
        t_ms = np.asarray(t_ms, dtype=np.float64)
        n = slots.size
        args = np.empty((self.charts + 3, n))
        _native.bernoulli_args(self._f, self._charts, self._consts, slots, e, t_ms, h, window_s, args)
        out, since, flags = np.empty((4, n)), np.empty(n, dtype=np.int64), np.empty((2, n), dtype=bool)
        _native.bernoulli_step(self._f, self._charts, self._consts, slots, e, m, t_ms, h, window_s, max_step,
                               np.log(args[0]), np.log1p(args[1:-1]), np.exp(args[-1]), out, since, flags.view(np.uint8))
        reported, observed, p0, reported_prev = out
        return Evidence(reported, np.zeros(n, dtype=np.int8), since, observed, p0, flags[0], flags[1]), reported_prev

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

    def dispersion(self, slots: np.ndarray) -> np.ndarray:
        """The learned dispersion ``D`` of series ``slots``, which divides their evidence (1: independent trials)."""
        err, excess = self.state("err", slots), self.state("excess", slots)
        return 1.0 + np.maximum(excess, 0.0) / (err + self.prior_rate * self.prior_requests)


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
    ``1 - quantile``). Its evidence is not divided by a learned dispersion (``_DISPERSED``): the
    bound follows the latency reference, so what varies beyond the mean is mostly the bound and a
    busy series' window-level wobble, and a dispersion learned from them (40-50 in
    ``tests/unit/test_latency_tail.py``'s first windows) hid a busy regression.
    Per-request evidence: one request at 0.05 req/s counts for one and 5,000 for 5,000, and
    counting the requests over a bound is O(1) per request. The share is measured against
    the same bound it is judged by, so a tail heavier than the lognormal reference only makes
    the usual share larger than 1%, never a false alarm by itself; a +3% deploy moves it
    to about 1.3% (its drift is negative below about 2.5%).

    The bound follows the reference but is held while this CUSUM is under suspicion (above a
    third of ``h``): the latency reference learns its spread from every window, and an
    incident must not lift its own bar.
    """

    _DISPERSED = False
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


def _law_tables(top: int) -> tuple[np.ndarray, np.ndarray]:
    """The nearest-rank median of ``n`` normal draws (in standard deviations): its mean for ``n`` up to ``top``,
    and the mean gap from it to the nearest-rank 95th percentile (``latency_step`` looks them up by ``n``).

    Rank ``ceil(n / 2)``: the middle one for odd ``n`` (unbiased), the lower middle for even
    ``n`` (Blom's approximation of its mean: -0.59 at n = 2, -0.30 at n = 4). Its variance,
    ``pi / (2 (n + pi/2 - 1))`` (1 for one draw, ``pi / 2n`` for many), is computed there. Beyond
    ``top`` draws the bias is below 0.01."""
    m = np.maximum(np.arange(top + 1, dtype=np.float64), 1.0)
    bias = ndtri((np.ceil(m / 2) - 0.375) / (m + 0.25))
    return bias, ndtri((np.ceil(0.95 * m) - 0.375) / (m + 0.25)) - bias


_LAW_MAX = 4096
_BIAS, _GAP = _law_tables(_LAW_MAX)


class LatencyCusumBank(_Bank):
    """The window's median latency against a long-horizon reference: an upward Gaussian CUSUM.

    Per-request log latency is modelled as ``N(mu, sigma^2)`` plus a window-level wobble
    of variance ``tau^2`` (busy models slow down and speed up with load, more than their
    sampling noise). A window with ``n`` requests gives its median ``m``: the residual
    ``r = log m - mu - sigma b(n)`` has variance ``v = sigma^2 s^2(n) + tau^2``
    (:func:`_law_tables`), so one request at 0.05 req/s and 5,000 requests in a busy
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
    Its evidence fades with ``creep_memory_s`` (6 h) of event time (``c`` times ``exp(-elapsed / creep_memory_s)``
    before each served window): on a sparse series a small offset adds up for a day, against a reference its own
    suspicion slowed ten times, while the latency's daily cycle goes on. Rough seed 3's model-039 (0.01 req/s,
    ``load/detection_harness.py --models 40 --hours 48 --rough --seed 3``) climbed about a nat an hour for 22
    hours and paged a creep on its second day; a median swinging +-12% over the day at 0.011 req/s fired 8 of 20
    series over two days, none with the fading. A creep of +2% every 10 minutes adds up far faster: at 0.011-0.3
    req/s the median delay grew by 0.2-1.3% (a ``/tmp`` law of 20 series a rate; ``tests/unit/test_latency_creep.py``).
    0 = no fading.
    ``sigma^2`` comes from the window's own spread (``log p95 - log p50``) when it has two
    requests or more, else from the residuals; ``tau^2`` from what the residuals show
    beyond ``sigma^2 s^2(n)``.

    The creep chart weighs its windows by a per-request variance of its own, ``sig2_c``: where a
    window kept its requests' latencies (``log_ss``, the judge's :meth:`_Rows.log_ss`), the unbiased
    sample variance of their logs; else as ``sig2``. A creep is found by adding up small shifts over
    many sparse windows, and at one to three requests a window the ``p95 - p50`` gap overstates
    ``sigma^2`` (a window of two reads 1.44 ``sigma^2``: Jensen): ``sig2`` is learned ~1.2x too large at
    0.72 req/s in 1 s windows, and every window's evidence is divided by it. The step chart and the
    tail family keep ``sig2`` (an unbiased spread there was measured to move a storm's pages:
    docs/detection.md, "Slow creep").

    **Both charts judge latency net of what the load explains.** Servers are slower at their daily
    peak (contention, batching, caches). The day's move is slow enough for the creep chart to read as
    a creep: at ``load ** 0.15`` (-13% at night, +7% at the peak of the realistic fleet's day) its
    reference trailed the rise by about the chart's break-even shift (+4.8%). Its suspicion then
    slowed that reference ten times, and the rest of the day's rise added up. The creep chart fired on
    most healthy series at 1-10 req/s, every day. The bank regresses each served window's log median
    (its median law's bias taken out) on the log request rate before it: an EWMA of ``load_tau_s``
    (12 h; a running mean at first; from warm windows; slowed under suspicion, as the references are).
    Every window's log p50 and p95 are then taken less ``b (ln rate - mean)``, before both references
    learn and both charts judge. The slope ``b`` is the covariance over the log rate's variance plus
    ``load_prior`` (0.02, so a morning's variation is not yet a slope), within ``+-load_max`` (0.5). Below 0
    too: a batching server waits longer to fill a batch when it is quiet, and a slope held at 0 or more
    read that night's rise as a creep on 68 of 80 healthy series at ``load ** -0.15`` on their first day
    (0 now). The price: a creep during a falling load is partly learned as a negative slope, so sparse
    creeps are found later (0.05-0.3 req/s: median delay +0-12%, the slowest tenth up to a third later;
    docs/detection.md). The distance ``ln rate - mean`` is held within ``load_reach`` (3) standard
    deviations of the log rate, so a throughput drop or surge far outside the day's range shifts latency
    by no more than the day does. A day whose nights fall to a tenth of its mean rate (``1 + 0.9 sin``)
    has its troughs 2.1-2.2 standard deviations below the mean log rate by the bank's own moments
    (skewed: its peaks about one above); held at two, a server slower when quiet was a few percent slower
    than explained for the hours about each trough, which the creep chart added up (docs/detection.md,
    "Deep nights"). The law of ``tests/unit/test_latency_load.py`` fires 0 of 40 series at ``beta`` 0.15
    (25 without the load) and at -0.15 (29 with the slope held at 0 or more). A series' load
    moments are part of its baseline: a new version inherits them. The references, the usual p95 and
    the summary's latencies are quoted at the window's load. ``load_tau_s`` 0 turns this off.

    The bank also tracks the series' request rate, so the judge can tell a series that
    stopped serving (``stopped``: it would have expected ``stop_requests`` requests since
    its last) from a sparse one between requests.
    """

    _COLUMNS = ("n", "req", "t", "mu", "sig2", "tau2", "p95", "s", "since", "since_x", "since_n", "rate", "quiet",
                "c", "c_since", "c_x", "c_n", "mu_c", "c_led", "sig2_c", "l_w", "l_m", "x_m", "l_v", "l_c")
    _ACCUMULATORS = ("s", "since_x", "since_n", "quiet", "c", "c_x", "c_n", "c_led")
    _STARTS_FROM = {"mu_c": "mu", "sig2_c": "sig2"}

    def __init__(self, ratio: float = 1.5, tau_s: float = 6 * 3600.0, min_requests: float = 20.0, min_windows: int = 10,
                 prior_sigma: float = 0.3, stop_requests: float = 10.0, rate_tau_s: float = 3600.0,
                 creep_ratio: float = 1.1, creep_tau_s: float = 1.5 * 3600.0, creep_memory_s: float = 6 * 3600.0,
                 load_tau_s: float = 12 * 3600.0, load_prior: float = 0.02, load_max: float = 0.5,
                 load_reach: float = 3.0):
        self.ratio, self.tau_s, self.min_requests, self.min_windows = ratio, tau_s, min_requests, min_windows
        self.creep_ratio, self.creep_tau_s, self.creep_memory_s = creep_ratio, creep_tau_s, creep_memory_s
        self.load_tau_s, self.load_prior, self.load_max, self.load_reach = load_tau_s, load_prior, load_max, load_reach
        self.prior_sigma = prior_sigma
        self.stop_requests, self.rate_tau_s = stop_requests, rate_tau_s
        self._consts = np.r_[tau_s, min_requests, min_windows, prior_sigma**2, rate_tau_s, creep_tau_s, np.log(ratio),
                             np.log(creep_ratio), np.log(2.0), _LAW_MAX, creep_memory_s, load_tau_s, load_prior,
                             load_max, load_reach, _BIAS, _GAP]
        """What ``native/src/banks.rs`` reads of the parameters and the median law's tables (``Latency::new``)."""
        self._init_state()

    def stopped(self, slots: np.ndarray, times: float = 1.0) -> np.ndarray:
        """Series silent for longer than their rate explains (rolled back, scaled away): ``times`` ``stop_requests``
        expected requests since their last. Poisson traffic is that silent by chance once in ``exp(10 times)``
        requests: about daily at 0.25 req/s for ``times`` 1, once in 10^13 requests for 3."""
        return self.state("quiet", slots) >= times * self.stop_requests

    def score_learn(self, slots: np.ndarray, count: np.ndarray, p50: np.ndarray, p95: np.ndarray, t_ms: np.ndarray,
                    window_s: float, h: float, max_step: float = np.inf, log_ss: np.ndarray | None = None) -> Evidence:
        """Judge and learn one window's request count, p50 and p95 (ms) per slot; ``t_ms`` is each window's start.
        ``log_ss``: each window's sum of squared deviations of its requests' log latencies from their mean (NaN
        where the window did not keep them), for the creep chart's variance.

        The recursion is native (``latency_args``, ``latency_step`` in ``native/src/banks.rs``), as the class
        says: both CUSUMs stepped on the window's median residual, the creep's stood down while the step's is past
        a third of ``h`` unless it led, then ``mu``, ``mu_c``, the spreads (``sig2_c`` from ``log_ss`` where the
        window kept its latencies, else as ``sig2``), the usual p95 and the request rate learned. numpy takes the
        logarithms, the learning rates' ``expm1`` and the reported ``exp``, so the values are its own."""
        slots = self._prepare(slots)
        count, p50, p95, t_ms = (np.ascontiguousarray(a, dtype=np.float64) for a in (count, p50, p95, t_ms))
        n = slots.size
        log_ss = np.full(n, np.nan) if log_ss is None else np.ascontiguousarray(log_ss, dtype=np.float64)
        args = np.empty((7, n))
        _native.latency_args(self._f, self._consts, slots, count, p50, p95, t_ms, h, window_s, args)
        out, since, kind, flags = np.empty((3, n)), np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int8), np.empty(
            (2, n), dtype=bool)
        _native.latency_step(self._f, self._consts, slots, count, log_ss, t_ms, h, window_s, max_step,
                             -np.expm1(-window_s / self.rate_tau_s), np.log(args[:3]), np.expm1(args[3:]), out, since,
                             kind, flags.view(np.uint8))
        observed, baseline = np.exp(out[1:])
        return Evidence(out[0], kind, since, observed, baseline, flags[0], flags[1])

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
        self._f[slots, c("sig2")] = self._f[slots, c("sig2_c")] = np.where(sigma > 0, sigma**2, self.prior_sigma**2)
        self._f[slots, c("p95")] = x95

    def usual_p95(self, slots: np.ndarray) -> np.ndarray:
        """The series' usual p95 latency (ms) at its current load: an EWMA of the windows' p95, for the summary."""
        return np.exp(self.state("p95", slots) + self._load_shift(slots))

    def quantile_ms(self, slots: np.ndarray, q: float) -> np.ndarray:
        """The reference's ``q`` quantile of a request's latency (ms) at the series' current load: the lognormal
        of ``mu`` and ``sigma``, whose spread is measured within windows (robust to how busy a series is)."""
        return np.exp(self.state("mu", slots) + self._load_shift(slots) + _z(q) * np.sqrt(self.state("sig2", slots)))

    def _load_shift(self, slots: np.ndarray) -> np.ndarray:
        """How much of a log latency the series' load explains now (``Latency::load_shift`` in
        ``native/src/banks.rs``): the slope of log latency on log rate, ``l_c / (l_v + load_prior)`` within
        ``+-load_max``, times the log rate's distance from its mean, at most ``load_reach`` of its standard
        deviations."""
        w, l_m, l_v, l_c, rate = (self.state(name, slots) for name in ("l_w", "l_m", "l_v", "l_c", "rate"))
        b = np.clip(l_c / (l_v + self.load_prior), -self.load_max, self.load_max)
        reach = self.load_reach * np.sqrt(np.maximum(l_v, 0.0))
        return np.where(w > 0, b * np.clip(np.log(np.maximum(rate, 1e-9)) - l_m, -reach, reach), 0.0)

"""Prediction drift: live predictions vs a reference (certified, or learned), by bin counts.

Fed one prediction at a time by the quality monitor, with bounded memory (counts per bin,
no values). Drift compares counts of the recent predictions with a reference by a
two-sample G-test, whose p-value accounts for how many there are on both sides, and by
PSI, which says how much they moved. Returns the :class:`~modelmedic.detectors.quality.Decision`
of the other quality detectors (class ``drift``).
"""

from __future__ import annotations

import copy
import math

import numpy as np

from modelmedic.detectors.quality import ANOMALOUS, INSUFFICIENT, OK, Decision
from modelmedic.detectors.sequential import alpha_for
from modelmedic.detectors.special import chdtrc


RECENT_KEEP = 0.5
"""The weight of a block in :attr:`DriftReference.recent` against the block after it: about the last two blocks (a
live window's worth) count."""


class DriftReference:
    """What live predictions are compared with: bins and their expected frequencies.

    Numbers: ``bins`` quantile bins of the reference (fewer when values repeat), and its
    standard deviation (``spread``, the canary's scale). Classes: one bin per class seen,
    plus one for classes never seen. Frequencies are smoothed by half a count per bin, so
    a bin the reference never filled is rare, not impossible. Holds counts, not values: a
    few hundred bytes whatever the reference's size, and a learned one its counts by hour
    of the day too (:attr:`hours`, about 1 KB for ten bins).

    >>> r = DriftReference(["a"] * 90 + ["b"] * 10)
    >>> r.size, r.expected.round(3).tolist(), r.code(["b", "z"]).tolist()
    (100, [0.892, 0.103, 0.005], [1, 2])
    """

    def __init__(self, values: list, bins: int = 10):
        if not values:
            raise ValueError("a drift reference needs at least one prediction")
        self.size = len(values)  # first among the attributes, as snapshots of older releases hold them
        if all_numbers(values):
            ref = np.asarray(values, dtype=float)
            self.edges: np.ndarray | None = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
            self.categories: dict[object, int] | None = None
            self.spread = float(ref.std())
            counts = np.bincount(np.searchsorted(self.edges, ref, side="right"), minlength=len(self.edges) + 1)
        else:
            self.edges = None
            self.categories = {c: i for i, c in enumerate(dict.fromkeys(values))}
            self.spread = math.nan
            counts = np.bincount([self.categories[c] for c in values], minlength=len(self.categories) + 1)
        self._hold(counts)

    hours: np.ndarray | None = None
    """Counts learned by hour of the day (24 rows, UTC; float32: about 1 KB for ten bins): each block that joined the
    reference, each of its values at the hour it came (None: none yet; also a snapshot from before them)."""

    def _hold(self, counts: np.ndarray) -> None:
        """Hold ``counts`` per bin, their total (``size``) and the expected frequencies, smoothed by half a count."""
        self.counts = counts
        self.size = int(round(float(counts.sum())))
        self.expected = (counts + 0.5) / (self.size + 0.5 * counts.size)

    @property
    def numeric(self) -> bool:
        return self.edges is not None

    def handed_on(self) -> DriftReference:
        """A copy for another version of the same model (its own to learn into), without the blocks held apart
        during an alarm (:attr:`held`: not yet known to be the day's own)."""
        ref = copy.deepcopy(self)
        ref.__dict__.pop("held", None)
        return ref

    def learn(self, counts: np.ndarray, psi_threshold: float, alpha: float,
              by_hour: dict[int, np.ndarray] | None = None, alarm: bool = False) -> None:
        """Count a block of live values (bin counts, in the bins the first values fixed) into a learned
        reference, unless an alarm is up or it is drifted by the alarm's rule (PSI at least ``psi_threshold``
        with a p-value under ``alpha``), so a drift in the reference's first day is not learned as normal. The
        alarm's levels, not its hysteresis': a daily cycle moves the blocks away from a reference still made of
        its first hours by a PSI of 0.1-0.2, and a reference that stops learning there alarms later. A block
        kept out is held by the hours of the day (:attr:`held`) until :meth:`release` (the alarm cleared: a
        daily cycle comes back, a drift does not). ``by_hour``: the same counts by the hour of the day (UTC) their
        values came at (:func:`hour_counts`), for :attr:`hours` (None: the hours learn nothing)."""
        self.recent = self.latest(counts)  # what came before the window, learned or not
        apart = alarm
        if not apart:
            psi, p = g_test(counts, self)
            apart = psi >= psi_threshold and p < alpha
        if apart:
            self.held = _add_hours(self.held, by_hour, counts.size)
            return
        self._hold(self.counts + counts)
        self.hours = _add_hours(self.hours, by_hour, counts.size)

    recent: np.ndarray | None = None
    """The counts of the blocks that left the live window in the reference's day, learned or held, each at
    ``RECENT_KEEP`` times the weight of the one after it (None: none yet, or a snapshot from before it): what the
    version was asked just before the window (:meth:`latest`)."""

    def latest(self, then: np.ndarray | None = None) -> np.ndarray:
        """The counts of what came just before the live window: :attr:`recent` (else the first values), and ``then``
        (the live block before the window's, not yet learned) after them at the weight of the latest."""
        recent = self.counts if self.recent is None else self.recent
        return recent if then is None else recent * RECENT_KEEP + then

    def stepped(self, windows: list[tuple], psi_least: float, alpha: float) -> bool:
        """Whether any of the live ``windows`` (:func:`live_windows`) stepped away from what came just before it
        (:meth:`latest`): a PSI of at least ``psi_least`` with a p-value under ``alpha``. Between the two a daily
        cycle moves a little (an hour or so at 0.3 sampled predictions a second and more), a drift all of its way."""
        for live, _, _, then in windows:
            psi, p = g_test(live, self._view(self.latest(then)))
            if psi >= psi_least and p < alpha:
                return True
        return False

    def _view(self, counts: np.ndarray) -> DriftReference:
        """A reference in the same bins holding ``counts`` (some hours', the latest blocks')."""
        view = object.__new__(DriftReference)
        view.edges, view.categories, view.spread = self.edges, self.categories, self.spread
        view._hold(counts)
        return view

    held: np.ndarray | None = None
    """Counts by hour of the day of the blocks :meth:`learn` kept out of the reference (None: none)."""

    def release(self) -> None:
        """The held blocks were a time of day, not a drift: they join :attr:`hours` (not the whole reference, whose
        frequencies they would pull towards the day's extremes)."""
        if self.held is not None:
            self.hours = self.held if self.hours is None else self.hours + self.held
            self.held = None

    def test(self, live: np.ndarray, span: tuple[float, float] | None, least: int) -> tuple[float, float]:
        """(PSI, p-value) of live bin counts gathered over ``span`` (:func:`g_test`) against the whole reference
        and, where it learned those hours of the day (:meth:`at`), against them too: the weaker of the two. So a
        window at the day's extreme is no drift if the same hours looked like it, and what those hours learned
        (a drift held while its alarm was up, then released) is no drift if the whole reference says so."""
        psi, p = g_test(live, self)
        hours = self.at(span, least)
        if hours is self:
            return psi, p
        psi_h, p_h = g_test(live, hours)
        return (min(psi, psi_h), math.nan) if min(psi, psi_h) < 0.1 else (min(psi, psi_h), max(p, p_h))

    def at(self, span: tuple[float, float] | None, least: int) -> DriftReference:
        """The reference for live values gathered over ``span`` (event times in s): the counts learned at the same
        hours of the day, widened an hour either side at a time until there are at least ``least`` of them, else
        the whole reference. What a model is asked changes over the day, and a window of minutes at the day's
        extreme is a "major shift" from the day's mixture (a cycle of +-0.5 sd alarmed about once a day on every
        version: docs/detection.md)."""
        if self.hours is None or span is None:
            return self
        first, last = span
        for wider in range(12):
            counts = self.hours[_hours((first - 3600 * wider, last + 3600 * wider))].sum(axis=0, dtype=np.float64)
            if counts.sum() >= least:
                break
        else:
            return self
        return self._view(counts)

    def code(self, predictions: list) -> np.ndarray:
        """The bin of each prediction."""
        if self.edges is not None:
            return np.searchsorted(self.edges, np.asarray(predictions, dtype=float), side="right")
        unseen = len(self.categories)
        return np.fromiter((self.categories.get(p, unseen) for p in predictions), dtype=np.int64, count=len(predictions))


def all_numbers(values: list) -> bool:
    """Whether predictions are numbers (quantile bins), not classes: ints and floats, not bools."""
    return all(v.__class__ in (int, float) for v in values)


def _add_hours(hours: np.ndarray | None, by_hour: dict[int, np.ndarray] | None, width: int) -> np.ndarray | None:
    """``hours`` (24 rows of ``width`` bin counts, or None) plus a block's counts by hour of the day."""
    if not by_hour:
        return hours
    hours = np.zeros((24, width), dtype=np.float32) if hours is None else hours
    for hour, counts in by_hour.items():
        hours[hour] += counts
    return hours


def hour_counts(by_hour: dict[int, np.ndarray] | None, counts: np.ndarray, ts: float) -> dict[int, np.ndarray]:
    """A block's bin counts by hour of the day (UTC; None: none yet) with ``counts`` of values that came at event
    time ``ts`` (s) added. A sparse version's block of 500 values runs through half a day, and spread evenly over
    those hours it taught each of them the day's mixture (a +-0.5 sd cycle alarmed every day at 0.01-0.02 sampled
    predictions a second: docs/detection.md)."""
    by_hour = {} if by_hour is None else by_hour
    hour = int(ts // 3600) % 24
    if hour in by_hour:
        by_hour[hour] += counts
    else:
        by_hour[hour] = counts.astype(np.float32)
    return by_hour


def _hours(span: tuple[float, float]) -> np.ndarray:
    """The hours of the day (UTC, 0-23) that event times ``span`` (s: first, last) run through."""
    first, last = span
    if last - first >= 86_400:
        return np.arange(24)
    return np.arange(int(first // 3600), int(last // 3600) + 1) % 24


def block_spans(began: tuple, ts: float, full: bool) -> tuple[tuple, tuple]:
    """The two live blocks' begin times (previous, current; None: empty) after values counted at event time ``ts``
    (s), and the times the current block and both blocks span. ``full``: the current block is full and becomes the
    previous one (a new current block begins with the next values)."""
    previous, current = began
    current = ts if current is None else current
    first = current if previous is None else previous
    return (current, None) if full else (previous, current), ((current, ts), (first, ts))


def count_block(began: tuple, by_hour: tuple, counts: np.ndarray, ts: float, full: bool, learn_until: float
                ) -> tuple[tuple, tuple, tuple, dict[int, np.ndarray] | None]:
    """Where a learned reference learns by hour of the day: after ``counts`` of values at event time ``ts`` (s) joined
    the current live block, the blocks' begin times (:func:`block_spans`), their (previous, current) counts by hour
    of the day (:func:`hour_counts`; only blocks that began before ``learn_until``, the reference's day, s), the
    times the current block and both blocks span, and, when the current block is ``full`` (it becomes the previous
    one), the leaving block's counts by hour (None: it joins no reference). Prediction and feature drift alike."""
    if (ts if began[1] is None else began[1]) < learn_until:
        by_hour = (by_hour[0], hour_counts(by_hour[1], counts, ts))
    began, spans = block_spans(began, ts, full)
    leaving = None
    if full:
        leaving, by_hour = by_hour[0], (by_hour[1], None)
    return began, by_hour, spans, leaving


def live_windows(blocks: list, sizes: list, spans: tuple, min_live: int) -> list[tuple]:
    """The windows of live counts a version is tested in, as (counts, values, the event times they span, the counts of
    the live block before them or None): the current block alone (a recent change, soon) once it holds ``min_live``
    values, and both blocks (a small change, surely)."""
    (previous, current), (n_prev, n_cur) = blocks, sizes
    windows = [(current, n_cur, spans[0], previous if n_prev else None)] if n_cur >= min_live else []
    if n_prev:
        windows.append((previous + current, n_prev + n_cur, spans[1], None))
    return windows


def judge_windows(ref: DriftReference, windows: list[tuple], tests: list[tuple[float, float, int]], alarm: bool,
                  quiet: bool, hourly: bool, psi_threshold: float, psi_clear: float, alpha: float
                  ) -> tuple[bool, bool, tuple[float, float, int]]:
    """A drift alarm after ``tests`` ((PSI, p-value, values) of :func:`live_windows` ``windows`` against ``ref``):
    (alarm, quiet, the test to report). It rises when a window has PSI >= ``psi_threshold`` and p < ``alpha``, and
    clears only when every window has PSI < ``psi_clear`` or p >= ``sqrt(alpha)`` (a shift hovering at the threshold
    gives one alarm). Before the reference has its day (not ``hourly``) an alarm that rises stays quiet, not shown,
    until a window steps from what came just before it (:meth:`DriftReference.stepped`), or the day ends. The test
    reported is the strongest (the lowest p-value, else the highest PSI) of those that meet the rule when the alarm
    is shown, so a message's "PSI x >= limit" holds; else of all. Prediction and feature drift alike."""
    was, shown = alarm, alarm and not quiet
    if was:
        alarm = not all(psi < psi_clear or not p < math.sqrt(alpha) for psi, p, _ in tests)
    else:
        alarm = any(psi >= psi_threshold and p < alpha for psi, p, _ in tests)
    quiet = alarm and not hourly and (quiet or not was) and not ref.stepped(windows, psi_clear, alpha)
    onset = [t for t in tests if t[0] >= psi_threshold and t[1] < alpha] if alarm and not quiet and not shown else []
    return alarm, quiet, min(onset or tests, key=lambda t: (t[1] if t[1] == t[1] else 2.0, -t[0]))


def g_test(live: np.ndarray, reference: DriftReference) -> tuple[float, float]:
    """(PSI, p-value of the two-sample G-test) of live bin counts against a reference.

    The p-value accounts for both sample sizes (a few predictions prove little, and a
    reference learned from a few hundred is itself uncertain), with Williams' correction
    for small samples; PSI, on counts smoothed by half a count per bin, says how much the
    distribution moved (0.25: the customary "major shift") whatever the sample sizes. The
    p-value is only computed when PSI is at least 0.1 (NaN otherwise): the usual case
    costs a few array operations.

    >>> ref = DriftReference(["a"] * 500 + ["b"] * 500)
    >>> psi, p = g_test(np.array([50, 50, 0]), ref)
    >>> round(psi, 2), p != p
    (0.01, True)
    >>> psi, p = g_test(np.array([90, 10, 0]), ref)
    >>> round(psi, 2), p < 1e-10
    (0.86, True)
    """
    n = int(live.sum())
    smoothed = (live + 0.5) / (n + 0.5 * live.size)
    expected = reference.expected
    psi = float(np.sum((smoothed - expected) * np.log(smoothed / expected)))
    if psi < 0.1:
        return psi, math.nan
    ref = reference.counts
    total, both = n + reference.size, live + ref
    used = both > 0
    k = int(used.sum())
    if k < 2:
        return psi, 1.0
    g = 0.0
    for observed, size in ((live, n), (ref, reference.size)):
        seen = observed > 0
        g += float(np.sum(observed[seen] * np.log(observed[seen] * total / (both[seen] * size))))
    q = 1.0 + (total * (1.0 / n + 1.0 / reference.size) - 1.0) * (total * float(np.sum(1.0 / both[used])) - 1.0) \
        / (6.0 * total * (k - 1))
    return psi, float(chdtrc(k - 1, 2.0 * g / q))  # the chi-squared survival function


class PredictionDrift:
    """Live prediction distribution vs a reference: PSI (how much) and a G-test (how sure), on recent windows.

    The reference (a :class:`DriftReference`, or values to fit one: the certification
    run's predictions; else ``predecessor``'s, the model's version before, if the first ``reference_size`` live
    predictions match it (:meth:`_fit`); else those) fixes the bins. A reference
    learned from live predictions goes on learning for ``reference_s`` of event time after it is
    fitted: each block of live counts that began in that time joins it as it leaves the window, unless it looked
    drifted (:meth:`DriftReference.learn`) or an alarm is up (a sparse version's blocks run through many hours, and
    one that left the window after the day would not have been learned at all). What a model is asked changes over
    a day, and against a reference of its first minutes a daily cycle of the inputs of +-0.25 standard
    deviations read as drift twice a day (``load/detection_harness.py --input-cycle 0.25``), while
    a reference that waits a day to be tested misses a drift in a new version's first hours. The blocks
    are learned by the hours of the day they ran through too (:attr:`DriftReference.hours`; those that
    came while an alarm was up join the hours alone, once it clears), and after the day a window is drift
    only if it is drifted from the whole reference and from the same hours (:meth:`DriftReference.test`):
    a cycle of +-0.5 sd is a "major shift" at its extremes even against the day's mixture. In the day itself an
    alarm is shown only if a window also stepped away from what came just before it
    (:meth:`DriftReference.stepped`: the blocks that left the window last and the live block before; a PSI of
    ``psi_clear`` with the alarm's p-value), since a reference of the first hours has not seen the day's cycle,
    which moves slowly from the hours just before while a drift steps; one not shown holds the reference's
    learning as a shown alarm does, and is shown when the day ends if it is still up. Live
    predictions are counted per bin in two blocks of ``window / 2`` (the current one and
    the one before): no values are kept. Predictions are counted ``every`` at a time and, at
    most once per ``test_interval_s`` of event time, once at least ``min_live`` are counted, two
    windows are tested, the current block alone (a recent change, soon) and both blocks (a
    small change, surely): drift is declared when, in either, PSI >= ``psi_threshold`` and the
    G-test's p-value < :attr:`alpha`, the day's budget ``false_alarms_per_day`` spread over the
    at most ``2 * 86,400 / test_interval_s`` windows tested a day (Bonferroni), so a healthy
    version raises at most that many drift alarms a day whatever its traffic. Hysteresis: the
    alarm clears only when every window tested says PSI < ``psi_clear`` or p >=
    ``sqrt(alpha)``, so a shift hovering at the threshold gives one alarm.

    >>> rng = np.random.default_rng(0)
    >>> d = PredictionDrift(reference=rng.normal(0, 1, 2000).tolist())
    >>> [d.observe(float(v), ts=i) for i, v in enumerate(rng.normal(0, 1, 1000))].count(None), d.decision().state
    (1000, 'ok')
    >>> for i, v in enumerate(rng.normal(0.8, 1, 1000)):  # one prediction a second
    ...     _ = d.observe(float(v), ts=1000 + i)
    >>> r = d.decision()
    >>> r.kind, r.state, r.evidence["psi"] > 0.25
    ('drift', 'anomalous', True)
    """

    def __init__(
        self,
        reference: DriftReference | list | np.ndarray | None = None,
        reference_size: int = 200,
        window: int = 1000,
        min_live: int = 100,
        bins: int = 10,
        psi_threshold: float = 0.25,
        false_alarms_per_day: float = 1e-4,
        test_interval_s: float = 60.0,
        every: int = 25,
        psi_clear: float = 0.1,
        reference_s: float = 0.0,
        predecessor: PredictionDrift | None = None,
    ):
        self.reference, self.reference_size, self.window, self.min_live = reference, reference_size, window, min_live
        if reference_s:  # else the class attribute: a detector at 0 pickles as before the setting
            self.reference_s = reference_s
        self.bins, self.psi_threshold, self.every, self.psi_clear = bins, psi_threshold, every, psi_clear
        self.false_alarms_per_day, self.test_interval_s = false_alarms_per_day, test_interval_s
        self.alpha = alpha_for(test_interval_s, false_alarms_per_day, tests=2)
        """The p-value a window must be below: the day's budget spread over the day's tests (two windows each)."""
        self._last_test = -math.inf
        if reference is not None and not isinstance(reference, DriftReference):
            reference = DriftReference(reference.tolist() if hasattr(reference, "tolist") else list(reference), bins)
        self._ref: DriftReference | None = reference
        if reference is None and predecessor is not None and predecessor._ref is not None:
            self._before = (predecessor._ref.handed_on(), predecessor._learn_until)
        self._pending: list = []
        """Live predictions the reference is being learned from (fewer than ``reference_size``)."""
        self._recent: list = []
        """Predictions not yet counted (fewer than ``every``)."""
        self._blocks: list = []  # [previous counts, current counts] once the reference is fitted
        self._block_n = [0, 0]
        self._psi, self._p, self._live = 0.0, math.nan, 0
        self._alarm = False

    reference_s = 0.0
    _began: tuple = (None, None)
    """Event time (s) each block (previous, current) began: the hours of the day its counts are learned at and
    tested against (None: empty; also a snapshot from before it)."""
    _learn_until = -math.inf
    """Event time until which the blocks that begin join a learned reference as they leave the live window (-inf:
    certified, or its first ``reference_size`` alone)."""
    _before: tuple | None = None
    """The reference of the model's version before this one and the time it learns until, while this one has no
    reference of its own yet (:meth:`_fit`; None: none)."""
    _by_hour: tuple = (None, None)
    """The blocks' (previous, current) counts by hour of the day (:func:`hour_counts`) where they began in the
    reference's day (None: not). These three are class attributes too: a snapshot from before them restores (the
    blocks in its window then do not join the reference)."""

    _quiet = False
    """The alarm is up in a learned reference's first day but not shown: the live predictions moved away from the
    first hours slowly, as a daily cycle does, not as a step from what came just before them
    (:meth:`DriftReference.stepped`). Shown if a window steps, or once the reference has its day (the same hours then
    judge it). Blocks are held while it is up, as under an alarm shown, so the reference does not learn a drift."""

    @property
    def anomalous(self) -> bool:
        return self._alarm and not self._quiet

    @property
    def numeric(self) -> bool | None:
        """True for numeric predictions, False for labels, None until the reference is fitted."""
        return None if self._ref is None else self._ref.numeric

    def observe(self, prediction: object, ts: float) -> Decision | None:
        """Take one live prediction made at event time ``ts``; a Decision at an alarm's onset."""
        if self._ref is None:
            self._pending.append(prediction)
            return self._fit(ts) if len(self._pending) >= self.reference_size else None
        # Predictions wait in a list and are counted ``every`` at a time, coded in one
        # vectorized call: a list append is all a prediction costs between two tests.
        recent = self._recent
        recent.append(prediction)
        if len(recent) < self.every:
            return None
        self._recent = []
        return self._count(recent, ts)

    def _fit(self, ts: float) -> Decision | None:
        """The reference, once ``reference_size`` live predictions are in: its predecessor's (the model's version
        before it, with the day and hours it learned) if they match it (PSI under ``psi_clear`` against it and its
        hours: a new version that predicts as the one before, whose requests are the same traffic), and those
        predictions are then counted as live ones; else fitted to them. A reference learned anew read a daily cycle
        as drift through every upgrade's first day; one that predicts otherwise by design is judged against itself."""
        pending, before = self._pending, self._before
        self._pending = []
        if before is not None:
            del self._before
            ref, learn_until = before
            if ref.numeric == all_numbers(pending):
                counts = np.bincount(ref.code(pending), minlength=ref.expected.size)
                if ref.test(counts, (ts, ts) if ts >= learn_until else None, self.window)[0] < self.psi_clear:
                    self._ref, self._learn_until = ref, learn_until
                    return self._count(pending, ts)
        self._ref = DriftReference(pending, self.bins)
        if self.reference_s:
            self._learn_until = ts + self.reference_s
        return None

    def room(self) -> int:
        """How many predictions :meth:`observe` would only keep (no reference fitted, nothing counted) before
        the one that fits the reference or counts them: :meth:`extend` takes up to that many."""
        kept = (self.reference_size, len(self._pending)) if self._ref is None else (self.every, len(self._recent))
        return max(kept[0] - kept[1] - 1, 0)

    def extend(self, predictions: list) -> None:
        """:meth:`observe` of each of ``predictions`` (at most :meth:`room`), in one call: they are only kept.
        The quality monitor's native table holds a version's predictions until one is due (``QualityTable``)."""
        (self._pending if self._ref is None else self._recent).extend(predictions)

    def _count(self, predictions: list, ts: float) -> Decision | None:
        ref = self._ref
        counts = np.bincount(ref.code(predictions), minlength=ref.expected.size)
        if not self._blocks:
            self._blocks = [np.zeros_like(counts), counts]
            self._block_n = [0, len(predictions)]
        else:
            self._blocks[1] += counts
            self._block_n[1] += len(predictions)
        previous, current = self._blocks
        n_prev, n_cur = self._block_n
        full = n_cur >= self.window // 2
        (span_current, span_both), leaving = (None, None), None  # (where the reference learns nothing)
        if self.reference_s:  # its hours are learned and tested by the blocks' times
            self._began, self._by_hour, (span_current, span_both), leaving = count_block(
                self._began, self._by_hour, counts, ts, full, self._learn_until)
        windows = live_windows(self._blocks, self._block_n, (span_current, span_both), self.min_live)
        aged = None
        if full:  # the current block is full: it becomes the previous one
            aged = previous if n_prev else None
            self._blocks, self._block_n = [current, np.zeros_like(current)], [n_cur, 0]
        was = self._alarm
        decision = self._test(windows, ts)
        if aged is not None and leaving is not None:  # it began in the reference's day: it joins it
            ref.learn(aged, self.psi_threshold, self.alpha, leaving, alarm=self._alarm)
        if was and not self._alarm:
            ref.release()
        return decision

    def _test(self, windows: list[tuple[np.ndarray, int, tuple, np.ndarray | None]], ts: float) -> Decision | None:
        """Test ``windows`` (counts, predictions, the event times they span, the counts of the live block before them
        or None) against the reference and its same hours of the day (:meth:`DriftReference.test`), if one is due;
        a Decision when an alarm is shown."""
        ref = self._ref
        if not windows or windows[-1][1] < self.min_live or ts - self._last_test < self.test_interval_s:
            return None
        self._last_test = ts
        hourly = ts >= self._learn_until  # a day learned (or a certified reference: it learns no hours)
        tests = [(*ref.test(c, span if hourly else None, self.window), n) for c, n, span, _ in windows]
        shown = self.anomalous
        self._alarm, quiet, (self._psi, self._p, self._live) = judge_windows(
            ref, windows, tests, self._alarm, self._quiet, hourly, self.psi_threshold, self.psi_clear, self.alpha)
        if quiet is not self._quiet:
            self._quiet = quiet
        return self.decision() if self.anomalous and not shown else None

    def decision(self) -> Decision:
        size = self._ref.size if self._ref is not None else 0
        evidence = {"psi": round(self._psi, 6), "p_value": self._p, "live": self._live, "reference": size}
        if self._ref is None or self._live < self.min_live:
            state = INSUFFICIENT
            message = (f"too few predictions to compare with the reference yet (reference {size or len(self._pending)} "
                       f"of {self.reference_size if self._ref is None else size}, live {self._live} of {self.min_live})")
        elif self._quiet:
            state = OK
            message = (f"live predictions moved from the reference's first hours slowly (PSI {self._psi:.2f}, last "
                       f"{self._live:,} predictions), as a daily cycle does: judged against the same hours once it "
                       "has seen its day")
        elif self._alarm:
            state = ANOMALOUS
            message = (f"live predictions drifted from the reference (PSI {self._psi:.2f} >= {self.psi_threshold}, "
                       f"G-test p={self._p:.1e}, last {self._live:,} predictions): the model may need retraining or "
                       "redesign")
        else:
            state = OK
            message = f"live predictions match the reference (PSI {self._psi:.2f}, last {self._live:,} predictions)"
        return Decision("drift", "prediction-drift", self.anomalous, evidence, message, state)

"""Per-feature input drift of one model version: live features vs the version's reference.

Each feature gets what prediction drift uses (``detectors/drift.py``): a
:class:`~modelmedic.detectors.drift.DriftReference` (quantile bins of a numeric feature,
category counts of a categorical one), certified or learned from the version's first
``reference_size`` values, and the two-sample G-test and PSI of :func:`~modelmedic.detectors.drift.g_test`,
whose p-value accounts for both sample sizes. What differs is the cadence: a request's
features are appended to a list as they are; every ``window / 2`` requests, and before each
test, the list is turned into each feature's values (one comprehension per feature) and
counted into its bins (one vectorized call), and the features are tested when the monitor
asks (:meth:`FeatureDrift.test`, at most once per ``test_interval_s`` of event time). So a
request costs one list append, a value a comprehension's step, and a test is per version and
minute, not per request; memory is bounded by ``window / 2`` requests.

False alarms: a version runs at most ``86,400 / test_interval_s`` tests a day, each of two
windows per feature; every one is held to ``alpha = false_alarms_per_day / (tests a day * 2 *
features)`` (Bonferroni), so a healthy version raises at most ``false_alarms_per_day`` drift
alarms a day whatever its number of features. A drift must also be large (PSI >=
``psi_threshold``), so a huge sample cannot make a negligible shift an alarm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from modelmedic.detectors.drift import DriftReference, count_block, judge_windows, live_windows
from modelmedic.detectors.quality import ANOMALOUS, INSUFFICIENT, OK, Decision
from modelmedic.detectors.sequential import alpha_for

_NUMBER = (int, float)
"""What a numeric feature's values are (a boolean is not one: its class is bool)."""


@dataclass
class _Feature:
    """One feature's reference (or the values it is learned from) and its live counts in two blocks."""

    reference: DriftReference | None = None
    pending: list = field(default_factory=list)
    """Values the reference is learned from (fewer than ``reference_size``)."""
    blocks: list = field(default_factory=list)
    """[previous block's counts, current block's] once the reference is fitted."""
    sizes: list = field(default_factory=lambda: [0, 0])
    fresh: bool = False
    """Values were counted since the last test."""
    learn_until: float = -math.inf
    """Event time (ms) until which the blocks that begin join a learned reference as they leave the live window
    (``FeatureDrift.reference_s``)."""
    began: tuple = (None, None)
    """Event time (s) each block (previous, current) began (:func:`~modelmedic.detectors.drift.block_spans`), where
    the reference learns; a class attribute too, for snapshots from before it."""
    spans: tuple = (None, None)
    """The event times (s) the current block and both blocks spanned at their last count (None: no hours)."""
    by_hour: tuple = (None, None)
    """The blocks' (previous, current) counts by hour of the day (:func:`~modelmedic.detectors.drift.hour_counts`)
    where they began in the reference's day (None: not); a class attribute too, for snapshots from before it."""
    psi: float = 0.0
    p: float = math.nan
    live: int = 0
    alarm: bool = False
    quiet: bool = False
    """The alarm is up in a learned reference's first day but not shown, as prediction drift's ``_quiet``: the
    values moved away from the first hours slowly, not as a step from what came just before them."""

    @property
    def shown(self) -> bool:
        return self.alarm and not self.quiet


class FeatureDrift:
    """Drift of each input feature of one version; the alarm names the features that moved most.

    >>> rng = np.random.default_rng(0)
    >>> d = FeatureDrift(reference_size=200, min_live=100)
    >>> for x in rng.normal(0, 1, 600):
    ...     d.observe({"amount": float(x), "country": "FR" if x > 0 else "DE"})
    >>> d.test(now_ms=600_000) is None, d.decision().state
    (True, 'ok')
    >>> for x in rng.normal(2, 1, 300):
    ...     d.observe({"amount": float(x), "country": "FR"})
    >>> d.test(now_ms=1_200_000).state, d.moved()[0][0]
    ('anomalous', 'amount')
    """

    def __init__(self, reference_size: int = 200, window: int = 1000, min_live: int = 100, bins: int = 10,
                 psi_threshold: float = 0.25, psi_clear: float = 0.1, false_alarms_per_day: float = 0.01,
                 test_interval_s: float = 60.0, max_features: int = 64,
                 references: dict[str, list] | None = None, reference_s: float = 0.0):
        self.reference_size, self.window, self.min_live, self.bins = reference_size, window, min_live, bins
        if reference_s:  # else the class attribute: a detector at 0 pickles as before the setting
            self.reference_s = reference_s
        self.psi_threshold, self.psi_clear = psi_threshold, psi_clear
        self.false_alarms_per_day, self.test_interval_s, self.max_features = false_alarms_per_day, test_interval_s, max_features
        self.features: dict[str, _Feature] = {}
        for name, values in (references or {}).items():
            if values and len(self.features) < max_features:
                self.features[name] = _Feature(reference=DriftReference(list(values), bins))
        self.untracked = 0
        """Values of features beyond the first ``max_features`` names seen (not tracked: a bound on memory)."""
        self._rows: list[dict[str, object]] = []
        """Requests' features not yet counted (fewer than ``window / 2``)."""
        self.anomalous = False
        self._last_test_ms: int | None = None

    def inherit(self, predecessor: FeatureDrift) -> None:
        """Start from the references ``predecessor`` (the model's version before this one) has: its requests are the
        same traffic, and a reference learned anew from a new version's first values read the day's cycle of the
        inputs as drift through the whole of its first day, at every upgrade. A learned reference still in its day
        goes on learning it here too; the blocks it holds apart during an alarm are not taken (not yet known to be the
        day's own)."""
        for name, f in predecessor.features.items():
            if f.reference is not None and name not in self.features and len(self.features) < self.max_features:
                self.features[name] = _Feature(reference=f.reference.handed_on(), learn_until=f.learn_until)

    reference_s = 0.0
    """Event time a learned reference goes on learning after it is fitted, from the blocks of live values that began
    in it, as they leave the window without looking drifted (as
    :class:`~modelmedic.detectors.drift.PredictionDrift`'s)."""
    _now_ms = -math.inf
    """The latest event time seen (``observe``'s, ``test``'s)."""

    @property
    def alpha(self) -> float:
        """The p-value one feature's window must be below: the day's budget spread over every test."""
        return alpha_for(self.test_interval_s, self.false_alarms_per_day, tests=2 * max(1, len(self.features)))

    def observe(self, features: dict[str, object], ts_ms: int | None = None) -> None:
        """Take one request's features at event time ``ts_ms`` (counted with the next ``window / 2``, or at
        the next test)."""
        if ts_ms is not None and ts_ms > self._now_ms:
            self._now_ms = ts_ms
        rows = self._rows
        rows.append(features)
        if len(rows) >= self.window // 2:
            self._absorb()

    def _absorb(self) -> None:
        """Count the waiting requests' values per feature (nulls are data quality's, not drift's); a
        feature without a reference learns it from its first ``reference_size`` values, the rest count."""
        rows, self._rows = self._rows, []
        tracked = self.features
        for name in {name: None for row in rows for name in row}:
            f = tracked.get(name)
            if f is None:
                if len(tracked) >= self.max_features:
                    self.untracked += sum(row.get(name) is not None for row in rows)
                    continue
                f = tracked[name] = _Feature()
            if f.reference is not None and f.reference.numeric:  # a category in a numeric feature: data quality's
                values = [v for row in rows if (v := row.get(name)).__class__ in _NUMBER]
            else:
                values = [v for row in rows if (v := row.get(name)) is not None]
            if f.reference is None:
                f.pending += values
                if len(f.pending) < self.reference_size:
                    continue
                values, f.reference = f.pending[self.reference_size:], DriftReference(f.pending[:self.reference_size], self.bins)
                f.pending = []
                if self.reference_s:
                    f.learn_until = self._now_ms + self.reference_s * 1000
            if values:
                self._count(f, values)

    def due(self, now_ms: int) -> bool:
        """Whether a test is due at event time ``now_ms`` (one per ``test_interval_s``)."""
        return self._last_test_ms is None or now_ms - self._last_test_ms >= self.test_interval_s * 1000

    def test(self, now_ms: int) -> Decision | None:
        """Count the values since the last test and test every feature; a Decision when the version's
        alarm starts or ends (None otherwise)."""
        self._last_test_ms = now_ms
        self._now_ms = max(self._now_ms, now_ms)
        self._absorb()
        alpha = self.alpha
        for f in self.features.values():
            if f.fresh:
                self._test_feature(f, alpha)
        was = self.anomalous
        self.anomalous = any(f.shown for f in self.features.values())
        return self.decision() if self.anomalous is not was else None

    def _count(self, f: _Feature, values: list) -> None:
        """Add values to the feature's current block; a full block becomes the previous one."""
        counts = np.bincount(f.reference.code(values), minlength=f.reference.expected.size)
        if not f.blocks:
            f.blocks, f.sizes = [np.zeros_like(counts), counts], [0, len(values)]
        else:
            f.blocks[1] += counts
            f.sizes[1] += len(values)
        full = f.sizes[1] >= self.window // 2
        leaving = None
        if self.reference_s:  # the reference learns by hour of the day too, as prediction drift's
            f.began, f.by_hour, f.spans, leaving = count_block(f.began, f.by_hour, counts, self._now_ms / 1000, full,
                                                               f.learn_until / 1000)
        if full:
            if f.sizes[0] and leaving is not None:  # the block leaving began in the reference's day: it joins it
                f.reference.learn(f.blocks[0], self.psi_threshold, self.alpha, leaving, alarm=f.alarm)
            f.blocks, f.sizes = [f.blocks[1], np.zeros_like(counts)], [f.sizes[1], 0]
            f.spans = (None, f.spans[0])  # both blocks are now the full one alone
        f.fresh = True

    def _test_feature(self, f: _Feature, alpha: float) -> None:
        """Test the feature as prediction drift does (the current block alone, a recent change; and both
        blocks, a small one), with hysteresis."""
        f.fresh = False
        ref = f.reference
        hourly = self._now_ms >= f.learn_until  # after the reference's day (a certified one learns no hours)
        windows = live_windows(f.blocks, f.sizes, f.spans if hourly else (None, None), self.min_live)
        if not windows or windows[-1][1] < self.min_live:
            return
        tests = [(*ref.test(c, span, self.window), n) for c, n, span, _ in windows]
        was = f.alarm
        f.alarm, f.quiet, (f.psi, f.p, f.live) = judge_windows(ref, windows, tests, f.alarm, f.quiet, hourly,
                                                               self.psi_threshold, self.psi_clear, alpha)
        if was and not f.alarm:
            ref.release()

    def moved(self) -> list[tuple[str, float, float, int]]:
        """``(feature, PSI, p-value, live values)`` of the drifting features, the most moved first."""
        return sorted(((name, f.psi, f.p, f.live) for name, f in self.features.items() if f.shown),
                      key=lambda t: -t[1])

    def decision(self, named: int = 3) -> Decision:
        """The version's state; an alarm's message names the ``named`` features that moved most."""
        judged = [f for f in self.features.values() if f.reference is not None and f.live >= self.min_live]
        moved = self.moved()
        evidence = {"features": len(self.features), "judged": len(judged), "drifting": len(moved),
                    "psi": moved[0][1] if moved else max((f.psi for f in judged), default=0.0),
                    "p_value": moved[0][2] if moved else math.nan, "alpha": self.alpha}
        if moved:
            names = ", ".join(f"{name} (PSI {psi:.2f}, p={p:.0e}, {live:,} values)" for name, psi, p, live in moved[:named])
            more = f" and {len(moved) - named} more" if len(moved) > named else ""
            message = (f"inputs drifted from the reference: {names}{more}: redesign signal: live inputs no longer "
                       "look like the data the version was built on; retrain or redesign it")
            return Decision("drift", "feature-drift", True, evidence, message, ANOMALOUS)
        if not judged:
            return Decision("drift", "feature-drift", False, evidence,
                            "too few feature values to compare with the reference yet", INSUFFICIENT)
        return Decision("drift", "feature-drift", False, evidence,
                        f"inputs match the reference ({len(judged)} features judged)", OK)

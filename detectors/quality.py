"""Model-quality detectors: canary divergence, delayed-label performance, prediction drift.

Fed one event at a time by the detection plane (production and canary predictions,
delayed labels), with bounded memory. Each returns a :class:`Decision` with its anomaly
class (``prediction`` for under-performance, ``drift`` for a distribution shift), the
numbers behind it and one sentence for a human. Event times are epoch seconds; "now" is
the latest event time seen, so replays and tests need no wall clock.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtri
from scipy.stats import ks_2samp


@dataclass(frozen=True)
class Decision:
    """The state of a quality detector: is the model anomalous, why, in one sentence."""

    kind: str  # "prediction" | "drift"
    detector: str
    anomalous: bool
    evidence: dict[str, float] = field(default_factory=dict)
    message: str = ""


def wilson(successes: float, n: float, z: float) -> tuple[float, float]:
    """Wilson score interval of a proportion at ``z`` standard errors.

    >>> [round(v, 3) for v in wilson(90, 100, 1.96)]
    [0.826, 0.945]
    """
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two discrete distributions.

    >>> js_distance(np.array([0.5, 0.5]), np.array([0.5, 0.5])), js_distance(np.array([1.0, 0]), np.array([0, 1.0]))
    (0.0, 1.0)
    """
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        ratio = np.divide(a, m, out=np.ones_like(a), where=a > 0)
        return float(np.sum(a * np.log2(ratio)))

    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2))


class _Joiner:
    """Bounded join buffer keyed by request id, oldest first; counts what it drops."""

    def __init__(self, ttl: float, max_pending: int):
        self.ttl, self.max_pending = ttl, max_pending
        self.pending: OrderedDict[str, tuple[float, object]] = OrderedDict()
        self.now = -math.inf
        self.expired = self.dropped = 0

    def put(self, key: str, ts: float, value: object) -> None:
        self.pending[key] = (ts, value)
        self.pending.move_to_end(key)
        while len(self.pending) > self.max_pending:
            self.pending.popitem(last=False)
            self.dropped += 1

    def pop(self, key: str) -> tuple[float, object] | None:
        return self.pending.pop(key, None)

    def advance(self, ts: float) -> None:
        """Move event time forward and expire entries older than ``ttl``."""
        self.now = max(self.now, ts)
        while self.pending:
            key, (first, _) = next(iter(self.pending.items()))
            if first >= self.now - self.ttl:
                break
            del self.pending[key]
            self.expired += 1


class CanaryDivergence:
    """Production vs canary on the same requests: do they disagree more than expected?

    Predictions of the two roles are joined by ``request_id`` within ``window_s``
    seconds (at most ``max_pending`` unjoined). A pair *disagrees* when the labels
    differ, or, for numbers, when they differ by more than ``tolerance``. The
    disagreement rate is tested against the expected rate ``p0`` (given, e.g. from
    certification, or the Wilson upper bound over the first ``warmup`` pairs) with a
    CUSUM of the Bernoulli log-likelihood ratio of ``p1 = p0 + effect`` vs ``p0``
    (a repeated sequential probability ratio test): the alarm level ``log(1 / alpha)``
    makes false alarms on a healthy canary rarer than one per ``1 / alpha`` pairs.
    Numbers also get a sign test of the differences over blocks of ``block`` pairs, for
    a systematic shift that stays within the tolerance.

    Hysteresis: while alarmed the CUSUM is capped at twice its alarm level and the alarm
    clears only when it is back at 0 (the evidence has swung by ``2 log(1 / alpha)``
    towards ``p0``); the sign-test alarm clears on a block with p >= ``sign_clear``. A
    rate hovering at the alarm level therefore gives one alarm, not one per pair. The
    rate reported is that of the CUSUM's current run (pairs since it last stood at 0:
    its estimate of the change point), so a long healthy past does not dilute it.

    Parameters
    ----------
    expected_rate
        Tolerated disagreement rate ``p0``; ``None`` learns it over ``warmup`` pairs.
    effect
        Smallest increase of the disagreement rate worth an alarm.
    tolerance
        Numbers closer than this agree.
    alpha
        False alarm level of both tests.
    window_s, max_pending
        Join window in seconds and bound of unjoined predictions.
    warmup, block
        Pairs to learn ``p0`` from (when not given); pairs per sign test.

    >>> d = CanaryDivergence(expected_rate=0.01)
    >>> for i in range(3000):
    ...     _ = d.observe("production", str(i), i, i % 3)
    ...     _ = d.observe("canary", str(i), i, (i % 3) if i % 10 else -1)  # 10% flipped
    >>> r = d.decision()
    >>> r.kind, r.anomalous, r.evidence["disagreement_rate"]
    ('prediction', True, 0.1)
    """

    def __init__(
        self,
        expected_rate: float | None = None,
        effect: float = 0.02,
        tolerance: float = 1e-6,
        alpha: float = 1e-4,
        window_s: float = 60.0,
        max_pending: int = 10_000,
        warmup: int = 1000,
        block: int = 500,
        sign_clear: float = 0.05,
    ):
        self.expected_rate, self.effect, self.tolerance, self.alpha = expected_rate, effect, tolerance, alpha
        self.window_s, self.max_pending, self.warmup, self.block = window_s, max_pending, warmup, block
        self.sign_clear = sign_clear
        self._join = _Joiner(window_s, max_pending)
        self._p0 = expected_rate
        self._pairs = self._disagree = 0
        self._cusum = 0.0
        self._alarm = False
        self._signs: list[int] = [0, 0]  # positive, negative differences in the current block
        self._block_n = 0
        self._sign_p = 1.0
        self._sign_alarm = False
        self._run_pairs = self._run_disagree = 0
        self._recent = [0, 0, 0, 0]  # pairs, disagreements: previous block, current block

    @property
    def anomalous(self) -> bool:
        return self._alarm

    @property
    def expected(self) -> float | None:
        """The tolerated disagreement rate: given, or learned once ``warmup`` pairs were seen."""
        return self._p0

    def observe(self, role: str, request_id: str, ts: float, prediction: object) -> Decision | None:
        """Take one prediction (``role`` is ``production`` or ``canary``); a Decision at an alarm's onset."""
        self._join.advance(ts)
        other = self._join.pop(request_id)
        if other is None or other[1][0] == role:
            self._join.put(request_id, ts, (role, prediction))
            return None
        prod, canary = (prediction, other[1][1]) if role == "production" else (other[1][1], prediction)
        return self.observe_pair(prod, canary)

    def observe_pair(self, prod: object, canary: object) -> Decision | None:
        """Take one joined pair (for callers that join themselves); a Decision at an alarm's onset."""
        numeric = isinstance(prod, int | float) and isinstance(canary, int | float) and not isinstance(prod, bool)
        diff = float(canary) - float(prod) if numeric else 0.0
        disagree = abs(diff) > self.tolerance if numeric else prod != canary
        self._pairs += 1
        self._disagree += disagree
        if self._p0 is None:
            if self._pairs < self.warmup:
                return None
            # Clamped below 0.9: a pair of versions that (nearly) always disagree, such as two
            # regressors compared with a tight tolerance, leaves no room for "worse" (and 1.0
            # would divide by zero below); the sign test judges those.
            self._p0 = min(max(wilson(self._disagree, self._pairs, 3.0)[1], 1e-4), 0.9)
        p0 = self._p0
        p1 = min(p0 + self.effect, 0.999)
        llr = math.log(p1 / p0) if disagree else math.log((1 - p1) / (1 - p0))
        level = math.log(1 / self.alpha)
        self._cusum = max(0.0, self._cusum + llr)
        if self._alarm:
            self._cusum = min(self._cusum, 2 * level)
        if self._cusum > 0:
            self._run_pairs += 1
            self._run_disagree += disagree
        else:
            self._run_pairs = self._run_disagree = 0
        if numeric and diff:
            self._signs[diff < 0] += 1
        recent = self._recent
        recent[2] += 1
        recent[3] += disagree
        self._block_n += 1
        if self._block_n >= self.block:
            self._recent = [recent[2], recent[3], 0, 0]
            self._sign_p = _sign_test(*self._signs)
            self._signs, self._block_n = [0, 0], 0
            self._sign_alarm = self._sign_p < (self.sign_clear if self._sign_alarm else self.alpha)
        was = self._alarm
        cusum_alarm = self._cusum > 0 if was else self._cusum >= level
        self._alarm = cusum_alarm or self._sign_alarm
        return self.decision() if self._alarm and not was else None

    def decision(self) -> Decision:
        rate = self._disagree / self._pairs if self._pairs else 0.0
        run_rate = self._run_disagree / self._run_pairs if self._run_pairs else 0.0
        recent_pairs = self._recent[0] + self._recent[2]
        recent_rate = (self._recent[1] + self._recent[3]) / recent_pairs if recent_pairs else 0.0
        p0 = self._p0 if self._p0 is not None else float("nan")
        evidence = {
            "pairs": self._pairs,
            "disagreement_rate": round(rate, 6),
            "run_pairs": self._run_pairs,
            "run_disagreement_rate": round(run_rate, 6),
            "recent_pairs": recent_pairs,
            "recent_disagreement_rate": round(recent_rate, 6),
            "expected_rate": p0,
            "cusum_llr": round(self._cusum, 3),
            "alarm_llr": round(math.log(1 / self.alpha), 3),
            "sign_test_p": self._sign_p,
            "unjoined_expired": self._join.expired,
            "unjoined_dropped": self._join.dropped,
        }
        if self._alarm:
            message = (
                f"canary disagrees with production on {run_rate:.1%} of the last {self._run_pairs} joined requests "
                f"(expected at most {p0:.1%}); the sequential test passed its alarm level"
            )
            if self._sign_alarm:
                message += f"; canary outputs are shifted one way (sign test p={self._sign_p:.1e})"
        else:
            message = f"canary agrees with production as expected ({rate:.1%} disagreement over {self._pairs} requests)"
        return Decision("prediction", "canary-divergence", self._alarm, evidence, message)


def _sign_test(positive: int, negative: int) -> float:
    """Two-sided p-value that positive and negative differences are equally likely (normal approximation)."""
    n = positive + negative
    if n == 0:
        return 1.0
    z = (abs(positive - negative) - 1) / math.sqrt(n)
    return float(min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2))))


class DelayedLabelPerformance:
    """Accuracy from labels that arrive late, vs the certified baseline, with confidence bounds.

    Predictions wait up to ``horizon_s`` seconds of event time for their label (at most
    ``max_pending`` of them). A label joins its prediction once; the outcome (correct or
    not; numbers are correct within ``tolerance``) enters a ring of the last ``window``
    outcomes. The model under-performs when the Wilson interval of its accuracy at
    ``confidence`` lies entirely below ``baseline - margin``, and recovers once the
    interval reaches ``baseline`` again (hysteresis: one alarm per drop). Counters: ``duplicate``
    labels (for a request already judged), ``orphan`` labels (no prediction: never seen,
    expired or dropped), ``expired`` predictions (no label within the horizon) and
    ``dropped`` ones (over ``max_pending``).

    Parameters
    ----------
    baseline
        Certified accuracy of this version.
    margin
        Accuracy loss tolerated before alarming.
    window
        Recent outcomes the estimate uses.
    min_outcomes
        Outcomes needed before any decision.
    confidence
        Two-sided confidence of the interval.
    horizon_s, max_pending
        How long, and how many, predictions wait for labels.

    >>> d = DelayedLabelPerformance(baseline=0.9, window=400, min_outcomes=200)
    >>> for i in range(400):
    ...     d.observe_prediction(str(i), ts=i, prediction=1)
    >>> for i in reversed(range(400)):  # late, out of order, 30% wrong
    ...     _ = d.observe_label(str(i), ts=400 + i, label=1 if i % 10 >= 3 else 0)
    >>> _ = d.observe_label("7", ts=900, label=1)  # a duplicate
    >>> r = d.decision()
    >>> r.anomalous, r.evidence["accuracy"], r.evidence["duplicate"]
    (True, 0.7, 1)
    """

    def __init__(
        self,
        baseline: float,
        margin: float = 0.02,
        window: int = 1000,
        min_outcomes: int = 200,
        confidence: float = 0.999,
        tolerance: float = 0.0,
        horizon_s: float = 6 * 3600.0,
        max_pending: int = 100_000,
    ):
        self.baseline, self.margin, self.window, self.min_outcomes = baseline, margin, window, min_outcomes
        self.confidence, self.tolerance, self.horizon_s, self.max_pending = confidence, tolerance, horizon_s, max_pending
        self._join = _Joiner(horizon_s, max_pending)
        self._judged: OrderedDict[str, None] = OrderedDict()  # recent judged ids, to spot duplicates
        self._ring = np.zeros(window, dtype=np.uint8)
        self._filled = self._next = self._correct = 0
        self._duplicate = self._orphan = 0
        self._alarm = False

    @property
    def anomalous(self) -> bool:
        return self._alarm

    def observe_prediction(self, request_id: str, ts: float, prediction: object) -> None:
        self._join.advance(ts)
        self._join.put(request_id, ts, prediction)

    def observe_label(self, request_id: str, ts: float, label: object) -> Decision | None:
        """Join one label; a Decision at an alarm's onset."""
        self._join.advance(ts)
        joined = self._join.pop(request_id)
        if joined is None:
            if request_id in self._judged:
                self._duplicate += 1
            else:
                self._orphan += 1
            return None
        self._judged[request_id] = None
        if len(self._judged) > self.max_pending:
            self._judged.popitem(last=False)
        return self.observe_outcome(joined[1], label)

    def observe_outcome(self, prediction: object, label: object) -> Decision | None:
        """Judge one prediction against its label (for callers that join themselves); a Decision at an alarm's onset."""
        if isinstance(label, int | float) and isinstance(prediction, int | float) and self.tolerance:
            correct = abs(float(prediction) - float(label)) <= self.tolerance
        else:
            correct = prediction == label
        self._correct += int(correct) - int(self._ring[self._next]) * (self._filled == self.window)
        self._ring[self._next] = correct
        self._next = (self._next + 1) % self.window
        self._filled = min(self._filled + 1, self.window)
        was, self._alarm = self._alarm, self._under()
        return self.decision() if self._alarm and not was else None

    def _interval(self) -> tuple[float, float]:
        return wilson(self._correct, self._filled, float(ndtri(0.5 + self.confidence / 2)))

    def _under(self) -> bool:
        """Below ``baseline - margin`` to raise; back to consistent with ``baseline`` to clear."""
        level = self.baseline if self._alarm else self.baseline - self.margin
        return self._filled >= self.min_outcomes and self._interval()[1] < level

    def decision(self) -> Decision:
        low, high = self._interval()
        accuracy = self._correct / self._filled if self._filled else float("nan")
        evidence = {
            "accuracy": round(accuracy, 6),
            "accuracy_low": round(low, 6),
            "accuracy_high": round(high, 6),
            "baseline": self.baseline,
            "outcomes": self._filled,
            "pending": len(self._join.pending),
            "duplicate": self._duplicate,
            "orphan": self._orphan,
            "expired": self._join.expired,
            "dropped": self._join.dropped,
        }
        if self._alarm:
            message = (
                f"accuracy on the last {self._filled} labelled requests is {accuracy:.1%} "
                f"({self.confidence:.1%} interval {low:.1%}-{high:.1%}), below the certified {self.baseline:.1%}"
            )
        else:
            message = f"accuracy {accuracy:.1%} over {self._filled} labelled requests is consistent with the certified {self.baseline:.1%}"
        return Decision("prediction", "delayed-label-performance", self._alarm, evidence, message)


class PredictionDrift:
    """Live prediction distribution vs a reference window: PSI plus KS (numbers) or Jensen-Shannon (labels).

    The reference (e.g. the certification run's predictions, or the first ``window`` live
    ones when none is given) fixes the bins: ``bins`` quantile bins for numbers, the
    categories seen for labels (plus one for "new"). The last ``window`` live predictions
    are kept as bin indices in a ring (and, for numbers, their values, for KS). Every
    ``every`` predictions the population stability index is computed; drift is declared
    when PSI >= ``psi_threshold`` (0.25 is the customary "major shift") and the second
    test agrees: KS p-value < ``alpha`` for numbers (computed only when PSI is high enough
    to matter, NaN otherwise), Jensen-Shannon distance >= ``js_threshold`` for labels. Hysteresis: the alarm clears only when PSI is below
    ``psi_clear`` (0.1, the customary "no significant shift") or the second test clearly
    disagrees (KS p >= ``sqrt(alpha)``, Jensen-Shannon < ``js_threshold / 2``), so a shift
    hovering at the threshold gives one alarm.

    Parameters
    ----------
    reference
        Reference predictions, or ``None`` to take the first ``window`` live ones.
    window
        Live predictions compared with the reference.
    bins
        Quantile bins for numeric predictions.
    psi_threshold, alpha, js_threshold
        Decision levels of PSI, KS and Jensen-Shannon.
    every
        Predictions between two evaluations (bounds the cost per event).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> d = PredictionDrift(reference=rng.normal(0, 1, 2000), window=1000)
    >>> for v in rng.normal(0, 1, 1000):
    ...     _ = d.observe(float(v))
    >>> d.decision().anomalous
    False
    >>> for v in rng.normal(0.8, 1, 1000):
    ...     _ = d.observe(float(v))
    >>> r = d.decision()
    >>> r.kind, r.anomalous, r.evidence["psi"] > 0.25
    ('drift', True, True)
    """

    def __init__(
        self,
        reference: list | np.ndarray | None = None,
        window: int = 1000,
        bins: int = 10,
        psi_threshold: float = 0.25,
        alpha: float = 1e-4,
        js_threshold: float = 0.1,
        every: int = 100,
        psi_clear: float = 0.1,
    ):
        self.reference, self.window, self.bins = reference, window, bins
        self.psi_threshold, self.alpha, self.js_threshold, self.every = psi_threshold, alpha, js_threshold, every
        self.psi_clear = psi_clear
        self._pending: list = []
        self._ref: np.ndarray | None = None
        self._edges: np.ndarray | None = None
        self._categories: dict[object, int] | None = None
        self._expected: np.ndarray | None = None
        self._bin = np.zeros(window, dtype=np.int32)
        self._value = np.zeros(window)
        self._filled = self._next = self._since = 0
        self._recent: list = []
        """Predictions not yet in the ring (fewer than ``every``)."""
        self._psi = 0.0
        self._second = 1.0  # KS p-value or Jensen-Shannon distance
        self._alarm = False
        if reference is not None:
            self._fit(list(reference))

    @property
    def anomalous(self) -> bool:
        return self._alarm

    @property
    def numeric(self) -> bool | None:
        """True for numeric predictions, False for labels, None until the reference is fitted."""
        return None if self._expected is None else self._edges is not None

    def _fit(self, reference: list) -> None:
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in reference)
        if numeric:
            self._ref = np.sort(np.asarray(reference, dtype=float))
            self._edges = np.unique(np.quantile(self._ref, np.linspace(0, 1, self.bins + 1)[1:-1]))
            counts = np.bincount(np.searchsorted(self._edges, self._ref, side="right"), minlength=len(self._edges) + 1)
        else:
            self._categories = {c: i for i, c in enumerate(dict.fromkeys(reference))}
            codes = [self._categories[c] for c in reference]
            counts = np.bincount(codes, minlength=len(self._categories) + 1)  # last: unseen categories
            self._second = 0.0
        self._expected = counts / counts.sum()

    def _take(self, predictions: list) -> None:
        """Put predictions into the ring (the last ``window`` of them, if more)."""
        predictions = predictions[-self.window:]
        at = (self._next + np.arange(len(predictions))) % self.window
        if self._edges is not None:
            values = np.asarray(predictions, dtype=float)
            self._bin[at] = np.searchsorted(self._edges, values, side="right")
            self._value[at] = values
        else:
            unseen = len(self._categories)
            self._bin[at] = [self._categories.get(p, unseen) for p in predictions]
        self._next = int(at[-1] + 1) % self.window
        self._filled = min(self._filled + len(predictions), self.window)
        self._since += len(predictions)

    def observe(self, prediction: object) -> Decision | None:
        """Take one live prediction; a Decision at an alarm's onset."""
        if self._expected is None:
            self._pending.append(prediction)
            if len(self._pending) >= self.window:
                self._fit(self._pending)
                self._pending = []
            return None
        # Predictions wait in a list and enter the ring ``every`` at a time, coded in one
        # vectorized call: a list append is all a prediction costs between two tests.
        recent = self._recent
        recent.append(prediction)
        if len(recent) < self.every:
            return None
        self._recent = []
        self._take(recent)
        if self._since < self.every or self._filled < self.window:
            return None
        self._since = 0
        actual = np.bincount(self._bin[: self._filled], minlength=len(self._expected)) / self._filled
        e, a = np.maximum(self._expected, 1e-4), np.maximum(actual, 1e-4)
        self._psi = float(np.sum((a - e) * np.log(a / e)))
        was = self._alarm
        psi_high = self._psi >= (self.psi_clear if was else self.psi_threshold)
        if self._edges is not None:
            # KS costs ~1 ms (100x PSI): only run it when PSI leaves the decision open; else NaN.
            self._second = float(ks_2samp(self._ref, self._value[: self._filled], method="asymp").pvalue) if psi_high else math.nan
            second_agrees = self._second < (math.sqrt(self.alpha) if was else self.alpha)
        else:
            self._second = js_distance(self._expected, actual)
            second_agrees = self._second >= (self.js_threshold / 2 if was else self.js_threshold)
        self._alarm = psi_high and second_agrees
        return self.decision() if self._alarm and not was else None

    def decision(self) -> Decision:
        test = "ks_p" if self._edges is not None else "js_distance"
        evidence = {"psi": round(self._psi, 6), test: self._second, "live": self._filled}
        if self._alarm:
            message = (
                f"live predictions drifted from the reference (PSI {self._psi:.2f} >= {self.psi_threshold}, "
                f"{test} {self._second:.2g}): the model may need retraining or redesign"
            )
        else:
            message = f"live predictions match the reference (PSI {self._psi:.2f})"
        return Decision("drift", "prediction-drift", self._alarm, evidence, message)

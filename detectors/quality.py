"""Model-quality detectors: canary divergence and delayed-label performance (drift: ``detectors/drift.py``).

Fed one event at a time by the detection plane (production and canary predictions,
delayed labels), with bounded memory: counters and a few small arrays per detector, no
rings of past values. Each returns a :class:`Decision` with its anomaly class
(``prediction`` for under-performance, ``drift`` for a distribution shift), its state
(``insufficient_data`` until it can decide, then ``ok`` or ``anomalous``), the numbers
behind it and one sentence for a human. Event times are epoch seconds; "now" is the
latest event time seen, so replays and tests need no wall clock.

Every decision is sequential, so a quiet model is judged after a few observations and a
busy one is not judged on stale ones: a CUSUM of log-likelihood ratios (a repeated
sequential probability ratio test). Its false alarms are counted per version and day, not
per observation, whatever the traffic: the log-likelihood ratios of one ``step_s`` of event
time are summed and the CUSUM stepped once per step (:class:`WindowedCusum`), and a
CUSUM's run length to a false alarm is at least ``exp(h)`` steps (Lorden), so ``h =
ln(steps a day / false_alarms_per_day)`` (:func:`~modelmedic.detectors.sequential.threshold_for`:
16.5 for one-minute steps and 1e-4, the judge's budget) holds each decision to
``false_alarms_per_day`` for a healthy version at the tolerated level, busy or quiet. While
raised it weighs the evidence for half the change, is capped at that level and clears only
back at 0, so a measure hovering at its limit gives one alarm and a recovered one clears.
Drift compares counts of the recent predictions with a reference by a G-test, whose p-value
accounts for how many there are (``detectors/drift.py``: at most one test per
``test_interval_s``, each at ``false_alarms_per_day`` spread over a day's tests).
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from dataclasses import dataclass, field

from modelmedic import _columns as _native
from modelmedic.detectors.sequential import threshold_for

INSUFFICIENT, OK, ANOMALOUS = "insufficient_data", "ok", "anomalous"


@dataclass(frozen=True)
class Decision:
    """The state of a quality detector: is the model anomalous, why, in one sentence."""

    kind: str  # "prediction" | "drift"
    detector: str
    anomalous: bool
    evidence: dict[str, float] = field(default_factory=dict)
    message: str = ""
    state: str = OK
    """``insufficient_data`` (too few observations to decide), ``ok`` or ``anomalous``."""


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


def total_variation(p: list[float], q: list[float]) -> float:
    """Total variation distance (in [0, 1]) of two probability vectors over the same classes.

    Vectors over different numbers of classes are as far apart as can be (1.0).

    >>> total_variation([0.7, 0.2, 0.1], [0.6, 0.3, 0.1]), total_variation([1.0, 0.0], [0.5, 0.3, 0.2])
    (0.1, 1.0)
    """
    if len(p) != len(q):
        return 1.0
    return round(0.5 * sum(abs(a - b) for a, b in zip(p, q)), 12)


class Cusum:
    """One-sided CUSUM of log-likelihood ratios, with hysteresis, and the run it measures.

    Raises at ``level``; while raised it is capped there and clears only once it is back at
    0. Its users feed it, while raised, the evidence for a change half as large (midway
    between the tolerated and the alarming value): a measure hovering between the two then
    keeps the alarm, and only one back near the tolerated value clears it (a rate hovering
    there flapped 46 times in 150,000 pairs with the same evidence both ways and a cap at
    twice the level; it fired twice with this). ``run_n`` and
    ``run_sum`` count the observations (and add up a measure of them) since it last stood
    at 0: its estimate of the change point, so a long healthy past does not dilute what is
    reported.

    >>> c = Cusum(level=3.0)
    >>> [c.add(1.0, 1.0) for _ in range(4)], c.run_n, c.value
    ([False, False, True, True], 4, 3.0)
    """

    def __init__(self, level: float):
        self.level = level
        self.value = 0.0
        self.alarm = False
        self.run_n = 0
        self.run_sum = 0.0

    def add(self, llr: float, x: float) -> bool:
        """Add one observation's log-likelihood ratio (``x``: its measure, summed over the run); the alarm state."""
        self.value, self.alarm = _cusum_step(self.value, self.alarm, llr, self.level)
        if self.value > 0.0:
            self.run_n += 1
            self.run_sum += x
        else:
            self.run_n, self.run_sum = 0, 0.0
        return self.alarm


def _cusum_step(value: float, alarm: bool, llr: float, level: float) -> tuple[float, bool]:
    """One step of a :class:`Cusum` (``level`` > 0): its new value (0 once the sum falls to 0 or below, capped at
    ``level`` while raised) and alarm. A function of plain values, so :class:`CanaryDivergence` can step its four
    CUSUMs kept as numbers in one list rather than as eight objects."""
    value += llr
    if value <= 0.0:
        value = 0.0
    elif alarm:
        value = min(value, level)
    return value, (value > 0.0 if alarm else value >= level)


class WindowedCusum:
    """A :class:`Cusum` stepped once per ``window_s`` of event time with the window's summed log-likelihood ratio.

    So its run length to a false alarm (at least ``exp(level)`` steps) is counted in windows,
    whatever the traffic: a busy version's thousand observations a minute step it once, as a
    quiet version's one does. ``run_n`` / ``run_x`` count the observations (and add up their
    measure) since the CUSUM last stood at 0, over whole windows: what a message reports as
    "the last N".

    >>> w = WindowedCusum(level=3.0, window_s=60.0)
    >>> for ts in range(0, 120, 10):  # two windows of six observations worth 0.3 each
    ...     _ = w.advance(ts); w.add(0.3, 1.0)
    >>> w.close(); w.cusum.alarm, w.run_n, round(w.cusum.value, 1)
    (True, 12, 3.6)
    """

    def __init__(self, level: float, window_s: float) -> None:
        self.cusum = Cusum(level)
        self.window_s = window_s
        self.window = -math.inf
        self.llr = self.x = 0.0
        self.n = self.run_n = 0
        self.run_x = 0.0

    def advance(self, ts: float) -> bool:
        """Move to the window of event time ``ts``, stepping the CUSUM if one closes (a late ``ts``
        counts in the current window); whether one did."""
        window = ts // self.window_s
        if window <= self.window:
            return False
        self.close()
        self.window = window
        return True

    def add(self, llr: float, x: float) -> None:
        """One observation of the current window."""
        self.llr += llr
        self.x += x
        self.n += 1

    def close(self) -> None:
        """Step the CUSUM with the open window's evidence."""
        if not self.n:
            return
        self.cusum.add(self.llr, self.x)
        if self.cusum.run_n:
            self.run_n += self.n
            self.run_x += self.x
        else:
            self.run_n, self.run_x = 0, 0.0
        self.llr = self.x = 0.0
        self.n = 0


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


_RATE, _LARGE, _UP, _DOWN = range(4)
"""A :class:`CanaryDivergence`'s CUSUMs in its ``_cusums``."""
_VALUE, _ALARM, _LLR, _X, _N, _RUN_N, _RUN_X = range(7)
"""A flattened :class:`WindowedCusum`: its CUSUM's value and alarm, the open step's summed log-likelihood
ratio, measure and count, and the run's count and measure."""
_TYPES = ("", "number", "probabilities", "class")
"""A pair's prediction type by its code in the native core (0: no pair yet)."""
_PROBABILITIES, _CLASS = 2, 3
_STATE = ("_learned", "_p0", "_llrs", "_level", "_step", "_cusums", "_type", "_pairs", "_disagree", "_distance",
          "_prod", "_diff", "_recent")
"""The attributes of a :class:`CanaryDivergence` that pairs change: kept by its native core, and in its snapshot as
the plain values they were when the detector kept them itself, so snapshots of either restore in the other."""


def _bernoulli_llr(p0: float, p1: float) -> tuple[float, float]:
    """Log-likelihood ratios of ``p1`` vs ``p0`` for one success and one failure."""
    return math.log(p1 / p0), math.log((1 - p1) / (1 - p0))


@functools.lru_cache(maxsize=64)
def _level(step_s: float, false_alarms_per_day: float) -> float:
    """:func:`threshold_for`, cached: a detector's construction was 2.9% of a py-spy profile of ``bench_quality``'s
    steady state at 100k models, where quiet mirrored models keep getting their first pair."""
    return threshold_for(step_s, false_alarms_per_day)


def _prediction_type(prod: object, canary: object) -> str:
    """``number``, ``probabilities`` (two vectors) or ``class`` (anything else, compared for equality)."""
    if prod.__class__ in (int, float) and canary.__class__ in (int, float):
        return "number"
    if prod.__class__ is list and canary.__class__ is list:
        return "probabilities"
    return "class"


class CanaryDivergence:
    """Production vs canary on the same requests: do they differ more than two healthy versions do?

    Predictions of the two roles are joined by ``request_id`` within ``window_s`` seconds
    (at most ``max_pending`` unjoined). How a pair is compared follows the prediction type:

    - **classes**: a pair *disagrees* when the classes differ;
    - **probability vectors**: when their total variation distance exceeds
      ``probability_tolerance``;
    - **numbers**: when the difference exceeds ``tolerance`` times the spread of the
      predictions (``scale``: given, e.g. the certified reference's standard deviation, or
      learned from the paired production predictions, never below 0.1% of their mean
      magnitude). Numbers also get a test of bias: the differences in units of that spread
      (clipped at ``2 * bias_effect``), by a two-sided Gaussian CUSUM of a mean shift of
      ``bias_effect`` (an effect size) against none, with the differences' own spread (at
      least ``bias_effect``). Small unbiased differences, however many, never alarm; a
      consistent bias of ``bias_effect`` spreads alarms within about ten pairs; one below
      half of it never does.

    The disagreement rate is tested against the tolerated rate ``p0 + margin`` by two Bernoulli
    CUSUMs, of ``p0 + margin + effect`` (a small rise, found surely) and of ``p0 + margin +
    large_effect`` (a bad release, found about twice as fast: the day budget's level needs 1.8
    times the evidence of the old per-pair one) vs ``p0 + margin``, each stepped once per
    ``step_s`` of event time with a level from ``false_alarms_per_day`` (the module's
    docstring), as is the bias test. ``p0`` is ``expected_rate`` when
    given (the rate learned on a healthy version of the model (:meth:`healthy_rate`), or
    certified); otherwise ``prior_rate`` until ``warmup`` pairs were seen without alarm, then
    :meth:`healthy_rate` (:attr:`expected` gives it to later versions). ``margin`` is what a
    healthy new version may change: it is compared with its predecessor, and a release that
    changes nothing is rarely worth deploying (the detection harness's normal deploy changes
    up to 2.9% of a classifier's answers, which a CUSUM without margin found on every busy
    canary, ``tests/unit/test_canary_margin.py``). Before ``min_pairs`` pairs the state is
    ``insufficient_data`` and nothing alarms.

    >>> d = CanaryDivergence(expected_rate=0.01)
    >>> for i in range(3000):  # ts: one pair a second
    ...     _ = d.observe("production", str(i), i, str(i % 3))
    ...     _ = d.observe("canary", str(i), i, str(i % 3) if i % 10 else "x")  # 10% flipped
    >>> r = d.decision()
    >>> r.kind, r.state, r.evidence["disagreement_rate"]
    ('prediction', 'anomalous', 0.1)
    >>> d = CanaryDivergence()
    >>> for i in range(400):  # a regressor's healthy canary: tiny unbiased differences, a pair a minute
    ...     _ = d.observe_pair(100.0 + i % 7, 100.0 + i % 7 + (-1) ** i * 1e-3, ts=60 * i)
    >>> d.decision().state, d.expected < 0.05
    ('ok', True)
    >>> for i in range(30):  # then 0.4 prediction spreads higher (within the tolerance: a bias)
    ...     _ = d.observe_pair(100.0 + i % 7, 100.8 + i % 7, ts=60 * (400 + i))
    >>> r = d.decision()
    >>> r.state, r.evidence["bias"] < -0.3, r.message[:38]
    ('anomalous', True, "outputs are lower than the canary's by")
    """

    def __init__(
        self,
        expected_rate: float | None = None,
        prior_rate: float = 0.1,
        margin: float = 0.05,
        effect: float = 0.05,
        large_effect: float = 0.2,
        tolerance: float = 0.5,
        probability_tolerance: float = 0.1,
        bias_effect: float = 0.2,
        scale: float | None = None,
        false_alarms_per_day: float = 1e-4,
        step_s: float = 60.0,
        min_pairs: int = 10,
        warmup: int = 200,
        min_rate: float = 0.005,
        window_s: float = 60.0,
        max_pending: int = 10_000,
        block: int = 200,
    ):
        self.expected_rate, self.prior_rate, self.effect, self.tolerance = expected_rate, prior_rate, effect, tolerance
        self.margin, self.large_effect = margin, large_effect
        self.probability_tolerance, self.bias_effect, self.scale = probability_tolerance, bias_effect, scale
        self.false_alarms_per_day, self.step_s = false_alarms_per_day, step_s
        self.min_pairs, self.warmup, self.min_rate = min_pairs, warmup, min_rate
        self.window_s, self.max_pending, self.block = window_s, max_pending, block
        self._join = _Joiner(window_s, max_pending)
        self._core = self._new_core(expected_rate is not None, expected_rate if expected_rate is not None else prior_rate)
        """What pairs change (:data:`_STATE`), in native code (``native/src/canary.rs``): the open ``step_s`` step
        of event time, the disagreement rate's small (``_RATE``) and large (``_LARGE``) effect CUSUMs and the
        bias's two sides (``_UP``, ``_DOWN``), each a :class:`WindowedCusum` flattened (``_VALUE`` ... ``_RUN_X``),
        the counts, two Welford accumulators (the production predictions' spread, the clipped standardized
        differences) and the last two blocks' (pairs, disagreements). A pair in Python cost ~6 us, a quarter of
        the quality monitor's CPU at 100k models (docs/benchmarks.md, "The quality monitor")."""

    def _new_core(self, learned: bool, p0: float) -> _native.CanaryCore:
        """A native core at rest with these settings, tolerating ``p0`` (+ ``margin``)."""
        return _native.CanaryCore(
            self.tolerance, self.bias_effect, self.scale, self.min_pairs, self.warmup, self.block, self.step_s,
            self.min_rate, self.margin, self.effect, self.large_effect, _level(self.step_s, self.false_alarms_per_day),
            learned, p0)

    @property
    def tolerated(self) -> float:
        """The disagreement rate the test tolerates: the healthy one plus ``margin``."""
        return min(self._core.state()[0][1] + self.margin, 0.95)

    def __getstate__(self) -> dict:
        """The snapshot's form: the settings, and the numbers of :data:`_STATE` as the plain values (lists, as
        the detector kept them before its core was native) a snapshot of either form holds."""
        state = {k: v for k, v in self.__dict__.items() if k != "_core"}
        (learned, p0, llrs, level, step), cusums, (kind, pairs, disagree, distance), prod, diff, recent = \
            self._core.state()
        state.update(_learned=learned, _p0=p0, _llrs=list(llrs), _level=level, _step=step,
                     _cusums=[list(c) for c in cusums], _type=_TYPES[kind], _pairs=pairs, _disagree=disagree,
                     _distance=distance, _prod=list(prod), _diff=list(diff), _recent=list(recent))
        return state

    def __setstate__(self, state: dict) -> None:
        """Restore a snapshot (:meth:`__getstate__`'s form); one written before the CUSUMs were flattened holds four
        :class:`WindowedCusum` (``_rate``, ``_large``, ``_up``, ``_down``), taken over as they stood."""
        state = dict(state)
        if "_rate" in state:
            windowed = [state.pop(name) for name in ("_rate", "_large", "_up", "_down")]
            state["_level"], state["_step"] = windowed[0].cusum.level, windowed[0].window
            state["_cusums"] = [[w.cusum.value, w.cusum.alarm, w.llr, w.x, w.n, w.run_n, w.run_x] for w in windowed]
        numbers = {name: state.pop(name) for name in _STATE}
        self.__dict__.update(state)
        self._core = self._new_core(numbers["_learned"], numbers["_p0"])
        self._core.restore((
            (numbers["_learned"], numbers["_p0"], tuple(tuple(map(tuple, llr)) for llr in numbers["_llrs"]),
             numbers["_level"], numbers["_step"]),
            [tuple(c) for c in numbers["_cusums"]],
            (_TYPES.index(numbers["_type"]), numbers["_pairs"], numbers["_disagree"], numbers["_distance"]),
            tuple(numbers["_prod"]), tuple(numbers["_diff"]), tuple(numbers["_recent"])))

    @property
    def anomalous(self) -> bool:
        return self._core.anomalous

    @property
    def expected(self) -> float | None:
        """The tolerated disagreement rate once given or learned (None while the prior stands)."""
        return self._core.expected

    @property
    def pairs(self) -> int:
        """Pairs compared so far."""
        return self._core.pairs

    def healthy_rate(self) -> float | None:
        """What these pairs say two healthy versions disagree on: the Wilson upper bound (2 standard
        errors) of their rate, at least ``min_rate``; None while anomalous or before ``min_pairs``."""
        return self._core.healthy_rate

    def observe(self, role: str, request_id: str, ts: float, prediction: object) -> Decision | None:
        """Take one prediction (``role`` is ``production`` or ``canary``); a Decision at an alarm's onset."""
        self._join.advance(ts)
        other = self._join.pop(request_id)
        if other is None or other[1][0] == role:
            self._join.put(request_id, ts, (role, prediction))
            return None
        prod, canary = (prediction, other[1][1]) if role == "production" else (other[1][1], prediction)
        return self.observe_pair(prod, canary, ts)

    def observe_pair(self, prod: object, canary: object, ts: float) -> Decision | None:
        """Take one joined pair seen at event time ``ts`` (for callers that join themselves); a Decision
        at an alarm's onset (when the step it completes closes: at the first pair of a later step).

        The four CUSUMs step together, and only when a step closes can the alarm change: most
        pairs of a busy canary fall in an open step and cost no step check per CUSUM. A numeric pair is
        compared in the core; vectors and classes here, the core counting what the comparison says."""
        kind = _prediction_type(prod, canary)
        if kind == "number":
            onset = self._core.number(float(prod), float(canary), ts)
        elif kind == "probabilities":
            distance = total_variation(prod, canary)
            onset = self._core.compared(_PROBABILITIES, distance > self.probability_tolerance, distance, ts)
        else:
            disagree = prod != canary
            onset = self._core.compared(_CLASS, disagree, float(disagree), ts)
        return self.decision() if onset else None

    def decision(self, other: str = "the canary") -> Decision:
        """The current state; ``other`` names the canary in the message."""
        (_, p0, _, level, _), cusums, (kind, pairs, disagree, distance), _, _, recent = self._core.state()
        rate_cusum, up, down = cusums[_RATE], cusums[_UP], cusums[_DOWN]
        if cusums[_LARGE][_ALARM] and not rate_cusum[_ALARM]:
            rate_cusum = cusums[_LARGE]
        run_pairs, run_x = rate_cusum[_RUN_N], rate_cusum[_RUN_X]
        rate = disagree / pairs if pairs else 0.0
        run_rate = run_x / run_pairs if run_pairs else 0.0
        recent_pairs = recent[0] + recent[2]
        recent_rate = (recent[1] + recent[3]) / recent_pairs if recent_pairs else 0.0
        side = up if up[_VALUE] >= down[_VALUE] else down
        bias = -side[_RUN_X] / side[_RUN_N] if side[_RUN_N] else 0.0  # production minus canary
        evidence = {
            "pairs": pairs,
            "disagreement_rate": round(rate, 6),
            "run_pairs": run_pairs,
            "run_disagreement_rate": round(run_rate, 6),
            "recent_pairs": recent_pairs,
            "recent_disagreement_rate": round(recent_rate, 6),
            "expected_rate": round(p0, 6),
            "tolerated_rate": round(self.tolerated, 6),
            "rate_llr": round(rate_cusum[_VALUE], 3),
            "bias": round(bias, 6),
            "bias_pairs": side[_RUN_N],
            "bias_llr": round(side[_VALUE], 3),
            "alarm_llr": round(level, 3),
            "mean_distance": round(distance / pairs, 6) if pairs else 0.0,
            "unjoined_expired": self._join.expired,
            "unjoined_dropped": self._join.dropped,
        }
        if pairs < self.min_pairs:
            state = INSUFFICIENT
            message = f"too few shared requests to compare with {other} yet ({pairs} of {self.min_pairs})"
        elif not self.anomalous:
            state = OK
            message = f"agrees with {other} as expected ({rate:.1%} disagreement on {pairs:,} shared requests)"
        else:
            state = ANOMALOUS
            if rate_cusum[_ALARM]:
                what = {"number": f" by more than {self.tolerance:g} prediction spreads",
                        "probabilities": f" by more than {self.probability_tolerance:g} in total variation"}
                message = (f"disagrees with {other}{what.get(_TYPES[kind], '')} on {run_rate:.1%} of "
                           f"{run_pairs:,} shared requests, tolerated <= {self.tolerated:.1%} "
                           f"({p0:.1%} usual + {self.margin:.1%} for a new version)")
            else:
                message = (f"outputs are {'higher' if bias > 0 else 'lower'} than {other}'s by {abs(bias):.2f} "
                           f"prediction spreads on average over {side[_RUN_N]:,} shared requests (a consistent bias; "
                           f"{self.bias_effect:g} is worth an alarm)")
        return Decision("prediction", "canary-divergence", state == ANOMALOUS, evidence, message, state)


class DelayedLabelPerformance:
    """Accuracy from labels that arrive late, vs the certified (or learned) baseline, decided sequentially.

    Predictions wait up to ``horizon_s`` seconds of event time for their label (at most
    ``max_pending`` of them). A label joins its prediction once; the outcome (correct or
    not; numbers are correct within ``tolerance``) feeds a Bernoulli CUSUM of the error
    rate ``e0 + effect`` vs ``e0 = 1 - baseline + margin`` (the tolerated error), stepped once
    per ``step_s`` of the labels' event time at a level from ``false_alarms_per_day`` (the
    module's docstring): a drop of ``effect`` in accuracy is found after about that level
    divided by its per-label evidence (about 150 labels for a 0.85 model losing 30% of its
    accuracy, at 1e-4 a day and one-minute steps), however
    long the healthy past, and the alarm clears once the accuracy is back. Before
    ``min_outcomes`` outcomes the state is ``insufficient_data``. Counters: ``duplicate``
    labels (for a request already judged), ``orphan`` labels (no prediction: never seen,
    expired or dropped), ``expired`` predictions (no label within the horizon) and
    ``dropped`` ones (over ``max_pending``).

    >>> d = DelayedLabelPerformance(baseline=0.9)
    >>> for i in range(400):
    ...     d.observe_prediction(str(i), ts=i, prediction=1)
    >>> for i in reversed(range(400)):  # late, out of order, 30% wrong, one every 30 s
    ...     _ = d.observe_label(str(i), ts=400 + 30 * (399 - i), label=1 if i % 10 >= 3 else 0)
    >>> _ = d.observe_label("7", ts=13_000, label=1)  # a duplicate
    >>> r = d.decision()
    >>> r.state, r.evidence["accuracy"], r.evidence["duplicate"]
    ('anomalous', 0.7, 1)
    """

    def __init__(
        self,
        baseline: float,
        margin: float = 0.02,
        effect: float = 0.1,
        false_alarms_per_day: float = 1e-4,
        step_s: float = 60.0,
        min_outcomes: int = 30,
        tolerance: float = 0.0,
        horizon_s: float = 6 * 3600.0,
        max_pending: int = 100_000,
        block: int = 100,
    ):
        self.baseline, self.margin, self.effect = baseline, margin, effect
        self.false_alarms_per_day, self.step_s = false_alarms_per_day, step_s
        self.min_outcomes, self.tolerance, self.horizon_s, self.max_pending = min_outcomes, tolerance, horizon_s, max_pending
        self.block = block
        self._join = _Joiner(horizon_s, max_pending)
        self._judged: OrderedDict[str, None] = OrderedDict()  # recent judged ids, to spot duplicates
        self._e0 = min(max(1.0 - baseline + margin, 1e-3), 0.98)
        e1 = min(self._e0 + effect, 0.999)
        self._llr = _bernoulli_llr(self._e0, e1)
        # While alarmed: midway vs the baseline's own error rate, so an accuracy back at the
        # baseline clears in a few hundred labels and one hovering near the limit does not.
        self._hold = _bernoulli_llr(min(max(1.0 - baseline, 1e-3), self._e0), (self._e0 + e1) / 2)
        self._cusum = WindowedCusum(threshold_for(step_s, false_alarms_per_day), step_s)
        self._n = self._correct = 0
        self._recent = [0, 0, 0, 0]  # outcomes, correct: previous block, current block
        self._duplicate = self._orphan = 0

    @property
    def anomalous(self) -> bool:
        return self._cusum.cusum.alarm and self._n >= self.min_outcomes

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
        return self.observe_outcome(joined[1], label, ts)

    def observe_outcome(self, prediction: object, label: object, ts: float) -> Decision | None:
        """Judge one prediction against its label, which came at event time ``ts`` (for callers that join
        themselves); a Decision at an alarm's onset (when the step it completes closes)."""
        if isinstance(label, int | float) and isinstance(prediction, int | float) and self.tolerance:
            correct = abs(float(prediction) - float(label)) <= self.tolerance
        else:
            correct = prediction == label
        was = self.anomalous
        self._cusum.advance(ts)
        self._n += 1
        self._correct += correct
        recent = self._recent
        recent[2] += 1
        recent[3] += correct
        if recent[2] >= self.block:
            self._recent = [recent[2], recent[3], 0, 0]
        yes, no = self._hold if self._cusum.cusum.alarm else self._llr
        self._cusum.add(no if correct else yes, not correct)
        return self.decision() if self.anomalous and not was else None

    def decision(self) -> Decision:
        n, windowed = self._n, self._cusum
        cusum = windowed.cusum
        accuracy = self._correct / n if n else math.nan
        run_accuracy = 1.0 - windowed.run_x / windowed.run_n if windowed.run_n else accuracy
        recent_n = self._recent[0] + self._recent[2]
        recent = (self._recent[1] + self._recent[3]) / recent_n if recent_n else math.nan
        evidence = {
            "accuracy": round(accuracy, 6),
            "run_accuracy": round(run_accuracy, 6),
            "run_outcomes": windowed.run_n,
            "recent_accuracy": round(recent, 6),
            "recent_outcomes": recent_n,
            "baseline": self.baseline,
            "tolerated_accuracy": round(1.0 - self._e0, 6),
            "outcomes": n,
            "llr": round(cusum.value, 3),
            "alarm_llr": round(cusum.level, 3),
            "pending": len(self._join.pending),
            "duplicate": self._duplicate,
            "orphan": self._orphan,
            "expired": self._join.expired,
            "dropped": self._join.dropped,
        }
        if n < self.min_outcomes:
            state = INSUFFICIENT
            message = f"too few labelled requests to judge the accuracy yet ({n} of {self.min_outcomes})"
        elif self.anomalous:
            state = ANOMALOUS
            message = (f"accuracy is {run_accuracy:.1%} on the last {windowed.run_n:,} labelled requests, below the "
                       f"baseline {self.baseline:.1%} (tolerated down to {1.0 - self._e0:.1%}; sequential test at "
                       f"its alarm level)")
        else:
            state = OK
            message = (f"accuracy {recent:.1%} on the last {recent_n:,} labelled requests is consistent with "
                       f"the baseline {self.baseline:.1%}")
        return Decision("prediction", "delayed-label-performance", state == ANOMALOUS, evidence, message, state)

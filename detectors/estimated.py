"""Label-free accuracy estimation for classifiers that send probabilities (CBPE, streaming).

Labels come late, for a fraction of requests, or never; the model's confidence comes with
every answer. In the spirit of NannyML's confidence-based performance estimation (CBPE):
if ``p(c)`` is the probability that a prediction made with top-class confidence ``c`` is
right (the calibrated confidence), the expected accuracy of any set of predictions is the
mean of ``p(c)`` over them, with no label. A covariate shift that pushes inputs where the
model is unsure lowers it; so does a new version that is less sure of itself.

What differs from CBPE, to fit a stream with bounded memory and O(1) work per prediction:

- **Calibration** is histogram binning of the confidence (``bins`` equal-width bins between
  chance ``1/K`` and 1), learned from the delayed labels that do arrive: per bin, labelled
  and correct counts, halved once a bin holds ``max_bin_labels`` (so it follows the model
  and stays bounded). A bin with few labels leans, with the weight of ``prior_weight``
  labels, on the raw confidence shifted by what all the labels say of it (right minus
  confident, on average; itself leaning on the certified shift, :meth:`certify`): a quiet
  model's sparse bins are then not pulled back to a confidence its labels already
  corrected, and a model without any label is taken at its word (``calibration: none``).
- **"Usually"** is the expected accuracy of a reference distribution of confidences (the
  certification run's, else the version's first ``warmup`` predictions) under the *current*
  calibration: when labels re-calibrate the model, estimate and baseline move together, and
  only a change of the confidences themselves reads as a drop.
- **The drop** is decided sequentially: a CUSUM of the expected Bernoulli log-likelihood
  ratio of the error rate ``e1 = e0 + effect`` vs ``e0 = 1 - usual + margin`` (the same
  test as the delayed-label one, with each outcome replaced by its calibrated probability:
  less variable, so no more false alarms). Evidence is added up per ``window_s`` of event
  time and the CUSUM stepped once per window, so a CUSUM's run length to a false alarm
  (at least ``exp(h)`` steps) is counted in windows whatever the traffic, and ``h`` comes
  from a budget of ``false_alarms_per_day`` per version
  (:func:`~modelmedic.detectors.sequential.threshold_for`). Until the reference is complete
  the state is ``insufficient_data``.
- **Reconciliation**: every label is first scored against the calibration *before* it is
  learned (prequential), so "estimated on these predictions" vs "realized on them" is an
  honest comparison; both are reported (evidence ``estimated_on_labelled`` /
  ``realized_accuracy``). Once ``calibration_warmup`` labels are in, a two-sided CUSUM of
  "the labels' accuracy is ``gap`` away from the estimate" (an exact likelihood ratio per
  label, windowed like the drop) decides that the calibration no longer holds:
  ``P(label | confidence)`` changed, a concept drift the estimate cannot see (:attr:`gap`,
  a decision of its own).
"""

from __future__ import annotations

import math

from modelmedic.detectors.quality import ANOMALOUS, INSUFFICIENT, OK, Decision, WindowedCusum, _bernoulli_llr
from modelmedic.detectors.sequential import threshold_for


class _Gap:
    """The calibration-gap decision of an :class:`EstimatedAccuracy`, as a detector of its own
    (``anomalous`` and ``decision()``), so the monitor follows each decision by kind."""

    def __init__(self, owner: "EstimatedAccuracy") -> None:
        self.owner = owner

    @property
    def anomalous(self) -> bool:
        return self.owner._over.cusum.alarm or self.owner._under.cusum.alarm

    def decision(self) -> Decision:
        return self.owner.gap_decision()


class EstimatedAccuracy:
    """Expected accuracy of one version from its calibrated confidence, its drop, and its gap to the labels.

    Parameters (defaults need no tuning; the monitor passes ``QualitySettings``' ones):

    - ``bins``: calibration and reference bins of the top-class confidence.
    - ``prior_weight``: labels a bin needs before its own accuracy outweighs the (shifted) confidence.
    - ``max_bin_labels``: a bin's counts are halved at this many labels (bounded, adaptive).
    - ``margin`` / ``effect``: accuracy loss below the usual one that is tolerated / that the
      drop test is tuned to find fastest (as for delayed labels).
    - ``gap``: distance between estimated and realized accuracy on the same predictions that
      means the calibration no longer holds.
    - ``false_alarms_per_day``: budget of each test, per version and day.
    - ``window_s``: event time over which evidence is summed before one CUSUM step.
    - ``warmup``: predictions the reference is learned from when none is certified.
    - ``calibration_warmup``: labels before the calibration counts as learned and the gap is judged.
    - ``block``: predictions (labels) behind the "recent" figures of a message.

    Event times are epoch seconds; "now" is the latest one seen.

    >>> import random
    >>> rng = random.Random(7)
    >>> d = EstimatedAccuracy()
    >>> for i in range(3000):  # confident, calibrated answers, then unsure ones
    ...     c = 0.5 + 0.5 * rng.betavariate(6 if i < 2000 else 1.2, 1)
    ...     d.observe_confidence(c, ts=i, classes=2)
    >>> r = d.decision()
    >>> r.state, round(r.evidence["usual_accuracy"], 2), round(r.evidence["run_estimated_accuracy"], 2)
    ('anomalous', 0.93, 0.79)
    """

    def __init__(
        self,
        bins: int = 10,
        prior_weight: float = 20.0,
        max_bin_labels: int = 2000,
        margin: float = 0.02,
        effect: float = 0.1,
        gap: float = 0.1,
        false_alarms_per_day: float = 1e-4,
        window_s: float = 60.0,
        warmup: int = 200,
        calibration_warmup: int = 200,
        block: int = 200,
    ):
        self.bins, self.prior_weight, self.max_bin_labels = bins, prior_weight, max_bin_labels
        self.margin, self.effect, self.gap, self.false_alarms_per_day = margin, effect, gap, false_alarms_per_day
        self.window_s, self.warmup, self.calibration_warmup, self.block = window_s, warmup, calibration_warmup, block
        level = threshold_for(window_s, false_alarms_per_day)
        self._drop, self._over, self._under = (WindowedCusum(level, window_s) for _ in range(3))
        self._cal_n = [0.0] * bins  # labels per confidence bin
        self._cal_right = [0.0] * bins  # correct ones
        self._cal_conf = [0.0] * bins  # and their confidences
        self._totals = [0.0, 0.0, 0.0]  # labels, correct, confidence: the sums of the three above
        self._ref_n = [0.0] * bins  # reference confidences per bin
        self._ref_sum = [0.0] * bins  # and their sum (each bin is valued at its mean confidence)
        self._shift = 0.0  # certified calibration: accuracy minus the reference's mean confidence
        self._prior_shift = 0.0  # what all labels say of the confidence, leaning on ``_shift`` (see _learn)
        self._certified = False
        self._labels = 0
        self._usual = self._e0 = math.nan  # usual accuracy, tolerated error rate
        self._stale = False  # labels were learned since the usual accuracy was computed
        self._llr = self._hold = (0.0, 0.0)
        self._predictions = 0
        self._recent = [0, 0.0, 0, 0.0]  # predictions, sum of estimates: previous block, current block
        self._labelled = [0, 0, 0.0, 0, 0, 0.0]  # labels, correct, sum of estimates: previous block, current

    # -- calibration ------------------------------------------------------------------------

    def _bin(self, confidence: float, classes: int) -> tuple[int, float]:
        """The bin of a top-class confidence (between chance and 1) and the confidence, clipped."""
        chance = 1.0 / max(classes, 2)
        c = min(max(confidence, chance), 1.0)
        return min(int((c - chance) / (1.0 - chance) * self.bins), self.bins - 1), c

    def _calibrated(self, b: int, c: float) -> float:
        """``p(c)``: the bin's labelled accuracy, leaning on the (shifted) confidence while it has few labels."""
        w = self.prior_weight
        prior = min(max(c + self._prior_shift, 0.0), 1.0)
        return (self._cal_right[b] + w * prior) / (self._cal_n[b] + w)

    def certify(self, confidences: list[float], accuracy: float, classes: int) -> None:
        """Take the certification run's top-class confidences and accuracy as the reference and calibration.

        The reference is their distribution; the calibration until labels refine it is the
        raw confidence shifted so that the reference's expected accuracy is the certified one.
        """
        self._ref_n, self._ref_sum = [0.0] * self.bins, [0.0] * self.bins
        for confidence in confidences:
            self._add_reference(*self._bin(confidence, classes))
        total = sum(self._ref_n)
        if total:
            self._shift = accuracy - sum(self._ref_sum) / total
            self._certified = True
            self._learn(0, 0.0, 0.0, 0.0)  # the prior's shift
            self._rebase()

    def _add_reference(self, b: int, c: float) -> None:
        self._ref_n[b] += 1
        self._ref_sum[b] += c

    def _rebase(self) -> None:
        """The usual accuracy (the reference under the current calibration) and the drop test's ratios."""
        self._stale = False
        total = sum(self._ref_n)
        self._usual = sum(n * self._calibrated(b, s / n) for b, (n, s) in enumerate(zip(self._ref_n, self._ref_sum))
                          if n) / total
        e0 = self._e0 = min(max(1.0 - self._usual + self.margin, 1e-3), 0.98)
        e1 = min(e0 + self.effect, 0.999)
        self._llr = _bernoulli_llr(e0, e1)
        # While alarmed, midway vs the usual error rate: back near "usually" clears, hovering at the limit does not.
        self._hold = _bernoulli_llr(min(max(1.0 - self._usual, 1e-3), e0), (e0 + e1) / 2)

    # -- the stream -------------------------------------------------------------------------

    @property
    def referenced(self) -> bool:
        """Whether the reference is complete (certified, or ``warmup`` predictions seen)."""
        return self._certified or self._predictions >= self.warmup

    @property
    def anomalous(self) -> bool:
        return self._drop.cusum.alarm

    @property
    def calibration_check(self) -> _Gap:
        """The calibration-gap decision as a detector of its own (a view: no state, no cycle in a snapshot)."""
        return _Gap(self)

    def observe(self, probabilities: list[float], ts: float) -> None:
        """Take one prediction's probability vector (O(K) for its maximum, O(1) otherwise)."""
        if probabilities:
            self.observe_confidence(max(probabilities), ts, len(probabilities))

    def observe_confidence(self, confidence: float, ts: float, classes: int) -> None:
        """Take one prediction's top-class confidence out of ``classes`` classes."""
        b, c = self._bin(confidence, classes)
        p = self._calibrated(b, c)
        referenced = self.referenced  # before this one: the warm-up's last prediction completes the reference
        self._predictions += 1
        recent = self._recent
        recent[2] += 1
        recent[3] += p
        if recent[2] >= self.block:
            self._recent = [recent[2], recent[3], 0, 0.0]
        if not referenced:
            self._add_reference(b, c)
            if self.referenced:
                self._rebase()
            return
        drop = self._drop
        if drop.advance(ts) and self._stale:
            self._rebase()  # once per window at most: the labels moved the calibration
        wrong, right = self._hold if drop.cusum.alarm else self._llr  # per error, per right answer
        drop.add(p * right + (1.0 - p) * wrong, p)

    def observe_many(self, confidences, ts, classes: int) -> None:
        """Take many predictions in event-time order (replay and tests: the same as one call each)."""
        for c, t in zip(confidences, ts):
            self.observe_confidence(float(c), float(t), classes)

    def observe_outcome(self, probabilities: list[float], correct: bool, ts: float) -> float | None:
        """Reconcile one labelled prediction: score it against the calibration, then learn it.

        Returns, when this label completes a block of ``block`` labels after the calibration
        warm-up, the block's estimated minus realized accuracy (for a fleet-wide metric of how
        well the estimates hold); else None.
        """
        if not probabilities:
            return None
        b, c = self._bin(max(probabilities), len(probabilities))
        p = self._calibrated(b, c)
        self._labels += 1
        block = self._labelled
        block[3] += 1
        block[4] += correct
        block[5] += p
        error = None
        if block[3] >= self.block:
            self._labelled = [block[3], block[4], block[5], 0, 0, 0.0]
            error = (block[5] - block[4]) / block[3] if self._labels > self.calibration_warmup else None
        if self._labels > self.calibration_warmup:
            self._judge_gap(p, correct, ts)
        self._learn(b, 1.0, float(correct), c)
        if self._cal_n[b] >= self.max_bin_labels:
            self._learn(b, -self._cal_n[b] / 2, -self._cal_right[b] / 2, -self._cal_conf[b] / 2)
        return error

    def _learn(self, b: int, n: float, right: float, conf: float) -> None:
        """Add (or, negative, take away) labels of bin ``b``, and keep the totals."""
        self._cal_n[b] += n
        self._cal_right[b] += right
        self._cal_conf[b] += conf
        self._stale = True
        totals = self._totals
        totals[0] += n
        totals[1] += right
        totals[2] += conf
        w = self.prior_weight
        self._prior_shift = (totals[1] - totals[2] + w * self._shift) / (totals[0] + w)

    def _judge_gap(self, p: float, correct: bool, ts: float) -> None:
        """Feed both sides of the gap test: the labels' accuracy ``gap`` below / above the estimate."""
        p = min(max(p, 1e-3), 1 - 1e-3)
        for side, sign in ((self._over, -1.0), (self._under, 1.0)):
            side.advance(ts)
            shift = self.gap / 2 if side.cusum.alarm else self.gap
            q = min(max(p + sign * shift, 1e-3), 1 - 1e-3)
            side.add(math.log(q / p) if correct else math.log((1 - q) / (1 - p)), float(correct) - p)

    # -- decisions --------------------------------------------------------------------------

    def _figures(self) -> dict[str, float]:
        """The numbers behind both decisions: estimate, usual, labels, calibration."""
        r, lab = self._recent, self._labelled
        n, labels = r[0] + r[2], lab[0] + lab[3]
        drop = self._drop
        return {
            "estimated_accuracy": round((r[1] + r[3]) / n, 6) if n else math.nan,
            "recent_predictions": n,
            "run_estimated_accuracy": round(drop.run_x / drop.run_n, 6) if drop.run_n else math.nan,
            "run_predictions": drop.run_n,
            "usual_accuracy": round(self._usual, 6),
            "tolerated_accuracy": round(1.0 - self._e0, 6),
            "predictions": self._predictions,
            "llr": round(drop.cusum.value, 3),
            "alarm_llr": round(drop.cusum.level, 3),
            "realized_accuracy": round((lab[1] + lab[4]) / labels, 6) if labels else math.nan,
            "estimated_on_labelled": round((lab[2] + lab[5]) / labels, 6) if labels else math.nan,
            "realized_labels": labels,
            "calibration_labels": self._labels,
            "calibration": self._calibration_source(),
        }

    def _calibration_source(self) -> str:
        if self._labels >= self.calibration_warmup:
            return "labels"
        return "certified" if self._certified else "none"

    def _reconciled(self, e: dict) -> str:
        """What the labels say beside the estimate, in a few words."""
        if not e["realized_labels"]:
            return "no labels yet"
        return f"realized on {e['realized_labels']:,} labels: {e['realized_accuracy']:.2f}"

    def decision(self) -> Decision:
        """The drop decision: ``estimated accuracy 0.81, usually 0.93 (from confidence; realized on 120 labels: 0.80)``."""
        e = self._figures()
        source = {"labels": "confidence calibrated on labels", "certified": "certified calibration",
                  "none": "the model's own confidence"}[e["calibration"]]
        if not self.referenced:
            state = INSUFFICIENT
            message = f"too few predictions to know the usual confidence yet ({self._predictions} of {self.warmup})"
        elif self.anomalous:
            state = ANOMALOUS
            message = (f"estimated accuracy {e['run_estimated_accuracy']:.2f} over the last {e['run_predictions']:,} "
                       f"predictions, usually {e['usual_accuracy']:.2f} (from {source}; {self._reconciled(e)})")
        else:
            state = OK
            message = (f"estimated accuracy {e['estimated_accuracy']:.2f}, usually {e['usual_accuracy']:.2f} "
                       f"(from {source}; {self._reconciled(e)})")
        return Decision("prediction", "estimated-accuracy", state == ANOMALOUS, e, message, state)

    def gap_decision(self) -> Decision:
        """The calibration decision: do the labels still agree with the confidence-based estimate?"""
        e = self._figures()
        side = self._over if self._over.cusum.value >= self._under.cusum.value else self._under
        e["gap_llr"] = round(side.cusum.value, 3)
        e["gap_labels"] = side.run_n
        e["gap"] = round(side.run_x / side.run_n, 6) if side.run_n else 0.0  # realized minus estimated
        if self._labels <= self.calibration_warmup:
            state = INSUFFICIENT
            message = f"too few labels to check the accuracy estimate yet ({self._labels} of {self.calibration_warmup})"
        elif self.calibration_check.anomalous:
            state = ANOMALOUS
            message = (f"realized accuracy {e['realized_accuracy']:.2f} on the last {e['realized_labels']:,} labelled "
                       f"predictions where their confidence promised {e['estimated_on_labelled']:.2f} (off by "
                       f"{e['gap']:+.2f} over {e['gap_labels']:,} since the gap began): the confidence no longer "
                       f"means what it did (concept drift); the label-free estimate is unreliable until its "
                       f"calibration re-learns")
        else:
            state = OK
            message = (f"the accuracy estimated from confidence matches the labels (estimated "
                       f"{e['estimated_on_labelled']:.2f}, realized {e['realized_accuracy']:.2f} on the last "
                       f"{e['realized_labels']:,})")
        return Decision("drift", "calibration-gap", state == ANOMALOUS, e, message, state)

"""The label-free accuracy estimate (detectors/estimated.py) on seeded synthetic classifier streams, and in the monitor.

A stream: one sampled prediction every 4 s of event time (a model at 1 req/s sampled 1 in 4),
a binary classifier whose top-class confidence is ``0.5 + 0.5 * Beta(a, 1)`` with ``a``
swaying +-20% over the day (traffic mix), right with probability ``truth(confidence)``
(calibrated: the confidence itself), 30% of predictions labelled 5-30 minutes later.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pytest

from modelmedic import metrics
from modelmedic.config import QualitySettings
from modelmedic.detection.quality import QualityMonitor
from modelmedic.detection.snapshots import decode_snapshot, encode_snapshot
from modelmedic.detectors.estimated import EstimatedAccuracy
from modelmedic.events import InferenceEvent, LabelEvent

EVERY_S = 4.0
CONFIDENT, UNSURE = 8.0, 1.5
"""Beta shapes of the confidence: expected accuracy about 0.94 healthy, 0.80 after the shift."""


def calibrated(c: np.ndarray) -> np.ndarray:
    return c


def overconfident(c: np.ndarray) -> np.ndarray:
    return np.clip(c - 0.08, 0.0, 1.0)


class Stream(NamedTuple):
    ts: np.ndarray
    confidence: np.ndarray
    correct: np.ndarray
    labelled: np.ndarray
    due: np.ndarray
    changed: np.ndarray
    """Whether the change (shift or concept drift) had begun at each prediction."""


def stream(seed: int, hours: float = 24.0, change_h: float | None = None, after: float = UNSURE,
           truth: Callable = calibrated, truth_after: Callable | None = None, label_fraction: float = 0.3) -> Stream:
    rng = np.random.default_rng(seed)
    n = int(hours * 3600 / EVERY_S)
    ts = (np.arange(n) + rng.uniform(size=n)) * EVERY_S
    changed = np.zeros(n, bool) if change_h is None else ts >= change_h * 3600
    shape = np.where(changed, after, CONFIDENT * (1 + 0.2 * np.sin(2 * np.pi * ts / 86_400)))
    confidence = 0.5 + 0.5 * rng.beta(shape, 1.0)
    p = np.where(changed, (truth_after or truth)(confidence), truth(confidence))
    correct = rng.uniform(size=n) < p
    labelled = rng.uniform(size=n) < label_fraction
    return Stream(ts, confidence, correct, labelled, ts + rng.uniform(300, 1800, n), changed)


class Outcome(NamedTuple):
    drop_at: int | None
    """Index of the prediction at which the drop decision first fired (None: never)."""
    gap_at: int | None
    """Index of the prediction being fed when the calibration-gap decision first fired."""
    gaps: list[float]
    """Estimated minus realized accuracy of the recent labelled predictions, every 1,000 predictions
    once the calibration is learned (each over 200-400 labels, so +-0.02 of noise)."""


def feed(det: EstimatedAccuracy, s: Stream) -> Outcome:
    """Predictions in time order, each label when it falls due (as the monitor sees them)."""
    pending: list[tuple[float, int]] = []
    drop_at = gap_at = None
    gaps: list[float] = []
    for i in range(s.ts.size):
        e = det.decision().evidence if i % 1000 == 999 else {}
        if e.get("calibration") == "labels":
            gaps.append(e["estimated_on_labelled"] - e["realized_accuracy"])
        while pending and pending[0][0] <= s.ts[i]:
            due, j = heapq.heappop(pending)
            det.observe_outcome([s.confidence[j], 1 - s.confidence[j]], bool(s.correct[j]), due)
            if gap_at is None and det.calibration_check.anomalous:
                gap_at = i
        det.observe_confidence(float(s.confidence[i]), float(s.ts[i]), 2)
        if drop_at is None and det.anomalous:
            drop_at = i
        if s.labelled[i]:
            heapq.heappush(pending, (float(s.due[i]), i))
    return Outcome(drop_at, gap_at, gaps)


@pytest.mark.parametrize("truth", [calibrated, overconfident])
@pytest.mark.parametrize("seed", range(4))
def test_a_healthy_day_raises_nothing_and_the_estimate_matches_the_labels(seed: int, truth: Callable) -> None:
    """21,600 predictions and ~6,500 labels; an overconfident model (right 8 points less often than it
    says) is re-calibrated by its labels without its estimate ever reading as a drop."""
    det = EstimatedAccuracy()
    outcome = feed(det, stream(seed, truth=truth))
    assert (outcome.drop_at, outcome.gap_at) == (None, None)
    e = det.decision().evidence
    assert det.decision().state == det.gap_decision().state == "ok"
    assert e["calibration"] == "labels" and e["calibration_labels"] > 6000
    # Prequential (each label's estimate was made before it was learned), at 20 checkpoints of the day:
    # no bias, and a mean absolute error of the label noise. Measured (seeds 0-3): |bias| <= 0.004, MAE <= 0.016.
    gaps = np.array(outcome.gaps)
    assert gaps.size >= 18 and abs(gaps.mean()) <= 0.01 and np.abs(gaps).mean() <= 0.025
    assert abs(e["estimated_accuracy"] - e["usual_accuracy"]) <= 0.03


@pytest.mark.parametrize("seed", range(4))
def test_a_covariate_shift_that_lowers_confidence_fires_within_300_predictions(seed: int) -> None:
    """Six healthy hours, then inputs where the model is unsure: accuracy 0.94 -> 0.80. Measured:
    165-240 predictions (11-16 minutes at one sampled prediction every 4 s) on seeds 0-3, the run's
    estimate within 0.006 of the shifted predictions' realized accuracy."""
    s = stream(seed, hours=12, change_h=6)
    det = EstimatedAccuracy()
    outcome = feed(det, s)
    onset = int(np.argmax(s.changed))
    assert outcome.drop_at is not None and 0 <= outcome.drop_at - onset <= 300
    assert outcome.gap_at is None, "the calibration still holds: only the inputs moved"
    d = det.decision()
    e = d.evidence
    realized = s.correct[s.changed].mean()
    # The estimate tracks what the labels later show: within 0.03 of the realized accuracy of the
    # shifted predictions, and of the labels' own figure (a few hundred labels, +-0.02 noise).
    assert abs(e["run_estimated_accuracy"] - realized) <= 0.03
    assert abs(e["estimated_on_labelled"] - e["realized_accuracy"]) <= 0.05
    assert d.message.startswith(f"estimated accuracy {e['run_estimated_accuracy']:.2f} over the last ")
    assert f"usually {e['usual_accuracy']:.2f} (from confidence calibrated on labels; realized on " in d.message


def test_without_any_label_the_model_is_taken_at_its_word() -> None:
    s = stream(0, hours=12, change_h=6, label_fraction=0.0)
    det = EstimatedAccuracy()
    outcome = feed(det, s)
    assert 0 <= outcome.drop_at - int(np.argmax(s.changed)) <= 300
    assert det.decision().message.endswith("(from the model's own confidence; no labels yet)")
    assert det.gap_decision().state == "insufficient_data"


@pytest.mark.parametrize("seed", range(3))
def test_labels_that_stop_agreeing_with_the_confidence_raise_the_calibration_gap(seed: int) -> None:
    """Concept drift: the same confidences, right 20 points less often. The estimate cannot see it
    (no drop); the labels can: the gap fires within 800 predictions of the change (426-601 measured,
    of which the labels' 5-30 minutes are 75-450)."""
    s = stream(seed, hours=12, change_h=6, after=CONFIDENT, truth_after=lambda c: np.clip(c - 0.2, 0.0, 1.0))
    det = EstimatedAccuracy()
    outcome = feed(det, s)
    assert outcome.drop_at is None
    assert outcome.gap_at is not None and 0 <= outcome.gap_at - int(np.argmax(s.changed)) <= 800
    d = det.gap_decision()
    assert (d.kind, d.state) == ("drift", "anomalous") and "concept drift" in d.message
    assert d.evidence["gap"] < -0.1


def test_a_certified_reference_is_judged_from_the_first_prediction() -> None:
    det = EstimatedAccuracy()
    rng = np.random.default_rng(5)
    det.certify((0.5 + 0.5 * rng.beta(CONFIDENT, 1.0, 2000)).tolist(), accuracy=0.9, classes=2)
    assert det.decision().state == "ok" and det.decision().evidence["usual_accuracy"] == pytest.approx(0.9)
    assert det.decision().evidence["calibration"] == "certified"
    # The certified shift (0.9 vs a mean confidence of ~0.94) moves every estimate alike: healthy is healthy.
    healthy = 0.5 + 0.5 * rng.beta(CONFIDENT, 1.0, 3000)
    det.observe_many(healthy, np.arange(3000) * EVERY_S, classes=2)
    assert not det.anomalous and abs(det.decision().evidence["estimated_accuracy"] - 0.9) <= 0.02


def test_the_monitor_pages_the_drop_with_a_sentence_for_the_on_call_person() -> None:
    """Probability vectors through QualityMonitor: one ``estimated_accuracy`` record (class prediction).
    The labels (accuracy 0.89 -> 0.79) confirm 1.9 h after the change at the day budget's level: 10 hours
    (within the 4 hours of an 8-hour stream at the former per-label level)."""
    s = stream(1, hours=10, change_h=4)
    mon = QualityMonitor(60_000, QualitySettings(), clock=lambda: 0.0)
    before = {kind: next(s.value for s in metrics.ESTIMATE_ERROR.collect()[0].samples if s.name.endswith(f"_{kind}"))
              for kind in ("count", "sum")}
    t0 = 1_700_000_040_000
    events = [(int(t0 + t * 1000), InferenceEvent("fraud", "3.0.0", "production", f"r{i}", int(t0 + t * 1000), 5.0, True,
                                                  [round(c, 4), round(1 - c, 4)]))
              for i, (t, c) in enumerate(zip(s.ts, s.confidence))]
    events += [(int(t0 + d * 1000), LabelEvent("fraud", f"r{i}", int(t0 + d * 1000), 0 if s.correct[i] else 1))
               for i, d in enumerate(s.due) if s.labelled[i] and d <= s.ts[-1]]  # while it serves
    events.sort(key=lambda pair: pair[0])
    records, next_end = [], (t0 // 60_000 + 1) * 60_000
    for ts, event in events:
        while ts >= next_end:
            records += mon.poll(next_end)
            next_end += 60_000
        (mon.observe_label if isinstance(event, LabelEvent) else mon.observe_inference)(event)
    firing = [a for a in records if a.state == "firing"]
    # The estimate pages first; the labels, which come 5-30 minutes late and need evidence, confirm later.
    assert [(a.kind, a.anomaly_class) for a in firing] == [("estimated_accuracy", "prediction"),
                                                           ("label_performance", "prediction")]
    a = firing[0]
    assert a.onset < firing[1].onset
    assert a.onset >= t0 + 4 * 3600 * 1000 and a.window_end - a.onset <= 30 * 60_000
    assert a.summary.startswith("fraud v3.0.0: estimated accuracy 0.8")
    assert "usually 0.9" in a.summary and "realized on " in a.summary
    assert a.baseline > 0.9 and a.observed < 0.85
    assert mon.states("fraud", "3.0.0")["estimated_accuracy"] == "anomalous"
    assert mon.states("fraud", "3.0.0")["calibration_gap"] == "ok"
    blocks = metrics.ESTIMATE_ERROR.collect()[0].samples
    counted = {s.name: s.value for s in blocks if s.name.endswith(("_count", "_sum"))}
    assert counted["modelmedic_quality_estimate_abs_error_count"] - before["count"] >= 5, "one per 200 labels"
    mean_error = (counted["modelmedic_quality_estimate_abs_error_sum"] - before["sum"]) / (
        counted["modelmedic_quality_estimate_abs_error_count"] - before["count"])
    assert mean_error <= 0.05, "estimate vs labels, block by block"
    figures = mon.estimate("fraud", "3.0.0")  # the status of the estimate, reconciled with the labels
    assert figures["calibration"] == "labels" and figures["realized_labels"] >= 200
    assert abs(figures["estimated_on_labelled"] - figures["realized_accuracy"]) <= 0.05
    assert mon.estimate("fraud", "2.0.0") is None


def probability_monitor() -> QualityMonitor:
    """A monitor with two probability models: one reconciled with labels, one certified (no labels)."""
    mon = QualityMonitor(60_000, QualitySettings(), clock=None)
    mon.set_baseline("certified", "1.0.0", 0.9)
    mon.set_reference("certified", "1.0.0", [[0.9, 0.1], [0.2, 0.8]] * 50)
    s = stream(3, hours=1)
    for model in ("fraud", "certified"):
        for i, (t, c) in enumerate(zip(s.ts, s.confidence)):
            ts = 1_700_000_040_000 + int(t * 1000)
            mon.observe_inference(InferenceEvent(model, "1.0.0", "production", f"r{i}", ts, 5.0, True, [c, 1 - c]))
            if i % 3 == 0 and model == "fraud":
                mon.observe_label(LabelEvent(model, f"r{i - 30}", ts, 0 if s.correct[i - 30] else 1))
    return mon


def test_the_estimate_is_snapshot_data_and_carries_on_after_a_restore() -> None:
    mon = probability_monitor()
    back = decode_snapshot(encode_snapshot({"quality": mon}))["quality"]
    for model in ("fraud", "certified"):
        assert back.estimate(model, "1.0.0") == mon.estimate(model, "1.0.0")
        assert back.states(model, "1.0.0") == mon.states(model, "1.0.0")
    assert mon.estimate("certified", "1.0.0")["calibration"] == "certified"


def test_a_snapshot_written_before_the_estimate_existed_restores_with_its_defaults() -> None:
    """An older release's monitor: no estimate on its versions, no certified estimates, no estimate settings."""
    mon = probability_monitor()
    for m in mon._models.values():
        for vs in m.versions.values():
            del vs.estimate
    for name in ("_estimates", *(n for n in QualitySettings.model_fields if n.startswith("estimate_"))):
        del mon.__dict__[name]
    back = decode_snapshot(encode_snapshot({"quality": mon}))["quality"]
    assert back.estimate("fraud", "1.0.0") is None
    back.observe_inference(InferenceEvent("fraud", "1.0.0", "production", "new", 1_700_010_000_000, 5.0, True, [0.9, 0.1]))
    assert back.estimate("fraud", "1.0.0")["predictions"] == 1

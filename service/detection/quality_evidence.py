"""What a quality decision tells a person: its evidence, its summary, and the anomaly record it becomes.

:class:`~modelmedic.detection.quality.QualityMonitor` notes each change of a detector's
decision as it happens (the detector is read then, while its evidence is that of the
change); this module turns the decision into numbers and a sentence, and, at the window's
end, into :class:`~modelmedic.events.Anomaly` records. It holds no state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from modelmedic.events import Anomaly, stable_id

CANARY, LABELS, DRIFT = "canary_divergence", "label_performance", "drift"
"""The monitor's anomaly kinds, one per detector."""
ESTIMATE, CALIBRATION = "estimated_accuracy", "calibration_gap"
"""The label-free estimate's two decisions (``detectors/estimated.py``): its drop, and its gap to the labels."""
_CLASS = {CANARY: "prediction", LABELS: "prediction", DRIFT: "drift", ESTIMATE: "prediction", CALIBRATION: "drift"}
_WHAT = {CANARY: "canary divergence", LABELS: "labelled accuracy", DRIFT: "prediction drift",
         ESTIMATE: "estimated accuracy", CALIBRATION: "accuracy-estimate calibration"}

Transition = tuple[str, str, str, str, int, float, float, float, str]
"""(model, version, kind, state, onset window, observed, baseline, score, summary) of one decision change."""


def describe(model: str, version: str, canary_version: str, kind: str, det, firing: bool) -> tuple[float, float, float, str]:
    """(observed, baseline, score, summary) of a decision, for a human and the incident's evidence.

    ``canary_version`` is the version production was last compared with ("" when unknown).
    """
    head = f"{model} {display_version(version)}"
    if kind == CANARY:
        other = (f"the previous stable version {display_version(canary_version)} (canary)" if canary_version
                 else "the canary")
        d = det.decision(other)
        e = d.evidence
        if not firing:
            rate, p0 = e["recent_disagreement_rate"], e["expected_rate"]
            return rate, p0, 0.0, (f"{head}: production agrees with {other} again: {rate:.1%} disagreement on the "
                                   f"last {e['recent_pairs']:,} shared requests, expected <= {p0:.1%}")
        if e["rate_llr"] >= e["bias_llr"]:
            observed, baseline, llr = e["run_disagreement_rate"], e["expected_rate"], e["rate_llr"]
        else:
            observed, baseline, llr = e["bias"], det.bias_effect / 2, e["bias_llr"]
        return observed, baseline, 1.0 - math.exp(-llr), f"{head}: production {d.message}"
    d = det.decision()
    e = d.evidence
    if kind in (ESTIMATE, CALIBRATION):
        # The drop: the run's estimate vs the usual one. The gap: realized vs estimated on the same labels.
        observed, baseline = ((e["run_estimated_accuracy" if firing else "estimated_accuracy"], e["usual_accuracy"])
                              if kind == ESTIMATE else (e["realized_accuracy"], e["estimated_on_labelled"]))
        if not firing:
            return observed, baseline, 0.0, f"{head}: back to normal: {d.message}"
        llr = e["llr"] if kind == ESTIMATE else e["gap_llr"]
        return observed, baseline, 1.0 - math.exp(-llr), f"{head}: {d.message}"
    if kind == LABELS:
        if not firing:
            return e["recent_accuracy"], e["baseline"], 0.0, f"{head}: back to normal: {d.message}"
        return (e["run_accuracy"], e["baseline"], 1.0 - math.exp(-e["llr"]),
                f"{head}: {d.message}: the model is under-performing")
    p = e["p_value"]
    if not firing:
        return e["psi"], det.psi_threshold, 0.0, f"{head}: back to normal: {d.message}"
    return e["psi"], det.psi_threshold, 1.0 - p if p == p else 0.0, f"{head}: production {d.message}"


def forgotten(model: str, version: str, kind: str, onset: int, why: str) -> Transition:
    """The recovery of a decision whose version is no longer watched (``why``): no evidence, only the reason."""
    summary = f"{model} {display_version(version)}: {why}; {_WHAT[kind]} episode over"
    return (model, version, kind, "recovered", onset, math.nan, math.nan, 0.0, summary)


def anomalies(transitions: Iterable[Transition], now_ms: int, window_size_ms: int, closed_at_ms: int) -> list[Anomaly]:
    """The anomaly records of ``transitions``, in the window ending at ``now_ms``.

    The id is ``stable_id(model, version, "production", kind, onset_window)``, so the same
    events give the same ids; a value that is not finite (no evidence) is reported as -1.
    """
    size = window_size_ms
    return [
        Anomaly(
            id=stable_id(model, version, "production", kind, onset), series=f"{model}/{version}/production",
            model=model, version=version, role="production", kind=kind, anomaly_class=_CLASS[kind],
            window_start=now_ms - size, window_end=now_ms, onset=onset * size,
            observed=_finite(observed), baseline=_finite(baseline), score=_finite(score),
            state=state, summary=summary, closed_at_ms=closed_at_ms,
        )
        for model, version, kind, state, onset, observed, baseline, score, summary in transitions
    ]


def display_version(version: str) -> str:
    """``2.1.0`` as people write it in a page: ``v2.1.0`` (a version already spelled with a v is kept)."""
    return version if version[:1] in ("v", "V") else f"v{version}"


def _finite(value: float) -> float:
    return float(value) if math.isfinite(value) else -1.0

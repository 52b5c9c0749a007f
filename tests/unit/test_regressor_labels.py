"""Delayed labels of a regressor: its answer is never exactly the label, so accuracy is judged
within a tolerance learned from its healthy errors (``QualityMonitor._warm_up``), not by equality
(which made every healthy regressor 0% accurate and paged it after 480 labels: the detection
harness's quiet-fleet false pages)."""

from __future__ import annotations

import numpy as np

from modelmedic.config import QualitySettings
from modelmedic.detection.quality import TOLERANCE_MAES, QualityMonitor
from modelmedic.events import InferenceEvent, LabelEvent
from test_quality_monitor import W, run

T0 = 1_700_000_040_000


def regressor(rng: np.random.Generator, n: int, shift: float, version: str, start: int = 0) -> list:
    """A regressor (mean 100, spread 10) answering every 10 s; each answer labelled 5-30 min later with
    its true value, 3 off a healthy answer on average (``shift``: how far off this version is)."""
    events: list = []
    for i in range(start, start + n):
        ts, truth = T0 + i * 10_000, 100.0 + 10.0 * rng.normal()
        events.append(InferenceEvent("m", version, "production", f"r{i}", ts, 5.0, True,
                                     round(truth + 3.0 * rng.normal() + shift, 4)))
        events.append(LabelEvent("m", f"r{i}", ts + int(rng.uniform(300_000, 1_800_000)), truth))
    return sorted(events, key=lambda e: e.ts)


def quiet_monitor(**settings) -> QualityMonitor:
    return QualityMonitor(W, QualitySettings(drift_window=10**9, **settings), clock=None)


def test_a_healthy_regressor_is_never_paged_and_a_shifted_version_is():
    rng = np.random.default_rng(5)
    monitor = quiet_monitor()
    assert run(monitor, regressor(rng, 20_000, 0.0, "1.0")) == []  # 55 h of labels judged quietly
    tolerance = monitor._models["m"].tolerance
    assert abs(tolerance - TOLERANCE_MAES * 3.0 * np.sqrt(2 / np.pi)) < 0.6  # 2 MAE of N(0, 3): 4.8
    # A healthy new version (answers 0.3 off: a deploy's small shift) inherits baseline and tolerance: quiet.
    assert run(monitor, regressor(rng, 10_000, 0.3, "1.1", start=20_000)) == []
    # A version 6 off (two error spreads) is paged within a few dozen labels.
    records = run(monitor, regressor(rng, 2_000, 6.0, "1.2", start=30_000))
    assert [(r.state, r.kind) for r in records][:1] == [("firing", "label_performance")]
    assert records[0].onset - (T0 + 30_000 * 10_000) < 100 * 10_000 + 1_800_000
    assert records[0].observed < 0.5 < 0.75 < records[0].baseline  # about 89% within 2 MAE; its lower bound


def test_a_configured_tolerance_is_used_as_it_is():
    rng = np.random.default_rng(6)
    monitor = quiet_monitor(label_tolerance=1.0)  # 1.0 of N(0, 3) errors: 26% within; the baseline learns that
    assert run(monitor, regressor(rng, 5_000, 0.0, "1.0")) == []
    assert monitor._models["m"].tolerance is None
    assert 0.15 < monitor._models["m"].baseline < 0.26

"""A learned drift reference learns for a day (``drift_reference_s``, ``features_reference_s``).

What a model is asked changes over a day. Against a reference of a version's first 200 live predictions alone, a
daily cycle of the inputs of +-0.25 standard deviations read as drift twice a day (the harness's issue-shaped fleet
with ``--input-cycle 0.25``: 5 false drift alerts in 80 model-days). A learned reference now goes on learning for a
day from the blocks of live counts that leave the window without looking drifted, and is tested from the start, so a
drift in a new version's first hours is still found (issue 14's deadline). Seeded.
"""

from __future__ import annotations

import json
import math

import numpy as np

from modelmedic.config import QualitySettings
from modelmedic.detection.features import FeatureMonitor
from modelmedic.detectors.drift import PredictionDrift

DAY_S = 86_400.0
T0_S = 1_767_571_200.0  # Monday 2026-01-05 00:00 UTC


def _cycle(seed: int, rate: float, days: float, amplitude: float, shift_from_s: float = math.inf,
           shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Event times (s) and numeric predictions of a model at ``rate`` req/s whose inputs move by ``amplitude``
    standard deviations times the sine of the time of day, and by ``shift`` more from ``shift_from_s``."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0.0, days * DAY_S, rng.poisson(rate * days * DAY_S)))
    x = rng.standard_normal(t.size) + amplitude * np.sin(2 * math.pi * t / DAY_S + 1.0) + np.where(t >= shift_from_s,
                                                                                                    shift, 0.0)
    return T0_S + t, x


def _alarms(detector: PredictionDrift, t: np.ndarray, x: np.ndarray) -> list[float]:
    """Event times (s since T0_S) of the detector's alarm onsets."""
    return [ts - T0_S for ts, v in zip(t.tolist(), x.tolist()) if detector.observe(v, ts) is not None]


def _detector(reference_s: float) -> PredictionDrift:
    """Prediction drift as the quality monitor builds it, at the service's defaults but ``reference_s``."""
    s = QualitySettings(drift_reference_s=reference_s)
    return PredictionDrift(reference_size=s.drift_reference, window=s.drift_window, min_live=s.drift_min_live,
                           bins=s.drift_bins, psi_threshold=s.psi_threshold, test_interval_s=s.drift_test_interval_s,
                           every=s.drift_every, reference_s=s.drift_reference_s)


def test_a_daily_cycle_of_the_inputs_is_not_drift_against_a_reference_that_learned_its_day() -> None:
    """Two days of a +-0.25 sd daily cycle at 3 req/s, four series: 23 alarms against their first 200 predictions,
    1 with the default (on the first day, while the reference is still mostly its first hours)."""
    learned = first = 0
    for seed in (21, 22, 23, 24):
        t, x = _cycle(seed, 3.0, 2.0, 0.25)
        learned += len(_alarms(_detector(QualitySettings().drift_reference_s), t, x))
        first += len(_alarms(_detector(0.0), t, x))
    assert learned <= 1
    assert first >= 15


def test_a_drift_in_a_new_versions_first_hours_is_found_and_not_learned() -> None:
    """A shift of one standard deviation two hours into a version's life at 0.3 req/s, on top of the cycle: found
    within an hour, and the alarm holds while the shift does (the drifted blocks are not learned as normal)."""
    start = 2 * 3600.0
    t, x = _cycle(5, 0.3, 1.0, 0.25, shift_from_s=start, shift=1.0)
    detector = _detector(QualitySettings().drift_reference_s)
    alarms = _alarms(detector, t, x)
    assert len(alarms) == 1 and start <= alarms[0] <= start + 3600
    assert detector.anomalous


def test_a_drift_after_the_first_day_is_found_within_the_hour() -> None:
    """The same shift on the second day, against the day the reference learned: found within an hour."""
    start = 1.5 * DAY_S
    t, x = _cycle(5, 0.3, 2.0, 0.25, shift_from_s=start, shift=1.0)
    alarms = _alarms(_detector(QualitySettings().drift_reference_s), t, x)
    assert alarms and start <= alarms[0] <= start + 3600


def _feature_alarms(reference_s: float, seed: int) -> list:
    """Two days of one feature with a +-0.25 sd daily cycle starting at its trough, 60 sampled requests a minute
    (the monitor's cap), through the input monitor polled every minute: its feature-drift anomalies."""
    monitor = FeatureMonitor(60_000, QualitySettings(features_reference_s=reference_s))
    rng, out = np.random.default_rng(seed), []
    t0 = int(T0_S * 1000)
    for minute in range(int(2 * DAY_S / 60)):
        ts = t0 + minute * 60_000 + 1_000 * np.arange(60)
        x = rng.standard_normal(60) - 0.25 * np.cos(2 * math.pi * (ts - t0) / 1000 / DAY_S)
        monitor.observe([(k, 0, int(t), json.dumps({"amount": float(v)}).encode()) for k, (t, v) in enumerate(zip(ts, x))],
                        [("m", "1", "production")])
        out += monitor.poll(t0 + (minute + 1) * 60_000)
    return out


def test_a_daily_cycle_of_a_feature_is_not_drift_against_a_reference_that_learned_its_day() -> None:
    """The input monitor's learned reference learns its day too: quiet over two days of a cycle that its first 200
    values alone read as drift (1-4 alarms a series on four seeds)."""
    assert _feature_alarms(QualitySettings().features_reference_s, 11) == []
    fired = [a for a in _feature_alarms(0.0, 11) if a.state == "firing"]
    assert fired and all(a.observed >= 0.25 for a in fired)  # the PSI quoted is the one that met the rule

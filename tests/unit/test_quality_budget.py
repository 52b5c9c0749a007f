"""One false-alarm budget per version-day for every quality decision, whatever the traffic.

Healthy version-days are simulated (seeded) at the worst a healthy version may be (the tolerated
disagreement rate, the tolerated accuracy, predictions drawn from the reference) and the alarms
counted per version-day. A budget of 1e-4 cannot be seen in a unit test's few hundred days, so the
sequential tests are run at a budget large enough to count against (the level comes from the same
formula, ``h = ln(steps a day / budget)``), at two traffics, and both stay within it. Lorden's
bound is loose, so the counts are well under it: in the busy case's 6 days (seeds as below) 1
canary and 4 label alarms, where a per-observation level of the same height (``ln(720)`` per pair
or label, what the old ``ln(1 / alpha)`` did at any traffic) raised 21 (the canary's two rate
tests) and 9. At the default budget,
healthy versions at their usual rates raise nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from modelmedic.detectors.drift import PredictionDrift
from modelmedic.detectors.quality import CanaryDivergence, DelayedLabelPerformance

DAY_S = 86_400


def _alarms(rng: np.random.Generator, per_minute: int, days: int, p: float, detector: Callable[[], Any],
            step: Callable[[Any, bool, float], object]) -> int:
    """Alarm onsets over ``days`` version-days (a fresh ``detector()`` each) of ``per_minute`` observations a
    minute, each ``True`` with probability ``p``, fed by ``step(detector, observation, ts)``."""
    alarms, n = 0, DAY_S // 60 * per_minute
    for _ in range(days):
        d = detector()
        for ts, hit in zip(np.arange(n) * (60.0 / per_minute), (rng.random(n) < p).tolist()):
            alarms += step(d, hit, ts) is not None
    return alarms


def _canary_alarms(rng: np.random.Generator, budget: float, per_minute: int, days: int, rate: float) -> int:
    """Class canaries disagreeing at ``rate`` (5% usual, 5% margin)."""
    return _alarms(rng, per_minute, days, rate,
                   lambda: CanaryDivergence(expected_rate=0.05, margin=0.05, false_alarms_per_day=budget),
                   lambda d, disagree, ts: d.observe_pair("a", "b" if disagree else "a", ts))


def _label_alarms(rng: np.random.Generator, budget: float, per_minute: int, days: int, accuracy: float) -> int:
    """Versions whose labels are right with ``accuracy`` (baseline 0.9, margin 0.02)."""
    return _alarms(rng, per_minute, days, accuracy,
                   lambda: DelayedLabelPerformance(baseline=0.9, margin=0.02, false_alarms_per_day=budget),
                   lambda d, correct, ts: d.observe_outcome(1, 1 if correct else 0, ts))


@pytest.mark.parametrize("per_minute", [2, 30])
def test_a_canary_at_the_tolerated_rate_stays_within_the_budget_busy_or_quiet(per_minute: int) -> None:
    """At 10% disagreement (5% usual + 5% margin: the worst a healthy release may be), with a budget
    of 2 a version-day: at most 2 a day at 2 or at 30 pairs a minute."""
    days, budget = 6, 2.0
    alarms = _canary_alarms(np.random.default_rng(per_minute), budget, per_minute, days, rate=0.10)
    assert alarms <= budget * days, alarms


@pytest.mark.parametrize("per_minute", [2, 30])
def test_labels_at_the_tolerated_accuracy_stay_within_the_budget_busy_or_quiet(per_minute: int) -> None:
    days, budget = 6, 2.0
    alarms = _label_alarms(np.random.default_rng(100 + per_minute), budget, per_minute, days, accuracy=0.88)
    assert alarms <= budget * days, alarms


def test_at_the_default_budget_healthy_versions_raise_nothing_in_40_version_days() -> None:
    """1e-4 a version-day: canaries at their usual 5% and labels at the baseline, 4 a minute, 20 days each."""
    rng = np.random.default_rng(7)
    assert _canary_alarms(rng, 1e-4, 4, 20, rate=0.05) == 0
    assert _label_alarms(rng, 1e-4, 4, 20, accuracy=0.9) == 0


@pytest.mark.parametrize("per_second", [0.1, 2.0])
def test_prediction_drift_on_healthy_predictions_stays_within_the_budget(per_second: float) -> None:
    """Predictions from the reference's distribution, at a budget of 2 a version-day, tested at most once
    a minute: the alarms stay within it at a tenth of a prediction a second and at two (the old test
    every 25 predictions at a fixed alpha ran 346 and 6,912 tests a day: now at most 1,440)."""
    rng = np.random.default_rng(int(per_second * 10))
    days, budget, alarms = 4, 2.0, 0
    for _ in range(days):
        d = PredictionDrift(reference=rng.normal(0, 1, 2000), false_alarms_per_day=budget)
        n = int(DAY_S * per_second)
        for ts, v in zip(np.arange(n) / per_second, rng.normal(0, 1, n).tolist()):
            alarms += d.observe(v, ts) is not None
    assert alarms <= budget * days, alarms

"""Detection quality on the CI-sized generated fleets (``load/detection_harness.py --small``):
the real detection plane, offline, at the service's default settings.

The thresholds below are what the code achieved when they were measured (2026-12-01, seed 1,
30 models at 0.05-5 req/s, 3 h of event time), not what the product needs: issue 13's goal
is every kind detected within a third of its deadline, zero false pages on a quiet fleet,
one page per storm and at most one per flapping series. Detection is being improved
(``service/detection/judge.py``); raise these constants as it gets better, never lower them
to make a regression pass.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from load import detection_harness as harness  # noqa: E402
from modelmedic.config import load_settings  # noqa: E402

MUST_DETECT_WITHIN_A_THIRD = (
    "latency step x2", "latency step x4", "throughput drop -90%", "surge x3", "error burst 13%",
    "storm: 12 models latency x3", "flapping x3 every 3 min", "bad release x3", "tail: 10% of requests x4 (p99 ~3x)",
)
"""Kinds every instance of which is detected within a third of its deadline today (the
slowest: a surge on a 0.06 req/s model, 224 s of 900). Not asserted yet: ``latency creep
+2%/10min`` (missed; the small fleet also ends before its 3 h deadline) and ``throughput
drop -30%`` (missed: its 93-minute-late "detection" on a 0.76 req/s regressor was a false
``label_performance`` anomaly, gone since regressors' labels are judged within a tolerance).
Since the tail kind joined the library (12 kinds), the second ``throughput drop -90%`` falls on a
0.06 req/s model: found in 490 s, the same before and after the tail and creep changes. A Poisson
CUSUM at 0.06 req/s cannot gather ``h`` = 20.6 in 300 s (0.43 x its rate: 0.026-0.041 nats a second
over its daily cycle), so for that kind
the third of the deadline holds from 0.1 req/s (:data:`SPARSE_BELOW`), the deadline below."""
SPARSE_BELOW = {"throughput drop -90%": 0.1}
"""Kinds whose instances on models under this many req/s must be detected within their deadline only."""
RIGHT_CLASS = {"error burst 13%": "errors", "latency step x4": "latency", "throughput drop -90%": "throughput",
               "tail: 10% of requests x4 (p99 ~3x)": "latency"}
"""Kinds whose anomalies already include the class the response should see."""
MAX_QUIET_FALSE_PAGES_PER_MODEL_DAY = 0.0
"""Measured 0 on seeds 1, 2 and 3 (the goal; before 2026-12-02: 0.53, 0.80 and 1.60, every page
a healthy regressor's ``label_performance``: its answers were compared with labels for equality)."""
MAX_INCIDENT_FLEET_FALSE_PAGES_PER_MODEL_DAY = 0.0
"""Measured 0 (the goal)."""
MAX_STORM_PAGES = 1
"""Measured 1 (the goal; 9 before storms were grouped by onset with a hold that adapts to
how long members take to fire: the twelve fire 4-68 s after their onsets, which lie within
21 s)."""
MAX_FLAPPING_PAGES = 1
"""Measured 1 (the goal)."""


@pytest.fixture(scope="module")
def reports() -> tuple[harness.Report, harness.Report]:
    return asyncio.run(harness.evaluate(harness.SMALL, 1, load_settings()))


def test_the_incident_fleet_holds_every_library_kind_on_models_of_target_traffic(
    reports: tuple[harness.Report, harness.Report],
) -> None:
    _, incidents = reports
    assert {r.truth.kind.name for r in incidents.rows} == {k.name for k in harness.LIBRARY}
    assert all(r.truth.rate >= harness.SMALL.min_rate for r in incidents.rows)
    assert len(next(r for r in incidents.rows if r.truth.kind.models > 1).truth.models) == 12


@pytest.mark.parametrize("kind", MUST_DETECT_WITHIN_A_THIRD)
def test_kind_is_detected_within_a_third_of_its_deadline(reports: tuple[harness.Report, harness.Report], kind: str) -> None:
    rows = reports[1].rows_of(kind)
    sparse = SPARSE_BELOW.get(kind, 0.0)
    assert rows and all(r.detected and r.delay_s <= r.truth.kind.deadline_s / (1 if r.truth.rate < sparse else 3)
                        for r in rows), [(r.truth.models[0], r.delay_s) for r in rows]


@pytest.mark.parametrize("kind, anomaly_class", sorted(RIGHT_CLASS.items()))
def test_kind_is_detected_as_its_class(reports: tuple[harness.Report, harness.Report], kind: str, anomaly_class: str) -> None:
    assert all(anomaly_class in r.classes for r in reports[1].rows_of(kind))


def test_false_pages_per_model_day(reports: tuple[harness.Report, harness.Report]) -> None:
    quiet, incidents = reports
    assert quiet.false_pages_per_model_day <= MAX_QUIET_FALSE_PAGES_PER_MODEL_DAY
    assert incidents.false_pages_per_model_day <= MAX_INCIDENT_FLEET_FALSE_PAGES_PER_MODEL_DAY
    assert all(r.pages == 0 for r in quiet.rows)  # a normal deploy (+3% latency) is not an incident
    assert quiet.false_anomalies["prediction"] == 0  # nor is a healthy model's quality (canary, labels)


def test_pages_per_storm_and_per_flapping_series(reports: tuple[harness.Report, harness.Report]) -> None:
    incidents = reports[1]
    assert 1 <= incidents.rows_of("storm: 12 models latency x3")[0].pages <= MAX_STORM_PAGES
    assert 1 <= incidents.rows_of("flapping x3 every 3 min")[0].pages <= MAX_FLAPPING_PAGES


def test_every_poison_record_reaches_the_dead_letter_topic(reports: tuple[harness.Report, harness.Report]) -> None:
    quiet, incidents = reports
    assert incidents.outcome.poisoned > 100
    assert incidents.outcome.dead_letters == incidents.outcome.poisoned
    assert quiet.outcome.dead_letters == quiet.outcome.poisoned == 0
    assert incidents.rows_of("poison records 5%")[0].pages == 0

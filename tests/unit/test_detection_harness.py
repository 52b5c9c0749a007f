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
import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from load import detection_harness as harness  # noqa: E402
from load.fleet import FleetSpec, profiles, rough  # noqa: E402
from modelmedic.config import load_settings  # noqa: E402

INCIDENT_KINDS = tuple(k.name for k in harness.LIBRARY if k.expected_class is not None)
SHORT_OF_THE_DATA = {
    "throughput drop -30%": "found at 0.76 req/s in 1,076 s but at 0.41 req/s in 1,831 s (796 and 1,749 s with the "
                            "level's memory at an hour, before 2026-12-05), where the data allow 644 s "
                            "(information_bound_s; the bar is 1,200): on a series' first day (these fleets are 3 h "
                            "old) the 0.7x drop CUSUM fires at 1.75x its threshold (38.5 nats at 1 s windows, which a "
                            "-30% drop at 0.41 req/s gathers in about 1,870 s at the exact rate), its null being the "
                            "level and its lag (docs/detection.md); missed altogether before 2026-12-03",
}
"""Kinds the judge misses where the data allow a detection in time: strict xfail, so the test
fails once the judge finds them and this entry must go."""
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


@pytest.mark.parametrize("kind", [
    pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=SHORT_OF_THE_DATA[k])) if k in SHORT_OF_THE_DATA else k
    for k in INCIDENT_KINDS])
def test_kind_is_detected_as_soon_as_the_data_allow(reports: tuple[harness.Report, harness.Report], kind: str) -> None:
    """Every instance within a third of its deadline where the data allow that on average
    (``Row.bar_s``: the expected delay of a CUSUM designed for exactly the change, at the
    judge's false-alarm budget, within the third), else within its deadline where they allow
    that; an instance beyond both, or whose run ends before its bar, is not held to one."""
    rows = reports[1].rows_of(kind)
    held = [r for r in rows if r.bar_s is not None]
    if not held:
        pytest.skip(f"no instance the data allow to find in time: {[(r.truth.models[0], r.bound_s) for r in rows]}")
    assert all(r.detected and r.delay_s <= r.bar_s for r in held), \
        [(r.truth.models[0], r.truth.rate, r.delay_s, r.bar_s) for r in held]


def test_the_bars_follow_the_information_the_data_hold(reports: tuple[harness.Report, harness.Report]) -> None:
    """A -90% drop on a 0.06 req/s model cannot be found within a third of its 900 s deadline on
    average at the judge's budget (h = 20.6 for 1 s windows), one on 2.83 req/s can; a creep
    on a 0.05 req/s model needs longer than the 3 h run gives it."""
    drops = {r.truth.models[0]: r for r in reports[1].rows_of("throughput drop -90%")}
    assert 300 < drops["model-019"].bound_s < 900 and drops["model-019"].bar_s == 900
    assert drops["model-004"].bound_s < 30 and drops["model-004"].bar_s == 300
    assert all(r.bar_s is None for r in reports[1].rows_of("latency creep +2%/10min"))


def test_batched_requests_hold_less_evidence_of_a_rate_change() -> None:
    """Poisson batches of two requests on average (load/fleet.py rough()) tell a rate change as well as half
    as many single requests: a batch's size says nothing of the rate. Latency is judged per request either way."""
    smooth = FleetSpec(models=1, rate_range=(1.0, 1.0), seasonality=0.0)
    batched = FleetSpec(models=1, rate_range=(1.0, 1.0), seasonality=0.0, clump=2.0)
    kinds = {k.name: k for k in harness.LIBRARY}
    drop, step = kinds["throughput drop -30%"], kinds["latency step x2"]
    bound = {spec.clump: {k.name: harness.information_bound_s(k, profiles(spec)[0], spec, harness.START_MS, 20.6)
                          for k in (drop, step)} for spec in (smooth, batched)}
    assert bound[2.0][drop.name] / bound[1.0][drop.name] == pytest.approx(2.0, abs=0.01)
    assert bound[2.0][step.name] == bound[1.0][step.name]


def test_a_rate_change_is_told_from_the_rates_own_wander() -> None:
    """On rough traffic (load/fleet.py rough(): the log rate wanders +-10% over half-hours) a -30% drop is a
    three-sigma move of the wander itself: at 3 req/s no test at the judge's budget finds it within its
    hour's deadline (the bound held it to 244 s, as if the rate stood still), at 50 req/s the counts pin the
    rate down well enough; a x3 surge and a -90% drop barely notice the wander."""
    kinds = {k.name: k for k in harness.LIBRARY}
    bound = {}
    for rate in (3.0, 50.0):
        wandering = rough(FleetSpec(models=1, rate_range=(rate, rate), seasonality=0.0))
        for spec in (replace(wandering, rate_wander=0.0), wandering):
            bound[rate, spec.rate_wander] = {name: harness.information_bound_s(kinds[name], profiles(spec)[0], spec,
                                                                             harness.START_MS, 20.6)
                                             for name in ("throughput drop -30%", "throughput drop -90%", "surge x3")}
    assert bound[3.0, 0.0]["throughput drop -30%"] < 300 and bound[3.0, 0.1]["throughput drop -30%"] > 3600
    assert bound[50.0, 0.1]["throughput drop -30%"] < 2 * bound[50.0, 0.0]["throughput drop -30%"]
    for rate in (3.0, 50.0):
        for name in ("throughput drop -90%", "surge x3"):
            assert bound[rate, 0.0][name] <= bound[rate, 0.1][name] <= 1.2 * bound[rate, 0.0][name] + 1


def test_a_weekend_holds_less_evidence_as_it_holds_less_traffic() -> None:
    """On a Sunday at 60% of the traffic an incident's evidence comes 1 / 0.6 times slower: the bound
    followed the weekdays' traffic alone, and a Sunday's error burst at 0.19 req/s was held to 561 s
    where its requests allow about 900 (``--seed 22 --start 2026-01-11``)."""
    spec = FleetSpec(models=1, rate_range=(1.0, 1.0), seasonality=0.0, weekend=0.6)
    burst = {k.name: k for k in harness.LIBRARY}["error burst 13%"]
    profile = profiles(spec)[0]
    zone_ms = int(profile.phase / (2 * math.pi) * 86_400_000)
    sunday = harness.START_MS - 86_400_000 + 6 * 3_600_000 - zone_ms  # the Sunday before, 06:00 in its zone
    on = {day: harness.information_bound_s(burst, profile, spec, start, 20.6)
          for day, start in (("wednesday", harness.START_MS + 2 * 86_400_000), ("sunday", sunday))}
    assert on["sunday"] / on["wednesday"] == pytest.approx(1 / 0.6, rel=0.02)


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


def test_no_incident_pages_again_for_the_class_it_paged(reports: tuple[harness.Report, harness.Report]) -> None:
    """One incident a problem: a second first page for the same class (a sparse latency episode that ended and
    fired again past the flap hold, 2026-12-07) is a storm of one."""
    assert [r.truth.kind.name for r in reports[1].rows if r.paged_too_often] == []


def test_every_poison_record_reaches_the_dead_letter_topic(reports: tuple[harness.Report, harness.Report]) -> None:
    quiet, incidents = reports
    assert incidents.outcome.poisoned > 100
    assert incidents.outcome.dead_letters == incidents.outcome.poisoned
    assert quiet.outcome.dead_letters == quiet.outcome.poisoned == 0
    assert incidents.rows_of("poison records 5%")[0].pages == 0

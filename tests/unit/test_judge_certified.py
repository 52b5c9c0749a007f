"""Certified figures as the reference (issue 13 item 1/2 gap): a version new to the judge, with no
predecessor, is judged against its certification from its first window instead of warming up."""

from __future__ import annotations

import numpy as np

from modelmedic.config import DetectionSettings, load_settings
from modelmedic.detection.judge import WindowJudge
from modelmedic.detection.plane import DetectionPlane
from modelmedic.errors import CertificationMissingError
from modelmedic.registry.records import CertifiedBaseline
from test_judge_sequential import Fleet, firing

SIGMA = 0.3  # the synthetic fleet's per-request lognormal spread: p95 = p50 * exp(1.645 * 0.3)


class FakeRegistry:
    """The registry's ``certified_baseline`` for a few versions; the others were never certified."""

    def __init__(self, figures: dict[tuple[str, str], tuple[float, float]]) -> None:
        self.figures = figures
        self.asked: list[tuple[str, str]] = []

    def certified_baseline(self, model: str, version: str) -> CertifiedBaseline:
        self.asked.append((model, version))
        if (model, version) not in self.figures:
            raise CertificationMissingError(f"{model}@{version} has no certification report")
        p50, error_rate = self.figures[(model, version)]
        return CertifiedBaseline(p50, p50 * np.exp(1.645 * SIGMA), p50 * 2, 100.0, error_rate, {}, {})


def _fleet(registry: FakeRegistry | None, seed: int) -> Fleet:
    fleet = Fleet(2, 60.0, seed=seed)
    fleet.judge = WindowJudge(DetectionSettings(), certified=registry.certified_baseline if registry else None)
    return fleet


def _run(fleet: Fleet, windows: int, median_ms: float, error_rate: float) -> list:
    return [a for _ in range(windows) for a in fleet.step(1.0, median_ms, error_rate)]


def test_a_version_slow_from_its_first_request_is_judged_against_its_certification() -> None:
    """m0 certified at 100 ms serves 400 ms from the start: latency fires in its first windows. m1
    is not certified: it warms up on its own 400 ms, as before (nothing to compare with)."""
    registry = FakeRegistry({("m0", "1"): (100.0, 0.005)})
    fleet = _fleet(registry, seed=3)
    first = _run(fleet, 3, 400.0, 0.005)
    assert [(a.model, a.kind) for a in firing(first)] == [("m0", "latency")]
    assert "vs usual 10" in firing(first)[0].summary  # the certified 100 ms (a window of learning later)
    assert fleet.judge.insufficient_data()["latency"] == 1  # m1 warms up
    assert sorted(registry.asked) == [("m0", "1"), ("m1", "1")]  # once per new version, never again
    assert firing(_run(fleet, 120, 400.0, 0.005)) == [] and len(registry.asked) == 2
    without = _fleet(None, seed=3)
    assert firing(_run(without, 123, 400.0, 0.005)) == []


def test_an_error_rate_far_above_the_certified_one_fires_from_the_start() -> None:
    registry = FakeRegistry({("m0", "1"): (50.0, 0.005), ("m1", "1"): (50.0, 0.005)})
    fleet = _fleet(registry, seed=4)
    errors = np.array([0.13, 0.005])
    fired = firing(_run(fleet, 10, 50.0, errors), "errors")
    assert [a.model for a in fired] == ["m0"]
    assert firing(_run(_fleet(None, seed=4), 10, 50.0, errors)) == []  # warming up on its own 13%


def test_a_version_that_serves_as_certified_stays_quiet() -> None:
    registry = FakeRegistry({("m0", "1"): (50.0, 0.005), ("m1", "1"): (80.0, 0.002)})
    fleet = _fleet(registry, seed=5)
    assert firing(_run(fleet, 6 * 60, np.array([50.0, 80.0]), np.array([0.005, 0.002]))) == []
    assert fleet.judge.insufficient_data() == {"latency": 0, "errors": 0, "throughput": 0, "latency_tail": 0}


def test_the_plane_s_judge_asks_the_plane_s_registry() -> None:
    registry = FakeRegistry({})
    assert DetectionPlane(load_settings(), registry=registry).judge.certified == registry.certified_baseline
    assert DetectionPlane(load_settings()).judge.certified is None

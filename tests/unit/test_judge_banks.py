"""The judge runs the banks the settings name (issue 13 item 1): per-value banks as families' banks."""

from __future__ import annotations

import numpy as np

from modelmedic.config import DetectionSettings
from modelmedic.detection.banks import LatencySeries, ThroughputSeries
from modelmedic.detectors import BernoulliCusumBank, LatencyCusumBank, PoissonCusumBank
from test_judge_sequential import Fleet, firing


def test_the_default_banks_are_the_sequential_ones() -> None:
    fleet = Fleet(1, 1.0, seed=1)
    banks = [type(f.bank) for f in (fleet.judge.latency, fleet.judge.errors, fleet.judge.throughput)]
    assert banks == [LatencyCusumBank, BernoulliCusumBank, PoissonCusumBank]


def test_a_per_value_bank_judges_the_window_metric_both_ways_for_throughput() -> None:
    """``throughput_bank: calibrated``: a busy model's drop fires ``throughput_drop`` and a surge
    ``throughput_surge``, each once; insufficient data while the bank warms up."""
    settings = DetectionSettings(throughput_bank="calibrated", latency_bank="calibrated")
    fleet = Fleet(2, 60.0, seed=4, settings=settings)
    assert isinstance(fleet.judge.throughput.bank, ThroughputSeries)
    fleet.step(np.array([5.0, 5.0]), 50.0)
    assert fleet.judge.insufficient_data()["throughput"] == 2
    quiet = [a for _ in range(600) for a in fleet.step(np.array([5.0, 5.0]), 50.0)]
    assert firing(quiet) == [] and fleet.judge.insufficient_data()["throughput"] == 0
    changed = [a for _ in range(30) for a in fleet.step(np.array([0.2, 40.0]), 50.0)]
    assert sorted((a.model, a.kind) for a in firing(changed)) == [("m0", "throughput_drop"), ("m1", "throughput_surge")]


def test_a_per_value_latency_bank_fires_on_a_step_and_a_stopped_version_ends_its_episode() -> None:
    fleet = Fleet(1, 60.0, seed=2, settings=DetectionSettings(latency_bank="calibrated"))
    assert isinstance(fleet.judge.latency.bank, LatencySeries)
    assert firing([a for _ in range(600) for a in fleet.step(2.0, 50.0)]) == []
    fired = [a for _ in range(3) for a in fleet.step(2.0, 400.0)]
    assert [(a.kind, a.state) for a in fired] == [("latency", "firing")]
    assert "p95 usually" not in fired[0].summary  # a per-value bank does not track it
    gone = [a for _ in range(60) for a in fleet.step(0.0, 400.0)]
    assert [(a.kind, a.state) for a in gone if a.kind == "latency"] == [("latency", "recovered")]
    assert "no longer serving" in [a for a in gone if a.kind == "latency"][0].summary

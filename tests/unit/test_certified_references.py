"""Certification stores a version's reference distributions (predictions, and inputs by feature name) in
the registry, and the live monitors judge the version against them from its first request: a quiet new
model whose inputs are unlike its certification traffic is flagged without learning a reference first
(issue 14, item 2). Certification over a MockTransport model server, a real git registry, the plane's
registry hook; the input monitor as in test_feature_monitor."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from modelmedic.config import QualitySettings, load_settings
from modelmedic.detection.features import FEATURE_DRIFT, FeatureMonitor
from modelmedic.detection.plane import DetectionPlane
from modelmedic.detection.quality import QualityMonitor
from modelmedic.events import InferenceEvent
from modelmedic.registry import Registry
from modelmedic.release.certification import certify
from modelmedic.release.inputs import CertificationPolicy, Sample
from modelmedic.release.report import REFERENCE_VALUES, reference_distributions

INTERFACE = {"input": {"type": "object", "properties": {"amount": {"type": "number"}, "country": {"type": "string"}}},
             "output": {"type": "integer"}}
POLICY = CertificationPolicy(rates_rps=[500], step_s=0.2, max_p99_ms=1000, min_throughput_rps=0, warmup_requests=0,
                             min_quality={"accuracy": 0.9}, min_tail_samples=1)
W = 60_000
T0 = 1_700_000_040_000
NAMES = [("fraud", "1.0.0", "production")]


def _server() -> httpx.MockTransport:
    """A model of v1.0.0 over ``[amount, country]``: fraud when the amount is over 100."""

    def handle(request: httpx.Request) -> httpx.Response:
        amount, _country = json.loads(request.content)["features"]
        return httpx.Response(200, json={"prediction": int(amount > 100), "version": "v1.0.0"})

    return httpx.MockTransport(handle)


def _samples(rng: np.random.Generator, n: int, prefix: str, labelled: bool = False) -> list[Sample]:
    out = []
    for i in range(n):
        amount = round(float(np.exp(rng.normal(3.0, 1.0))), 2)
        out.append(Sample(f"{prefix}{i}", [amount, str(rng.choice(["FR", "DE"]))], int(amount > 100) if labelled else None))
    return out


@pytest.fixture
def certified(tmp_path) -> Registry:
    rng = np.random.default_rng(1)
    registry = Registry.init(tmp_path / "registry")
    registry.register_model("fraud", description="Card fraud", owners=["risk"], interface=INTERFACE)
    registry.add_version("fraud", "1.0.0", "release 1", "s3://m/fraud/1", "sha256:" + "1" * 64)
    return registry, rng


async def test_certification_writes_reference_features_and_predictions_to_the_registry(certified) -> None:
    registry, rng = certified
    result = await certify(registry, "fraud", "1.0.0", "http://model", _samples(rng, 300, "r"),
                           _samples(rng, 300, "h", labelled=True), POLICY, transport=_server())
    assert result.passed, result.failures
    report = registry.certified_baseline("fraud", "1.0.0").report
    assert len(report["reference_features"]["amount"]) == 600 and set(report["reference_features"]["country"]) == {"FR", "DE"}
    assert len(report["reference_predictions"]) == 300 and set(report["reference_predictions"]) <= {0, 1}


async def test_a_quiet_new_model_flags_input_drift_against_its_certification_without_warm_up(certified) -> None:
    """At 15 sampled requests a minute, amounts 1 log-sd higher than at certification from the very first
    request: flagged within 150 requests. A reference learned live (no certification) would be the drifted
    traffic itself and flag nothing."""
    registry, rng = certified
    await certify(registry, "fraud", "1.0.0", "http://model", _samples(rng, 600, "r"),
                  _samples(rng, 300, "h", labelled=True), POLICY, transport=_server())
    plane = DetectionPlane(load_settings(), registry=registry)
    for with_registry in (True, False):
        monitor = FeatureMonitor(W, QualitySettings())
        fired = []
        for w in range(60):
            rows = [(k, 0, T0 + w * W + k * 4000, json.dumps({"amount": float(np.exp(rng.normal(4.0, 1.0))),
                                                               "country": str(rng.choice(["FR", "DE"]))}).encode())
                    for k in range(15)]
            monitor.observe(rows, NAMES)
            if with_registry:
                plane._input_facts(monitor)  # what the plane does after each batch: new versions' certified facts
            fired += [((w + 1) * 15, a) for a in monitor.poll(T0 + (w + 1) * W) if a.kind == FEATURE_DRIFT]
        if with_registry:
            assert fired and fired[0][0] <= 150 and "amount" in fired[0][1].summary, fired
        else:
            assert fired == [], "learned from the drifted traffic itself"


def test_the_certified_prediction_reference_reaches_the_quality_monitor(certified) -> None:
    registry, _ = certified
    report = {"latency_p50_ms": 10, "latency_p95_ms": 25, "latency_p99_ms": 40, "throughput_rps": 250,
              "error_rate": 0.0, "quality": {"accuracy": 0.95},
              **reference_distributions(INTERFACE, [Sample("r", [5.0, "FR"])], [0] * 90 + [1] * 10)}
    registry.attach_certification("fraud", "1.0.0", report)
    monitor = QualityMonitor(W)
    monitor.observe_inference(InferenceEvent("fraud", "1.0.0", "production", "r1", T0, 5.0, True, 0))
    DetectionPlane(load_settings(), registry=registry)._certified_facts(monitor)
    assert monitor._references[("fraud", "1.0.0")].size == 100


def test_references_are_bounded_and_need_named_positions() -> None:
    many = [Sample(str(i), [float(i), "FR"]) for i in range(REFERENCE_VALUES + 10)]
    refs = reference_distributions(INTERFACE, many, list(range(REFERENCE_VALUES + 10)))
    assert len(refs["reference_features"]["amount"]) == REFERENCE_VALUES == len(refs["reference_predictions"])
    unnamed = reference_distributions({"input": {"type": "object"}, "output": {}}, many, [1])
    assert "reference_features" not in unnamed and unnamed["reference_predictions"] == [1]
    wrong_width = reference_distributions(INTERFACE, [Sample("r", [1.0])], [])
    assert "reference_features" not in wrong_width

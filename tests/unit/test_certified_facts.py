"""New versions are judged against their certification when the registry has one."""

from __future__ import annotations

from modelmedic.config import load_settings
from modelmedic.detection.plane import DetectionPlane
from modelmedic.events import InferenceEvent
from modelmedic.detection.quality import QualityMonitor
from modelmedic.registry import Registry

INTERFACE = {"input": {"type": "object"}, "output": {"type": "string"}}
REPORT = {"latency_p50_ms": 10, "latency_p95_ms": 25, "latency_p99_ms": 40, "throughput_rps": 250,
          "error_rate": 0.002, "quality": {"accuracy": 0.95}, "reference_predictions": ["a"] * 90 + ["b"] * 10}


def test_a_certified_version_gets_its_accuracy_baseline_and_drift_reference(tmp_path):
    registry = Registry.init(tmp_path / "registry")
    registry.register_model("fraud", description="fraud", owners=["risk"], interface=INTERFACE)
    registry.add_version("fraud", "1.1.0", "candidate", "s3://m/fraud/1.1.0", "sha256:" + "c" * 64)
    registry.attach_certification("fraud", "1.1.0", REPORT)
    plane = DetectionPlane(load_settings(), registry=registry)
    monitor = QualityMonitor(1000)
    for version in ("1.1.0", "9.9.9", "not-semver"):
        monitor.observe_inference(InferenceEvent("fraud", version, "production", f"r-{version}", 1, 5.0, True, "a"))
    assert monitor.created == [("fraud", "1.1.0"), ("fraud", "9.9.9"), ("fraud", "not-semver")]
    plane._certified_facts(monitor)
    assert monitor.created == []
    versions = monitor._models["fraud"].versions
    assert versions["1.1.0"].labels.baseline == 0.95
    assert versions["9.9.9"].labels is None or versions["9.9.9"].labels.baseline != 0.95, "no certification: learned"
    assert monitor._references[("fraud", "1.1.0")].categories == {"a": 0, "b": 1}


def test_without_a_registry_new_versions_keep_learned_baselines():
    monitor = QualityMonitor(1000)
    monitor.observe_inference(InferenceEvent("fraud", "1.0.0", "production", "r1", 1, 5.0, True, "a"))
    DetectionPlane(load_settings())._certified_facts(monitor)
    assert monitor.created == [] and monitor._models["fraud"].versions["1.0.0"].labels is None

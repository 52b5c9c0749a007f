"""The detection plane hands the sampled features to the input monitor, with each new version's input
schema and certified input reference from the registry."""

from __future__ import annotations

import json

from aiokafka import TopicPartition

from modelmedic import metrics
from modelmedic.config import load_settings
from modelmedic.detection.features import FeatureMonitor
from modelmedic.detection.quality import QualityMonitor
from modelmedic.registry import Registry
from modelmedic.testing import Record, offline_plane

INTERFACE = {"input": {"type": "object", "properties": {"amount": {"type": "number", "minimum": 0},
                                                       "country": {"type": "string", "enum": ["FR", "DE"]}}},
             "output": {"type": "number"}}
REPORT = {"latency_p50_ms": 10, "latency_p95_ms": 25, "latency_p99_ms": 40, "throughput_rps": 250,
          "error_rate": 0.002, "quality": {"accuracy": 0.95},
          "reference_features": {"amount": [float(i % 50) for i in range(500)], "country": ["FR", "DE"] * 250}}
TS = 1_700_000_040_000


def registry(tmp_path) -> Registry:
    reg = Registry.init(tmp_path / "registry")
    reg.register_model("fraud", description="fraud", owners=["risk"], interface=INTERFACE)
    for version in ("1.1.0", "1.2.0"):
        reg.add_version("fraud", version, "candidate", f"s3://m/fraud/{version}", "sha256:" + "c" * 64)
    reg.attach_certification("fraud", "1.1.0", REPORT)
    return reg


def record(i: int, version: str, features: dict) -> bytes:
    return json.dumps({"model": "fraud", "version": version, "role": "production", "request_id": f"r-{i}",
                       "ts": TS + i, "latency_ms": 5.0, "ok": True, "prediction": 0.5, "features": features}).encode()


async def test_sampled_features_are_checked_against_the_registry_interface(tmp_path) -> None:
    settings = load_settings(detection={"quality_sample_every": 1})
    plane = offline_plane(settings, quality=lambda: QualityMonitor(1000))
    plane.registry = registry(tmp_path)
    unseen = metrics.FEATURE_VIOLATIONS.labels("fraud", "1.2.0", "country", "unseen_category")
    before = unseen._value.get()
    values = [record(0, "1.2.0", {"amount": 3.0, "country": "XX"}), record(1, "1.2.0", {"amount": 3.0, "country": "FR"})]
    await plane._process({TopicPartition("inference", 0): [Record("inference", 0, i, v) for i, v in enumerate(values)]})
    monitor = plane.parts[0].features
    assert monitor.created == [] and monitor.versions[("fraud", "1.2.0")].schema is not None
    await plane._process({TopicPartition("inference", 0): [Record("inference", 0, 2, record(2, "1.2.0", {"country": "XX"}))]})
    assert unseen._value.get() == before + 1, "the first batch's requests came before the version's interface"
    assert monitor.versions[("fraud", "1.2.0")].violations.violated == 1


def test_a_certified_version_gets_its_input_reference(tmp_path) -> None:
    plane = offline_plane(load_settings(), quality=lambda: QualityMonitor(1000))
    plane.registry = registry(tmp_path)
    monitor: FeatureMonitor = plane.parts[0].features
    for version in ("1.1.0", "1.2.0", "9.9.9"):
        monitor.observe([(0, 0, TS, b'{"amount": 1.0}')], [("fraud", version, "production")])
    plane._input_facts(monitor)
    certified, learned, unknown = (monitor.versions[("fraud", v)] for v in ("1.1.0", "1.2.0", "9.9.9"))
    assert certified.drift.features["country"].reference.categories == {"FR": 0, "DE": 1}
    assert certified.schema is not None and learned.schema is not None and unknown.schema is None
    assert learned.drift.features == {}, "no certification: learned from its live values (none counted yet)"

"""Live testing on real Kafka and a real git registry: a shadow candidate is judged against production."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest
import yaml

from modelmedic.events import InferenceEvent, encode
from modelmedic.registry import Registry
from test_detection_to_alert import START_MS, produce

pytestmark = pytest.mark.integration
INTERFACE = {"input": {"type": "object"}, "output": {"type": "string"}}


def traffic(shadow_slowdown: float, flip_every: int, n: int = 2000, seed: int = 5) -> list[tuple[bytes, bytes]]:
    """Production v1.0.0 and the candidate v1.1.0 in shadow on the same (mirrored) requests."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = rng.choice(["approve", "review"])
        latency = rng.lognormvariate(3.0, 0.25)
        shadow_label = ("review" if label == "approve" else "approve") if flip_every and i % flip_every == 0 else label
        for role, version, lat, pred in (("production", "1.0.0", latency, label),
                                         ("shadow", "1.1.0", latency * shadow_slowdown, shadow_label)):
            out.append((b"fraud", encode(InferenceEvent("fraud", version, role, f"r{i}", START_MS + 10 * i, lat, True, pred))))
    return out


@pytest.fixture
def registry(tmp_path) -> Registry:
    registry = Registry.init(tmp_path / "registry")
    registry.register_model("fraud", description="fraud", owners=["risk"], interface=INTERFACE)
    registry.add_version("fraud", "1.1.0", "candidate", "s3://m/fraud/1.1.0", "sha256:" + "b" * 64)
    return registry


def live_test(settings, registry: Registry, tmp_path) -> subprocess.CompletedProcess:
    config = tmp_path / "modelmedic.yaml"
    config.write_text(yaml.safe_dump(json.loads(settings.model_dump_json(include={"kafka"}))))
    return subprocess.run(
        [sys.executable, "-m", "modelmedic", "live-test", "fraud", "1.1.0", "--config", str(config), "--from-beginning",
         "--duration", "60", "--registry", str(registry.path), "--json"],
        capture_output=True, text=True, timeout=120, env=os.environ.copy())


async def test_a_healthy_shadow_passes_and_the_verdict_is_in_the_registry(settings, registry, tmp_path):
    await produce(settings, traffic(shadow_slowdown=1.05, flip_every=0))
    result = live_test(settings, registry, tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] and {g["gate"]: g["passed"] for g in report["gates"]} == {
        "paired requests": True, "p99 latency (ms) vs production": True, "error rate vs production": True,
        "disagreement with production": True}
    stored = json.loads((registry.path / "models/fraud/versions/v1.1.0.livetest.json").read_text())
    assert stored == report


async def test_a_slow_and_wrong_shadow_fails_with_each_gate_explained(settings, registry, tmp_path):
    await produce(settings, traffic(shadow_slowdown=2.0, flip_every=5))
    result = live_test(settings, registry, tmp_path)
    assert result.returncode == 1, result.stderr
    gates = {g["gate"]: g for g in json.loads(result.stdout)["gates"]}
    assert not gates["p99 latency (ms) vs production"]["passed"]
    assert not gates["disagreement with production"]["passed"] and 0.19 < gates["disagreement with production"]["observed"] < 0.21
    assert gates["error rate vs production"]["passed"]
    markdown = (registry.path / "models/fraud/versions/v1.1.0.livetest.md").read_text()
    assert "FAILED" in markdown and "FAIL |" in markdown

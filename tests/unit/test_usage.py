"""Usage statistics go from closed windows into the git registry, in bulk, and never block."""

from __future__ import annotations

import asyncio

from modelmedic.detection.usage import UsageRollup
from modelmedic.registry import Registry, StatsBuffer
from modelmedic.events import InferenceEvent
from modelmedic.detection.windows import PartitionWindows

INTERFACE = {"input": {"type": "object"}, "output": {"type": "number"}}
SIZE = 1000
T0 = 1_767_225_600_000


def _registry(tmp_path) -> Registry:
    registry = Registry.init(tmp_path / "registry")
    registry.register_model("fraud", description="Card fraud score", owners=["risk"], interface=INTERFACE)
    registry.add_version("fraud", "1.0.0", "first", "s3://models/fraud/1.0.0", "sha256:" + "a" * 64)
    return registry


def _windows(events_per_window: int, windows: int) -> tuple[PartitionWindows, list]:
    w = PartitionWindows(SIZE, 0, 300)
    closed, offset = [], 0
    for k in range(windows):
        for i in range(events_per_window):
            for model, version in (("fraud", "1.0.0"), ("fraud", "9.9.9"), ("churn", "1.0.0")):
                role = "canary" if model == "churn" else "production"
                w.add(InferenceEvent(model, version, role, f"r{offset}", T0 + k * SIZE + i, 10.0 + i, i % 10 != 0), offset)
                offset += 1
        closed += w.close_through(w.ready_through(T0 + (k + 1) * SIZE))
    return w, closed


def test_windows_roll_up_into_one_commit_per_flush(tmp_path):
    registry = _registry(tmp_path)
    rollup = UsageRollup(registry, buffer=StatsBuffer(registry, interval_s=60, clock=lambda: 0.0))
    w, closed = _windows(events_per_window=20, windows=5)
    for cw in closed:
        rollup.add(cw)
    assert not rollup.due(), "nothing is committed before the interval"
    asyncio.run(rollup.flush(force=True))
    stats = registry.stats("fraud", "1.0.0")
    assert (stats.requests, stats.errors) == (100, 10)
    assert 10.0 <= stats.latency_p50_ms <= stats.latency_p95_ms <= stats.latency_p99_ms <= 29.0
    assert ("fraud", "9.9.9") in rollup.skipped and "not registered" in rollup.skipped[("fraud", "9.9.9")]
    assert all(model != "churn" for model, _ in rollup.skipped), "only production traffic is rolled up"
    assert rollup.buffer.flush(force=True) is False, "the flush took everything buffered"


def test_due_after_the_interval_only(tmp_path):
    now = [0.0]
    registry = _registry(tmp_path)
    rollup = UsageRollup(registry, buffer=StatsBuffer(registry, interval_s=60, clock=lambda: now[0]))
    w, closed = _windows(events_per_window=2, windows=1)
    rollup.add(closed[0])
    now[0] = 59.0
    assert not rollup.due()
    now[0] = 60.0
    assert rollup.due()

"""Usage statistics go from closed windows into the git registry, in bulk, and never block."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from modelmedic.detection.usage import UsageRollup
from modelmedic.detection.windows import PartitionWindows
from modelmedic.events import InferenceEvent
from modelmedic.registry import Registry, StatsBuffer

INTERFACE = {"input": {"type": "object"}, "output": {"type": "number"}}
SIZE = 1000
T0 = 1_767_225_600_000


def _registry(tmp_path) -> Registry:
    registry = Registry.init(tmp_path / "registry")
    registry.register_model("fraud", description="Card fraud score", owners=["risk"], interface=INTERFACE)
    registry.add_version("fraud", "1.0.0", "first", "s3://models/fraud/1.0.0", "sha256:" + "a" * 64)
    return registry


def _windows(latencies: list[np.ndarray]) -> list:
    """Close one window per array of latencies, each served by fraud 1.0.0 (production, every tenth
    request failing), an unregistered fraud 9.9.9 and a canary of churn."""
    w = PartitionWindows(SIZE, 0, 300)
    closed, offset = [], 0
    for k, window in enumerate(latencies):
        for i, latency in enumerate(window.tolist()):
            for model, version in (("fraud", "1.0.0"), ("fraud", "9.9.9"), ("churn", "1.0.0")):
                role = "canary" if model == "churn" else "production"
                ts = T0 + k * SIZE + i % SIZE
                w.add(InferenceEvent(model, version, role, f"r{offset}", ts, latency, i % 10 != 0), offset)
                offset += 1
        closed += w.close_through(w.ready_through(T0 + (k + 1) * SIZE))
    return closed


def nearest_rank(values: np.ndarray, q: float) -> float:
    """The exact quantile the windows and the registry both mean: the ceil(q * n)-th smallest value."""
    ordered = np.sort(values)
    return float(ordered[max(math.ceil(q * ordered.size), 1) - 1])


def test_windows_roll_up_into_one_commit_per_flush(tmp_path):
    registry = _registry(tmp_path)
    rollup = UsageRollup(registry, buffer=StatsBuffer(registry, interval_s=60, clock=lambda: 0.0))
    for cw in _windows([10.0 + np.arange(20.0)] * 5):
        rollup.add(cw)
    assert not rollup.due(), "nothing is committed before the interval"
    asyncio.run(rollup.flush(force=True))
    stats = registry.stats("fraud", "1.0.0")
    assert (stats.requests, stats.errors) == (100, 10)
    assert [stats.latency_p50_ms, stats.latency_p95_ms, stats.latency_p99_ms] == pytest.approx([19, 28, 29], rel=0.01)
    assert ("fraud", "9.9.9") in rollup.skipped and "not registered" in rollup.skipped[("fraud", "9.9.9")]
    assert all(model != "churn" for model, _ in rollup.skipped), "only production traffic is rolled up"
    assert rollup.buffer.flush(force=True) is False, "the flush took everything buffered"


def test_merged_quantiles_are_the_quantiles_of_every_request(tmp_path):
    """A slow spell in 3 of 60 windows: its requests are the p99 of the hour. Averaging per-window
    p99s by requests (the merge before histograms) hides it; the histogram keeps it within 1%."""
    rng = np.random.default_rng(7)
    latencies = [rng.lognormal(np.log(20.0), 0.4, size=200) * (12.0 if k in (10, 30, 50) else 1.0)
                 for k in range(60)]
    registry = _registry(tmp_path)
    rollup = UsageRollup(registry, buffer=StatsBuffer(registry, interval_s=60, clock=lambda: 0.0))
    closed = _windows(latencies)
    for cw in closed:
        rollup.add(cw)
    asyncio.run(rollup.flush(force=True))
    stats = registry.stats("fraud", "1.0.0")

    every = np.concatenate(latencies)
    assert stats.requests == every.size
    for q, merged in ((0.5, stats.latency_p50_ms), (0.95, stats.latency_p95_ms), (0.99, stats.latency_p99_ms)):
        assert merged == pytest.approx(nearest_rank(every, q), rel=0.01), f"p{round(q * 100)}"

    production = [(cw.count[i], cw.p99[i]) for cw in closed for i, key in cw.served() if key[:2] == ("fraud", "1.0.0")]
    weighted_mean_p99 = sum(n * p99 for n, p99 in production) / sum(n for n, _ in production)
    assert weighted_mean_p99 < 0.5 * nearest_rank(every, 0.99), "the scenario is one the old merge got wrong"


def test_due_after_the_interval_only(tmp_path):
    now = [0.0]
    registry = _registry(tmp_path)
    rollup = UsageRollup(registry, buffer=StatsBuffer(registry, interval_s=60, clock=lambda: now[0]))
    rollup.add(_windows([np.array([5.0, 6.0])])[0])
    now[0] = 59.0
    assert not rollup.due()
    now[0] = 60.0
    assert rollup.due()

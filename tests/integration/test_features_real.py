"""Inputs end to end on real Kafka: events with features flow through the service, and a feature that
moves becomes a drift alert (a warning, not a page) naming it as a redesign signal."""

from __future__ import annotations

import json

import numpy as np
import pytest

from test_detection_to_alert import START_MS, produce, running, wait_processed, with_sinks

pytestmark = pytest.mark.integration


def stream(n: int, shift_at: int, seed: int = 3):
    """``n`` requests of one production version at 2 a second, with features; from request
    ``shift_at`` on, ``amount`` is two sds higher (``country`` and ``age`` stay as they were)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        features = {"amount": round(float(rng.normal(5.0 if i >= shift_at else 3.0, 1.0)), 3),
                    "country": str(rng.choice(["FR", "DE", "ES"])), "age": int(rng.integers(18, 90))}
        event = {"model": "fraud", "version": "2.0.0", "role": "production", "request_id": f"r-{i}",
                 "ts": START_MS + i * 500, "latency_ms": round(float(rng.lognormal(3.0, 0.2)), 2), "ok": True,
                 "prediction": round(float(rng.random()), 4), "features": features}
        yield b"fraud", json.dumps(event).encode()


@pytest.fixture
def settings(settings):
    """Every request sampled, inputs tested every 10 s of event time (the default: a minute)."""
    return settings.model_copy(update={
        "detection": settings.detection.model_copy(update={"quality_sample_every": 1}),
        "quality": settings.quality.model_copy(update={"features_test_interval_s": 10.0})})


async def test_a_moved_feature_is_a_drift_alert_naming_it(settings, receiver):
    n = await produce(settings, stream(1400, shift_at=700))
    async with running(with_sinks(settings, receiver)) as service:
        await wait_processed(service, n)
        (hook,) = await receiver.wait_for(lambda r: "feature_drift" in json.dumps(r.json), kind="webhook", timeout=30)
        anomalies = [a for a in service.detection.published if a.kind == "feature_drift"]
    alert = hook.json["alert"]
    assert "inputs drifted from the reference: amount (PSI" in alert["summary"] and "redesign signal" in alert["summary"]
    assert "country" not in alert["summary"] and "age" not in alert["summary"]
    assert [(a.anomaly_class, a.state, a.model, a.version) for a in anomalies] == [("drift", "firing", "fraud", "2.0.0")]
    # From the shift (request 700, 350 s) to the alarm: within 300 requests, counted in event time.
    assert anomalies[0].window_end - (START_MS + 700 * 500) <= 300 * 500
    assert alert["severity"] == "warning", "input drift warns (class drift's rule): no page, no escalation"
    pagerduty = [r.json for r in receiver.requests if r.kind == "pagerduty" and "feature_drift" in json.dumps(r.json)]
    assert [e["payload"]["severity"] for e in pagerduty] == ["warning"]

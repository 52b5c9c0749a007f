"""Detection to alert on real Kafka and real HTTP: incidents found, alerted once, resolved."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from load.fleet import FleetSpec, Incident, generate
from modelmedic.testing import AlertReceiver
from modelmedic.config import Settings, SinkSettings
from modelmedic.kafka import ensure_topics, producer
from modelmedic.app import Service

pytestmark = pytest.mark.integration
START_MS = 1_767_225_600_000


async def produce(settings: Settings, records) -> int:
    """Send (key, value) records to the inference topic; returns how many."""
    await ensure_topics(settings.kafka)
    p = producer(settings.kafka, linger_ms=5)
    await p.start()
    n = 0
    try:
        for key, value in records:
            await p.send(settings.kafka.topics.inference, value, key=key)
            n += 1
        await p.flush()
    finally:
        await p.stop()
    return n


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Service]:
    service = Service(settings)
    task = asyncio.create_task(service.run())
    try:
        yield service
    finally:
        service.stop.set()
        await asyncio.wait_for(task, 30)


async def wait_processed(service: Service, n: int, timeout: float = 60.0) -> None:
    async with asyncio.timeout(timeout):
        while service.detection.processed < n:
            await asyncio.sleep(0.05)


def with_sinks(settings: Settings, receiver: AlertReceiver) -> Settings:
    return settings.model_copy(update={"sinks": [
        SinkSettings(type="webhook", url=receiver.webhook_url),
        SinkSettings(type="pagerduty", url=receiver.pagerduty_url, routing_key="R" * 32),
    ]})


async def test_each_incident_kind_is_detected_alerted_and_resolved(settings, receiver):
    spec = FleetSpec(models=8, rate=40, seed=7)
    # 60 s each: three models whose problems start together are held as a gathering group for a
    # share of storm_window_s (30 s for three, StormWatch.quorum_wait_ms), and one that recovers while
    # held never pages: at 20 s each, one of the three recovered while held and only two paged.
    incidents = [Incident.parse("latency_spike:model-001@60+60x5"),
                 Incident.parse("throughput_collapse:model-003@60+180"),  # past the 120 s minimum duration
                 Incident.parse("error_burst:model-005@60+60x0.3")]
    n = await produce(settings, generate(spec, incidents, START_MS, 260))
    async with running(with_sinks(settings, receiver)) as service:
        await wait_processed(service, n)
        pages = await receiver.wait_for(kind="pagerduty", count=6, timeout=30)
    triggers = {p.json["payload"]["group"]: p.json for p in pages if p.json["event_action"] == "trigger"}
    resolves = [p.json for p in pages if p.json["event_action"] == "resolve"]
    assert set(triggers) == {"model-001", "model-003", "model-005"}
    kinds = {m: t["payload"]["custom_details"]["kind"] for m, t in triggers.items()}
    assert kinds == {"model-001": "latency", "model-003": "throughput_drop", "model-005": "errors"}
    assert {r["dedup_key"] for r in resolves} == {t["dedup_key"] for t in triggers.values()}
    webhooks = [r.json for r in receiver.accepted if r.kind == "webhook"]
    assert len(webhooks) == 6


async def test_steady_fleet_raises_no_alert(settings, receiver):
    spec = FleetSpec(models=8, rate=40, seed=11)
    n = await produce(settings, generate(spec, [], START_MS, 300))
    async with running(with_sinks(settings, receiver)) as service:
        await wait_processed(service, n)
        await asyncio.sleep(0)  # let the last windows close
    assert service.detection.published == []
    assert receiver.accepted == []

"""The response plane dead-letters what it cannot decode and goes on (issue 17 item 3).

Measured before: a malformed record on the anomalies topic raised out of ``decode_anomaly``
and crash-looped the service (the record was read again after every restart); one on the
incidents topic raised in the rebalance listener, so the plane never became ready, owned
no incident and paged nothing. Now each goes to the dead-letter topic with its reason and
source, is counted (``modelmedic_response_dead_letters_total{topic}``), and the plane goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from modelmedic.alerting import Alerter, build_sinks
from modelmedic.config import Settings, SinkSettings
from modelmedic.kafka import ensure_topics
from modelmedic.response.plane import ResponsePlane
from modelmedic.testing import AlertReceiver
from fixtures_kafka import produce, read_first, read_to_end
from test_response import anomaly, policy, publish

pytestmark = pytest.mark.integration

POISON_ANOMALY = b'{"id": 7, "model": "model-p0", "state": "firing"}'
POISON_INCIDENT = b'{"id": "inc-poison", "note": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
"""Nested in a field msgspec would skip, which it recurses into all the same (RecursionError)."""


def dead_letters(topic: str) -> float:
    return REGISTRY.get_sample_value("modelmedic_response_dead_letters_total", {"topic": topic}) or 0.0


@contextlib.asynccontextmanager
async def running(settings: Settings, receiver: AlertReceiver) -> AsyncIterator[tuple[ResponsePlane, asyncio.Task]]:
    """A response plane paging the receiver's PagerDuty, ready (it took its partitions over)."""
    sinks = build_sinks([SinkSettings(type="pagerduty", url=receiver.pagerduty_url, routing_key="R" * 32)])
    plane = ResponsePlane(settings, Alerter(sinks), policy=policy("models", auto_remediate=False))
    stop = asyncio.Event()
    task = asyncio.create_task(plane.run(stop))
    try:
        ready = asyncio.ensure_future(plane.ready.wait())
        await asyncio.wait([task, ready], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        assert plane.ready.is_set(), f"the plane never became ready (run ended: {task.done()})"
        yield plane, task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_a_poison_anomaly_record_is_dead_lettered_and_the_next_one_pages(settings, receiver):
    await ensure_topics(settings.kafka)
    before = dead_letters("anomalies")
    async with running(settings, receiver) as (plane, task):
        await produce(settings, settings.kafka.topics.anomalies, [(b"model-p0", POISON_ANOMALY)])
        await publish(settings, anomaly("model-p0"))  # same key, same partition: read after the poison
        [page] = await receiver.wait_for(kind="pagerduty", count=1)
        assert "model-p0" in str(page.json)
        assert not task.done(), "the plane stopped on the poison record"
    [dead] = await read_first(settings, settings.kafka.topics.dlq, 1)
    headers = {k: v.decode() for k, v in dead.headers}
    assert dead.value == POISON_ANOMALY and dead.key == b"model-p0"
    assert "invalid anomaly event: Expected `str`, got `int` - at `$.id`" in headers["reason"], headers
    assert headers["source.topic"] == settings.kafka.topics.anomalies
    [source] = [r for r in await read_to_end(settings, settings.kafka.topics.anomalies)
                if (r.partition, r.offset) == (int(headers["source.partition"]), int(headers["source.offset"]))]
    assert source.value == POISON_ANOMALY
    assert dead_letters("anomalies") == before + 1


async def test_a_poison_incident_record_is_dead_lettered_and_the_plane_owns_the_rest(settings, receiver):
    await ensure_topics(settings.kafka)
    async with running(settings, receiver):
        await publish(settings, anomaly("model-i1"))
        await receiver.wait_for(kind="pagerduty", count=1)  # its incident is in the incidents topic
    await produce(settings, settings.kafka.topics.incidents, [(b"inc-poison", POISON_INCIDENT)])
    before = dead_letters("incidents")
    async with running(settings, receiver) as (plane, task):  # before: never ready
        assert [i.model for i in plane.book.by_id.values()] == ["model-i1"]  # taken over, still open
        await publish(settings, anomaly("model-i2"))
        pages = await receiver.wait_for(kind="pagerduty", count=2, timeout=15)
        assert "model-i2" in str(pages[-1].json)
        assert not task.done()
    [dead] = await read_first(settings, settings.kafka.topics.dlq, 1)
    headers = {k: v.decode() for k, v in dead.headers}
    assert dead.key == b"inc-poison" and dead.value == POISON_INCIDENT
    assert "invalid incident event: JSON nested deeper than this service decodes" in headers["reason"], headers
    assert headers["source.topic"] == settings.kafka.topics.incidents
    assert dead_letters("incidents") == before + 1

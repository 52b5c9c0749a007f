"""A commit refused by a rebalance (CommitFailedError) does not stop the response plane: it rejoins and goes on."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import CommitFailedError
from prometheus_client import REGISTRY

from modelmedic.alerting import Alerter, build_sinks
from modelmedic.config import SinkSettings
from modelmedic.kafka import consumer as make_consumer
from modelmedic.kafka import ensure_topics
from modelmedic.response.plane import ResponsePlane
from test_response import anomaly, policy, publish, until

pytestmark = pytest.mark.integration


def commit_failures() -> float:
    return REGISTRY.get_sample_value("modelmedic_commit_failures_total", {"plane": "response"}) or 0.0


async def test_a_commit_failed_by_a_rebalance_is_survived(settings, receiver):
    """The real consumer on real Kafka, whose first commit fails as aiokafka's does when the group
    rebalanced under it (seen in 1 of 4 two-process runs: the plane died)."""
    refused: list[str] = []

    def consumer_factory(kafka, **options):
        consumer = make_consumer(kafka, **options)
        commit = consumer.commit

        async def first_commit_refused(*args, **kwargs):
            if not refused:
                refused.append("once")
                raise CommitFailedError("Commit cannot be completed since the group has already rebalanced")
            return await commit(*args, **kwargs)

        consumer.commit = first_commit_refused
        return consumer

    await ensure_topics(settings.kafka)
    before = commit_failures()
    sinks = build_sinks([SinkSettings(type="pagerduty", url=receiver.pagerduty_url, routing_key="R" * 32)])
    plane = ResponsePlane(settings, Alerter(sinks), policy=policy("models", auto_remediate=False),
                          consumer_factory=consumer_factory)
    stop = asyncio.Event()
    task = asyncio.create_task(plane.run(stop))
    try:
        await asyncio.wait_for(plane.ready.wait(), 30)
        await publish(settings, anomaly("model-c1"))
        await receiver.wait_for(kind="pagerduty", count=1)
        await until(lambda: refused or task.done())
        await publish(settings, anomaly("model-c2"))
        await receiver.wait_for(kind="pagerduty", count=2, timeout=15)
        assert not task.done(), "the plane is still running after the refused commit"
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert commit_failures() == before + 1

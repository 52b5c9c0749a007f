"""What an idle replica asks of Kafka: the response plane's group heartbeats at least every second, and the
followers (audit tail, silences) let the broker hold a fetch for FOLLOWER_HOLD_MS (docs/benchmarks.md:
318 -> 196 requests in 30 s of an idle ``modelmedic run``)."""

from __future__ import annotations

import asyncio

import pytest

from modelmedic.alerting import Alerter
from modelmedic.config import load_settings
from modelmedic.kafka import FOLLOWER_HOLD_MS, IDLE_WAIT_MS, follower
from modelmedic.response.plane import HEARTBEAT_FLOOR_MS, ResponsePlane


class _Built(Exception):
    """Raised by the fake consumer factory: the options are all this test needs."""


@pytest.mark.parametrize(("setting", "expected"), [(300, HEARTBEAT_FLOOR_MS), (3000, 3000)])
async def test_the_response_group_heartbeats_no_more_often_than_the_floor(setting: int, expected: int) -> None:
    seen: dict = {}

    def consumer_factory(kafka, **options):
        seen.update(options)
        raise _Built

    settings = load_settings(kafka={"heartbeat_interval_ms": setting})
    plane = ResponsePlane(settings, Alerter([]), consumer_factory=consumer_factory,
                          producer_factory=lambda kafka, **options: object())
    with pytest.raises(_Built):
        await plane.run(asyncio.Event(), topics_checked=True)
    assert seen["heartbeat_interval_ms"] == expected and seen["group_id"] == plane.group_id


async def test_a_follower_lets_the_broker_hold_its_fetch_longer_than_its_loop_turn() -> None:
    c = follower(load_settings().kafka)  # not started: no broker needed
    try:
        assert c._fetch_max_wait_ms == FOLLOWER_HOLD_MS > IDLE_WAIT_MS  # noqa: SLF001 - aiokafka keeps the option so
        assert c._group_id is None  # noqa: SLF001
    finally:
        await c.stop()

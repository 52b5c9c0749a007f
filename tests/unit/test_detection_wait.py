"""The detection loop turns every ``kafka.fetch_timeout_ms`` only while a partition carries live traffic.

A quiet live partition's windows close on the wall clock (``windows.idle_close_ms``), so
its loop must turn often; a drained backlog (records stamped long before they arrived)
or an empty topic owes nothing to the wall clock but checkpoints, and there the loop
waits as long as the other consumers (``IDLE_WAIT_MS``). Records end a wait at once
either way. Turning every 200 ms was a quarter of a drained replica's idle CPU.
"""

from __future__ import annotations

import time

from aiokafka import TopicPartition

from modelmedic.config import load_settings
from modelmedic.events import InferenceEvent, encode
from modelmedic.kafka import IDLE_WAIT_MS
from modelmedic.testing import Record, offline_plane

from test_judge_batching import _batch


def _live_batch(topic: str) -> dict:
    """Ten records of one model stamped now (live traffic)."""
    now_ms = int(time.time() * 1000)
    records = [Record(topic, 0, i, encode(InferenceEvent("m0", "1", "production", f"r{i}", now_ms - 10 * (10 - i),
                                                         5.0, True, 0.5))) for i in range(10)]
    return {TopicPartition(topic, 0): records}


async def test_a_drained_backlog_or_an_empty_topic_waits_a_second_live_traffic_the_fetch_timeout() -> None:
    settings = load_settings()
    settings = settings.model_copy(update={"detection": settings.detection.model_copy(
        update={"quality": False, "judge_batch_ms": 0})})
    fetch_timeout_ms = settings.kafka.fetch_timeout_ms
    assert fetch_timeout_ms < IDLE_WAIT_MS
    empty = offline_plane(settings, 1)
    assert empty._wait_ms() == IDLE_WAIT_MS  # no record yet
    history = offline_plane(settings, 1)
    await history._process(_batch(history, 0, 10))  # stamped in January: a replay of history
    assert history._wait_ms() == IDLE_WAIT_MS
    live = offline_plane(settings, 1)
    await live._process(_live_batch(settings.kafka.topics.inference))
    assert live._wait_ms() == fetch_timeout_ms

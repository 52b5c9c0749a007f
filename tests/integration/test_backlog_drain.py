"""A backlog of a realistic fleet is drained at default settings without leaving the group (issue 13 item 5).

Measured before: draining a two-day backlog, one batch closed about a million series-windows
in one event-loop turn, heartbeats stopped, the group rebalanced under the plane and its
commit was refused. Here hundreds of models' hours of traffic wait in Kafka before the
plane starts; it drains them with the settings a user gets, the loop never stalls, the
plane is assigned its partitions once (never rebalanced away), no commit is refused, and
the committed offsets reach the end of the topic but for the windows still open.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import REGISTRY

from load.fleet import generate, realistic
from modelmedic.detection.plane import DetectionPlane
from modelmedic.kafka import consumer, ensure_topics, producer, topic_partitions
from modelmedic.testing.looplag import LoopLag

pytestmark = pytest.mark.integration
START_MS = 1_767_225_600_000
MODELS = 200
SPAN_S = 2 * 3600


def commit_failures() -> float:
    return REGISTRY.get_sample_value("modelmedic_commit_failures_total", {"plane": "detection"}) or 0.0


async def produce_backlog(settings) -> int:
    """``SPAN_S`` of a realistic fleet of ``MODELS`` sparse models (0.005-0.1 req/s each, canaries and
    shadows: ~285 series; ~100,000 records), in whole batches per partition keyed by model as a producer would."""
    spec = realistic(MODELS, seed=11, rate_range=(0.005, 0.1))
    p = producer(settings.kafka, linger_ms=5)
    await p.start()
    sent = 0
    try:
        topic = settings.kafka.topics.inference
        partitions = sorted(await p.partitions_for(topic))
        choose, of, batches, pending = DefaultPartitioner(), {}, {}, []
        for key, value in generate(spec, (), START_MS, SPAN_S, chunk_s=60.0):
            partition = of.get(key)
            if partition is None:
                partition = of[key] = choose(key, partitions, partitions)
            batch = batches.get(partition) or batches.setdefault(partition, p.create_batch())
            if batch.append(timestamp=None, key=key, value=value) is None:  # full: send it, start the next
                pending.append(await p.send_batch(batch, topic, partition=partition))
                batches[partition] = p.create_batch()
                batches[partition].append(timestamp=None, key=key, value=value)
            sent += 1
        for partition, batch in batches.items():
            pending.append(await p.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*pending)
    finally:
        await p.stop()
    return sent


async def committed_offsets(settings, group_id: str) -> tuple[dict, dict]:
    """(the group's committed offsets, the end offsets) of the inference topic's partitions."""
    c = consumer(settings.kafka, group_id=group_id)
    await c.start()
    try:
        tps = await topic_partitions(c, settings.kafka.topics.inference)
        ends = await c.end_offsets(tps)
        return {tp: await c.committed(tp) for tp in tps}, ends
    finally:
        await c.stop()


async def test_a_backlog_of_hundreds_of_models_is_drained_without_leaving_the_group(settings):
    await ensure_topics(settings.kafka)
    started = time.perf_counter()
    n = await produce_backlog(settings)
    produced_s = time.perf_counter() - started
    failures = commit_failures()
    plane = DetectionPlane(settings)  # the defaults: 1 s windows, 20,000 records a poll
    assignments = []
    restore = plane._restore

    async def counted(partitions: list[int]) -> None:
        assignments.append(partitions)
        await restore(partitions)

    plane._restore = counted  # type: ignore[method-assign]
    started = time.perf_counter()
    async with LoopLag() as lag:
        await asyncio.wait_for(plane.run(asyncio.Event(), max_records=n), 120)
    drained_s = time.perf_counter() - started
    committed, ends = await committed_offsets(settings, plane.group_id)
    print(f"\n{n} records of {MODELS} models over {SPAN_S} s of event time: produced in {produced_s:.1f} s, drained "
          f"in {drained_s:.1f} s; longest loop stall {lag.longest:.3f} s; "
          f"{sum(len(p.windows.keys) for p in plane.parts.values())} series")
    assert plane.processed == n
    assert assignments == [[0, 1, 2]], f"rebalanced while draining: {assignments}"
    assert commit_failures() == failures
    for tp, end in ends.items():
        state = plane.parts[tp.partition]
        assert state.next_offset == end
        # Committed: the first record of the windows still open (a restart re-reads those), a few seconds' worth.
        assert committed[tp] == state.windows.resume_offset(state.next_offset) > end - 100, (committed, ends)
    # A quarter of aiokafka's 10 s session timeout, on a loaded 2-core machine (full GCs included).
    assert lag.longest < 2.5, f"the loop stalled {lag.longest:.2f} s"

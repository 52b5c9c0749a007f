"""The detection plane under hostile input and faults, on real Kafka (issue 17; issue 13 item 5).

Nothing on a topic runs code in the service, no single record stops it, and a backlog
never knocks it out of its consumer group.
"""

from __future__ import annotations

import asyncio
import zlib
from pathlib import Path

import pytest

from fixtures_kafka import produce, read_to_end
from fixtures_snapshots import code_running_pickle
from load.fleet import FleetSpec, generate
from modelmedic import metrics
from modelmedic.config import Settings
from modelmedic.detection.plane import DetectionPlane
from modelmedic.events import InferenceEvent, LabelEvent, encode
from modelmedic.kafka import ensure_topics

pytestmark = pytest.mark.integration
START_MS = 1_767_225_600_000


async def _run_until(plane: DetectionPlane, done, timeout: float = 60.0) -> None:
    """Run ``plane`` until ``done()`` holds (checked as records are processed), then stop it cleanly."""
    stop = asyncio.Event()
    task = asyncio.create_task(plane.run(stop))
    try:
        async with asyncio.timeout(timeout):
            while not done():
                if task.done():
                    task.result()  # the plane stopped on its own: raise what stopped it
                    raise AssertionError("the detection plane stopped before the test's condition held")
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_a_pickle_on_the_state_topic_is_never_loaded(settings: Settings, tmp_path: Path) -> None:
    """Issue 17 item 1: a pickle whose __reduce__ runs a command, under every partition's
    snapshot key, ran the command (as root) on start and left the service never ready."""
    await ensure_topics(settings.kafka)
    marker = tmp_path / "pwned"
    plane = DetectionPlane(settings)
    evil = zlib.compress(code_running_pickle(marker))
    await produce(settings, settings.kafka.topics.state,
                [(plane._snapshot_key(p), evil) for p in range(settings.kafka.partitions)])
    records = list(generate(FleetSpec(models=4, rate=20, seed=3), [], START_MS, 5))
    await produce(settings, settings.kafka.topics.inference, records)
    rejected = metrics.SNAPSHOTS_REJECTED.labels("format")._value.get()

    await _run_until(plane, lambda: plane.processed >= len(records))
    assert plane.ready.is_set() and sorted(plane.parts) == list(range(settings.kafka.partitions))
    assert metrics.SNAPSHOTS_REJECTED.labels("format")._value.get() - rejected == settings.kafka.partitions
    assert not marker.exists()


async def test_a_snapshot_written_on_kafka_restores_the_next_owner(settings: Settings) -> None:
    """The data format round trip on real Kafka: a second plane of the group starts from the first's state."""
    await ensure_topics(settings.kafka)
    records = list(generate(FleetSpec(models=4, rate=20, seed=3), [], START_MS, 40))
    await produce(settings, settings.kafka.topics.inference, records)
    first = DetectionPlane(settings)
    await _run_until(first, lambda: first.processed >= len(records))
    series = {p: set(state.windows.slot_of) for p, state in first.parts.items()}
    assert sum(map(len, series.values())) == 4

    rejected = sum(sample.value for sample in metrics.SNAPSHOTS_REJECTED.collect()[0].samples
                   if sample.name.endswith("_total"))
    second = DetectionPlane(settings)
    await _run_until(second, second.ready.is_set)
    assert {p: set(state.windows.slot_of) for p, state in second.parts.items()} == series
    assert sum(sample.value for sample in metrics.SNAPSHOTS_REJECTED.collect()[0].samples
               if sample.name.endswith("_total")) == rejected


DEEP = b"[" * 30_000 + b"]" * 30_000
"""64 KiB at most, 30,000 levels deep: msgspec recursed until RecursionError, which nothing caught."""


async def test_a_record_nested_30000_levels_deep_goes_to_the_dead_letter_topic_and_the_next_one_counts(
        settings: Settings) -> None:
    """Issue 17 item 3: one such inference or label record made the service exit 1, and again on restart."""
    await ensure_topics(settings.kafka)
    inference, labels = settings.kafka.topics.inference, settings.kafka.topics.labels
    poison_inference = b'{"x":' + DEEP + b',"model":"m","version":"1","role":"production","request_id":"r",' \
                       b'"ts":1767225600000,"latency_ms":-1,"ok":true}'
    poison_label = b'{"x":' + DEEP + b',"model":"m","request_id":"r","ts":1767225600000,"label":1}'
    good = [encode(InferenceEvent("m", "1", "production", f"r{i}", START_MS + i, 5.0, True, 0.5)) for i in range(10)]
    await produce(settings, inference, [(b"m", poison_inference)] + [(b"m", value) for value in good])
    await produce(settings, labels, [(b"m", poison_label), (b"m", encode(LabelEvent("m", "r9", START_MS + 20, 0.5)))])
    ok = metrics.EVENTS.labels("ok")._value.get()
    depth = metrics.DEAD_LETTERS.labels("depth")._value.get()

    plane = DetectionPlane(settings)
    await _run_until(plane, lambda: plane.processed >= len(good) + 3)  # the good label is processed too
    assert metrics.EVENTS.labels("ok")._value.get() - ok == len(good) + 1
    assert metrics.DEAD_LETTERS.labels("depth")._value.get() - depth == 2
    [state] = [state for state in plane.parts.values() if state.windows.slot_of]
    assert state.next_offset == len(good) + 1 and state.label_next == 2
    dead = await read_to_end(settings, settings.kafka.topics.dlq)  # the plane stopped: every send was flushed
    assert sorted(dict(r.headers)["source.topic"].decode() for r in dead) == sorted([inference, labels])
    assert all("nested deeper than this service decodes" in dict(r.headers)["reason"].decode() for r in dead)
    assert sorted(r.value for r in dead) == sorted([poison_inference, poison_label])

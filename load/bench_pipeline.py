"""Throughput of the detection plane against its floor and against faust, in one run on one broker.

    python load/bench_pipeline.py                         # starts its own Kafka, 500k events
    python load/bench_pipeline.py --events 200000 --bootstrap 127.0.0.1:9092

Fills a fresh topic with fleet traffic (``load/fleet.py``), then drains the whole topic
with each consumer below, each in a fresh consumer group, sequentially in this process:

(a) raw aiokafka ``getmany``: the floor, nothing but fetching (same consumer settings
    as the detection plane: ``modelmedic.kafka.consumer``);
(b) the detection plane run as ``modelmedic.detection.drain`` runs it: decode, windows,
    detectors, snapshots (its state topic is fresh per run, so it never resumes an
    earlier run's snapshot);
(c) a plain faust-streaming agent decoding every record with the same msgspec decoder.

(a) and (b) alternate for ``--rounds`` rounds, then (c) runs once (it is slow): the
spread between rounds is the machine's noise (the broker shares the cores; other work
on the machine shows up there too).

Rates per run: ``total`` from the start of the call to the N-th record (connecting,
joining the group, restoring snapshots, starting the faust app); ``steady`` from the
moment the consumer holds its partitions (for faust, which does more after assignment:
from its first record) to the N-th; and records per CPU-second of this process over the
steady part, which other work on a shared machine disturbs far less than wall time.
Ratios use the steady part: the cost per record is what scales; start-up is paid once.

All three run with the garbage-collector settings ``modelmedic run`` uses
(``modelmedic.app.tune_gc``), or with Python's defaults under ``--default-gc``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import faust
import numpy as np
from aiokafka import ConsumerRebalanceListener, TopicPartition

from modelmedic.config import KafkaSettings, Settings, Topics
from modelmedic.detection.plane import DetectionPlane
from modelmedic.events import decode_inference
from modelmedic.kafka import consumer
from modelmedic.app import tune_gc

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from deploy.local import kafka as local_kafka  # noqa: E402
from load.fleet import FleetSpec, add_backlog_arguments, backlog_spec, fill_topic  # noqa: E402

MAX_POLL_RECORDS = KafkaSettings.model_fields["max_poll_records"].default
"""Records per poll for all three consumers (the detection plane's default)."""
PARTITION_FETCH_BYTES = 1024 * 1024
"""Per-partition fetch size for all three consumers (the detection plane's setting)."""
RAW, DETECTION, FAUST = "(a) aiokafka getmany", "(b) detection plane", "(c) faust agent"


@dataclass(frozen=True)
class Mark:
    """A moment on both clocks: wall (what a user waits) and this process's CPU (what it costs
    us, robust to other work on a shared machine; the broker's CPU is not in it)."""

    wall: float
    cpu: float


def mark() -> Mark:
    return Mark(time.perf_counter(), time.process_time())


@dataclass(frozen=True)
class Timing:
    """When a drain started, when its steady part began and when the N-th record was done."""

    name: str
    records: int
    started: Mark
    first: Mark
    first_records: int
    """Records already counted at ``first`` (1 when ``first`` is the first record)."""
    done: Mark

    @property
    def total_rate(self) -> float:
        return self.records / (self.done.wall - self.started.wall)

    @property
    def steady_rate(self) -> float:
        return (self.records - self.first_records) / (self.done.wall - self.first.wall)

    @property
    def cpu_rate(self) -> float:
        """Records per CPU-second of this process over the steady part."""
        return (self.records - self.first_records) / max(self.done.cpu - self.first.cpu, 1e-9)


def settings_for(bootstrap: str, topic: str) -> Settings:
    """Settings reading ``topic``, with output and state topics of their own (a fresh run each time)."""
    run = uuid.uuid4().hex[:8]
    topics = Topics(
        inference=topic, labels=f"bench.labels.{run}", anomalies=f"bench.anomalies.{run}",
        incidents=f"bench.incidents.{run}", state=f"bench.state.{run}", dlq=f"bench.dlq.{run}",
    )
    return Settings(kafka=KafkaSettings(
        bootstrap_servers=bootstrap, group_id=f"bench-{run}", topics=topics, max_poll_records=MAX_POLL_RECORDS,
        **local_kafka.SINGLE_BROKER,
    ))


class _MarkAssigned(ConsumerRebalanceListener):
    """Notes when the consumer got its partitions: the start of the steady drain."""

    def __init__(self) -> None:
        self.at = mark()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pass

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.at = mark()


async def raw_drain(bootstrap: str, topic: str, n: int) -> Timing:
    """(a) ``getmany`` until N records, nothing else: what any consumer must pay."""
    settings = settings_for(bootstrap, topic).kafka
    started = mark()
    c = consumer(settings, group_id=settings.group_id, max_partition_fetch_bytes=PARTITION_FETCH_BYTES)
    assigned = _MarkAssigned()
    await c.start()
    try:
        c.subscribe([topic], listener=assigned)
        seen = 0
        while seen < n:
            batch = await c.getmany(timeout_ms=1000, max_records=MAX_POLL_RECORDS)
            seen += sum(len(records) for records in batch.values())
        return Timing(RAW, seen, started, assigned.at, 0, mark())
    finally:
        await c.stop()


class _StampedEvent(asyncio.Event):
    """An event that notes when it was set (awaiting it would add the loop's scheduling delay)."""

    at = Mark(0.0, 0.0)

    def set(self) -> None:
        self.at = mark()
        super().set()


async def detection_drain(bootstrap: str, topic: str, n: int) -> Timing:
    """(b) The detection plane until N records, exactly as ``modelmedic.detection.drain`` runs
    it; the plane is built here so that its ``ready`` event (partitions assigned and
    restored) marks the start of the steady drain, and the batch holding the N-th record
    its end. Periodic snapshots (every ``snapshot_interval_s``) fall inside and count."""
    plane = DetectionPlane(settings_for(bootstrap, topic))
    plane.ready = _StampedEvent()
    process, done = plane._process, []

    async def process_and_stamp(batch: dict) -> None:
        # Stamp the N-th record like (a) does: before the final checkpoint and the
        # consumer's and producer's stop, which (a) does not pay either.
        await process(batch)
        if not done and plane.processed >= n:
            done.append(mark())

    plane._process = process_and_stamp
    started = mark()
    await plane.run(asyncio.Event(), max_records=n)
    return Timing(DETECTION, plane.processed, started, plane.ready.at, 0, done[0])


async def faust_drain(bootstrap: str, topic: str, n: int) -> Timing:
    """(c) A plain faust agent: ``async for value in stream`` and the same decode per record."""
    app = faust.App(
        f"bench-faust-{uuid.uuid4().hex[:8]}", broker=f"kafka://{bootstrap}", store="memory://",
        consumer_auto_offset_reset="earliest", broker_max_poll_records=MAX_POLL_RECORDS,
        consumer_max_fetch_size=PARTITION_FETCH_BYTES, web_enabled=False,
    )
    source = app.topic(topic, key_serializer="raw", value_serializer="raw")
    done = asyncio.Event()
    seen: list[Mark] = []

    @app.agent(source)
    async def decode(stream: faust.StreamT) -> None:
        count = 0
        async for value in stream:
            decode_inference(value)
            count += 1
            if count == 1 or count == n:
                seen.append(mark())
            if count == n:
                done.set()

    started = mark()
    await app.start()
    try:
        await done.wait()
    finally:
        await app.stop()
    return Timing(FAUST, n, started, seen[0], 1, seen[-1])


def _report(timings: list[Timing]) -> None:
    """The table for docs/benchmarks.md, the spread between rounds and the ratios.

    Ratios pair runs that ran next to each other (round i's (a) and (b); the last (b)
    and (c)), so a burst of other work on the machine skews both sides alike.
    """
    print("\n| run | records | total events/s | steady events/s | events per CPU-second |\n|---|---:|---:|---:|---:|")
    for t in timings:
        print(f"| {t.name} | {t.records} | {t.total_rate:,.0f} | {t.steady_rate:,.0f} | {t.cpu_rate:,.0f} |")
    rounds = {name: [t for t in timings if t.name == name] for name in (RAW, DETECTION, FAUST)}
    for name, runs in rounds.items():
        if len(runs) > 1:
            wall, cpu = [t.steady_rate for t in runs], [t.cpu_rate for t in runs]
            print(f"noise {name}: rounds differ by {max(wall) / min(wall) - 1:.0%} (wall), {max(cpu) / min(cpu) - 1:.0%} (CPU)")
    for i, (a, b) in enumerate(zip(rounds[RAW], rounds[DETECTION]), 1):
        print(f"round {i}: b/a = {b.steady_rate / a.steady_rate:.2f} (wall), {b.cpu_rate / a.cpu_rate:.2f} (CPU)")
    for b, c in zip(rounds[DETECTION][-1:], rounds[FAUST]):
        print(f"last (b) and (c): b/c = {b.steady_rate / c.steady_rate:.1f} (wall), {b.cpu_rate / c.cpu_rate:.1f} (CPU)")


async def bench(bootstrap: str, n: int, spec: FleetSpec, rounds: int) -> list[Timing]:
    """Fill one topic, warm the broker up with one drain, then drain the topic with (a) and
    (b) alternately for ``rounds`` rounds, and with (c) once."""
    topic = f"bench.inference.{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    await fill_topic(bootstrap, topic, n, spec)
    print(f"filled {topic} with {n} events in {time.perf_counter() - t0:.1f}s", flush=True)
    warm_up = await raw_drain(bootstrap, topic, n)
    print(f"warm-up drain (not counted: the broker's first read of a topic is slower): "
          f"{warm_up.steady_rate:,.0f} events/s", flush=True)
    runs: list[Callable[[str, str, int], Awaitable[Timing]]] = [raw_drain, detection_drain] * rounds
    runs.append(faust_drain)
    timings = []
    for run in runs:
        timing = await run(bootstrap, topic, n)
        print(f"{timing.name}: {timing.steady_rate:,.0f} events/s steady, {timing.total_rate:,.0f} total, "
              f"{timing.cpu_rate:,.0f} per CPU-second (load average {os.getloadavg()[0]:.1f})", flush=True)
        timings.append(timing)
    return timings


LIVE_INCIDENTS = ("latency_spike:model-001@40+20", "throughput_collapse:model-004@45+140", "error_burst:model-007@50+20",
                  "bad_version:model-010@55+20", "overload:model-013@60+20")
"""Incidents of the live close -> alert scenario: after the detectors' 30-window grace, on distinct models (the
collapse longer than a throughput drop's minimum duration, ``detection.throughput_sustain_s``)."""


async def close_to_alert(bootstrap: str, spec: FleetSpec, duration_s: float) -> list[float]:
    """Milliseconds from a window's close to its firing alert arriving at a webhook.

    The whole service (both planes, ``modelmedic.app.Service``) runs here with one
    webhook sink on ``modelmedic.testing``'s receiver and consumes the fleet's traffic paced
    in real time (``load/fleet.py`` ``run_live``) with :data:`LIVE_INCIDENTS`. An anomaly
    record carries ``closed_at_ms`` (wall clock when its window closed); an alert's evidence
    names its anomaly (``anomaly_id``); the receiver stamps the arrival (wall clock).
    """
    from load.fleet import Incident, producer_for, run_live
    from modelmedic.testing import AlertReceiver
    from modelmedic.config import HttpSettings, SinkSettings
    from modelmedic.app import Service

    with AlertReceiver() as receiver:
        base = settings_for(bootstrap, f"bench.live.{uuid.uuid4().hex[:8]}")
        settings = base.model_copy(update={"sinks": [SinkSettings(type="webhook", url=receiver.webhook_url)],
                                           "http": HttpSettings(port=0)})
        service = Service(settings)
        task = asyncio.create_task(service.run())
        await asyncio.wait_for(asyncio.gather(service.detection.ready.wait(), service.response.ready.wait()), 60)
        producer = producer_for(bootstrap)
        await producer.start()
        try:
            await run_live(producer, settings.kafka.topics.inference, spec, [Incident.parse(i) for i in LIVE_INCIDENTS],
                           duration_s)
        finally:
            await producer.stop()
        await asyncio.sleep(10)  # the last windows close (lateness, idle close) and their alerts go out
        service.stop.set()
        await asyncio.wait_for(task, 60)
        closed_at = {a.id: a.closed_at_ms for a in service.detection.published if a.state == "firing"}
        latencies = []
        for r in receiver.accepted:
            alert = r.json["alert"] if r.kind == "webhook" else None
            if alert and alert["status"] == "firing" and alert["escalation_level"] == 0:
                aid = alert["evidence"].get("anomaly_id")
                if aid in closed_at:
                    latencies.append(r.received_at * 1000 - closed_at[aid])
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_backlog_arguments(parser, events=500_000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (a) and (b); their spread is the noise")
    parser.add_argument("--default-gc", action="store_true",
                        help="keep Python's default garbage-collector settings instead of those of `modelmedic run`")
    parser.add_argument("--live-seconds", type=float, default=200.0,
                        help="length of the live close -> alert scenario (0: skip it)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    if not args.default_gc:
        tune_gc()  # for all three consumers alike: the interpreter `modelmedic run` gives the plane
    print(f"garbage collector: {'Python defaults' if args.default_gc else 'tuned as in modelmedic run'} "
          f"(thresholds {gc.get_threshold()})", flush=True)
    spec = backlog_spec(args)
    workdir = None if args.bootstrap else tempfile.mkdtemp(prefix="modelmedic-bench-kafka-")
    try:
        bootstrap = args.bootstrap or local_kafka.start(workdir, partitions=6).bootstrap
        print(f"broker {bootstrap}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
        _report(asyncio.run(bench(bootstrap, args.events, spec, args.rounds)))
        if args.live_seconds > 0:
            ms = sorted(asyncio.run(close_to_alert(bootstrap, spec, args.live_seconds)))
            print(f"\nwindow close -> firing alert at the webhook: {len(ms)} alerts, "
                  + (f"p50 {np.percentile(ms, 50):.0f} ms, p99 {np.percentile(ms, 99):.0f} ms, max {ms[-1]:.0f} ms"
                     if ms else "none arrived"), flush=True)
    finally:
        if workdir is not None:
            local_kafka.stop(workdir)
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The detection plane's own CPU per event, without Kafka: where the hot path's time goes.

    .venv/bin/python load/bench_plane.py [--events 300000] [--models 20] [--no-quality] [--breakdown]

Builds the simulated fleet's records in memory (``load/fleet.py``, keyed and partitioned
as the producer does), cuts them into batches the way a catching-up consumer gets them
(two partitions per poll, ``--per-partition`` records each) and feeds them to
``DetectionPlane._process`` with a fake consumer and producer: decode, windows, the
quality monitor, closing and judging, everything but the fetch. Prints the CPU time per
event, the minimum of ``--rounds`` fresh planes (the machine's noise only ever adds).
``--breakdown`` also times the plane's steps (the timers add ~0.3 us per call to the
steps called per sampled request, so the parts sum to more than the whole), and the
judge per round: its rounds (one per window of event time, each partition's windows side
by side), their series, and each family's bank's CPU a round. Most of a round's cost is
numpy's per-call overhead (``--models 200 --rate 5``, the same events a second in ten times
the series, costs well under twice as much a round), so with few series the judge's cost
follows the event time drained, not the events.

``load/bench_pipeline.py`` measures the plane against the fetch on a real broker; this
one isolates the plane, so a change to it shows up here at a few percent where the
broker's noise would hide it. The offline plane is ``modelmedic.testing``'s, which the
unit tests that drive ``DetectionPlane._process`` use too.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import inspect
import itertools
import sys
import time
from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.partitioner import DefaultPartitioner

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from load.fleet import FleetSpec, generate  # noqa: E402
from modelmedic.detection import columns, judge, quality, windows
from modelmedic.detection import plane as detection  # noqa: E402
from modelmedic.config import Settings, load_settings  # noqa: E402
from modelmedic.detection.quality import QualityMonitor  # noqa: E402
from modelmedic.app import tune_gc  # noqa: E402
from modelmedic.testing import FakeConsumer, Record, offline_plane  # noqa: E402

T0 = 1_767_225_600_000


def fleet_batches(events: int, spec: FleetSpec, partitions: int, per_partition: int) -> list[dict]:
    """The fleet's first ``events`` records, as a catching-up consumer's polls."""
    by_partition: dict[int, list[Record]] = {p: [] for p in range(partitions)}
    choose, ids = DefaultPartitioner(), list(range(partitions))
    for key, value in itertools.islice(generate(spec, (), T0, None), events):
        p = choose(key, ids, ids)
        by_partition[p].append(Record("inference", p, len(by_partition[p]), value, key))
    batches, at, order = [], dict.fromkeys(by_partition, 0), itertools.cycle(ids)
    while any(at[p] < len(records) for p, records in by_partition.items()):
        batch = {}
        for p in (next(order), next(order)):
            chunk = by_partition[p][at[p]:at[p] + per_partition]
            at[p] += len(chunk)
            if chunk:
                batch[TopicPartition("inference", p)] = chunk
        if batch:
            batches.append(batch)
    return batches


def _timed(counter: collections.Counter, name: str, owner: object, attribute: str) -> None:
    """Wrap ``owner.attribute`` to add its CPU time to ``counter[name]``."""
    inner = getattr(owner, attribute)
    static = isinstance(owner.__dict__.get(attribute), staticmethod)

    @functools.wraps(inner)
    def timed(*args, **kwargs):
        started = time.process_time()
        try:
            return inner(*args, **kwargs)
        finally:
            counter[name] += time.process_time() - started

    @functools.wraps(inner)
    async def timed_async(*args, **kwargs):
        # Nothing else runs on this loop during the benchmark, so the CPU time across the
        # coroutine's yields is its own.
        started = time.process_time()
        try:
            return await inner(*args, **kwargs)
        finally:
            counter[name] += time.process_time() - started

    wrapper = timed_async if inspect.iscoroutinefunction(inner) else timed
    setattr(owner, attribute, staticmethod(wrapper) if static else wrapper)


def _breakdown(counter: collections.Counter, per_round: collections.Counter) -> None:
    for name, owner, attribute in (
        ("decode", columns.RecordDecoder, "decode"), ("window update", windows.PartitionWindows, "add_columns"),
        ("quality monitor", detection.DetectionPlane, "_observe_quality"),
        ("window close", windows.PartitionWindows, "close"), ("quality poll", quality.QualityMonitor, "poll"),
        ("judge", judge.WindowJudge, "judge_in_turns"),
    ):
        _timed(counter, name, owner, attribute)
    inner = judge.WindowJudge._judge_rows

    @functools.wraps(inner)
    def counted(self: judge.WindowJudge, r: judge._Rows, size_ms: int) -> tuple:
        per_round["rounds"] += 1  # one call per round (or per step of a round wider than a loop turn's budget)
        per_round["series"] += r.slots.size
        return inner(self, r, size_ms)

    judge.WindowJudge._judge_rows = counted


def _time_banks(plane: detection.DetectionPlane, per_round: collections.Counter) -> None:
    """Time each family's bank on this plane's own instances (a bank calling its base class's
    ``score_learn`` is counted once)."""
    for family in plane.judge._families():
        _timed(per_round, f"bank {family.name}", family.bank, "score_learn")


def _print_rounds(per_round: collections.Counter, judge_seconds: float, planes: int) -> None:
    """The judge's rounds a plane and their series, and its and its banks' CPU a round."""
    n = max(per_round.pop("rounds"), 1)
    series = per_round.pop("series")
    banks = {name.removeprefix("bank "): seconds for name, seconds in per_round.items()}
    print(f"  judge: {n // planes:,} rounds a plane, {series / n:.1f} series a round, {judge_seconds / n * 1e6:.0f} us "
          f"of CPU a round, of which the banks {sum(banks.values()) / n * 1e6:.0f} ("
          + ", ".join(f"{name} {seconds / n * 1e6:.0f}" for name, seconds in banks.items()) + "; mean of all planes)")


async def run(batches: list[dict], settings: Settings, rounds: int, tail: bool = True,
              per_round: collections.Counter | None = None) -> float:
    """Minimum CPU seconds to process every batch with a fresh plane (``tail``: False judges without
    the latency tail family, to price it; ``per_round``: time each plane's banks into it)."""
    total = sum(len(records) for batch in batches for records in batch.values())
    best = float("inf")
    for _ in range(rounds):
        d = settings.detection
        # Catching up: every partition has the rest of the topic waiting behind this batch.
        plane = offline_plane(settings, 1 + max(tp.partition for batch in batches for tp in batch),
                              (lambda: QualityMonitor(settings.windows.size_ms, settings.quality,
                                                      label_sample_every=d.quality_sample_every)) if d.quality else None,
                              consumer=FakeConsumer(highwater=lambda tp: total))
        if not tail:
            plane.judge.tail = None
        if per_round is not None:
            _time_banks(plane, per_round)
        started = time.process_time()
        for batch in batches:
            await plane._process(batch)
        best = min(best, time.process_time() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--rate", type=float, default=50.0, help="events/s per model (event time)")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--per-partition", type=int, default=2_500, help="records per partition per poll")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-quality", action="store_true", help="without the quality monitor")
    parser.add_argument("--breakdown", action="store_true", help="also time the plane's steps")
    parser.add_argument("--price-tail", action="store_true",
                        help="also run without the latency tail family and print the ratio, rounds interleaved")
    args = parser.parse_args(argv)
    settings = load_settings()
    settings = settings.model_copy(update={
        "kafka": settings.kafka.model_copy(update={"topics": settings.kafka.topics.model_copy(update={"inference": "inference"})}),
        "detection": settings.detection.model_copy(update={"quality": not args.no_quality}),
    })
    spec = FleetSpec(models=args.models, rate=args.rate, canary_fraction=0.1, seed=1)
    batches = fleet_batches(args.events, spec, args.partitions, args.per_partition)
    counter: collections.Counter = collections.Counter()
    per_round: collections.Counter | None = collections.Counter() if args.breakdown else None
    if per_round is not None:
        _breakdown(counter, per_round)
    tune_gc()
    if args.price_tail:  # one round each in turn, so a busy spell of the machine hits both alike
        on = off = float("inf")
        for _ in range(args.rounds):
            on = min(on, asyncio.run(run(batches, settings, 1)))
            off = min(off, asyncio.run(run(batches, settings, 1, tail=False)))
        print(f"latency tail: {on / args.events * 1e6:.2f} us of CPU per event with it, "
              f"{off / args.events * 1e6:.2f} without ({on / off:.3f}x, min of {args.rounds} each)")
        return 0
    cpu = asyncio.run(run(batches, settings, args.rounds, per_round=per_round))
    print(f"detection plane without Kafka: {cpu / args.events * 1e6:.2f} us of CPU per event "
          f"({args.events:,} events, {len(batches)} polls, quality monitor {'off' if args.no_quality else 'on'}, "
          f"min of {args.rounds})")
    if args.breakdown:
        print("  " + ", ".join(f"{name} {seconds / (args.rounds * args.events) * 1e6:.2f}"
                               for name, seconds in counter.items()) + " (us per event, mean of all rounds)")
        _print_rounds(per_round, counter["judge"], args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

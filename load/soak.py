"""Soak: the real ``modelmedic run`` under live fleet traffic for a long while; is it steady?

    python load/soak.py                          # 30 minutes, starts its own Kafka
    python load/soak.py --minutes 5 --every 5 --bootstrap 127.0.0.1:9092

    python load/soak.py --minutes 60 --warmup 35 --set quality.label_horizon_ms=1800000

Produces ``load/fleet.py``'s realistic mix (:func:`load.fleet.realistic`: log-uniform rates,
daily cycle, canaries, shadows) in real time to the inference topic, and its delayed labels
(30% of the answers, 5-30 minutes late) to the labels topic, while ``modelmedic run`` (a child
process, as ``load/chaos.py`` runs it, with ``--set`` applied to its config) consumes them. Every
``--every`` seconds it samples the service's resident memory (/proc), its CPU seconds, and from
its /metrics the consumer lag (``modelmedic_consumer_lag_records``), the event loop's lag
(``modelmedic_event_loop_lag_seconds``), the records consumed and the entries of the quality
monitor's joins (``modelmedic_quality_join_entries``); one line per sample.

The verdict reads the samples after ``--warmup`` minutes (baselines and per-series state
fill up first): memory is flat when its least-squares slope would add less than
``FLAT_RSS_SHARE_PER_H`` of the mean RSS in an hour; lag does not grow when its slope over
the span adds less than one second of the measured traffic (or ``LAG_FLOOR`` records).

The joins fill for hours, not minutes: a sampled prediction whose label never comes waits
``quality.label_horizon_ms`` (6 h), and the ids of those that left wait until
``quality.label_max_pending`` newer ones push them out; memory grows with them until they are
full (bounded by their cap, printed). So the verdict also judges, by the same criterion, RSS less
what the joins take (:data:`JOIN_ENTRY_BYTES` an entry): growth beside them is not bounded by
them. Exit status 0 when memory is flat, or flat beside the joins, and lag does not grow; 1 otherwise.
After the verdict, the samples by span of ``--span`` minutes, a table row each (:func:`span_lines`): when memory
rose, which the verdict's one slope does not say.
A shorter horizon (``--set quality.label_horizon_ms=...``) shows the plateau within a run
(docs/benchmarks.md, "Soak").

``--heap-every M`` runs the service under tracemalloc (``PYTHONTRACEMALLOC``, ``--heap-frames`` frames: it
costs the service CPU and memory, so such a run's CPU and RSS figures are not comparable) and signals it
(SIGUSR1, ``modelmedic.app.dump_heap``) every M minutes for a heap snapshot; at the end it prints what grew
between the first snapshot after the warm-up and the last, by allocating line (and traceback).

``--alloc-every M`` signals the service the same way without tracing (nothing slower than a few ms): on
SIGUSR1 it writes its allocators' books (:mod:`modelmedic.allocators`: what pymalloc and malloc hold and
what of it is in use); the soak prints them and their trends after the warm-up, which tell memory the
allocators keep from live growth.

``--service-env NAME=VALUE`` sets an environment variable for the service alone (an allocator setting such as
``MALLOC_ARENA_MAX``, read by glibc when the process starts), so that two soaks side by side compare it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from deploy.local import kafka as kafka_stack  # noqa: E402
from deploy.local.procs import free_port  # noqa: E402
from load.chaos import ServiceProcess  # noqa: E402
from load.fleet import producer_for, realistic, run_live  # noqa: E402
from modelmedic.config import load_settings  # noqa: E402
from modelmedic.kafka import ensure_topics  # noqa: E402

FLAT_RSS_SHARE_PER_H = 0.05
"""Memory is 'flat' when its trend adds under 5% of the mean RSS per hour (a leak of a few MB/h
on a 300 MB process shows; the allocator's breathing does not)."""
LAG_FLOOR = 1000
"""Records of lag growth that never count as growth (one fetch of a busy partition)."""
GAUGES = {"modelmedic_consumer_lag_records": "lag", "modelmedic_event_loop_lag_seconds": "loop_lag_s"}
JOIN_ENTRY_BYTES = {"label": 280, "judged": 200, "canary": 280, "twin": 280}
"""About what an entry of each quality join (``modelmedic_quality_join_entries{join=...}``) takes with this
fleet's request ids (``1-`` and a hex counter): tracemalloc of a ``QualityMonitor`` fed 40,000 of them, a
pending prediction 206-230 B with its key, value and ordered-dict node (a decoded string label adds ~50)
and 28 B of its join's encoded chunks (``_Pending.chunks``: two references and ~11 B compressed), the id
of one that left the join 180-204 B (docs/benchmarks.md, "Soak"); a canary or twin entry is taken to cost
what a pending one does (same key, a value no longer)."""


@dataclass(frozen=True)
class Sample:
    """One look at the running service, ``t_s`` seconds into the soak."""

    t_s: float
    rss_mb: float
    cpu_s: float
    events: float
    lag: float
    loop_lag_s: float
    joins: float = 0.0
    """Entries in the quality monitors' joins, all four (``modelmedic_quality_join_entries``)."""
    joins_mb: float = 0.0
    """What they take, at :data:`JOIN_ENTRY_BYTES` an entry."""


@dataclass(frozen=True)
class Verdict:
    rss_slope_mb_per_h: float
    rss_mean_mb: float
    lag_growth: float
    """Records the lag's trend added over the judged span."""
    lag_allowed: float
    events_per_s: float
    cpu_share: float
    """CPU seconds of the service per wall second (1.0 = one core)."""
    loop_lag_max_s: float
    samples: int
    joins_first: float
    joins_last: float
    joins_per_h: float
    """Slope of the joins' entries (all four) over the span."""
    joins_cap: float
    """The most they can hold: per partition ``2 x label_max_pending`` (pending and judged) and
    ``2 x canary_max_pending`` (canary and twin)."""
    rest_slope_mb_per_h: float
    """Slope of RSS less what the joins take (:data:`JOIN_ENTRY_BYTES`)."""

    @property
    def flat_below(self) -> float:
        return FLAT_RSS_SHARE_PER_H * self.rss_mean_mb

    @property
    def memory_flat(self) -> bool:
        return self.rss_slope_mb_per_h < self.flat_below

    @property
    def rest_flat(self) -> bool:
        """Whether what the quality joins do not take is flat by the same criterion: memory that grows only
        with them is bounded (by ``joins_cap``), however long they take to fill."""
        return self.rest_slope_mb_per_h < self.flat_below

    @property
    def lag_steady(self) -> bool:
        return self.lag_growth < self.lag_allowed

    def lines(self) -> list[str]:
        return [
            f"samples judged: {self.samples}; {self.events_per_s:,.0f} events/s consumed; "
            f"service CPU {100 * self.cpu_share:.1f}% of a core; event-loop lag max {1000 * self.loop_lag_max_s:.0f} ms",
            f"memory: mean {self.rss_mean_mb:.1f} MB, slope {self.rss_slope_mb_per_h:+.2f} MB/h "
            f"(flat below {self.flat_below:.1f}): {'FLAT' if self.memory_flat else 'GROWING'}",
            f"quality joins: {self.joins_first:,.0f} -> {self.joins_last:,.0f} entries ({self.joins_per_h:+,.0f}/h; "
            f"cap {self.joins_cap:,.0f}, {100 * self.joins_last / self.joins_cap:.0f}% full); memory less theirs: "
            f"slope {self.rest_slope_mb_per_h:+.2f} MB/h: {'FLAT' if self.rest_flat else 'GROWING'}",
            f"consumer lag: trend {self.lag_growth:+,.0f} records over the span (allowed {self.lag_allowed:,.0f}): "
            f"{'NO GROWTH' if self.lag_steady else 'GROWING'}",
        ]


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``ys`` over ``xs`` (0 with fewer than two distinct ``xs``)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0


def judge(samples: Sequence[Sample], warmup_s: float, joins_cap: float) -> Verdict:
    """The verdict on the samples taken after ``warmup_s``; at least two are needed."""
    judged = [s for s in samples if s.t_s >= warmup_s]
    if len(judged) < 2:
        raise ValueError(f"{len(judged)} sample(s) after the {warmup_s:g} s warm-up: run longer or sample more often (--every)")
    t = [s.t_s for s in judged]
    span = t[-1] - t[0]
    events_per_s = (judged[-1].events - judged[0].events) / span
    return Verdict(
        rss_slope_mb_per_h=slope(t, [s.rss_mb for s in judged]) * 3600,
        rss_mean_mb=sum(s.rss_mb for s in judged) / len(judged),
        lag_growth=slope(t, [s.lag for s in judged]) * span,
        lag_allowed=max(LAG_FLOOR, events_per_s),
        events_per_s=events_per_s,
        cpu_share=(judged[-1].cpu_s - judged[0].cpu_s) / span,
        loop_lag_max_s=max(s.loop_lag_s for s in judged),
        samples=len(judged),
        joins_first=judged[0].joins,
        joins_last=judged[-1].joins,
        joins_per_h=slope(t, [s.joins for s in judged]) * 3600,
        joins_cap=joins_cap,
        rest_slope_mb_per_h=slope(t, [s.rss_mb - s.joins_mb for s in judged]) * 3600,
    )


def span_lines(samples: Sequence[Sample], span_s: float) -> list[str]:
    """The samples by span of ``span_s`` seconds from the start, one table row each: RSS first -> last and its
    least-squares slope, the joins' entries, CPU per event, events per second and the loop lag's maximum. The
    verdict's one slope over the judged span hides when memory rose (a one-off step, a creep, a settling);
    the spans show it."""
    lines = ["| span (s) | RSS (MB) | RSS slope (MB/h) | join entries | CPU us per event | events/s | loop lag max (ms) |",
             "|---|---|---|---|---|---|---|"]
    for start in range(0, int(samples[-1].t_s) + 1 if samples else 0, int(span_s)):
        span = [s for s in samples if start <= s.t_s < start + span_s]
        if len(span) < 2:
            continue
        first, last = span[0], span[-1]
        events = last.events - first.events
        lines.append(f"| {first.t_s:.0f}-{last.t_s:.0f} | {first.rss_mb:.1f} -> {last.rss_mb:.1f} | "
                     f"{3600 * slope([s.t_s for s in span], [s.rss_mb for s in span]):+.0f} | "
                     f"{first.joins:,.0f} -> {last.joins:,.0f} | {f'{1e6 * (last.cpu_s - first.cpu_s) / events:.0f}' if events else '-'} | "
                     f"{events / (last.t_s - first.t_s):,.0f} | {1000 * max(s.loop_lag_s for s in span):.0f} |")
    return lines


def override(config: dict, setting: str) -> None:
    """Set ``section.field=value`` (``--set``; the value read as YAML) in the service's config."""
    key, sep, value = setting.partition("=")
    if not sep or not key:
        raise SystemExit(f"--set {setting!r}: expected KEY=VALUE, e.g. quality.label_horizon_ms=2400000")
    *path, last = key.split(".")
    node = config
    for part in path:
        node = node.setdefault(part, {})
    node[last] = yaml.safe_load(value)


def service_env(setting: str) -> tuple[str, str]:
    """``NAME=VALUE`` (``--service-env``) as a pair: set in the environment only once Kafka runs, so that only
    the service (a child process inheriting it) gets it, e.g. an allocator setting compared in two soaks."""
    name, sep, value = setting.partition("=")
    if not sep or not name:
        raise SystemExit(f"--service-env {setting!r}: expected NAME=VALUE, e.g. MALLOC_ARENA_MAX=2")
    return name, value


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # clock ticks; USER_HZ is 100 on Linux


def read_metrics(text: str) -> dict[str, float]:
    """The soak's gauges, the records consumed (every outcome) and the quality joins' entries (``joins``, and
    ``joins_mb`` at :data:`JOIN_ENTRY_BYTES`) from a /metrics page."""
    found = {"events": 0.0, "joins": 0.0, "joins_mb": 0.0}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in GAUGES:
                found[GAUGES[s.name]] = s.value
            elif s.name == "modelmedic_events_total":
                found["events"] += s.value
            elif s.name == "modelmedic_quality_join_entries":
                found["joins"] += s.value
                found["joins_mb"] += s.value * JOIN_ENTRY_BYTES[s.labels["join"]] / 1e6
    return found


def heap_growth(directory: Path, after_s: float, t0: float, frames: int, top: int = 15) -> list[str]:
    """What grew between the first heap snapshot in ``directory`` written ``after_s`` seconds after ``t0``
    (epoch seconds) and the last, by line and, with more than one frame traced, by traceback (the largest
    ``top`` of each)."""
    def written(path: Path) -> float:  # heap-PID-EPOCH_MS.tracemalloc
        return int(path.stem.rsplit("-", 1)[1]) / 1000

    dumps = sorted(directory.glob("heap-*.tracemalloc"), key=written)
    dumps = [p for p in dumps if written(p) >= t0 + after_s] or dumps[-2:]
    if len(dumps) < 2:
        return [f"{len(dumps)} heap snapshot(s) after the warm-up: nothing to compare"]
    first, last = tracemalloc.Snapshot.load(str(dumps[0])), tracemalloc.Snapshot.load(str(dumps[-1]))
    total = sum(s.size for s in last.statistics("filename")) - sum(s.size for s in first.statistics("filename"))
    lines = [f"heap: {dumps[0].name} -> {dumps[-1].name} ({(written(dumps[-1]) - written(dumps[0])) / 60:.1f} min): "
             f"traced {total / 1e6:+.2f} MB"]
    for kind in ("lineno", "traceback")[:1 + (frames > 1)]:
        for stat in last.compare_to(first, kind)[:top]:
            where = stat.traceback.format(limit=frames if kind == "traceback" else 1, most_recent_first=True)
            lines.append(f"  {stat.size_diff / 1e6:+8.3f} MB {stat.count_diff:+9,d} blocks  " + " <- ".join(
                w.strip() for w in where if not w.startswith("    ")))
    return lines


BOOKS_HELD = ("pymalloc_arena_bytes", "malloc_heap_bytes", "malloc_mmap_bytes")
"""What the allocators have taken from the system (:func:`modelmedic.allocators.books`)."""
BOOKS_USED = ("pymalloc_allocated_bytes", "malloc_used_bytes")
"""What of it is in use: live objects and native allocations."""
BOOKS_FREE = ("malloc_free_bytes", "malloc_top_bytes", "malloc_holes_small_bytes", "malloc_holes_medium_bytes",
              "malloc_holes_large_bytes", "malloc_hole_largest_bytes")
"""Where malloc's free part is: its heap's free end and the holes by size (since the books had them)."""


def allocator_lines(directory: Path, after_s: float, t0: float) -> list[str]:
    """The allocators' books the service wrote on SIGUSR1 (``alloc-PID.jsonl`` in ``directory``), one line each
    (the soak's second, MB), and the least-squares trends, after ``after_s`` seconds past ``t0`` (epoch seconds),
    of what they hold and what of it is in use: RSS that grows while in use does not is the allocators keeping
    memory (retention, fragmentation), not live objects."""
    rows = sorted((json.loads(line) for path in directory.glob("alloc-*.jsonl") for line in path.read_text().splitlines()),
                  key=lambda row: row["epoch_ms"])  # in time, over the files of every process the service was
    if not rows:
        return ["allocators: no books written (is the service's SIGUSR1 hook there?)"]
    lines = ["allocators (MB): second, pymalloc arenas / in use, malloc heap / mmap / in use / free"
             " (top, holes <64K / <1M / larger, largest; arenas)"]
    for row in rows:
        mb = {name: row.get(name, 0) / 1e6 for name in BOOKS_HELD + BOOKS_USED + BOOKS_FREE}
        lines.append(f"  {row['epoch_ms'] / 1000 - t0:6.0f}s  {mb['pymalloc_arena_bytes']:6.1f} / {mb['pymalloc_allocated_bytes']:6.1f}"
                     f"   {mb['malloc_heap_bytes']:6.1f} / {mb['malloc_mmap_bytes']:5.1f} / {mb['malloc_used_bytes']:6.1f}"
                     f" / {mb['malloc_free_bytes']:5.1f}" + (
                         f" ({mb['malloc_top_bytes']:.1f}, {mb['malloc_holes_small_bytes']:.1f} / {mb['malloc_holes_medium_bytes']:.1f}"
                         f" / {mb['malloc_holes_large_bytes']:.1f}, {mb['malloc_hole_largest_bytes']:.1f}; {row['malloc_arenas']})"
                         if "malloc_arenas" in row else ""))
    judged = [row for row in rows if row["epoch_ms"] / 1000 - t0 >= after_s]
    if len(judged) >= 2:
        t = [row["epoch_ms"] / 1000 for row in judged]
        held = slope(t, [sum(row.get(name, 0) for name in BOOKS_HELD) / 1e6 for row in judged]) * 3600
        used = slope(t, [sum(row.get(name, 0) for name in BOOKS_USED) / 1e6 for row in judged]) * 3600
        lines.append(f"allocators after the warm-up ({len(judged)} books): held {held:+.2f} MB/h, in use {used:+.2f} MB/h")
    return lines


async def sample_every(service: ServiceProcess, every_s: float, stop: asyncio.Event,
                       heap_every_s: float = 0.0) -> list[Sample]:
    """One :class:`Sample` every ``every_s`` until ``stop``, printed as it is taken; with ``heap_every_s``, a
    SIGUSR1 to the service (its allocators' books, and a heap snapshot when tracing) at the first sample past
    each multiple of it."""
    samples: list[Sample] = []
    t0 = time.monotonic()
    heaps = 0
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}", timeout=min(30.0, every_s)) as http:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)
            assert service.proc is not None
            try:
                values = read_metrics((await http.get("/metrics")).text)
            except httpx.HTTPError as error:  # a starved or stuck service: say so, keep sampling
                print(f"[soak] /metrics not read at {time.monotonic() - t0:.0f}s: {error!r}", flush=True)
                continue
            sample = Sample(t_s=time.monotonic() - t0, rss_mb=service.sample_rss(), cpu_s=cpu_seconds(service.proc.pid),
                            events=values["events"], lag=values.get("lag", 0.0), loop_lag_s=values.get("loop_lag_s", 0.0),
                            joins=values["joins"], joins_mb=values["joins_mb"])
            samples.append(sample)
            if heap_every_s and sample.t_s >= (heaps + 1) * heap_every_s:
                heaps += 1
                service.proc.send_signal(signal.SIGUSR1)
            print(f"{sample.t_s:7.0f}s rss {sample.rss_mb:7.1f} MB  cpu {sample.cpu_s:7.1f}s  events {sample.events:11,.0f}  "
                  f"lag {sample.lag:8,.0f}  loop lag {1000 * sample.loop_lag_s:6.1f} ms  "
                  f"joins {sample.joins:9,.0f} ({sample.joins_mb:5.1f} MB)", flush=True)
    return samples


async def soak(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="modelmedic-soak-"))
    print(f"[soak] files and logs in {work}", flush=True)
    signal_every = args.heap_every or args.alloc_every
    if signal_every:  # the service inherits the environment (load/chaos.py)
        (work / "heap").mkdir()
        os.environ.update(MODELMEDIC_HEAP_DIR=str(work / "heap"))
    if args.heap_every:
        os.environ.update(PYTHONTRACEMALLOC=str(args.heap_frames))
    started = time.time()
    async with contextlib.AsyncExitStack() as cleanup:
        bootstrap = args.bootstrap
        if bootstrap is None:
            cleanup.callback(kafka_stack.stop, work / "kafka")
            bootstrap = kafka_stack.start(work / "kafka", partitions=6).bootstrap
        port = free_port()
        config = {"kafka": {"bootstrap_servers": bootstrap, "partitions": 6, "group_id": f"soak-{port}",
                            **kafka_stack.SINGLE_BROKER},
                  "http": {"port": port}, "sinks": []}
        for setting in args.set:
            override(config, setting)
        (work / "modelmedic.yaml").write_text(yaml.safe_dump(config))
        settings = load_settings(work / "modelmedic.yaml")
        await ensure_topics(settings.kafka)
        service = ServiceProcess(work / "modelmedic.yaml", work / "modelmedic.log", port,
                                 lambda what, detail: print(f"[soak] {what}: {detail}", flush=True))
        os.environ.update(dict(service_env(setting) for setting in args.service_env))
        await service.start()
        cleanup.push_async_callback(service.stop)
        if not await service.wait_ready(120):
            print(f"[soak] the service was not ready within 120 s: see {work / 'modelmedic.log'}", flush=True)
            return 2
        spec = realistic(args.models, seed=args.seed, rate_range=(0.01, args.max_rate))
        print(f"[soak] {args.models} models, ~{spec.expected_requests(1.0):,.0f} production requests/s before mirrors "
              f"and labels, for {args.minutes:g} min; a sample every {args.every:g} s", flush=True)
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_every(service, args.every, stop, 60 * signal_every))
        producer = producer_for(bootstrap)
        await producer.start()
        try:
            sent = await run_live(producer, settings.kafka.topics.inference, spec, (), args.minutes * 60,
                                  labels_topic=settings.kafka.topics.labels)
        finally:
            await producer.stop()
            stop.set()
        samples = await sampler
        print(f"[soak] sent {sent:,} records; service exits unexpected: {len(service.unexpected_exits)}", flush=True)
        q = settings.quality
        verdict = judge(samples, args.warmup * 60, settings.kafka.partitions * 2 * (q.label_max_pending + q.canary_max_pending))
        for line in (verdict.lines() + span_lines(samples, 60 * args.span) + (allocator_lines(work / "heap", args.warmup * 60, started) if signal_every else [])
                     + (heap_growth(work / "heap", args.warmup * 60, started, args.heap_frames) if args.heap_every else [])):
            print(f"[soak] {line}", flush=True)
        bounded = verdict.memory_flat or verdict.rest_flat
        return 0 if bounded and verdict.lag_steady and not service.unexpected_exits else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the fleet produces (default 30)")
    parser.add_argument("--warmup", type=float, default=5.0, help="minutes left out of the verdict (default 5)")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples (default 10)")
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--max-rate", type=float, default=50.0,
                        help="the busiest model's req/s; rates are log-uniform from 0.01 (default 50)")
    parser.add_argument("--span", type=float, default=10.0, metavar="MINUTES",
                        help="the samples are also printed by span of MINUTES, a table row each (default 10)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bootstrap", default=None, help="an existing Kafka (default: start one)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting of the service's config, dotted, the value as YAML "
                             "(e.g. quality.label_horizon_ms=2400000); repeatable")
    parser.add_argument("--service-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for the service only (not Kafka, not this process), e.g. "
                             "MALLOC_ARENA_MAX=2; repeatable")
    parser.add_argument("--heap-every", type=float, default=0.0, metavar="MINUTES",
                        help="trace the service's allocations and take a heap snapshot every MINUTES; print what "
                             "grew after the warm-up (default 0: off)")
    parser.add_argument("--alloc-every", type=float, default=0.0, metavar="MINUTES",
                        help="without tracing, ask the service for its allocators' books every MINUTES (SIGUSR1; "
                             "--heap-every does too); print them and the trends of what they hold and use after the "
                             "warm-up (default 0: off)")
    parser.add_argument("--heap-frames", type=int, default=1,
                        help="frames traced per allocation with --heap-every (default 1: the allocating line; "
                             "more cost the service more CPU and memory)")
    return asyncio.run(soak(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

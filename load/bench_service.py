"""The real ``modelmedic run`` process against a raw drain of the same topic, alternating; then its idle CPU.

    .venv/bin/python load/bench_service.py                   # starts its own Kafka: 1,000,000 events, 3 rounds
    .venv/bin/python load/bench_service.py --events 500000 --rounds 2 --idle-seconds 30 --bootstrap HOST:PORT
    .venv/bin/python load/bench_service.py --variant detection.snapshot_replay_records=1   # and (c): a setting changed

``load/bench_pipeline.py`` runs the detection plane inside the benchmark process; this one
measures what is deployed: a ``modelmedic run`` process (both planes, the HTTP endpoint, the
audit and silence followers), started with a configuration of its own per round.

Fills a fresh topic with fleet traffic (``load/fleet.py``), drains it once untimed (the
broker's first read of a topic is slower), then for ``--rounds`` rounds alternately:

(a) a raw aiokafka ``getmany`` drain in this process (``bench_pipeline.raw_drain``: the
    detection plane's consumer settings, a fresh group): the floor;
(b) ``modelmedic run`` as a child process, in a fresh consumer group with fresh output and
    state topics (it never resumes an earlier round's snapshot), until its
    ``modelmedic_events_total`` reaches the topic's N records;
(c) with ``--variant SECTION.KEY=VALUE``: (b) again with that one setting changed (a YAML value),
    so a change is compared with the code as it is in the same run, round by round.

(b) is watched from outside: every ``--sample-ms`` this process reads the child's
``/metrics`` (records counted so far) and its CPU time (``/proc/PID/stat``, user + system).
Its steady part runs from the first sample with records counted to the moment the N-th
was (interpolated between the two samples around it, for both clocks); ``total`` runs from
the process's start (imports, joining the group). (a)'s steady part starts when its
consumer holds its partitions. Ratios pair the rounds' (a) and (b); their spread between
rounds is the machine's noise.

After the last round its service, drained, is left alone for ``--settle-seconds`` (its CPU
printed per 10 s: the response plane and the last windows finish a backlog's work after its
last record is counted), then its CPU is read over ``--idle-seconds`` without a scrape (what an idle replica burns),
then over as long again with scrapes every ``--sample-ms`` (what this benchmark's watching
costs it, to be subtracted from nothing: (b)'s figures include it).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from deploy.local import kafka as local_kafka  # noqa: E402
from deploy.local.procs import free_port  # noqa: E402
from load.bench_pipeline import raw_drain  # noqa: E402
from load.fleet import add_backlog_arguments, backlog_spec, fill_topic  # noqa: E402
from load.soak import override  # noqa: E402
from modelmedic.app import tune_gc  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
"""Clock ticks per second of /proc/PID/stat's CPU times."""
STARTUP_S = 60.0
"""How long the service may take to answer /metrics."""
SLICE_S = 10.0
"""The settling period's CPU is printed per slice this long."""


@dataclass(frozen=True)
class Sample:
    """The child's records counted and CPU seconds at one wall-clock moment."""

    wall: float
    records: float
    cpu: float


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (``/proc/PID/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def records_counted(port: int) -> float | None:
    """The sum of ``modelmedic_events_total`` over its outcomes, or None while /metrics does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("modelmedic_events_total{"))


def service_config(bootstrap: str, topic: str, port: int, variant: str | None = None) -> dict:
    """A configuration reading ``topic``, with its own group, output and state topics, and HTTP port;
    ``variant`` (``SECTION.KEY=VALUE``) changes one more setting."""
    run = uuid.uuid4().hex[:8]
    names = ("labels", "anomalies", "incidents", "state", "dlq", "audit", "silences")
    config = {
        "kafka": {"bootstrap_servers": bootstrap, "partitions": 6, "group_id": f"bench-service-{run}",
                  "topics": {"inference": topic, **{name: f"bench.{name}.{run}" for name in names}},
                  **local_kafka.SINGLE_BROKER},
        "http": {"port": port},
    }
    if variant is not None:
        override(config, variant)
    return config


@dataclass
class ServiceRun:
    """One round's (b): the child, its samples, and the interpolated moment its N-th record was counted."""

    started: float
    first: Sample
    done: Sample
    records: int

    @property
    def steady_rate(self) -> float:
        return (self.records - self.first.records) / (self.done.wall - self.first.wall)

    @property
    def total_rate(self) -> float:
        return self.records / (self.done.wall - self.started)

    @property
    def cpu_rate(self) -> float:
        """Records per CPU-second of the service process over the steady part."""
        return (self.records - self.first.records) / max(self.done.cpu - self.first.cpu, 1e-9)


def _between(before: Sample, after: Sample, records: int) -> Sample:
    """Where both clocks stood when ``records`` were counted, assuming a steady pace between two samples."""
    share = (records - before.records) / max(after.records - before.records, 1e-9)
    return Sample(before.wall + share * (after.wall - before.wall), records,
                  before.cpu + share * (after.cpu - before.cpu))


def sample(pid: int, port: int) -> Sample | None:
    counted = records_counted(port)
    return None if counted is None else Sample(time.perf_counter(), counted, cpu_seconds(pid))


def drain_with_service(config: Path, port: int, n: int, every_s: float, log: Path) -> tuple[subprocess.Popen, ServiceRun]:
    """Start ``modelmedic run`` on ``config`` and watch it count ``n`` records; the child is left running."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "modelmedic", "run", "--config", str(config)],
                             stdout=log.open("w"), stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    first = last = None
    while True:
        if child.poll() is not None:
            raise RuntimeError(f"modelmedic run exited with {child.returncode} before counting {n} records: see {log}")
        now = sample(child.pid, port)
        if now is None:
            if time.perf_counter() - started > STARTUP_S:
                child.kill()
                raise TimeoutError(f"modelmedic run did not answer /metrics within {STARTUP_S:.0f} s: see {log}")
        elif now.records >= n:
            if first is None or last is None:
                raise RuntimeError(f"sample more often than --sample-ms: {n} records were counted between two samples")
            return child, ServiceRun(started, first, _between(last, now, n), n)
        elif now.records > 0:
            first = first or now
            last = now
        time.sleep(every_s)


def stop_service(child: subprocess.Popen) -> None:
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(60)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def idle_cpu(child: subprocess.Popen, port: int, seconds: float, every_s: float | None) -> float:
    """Share of one core the child used over ``seconds``, scraping /metrics every ``every_s`` (None: never)."""
    cpu0, t0 = cpu_seconds(child.pid), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        if every_s is not None:
            records_counted(port)
        time.sleep(every_s if every_s is not None else seconds)
    return (cpu_seconds(child.pid) - cpu0) / (time.perf_counter() - t0)


def bench(args: argparse.Namespace, bootstrap: str, workdir: Path) -> int:
    spec = backlog_spec(args)
    topic = f"bench.inference.{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    asyncio.run(fill_topic(bootstrap, topic, args.events, spec))
    print(f"filled {topic} with {args.events:,} events in {time.perf_counter() - t0:.1f} s", flush=True)
    warm = asyncio.run(raw_drain(bootstrap, topic, args.events))
    print(f"warm-up raw drain (not counted): {warm.steady_rate:,.0f} events/s", flush=True)
    every_s = args.sample_ms / 1000
    rows, child, port = [], None, 0
    # (c) before (b): the service left running for the idle measurement is the code as it is.
    services = ([("c", args.variant)] if args.variant else []) + [("b", None)]
    for i in range(1, args.rounds + 1):
        a = asyncio.run(raw_drain(bootstrap, topic, args.events))
        print(f"round {i} (a) raw drain: {a.steady_rate:,.0f} events/s steady, {a.cpu_rate:,.0f} per CPU-second "
              f"(load average {os.getloadavg()[0]:.1f})", flush=True)
        runs = []
        for name, variant in services:
            if child is not None:
                stop_service(child)
            port = free_port()
            config = workdir / f"round{i}{name}.yaml"
            config.write_text(yaml.safe_dump(service_config(bootstrap, topic, port, variant)))
            child, b = drain_with_service(config, port, args.events, every_s, workdir / f"round{i}{name}.log")
            print(f"round {i} ({name}) modelmedic run{f' with {variant}' if variant else ''}: {b.steady_rate:,.0f} "
                  f"events/s steady, {b.total_rate:,.0f} total, {b.cpu_rate:,.0f} per CPU-second "
                  f"({1e6 / b.cpu_rate:.2f} us CPU/event; load average {os.getloadavg()[0]:.1f})", flush=True)
            runs.append(b)
        rows.append((a, runs))
    for j, (name, variant) in enumerate(services):
        print(f"\n({name}) modelmedic run{f' with {variant}' if variant else ''}\n| round | (a) raw, steady events/s | "
              f"(a) per CPU-second | ({name}) steady events/s | ({name}) per CPU-second | {name}/a wall | "
              f"{name}/a CPU |\n|---|---:|---:|---:|---:|---:|---:|")
        for i, (a, runs) in enumerate(rows, 1):
            b = runs[j]
            print(f"| {i} | {a.steady_rate:,.0f} | {a.cpu_rate:,.0f} | {b.steady_rate:,.0f} | {b.cpu_rate:,.0f} | "
                  f"{b.steady_rate / a.steady_rate:.2f} | {b.cpu_rate / a.cpu_rate:.2f} |")
    try:
        if args.idle_seconds > 0:
            slices = [idle_cpu(child, port, SLICE_S, None) for _ in range(int(args.settle_seconds // SLICE_S))]
            print(f"\nafter the drain, CPU per {SLICE_S:g} s (the response plane and the last windows finishing): "
                  + ", ".join(f"{share:.1%}" for share in slices), flush=True)
            quiet = idle_cpu(child, port, args.idle_seconds, None)
            watched = idle_cpu(child, port, args.idle_seconds, every_s)
            print(f"idle service (drained, {args.settle_seconds:g} s settled): {quiet:.2%} of a core over "
                  f"{args.idle_seconds:g} s; {watched:.2%} while scraped every {args.sample_ms} ms", flush=True)
    finally:
        stop_service(child)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_backlog_arguments(parser, events=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variant", metavar="SECTION.KEY=VALUE",
                        help="each round also runs (c): the service with this setting changed")
    parser.add_argument("--sample-ms", type=int, default=250, help="how often (b) is watched")
    parser.add_argument("--settle-seconds", type=float, default=60.0,
                        help="after the last drain, before the idle measurement (printed per 10 s)")
    parser.add_argument("--idle-seconds", type=float, default=30.0, help="0: skip the idle measurement")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    tune_gc()  # (a) gets the interpreter settings `modelmedic run` gives itself
    workdir = Path(tempfile.mkdtemp(prefix="modelmedic-bench-service-"))
    print(f"service configurations and logs in {workdir}", flush=True)
    try:
        bootstrap = args.bootstrap or local_kafka.start(workdir / "kafka", partitions=6).bootstrap
        print(f"broker {bootstrap}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
        return bench(args, bootstrap, workdir)
    finally:
        if not args.bootstrap:
            local_kafka.stop(workdir / "kafka")
            shutil.rmtree(workdir / "kafka", ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

"""Consumer-group scale-out of the real service: N ``modelmedic run`` processes drain one backlog.

    python load/bench_scaleout.py                              # starts its own Kafka, 600k events
    python load/bench_scaleout.py --events 1000000 --processes 1,2,1,2 --bootstrap 127.0.0.1:9092

Fills one inference topic (6 partitions) with fleet traffic (``load/fleet.py``) carrying a few
scripted incidents, then for each entry of ``--processes`` (in order, in this one run) starts
that many ``modelmedic run`` processes at once, in a fresh consumer group with output, state and
incident topics of their own, and waits until they have processed the whole topic (the sum of
their ``modelmedic_events_total`` reaches the backlog and each one's
``modelmedic_consumer_lag_records`` is 0, read from their /metrics every 100 ms). Then it stops
them (SIGTERM: they checkpoint and leave) and reports, per run:

- events/s: backlog / (done - the first assignment of any process), and the ratio to the
  first one-process run;
- CPU: user+system seconds of every process (from /proc/PID/stat), from its request to join
  the group to the end, per event (start-up, mostly imports, left out);
- join: for each process, the milliseconds from its "joining the consumer group" log line to
  the "assigned" line of the generation that gave it partitions, and every member's revocation
  and assignment times (a member that keeps its partitions keeps them in memory: "kept");
- anomaly and incident ids: every (anomaly id, state) record on the run's anomalies topic and
  every incident on its compacted incidents topic, compared with the first run's: none missing,
  none extra, no anomaly record twice.

On a machine with fewer free cores than processes the events/s ratio measures the machine;
CPU per event is what scales (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from deploy.local import kafka as local_kafka  # noqa: E402
from deploy.local.procs import free_port  # noqa: E402
from load.fleet import Incident, add_backlog_arguments, backlog_spec, fill_topic  # noqa: E402
from modelmedic.config import Settings, Topics, load_settings  # noqa: E402
from modelmedic.events import decode_anomaly  # noqa: E402
from modelmedic.kafka import read_compacted  # noqa: E402
from tests.fixtures_kafka import read_to_end  # noqa: E402

INCIDENTS = ("latency_spike:model-003@120+60", "error_burst:model-017@200+60", "throughput_collapse:model-042@300+180",
             "bad_version:model-101@400+90", "overload:model-150@500+60")
"""Scripted incidents, in seconds of event time (the fleet makes ``models x rate`` events a second)."""
TICK = os.sysconf("SC_CLK_TCK")
METRIC = re.compile(r"^(modelmedic_events_total|modelmedic_consumer_lag_records)(?:\{[^}]*\})? ([0-9.e+]+)$", re.M)


@dataclass
class Process:
    """One ``modelmedic run`` and what it logged, stamped on arrival (wall clock)."""

    name: str
    port: int
    popen: subprocess.Popen
    lines: list[tuple[float, str]] = field(default_factory=list)
    cpu_at_join: float | None = None
    """Its CPU seconds when it asked to join the group: what start-up cost (imports) is left out."""

    def follow(self) -> None:
        for line in self.popen.stderr:  # type: ignore[union-attr]
            if self.cpu_at_join is None and "joining consumer group" in line:
                self.cpu_at_join = self.cpu_s()
            self.lines.append((time.time(), line.rstrip()))

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def metrics(self) -> tuple[float, float]:
        """(events processed, consumer lag) from its /metrics."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
            text = r.read().decode()
        found = {"modelmedic_events_total": 0.0, "modelmedic_consumer_lag_records": 0.0}
        for name, value in METRIC.findall(text):
            found[name] += float(value)
        return found["modelmedic_events_total"], found["modelmedic_consumer_lag_records"]

    def when(self, pattern: str) -> list[tuple[float, str]]:
        return [(t, line) for t, line in self.lines if re.search(pattern, line)]


@dataclass
class Run:
    """What one run of N processes measured."""

    n: int
    rate: float
    cpu_per_event_us: float
    span_s: float
    joins_ms: list[float]
    split: list[float]
    """Events each process processed (redelivered records after a handover included)."""
    rebalances: list[str]
    anomalies: Counter
    incidents: set[str]


def config_for(bootstrap: str, topic: str, run: str) -> dict:
    topics = Topics(**{name: f"bench.scaleout.{run}.{name}" for name in Topics.model_fields}).model_copy(
        update={"inference": topic})
    return {"kafka": {"bootstrap_servers": bootstrap, "partitions": 6, "group_id": f"scaleout-{run}",
                      "topics": topics.model_dump(), **local_kafka.SINGLE_BROKER},
            "log_format": "text", "sinks": []}


def start(config: Path, name: str) -> Process:
    port = free_port()
    env = {**os.environ, "MODELMEDIC_HTTP__PORT": str(port), "MODELMEDIC_HTTP__HOST": "127.0.0.1",
           "MODELMEDIC_KAFKA__CLIENT_ID": name}
    popen = subprocess.Popen([sys.executable, "-m", "modelmedic", "run", "--config", str(config)], env=env,
                             stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    process = Process(name, port, popen)
    threading.Thread(target=process.follow, daemon=True).start()
    return process


def drain(n: int, bootstrap: str, topic: str, events: int, work: Path) -> Run:
    """Start ``n`` processes in one new group, wait until they processed the topic, stop them."""
    run = uuid.uuid4().hex[:8]
    config = work / f"{run}.yaml"
    config.write_text(yaml.safe_dump(config_for(bootstrap, topic, run)))
    processes = [start(config, f"p{i}") for i in range(n)]
    try:
        while not any(p.when(r"partitions \[\d.*\] assigned") for p in processes):
            _alive(processes)
            time.sleep(0.02)
        first = min(t for p in processes for t, _ in p.when(r"partitions \[\d.*\] assigned"))
        while True:
            _alive(processes)
            readings = [_metrics(p) for p in processes]
            if sum(e for e, _ in readings) >= events and all(lag == 0 for _, lag in readings):
                break
            time.sleep(0.1)
        done = time.time()
        cpu = sum(p.cpu_s() - (p.cpu_at_join or 0.0) for p in processes)
    finally:
        for p in processes:
            p.popen.send_signal(signal.SIGTERM)
        for p in processes:
            p.popen.wait(timeout=120)
    settings = load_settings(config)
    anomalies, incidents = asyncio.run(outputs(settings))
    return Run(n, events / (done - first), cpu / events * 1e6, done - first, _joins(processes),
               [e for e, _ in readings], _rebalances(processes, first, done), anomalies, incidents)


def _alive(processes: list[Process]) -> None:
    for p in processes:
        if p.popen.poll() is not None:
            tail = "\n".join(line for _, line in p.lines[-20:])
            raise RuntimeError(f"{p.name} exited with {p.popen.returncode}:\n{tail}")


def _metrics(p: Process) -> tuple[float, float]:
    try:
        return p.metrics()
    except OSError:  # not serving yet
        return 0.0, 1.0


def _joins(processes: list[Process]) -> list[float]:
    """Per process: from its join request to the assignment that gave it partitions, in ms."""
    out = []
    for p in processes:
        joined = p.when("joining consumer group")
        got = p.when(r"partitions \[\d.*\] assigned")
        if joined and got:
            out.append((got[0][0] - joined[0][0]) * 1000)
    return out


def _rebalances(processes: list[Process], t0: float, done: float) -> list[str]:
    """Every revocation and assignment line until ``done``, at seconds after the first assignment."""
    lines = [(t, f"{p.name} +{t - t0:.2f}s {line.split(': ', 1)[-1]}") for p in processes
             for t, line in p.when(r"partitions \[[\d, ]*\] (revoked|assigned)") if t <= done]
    return [text for _, text in sorted(lines)]


async def outputs(settings: Settings) -> tuple[Counter, set[str]]:
    """(anomaly id, state) records of the run's anomalies topic, counted; its incidents' ids."""
    records = await read_to_end(settings, settings.kafka.topics.anomalies, timeout=120)
    anomalies = Counter((a.id, a.state) for a in (decode_anomaly(r.value) for r in records))
    incidents = await read_compacted(settings.kafka, settings.kafka.topics.incidents)
    return anomalies, {msgspec.json.decode(v)["id"] for v in incidents.values()}


def report(runs: list[Run]) -> None:
    base = runs[0]
    print(f"\n{'N':>2} {'events/s':>10} {'ratio':>6} {'CPU us/event':>13} {'span s':>7}  join ms (per process)  "
          "events per process  outputs vs the first run")
    for r in runs:
        missing = set(base.anomalies) - set(r.anomalies)
        extra = set(r.anomalies) - set(base.anomalies)
        twice = sum(1 for c in r.anomalies.values() if c > 1)
        inc = f"incidents {len(r.incidents)} (missing {len(base.incidents - r.incidents)}, extra " \
              f"{len(r.incidents - base.incidents)})"
        print(f"{r.n:>2} {r.rate:>10,.0f} {r.rate / base.rate:>6.2f} {r.cpu_per_event_us:>13.2f} {r.span_s:>7.2f}  "
              f"{', '.join(f'{j:.0f}' for j in r.joins_ms):<21}  {', '.join(f'{e:,.0f}' for e in r.split):<18}  "
              f"anomaly records {sum(r.anomalies.values())} "
              f"(missing {len(missing)}, extra {len(extra)}, twice {twice}); {inc}")
    for r in runs:
        if r.n > 1:
            print(f"\nrebalances of the {r.n}-process run:")
            for line in r.rebalances:
                print(f"  {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_backlog_arguments(parser, events=600_000, models=200, rate=5.0, canary=0.0)
    parser.add_argument("--processes", default="1,2", help="comma-separated process counts, run in this order")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.processes.split(",")]
    spec = backlog_spec(args)
    work = Path(tempfile.mkdtemp(prefix="modelmedic-scaleout-"))
    try:
        bootstrap = args.bootstrap or local_kafka.start(work / "kafka", partitions=6).bootstrap
        print(f"broker {bootstrap}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
        topic = f"bench.scaleout.{uuid.uuid4().hex[:8]}.inference"
        t0 = time.perf_counter()
        asyncio.run(fill_topic(bootstrap, topic, args.events, spec, incidents=[Incident.parse(i) for i in INCIDENTS]))
        print(f"filled {topic} with {args.events:,} events ({args.models} models, incidents {', '.join(INCIDENTS)}) "
              f"in {time.perf_counter() - t0:.1f}s", flush=True)
        runs = []
        for n in counts:
            runs.append(drain(n, bootstrap, topic, args.events, work))
            r = runs[-1]
            print(f"{n} process(es): {r.rate:,.0f} events/s, {r.cpu_per_event_us:.2f} CPU us/event "
                  f"(load average {os.getloadavg()[0]:.1f})", flush=True)
        report(runs)
    finally:
        if not args.bootstrap:
            local_kafka.stop(work / "kafka")
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

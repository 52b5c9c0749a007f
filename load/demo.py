"""The quick-start demo: modelmedic on a real local stack, with scripted incidents.

Starts a real Kafka broker and a real Alertmanager (cached installs), a local
PagerDuty/Slack/webhook receiver, and ``modelmedic run`` as its own process with a
generated config file. A simulated fleet of models then sends live traffic with
incidents injected on a script, and the terminal shows a timeline per incident:

    injected  -> anomaly detected (from the anomalies topic) -> alert delivered (receiver)

Everything is stopped at the end (or on Ctrl-C). Run it with ``make demo``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deploy.local import alertmanager as am_stack  # noqa: E402
from deploy.local import kafka as kafka_stack  # noqa: E402
from deploy.local.procs import free_port  # noqa: E402
from load.fleet import FleetSpec, Incident, producer_for, run_live  # noqa: E402
from load.receiver import AlertReceiver  # noqa: E402
from modelmedic.config import load_settings  # noqa: E402
from modelmedic.events import decode_anomaly  # noqa: E402
from modelmedic.kafka import consumer, ensure_topics  # noqa: E402

INCIDENTS = [
    "latency_spike:model-002@45+25x6",
    "throughput_collapse:model-005@60+25",
    "error_burst:model-007@75+20x0.3",
]


class Timeline:
    """Prints one line per step, with seconds since the demo's traffic started."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.injected: dict[str, float] = {}
        self.detected: dict[str, float] = {}

    def line(self, what: str, detail: str) -> None:
        print(f"  T+{time.monotonic() - self.t0:6.1f}s  {what:<18} {detail}", flush=True)


async def watch_anomalies(settings, timeline: Timeline, stop: asyncio.Event) -> None:
    """Print every anomaly decision the service publishes."""
    c = consumer(settings.kafka, settings.kafka.topics.anomalies, group_id=None, auto_offset_reset="latest")
    await c.start()
    try:
        while not stop.is_set():
            for records in (await c.getmany(timeout_ms=200)).values():
                for r in records:
                    a = decode_anomaly(r.value)
                    if a.state == "firing":
                        since = timeline.injected.get(a.model)
                        lag = f" ({time.monotonic() - since:.1f}s after injection)" if since else ""
                        timeline.line("ANOMALY DETECTED", f"{a.summary}{lag}")
                    else:
                        timeline.line("recovered", a.summary)
    finally:
        await c.stop()


async def watch_alerts(receiver: AlertReceiver, timeline: Timeline, stop: asyncio.Event) -> None:
    """Print every page the receiver accepts."""
    seen = 0
    while not stop.is_set():
        try:
            got = await receiver.wait_for(kind="pagerduty", count=seen + 1, timeout=0.5)
        except TimeoutError:
            continue
        for r in got[seen:]:
            event = r.json
            if event["event_action"] == "trigger":
                timeline.line("ALERT DELIVERED", f"PagerDuty trigger {event['dedup_key']}: {event['payload']['summary']}")
            else:
                timeline.line("alert resolved", f"PagerDuty {event['event_action']} {event['dedup_key']}")
        seen = len(got)


async def demo(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="modelmedic-demo-"))
    print(f"[modelmedic] demo files and logs in {work}")
    broker = kafka_stack.start(work / "kafka", partitions=6)
    print(f"[modelmedic] Kafka at {broker.bootstrap}")
    am = am_stack.start(work / "alertmanager")
    print(f"[modelmedic] Alertmanager at {am.url}")
    receiver = AlertReceiver().start()
    http_port = free_port()
    config = {
        "kafka": {"bootstrap_servers": broker.bootstrap, "partitions": 6},
        "http": {"port": http_port},
        "sinks": [
            {"type": "pagerduty", "url": receiver.pagerduty_url, "routing_key": "demo0000000000000000000000000000"},
            {"type": "slack", "url": receiver.slack_url},
            {"type": "webhook", "url": receiver.webhook_url},
            {"type": "alertmanager", "url": am.url},
        ],
    }
    (work / "modelmedic.yaml").write_text(yaml.safe_dump(config))
    settings = load_settings(work / "modelmedic.yaml")
    await ensure_topics(settings.kafka)
    service_log = open(work / "modelmedic.log", "w")
    service = subprocess.Popen(
        [sys.executable, "-m", "modelmedic", "run", "--config", str(work / "modelmedic.yaml")],
        stdout=service_log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    print(f"[modelmedic] service started (pid {service.pid}); status page http://127.0.0.1:{http_port}/status")
    incidents = [Incident.parse(s) for s in args.incident or INCIDENTS]
    spec = FleetSpec(models=args.models, rate=args.rate, seed=args.seed)
    timeline = Timeline()
    stop = asyncio.Event()
    watchers = [asyncio.create_task(watch_anomalies(settings, timeline, stop)),
                asyncio.create_task(watch_alerts(receiver, timeline, stop))]

    def on_incident(incident: Incident, phase: str, wall: float) -> None:
        if phase == "start":
            timeline.injected[incident.model] = time.monotonic()
        timeline.line("INJECTED" if phase == "start" else "incident over", str(incident))

    print(f"[modelmedic] fleet: {spec.models} models x {spec.rate:g} req/s for {args.duration:g}s; "
          "the first 30s teach the baselines")
    producer = producer_for(broker.bootstrap)
    await producer.start()
    try:
        await run_live(producer, settings.kafka.topics.inference, spec, incidents, args.duration, on_incident=on_incident)
        await asyncio.sleep(3)
    finally:
        stop.set()
        await asyncio.gather(*watchers, return_exceptions=True)
        await producer.stop()
        service.send_signal(signal.SIGTERM)
        service.wait(30)
        receiver.stop()
        am_stack.stop(work / "alertmanager")
        kafka_stack.stop(work / "kafka")
    pages = [r.json for r in receiver.accepted if r.kind == "pagerduty"]
    triggers = sum(1 for p in pages if p["event_action"] == "trigger")
    print(f"\n[modelmedic] done: {len(incidents)} incidents injected, {triggers} page(s), "
          f"{len(pages) - triggers} resolution(s). Service log: {work / 'modelmedic.log'}")
    return 0 if triggers == len(incidents) else 1


def main() -> int:
    logging.basicConfig(level=logging.ERROR)  # the timeline is the demo's output; aiokafka's retries are noise
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=12)
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second per model")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of traffic")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--incident", action="append", help="KIND:MODEL@START+DURATION[xMAG] (repeatable)")
    return asyncio.run(demo(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())

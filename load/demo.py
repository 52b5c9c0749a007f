"""The quick-start demo: modelmedic on a real local stack, with scripted incidents.

Starts a real Kafka broker, a real Alertmanager and a real Kubernetes API server
(etcd, kube-apiserver, controllers, scheduler, KWOK nodes; cached builds), a local
PagerDuty/Slack/webhook receiver, and ``modelmedic run`` as its own process. Every
simulated model is a Deployment on that API server, and the fleet reads Ready replicas
and the served version back from it, so remediation really cures what it can:

- **overload** (model-003): traffic triples, latency climbs -> page -> scale-out ->
  latency recovers -> resolved;
- **bad version** (model-006): the demo rolls out the model's next version, which is
  slow and wrong -> page -> rollback -> the previous version serves again -> resolved;
- **unfixable** (model-009): latency jumps for a reason no playbook touches -> page ->
  scale-out does not help within the verification window -> ESCALATED page;
- and a plain **error burst** (model-001) that is paged and resolves by itself.

The terminal shows a timeline: injected -> detected -> paged -> playbook -> verified /
escalated -> resolved. Everything is stopped at the end (or on Ctrl-C). ``make demo``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
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
from deploy.local import kube as kube_stack  # noqa: E402
from deploy.local.procs import free_port  # noqa: E402
from load.cluster import ClusterView, create_models  # noqa: E402
from load.fleet import FleetSpec, Incident, producer_for, profiles, run_live  # noqa: E402
from modelmedic.testing import AlertReceiver  # noqa: E402
from modelmedic.config import load_settings  # noqa: E402
from modelmedic.events import decode_anomaly  # noqa: E402
from modelmedic.kafka import consumer, ensure_topics  # noqa: E402
from modelmedic.kube import KubeClient  # noqa: E402

NAMESPACE = "models"
INCIDENTS = [
    "overload:model-003@40+80x3",
    "bad_version:model-006@55+65",
    "latency_spike:model-009@70+50x6",
    "error_burst:model-001@85+15x0.3",
]
POLICY = {
    "targets": {"namespace": NAMESPACE},
    "guard_rails": {"cooldown_s": 30},
    "rules": [{
        "match": {"anomaly_class": ["latency", "throughput"], "kinds": ["latency"]},
        # No registry here: the previous revision is the target, unchecked (docs/releases.md, "Rollback safety").
        "playbooks": [{"name": "rollback", "params": {"require_certified": False}},
                      {"name": "scale-out", "params": {"step": 2, "max_replicas": 6}}],
        "verify_s": 20,
        "escalation": [{"after_s": 0, "severity": "error"}, {"after_s": 600, "severity": "critical"}],
    }],
}
"""Latency: roll back a fresh release, else scale out; 20 s to recover before escalating.
Other anomalies (error bursts, throughput) are paged and left to resolve or escalate."""


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


async def watch_actions(settings, timeline: Timeline, stop: asyncio.Event) -> None:
    """Print what the response plane does, from its audit topic."""
    c = consumer(settings.kafka, settings.kafka.topics.audit, group_id=None, auto_offset_reset="latest")
    await c.start()
    try:
        while not stop.is_set():
            for records in (await c.getmany(timeout_ms=200)).values():
                for r in records:
                    a = json.loads(r.value)
                    d = a["details"]
                    if a["action"] == "playbook-start":
                        timeline.line("REMEDIATING", f"{a['model']}: running {d['playbook']}")
                    elif a["action"] == "playbook-end":
                        timeline.line("playbook result", f"{a['model']}: {d['playbook']} {d['status']}: {d['message']}")
                    elif a["action"] == "verification-failed":
                        timeline.line("NOT RECOVERED", f"{a['model']}: still anomalous after the verification window")
                    elif a["action"] == "resolved" and d.get("after_remediation"):
                        timeline.line("VERIFIED", f"{a['model']}: recovered after remediation ({d['tried']})")
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
            if event["event_action"] == "trigger" and event["payload"]["summary"].startswith("ESCALATED"):
                timeline.line("ESCALATION PAGED", f"{event['payload']['severity']}: {event['payload']['summary']}")
            elif event["event_action"] == "trigger":
                timeline.line("ALERT DELIVERED", f"PagerDuty trigger {event['dedup_key']}: {event['payload']['summary']}")
            else:
                timeline.line("alert resolved", f"PagerDuty {event['event_action']} {event['dedup_key']}")
        seen = len(got)


async def demo(args: argparse.Namespace) -> int:
    """Everything started is registered for stopping the moment it starts: an interrupt at
    any point (Ctrl-C, SIGTERM) leaves nothing running."""
    async with contextlib.AsyncExitStack() as cleanup:
        return await _demo(args, cleanup)


async def _demo(args: argparse.Namespace, cleanup: contextlib.AsyncExitStack) -> int:
    work = Path(tempfile.mkdtemp(prefix="modelmedic-demo-"))
    print(f"[modelmedic] demo files and logs in {work}")
    cleanup.callback(kafka_stack.stop, work / "kafka")
    broker = kafka_stack.start(work / "kafka", partitions=6)
    print(f"[modelmedic] Kafka at {broker.bootstrap}")
    cleanup.callback(am_stack.stop, work / "alertmanager")
    am = am_stack.start(work / "alertmanager")
    print(f"[modelmedic] Alertmanager at {am.url}")
    cleanup.callback(kube_stack.stop, work / "kube")
    kube = kube_stack.start(work / "kube")
    kube_stack.grant(kube, NAMESPACE)
    print(f"[modelmedic] Kubernetes API at {kube.server}")
    spec = FleetSpec(models=args.models, rate=args.rate, seed=args.seed)
    admin = KubeClient.from_kubeconfig(kube.admin_kubeconfig)
    versions = {p.model: p.stable_version for p in profiles(spec)}
    next_versions = {p.model: p.next_version for p in profiles(spec)}
    await create_models(admin, NAMESPACE, versions, replicas=1)
    print(f"[modelmedic] {len(versions)} model Deployments Ready in namespace {NAMESPACE!r}")
    view = await ClusterView(KubeClient.from_kubeconfig(kube.service_kubeconfig), NAMESPACE).start()
    cleanup.push_async_callback(view.stop)
    receiver = AlertReceiver().start()
    cleanup.callback(receiver.stop)
    http_port = free_port()
    config = {
        "kafka": {"bootstrap_servers": broker.bootstrap, "partitions": 6, **kafka_stack.SINGLE_BROKER},
        "http": {"port": http_port},
        "kubernetes": {"kubeconfig": kube.service_kubeconfig},
        "policy_file": str(work / "policy.yaml"),
        "sinks": [
            {"type": "pagerduty", "url": receiver.pagerduty_url, "routing_key": "demo0000000000000000000000000000"},
            {"type": "slack", "url": receiver.slack_url},
            {"type": "webhook", "url": receiver.webhook_url},
            {"type": "alertmanager", "url": am.url},
        ],
    }
    (work / "policy.yaml").write_text(yaml.safe_dump(POLICY))
    (work / "modelmedic.yaml").write_text(yaml.safe_dump(config))
    settings = load_settings(work / "modelmedic.yaml")
    await ensure_topics(settings.kafka)
    service_log = open(work / "modelmedic.log", "w")
    service = subprocess.Popen(
        [sys.executable, "-m", "modelmedic", "run", "--config", str(work / "modelmedic.yaml")],
        stdout=service_log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    cleanup.callback(_stop_service, service)
    print(f"[modelmedic] service started (pid {service.pid}); status page http://127.0.0.1:{http_port}/status")
    incidents = [Incident.parse(s) for s in args.incident or INCIDENTS]
    timeline = Timeline()
    stop = asyncio.Event()
    watchers = [asyncio.create_task(watch_anomalies(settings, timeline, stop)),
                asyncio.create_task(watch_actions(settings, timeline, stop)),
                asyncio.create_task(watch_alerts(receiver, timeline, stop))]

    async def on_incident(incident: Incident, phase: str, wall: float) -> None:
        if phase == "start":
            timeline.injected[incident.model] = time.monotonic()
        timeline.line("INJECTED" if phase == "start" else "incident over", str(incident))
        if incident.kind == "bad_version" and phase == "start":
            # A release, for real: the Deployment rolls out the next version; the fleet
            # follows what the pods run, so only a rollback ends this incident.
            await admin.set_version(NAMESPACE, incident.model, next_versions[incident.model])
            timeline.line("DEPLOYED", f"{incident.model} {next_versions[incident.model]} rolled out")

    print(f"[modelmedic] fleet: {spec.models} models x {spec.rate:g} req/s for {args.duration:g}s; "
          "the first 30s teach the baselines")
    producer = producer_for(broker.bootstrap)
    await producer.start()
    try:
        await run_live(producer, settings.kafka.topics.inference, spec, incidents, args.duration,
                       on_incident=on_incident, capacity=view.capacity, version=view.version)
        await asyncio.sleep(3)
    finally:
        stop.set()
        await asyncio.gather(*watchers, return_exceptions=True)
        await producer.stop()
    pages = [r.json for r in receiver.accepted if r.kind == "pagerduty"]
    triggers = [p for p in pages if p["event_action"] == "trigger"]
    escalations = sum(1 for p in triggers if p["payload"]["summary"].startswith("ESCALATED"))
    print(f"\n[modelmedic] done: {len(incidents)} incidents injected, {len(triggers) - escalations} page(s), "
          f"{escalations} escalation(s), {len(pages) - len(triggers)} resolution(s). "
          f"Service log: {work / 'modelmedic.log'}")
    return 0 if len(triggers) - escalations >= len(incidents) else 1


def _stop_service(service: subprocess.Popen) -> None:
    service.send_signal(signal.SIGTERM)
    service.wait(30)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM ends the demo like Ctrl-C: asyncio cancels it and every component it started is stopped."""
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    logging.basicConfig(level=logging.ERROR)  # the timeline is the demo's output; aiokafka's retries are noise
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=12)
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second per model")
    parser.add_argument("--duration", type=float, default=150.0, help="seconds of traffic")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--incident", action="append", help="KIND:MODEL@START+DURATION[xMAG] (repeatable)")
    try:
        return asyncio.run(demo(parser.parse_args()))
    except KeyboardInterrupt:
        print("\n[modelmedic] demo interrupted; everything it started was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Chaos under fleet load (issue 17): crashes, outages and hostile records against the real local stack.

Starts a real Kafka broker, a real Kubernetes API server (etcd, controllers, KWOK nodes;
cached builds), a strict PagerDuty / Slack / webhook receiver, and ``modelmedic run`` as
its own process, all on loopback; runs the fleet (``load/fleet.py``) against it with a
few scripted incidents whose pages and remediations are known in advance, and meanwhile:

1. SIGKILLs the service under load, right after it publishes an anomaly, and while a
   playbook runs; the script restarts it each time, as a kubelet would (an exit it did not
   cause is restarted too, with a crash-loop backoff, and counted);
2. SIGKILLs the broker and starts it again on the same data;
3. takes the sinks down: HTTP 500 for a while, then accepting and never answering, then up;
4. stops the kube-apiserver during a remediation and starts it again;
5. sends poison records to every topic the service consumes (inference, labels,
   anomalies, incidents) and a pickle whose ``__reduce__`` runs a shell command under
   every partition's snapshot key on the state topic, then SIGKILLs the service so the
   next start reads them all; one more incident follows, to show the service still works.

At the end it prints, with the figures that are owed zero marked ``*``: pages expected /
delivered / missing / duplicated per sink (and resolves that arrived without their page),
actions expected / done / missing / duplicated (from the Deployments' Events and the
audit topic), inference records lost (the last start of the service, from its committed
offsets to the log end, against what its ``/metrics`` counted), restarts survived,
unexpected exits, whether the pickle ran, the dead-letter topic by source and reason,
and the service's RSS before and after. Exit status 1 when any owed-zero figure is not.

    python load/chaos.py --quick     # about 6 minutes
    python load/chaos.py             # about 12 minutes

Everything it starts is stopped at the end, on failure and on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import pickle
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import yaml  # noqa: E402
from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient  # noqa: E402
from aiokafka.errors import KafkaError  # noqa: E402
from kubernetes import client as k8s_client  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from deploy.local import kafka as kafka_stack  # noqa: E402
from deploy.local import kube as kube_stack  # noqa: E402
from deploy.local.procs import free_port, read_pid, spawn, stop_pid  # noqa: E402
from load.cluster import ClusterView, create_models  # noqa: E402
from load.fleet import FleetSpec, Incident, producer_for, profiles, run_live  # noqa: E402
from modelmedic.config import Settings, load_settings  # noqa: E402
from modelmedic.kafka import ensure_topics  # noqa: E402
from modelmedic.kube import KubeClient  # noqa: E402

try:  # the receiver is moving into the package; either home will do
    from modelmedic.testing import AlertReceiver  # type: ignore[attr-defined]  # noqa: E402
except ImportError:
    from load.receiver import AlertReceiver  # noqa: E402

log = logging.getLogger("chaos")
NAMESPACE = "models"
SINKS = ("pagerduty", "slack", "webhook")
POLICY = {
    "targets": {"namespace": NAMESPACE},
    "guard_rails": {"cooldown_s": 30, "storm_window_s": 10},
    "rules": [{
        "match": {"anomaly_class": ["latency", "throughput"]},
        # No registry here: the previous revision is the target, unchecked (docs/releases.md, "Rollback safety").
        "playbooks": [{"name": "rollback", "params": {"require_certified": False}},
                      {"name": "scale-out", "params": {"step": 2, "max_replicas": 6}}],
        "verify_s": 20,
        "escalation": [{"after_s": 0, "severity": "error"}],
    }],
}
"""Roll back a fresh release, else scale out; 20 s to recover, then one escalation. Storms are judged over
10 s (not 60): the broker outage makes one, and it must not swallow the next injected incident."""


# ============================================================ the tally (pure; tests/unit/test_chaos_tally.py)


@dataclass(frozen=True)
class Expected:
    """An injected incident: one model, one page and its resolve per sink, one remediation."""

    model: str
    label: str
    may_escalate_instead: bool = False
    """True when the fault makes acting impossible (the API server is down): escalating is then right too."""


@dataclass(frozen=True)
class Page:
    """One accepted request to a sink, reduced to what identifies the message."""

    sink: str
    incident_id: str
    status: str
    """``firing`` or ``resolved``."""
    level: int
    """Escalation level of a firing page (0 for resolves: PagerDuty's resolve does not carry it)."""
    model: str | None
    """None when the payload does not say (a PagerDuty resolve): found through the incident's other pages."""
    at: float


_SLACK_MODEL = re.compile(r" on (?P<model>\S+) \S+(?: \(escalation \d+\))?$")
_SLACK_CONTEXT = re.compile(r"incident (?P<id>\S+) · escalation level (?P<level>\d+)")


def page_of(kind: str, body: Any, at: float) -> Page | None:
    """The message a sink accepted, from its payload (None for what is not a modelmedic page)."""
    if not isinstance(body, dict):
        return None
    if kind == "webhook" and isinstance(body.get("alert"), dict):
        a = body["alert"]
        level = a["escalation_level"] if a["status"] == "firing" else 0
        return Page(kind, a["incident_id"], a["status"], level, a["model"], at)
    if kind == "pagerduty" and isinstance(body.get("dedup_key"), str):
        incident_id = body["dedup_key"].removeprefix("modelmedic-")
        if body.get("event_action") != "trigger":
            return Page(kind, incident_id, "resolved", 0, None, at)
        payload = body["payload"]
        return Page(kind, incident_id, "firing", int(payload["custom_details"].get("escalation_level", 0)),
                    payload.get("group"), at)
    if kind == "slack" and isinstance(body.get("blocks"), list):
        title = body["blocks"][0]["text"]["text"]
        context = next((m for b in body["blocks"] if b.get("type") == "context"
                        for m in [_SLACK_CONTEXT.search(b["elements"][0].get("text", ""))] if m), None)
        if context is None:
            return None
        resolved = title.startswith(":white_check_mark: RESOLVED")
        found = _SLACK_MODEL.search(title)
        return Page(kind, context["id"], "resolved" if resolved else "firing",
                    0 if resolved else int(context["level"]), found["model"] if found else None, at)
    return None


@dataclass
class PageTally:
    """One sink's pages against the injected incidents."""

    expected: int = 0
    delivered: int = 0
    duplicated: int = 0
    orphan_resolves: int = 0
    """Resolves of incidents whose firing page this sink never accepted before them."""
    escalations: int = 0
    unexpected: int = 0
    """Incidents paged on models nothing was injected into (storms, false alarms): reported, not owed."""

    @property
    def missing(self) -> int:
        return self.expected - self.delivered


def tally_pages(expected: Iterable[Expected], pages: Iterable[Page], sinks: Iterable[str] = SINKS) -> dict[str, PageTally]:
    """Per sink: each injected incident owes one firing page and one resolve; repeats and orphans are counted."""
    expected, pages = list(expected), sorted(pages, key=lambda p: p.at)
    model_of = {p.incident_id: p.model for p in pages if p.model is not None}
    injected = {e.model for e in expected}
    out: dict[str, PageTally] = {}
    for sink in sinks:
        mine = [p for p in pages if p.sink == sink]
        tally = PageTally(expected=2 * len(expected))
        fired: set[str] = set()
        resolved_after_firing: set[str] = set()
        seen: Counter[tuple[str, str, int]] = Counter()
        for p in mine:
            seen[(p.incident_id, p.status, p.level)] += 1
            if p.status == "firing":
                fired.add(p.incident_id)
            elif p.incident_id in fired:
                resolved_after_firing.add(p.incident_id)
            else:
                tally.orphan_resolves += 1
        tally.duplicated = sum(n - 1 for n in seen.values())
        tally.escalations = sum(1 for (_, status, level) in seen if status == "firing" and level > 0)
        for e in expected:
            ids = {p.incident_id for p in mine if model_of.get(p.incident_id) == e.model}
            tally.delivered += any((i, "firing", 0) in seen for i in ids)
            tally.delivered += bool(ids & resolved_after_firing)
        tally.unexpected = len({p.incident_id for p in mine if p.status == "firing"
                                and model_of.get(p.incident_id) not in injected})
        out[sink] = tally
    return out


@dataclass(frozen=True)
class Act:
    """One change modelmedic made to a Deployment, as the Event it left there says."""

    model: str
    incident_id: str
    reason: str
    """The Event's reason: ``ModelmedicScaledOut``, ``ModelmedicRolledBack``..."""
    count: int = 1


@dataclass
class ActionTally:
    expected: int = 0
    done: int = 0
    escalated_instead: int = 0
    """Incidents where acting was impossible (API server down) and the service escalated instead."""
    duplicated: int = 0
    """Events beyond the first per (incident, reason) on the Deployments."""
    duplicated_in_audit: int = 0
    """``playbook-end`` records with status done beyond the first per idempotency key."""

    @property
    def missing(self) -> int:
        return self.expected - self.done - self.escalated_instead


def tally_actions(expected: Iterable[Expected], acts: Iterable[Act], escalated_models: set[str],
                  audit: Iterable[dict]) -> ActionTally:
    """Each injected incident owes one action on its model's Deployment (or, when allowed, an escalation)."""
    expected, acts = list(expected), list(acts)
    tally = ActionTally(expected=len(expected))
    acted = {a.model for a in acts}
    for e in expected:
        if e.model in acted:
            tally.done += 1
        elif e.may_escalate_instead and e.model in escalated_models:
            tally.escalated_instead += 1
    per_action: Counter[tuple[str, str]] = Counter()
    for a in acts:
        per_action[(a.incident_id, a.reason)] += a.count
    tally.duplicated = sum(n - 1 for n in per_action.values())
    done_keys = Counter(r["details"].get("idempotency_key") or (r["incident_id"], r["details"].get("playbook"))
                        for r in audit if r.get("action") == "playbook-end" and r["details"].get("status") == "done")
    tally.duplicated_in_audit = sum(n - 1 for n in done_keys.values())
    return tally


def incident_of_event(message: str) -> str | None:
    """The incident id modelmedic writes at the end of every Event it leaves: ``... (incident ID)``."""
    found = re.search(r"\(incident (\S+)\)$", message or "")
    return found.group(1) if found else None


# ============================================================ hostile input


def deep_json(levels: int, total_bytes: int, **fields: Any) -> bytes:
    """A JSON object with ``fields``, an unknown field nested ``levels`` deep, padded to exactly ``total_bytes``."""
    head = json.dumps(fields)[:-1].encode() + b', "pad": "'
    tail = b'", "extra": ' + b"[" * levels + b"]" * levels + b"}"
    pad = total_bytes - len(head) - len(tail)
    if pad < 0:
        raise ValueError(f"{levels} levels do not fit in {total_bytes} bytes")
    return head + b"x" * pad + tail


def poison_records(model: str, now_ms: int) -> dict[str, bytes]:
    """The records of issue 17: each broke a consumer once. Sent as they are to every consumed topic."""
    record = {"model": model, "version": "v1.1.0", "role": "production", "request_id": "poison", "ts": now_ms,
              "latency_ms": 3.0, "ok": True, "label": "approve"}
    return {
        "deep 30,000 levels (64 KiB)": deep_json(30_000, 64 * 1024, **record),
        "deep + negative latency": deep_json(30_000, 64 * 1024, **{**record, "latency_ms": -1.0}),
        "negative latency": json.dumps({**record, "latency_ms": -1.0}).encode(),
        "ts 0": json.dumps({**record, "ts": 0}).encode(),
        "duplicate fields": json.dumps(record)[:-1].encode() + b', "model": "x", "latency_ms": -5}',
        "not JSON": b"\x80\x81\xfe\xff{not json",
    }


class _Exploit:
    """Pickles to ``os.system(command)``: what an attacker with write access to the state topic sends."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        return os.system, (self.command,)


def pickle_bomb(marker: Path) -> bytes:
    """A snapshot-shaped blob (zlib over pickle, as the service writes them) that touches ``marker`` when loaded."""
    return zlib.compress(pickle.dumps(_Exploit(f"touch {shlex.quote(str(marker))}")))


# ============================================================ the pieces under test


class FaultySinks(AlertReceiver):
    """The alert receiver with outages: every request answered 500, or accepted and never answered."""

    def __init__(self) -> None:
        super().__init__()
        self.mode = "up"
        self._released = threading.Event()
        self._released.set()

    def start(self) -> "FaultySinks":
        super().start()
        # A hung request's client is gone when it is finally answered: that broken pipe is the point.
        self._server.handle_error = lambda request, address: log.debug("receiver: %s gave up", address)
        return self

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        (self._released.clear if mode == "hang" else self._released.set)()

    def _take_failure(self) -> tuple[int, str | None] | None:
        if self.mode == "hang":
            self._released.wait()
            return 503, None
        if self.mode == "error":
            return 500, None
        return super()._take_failure()


class ServiceProcess:
    """``modelmedic run`` as a child process, restarted like a kubelet would: after our SIGKILLs, and
    after any exit we did not cause (counted, with a crash-loop backoff of 1 s doubling to 8 s)."""

    def __init__(self, config: Path, log_path: Path, port: int, timeline: Callable[[str, str], None]) -> None:
        self.config, self.log_path, self.port, self.line = config, log_path, port, timeline
        self.proc: asyncio.subprocess.Process | None = None
        self.kills = 0
        self.ready_after: list[float | None] = []
        """Seconds to /readyz after each of our SIGKILLs (None: never within the limit)."""
        self.unexpected_exits: list[int] = []
        self.exit_errors: list[str] = []
        """The last exception line in the service's log at each unexpected exit."""
        self.rss_peak_mb = 0.0
        self._expected_exit = False
        self._watch: asyncio.Task | None = None
        self._http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2.0)
        self._log = open(log_path, "ab")

    async def start(self) -> None:
        self._expected_exit = False
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "modelmedic", "run", "--config", str(self.config),
            stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._watch = asyncio.create_task(self._supervise(self.proc))

    async def _supervise(self, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if self._expected_exit:
            return
        self.unexpected_exits.append(code)
        self.exit_errors.append(last_error(self.log_path))
        delay = min(8.0, 2.0 ** (len(self.unexpected_exits) - 1))
        self.line("SERVICE EXITED", f"exit {code} (not ours; #{len(self.unexpected_exits)}); restarting in {delay:g}s")
        await asyncio.sleep(delay)
        await self.start()

    async def kill(self, why: str) -> None:
        """SIGKILL (no chance to clean up) and wait until it is gone."""
        assert self.proc is not None
        self._expected_exit = True
        if self._watch is not None:  # a crash-loop restart pending would start a second service
            self._watch.cancel()
        self.sample_rss()
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        self.kills += 1
        self.line("SIGKILL", f"service #{self.kills}: {why}")

    async def restart_after_kill(self, limit_s: float = 90.0) -> None:
        t0 = time.monotonic()
        await self.start()
        ready = await self.wait_ready(limit_s)
        self.ready_after.append(time.monotonic() - t0 if ready else None)
        self.line("restarted", f"ready after {time.monotonic() - t0:.1f}s" if ready else f"NOT ready within {limit_s:g}s")

    async def wait_ready(self, limit_s: float) -> bool:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await self._http.get("/readyz")).status_code == 200:
                    return True
            await asyncio.sleep(0.2)
        return False

    def sample_rss(self) -> float:
        """Resident memory of the running service in MB (0 when none runs)."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text() if self.proc else ""
        except FileNotFoundError:
            return 0.0
        found = re.search(r"VmRSS:\s+(\d+) kB", status)
        mb = int(found.group(1)) / 1024 if found else 0.0
        self.rss_peak_mb = max(self.rss_peak_mb, mb)
        return mb

    async def events_counted(self) -> int | None:
        """Records the running service counted (``modelmedic_events_total``, every outcome); None if it does not answer."""
        try:
            text = (await self._http.get("/metrics")).text
        except httpx.HTTPError:
            return None
        return int(sum(s.value for f in text_string_to_metric_families(text) if f.name == "modelmedic_events"
                       for s in f.samples if s.name == "modelmedic_events_total"))

    async def stop(self) -> None:
        self._expected_exit = True
        if self._watch is not None:
            self._watch.cancel()
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self._http.aclose()
        self._log.close()


class Tap:
    """Every record of one topic since the run began, decoded leniently (poison goes there too)."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.settings, self.topic = settings, topic
        self.records: list[tuple[float, dict]] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> "Tap":
        c = AIOKafkaConsumer(self.topic, bootstrap_servers=self.settings.kafka.bootstrap_servers,
                             group_id=None, auto_offset_reset="earliest")
        await c.start()
        self._task = asyncio.create_task(self._run(c))
        return self

    async def _run(self, c: AIOKafkaConsumer) -> None:
        try:
            while True:
                try:
                    batch = await c.getmany(timeout_ms=500)
                except KafkaError as exc:  # the broker is down on purpose for a while
                    log.debug("tap %s: %s", self.topic, exc)
                    await asyncio.sleep(0.5)
                    continue
                for r in (r for rs in batch.values() for r in rs):
                    try:
                        value = json.loads(r.value)
                    except (ValueError, RecursionError, TypeError):
                        continue
                    if isinstance(value, dict):
                        self.records.append((time.time(), value))
                        self._changed.set()
        finally:
            await c.stop()

    async def wait(self, match: Callable[[dict], bool], timeout_s: float) -> dict | None:
        """The first record (old or new) that ``match`` accepts; None if none comes within ``timeout_s``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while True:
                    self._changed.clear()
                    for _, r in self.records:
                        if match(r):
                            return r
                    await self._changed.wait()
        return None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class CountingProducer:
    """The fleet's producer, counting what the broker acknowledged and what it never took."""

    def __init__(self, bootstrap: str) -> None:
        self.inner = producer_for(bootstrap)
        self.acked = 0
        self.failed = 0

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future:
        try:
            future = await self.inner.send(topic, value, key=key)
        except KafkaError:
            self.failed += 1
            done = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        future.add_done_callback(self._count)
        return future

    def _count(self, future: asyncio.Future) -> None:
        if future.cancelled() or future.exception() is not None:
            self.failed += 1
        else:
            self.acked += 1

    async def flush(self) -> None:
        await self.inner.flush()


# ============================================================ the run


@dataclass(frozen=True)
class Plan:
    """When each fault happens, in seconds of traffic; incidents in the fleet's compact form."""

    models: int
    rate: float
    mid_batch_kills: tuple[float, ...]
    kill_incident: str
    broker_at: float
    broker_down_s: float
    sink_at: float
    sink_error_s: float
    sink_hang_s: float
    sink_incident: str
    api_incident: str
    api_down_s: float
    poison_at: float
    last_incident: str
    traffic_s: float
    drain_s: float


QUICK = Plan(models=20, rate=50, mid_batch_kills=(10,), kill_incident="overload:model-003@35+40x3",
             broker_at=90, broker_down_s=5, sink_at=120, sink_error_s=15, sink_hang_s=15,
             sink_incident="bad_version:model-006@125+60", api_incident="overload:model-009@160+30x3", api_down_s=15,
             poison_at=190, last_incident="latency_spike:model-001@255+20x5", traffic_s=290, drain_s=30)
"""About 6 minutes with the stack's start: each restart of the service takes about 20 s (joining its groups)."""
FULL = Plan(models=30, rate=50, mid_batch_kills=(12, 45), kill_incident="overload:model-003@70+60x3",
            broker_at=150, broker_down_s=15, sink_at=200, sink_error_s=30, sink_hang_s=30,
            sink_incident="bad_version:model-006@205+90", api_incident="overload:model-009@300+60x3", api_down_s=30,
            poison_at=380, last_incident="latency_spike:model-001@450+40x5", traffic_s=520, drain_s=60)


@dataclass
class Observed:
    """What the run saw, for the report."""

    notes: list[str] = field(default_factory=list)
    rss_before_mb: float = 0.0
    rss_after_mb: float = 0.0
    poison_sent: Counter[str] = field(default_factory=Counter)
    final_start: dict[TopicPartition, int] = field(default_factory=dict)
    final_end: dict[TopicPartition, int] = field(default_factory=dict)
    final_counted: int | None = None


class Chaos:
    """The stack, the fleet and the faults of one run."""

    def __init__(self, plan: Plan, work: Path, cleanup: contextlib.AsyncExitStack) -> None:
        self.plan, self.work, self.cleanup = plan, work, cleanup
        self.t0 = time.monotonic()
        self.seen = Observed()
        self.incidents = [Incident.parse(s) for s in (plan.kill_incident, plan.sink_incident, plan.api_incident,
                                                      plan.last_incident)]
        api = self.incidents[2]
        self.expected = [Expected(i.model, str(i), may_escalate_instead=i is api) for i in self.incidents]
        self.pickle_marker = work / "pickle-executed"

    def line(self, what: str, detail: str) -> None:
        print(f"  T+{time.monotonic() - self.t0:6.1f}s  {what:<16} {detail}", flush=True)

    async def at(self, t_s: float) -> None:
        """Until ``t_s`` seconds of traffic (at once if already past)."""
        await asyncio.sleep(max(0.0, self.traffic_t0 + t_s - time.monotonic()))

    # -- setup

    async def start_stack(self) -> None:
        w = self.work
        self.cleanup.callback(kafka_stack.stop, w / "kafka")
        self.broker = kafka_stack.start(w / "kafka", partitions=6)
        self.line("stack", f"Kafka at {self.broker.bootstrap}")
        self.cleanup.callback(kube_stack.stop, w / "kube")
        self.kube = kube_stack.start(w / "kube")
        kube_stack.grant(self.kube, NAMESPACE)
        self.line("stack", f"Kubernetes API at {self.kube.server}")
        spec = FleetSpec(models=self.plan.models, rate=self.plan.rate, seed=17)
        self.spec = spec
        self.admin = KubeClient.from_kubeconfig(self.kube.admin_kubeconfig)
        self.next_versions = {p.model: p.next_version for p in profiles(spec)}
        await create_models(self.admin, NAMESPACE, {p.model: p.stable_version for p in profiles(spec)}, replicas=1)
        self.view = await ClusterView(KubeClient.from_kubeconfig(self.kube.service_kubeconfig), NAMESPACE).start()
        self.cleanup.push_async_callback(self.view.stop)
        self.receiver = FaultySinks().start()
        self.cleanup.callback(self.receiver.stop)
        self.cleanup.callback(self.receiver.set_mode, "up")  # a hung request must not outlive the run
        self.port = free_port()
        (w / "policy.yaml").write_text(yaml.safe_dump(POLICY))
        (w / "modelmedic.yaml").write_text(yaml.safe_dump({
            "kafka": {"bootstrap_servers": self.broker.bootstrap, "partitions": 6, **kafka_stack.SINGLE_BROKER},
            "http": {"port": self.port},
            "kubernetes": {"kubeconfig": self.kube.service_kubeconfig},
            "policy_file": str(w / "policy.yaml"),
            "sinks": [{"type": "pagerduty", "url": self.receiver.pagerduty_url, "routing_key": "c" * 32},
                      {"type": "slack", "url": self.receiver.slack_url},
                      {"type": "webhook", "url": self.receiver.webhook_url}],
        }))
        self.settings = load_settings(w / "modelmedic.yaml")
        await ensure_topics(self.settings.kafka)
        self.anomalies = await Tap(self.settings, self.settings.kafka.topics.anomalies).start()
        self.cleanup.push_async_callback(self.anomalies.stop)
        self.audit = await Tap(self.settings, self.settings.kafka.topics.audit).start()
        self.cleanup.push_async_callback(self.audit.stop)
        self.service = ServiceProcess(w / "modelmedic.yaml", w / "modelmedic.log", self.port, self.line)
        self.cleanup.push_async_callback(self.service.stop)
        await self.service.start()
        if not await self.service.wait_ready(120):
            raise RuntimeError(f"modelmedic never became ready; see {w / 'modelmedic.log'}")
        self.line("stack", f"service ready (pid {self.service.proc.pid}); logs in {w}")

    # -- faults

    async def kill_mid_batch(self) -> None:
        before = await self.service.events_counted() or 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                while (await self.service.events_counted() or 0) <= before:  # it is consuming right now
                    await asyncio.sleep(0.05)
        await self.service.kill("under load, mid-batch")
        await self.service.restart_after_kill()

    async def kill_around_remediation(self, model: str, timeout_s: float) -> None:
        firing = await self.anomalies.wait(lambda a: a.get("model") == model and a.get("state") == "firing", timeout_s)
        if firing is None:
            self.seen.notes.append(f"{model}: no anomaly within {timeout_s:g}s, so no kill right after one")
        else:
            await self.service.kill(f"right after the anomaly on {model}")
            await self.service.restart_after_kill()
        start = await self.audit.wait(lambda r: r.get("model") == model and r.get("action") == "playbook-start"
                                      and r["details"].get("playbook") == "scale-out", timeout_s)
        if start is None:
            self.seen.notes.append(f"{model}: no scale-out started within {timeout_s:g}s, so no kill during one")
            return
        await self.service.kill(f"during scale-out of {model}")
        await self.service.restart_after_kill()

    async def kill_broker(self) -> None:
        pid = read_pid(self.broker.pidfile)
        if pid is None:
            raise RuntimeError(f"the broker is not running (pid file {self.broker.pidfile})")
        await asyncio.to_thread(_sigkill_and_reap, pid)
        self.line("BROKER KILLED", f"SIGKILL pid {pid}; down for {self.plan.broker_down_s:g}s")
        await asyncio.sleep(self.plan.broker_down_s)
        self.broker = await asyncio.to_thread(kafka_stack.start, self.work / "kafka", 6)
        self.line("broker back", f"at {self.broker.bootstrap}")

    async def sink_outage(self) -> None:
        self.receiver.set_mode("error")
        self.line("SINKS DOWN", f"every request answered 500 for {self.plan.sink_error_s:g}s")
        await asyncio.sleep(self.plan.sink_error_s)
        self.receiver.set_mode("hang")
        self.line("SINKS HUNG", f"requests accepted, never answered, for {self.plan.sink_hang_s:g}s")
        await asyncio.sleep(self.plan.sink_hang_s)
        self.receiver.set_mode("up")
        self.line("sinks back", "answering normally")

    async def api_outage(self, model: str, timeout_s: float) -> None:
        start = await self.audit.wait(lambda r: r.get("model") == model and r.get("action") == "playbook-start", timeout_s)
        if start is None:
            self.seen.notes.append(f"{model}: no playbook started within {timeout_s:g}s; the API server was stopped anyway")
        pidfile = Path(self.kube.workdir) / "kube-apiserver.pid"
        command = Path(f"/proc/{pidfile.read_text().strip()}/cmdline").read_bytes().decode().split("\0")[:-1]
        await asyncio.to_thread(stop_pid, pidfile, 10.0)
        self.line("API SERVER DOWN", f"kube-apiserver stopped during {start['details']['playbook'] if start else 'no'} "
                  f"playbook of {model}, for {self.plan.api_down_s:g}s")
        await asyncio.sleep(self.plan.api_down_s)
        spawn(command, Path(self.kube.workdir) / "logs" / "kube-apiserver.log", pidfile)
        deadline = time.monotonic() + 60
        while not kube_stack._readyz(self.kube.server, self.kube.admin_token, self.kube.ca_file):
            if time.monotonic() > deadline:
                raise RuntimeError("kube-apiserver did not come back within 60s")
            await asyncio.sleep(0.2)
        self.line("API server back", self.kube.server)

    async def poison(self) -> None:
        k = self.settings.kafka
        producer = producer_for(self.broker.bootstrap)
        await producer.start()
        try:
            bad = poison_records("model-000", int(time.time() * 1000))
            for topic in (k.topics.inference, k.topics.labels, k.topics.anomalies, k.topics.incidents):
                for i, (name, raw) in enumerate(bad.items()):
                    key = f"poison-{i}".encode() if topic == k.topics.incidents else f"model-{i:03d}".encode()
                    await producer.send(topic, raw, key=key)
                    self.seen.poison_sent[topic] += 1
            await producer.flush()
            self.line("POISON", f"{len(bad)} records on each of inference, labels, anomalies, incidents")
            alive = await self.service.wait_ready(10)
            await self.service.kill("after the poison burst" + ("" if alive else " (it was not ready)"))
            for p in range(k.partitions):
                key = f"{k.group_id}:{k.topics.inference}:{p}".encode()
                await producer.send(k.topics.state, pickle_bomb(self.pickle_marker), key=key)
            await producer.flush()
        finally:
            await producer.stop()
        self.line("POISON", f"pickle (os.system) under all {k.partitions} snapshot keys of the state topic")
        self.seen.final_start = await self._offsets(committed=True)
        await self.service.restart_after_kill()

    # -- reading back

    async def _offsets(self, committed: bool) -> dict[TopicPartition, int]:
        """Per partition of inference and labels: the detection group's committed offsets, or the log ends."""
        k = self.settings.kafka
        tps = [TopicPartition(t, p) for t in (k.topics.inference, k.topics.labels) for p in range(k.partitions)]
        if committed:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.broker.bootstrap)
            await admin.start()
            try:
                found = await admin.list_consumer_group_offsets(k.group_id)
            finally:
                await admin.close()
            return {tp: (found[tp].offset if tp in found and found[tp].offset >= 0 else 0) for tp in tps}
        c = AIOKafkaConsumer(bootstrap_servers=self.broker.bootstrap)
        await c.start()
        try:
            return dict(await c.end_offsets(tps))
        finally:
            await c.stop()

    async def settle(self) -> None:
        """After the traffic: until every injected incident is resolved on every sink and the service has
        counted everything (bounded by the plan's drain time)."""
        deadline = time.monotonic() + self.plan.drain_s
        self.seen.final_end = await self._offsets(committed=False)
        owed = sum(self.seen.final_end.values()) - sum(self.seen.final_start.values())
        while time.monotonic() < deadline:
            self.seen.final_counted = await self.service.events_counted()
            tally = tally_pages(self.expected, self.pages())
            if self.seen.final_counted is not None and self.seen.final_counted >= owed \
                    and all(t.missing == 0 for t in tally.values()):
                break
            await asyncio.sleep(0.5)

    async def until_resolved(self, expected: list[Expected], timeout_s: float) -> None:
        """Until every sink has the page and the resolve of each of ``expected`` (or ``timeout_s`` passed)."""
        deadline = time.monotonic() + timeout_s
        while any(t.missing for t in tally_pages(expected, self.pages()).values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)

    def pages(self) -> list[Page]:
        return [p for r in self.receiver.accepted if (p := page_of(r.kind, r.json, r.received_at)) is not None]

    async def acts(self) -> list[Act]:
        core = k8s_client.CoreV1Api(self.admin.api_client)
        events = await asyncio.to_thread(core.list_namespaced_event, NAMESPACE)
        return [Act(e.involved_object.name, incident_of_event(e.message) or "?", e.reason, e.count or 1)
                for e in events.items if (e.source and e.source.component == "modelmedic")]

    async def dead_letters(self) -> Counter[tuple[str, str]]:
        """The dead-letter topic by source topic and reason (numbers blanked, first 70 characters)."""
        k = self.settings.kafka
        c = AIOKafkaConsumer(bootstrap_servers=self.broker.bootstrap, auto_offset_reset="earliest")
        await c.start()
        out: Counter[tuple[str, str]] = Counter()
        try:
            tps = [TopicPartition(k.topics.dlq, p) for p in range(k.partitions)]
            c.assign(tps)
            ends = await c.end_offsets(tps)
            await c.seek_to_beginning(*tps)
            while [tp for tp in tps if await c.position(tp) < ends[tp]]:
                for r in (r for rs in (await c.getmany(timeout_ms=500)).values() for r in rs):
                    headers = {name: value.decode(errors="replace") for name, value in r.headers}
                    reason = re.sub(r"\d[\d,.]*", "N", headers.get("reason", "?"))[:70]
                    out[(headers.get("source.topic", "?").rsplit(".", 1)[-1], reason)] += 1
        finally:
            await c.stop()
        return out

    # -- the scenario

    async def run(self) -> None:
        p = self.plan
        producer = CountingProducer(self.broker.bootstrap)
        self.producer = producer
        await producer.inner.start()
        self.cleanup.push_async_callback(producer.inner.stop)

        async def on_incident(incident: Incident, phase: str, wall: float) -> None:
            self.line("INJECTED" if phase == "start" else "incident over", str(incident))
            if incident.kind == "bad_version" and phase == "start":
                await self.admin.set_version(NAMESPACE, incident.model, self.next_versions[incident.model])

        self.traffic_t0 = time.monotonic()
        fleet = asyncio.create_task(run_live(producer, self.settings.kafka.topics.inference, self.spec, self.incidents,
                                             p.traffic_s, on_incident=on_incident,
                                             capacity=self.view.capacity, version=self.view.version))
        self.line("fleet", f"{p.models} models x {p.rate:g} req/s for {p.traffic_s:g}s")
        try:
            for i, t in enumerate(p.mid_batch_kills):
                await self.at(t)
                if i == 0:
                    self.seen.rss_before_mb = self.service.sample_rss()
                await self.kill_mid_batch()
            a, b, c, d = self.incidents
            await self.at(a.start_s)
            await self.kill_around_remediation(a.model, a.duration_s)
            await self.at(p.broker_at)
            await self.kill_broker()
            await self.at(p.sink_at)
            await self.sink_outage()
            await self.at(c.start_s)
            await self.api_outage(c.model, c.duration_s)
            await self.at(p.poison_at)
            await self.until_resolved(self.expected[:3], 30.0)  # so a crash-loop from the poison costs none of their pages
            await self.poison()
            await fleet
        finally:
            if not fleet.done():
                fleet.cancel()
                await asyncio.gather(fleet, return_exceptions=True)
        self.line("fleet done", f"{producer.acked} records acknowledged by the broker, {producer.failed} not")
        await self.settle()
        if await self.service.wait_ready(1.0):
            self.seen.rss_after_mb = self.service.sample_rss()
        else:
            self.seen.notes.append("the service was not ready at the end: no RSS after")
        self.dump()

    def dump(self) -> None:
        """What the sinks received and the audit topic held, as JSON lines next to the logs (for a post-mortem)."""
        with open(self.work / "sinks.jsonl", "w") as f:
            for r in self.receiver.requests:
                f.write(json.dumps({"at": r.received_at, "kind": r.kind, "status": r.status, "body": r.json}) + "\n")
        with open(self.work / "audit.jsonl", "w") as f:
            for at, r in self.audit.records:
                f.write(json.dumps({"at": at, **r}) + "\n")


def last_error(log_path: Path) -> str:
    """The last ``SomethingError: message`` line of a log (what a crashed process last raised)."""
    with open(log_path, "rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - 200_000))
        lines = f.read().decode(errors="replace").splitlines()
    found = [line for line in lines if re.match(r"^[\w.]*(Error|Exception)\b.*:", line)]
    return found[-1][:160] if found else "?"


def _sigkill_and_reap(pid: int) -> None:
    """SIGKILL ``pid`` and wait until it is gone (reaped if it is our child, else vanished)."""
    os.kill(pid, signal.SIGKILL)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:  # not ours: init reaps it
        while Path(f"/proc/{pid}").exists():
            time.sleep(0.05)


# ============================================================ the report


async def report(chaos: Chaos) -> int:
    """Print the figures; the exit status is 1 when one owed zero is not."""
    seen, owed = chaos.seen, {}
    pages = tally_pages(chaos.expected, chaos.pages())
    audit = [r for _, r in chaos.audit.records]
    escalated = {r["model"] for r in audit if r.get("action") == "escalated"}
    actions = tally_actions(chaos.expected, await chaos.acts(), escalated, audit)
    owed_records = sum(seen.final_end.values()) - sum(seen.final_start.values())
    counted = seen.final_counted or 0
    print("\n== results (* = owed zero) ==")
    print(f"{'pages':<10}{'expected':>9}{'delivered':>10}{'missing*':>9}{'duplicated*':>12}{'orphan resolves*':>17}"
          f"{'escalations':>12}{'unexpected':>11}")
    for sink, t in pages.items():
        print(f"{sink:<10}{t.expected:>9}{t.delivered:>10}{t.missing:>9}{t.duplicated:>12}{t.orphan_resolves:>17}"
              f"{t.escalations:>12}{t.unexpected:>11}")
        owed.update({f"{sink} pages missing": t.missing, f"{sink} pages duplicated": t.duplicated,
                     f"{sink} orphan resolves": t.orphan_resolves})
    print(f"actions: expected {actions.expected}, done {actions.done}, escalated instead (API server down) "
          f"{actions.escalated_instead}, missing* {actions.missing}, duplicated* {actions.duplicated} "
          f"(Deployment Events), {actions.duplicated_in_audit} (audit)")
    owed.update({"actions missing": actions.missing, "actions duplicated": actions.duplicated,
                 "actions duplicated (audit)": actions.duplicated_in_audit})
    lost = max(0, owed_records - counted)
    producer = getattr(chaos, "producer", None)
    print(f"records: {producer.acked if producer else 0} inference records acknowledged by the broker "
          f"({producer.failed if producer else 0} never taken); the last start of the service owed {owed_records} (committed offsets to log end, "
          f"inference + labels), counted {counted}: lost* {lost}")
    owed["records lost"] = lost
    survived = sum(1 for r in chaos.service.ready_after if r is not None)
    slowest = max((r for r in chaos.service.ready_after if r is not None), default=0.0)
    print(f"restarts: {chaos.service.kills} SIGKILLs, ready again after {survived} (slowest {slowest:.1f}s); "
          f"not ready again* {chaos.service.kills - survived}; exits not caused by the script* "
          f"{len(chaos.service.unexpected_exits)}")
    for error, n in Counter(chaos.service.exit_errors).most_common():
        print(f"  {n} x {error}")
    owed["restarts not survived"] = chaos.service.kills - survived
    owed["unexpected exits"] = len(chaos.service.unexpected_exits)
    executed = chaos.pickle_marker.exists()
    print(f"pickle on the state topic executed*: {'YES' if executed else 'no'}")
    owed["pickle executed"] = int(executed)
    print(f"poison sent: {dict(seen.poison_sent)}")
    print("dead-letter topic by source topic and reason:")
    for (topic, reason), n in sorted((await chaos.dead_letters()).items()):
        print(f"  {n:>6}  {topic:<10} {reason}")
    print(f"RSS: before {seen.rss_before_mb:.0f} MB, after {seen.rss_after_mb:.0f} MB, "
          f"peak {chaos.service.rss_peak_mb:.0f} MB")
    for note in seen.notes:
        print(f"note: {note}")
    bad = {k: v for k, v in owed.items() if v}
    print("owed zero: " + ("all zero" if not bad else "NOT zero: " + ", ".join(f"{k} {v}" for k, v in bad.items())))
    return 1 if bad else 0


async def chaos_main(args: argparse.Namespace) -> int:
    plan = QUICK if args.quick else FULL
    work = Path(tempfile.mkdtemp(prefix="modelmedic-chaos-"))
    print(f"[chaos] {'quick' if args.quick else 'full'} run; files and logs in {work}", flush=True)
    async with contextlib.AsyncExitStack() as cleanup:
        chaos = Chaos(plan, work, cleanup)
        await chaos.start_stack()
        try:
            await chaos.run()
        except Exception as exc:  # report what was seen; the stack is stopped either way
            log.exception("the scenario failed")
            chaos.seen.notes.append(f"the scenario stopped early: {type(exc).__name__}: {exc}")
            await report(chaos)
            return 1
        return await report(chaos)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM ends the run like Ctrl-C: everything it started is stopped."""
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter phases, one kill under load (about 5 minutes)")
    try:
        return asyncio.run(chaos_main(parser.parse_args()))
    except KeyboardInterrupt:
        print("\n[chaos] interrupted; everything it started was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The always-on service: detection plane, response plane and HTTP endpoint in one process.

SIGTERM/SIGINT set one stop event; each plane stops taking new batches, checkpoints
(detection) or finishes its current anomaly (response) and returns, well inside a pod's
termination grace period.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import tempfile
import time
import tracemalloc
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelmedic import allocators, logs, metrics
from modelmedic.audit import AuditTail
from modelmedic.audit import follow as follow_audit
from modelmedic.alerting import Alerter, build_sinks, pagerduty_webhook
from modelmedic.config import Settings
from modelmedic.errors import RegistryError
from modelmedic.events import Anomaly
from modelmedic.detection.features import DATA_QUALITY, FEATURE_DRIFT
from modelmedic.detection.plane import DetectionPlane, PartitionState
from modelmedic.detectors.quality import INSUFFICIENT
from modelmedic.http import HttpServer
from modelmedic.kafka import ensure_topics
from modelmedic.kube import KubeClient
from modelmedic.response.policy import ANOMALY_CLASSES, Policy, load_policy
from modelmedic.registry import Registry, RegistryMirror, RemoteStats, keep_fresh
from modelmedic.detection.usage import UsageRollup
from modelmedic.remediations import default_registry
from modelmedic.response.incidents import Incident
from modelmedic.response.incidents import State as IncidentState
from modelmedic.response.plane import ResponsePlane
from modelmedic.response import silences
from modelmedic.response.silences import Silence

log = logging.getLogger("modelmedic")

GC_THRESHOLD = (50_000, 50, 100)
"""Allocations between young collections, and young (middle) collections between middle
(full) ones. Python's defaults are (700, 10, 10)."""


def tune_gc() -> None:
    """Fit Python's cyclic garbage collector to a streaming service; call once after start-up.

    Every Kafka record costs a few container objects (aiokafka's ``ConsumerRecord``...)
    that live for one batch and are freed by reference counting. With the default
    threshold of 700 allocations they are scanned again and again, promoted, and their
    promotion triggers full collections that walk every long-lived object. Measured on
    300k-record drains: 17 full collections taking ~1 s where the drains took ~3 s; with
    these settings one, and both a plain aiokafka drain and the detection plane ran 35-50%
    faster (docs/benchmarks.md). ``gc.freeze()`` takes what exists after start-up (modules,
    classes, functions: ~90k objects) out of every later collection.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


LOOP_TICK_S = 0.5
LOOP_WINDOW_S = 30.0
"""Twice the chart's scrape interval (15 s): every window's value is scraped at least once."""


async def watch_loop_lag(stop: asyncio.Event, tick_s: float = LOOP_TICK_S, window_s: float = LOOP_WINDOW_S) -> None:
    """Set ``modelmedic_event_loop_lag_seconds`` to the latest a ``tick_s`` timer fired in each ``window_s``.

    The loop's lag is measured from inside, where it hurts: a timer fires late by as long as
    other work held the loop (aiokafka's heartbeats and /readyz wait as long). Each window's
    longest delay is published when the window ends and held through the next one.
    """
    loop = asyncio.get_running_loop()
    longest, window_end = 0.0, loop.time() + window_s
    while not stop.is_set():
        due = loop.time() + tick_s
        await asyncio.sleep(tick_s)
        now = loop.time()
        longest = max(longest, now - due)
        if now >= window_end:
            metrics.LOOP_LAG.set(longest)
            longest, window_end = 0.0, now + window_s


HEAP_DIR_ENV = "MODELMEDIC_HEAP_DIR"
"""Where SIGUSR1 writes the allocators' books and a heap snapshot (:func:`dump_heap`); the system's temporary
directory when unset."""


def dump_heap(directory: Path) -> Path | None:
    """SIGUSR1, a debug hook. Appends the allocators' books (:func:`modelmedic.allocators.books`: what pymalloc
    and malloc hold and what of it is in use, a few ms) to ``directory/alloc-PID.jsonl`` as one JSON line with
    the epoch milliseconds, and, when the service was started with ``PYTHONTRACEMALLOC=N`` (which traces every
    allocation with N frames and costs CPU), writes a tracemalloc snapshot of this process there. Books taken
    apart in time tell retention (held grows, in use does not) from live growth; two snapshots compared
    (``tracemalloc.Snapshot.load(a).compare_to(...)``; ``load/soak.py --heap-every``) tell which lines
    allocated the live growth, which RSS alone cannot. The snapshot blocks the loop while it is written
    (about a second per million live blocks). Returns the snapshot, or None when not tracing."""
    now_ms = f"{1000 * time.time():.0f}"
    held = allocators.books()
    with open(directory / f"alloc-{os.getpid()}.jsonl", "a") as out:
        out.write(json.dumps({"epoch_ms": int(now_ms), **held}) + "\n")
    log.info("allocators: %s", ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in held.items()))
    if not tracemalloc.is_tracing():
        return None
    path = directory / f"heap-{os.getpid()}-{now_ms}.tracemalloc"  # epoch milliseconds
    tracemalloc.take_snapshot().dump(str(path))
    log.info("heap snapshot written to %s (%.1f MB traced)", path, tracemalloc.get_traced_memory()[0] / 1e6)
    return path


class Serving(typing.NamedTuple):
    """A version and role of a model with a live series (modelmedic.http.source.ServingView)."""

    version: str
    role: str
    last_window_end_ms: int


class QualityStatus(typing.NamedTuple):
    """One production version as the quality and input monitors see it (modelmedic.http.source.QualityView)."""

    version: str
    decisions: dict[str, tuple[str, str]]
    estimate: dict[str, float | int | str | None] | None
    data_quality: dict[str, float | int] | None
    drifting_features: list[tuple[str, float, float, int]]
    label_delay: dict[str, int | None] | None = None


def _finite(figures: Mapping[str, Any]) -> dict[str, Any]:
    """Figures with NaN (no data for it yet) as None: JSON has no NaN."""
    return {k: None if isinstance(v, float) and v != v else v for k, v in figures.items()}


def _quality_of(part: PartitionState, model: str) -> list[QualityStatus]:
    """The model's production versions in one partition's quality and input monitors."""
    out = []
    for version, decisions in part.quality.decisions(model).items():
        states = {kind: (d.state, d.message) if d is not None else (INSUFFICIENT, "not started: nothing to judge yet")
                  for kind, d in decisions.items()}
        inputs = part.features.versions.get((model, version)) if part.features is not None else None
        data_quality, drifting = None, []
        if inputs is not None:
            for kind, d in ((DATA_QUALITY, inputs.violations.decision()), (FEATURE_DRIFT, inputs.drift.decision())):
                states[kind] = (d.state, d.message)
            v = inputs.violations
            data_quality = {"requests": v.seen, "violated": v.violated, "budget": v.budget}
            drifting = [(name, round(psi, 6), p, live) for name, psi, p, live in inputs.drift.moved()]
        estimate = part.quality.estimate(model, version)
        out.append(QualityStatus(version, states, None if estimate is None else _finite(estimate), data_quality,
                                 drifting, part.quality.label_delay(model, version)))
    return out


class Service:
    """Both planes and the HTTP endpoint, started and stopped together."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop = asyncio.Event()
        self.alerter = Alerter(build_sinks(settings.sinks))
        self.mirror = _registry_mirror(settings)
        path = self.mirror.path if self.mirror else settings.registry
        self.registry = Registry(path) if path else None
        usage = UsageRollup(self.registry, settings.usage_interval_s) if settings.registry else None
        if self.mirror is not None and settings.registry_git is not None and settings.registry_git.push_stats:
            usage = UsageRollup(RemoteStats(self.mirror), settings.usage_interval_s)  # type: ignore[arg-type]
        self.detection = DetectionPlane(settings, usage=usage, registry=self.registry)
        policy = load_policy(settings.policy_file) if settings.policy_file else Policy()
        default_registry.load_entry_points()
        policy.validate_playbooks(default_registry)  # a typo in the policy fails now, not mid-incident
        self.k8s = _kube_client(settings)
        self.response = ResponsePlane(settings, self.alerter, policy=policy, playbooks=default_registry, k8s=self.k8s,
                                      registry=self.registry)
        self.audit_tail = AuditTail()
        """The audit topic's newest records, followed (modelmedic.audit says why the topic and not the plane)."""
        self.http = HttpServer(settings.http, self)
        metrics.READY.set_function(lambda: float(self.ready()))
        metrics.STATE_UNSAVED.set_function(lambda: float(len(self.detection.unsaved())))
        metrics.TOP_MODELS.source = lambda: ((i.model, i.anomaly_class) for i in self.response.book.open_incidents())

    # -- the status interface the HTTP endpoint reads (modelmedic.http.StatusSource) ------------

    def ready(self) -> bool:
        return self.detection.ready.is_set() and self.response.ready.is_set()

    def incidents(self) -> list[Incident]:
        return list(self.response.book.by_id.values())

    def open_incidents(self) -> list[Incident]:
        return list(self.response.book.open_incidents())

    def incident(self, incident_id: str) -> Incident | None:
        return self.response.book.by_id.get(incident_id)

    def incident_states(self) -> tuple[str, ...]:
        return typing.get_args(IncidentState)

    def anomaly_classes(self) -> tuple[str, ...]:
        return ANOMALY_CLASSES

    def owners(self, model: str) -> tuple[str, ...]:
        """The registry's owners of ``model`` (a small YAML read); none without a registry or for an unknown model."""
        if self.registry is None:
            return ()
        try:
            return self.registry.spec(model).owners
        except RegistryError:
            return ()

    def serving(self, model: str) -> list[Serving]:
        """The model's live series in the detection plane: one pass over every partition's series index
        (a page view, not the hot path)."""
        found = []
        for part in self.detection.parts.values():
            w = part.windows
            for (m, version, role), slot in w.slot_of.items():
                if m == model:
                    found.append(Serving(version, role, (w.last_window[slot] + 1) * w.size_ms))
        return found

    def quality(self, model: str) -> list[QualityStatus]:
        """The model's production versions in every partition's quality monitor (a page view, not the hot path)."""
        return [q for part in self.detection.parts.values() if part.quality is not None for q in _quality_of(part, model)]

    def recent_decisions(self, n: int) -> list[Anomaly]:
        return self.detection.published[-n:]

    def decisions_of(self, model: str) -> list[Anomaly]:
        return [a for a in self.detection.published if a.model == model]

    def counters(self) -> dict[str, int]:
        return {
            "partitions": len(self.detection.parts),
            "series": sum(len(p.windows.slot_of) for p in self.detection.parts.values()),
            "events": self.detection.processed,
            "incidents": len(self.response.book.by_id),
            **{f"insufficient_data_{family}": n for family, n in self.detection.judge.insufficient_data().items()},
        }

    def silences(self) -> list[Silence]:
        return self.response.silences.current(int(time.time() * 1000))

    def audit(self) -> AuditTail:
        return self.audit_tail

    async def add_silence(self, fields: Mapping[str, Any], by: str) -> Silence:
        """Made through the API: published like ``modelmedic silence add``'s, and held here at once
        (this replica reads its own write; the follower applies the same record again)."""
        silence = silences.new_silence(created_by=by, **fields)
        await silences.add(self.settings.kafka, silence)
        self.response.silences.put(silence)
        return silence

    async def remove_silence(self, silence_id: str, by: str) -> Silence:
        silence = self.response.silences.by_id.get(silence_id)
        if silence is None:
            raise KeyError(f"no silence, maintenance window or pause {silence_id!r}: list them with GET /api/v1/silences")
        await silences.remove(self.settings.kafka, silence, by)
        self.response.silences.remove(silence_id)
        return silence

    def webhooks(self) -> list[tuple[str, str, Any]]:
        """PagerDuty's webhook, when a PagerDuty sink has a ``webhook_secret``: acks and resolves from there."""
        secrets = [s.webhook_secret.get_secret_value() for s in self.settings.sinks if s.webhook_secret is not None]
        return [("POST", pagerduty_webhook.PATH, pagerduty_webhook.PagerDutyWebhook(secrets, self.response).handle)] \
            if secrets else []

    async def acknowledge(self, incident_id: str, by: str) -> Incident:
        return await self.response.acknowledge(incident_id, by)

    async def resolve(self, incident_id: str, by: str) -> Incident:
        return await self.response.resolve(incident_id, by)

    async def silence(self, incident_id: str, minutes: float, by: str) -> Incident:
        return await self.response.silence(incident_id, minutes, by)

    async def trigger(self, incident_id: str, playbook: str, params: Mapping[str, Any], by: str) -> Any:
        return await self.response.trigger(incident_id, playbook, params, by)

    async def run(self) -> None:
        """Check the topics, then run both planes, the audit tail and the watchers until :attr:`stop` (or one fails).

        The topics are created and checked once here for every consumer of the process: each used to
        do it at its start, so a start described every topic three times and logged each warning
        about them three times. A new :meth:`run` checks them again (a topic deleted and recreated
        meanwhile is seen)."""
        await self.http.start()
        try:
            await ensure_topics(self.settings.kafka)
            tasks = [asyncio.create_task(self.detection.run(self.stop, topics_checked=True), name="detection"),
                     asyncio.create_task(self.response.run(self.stop, topics_checked=True), name="response"),
                     asyncio.create_task(follow_audit(self.settings.kafka, self.audit_tail, self.stop,
                                                      topics_checked=True), name="audit"),
                     asyncio.create_task(watch_loop_lag(self.stop), name="loop-lag")]
            if self.mirror is not None and self.settings.registry_git is not None:
                tasks.append(asyncio.create_task(keep_fresh(self.mirror, self.settings.registry_git.refresh_s,
                                                            self.stop), name="registry"))
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    log.error("%s plane failed: %r; stopping", task.get_name(), task.exception())
                    self.stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            for task in tasks:
                if task.exception() is not None:
                    raise task.exception()
        finally:
            self.stop.set()
            await self.alerter.aclose()
            await self.http.stop()
            if self.k8s is not None:
                self.k8s.close()


def _registry_mirror(settings: Settings) -> RegistryMirror | None:
    """The registry's git remote, cloned now (a bad URL or Secret stops the start with git's message)."""
    remote = settings.registry_git
    if remote is None:
        return None
    mirror = RegistryMirror(remote.url, remote.checkout_dir, ref=remote.ref, credentials_dir=remote.credentials_dir)
    mirror.refresh()
    log.info("registry from %s (%s), snapshot %s, refreshed every %gs", logs.redact_url(remote.url), remote.ref,
             mirror.snapshot, remote.refresh_s)
    return mirror


def _kube_client(settings: Settings) -> KubeClient | None:
    """The Kubernetes client remediations use, or None when none is configured."""
    k = settings.kubernetes
    if k.in_cluster:
        return KubeClient.in_cluster()
    if k.kubeconfig is not None:
        return KubeClient.from_kubeconfig(k.kubeconfig, k.context)
    log.warning("no Kubernetes configured (kubernetes.kubeconfig / kubernetes.in_cluster): "
                "incidents are alerted and escalated, never remediated")
    return None


async def serve(settings: Settings) -> int:
    """``modelmedic run``: run until SIGTERM or SIGINT."""
    logs.setup(settings.log_level, settings.log_format)
    service = Service(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.stop.set)
    loop.add_signal_handler(signal.SIGUSR1, dump_heap, Path(os.environ.get(HEAP_DIR_ENV) or tempfile.gettempdir()))
    log.info("modelmedic starting: kafka %s, %d sink(s), http %s:%d", settings.kafka.bootstrap_servers,
             len(settings.sinks), settings.http.host, settings.http.port)
    await service.run()
    log.info("modelmedic stopped")
    return 0

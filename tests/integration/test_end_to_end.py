"""The whole chain on real components, with no hand-made anomaly record.

A simulated model (load/fleet.py) produces inference events to a real Kafka; its latency
depends on the Ready replicas of its Deployment on a real API server (load/cluster.py's
ClusterView, as the demo does). Traffic triples: one replica overloads, latency climbs.
The real service (modelmedic.app.Service: both planes) detects it, opens an incident,
pages a real HTTP receiver, runs the scale-out playbook through the API server as the
modelmedic identity; the Deployment gets more replicas, the model's latency recovers,
detection says so, the incident is verified and resolved, and the page is resolved.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import yaml

from fixtures_kube import KubeNamespace
from load.cluster import ClusterView
from load.fleet import FleetSpec, Incident, producer_for, profiles, run_live
from modelmedic.app import Service
from modelmedic.config import Settings, SinkSettings
from modelmedic.kafka import consumer, ensure_topics
from modelmedic.kube import LAST_ACTION_ANNOTATION
from modelmedic.response.incidents import Incident as Open
from modelmedic.testing import AlertReceiver

pytestmark = pytest.mark.integration

SPEED = 2.0
"""Event time runs at twice the wall clock: the detectors' 30-window warm-up takes 15 s."""
SPEC = FleetSpec(models=1, rate=40.0, seed=11)
MODEL = "model-000"
OVERLOAD = Incident.parse(f"overload:{MODEL}@40+100000x3")
"""From event second 40 (after the warm-up) traffic triples for good: only more replicas cure it."""


def policy(namespace: str) -> dict:
    return {
        "targets": {"namespace": namespace},
        "guard_rails": {"cooldown_s": 0},
        "rules": [{
            "match": {"anomaly_class": ["latency"]},
            "playbooks": [{"name": "scale-out", "params": {"step": 2, "max_replicas": 6}}],
            "verify_s": 120,
            "escalation": [{"after_s": 0, "severity": "error"}, {"after_s": 3600, "severity": "critical"}],
        }],
    }


@contextlib.asynccontextmanager
async def fleet(settings: Settings, view: ClusterView) -> AsyncIterator[asyncio.Task]:
    """The model's traffic, live, until the test is done with it."""
    producer = producer_for(settings.kafka.bootstrap_servers)
    await producer.start()
    task = asyncio.create_task(run_live(producer, settings.kafka.topics.inference, SPEC, [OVERLOAD], 600.0,
                                        speed=SPEED, capacity=view.capacity))
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()


async def until(check: Callable[[], object], what: str, timeout: float) -> None:
    """Wait for ``check()`` to hold; fail saying ``what`` did not happen."""
    try:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"within {timeout:g}s: {what} did not happen") from None


def latency_incident(service: Service) -> Open | None:
    found = [i for i in service.response.book.by_id.values() if i.model == MODEL and i.anomaly_class == "latency"]
    return found[0] if found else None


async def test_overload_is_detected_paged_scaled_out_verified_and_resolved(
    settings: Settings, receiver: AlertReceiver, kube_stack, kube_admin, kube_namespace: KubeNamespace, tmp_path: Path
) -> None:
    ns = kube_namespace.name
    await kube_namespace.create_model(MODEL, profiles(SPEC)[0].stable_version, replicas=1)
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy(ns)))
    settings = settings.model_copy(update={
        "sinks": [SinkSettings(type="pagerduty", url=receiver.pagerduty_url, routing_key="R" * 32)],
        "policy_file": tmp_path / "policy.yaml",
        "kubernetes": settings.kubernetes.model_copy(update={"kubeconfig": Path(kube_stack.service_kubeconfig)}),
    })
    await ensure_topics(settings.kafka)
    service = Service(settings)
    running = asyncio.create_task(service.run())
    view = await ClusterView(kube_admin, ns, interval_s=0.2).start()
    try:
        async with fleet(settings, view) as traffic:
            # detection -> incident -> page
            page = await receiver.wait_for(lambda r: r.json["payload"]["group"] == MODEL
                                           and r.json["payload"]["class"].startswith("latency"),
                                           kind="pagerduty", timeout=90)
            incident = latency_incident(service)
            assert incident is not None and page[0].json["dedup_key"] == f"modelmedic-{incident.id}"
            # playbook on the real API server -> the Deployment changes
            await until(lambda: view.replicas.get(MODEL, 0) == 3, "the Deployment scaled out to 3 Ready replicas", 90)
            # the fleet's events recover -> verified -> resolved
            await until(lambda: latency_incident(service).state == "resolved", "the incident resolved", 90)
            assert not traffic.done(), "the fleet was still producing: recovery came from the scale-out"
            resolved = await receiver.wait_for(lambda r: r.json["dedup_key"] == page[0].json["dedup_key"]
                                               and r.json["event_action"] == "resolve", kind="pagerduty", timeout=30)
    finally:
        await view.stop()
        service.stop.set()
        await asyncio.wait_for(running, 30)
    incident = latency_incident(service)
    assert [(a.playbook, a.status) for a in incident.attempts] == [("scale-out", "done")] and resolved
    deployment = await kube_admin.get_deployment(ns, MODEL)
    assert deployment.replicas == 3 and deployment.annotations[LAST_ACTION_ANNOTATION] == incident.attempts[0].key
    audit = await audit_of(settings, incident.id, until_action="resolved")
    assert [a["action"] for a in audit if a["action"] != "updated"] == ["opened", "paged", "playbook-start", "playbook-end",
                                                                          "resolved"]
    assert audit[-1]["details"]["after_remediation"] is True, "verified: recovered after the playbook acted"


async def audit_of(settings: Settings, incident_id: str, until_action: str) -> list[dict]:
    """The incident's audit records, read from the audit topic up to the first ``until_action``."""
    c = consumer(settings.kafka, settings.kafka.topics.audit, group_id=None)
    await c.start()
    found: list[dict] = []
    try:
        async with asyncio.timeout(20):
            while until_action not in [r["action"] for r in found]:
                for records in (await c.getmany(timeout_ms=200)).values():
                    found += [r for r in map(json.loads, (x.value for x in records)) if r["incident_id"] == incident_id]
    finally:
        await c.stop()
    return found[:[r["action"] for r in found].index(until_action) + 1]

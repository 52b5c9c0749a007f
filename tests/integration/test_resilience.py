"""Bad input and crashes on real Kafka: nothing lost, nothing repeated."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
import yaml

from deploy.local.procs import free_port
from fixtures_kafka import produce, read_first, read_to_end
from load.fleet import FleetSpec, Incident, generate
from modelmedic import metrics
from modelmedic.config import token_sha256
from modelmedic.detection.plane import DetectionPlane
from modelmedic.kafka import consumer, ensure_topics, topic_partitions
from modelmedic.kube import LAST_ACTION_ANNOTATION
from modelmedic.testing import Received

pytestmark = pytest.mark.integration
START_MS = 1_767_225_600_000

BAD_RECORDS = {
    "not JSON": b"{not json",
    "wrong type": b'{"model":"m","version":"1","role":"production","request_id":"r","ts":1767225600000,"latency_ms":"fast","ok":true}',
    "missing field": b'{"model":"m","version":"1","role":"production","ts":1767225600000,"latency_ms":3,"ok":true}',
    "infinite latency": b'{"model":"m","version":"1","role":"production","request_id":"r","ts":1767225600000,"latency_ms":1e999,"ok":true}',
    "NaN latency": b'{"model":"m","version":"1","role":"production","request_id":"r","ts":1767225600000,"latency_ms":NaN,"ok":true}',
    "negative latency": b'{"model":"m","version":"1","role":"production","request_id":"r","ts":1767225600000,"latency_ms":-1,"ok":true}',
    "unknown role": b'{"model":"m","version":"1","role":"primary","request_id":"r","ts":1767225600000,"latency_ms":3,"ok":true}',
    "huge": b'{"model":"m","version":"1","role":"production","request_id":"' + b"x" * 100_000 + b'","ts":1,"latency_ms":3,"ok":true}',
    "array": b"[1, 2, 3]",
    # Valid, but stamped in 2096: accepted, it would make every later record of its partition late.
    "far future": b'{"model":"m","version":"1","role":"production","request_id":"r","ts":4000000000000,"latency_ms":3,"ok":true}',
}


async def test_bad_records_go_to_the_dead_letter_topic_and_the_rest_is_processed(settings):
    await ensure_topics(settings.kafka)
    good = list(generate(FleetSpec(models=4, rate=20, seed=3), [], START_MS, 20))
    bad = [(b"model-000", raw) for raw in BAD_RECORDS.values()] + [(b"model-000", None)]
    # Interleave: every bad record sits between valid ones on the same partition.
    stream = list(itertools.chain.from_iterable(zip(good, bad))) + good[len(bad):]
    ok_before = metrics.EVENTS.labels("ok")._value.get()
    await produce(settings, settings.kafka.topics.inference, stream)
    plane = DetectionPlane(settings)
    await asyncio.wait_for(plane.run(asyncio.Event(), max_records=len(stream)), 60)
    assert plane.processed == len(stream)
    assert metrics.EVENTS.labels("ok")._value.get() - ok_before == len(good)
    dead = await read_first(settings, settings.kafka.topics.dlq, len(bad))
    reasons = [dict(r.headers)["reason"].decode() for r in dead]
    assert len(dead) == len(bad)
    for needle in ("not JSON", "Expected `float`, got `str` - at `$.latency_ms`", "missing required field `request_id`",
                   "Number out of range - at `$.latency_ms`", "must be a finite number >= 0, got -1.0",
                   "Invalid enum value 'primary'", "over the 65536-byte limit", "Expected `object`", "empty record",
                   "s ahead of this service's clock (limit: windows.max_future_ms=300000)"):
        assert any(needle in r for r in reasons), (needle, reasons)
    assert all(dict(r.headers)["source.topic"] == settings.kafka.topics.inference.encode() for r in dead)


READ_TOKEN = "integration-tests-read-token"
READER = {"name": "tests", "role": "read", "token_sha256": token_sha256(READ_TOKEN)}
"""An operator with the read role, for the services these tests start (http.operators)."""


def _api(port: int, path: str):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {READ_TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as r:
        return json.loads(r.read())


def _incidents(port: int) -> list[dict]:
    """Every incident the service knows (public fields, docs/api.md)."""
    return _api(port, "/api/v1/incidents?limit=500")["items"]


def _metric(port: int, name: str) -> float:
    """The sum of the samples of ``name`` on the service's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        lines = r.read().decode().splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines
               if line.startswith(name) and line[len(name):len(name) + 1] in (" ", "{"))


async def handled_to_end(settings, group_id: str, topic: str, timeout: float = 30.0) -> None:
    """Positive evidence that consumer group ``group_id`` has handled every record of ``topic`` written so far:
    its committed offsets (the planes commit only after the work they cover) reach each partition's end."""
    c = consumer(settings.kafka, group_id=group_id)
    await c.start()
    try:
        ends = await c.end_offsets(await topic_partitions(c, topic))
        async with asyncio.timeout(timeout):
            while [tp for tp, end in ends.items() if end > 0 and (await c.committed(tp) or 0) < end]:
                await asyncio.sleep(0.05)
    finally:
        await c.stop()


async def _saved(settings, incident_id: str, check, what: str, timeout: float = 30.0) -> None:
    """Wait until the last record of ``incident_id`` on the incidents topic passes ``check``:
    what a restarted service reads back, unlike the API's view of its memory."""
    saved: list[dict] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                records = await read_to_end(settings, settings.kafka.topics.incidents)
                saved = [json.loads(r.value) for r in records if r.key == incident_id.encode() and r.value]
                if saved and check(saved[-1]):
                    return
                await asyncio.sleep(0.2)
    except TimeoutError:
        pytest.fail(f"{what}: not within {timeout:g}s; last saved record: {saved[-1] if saved else None}")


async def _until(check, timeout: float, what: str, state=None) -> None:
    """Poll ``check`` until true; past ``timeout``, fail saying ``what`` and (``state``) what the service shows."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    if check():
                        return
                except OSError:
                    pass  # the service is still starting
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"no {what} within {timeout:g}s" + (f"; the service shows {state()}" if state else "")) from None


def _start_service(config: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "modelmedic", "run", "--config", str(config)],
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


async def test_sigkill_mid_stream_loses_no_incident_and_pages_nothing_twice(settings, receiver, tmp_path):
    await ensure_topics(settings.kafka)
    spec = FleetSpec(models=6, rate=30, seed=5)
    incidents = [Incident.parse("latency_spike:model-001@50+20x5"), Incident.parse("error_burst:model-003@140+20x0.3")]
    records = list(generate(spec, incidents, START_MS, 200))
    cut = next(i for i, (_, v) in enumerate(records) if json.loads(v)["ts"] >= START_MS + 100_000)
    port = free_port()
    config = tmp_path / "modelmedic.yaml"
    config.write_text(yaml.safe_dump({
        **json.loads(settings.model_dump_json(include={"kafka", "windows", "detection"})),
        "http": {"port": port, "operators": [READER]},
        "sinks": [{"type": "pagerduty", "url": receiver.pagerduty_url, "routing_key": "R" * 32},
                  {"type": "webhook", "url": receiver.webhook_url}],
    }))
    log = tmp_path / "service.log"

    await produce(settings, settings.kafka.topics.inference, records[:cut])
    service = _start_service(config, log)
    try:
        def first_resolved() -> bool:
            return any(i["state"] == "resolved" and "resolved" in i["pages_sent"] for i in _incidents(port))
        await _until(first_resolved, 180, "first incident resolved", state=lambda: _incidents(port))
        # The API shows the service's memory: a sink's page is marked delivered there before the
        # record saying so is saved, and a kill in between sends it again (at least once on the
        # wire, folded by the sink: the next test). Kill only once the saved record owes nothing.
        (first,) = [i["id"] for i in _incidents(port) if i["state"] == "resolved"]
        await _saved(settings, first, lambda i: "resolved" in i["alerted"] and not i["owed"], "resolve saved")
        # Let a checkpoint cover all it consumed (an idle replica writes none), then kill without any chance to clean up.
        await _until(lambda: _metric(port, "modelmedic_state_unsaved_partitions") == 0, 30, "a checkpoint")
        service.send_signal(signal.SIGKILL)
        service.wait(10)
        await produce(settings, settings.kafka.topics.inference, records[cut:])
        service = _start_service(config, log)
        pages = await receiver.wait_for(kind="pagerduty", count=4, timeout=90)
        # Past the point: the restarted service consumed every record, checkpointed after that (its
        # anomalies are on their topic), handled every anomaly record and owes no page.
        await _until(lambda: _metric(port, "modelmedic_events_total") >= len(records) - cut
                     and _metric(port, "modelmedic_consumer_lag_records") == 0, 60, "detection caught up")
        await _until(lambda: _metric(port, "modelmedic_state_unsaved_partitions") == 0, 30, "a checkpoint")
        await handled_to_end(settings, f"{settings.kafka.group_id}-response", settings.kafka.topics.anomalies)
        await _until(lambda: all(not i["pages_owed"] for i in _incidents(port)), 30, "no page owed")
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(30)
    pages = [r.json for r in receiver.accepted if r.kind == "pagerduty"]
    sent = [(p["dedup_key"], p["event_action"]) for p in pages]
    assert len(sent) == len(set(sent)) == 4, sent
    groups = {p["payload"]["group"] for p in pages if p["event_action"] == "trigger"}
    assert groups == {"model-001", "model-003"}
    assert "restored" in log.read_text()


async def _audit_of(settings, incident_id: str) -> list[dict]:
    """Every audit record of ``incident_id`` written so far (read to the topic's end offsets)."""
    records = await read_to_end(settings, settings.kafka.topics.audit)
    return [a for a in (json.loads(r.value) for r in records) if a["incident_id"] == incident_id]


PAGED = ("pagerduty", "alertmanager", "webhook")


async def test_sigkill_after_the_sinks_took_the_page_before_it_was_saved_pages_each_person_once(
        settings, receiver, kube_stack, kube, kube_namespace, tmp_path):
    """The window delivery cannot close: every sink took the firing page and the process dies before
    the incident record saying so is saved, while the playbook has acted. The page, still owed, is sent
    again after the restart (two deliveries per sink) and each sink folds it into the one page a person
    has; the playbook run is resumed under its idempotency key and does not act again."""
    from test_response import _ready, anomaly, publish, settled

    await kube_namespace.create_model("model-k", "v1", replicas=2)
    port = free_port()
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump({
        "targets": {"namespace": kube_namespace.name}, "guard_rails": {"cooldown_s": 0},
        "rules": [{"match": {"anomaly_class": ["latency"]}, "verify_s": 600,
                   "playbooks": [{"name": "scale-out", "params": {"step": 2, "stabilization_s": 0}}]}],
    }))
    config = tmp_path / "modelmedic.yaml"
    held_s = 30  # sinks wait this long for an answer: the pages are held while the playbook acts
    config.write_text(yaml.safe_dump({
        **json.loads(settings.model_dump_json(include={"kafka", "windows", "detection"})),
        "http": {"port": port, "operators": [READER]}, "policy_file": str(tmp_path / "policy.yaml"),
        "kubernetes": {"kubeconfig": kube_stack.service_kubeconfig},
        "sinks": [{"type": "pagerduty", "url": receiver.pagerduty_url, "routing_key": "R" * 32, "timeout_s": held_s},
                  {"type": "alertmanager", "url": receiver.alertmanager_url, "timeout_s": held_s},
                  {"type": "webhook", "url": receiver.webhook_url, "timeout_s": held_s}],
    }))
    taken: set[str] = set()
    all_taken, killed = threading.Event(), threading.Event()

    def hold(request: Received) -> None:
        """Each sink's page is taken here and not answered until the service is dead."""
        taken.add(request.kind)
        if taken >= set(PAGED):
            all_taken.set()
        killed.wait(held_s)

    receiver.before_answer(hold)
    log = tmp_path / "service.log"
    service = _start_service(config, log)
    fire = anomaly("model-k")
    try:
        await _until(lambda: _ready(port), 60, "ready")
        await publish(settings, fire)
        assert await asyncio.to_thread(all_taken.wait, 30), f"only {taken} took the page"
        async with asyncio.timeout(20):  # the playbook acts while the three pages wait for their answers
            while await kube.get_replicas(kube_namespace.name, "model-k") != 4:
                await asyncio.sleep(0.1)
        service.send_signal(signal.SIGKILL)
        service.wait(10)
        receiver.before_answer(None)
        killed.set()
        for kind in PAGED:  # recorded once the held requests are answered (to a dead socket)
            await receiver.wait_for(kind=kind, count=1)
        service = _start_service(config, log)
        for kind in PAGED:
            await receiver.wait_for(kind=kind, count=2, timeout=60)
        # Past the point: the restarted service handled every anomaly record, its resumed playbook run
        # has ended, and the incident owes no page.
        await handled_to_end(settings, f"{settings.kafka.group_id}-response", settings.kafka.topics.anomalies)
        await _until(lambda: settled(_incidents(port), fire.id), 30, "state with nothing owed or running",
                     state=lambda: _incidents(port))
    finally:
        killed.set()
        receiver.before_answer(None)
        service.send_signal(signal.SIGTERM)
        service.wait(30)
    for kind in PAGED:
        delivered, paged = receiver.deliveries(kind), receiver.pages_to_humans(kind)
        assert (len(delivered), len(paged)) == (2, 1), (kind, [r.json for r in delivered])
    assert {r.headers["idempotency-key"] for r in receiver.deliveries("webhook")} == {f"modelmedic-{fire.id}:firing:0"}
    deployment = await kube.get_deployment(kube_namespace.name, "model-k")
    audit = await _audit_of(settings, fire.id)
    (start,) = [r["details"] for r in audit if r["action"] == "playbook-start"]
    done = [r["details"] for r in audit if r["action"] == "playbook-end" and r["details"]["status"] == "done"]
    assert deployment.replicas == 4, "scaled once: 2 -> 4"
    assert len(done) <= 1, done  # (0 when the kill came before the run's end was audited: resumed, it was skipped)
    assert deployment.annotations[LAST_ACTION_ANNOTATION] == start["idempotency_key"]

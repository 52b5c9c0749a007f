"""The response plane on real Kafka, a real Kubernetes API server and real HTTP.

Anomaly records are published to the anomalies topic exactly as the detection plane
would; the response plane pages, remediates through the API server as the modelmedic
identity (least-privilege RBAC), verifies and escalates.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import msgspec
import pytest
from pydantic import BaseModel, ConfigDict

from modelmedic.testing import AlertReceiver
from modelmedic.alerting import Alerter, build_sinks
from modelmedic.config import Settings, SinkSettings
from modelmedic.events import Anomaly, encode, stable_id
from modelmedic.kafka import consumer, ensure_topics, producer
from modelmedic.response.policy import parse_policy
from modelmedic.remediations import Outcome, PlaybookContext, PlaybookRegistry, playbook
from modelmedic.remediations.scale import ScaleOutParams, scale_out
from modelmedic.response.plane import ResponsePlane
from fixtures_planes import running
from test_resilience import handled_to_end

pytestmark = pytest.mark.integration
ONSET = 1_767_225_600_000


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


def anomaly(model: str, state: str = "firing", *, version: str = "v1", kind: str = "latency", onset: int = ONSET,
            role: str = "production") -> Anomaly:
    series = f"{model}/{version}/{role}"
    return Anomaly(
        id=stable_id(model, version, role, kind, onset), series=series, model=model, version=version,
        role=role, kind=kind, anomaly_class={"latency": "latency", "errors": "errors"}.get(kind, "throughput"),
        window_start=onset + 1000, window_end=onset + 2000, onset=onset, observed=300.0, baseline=40.0, score=1.0,
        state=state, summary=f"{model} {version} ({role}): p95 latency 300.0ms, baseline 40.0ms",
    )


async def publish(settings: Settings, *records: Anomaly) -> None:
    p = producer(settings.kafka)
    await p.start()
    try:
        for a in records:
            await p.send(settings.kafka.topics.anomalies, encode(a), key=a.model.encode())
        await p.flush()
    finally:
        await p.stop()


def policy(namespace: str, storm_hold_s: float = 2.0, **rule):
    return parse_policy({
        "targets": {"namespace": namespace},
        "guard_rails": {"cooldown_s": 0, "storm_models": 10, "storm_hold_s": storm_hold_s},
        "rules": [{"match": {"anomaly_class": ["latency"]}, "verify_s": 30,
                   "escalation": [{"after_s": 0, "severity": "error"}, {"after_s": 3600, "severity": "critical"}],
                   **rule}],
    })


@contextlib.asynccontextmanager
async def response_plane(settings: Settings, receiver: AlertReceiver, kube, pol, registry=None) -> AsyncIterator[ResponsePlane]:
    await ensure_topics(settings.kafka)
    if registry is None:
        registry = PlaybookRegistry()
        registry.load_entry_points()
    sinks = build_sinks([SinkSettings(type="pagerduty", url=receiver.pagerduty_url, routing_key="R" * 32)])
    plane = ResponsePlane(settings, Alerter(sinks), policy=pol, playbooks=registry, k8s=kube)
    async with running(plane):
        yield plane


async def until(check, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)


def count_ticks(plane: ResponsePlane) -> list[int]:
    """Count the plane's completed ticks (escalations, retries): ``[n]``, updated as they end."""
    done, tick = [0], plane.tick

    async def counted() -> None:
        await tick()
        done[0] += 1

    plane.tick = counted  # type: ignore[method-assign]
    return done


def settled(incidents: list[dict], incident_id: str) -> bool:
    """The incident (as /api/v1/incidents lists it) owes no page and runs no playbook."""
    (incident,) = [i for i in incidents if i["id"] == incident_id]
    return not incident["pages_owed"] and all(a["status"] != "running" for a in incident["attempts"])


def pages(receiver: AlertReceiver) -> list[dict]:
    return [r.json for r in receiver.accepted if r.kind == "pagerduty"]


async def audit_records(settings: Settings, incident_id: str, n: int) -> list[dict]:
    """The first ``n`` audit records of an incident, in order."""
    c = consumer(settings.kafka, settings.kafka.topics.audit, group_id=None)
    await c.start()
    found: list[dict] = []
    try:
        async with asyncio.timeout(20):
            while len(found) < n:
                for records in (await c.getmany(timeout_ms=200)).values():
                    for r in records:
                        record = msgspec.json.decode(r.value)
                        if record["incident_id"] == incident_id:
                            found.append(record)
    finally:
        await c.stop()
    return found


async def audit_actions(settings: Settings, incident_id: str, n: int) -> list[str]:
    return [r["action"] for r in await audit_records(settings, incident_id, n)]


async def test_overload_scale_out_verify_resolve(settings, receiver, kube, kube_namespace):
    await kube_namespace.create_model("model-a", "v1", replicas=2)
    pol = policy(kube_namespace.name, playbooks=[{"name": "scale-out", "params": {"step": 2, "max_replicas": 6}}])
    async with response_plane(settings, receiver, kube, pol) as plane:
        fire = anomaly("model-a")
        await publish(settings, fire)
        await receiver.wait_for(kind="pagerduty", count=1)
        await until(lambda: plane.book.by_id[fire.id].state == "verifying")
        assert await kube.get_replicas(kube_namespace.name, "model-a") == 4
        await publish(settings, anomaly("model-a", "recovered"))
        await receiver.wait_for(kind="pagerduty", count=2)
        incident = plane.book.by_id[fire.id]
    actions = [p["event_action"] for p in pages(receiver)]
    assert actions == ["trigger", "resolve"]
    assert incident.recovered_after_remediation
    assert incident.resolution.endswith("; recovered after remediation (scale-out)")
    assert await audit_actions(settings, fire.id, 5) == ["opened", "paged", "playbook-start", "playbook-end", "resolved"]


async def test_unfixable_fault_escalates_with_what_was_tried(settings, receiver, kube, kube_namespace):
    await kube_namespace.create_model("model-b", "v1", replicas=1)
    pol = policy(kube_namespace.name, verify_s=1.0, playbooks=[{"name": "scale-out"}])
    async with response_plane(settings, receiver, kube, pol) as plane:
        fire = anomaly("model-b")
        await publish(settings, fire)
        got = await receiver.wait_for(kind="pagerduty", count=2, timeout=20)
        assert plane.book.by_id[fire.id].state == "escalated"
    first, second = (r.json for r in got)
    assert first["dedup_key"] == second["dedup_key"]
    assert second["payload"]["summary"].startswith("ESCALATED (level 1)")
    assert "scale-out: done (scaled 1 -> 2" in second["payload"]["summary"]
    assert second["payload"]["severity"] == "critical"
    assert await kube.get_replicas(kube_namespace.name, "model-b") == 2


async def test_an_error_burst_during_a_latency_incident_pages_on_its_own(settings, receiver, kube, kube_namespace):
    """Issue 13: a real error burst was appended to the model's open latency incident and paged nobody."""
    async with response_plane(settings, receiver, kube, policy(kube_namespace.name)) as plane:
        slow = anomaly("model-x")
        await publish(settings, slow)
        await receiver.wait_for(kind="pagerduty", count=1)
        burst = msgspec.structs.replace(anomaly("model-x", kind="errors", onset=ONSET + 30_000),
                                        summary="model-x v1 (production): error rate 13.0% vs usual 0.50% (26x)")
        await publish(settings, burst)
        got = await receiver.wait_for(kind="pagerduty", count=2)
        assert plane.book.by_id[slow.id].kinds == ["latency"], "nothing was appended to the latency incident"
    second = got[1].json
    assert second["event_action"] == "trigger" and second["dedup_key"] == f"modelmedic-{burst.id}"
    assert second["payload"]["summary"].startswith(burst.summary + ". Next: no automatic action")
    assert second["payload"]["class"] == "errors/errors"
    assert second["payload"]["custom_details"]["related"] == [f"{slow.id} (latency): {slow.summary}"]


async def test_a_fault_that_ends_after_an_escalation_recovered_on_its_own(settings, receiver, kube, kube_namespace):
    """Issue 15: after an escalation, an injected fault that simply ended was reported as
    "VERIFIED ... recovered after remediation"."""
    await kube_namespace.create_model("model-v", "v1", replicas=1)
    pol = policy(kube_namespace.name, verify_s=1.0, playbooks=[{"name": "scale-out"}])
    async with response_plane(settings, receiver, kube, pol) as plane:
        fire = anomaly("model-v")
        await publish(settings, fire)
        await receiver.wait_for(kind="pagerduty", count=2, timeout=20)  # the page, then the escalation
        await publish(settings, anomaly("model-v", "recovered"))
        await receiver.wait_for(kind="pagerduty", count=3)
        incident = plane.book.by_id[fire.id]
    assert incident.state == "resolved" and incident.escalation_level == 1
    assert not incident.recovered_after_remediation
    assert "recovered on its own (tried: scale-out: done" in incident.resolution
    audit = await audit_records(settings, fire.id, 7)
    assert [r["action"] for r in audit] == ["opened", "paged", "playbook-start", "playbook-end", "verification-failed",
                                            "escalated", "resolved"]
    assert audit[-1]["details"]["after_remediation"] is False


async def test_a_flapping_series_pages_once_and_counts_its_flaps(settings, receiver, kube, kube_namespace):
    """Issue 15: a series that recovered and fired again opened a new incident and paged again."""
    async with response_plane(settings, receiver, kube, policy(kube_namespace.name, flap_hold_s=1800)) as plane:
        fire = anomaly("model-flap")
        await publish(settings, fire)
        await receiver.wait_for(kind="pagerduty", count=1)
        await publish(settings, anomaly("model-flap", "recovered"))
        await receiver.wait_for(kind="pagerduty", count=2)
        again = [anomaly("model-flap", onset=ONSET + minutes * 60_000) for minutes in (5, 10)]
        await publish(settings, again[0], anomaly("model-flap", "recovered", onset=again[0].onset), again[1])
        await until(lambda: plane.book.by_id[fire.id].flaps == 2)
        marker = anomaly("model-marker")  # processed after the flaps: their pages would be ahead of its
        await publish(settings, marker)
        await receiver.wait_for(lambda r: r.json["dedup_key"] == f"modelmedic-{marker.id}", kind="pagerduty")
        incident = plane.book.by_id[fire.id]
    assert [(p["dedup_key"], p["event_action"]) for p in pages(receiver)] == [
        (f"modelmedic-{fire.id}", "trigger"), (f"modelmedic-{fire.id}", "resolve"), (f"modelmedic-{marker.id}", "trigger")]
    assert (incident.state, incident.flaps, len(plane.book.by_id)) == ("open", 2, 2)
    assert await audit_actions(settings, fire.id, 6) == ["opened", "paged", "resolved", "flapped", "resolved", "flapped"]


async def test_bad_version_is_rolled_back(settings, receiver, kube, kube_admin, kube_namespace):
    ns = kube_namespace.name
    await kube_namespace.create_model("model-c", "v1", replicas=2)
    await kube_admin.set_version(ns, "model-c", "v2")
    await kube_admin.wait_rollout(ns, "model-c", 60)
    pol = policy(ns, playbooks=[{"name": "rollback", "params": {"require_certified": False}}, {"name": "scale-out"}])
    async with response_plane(settings, receiver, kube, pol) as plane:
        fire = anomaly("model-c", version="v2")
        await publish(settings, fire)
        await until(lambda: plane.book.by_id.get(fire.id) is not None and plane.book.by_id[fire.id].state == "verifying")
        assert plane.book.by_id[fire.id].attempts[0].playbook == "rollback"
        assert plane.book.by_id[fire.id].attempts[0].status == "done"
    assert await kube.get_version(ns, "model-c") == "v1"


async def test_fifty_models_at_once_page_once_and_remediate_none(settings, receiver, kube, kube_namespace):
    pol = policy(kube_namespace.name, playbooks=[{"name": "scale-out"}])
    async with response_plane(settings, receiver, kube, pol) as plane:
        await publish(settings, *(anomaly(f"model-{i:03d}") for i in range(50)))
        # (records of one moment hold event time while they are read: the page comes storm_hold_s
        # after the last is read, which on a loaded machine is seconds after the first)
        await receiver.wait_for(kind="pagerduty", count=1, timeout=30)
        await until(lambda: len(plane.book.by_id) == 51)
        await handled_to_end(settings, plane.group_id, settings.kafka.topics.anomalies)  # every record handled
        await plane.courier.idle()  # and every page it started delivered
    got = pages(receiver)
    assert len(got) == 1
    assert "50 models anomalous" in got[0]["payload"]["summary"]
    assert all(not i.attempts for i in plane.book.by_id.values())


async def test_a_backlog_of_unrelated_anomalies_read_at_once_is_no_storm(settings, receiver, kube, kube_namespace):
    """Issue 13: storms were grouped by the service's wall clock, so catching up on a backlog
    turned unrelated alarms into a "storm". 30 models, one every 10 minutes of event time."""
    backlog = [anomaly(f"model-{i:03d}", onset=ONSET + i * 600_000) for i in range(30)]
    async with response_plane(settings, receiver, kube, policy(kube_namespace.name)) as plane:
        await publish(settings, *backlog)
        await receiver.wait_for(kind="pagerduty", count=30, timeout=20)
        assert all(plane.book.by_id[a.id].storm is None for a in backlog)
    assert sorted(p["dedup_key"] for p in pages(receiver)) == sorted(f"modelmedic-{a.id}" for a in backlog)
    assert not any(i.model == "*" for i in plane.book.by_id.values())


async def test_ten_models_in_one_event_time_minute_page_once_as_a_storm(settings, receiver, kube, kube_namespace):
    """Issue 13: during a real storm the first nine models were paged one by one before the
    storm page. They fire 5 s apart in event time and arrive one by one; the hold covers the minute."""
    storm = [anomaly(f"model-{i:03d}", onset=ONSET + i * 5_000) for i in range(10)]
    later = [anomaly("model-late", onset=ONSET + 3_600_000), anomaly("model-later", onset=ONSET + 7_200_000)]
    async with response_plane(settings, receiver, kube, policy(kube_namespace.name, storm_hold_s=60,
                                                               playbooks=[{"name": "scale-out"}])) as plane:
        for a in storm:
            await publish(settings, a)
            await until(lambda: a.id in plane.book.by_id)  # read and decided before the next arrives
        await until(lambda: all(plane.book.by_id[a.id].storm for a in storm))
        assert pages(receiver) == []
        await publish(settings, *later)  # hours on in event time: the storm's hold and model-late's end
        await receiver.wait_for(lambda r: r.json["dedup_key"] == f"modelmedic-{later[0].id}", kind="pagerduty")
    got: dict[str, str] = {}  # incident -> its first page (model-late's failed scale-out escalates it later)
    for p in pages(receiver):
        got.setdefault(p["payload"]["custom_details"]["incident_id"], p["payload"]["summary"])
    assert set(got) == {plane.book.by_id[storm[0].id].storm, later[0].id}, got
    assert got[plane.book.by_id[storm[0].id].storm].startswith("10 models anomalous, their problems starting within 60s")
    assert all(plane.book.by_id[a.id].storm == plane.book.by_id[storm[0].id].storm for a in storm)
    assert all(not plane.book.by_id[a.id].attempts for a in storm), "no member was remediated"


async def test_crash_mid_remediation_neither_repeats_the_action_nor_the_page(settings, receiver, kube, kube_namespace):
    await kube_namespace.create_model("model-d", "v1", replicas=2)
    crashing = PlaybookRegistry()
    hang_after_acting = asyncio.Event()

    @playbook(name="scale-then-crash", registry=crashing, timeout_s=60)
    async def scale_then_crash(ctx: PlaybookContext, params: ScaleOutParams) -> Outcome:
        outcome = await scale_out(ctx, params)
        hang_after_acting.set()
        await asyncio.Event().wait()  # the process dies here, after the API call
        return outcome

    pol = policy(kube_namespace.name, playbooks=[{"name": "scale-then-crash"}])
    fire = anomaly("model-d")
    async with response_plane(settings, receiver, kube, pol, crashing) as plane:
        await publish(settings, fire)
        await asyncio.wait_for(hang_after_acting.wait(), 30)
        for task in list(plane._tasks):  # the crash: the run is cut off mid-playbook
            task.cancel()
    assert await kube.get_replicas(kube_namespace.name, "model-d") == 3

    recovering = PlaybookRegistry()

    @playbook(name="scale-then-crash", registry=recovering)
    async def scale_after_restart(ctx: PlaybookContext, params: ScaleOutParams) -> Outcome:
        return await scale_out(ctx, params)

    async with response_plane(settings, receiver, kube, pol, recovering) as plane:
        await until(lambda: plane.book.by_id[fire.id].state == "verifying")
        attempt = plane.book.by_id[fire.id].attempts[-1]
    assert attempt.status == "skipped" and "already done" in attempt.message
    assert len(plane.book.by_id[fire.id].attempts) == 1
    assert await kube.get_replicas(kube_namespace.name, "model-d") == 3
    assert [p["event_action"] for p in pages(receiver)] == ["trigger"]


async def test_hanging_and_failing_playbooks_are_contained_and_escalated(settings, receiver, kube, kube_namespace):
    broken = PlaybookRegistry()

    @playbook(name="hangs", registry=broken, timeout_s=0.3)
    async def hangs(ctx: PlaybookContext, params: NoParams) -> Outcome:
        await asyncio.Event().wait()
        return Outcome.done("never")

    @playbook(name="raises", registry=broken)
    async def raises(ctx: PlaybookContext, params: NoParams) -> Outcome:
        raise RuntimeError("the plugin has a bug")

    pol = policy(kube_namespace.name, playbooks=[{"name": "hangs"}, {"name": "raises"}])
    async with response_plane(settings, receiver, kube, pol, broken) as plane:
        fire = anomaly("model-e")
        await publish(settings, fire)
        got = await receiver.wait_for(kind="pagerduty", count=2, timeout=20)
        incident = plane.book.by_id[fire.id]
    assert [a.status for a in incident.attempts] == ["timeout", "failed"]
    summary = got[1].json["payload"]["summary"]
    assert "hangs: timeout" in summary and "the plugin has a bug" in summary


async def test_forbidden_api_calls_escalate_with_the_reason(settings, receiver, kube, kube_namespace):
    pol = policy("kube-system", playbooks=[{"name": "scale-out"}])  # modelmedic has no Role there
    async with response_plane(settings, receiver, kube, pol):
        await publish(settings, anomaly("model-f"))
        got = await receiver.wait_for(kind="pagerduty", count=2, timeout=20)
    assert "forbidden" in got[1].json["payload"]["summary"].lower()


async def test_two_replicas_page_and_escalate_each_incident_once(settings, receiver, kube, kube_namespace):
    """Replicas share the anomalies' partitions; each acts only on the incidents of its own."""
    pol = policy(kube_namespace.name, auto_remediate=False,
                 escalation=[{"after_s": 0, "severity": "error"}, {"after_s": 2, "severity": "critical"}])
    async with response_plane(settings, receiver, kube, pol) as first, response_plane(settings, receiver, kube, pol) as second:
        await until(lambda: first.owned and second.owned and not (first.owned & second.owned))
        ticks = [count_ticks(first), count_ticks(second)]
        # (their partitions: 0, 1, 3 and 3 of 6; the eight m-00..m-07 put six on partitions 0-2)
        await publish(settings, *(anomaly(f"m-{i:02d}") for i in (0, 1, 4, 5)))
        # 4 pages, then 4 escalations. Four models starting together may be the start of a storm
        # (storm_models 10): they are held 45 s from their onset in case the sparse rest of it is
        # still gathering, then page each; five, half of storm_models, would page as one storm
        # (modelmedic.response.storms, StormWatch.quorum_of).
        await receiver.wait_for(kind="pagerduty", count=8, timeout=90)
        # Past the point: both replicas handled every record and ran a whole tick (where escalations are
        # sent) after the last page, and delivered every page they started.
        await handled_to_end(settings, first.group_id, settings.kafka.topics.anomalies)
        seen = [t[0] for t in ticks]
        await until(lambda: all(t[0] >= n + 2 for t, n in zip(ticks, seen)))
        await first.courier.idle()
        await second.courier.idle()
    sent = [(p["dedup_key"], p["payload"]["severity"]) for p in pages(receiver)]
    assert len(sent) == len(set(sent)) == 8


async def test_sigkill_of_the_service_mid_remediation_repeats_nothing(settings, receiver, kube_stack, kube, kube_namespace, tmp_path):
    """The real thing: `modelmedic run` as a process, killed with SIGKILL once the playbook has started."""
    import json
    import os
    import signal
    import subprocess
    import sys

    import yaml

    from deploy.local.procs import free_port
    from test_resilience import READER, _incidents

    await kube_namespace.create_model("model-k", "v1", replicas=2)
    port = free_port()
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump({
        "targets": {"namespace": kube_namespace.name}, "guard_rails": {"cooldown_s": 0},
        "rules": [{"match": {"anomaly_class": ["latency"]}, "verify_s": 600,
                   "playbooks": [{"name": "scale-out", "params": {"step": 2}}]}],
    }))
    (tmp_path / "modelmedic.yaml").write_text(yaml.safe_dump({
        **json.loads(settings.model_dump_json(include={"kafka", "windows", "detection"})),
        "http": {"port": port, "operators": [READER]}, "policy_file": str(tmp_path / "policy.yaml"),
        "kubernetes": {"kubeconfig": kube_stack.service_kubeconfig},
        "sinks": [{"type": "pagerduty", "url": receiver.pagerduty_url, "routing_key": "R" * 32}],
    }))

    def start() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "modelmedic", "run", "--config", str(tmp_path / "modelmedic.yaml")],
                                stdout=open(tmp_path / "service.log", "ab"), stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def state_of(incident_id: str) -> str | None:
        found = [i for i in _incidents(port) if i["id"] == incident_id]
        return found[0]["state"] if found else None

    service = start()
    fire = anomaly("model-k")
    try:
        await until(lambda: _ready(port), 60)
        await publish(settings, fire)
        # Once the page is delivered and recorded (killed before that, it is re-sent under the same dedup
        # key by design: tests/integration/test_resilience.py), and the playbook has started.
        await until(lambda: state_of(fire.id) in ("remediating", "verifying")
                    and not [i for i in _incidents(port) if i["id"] == fire.id and i["pages_owed"]], 30)
        service.send_signal(signal.SIGKILL)  # no chance to clean up, wherever the playbook is
        service.wait(10)
        service = start()
        await until(lambda: _ready(port) and state_of(fire.id) == "verifying", 60)
        # Past the point: the restarted service handled every anomaly record, its playbook run (if it
        # resumed one) has ended, and the incident owes no page.
        await handled_to_end(settings, f"{settings.kafka.group_id}-response", settings.kafka.topics.anomalies)
        await until(lambda: settled(_incidents(port), fire.id), 30)
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(30)
    assert await kube.get_replicas(kube_namespace.name, "model-k") == 4, "scaled once: 2 -> 4"
    # The API shows a page as sent once the sink took it; the record saying so reaches the
    # incident topic just after. A kill in between re-sends it under the same dedup key
    # (docs/architecture.md, "Exactly-once where it matters"): at most twice on the wire,
    # once for the person PagerDuty pages.
    triggers = [p for p in pages(receiver) if p["event_action"] == "trigger"]
    assert 1 <= len(triggers) <= 2 and len({p["dedup_key"] for p in triggers}) == 1
    assert len(receiver.pages_to_humans("pagerduty")) == 1


def _ready(port: int) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


async def test_a_shadow_candidate_in_trouble_pages_but_never_touches_production(settings, receiver, kube, kube_namespace):
    await kube_namespace.create_model("model-s", "v1", replicas=2)
    pol = policy(kube_namespace.name, playbooks=[{"name": "scale-out"}])
    async with response_plane(settings, receiver, kube, pol) as plane:
        fire = anomaly("model-s", version="v2", role="shadow")
        await publish(settings, fire)
        await receiver.wait_for(kind="pagerduty", count=1)
        await handled_to_end(settings, plane.group_id, settings.kafka.topics.anomalies)  # past the record
        assert not plane._tasks, "no remediation was started"
        assert plane.book.by_id[fire.id].attempts == [] and plane.book.by_id[fire.id].state == "open"
    assert await kube.get_replicas(kube_namespace.name, "model-s") == 2


async def test_open_incidents_are_reposted_to_alertmanager_but_never_repaged(settings, receiver, alertmanager, kube, kube_namespace):
    import httpx

    now = [1_800_000_000_000]
    sinks = build_sinks([SinkSettings(type="pagerduty", url=receiver.pagerduty_url, routing_key="R" * 32),
                         SinkSettings(type="alertmanager", url=alertmanager.url)])
    await ensure_topics(settings.kafka)
    plane = ResponsePlane(settings, Alerter(sinks), policy=policy(kube_namespace.name, auto_remediate=False,
                                                                  storm_hold_s=0),  # (the clock stands still)
                          playbooks=PlaybookRegistry(), k8s=kube, clock=lambda: now[0])
    stop = asyncio.Event()
    task = asyncio.create_task(plane.run(stop))

    async def updated_at(incident_id: str) -> str:
        async with httpx.AsyncClient() as http:
            alerts = (await http.get(f"{alertmanager.url}/api/v2/alerts")).json()
        return next(a["updatedAt"] for a in alerts if a["labels"].get("incident_id") == incident_id)

    try:
        await asyncio.wait_for(plane.ready.wait(), 30)
        fire = anomaly("model-am")
        await publish(settings, fire)
        await receiver.wait_for(kind="pagerduty", count=1)
        await plane.courier.idle()  # (Alertmanager's copy is delivered on its own task)
        first = await updated_at(fire.id)
        now[0] += 61_000
        await plane.tick()
        await plane.courier.idle()  # (the tick only starts the re-post)
        second = await updated_at(fire.id)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert second > first, "Alertmanager heard about the open incident again"
    assert [p["event_action"] for p in pages(receiver)] == ["trigger"], "PagerDuty was not paged again"

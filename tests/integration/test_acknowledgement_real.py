"""Two-way acknowledgement (issue 15 item 2) on real Kafka and real HTTP.

Acking or resolving in modelmedic sends PagerDuty's acknowledge and resolve events (same
``dedup_key``) and tells Slack; PagerDuty's signed v3 webhook, posted to the running
service's HTTP endpoint, acks and resolves in modelmedic, and an ack from there stops the
escalation that was due (before: the route did not exist, and two incidents acked at
PagerDuty still escalated "not acknowledged after 60s").
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from modelmedic.alerting.pagerduty_webhook import PATH, SIGNATURE_HEADER, sign
from modelmedic.app import Service
from modelmedic.config import Settings, SinkSettings
from test_response import anomaly, audit_records, count_ticks, publish, until

pytestmark = pytest.mark.integration

SECRET = "whsec-for-the-acknowledgement-test"
ESCALATE_AFTER_S = 3


def webhook_event(event_type: str, incident_key: str, agent: str = "Alice Example") -> bytes:
    """A PagerDuty v3 webhook body as PagerDuty sends it (the fields this handler reads, and some it does not)."""
    return json.dumps({"event": {
        "id": "01DEN4HPBQAPCYRYO0H3EMUUQ7", "event_type": event_type, "resource_type": "incident",
        "occurred_at": "2026-01-01T03:14:15.000Z",
        "agent": {"id": "PLH1HKV", "type": "user_reference", "summary": agent},
        "data": {"id": "Q2KZQ1QGNWZQ1T", "type": "incident", "number": 42, "status": event_type.split(".")[1],
                 "incident_key": incident_key, "title": "latency on model-ack"},
    }}).encode()


def service_settings(settings: Settings, receiver, tmp_path: Path) -> Settings:
    policy = tmp_path / "policy.yaml"
    policy.write_text(json.dumps({"guard_rails": {"storm_hold_s": 0}, "rules": [{
        "match": {"anomaly_class": "*"}, "auto_remediate": False,
        "escalation": [{"after_s": 0, "severity": "error"}, {"after_s": ESCALATE_AFTER_S, "severity": "critical"}]}]}))
    return settings.model_copy(update={"policy_file": policy, "sinks": [
        SinkSettings(type="pagerduty", url=receiver.pagerduty_url, routing_key="R" * 32, webhook_secret=SECRET),
        SinkSettings(type="slack", url=receiver.slack_url)]})


async def test_an_ack_from_the_pagerduty_webhook_stops_the_escalation(settings, receiver, tmp_path):
    service = Service(service_settings(settings, receiver, tmp_path))
    ticks = count_ticks(service.response)
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.response.ready.wait(), 30)
        fire, other = anomaly("model-ack"), anomaly("model-ack-2")
        await publish(settings, fire, other)
        await receiver.wait_for(kind="pagerduty", count=2, timeout=30)
        url = f"http://127.0.0.1:{service.http.port}{PATH}"
        async with httpx.AsyncClient() as http:
            body = webhook_event("incident.acknowledged", f"modelmedic-{fire.id}")
            forged = await http.post(url, content=body, headers={SIGNATURE_HEADER: sign(body, "not-the-secret")})
            unsigned = await http.post(url, content=body)
            assert (forged.status_code, unsigned.status_code) == (401, 401)
            assert service.response.book.by_id[fire.id].state == "open"
            rotated = f"{sign(body, 'the-old-secret')}, {sign(body, SECRET)}"  # two signatures while rotating
            acked = await http.post(url, content=body, headers={SIGNATURE_HEADER: rotated})
            assert acked.status_code == 200, acked.text
            again = await http.post(url, content=body, headers={SIGNATURE_HEADER: sign(body, SECRET)})
            assert again.status_code == 200 and "ignored" in again.json(), "PagerDuty must not retry a repeat"
            foreign = webhook_event("incident.acknowledged", "someone-elses-key")
            assert (await http.post(url, content=foreign, headers={SIGNATURE_HEADER: sign(foreign, SECRET)})).json() \
                == {"ignored": "incident.acknowledged of someone-elses-key: not an acknowledgement or resolution "
                               "of a modelmedic incident"}
        incident = service.response.book.by_id[fire.id]
        assert (incident.state, incident.acknowledged_by) == ("acknowledged", "pagerduty:Alice Example")

        # positive evidence: the other, unacknowledged incident escalated, and a tick ran after that
        await receiver.wait_for(lambda r: r.json["dedup_key"] == f"modelmedic-{other.id}"
                                and r.json["payload"]["severity"] == "critical", kind="pagerduty", timeout=30)
        seen = ticks[0]
        await until(lambda: ticks[0] > seen)
        assert incident.escalation_level == 0 and incident.state == "acknowledged"
        escalations = [r for r in receiver.deliveries("pagerduty") if r.json["dedup_key"] == f"modelmedic-{fire.id}"
                       and r.json.get("payload", {}).get("severity") == "critical"]
        assert escalations == []
        audit = await audit_records(settings, fire.id, 3)
        assert [(r["action"], r["actor"], r["details"].get("via")) for r in audit] == [
            ("opened", "modelmedic", None), ("paged", "modelmedic", None),
            ("acknowledged", "pagerduty:Alice Example", "pagerduty")]

        async with httpx.AsyncClient() as http:
            body = webhook_event("incident.resolved", f"modelmedic-{fire.id}", agent="Bob")
            resolved = await http.post(url, content=body, headers={SIGNATURE_HEADER: sign(body, SECRET)})
        assert resolved.status_code == 200, resolved.text
        assert (incident.state, incident.resolution) == ("resolved", "resolved by pagerduty:Bob")
    finally:
        service.stop.set()
        await asyncio.wait_for(task, 30)


async def test_ack_and_resolve_in_modelmedic_reach_pagerduty_and_slack(settings, receiver, tmp_path):
    service = Service(service_settings(settings, receiver, tmp_path))
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.response.ready.wait(), 30)
        fire = anomaly("model-ack-out")
        await publish(settings, fire)
        await receiver.wait_for(kind="slack", count=1, timeout=30)
        await service.acknowledge(fire.id, "alice")
        ack = await receiver.wait_for(lambda r: r.json["event_action"] == "acknowledge", kind="pagerduty", timeout=30)
        assert ack[0].json == {"routing_key": "R" * 32, "event_action": "acknowledge",
                               "dedup_key": f"modelmedic-{fire.id}"}
        (slack,) = await receiver.wait_for(lambda r: "ACKNOWLEDGED" in r.json["text"], kind="slack", timeout=30)
        assert slack.json["text"].startswith(":eyes: ACKNOWLEDGED by alice: latency on model-ack-out v1")
        await service.resolve(fire.id, "alice")
        await receiver.wait_for(lambda r: r.json["event_action"] == "resolve", kind="pagerduty", timeout=30)
    finally:
        service.stop.set()
        await asyncio.wait_for(task, 30)
    assert [r.json["event_action"] for r in receiver.deliveries("pagerduty")] == ["trigger", "acknowledge", "resolve"]
    assert [p.identity for p in receiver.pages_to_humans("pagerduty")] == [f"modelmedic-{fire.id}"], "one page, acked, resolved"

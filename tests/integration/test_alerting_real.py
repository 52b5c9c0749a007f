"""Alert delivery against the real thing: Alertmanager's API v2 and a strict local HTTP receiver.

Fixtures come from ``tests/fixtures_alerting.py``.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from modelmedic.alerting import (
    Alert,
    Alerter,
    AlertmanagerSink,
    PagerDutySink,
    RetryPolicy,
    SlackSink,
    WebhookSink,
    alertmanager_labels,
    iso8601,
)
from modelmedic.errors import SinkError

pytestmark = pytest.mark.integration

ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"


def make_alert(**changes: Any) -> Alert:
    incident = uuid.uuid4().hex[:12]
    fields: dict[str, Any] = dict(
        incident_id=incident,
        dedup_key=f"modelmedic-{incident}",
        status="firing",
        severity="error",
        summary="throughput of search v7 dropped to 12 req/s, 10% of its 120 req/s baseline",
        model="search",
        version="v7",
        role="canary",
        kind="throughput_drop",
        anomaly_class="throughput",
        started_at_ms=int(time.time() * 1000) - 30_000,
        evidence={"observed": 12.0, "baseline": 120.0, "score": 0.9993, "tried": ["scale-out: no effect"]},
        labels={"team": "search"},
    )
    fields.update(changes)
    return Alert(**fields)


def resolved(alert: Alert) -> Alert:
    """Resolved now, on a whole 100 ms so the checks meet Go's zero-trimmed timestamps every time."""
    return alert.model_copy(update={"status": "resolved", "ended_at_ms": int(time.time() * 10) * 100})


def instant(text: str) -> datetime:
    """Go's RFC 3339 drops trailing zeros of the fraction: compare instants, not strings."""
    return datetime.fromisoformat(text)


async def listed(am_url: str, alert: Alert) -> list[dict[str, Any]]:
    """The alerts Alertmanager lists for this incident (resolved ones are not listed)."""
    async with httpx.AsyncClient(base_url=am_url) as client:
        response = await client.get("/api/v2/alerts", params={"filter": f'incident_id="{alert.incident_id}"'})
    response.raise_for_status()
    return response.json()


def notified(alert: Alert, status: str):
    """Matches Alertmanager's webhook notification about ``alert`` in ``status``."""
    def match(received: Any) -> bool:
        return any(
            a["labels"].get("incident_id") == alert.incident_id and a["status"] == status
            for a in received.json.get("alerts", [])
        )
    return match


async def test_alertmanager_lists_dedupes_and_resolves(alertmanager, alertmanager_notifications) -> None:
    sink = AlertmanagerSink(alertmanager.url)
    alert = make_alert()
    await sink.send(alert)
    await sink.send(alert.model_copy(update={"escalation_level": 1}))  # same labels: the same AM alert

    (shown,) = await listed(alertmanager.url, alert)
    assert shown["labels"] == alertmanager_labels(alert)
    assert shown["labels"]["alertname"] == "modelmedic_throughput"
    assert shown["annotations"]["summary"] == alert.summary
    assert shown["annotations"]["escalation_level"] == "1"
    assert "observed: 12" in shown["annotations"]["evidence"]
    assert instant(shown["startsAt"]) == instant(iso8601(alert.started_at_ms))
    assert shown["status"]["state"] == "active"

    (firing,) = await alertmanager_notifications.wait_for(notified(alert, "firing"), timeout=10)
    assert firing.path == "/webhook/alertmanager"

    done = resolved(alert)
    await sink.send(done)
    assert await listed(alertmanager.url, alert) == []
    (resolution,) = await alertmanager_notifications.wait_for(notified(alert, "resolved"), timeout=10)
    (am_alert,) = [a for a in resolution.json["alerts"] if a["labels"]["incident_id"] == alert.incident_id]
    assert instant(am_alert["endsAt"]) == instant(iso8601(done.ended_at_ms))
    await sink.aclose()


async def test_a_wrong_alertmanager_url_fails_at_once(alertmanager) -> None:
    """A real 404 (base URL with a stray path) is a configuration error: no retries, a clear message."""
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    sink = AlertmanagerSink(alertmanager.url + "/alertmanager", retry=RetryPolicy(sleep=sleep))
    with pytest.raises(SinkError, match="rejected the alert with HTTP 404.*check the sink's URL"):
        await sink.send(make_alert())
    await sink.aclose()
    assert sleeps == []


async def test_pagerduty_slack_webhook_round_trip(receiver) -> None:
    alerter = Alerter([
        PagerDutySink(ROUTING_KEY, url=receiver.pagerduty_url),
        SlackSink(receiver.slack_url + "/T000/B000/XXXX"),
        WebhookSink(receiver.webhook_url),
    ])
    alert = make_alert(links={"runbook": "http://runbooks.local/throughput"})
    firing = await alerter.send(alert)
    closing = await alerter.send(resolved(alert))
    await alerter.aclose()
    assert [(r.sink, r.result) for r in firing + closing] == [
        ("pagerduty", "ok"), ("slack", "ok"), ("webhook", "ok")] * 2

    trigger, resolve = await receiver.wait_for(kind="pagerduty", count=2)
    assert trigger.json["event_action"] == "trigger" and resolve.json["event_action"] == "resolve"
    assert trigger.json["dedup_key"] == resolve.json["dedup_key"] == alert.dedup_key
    assert trigger.json["payload"]["custom_details"]["tried"] == ["scale-out: no effect"]
    assert trigger.status == 202

    slack_firing, slack_resolved = await receiver.wait_for(kind="slack", count=2)
    assert slack_firing.path == "/slack/T000/B000/XXXX"
    assert slack_resolved.json["text"].startswith(":white_check_mark: RESOLVED")
    assert not slack_firing.json["text"].startswith(":white_check_mark:")

    hook_firing, hook_resolved = await receiver.wait_for(kind="webhook", count=2)
    assert hook_firing.headers["idempotency-key"] == f"{alert.dedup_key}:firing:0"
    assert hook_resolved.headers["idempotency-key"] == f"{alert.dedup_key}:resolved:0"
    assert hook_resolved.json["alert"]["ended_at_ms"] is not None
    assert all(r.accepted for r in receiver.requests)


async def test_receiver_rejects_malformed_pagerduty_and_slack_like_the_real_services(receiver) -> None:
    event = {
        "routing_key": ROUTING_KEY, "event_action": "trigger",
        "payload": {"summary": "s", "source": "x", "severity": "sev1"},
    }
    async with httpx.AsyncClient() as client:
        bad_severity = await client.post(receiver.pagerduty_url, json=event)
        no_payload = await client.post(receiver.pagerduty_url, json={"routing_key": ROUTING_KEY, "event_action": "trigger"})
        not_json = await client.post(receiver.pagerduty_url, content=b"{", headers={"Content-Type": "application/json"})
        bad_blocks = await client.post(receiver.slack_url, json={"text": "t", "blocks": [{"type": "header", "text": "h"}]})
        empty = await client.post(receiver.slack_url, json={})
    assert bad_severity.status_code == 400
    assert bad_severity.json()["message"] == "Event object is invalid"
    assert "payload.severity must be one of" in bad_severity.json()["errors"][0]
    assert no_payload.status_code == 400 and "payload is required" in no_payload.json()["errors"][0]
    assert not_json.status_code == 400
    assert bad_blocks.status_code == 400 and bad_blocks.text.startswith("invalid_blocks: blocks[0].text must be a JSON object")
    assert empty.status_code == 400 and empty.text.startswith("no_text")
    assert receiver.accepted == []
    assert [r.status for r in receiver.requests] == [400] * 5


async def test_pagerduty_sink_fails_fast_on_a_real_400(receiver) -> None:
    sink = PagerDutySink("too-short", url=receiver.pagerduty_url)
    with pytest.raises(SinkError, match=r"PagerDuty rejected the event payload .*routing_key"):
        await sink.send(make_alert())
    await sink.aclose()
    assert len(receiver.requests) == 1


async def test_retries_through_real_503s_and_retry_after(receiver) -> None:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    receiver.fail_next(2, 503, retry_after=0)
    sink = PagerDutySink(ROUTING_KEY, url=receiver.pagerduty_url, retry=RetryPolicy(sleep=sleep))
    await sink.send(make_alert())
    await sink.aclose()
    assert [r.status for r in receiver.requests] == [503, 503, 202]
    assert sleeps == [0.0, 0.0]


async def test_unreachable_destination_gives_up_with_a_clear_error(receiver) -> None:
    url = receiver.webhook_url
    receiver.stop()
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    sink = WebhookSink(url, retry=RetryPolicy(attempts=3, sleep=sleep, jitter=lambda: 0.0))
    with pytest.raises(SinkError, match=r"after 3 attempts \(last: ConnectError"):
        await sink.send(make_alert())
    await sink.aclose()
    assert sleeps == [0.125, 0.25]


async def test_waiting_for_what_never_comes_says_what_did(receiver) -> None:
    async with httpx.AsyncClient() as client:
        await client.post(receiver.slack_url, json={"text": "only slack"})
    with pytest.raises(TimeoutError, match=r"expected 1 accepted pagerduty request\(s\).*\('slack', '/slack', 200, None\)"):
        await receiver.wait_for(kind="pagerduty", timeout=0.05)
    (slack,) = await receiver.wait_for(lambda r: r.json["text"] == "only slack", timeout=0.05)
    assert slack.kind == "slack" and slack.received_at > 0


async def test_a_failing_slack_webhook_never_shows_its_secret_path(receiver, caplog) -> None:
    """Issue 17: the Slack webhook URL (a credential) appeared 23 times in the log in error messages."""
    import logging

    from modelmedic.logs import TextFormatter

    secret = "T0SECRET/B0SECRET/xoxSecretWebhookPath"
    sink = SlackSink(f"{receiver.slack_url}/{secret}", retry=RetryPolicy(attempts=3, base_delay_s=0.01))
    receiver.fail_next(3, status=500)
    with caplog.at_level(logging.WARNING):
        [result] = await Alerter([sink]).send(make_alert())
    await sink.aclose()
    assert not result.ok and [r.status for r in receiver.requests] == [500, 500, 500]
    lines = [TextFormatter().format(r) for r in caplog.records]
    assert "xoxSecretWebhookPath" not in result.error + "".join(lines) + caplog.text
    assert f"{receiver.base_url}/slack/***" in result.error

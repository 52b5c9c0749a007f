"""Alert payloads, retries and fan-out, against ``httpx.MockTransport`` (no sockets)."""

from __future__ import annotations

import asyncio
import email.utils
import json
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

from modelmedic.alerting import (
    Alert,
    Alerter,
    AlertmanagerSink,
    PagerDutySink,
    RetryPolicy,
    SlackSink,
    WebhookSink,
    alertmanager_alert,
    build_sinks,
    iso8601,
    pagerduty_event,
    slack_message,
)
from modelmedic.config import SinkSettings
from modelmedic.errors import ConfigError, SinkError

from modelmedic.testing import Invalid, validate_pagerduty, validate_slack

ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"
STARTED = 1_764_089_100_000


def make_alert(**changes: Any) -> Alert:
    fields: dict[str, Any] = dict(
        incident_id="inc-1",
        dedup_key="modelmedic-inc-1",
        status="firing",
        severity="critical",
        summary="p99 latency of fraud v3 is 812 ms, 6.8x its 120 ms baseline",
        model="fraud",
        version="v3",
        role="production",
        kind="latency",
        anomaly_class="latency",
        started_at_ms=STARTED,
        evidence={"observed": 812.5, "baseline": 120.0, "score": 0.999, "tried": ["scale-out"]},
        labels={"team": "risk"},
        links={"dashboard": "http://grafana.local/d/fraud"},
    )
    fields.update(changes)
    return Alert(**fields)


def resolved(alert: Alert, ended_at_ms: int = STARTED + 60_000) -> Alert:
    return alert.model_copy(update={"status": "resolved", "ended_at_ms": ended_at_ms})


class Recorder:
    """A MockTransport handler answering from a script of responses and recording the requests."""

    def __init__(self, *responses: httpx.Response | Exception) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) for r in self.requests]


def policy(sleeps: list[float], retries: int = 3) -> RetryPolicy:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return RetryPolicy(attempts=retries + 1, base_delay_s=1.0, max_delay_s=4.0, max_retry_after_s=30.0, sleep=sleep, jitter=lambda: 0.5)


def counter(sink: str, result: str) -> float:
    return REGISTRY.get_sample_value("modelmedic_alerts_total", {"sink": sink, "result": result}) or 0.0


def observations(sink: str) -> float:
    return REGISTRY.get_sample_value("modelmedic_alert_delivery_seconds_count", {"sink": sink}) or 0.0


# --- the alert itself ---------------------------------------------------------------------------


def test_resolved_alert_needs_its_end() -> None:
    with pytest.raises(ValidationError, match="ended_at_ms"):
        make_alert(status="resolved")
    with pytest.raises(ValidationError, match="before started_at_ms"):
        make_alert(status="resolved", ended_at_ms=STARTED - 1)


@pytest.mark.parametrize("name", ["severity", "incident_id", "bad-name", "1x"])
def test_extra_labels_cannot_clash_or_break_alertmanager(name: str) -> None:
    with pytest.raises(ValidationError, match=name):
        make_alert(labels={name: "x"})


def test_idempotency_key_changes_with_status_and_level_only() -> None:
    alert = make_alert()
    assert alert.idempotency_key == "modelmedic-inc-1:firing:0"
    assert make_alert(evidence={"observed": 1.0}).idempotency_key == alert.idempotency_key
    assert make_alert(escalation_level=2).idempotency_key == "modelmedic-inc-1:firing:2"
    assert resolved(alert).idempotency_key == "modelmedic-inc-1:resolved:0"


# --- PagerDuty ----------------------------------------------------------------------------------


def test_pagerduty_trigger_follows_events_v2() -> None:
    event = pagerduty_event(make_alert(), ROUTING_KEY)
    validate_pagerduty(event)
    assert event["routing_key"] == ROUTING_KEY
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "modelmedic-inc-1"
    assert event["payload"] == {
        "summary": "p99 latency of fraud v3 is 812 ms, 6.8x its 120 ms baseline",
        "source": "fraud/v3",
        "severity": "critical",
        "timestamp": "2025-11-25T16:45:00.000Z",
        "component": "production",
        "group": "fraud",
        "class": "latency/latency",
        "custom_details": {
            "observed": 812.5, "baseline": 120.0, "score": 0.999, "tried": ["scale-out"],
            "incident_id": "inc-1", "escalation_level": 0, "labels": {"team": "risk"},
        },
    }
    assert event["links"] == [{"href": "http://grafana.local/d/fraud", "text": "dashboard"}]


def test_pagerduty_summary_is_cut_to_1024_characters() -> None:
    event = pagerduty_event(make_alert(summary="x" * 5000), ROUTING_KEY)
    validate_pagerduty(event)
    assert len(event["payload"]["summary"]) == 1024


@pytest.mark.parametrize("severity", ["critical", "error", "warning", "info"])
def test_pagerduty_severity_passes_through(severity: str) -> None:
    assert pagerduty_event(make_alert(severity=severity), ROUTING_KEY)["payload"]["severity"] == severity


async def test_pagerduty_trigger_escalate_resolve_share_one_dedup_key() -> None:
    recorder = Recorder(httpx.Response(202, json={"status": "success", "message": "Event processed"}))
    sink = PagerDutySink(ROUTING_KEY, url="http://pd.test/v2/enqueue", transport=httpx.MockTransport(recorder))
    alert = make_alert()
    for message in (alert, make_alert(escalation_level=1, severity="critical"), resolved(alert)):
        await sink.send(message)
    await sink.aclose()
    trigger, escalation, resolve = recorder.bodies()
    assert [trigger["event_action"], escalation["event_action"], resolve["event_action"]] == ["trigger", "trigger", "resolve"]
    assert {trigger["dedup_key"], escalation["dedup_key"], resolve["dedup_key"]} == {"modelmedic-inc-1"}
    assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "modelmedic-inc-1"}
    validate_pagerduty(resolve)
    assert all(str(r.url) == "http://pd.test/v2/enqueue" for r in recorder.requests)


async def test_pagerduty_400_is_not_retried_and_says_the_payload_was_rejected() -> None:
    sleeps: list[float] = []
    recorder = Recorder(httpx.Response(400, json={"status": "invalid event", "message": "Event object is invalid",
                                                  "errors": ["'payload.severity' is missing"]}))
    sink = PagerDutySink(ROUTING_KEY, retry=policy(sleeps), transport=httpx.MockTransport(recorder))
    with pytest.raises(SinkError, match=r"PagerDuty rejected the event payload .*payload.severity"):
        await sink.send(make_alert())
    assert len(recorder.requests) == 1 and sleeps == []
    assert str(recorder.requests[0].url) == "https://events.pagerduty.com/v2/enqueue"


async def test_pagerduty_only_202_is_success() -> None:
    recorder = Recorder(httpx.Response(200, text="ok"))
    sink = PagerDutySink(ROUTING_KEY, retry=policy([]), transport=httpx.MockTransport(recorder))
    with pytest.raises(SinkError, match="HTTP 200"):
        await sink.send(make_alert())


# --- Alertmanager -------------------------------------------------------------------------------


def test_alertmanager_labels_identify_the_incident() -> None:
    firing = alertmanager_alert(make_alert())
    escalated = alertmanager_alert(make_alert(escalation_level=2, evidence={"observed": 900.0}))
    assert firing["labels"] == {
        "alertname": "modelmedic_latency", "model": "fraud", "version": "v3", "role": "production",
        "kind": "latency", "severity": "critical", "incident_id": "inc-1", "team": "risk",
    }
    assert escalated["labels"] == firing["labels"]
    assert escalated["annotations"]["escalation_level"] == "2"
    assert firing["annotations"]["summary"] == make_alert().summary
    assert firing["annotations"]["evidence"] == "observed: 812.5\nbaseline: 120\nscore: 0.999\ntried: scale-out"
    assert firing["annotations"]["link_dashboard"] == "http://grafana.local/d/fraud"
    assert firing["startsAt"] == iso8601(STARTED) == "2025-11-25T16:45:00.000Z"
    assert "endsAt" not in firing


async def test_alertmanager_resolve_sets_ends_at_on_the_same_labels() -> None:
    recorder = Recorder(httpx.Response(200))
    sink = AlertmanagerSink("http://am.test:9093/", transport=httpx.MockTransport(recorder))
    await sink.send(make_alert())
    await sink.send(resolved(make_alert(), STARTED + 90_000))
    (firing,), (resolution,) = recorder.bodies()
    assert [str(r.url) for r in recorder.requests] == ["http://am.test:9093/api/v2/alerts"] * 2
    assert resolution["labels"] == firing["labels"]
    assert resolution["endsAt"] == "2025-11-25T16:46:30.000Z"
    assert resolution["startsAt"] == firing["startsAt"]


# --- webhook and Slack --------------------------------------------------------------------------


async def test_webhook_posts_versioned_payload_with_idempotency_key() -> None:
    recorder = Recorder(httpx.Response(204))
    sink = WebhookSink("http://hook.test/in", transport=httpx.MockTransport(recorder))
    await sink.send(make_alert(escalation_level=1))
    (request,) = recorder.requests
    assert request.headers["Idempotency-Key"] == "modelmedic-inc-1:firing:1"
    assert request.headers["Content-Type"] == "application/json"
    body = json.loads(request.content)
    assert body["type"] == "modelmedic.alert" and body["payload_version"] == 1
    assert body["idempotency_key"] == "modelmedic-inc-1:firing:1"
    assert body["alert"] == make_alert(escalation_level=1).model_dump(mode="json")


def test_slack_message_is_valid_and_marks_resolution() -> None:
    firing, done = slack_message(make_alert()), slack_message(resolved(make_alert()))
    validate_slack(firing)
    validate_slack(done)
    assert firing["text"].startswith(":rotating_light: CRITICAL: latency on fraud v3")
    assert done["text"].startswith(":white_check_mark: RESOLVED")
    assert done["blocks"][0]["text"]["text"].startswith(":white_check_mark: RESOLVED")
    assert {"type": "button", "text": {"type": "plain_text", "text": "dashboard"},
            "url": "http://grafana.local/d/fraud"} in firing["blocks"][-1]["elements"]


def test_a_slack_message_that_may_repeat_says_so_where_people_read() -> None:
    again = slack_message(make_alert(maybe_repeat=True))
    validate_slack(again)
    assert again["text"].startswith(":rotating_light: CRITICAL: latency on fraud v3 (may repeat): ")
    assert "same alert, not a new one" in again["blocks"][-2]["elements"][0]["text"]
    assert "may repeat" not in json.dumps(slack_message(make_alert()))


def test_slack_message_stays_within_block_kit_limits() -> None:
    alert = make_alert(
        summary="<b>" + "y" * 4000, model="m" * 200, evidence={f"k{i}": "v" * 100 for i in range(60)},
        links={f"link{i}" + "n" * 80: f"http://x/{i}" for i in range(30)},
    )
    message = slack_message(alert)
    validate_slack(message)
    assert "&lt;b&gt;" in message["blocks"][1]["text"]["text"] and "&lt;b&gt;" in message["text"]
    assert len(message["text"]) == 3000


def test_the_receiver_validators_catch_broken_payloads() -> None:
    """The integration tests trust these validators, so they must actually refuse things."""
    event = pagerduty_event(make_alert(), ROUTING_KEY)
    with pytest.raises(Invalid, match="severity"):
        validate_pagerduty({**event, "payload": {**event["payload"], "severity": "page"}})
    with pytest.raises(Invalid, match="dedup_key is required"):
        validate_pagerduty({"routing_key": ROUTING_KEY, "event_action": "resolve"})
    with pytest.raises(Invalid, match="no_text"):
        validate_slack({"text": ""})
    with pytest.raises(Invalid, match="invalid_blocks: blocks.0..text.text is 151"):
        validate_slack({"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]})


# --- retries ------------------------------------------------------------------------------------


async def test_503_is_retried_with_exponential_backoff_then_succeeds() -> None:
    sleeps: list[float] = []
    recorder = Recorder(httpx.Response(503), httpx.Response(503), httpx.Response(200))
    sink = SlackSink("http://slack.test/hook", retry=policy(sleeps), transport=httpx.MockTransport(recorder))
    await sink.send(make_alert())
    assert len(recorder.requests) == 3
    assert sleeps == [0.75, 1.5]  # ceilings 1 and 2 s, jitter 0.5 -> three quarters of each


def test_backoff_is_bounded_and_jittered() -> None:
    low = RetryPolicy(base_delay_s=1.0, max_delay_s=4.0, jitter=lambda: 0.0)
    high = RetryPolicy(base_delay_s=1.0, max_delay_s=4.0, jitter=lambda: 0.999999)
    assert [low.backoff(n) for n in range(5)] == [0.5, 1.0, 2.0, 2.0, 2.0]
    assert [round(high.backoff(n), 3) for n in range(5)] == [1.0, 2.0, 4.0, 4.0, 4.0]


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("3600", 30.0), ("-5", 0.0), ("inf", 30.0), (None, 0.75), ("soon", 0.75), ("nan", 0.75)],
)
async def test_429_honours_retry_after_capped(header: str | None, expected: float) -> None:
    sleeps: list[float] = []
    headers = {"Retry-After": header} if header is not None else {}
    recorder = Recorder(httpx.Response(429, headers=headers), httpx.Response(202))
    sink = PagerDutySink(ROUTING_KEY, retry=policy(sleeps), transport=httpx.MockTransport(recorder))
    await sink.send(make_alert())
    assert sleeps == [expected]


def test_retry_after_as_http_date() -> None:
    now = 1_700_000_000.0
    assert RetryPolicy().retry_after(email.utils.formatdate(now + 12, usegmt=True), now) == 12.0


async def test_connect_errors_are_retried_then_reported() -> None:
    sleeps: list[float] = []
    recorder = Recorder(httpx.ConnectError("connection refused"))
    sink = WebhookSink("http://down.test/", retry=policy(sleeps, retries=2), transport=httpx.MockTransport(recorder))
    with pytest.raises(SinkError, match=r"gave up on http://down.test/ after 3 attempts \(last: ConnectError"):
        await sink.send(make_alert())
    assert sleeps == [0.75, 1.5]


async def test_timeouts_are_retried() -> None:
    sleeps: list[float] = []
    recorder = Recorder(httpx.ReadTimeout("slow"), httpx.Response(200))
    sink = WebhookSink("http://slow.test/", retry=policy(sleeps), transport=httpx.MockTransport(recorder))
    await sink.send(make_alert())
    assert len(recorder.requests) == 2 and sleeps == [0.75]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
async def test_other_4xx_fail_at_once(status: int) -> None:
    sleeps: list[float] = []
    recorder = Recorder(httpx.Response(status, text="no_service"))
    sink = SlackSink("http://slack.test/hook", retry=policy(sleeps), transport=httpx.MockTransport(recorder))
    with pytest.raises(SinkError, match=f"rejected the alert with HTTP {status}: 'no_service'; check the sink's URL"):
        await sink.send(make_alert())
    assert len(recorder.requests) == 1 and sleeps == []


# --- fan-out ------------------------------------------------------------------------------------


async def test_a_failing_and_a_hanging_sink_do_not_block_the_others() -> None:
    delivered = asyncio.Event()

    def ok(request: httpx.Request) -> httpx.Response:
        delivered.set()
        return httpx.Response(200)

    async def hang(request: httpx.Request) -> httpx.Response:
        await delivered.wait()  # the healthy sink got through while this one was stuck
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    sinks = [
        WebhookSink("http://ok.test/", name="fanout-ok", transport=httpx.MockTransport(ok)),
        WebhookSink("http://broken.test/", name="fanout-broken", retry=policy([], retries=1),
                    transport=httpx.MockTransport(Recorder(httpx.Response(500)))),
        WebhookSink("http://hung.test/", name="fanout-hung", transport=httpx.MockTransport(hang)),
    ]
    before = {s.name: (counter(s.name, "ok"), counter(s.name, "error"), counter(s.name, "timeout"), observations(s.name))
              for s in sinks}
    alerter = Alerter(sinks, deadline_s=0.2)
    results = await alerter.send(make_alert())
    await alerter.aclose()

    assert [(r.sink, r.result) for r in results] == [
        ("fanout-ok", "ok"), ("fanout-broken", "error"), ("fanout-hung", "timeout"),
    ]
    assert results[0].ok and results[0].error is None
    assert "gave up on http://broken.test/ after 2 attempts (last: HTTP 500)" in (results[1].error or "")
    assert "0.2s deadline" in (results[2].error or "")
    assert results[2].seconds >= 0.2
    expected_deltas = {"fanout-ok": (1, 0, 0, 1), "fanout-broken": (0, 1, 0, 1), "fanout-hung": (0, 0, 1, 1)}
    for sink in sinks:
        after = (counter(sink.name, "ok"), counter(sink.name, "error"), counter(sink.name, "timeout"), observations(sink.name))
        assert tuple(a - b for a, b in zip(after, before[sink.name])) == expected_deltas[sink.name]


async def test_a_sink_bug_is_contained() -> None:
    class Broken:
        name = "fanout-bug"

        async def send(self, alert: Alert) -> None:
            raise KeyError("oops")

        async def aclose(self) -> None:
            return None

    (result,) = await Alerter([Broken()]).send(make_alert())
    assert result.result == "error" and result.error == "KeyError: 'oops'"


# --- configuration ------------------------------------------------------------------------------


async def test_build_sinks_from_settings() -> None:
    recorder = Recorder(httpx.Response(202))
    settings = [
        SinkSettings(type="pagerduty", url="http://pd.test/v2/enqueue", routing_key=ROUTING_KEY, retries=0),
        SinkSettings(type="alertmanager", url="http://am.test:9093"),
        SinkSettings(type="slack", url="http://slack.test/hook", name="slack-oncall"),
        SinkSettings(type="webhook", url="http://hook.test/in", timeout_s=1.5),
    ]
    sinks = build_sinks(settings, transport=httpx.MockTransport(recorder))
    assert [(type(s).__name__, s.name, s.url) for s in sinks] == [
        ("PagerDutySink", "pagerduty", "http://pd.test/v2/enqueue"),
        ("AlertmanagerSink", "alertmanager", "http://am.test:9093/api/v2/alerts"),
        ("SlackSink", "slack-oncall", "http://slack.test/hook"),
        ("WebhookSink", "webhook", "http://hook.test/in"),
    ]
    await sinks[0].send(make_alert())
    assert recorder.bodies()[0]["routing_key"] == ROUTING_KEY
    recorder.responses = [httpx.Response(503)]
    with pytest.raises(SinkError, match="after 1 attempts"):  # retries=0 from the settings
        await sinks[0].send(make_alert())
    await Alerter(sinks).aclose()


def test_build_sinks_refuses_duplicate_names() -> None:
    settings = [SinkSettings(type="webhook", url="http://a.test/"), SinkSettings(type="webhook", url="http://b.test/")]
    with pytest.raises(ConfigError, match="two sinks are named 'webhook'"):
        build_sinks(settings)

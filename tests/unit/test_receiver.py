"""The test receiver tells what a person was paged with from what went over the wire.

Real sinks post to a real receiver on loopback; every repeat a crash can cause (the same
message sent twice) is one page to a person at the services that fold repeats, and two
messages on Slack, which folds nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from modelmedic.alerting import Alert, AlertmanagerSink, PagerDutySink, SlackSink, WebhookSink
from modelmedic.retry import RetryPolicy
from modelmedic.testing import AlertReceiver, Invalid, Received, validate_alertmanager

STARTED = 1_764_089_100_000


def alert(status: str = "firing", level: int = 0, incident: str = "inc-1") -> Alert:
    return Alert(incident_id=incident, dedup_key=f"modelmedic-{incident}", status=status, severity="critical",
                 summary="p99 latency of fraud v3 is 812 ms", model="fraud", version="v3", role="production",
                 kind="latency", anomaly_class="latency", escalation_level=level, started_at_ms=STARTED,
                 ended_at_ms=STARTED + 60_000 if status == "resolved" else None)


@pytest.fixture
def receiver():
    with AlertReceiver() as r:
        yield r


def sinks(receiver: AlertReceiver) -> dict[str, Any]:
    once = RetryPolicy(attempts=1)
    return {"pagerduty": PagerDutySink("R" * 32, url=receiver.pagerduty_url, retry=once),
            "alertmanager": AlertmanagerSink(receiver.alertmanager_url, retry=once),
            "webhook": WebhookSink(receiver.webhook_url, retry=once),
            "slack": SlackSink(receiver.slack_url, retry=once)}


async def test_a_repeat_is_two_deliveries_and_one_page_except_on_slack(receiver):
    for kind, sink in sinks(receiver).items():
        for message in (alert(), alert(), alert("resolved"), alert("resolved")):  # each sent twice: a crash after each
            await sink.send(message)
        await sink.aclose()
        assert len(receiver.deliveries(kind)) == 4, kind
    assert {kind: len(receiver.pages_to_humans(kind)) for kind in ("pagerduty", "alertmanager", "webhook", "slack")} \
        == {"pagerduty": 1, "alertmanager": 1, "webhook": 2, "slack": 4}  # webhook: the firing and the resolve


async def test_what_is_a_new_page_at_each_service(receiver):
    s = sinks(receiver)
    for message in (alert(), alert(level=1), alert("resolved", level=1), alert(), alert(incident="inc-2")):
        for sink in (s["pagerduty"], s["webhook"]):
            await sink.send(message)
    pd = receiver.pages_to_humans("pagerduty")
    # An escalation updates the open PagerDuty incident; a trigger after its resolve opens a new one.
    assert [p.identity for p in pd] == ["modelmedic-inc-1", "modelmedic-inc-1", "modelmedic-inc-2"]
    assert [p.identity for p in receiver.pages_to_humans("webhook")] == [
        "modelmedic-inc-1:firing:0", "modelmedic-inc-1:firing:1", "modelmedic-inc-1:resolved:1", "modelmedic-inc-2:firing:0"]
    for sink in s.values():
        await sink.aclose()


def test_the_alertmanager_contract_is_checked() -> None:
    for body, error in (({}, "JSON list"), ([{"labels": {}}], "at least one label"),
                        ([{"labels": {"bad-name": "x"}}], "invalid pair"),
                        ([{"labels": {"a": "b"}, "startsAt": "2025-01-02T00:00:00Z", "endsAt": "2025-01-01T00:00:00Z"}],
                         "start time must be before end time"),
                        ([{"labels": {"a": "b"}, "extra": 1}], "unknown fields")):
        with pytest.raises(Invalid, match=error):
            validate_alertmanager(body)


async def test_a_hook_runs_after_the_page_is_taken_and_before_the_answer(receiver):
    seen: list[tuple[str, int]] = []

    def hook(r: Received) -> None:
        seen.append((r.kind, len(receiver.requests)))  # not recorded yet: recorded once answered

    receiver.before_answer(hook)
    sink = PagerDutySink("R" * 32, url=receiver.pagerduty_url, retry=RetryPolicy(attempts=1))
    await sink.send(alert())
    receiver.before_answer(None)
    await sink.send(alert())
    await sink.aclose()
    assert seen == [("pagerduty", 0)] and len(receiver.deliveries("pagerduty")) == 2

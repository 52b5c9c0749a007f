"""Acknowledgement as every sink says it, what is owed to whom, and PagerDuty's webhook signature."""

from __future__ import annotations

from modelmedic.alerting import alertmanager_alert, alertmanager_labels, pagerduty_event, slack_message
from modelmedic.alerting.pagerduty_webhook import sign, signed_by_any
from modelmedic.response.incidents import IncidentBook, Notice
from test_incidents import anomaly


def acked_incident():
    incident = IncidentBook().apply(anomaly())
    incident.delivered("pagerduty", Notice("firing", 0, 0))
    incident.acknowledge("alice", 0)
    return incident


def test_an_acknowledgement_in_each_sinks_words() -> None:
    incident = acked_incident()
    firing, acked = incident.alert("firing"), incident.alert("acknowledged")
    assert pagerduty_event(acked, "R" * 32) == {"routing_key": "R" * 32, "event_action": "acknowledge",
                                                "dedup_key": firing.dedup_key}
    am = alertmanager_alert(acked)
    assert am["labels"] == alertmanager_labels(firing), "the same alert to Alertmanager"
    assert "endsAt" not in am and am["annotations"]["acknowledged_by"] == "alice"
    assert slack_message(acked)["text"].startswith(":eyes: ACKNOWLEDGED by alice: latency on fraud 1.0")
    assert acked.summary.startswith(f"ACKNOWLEDGED by alice: {incident.summary}. No more automatic remediation")
    assert acked.idempotency_key != firing.idempotency_key


def test_an_acknowledgement_is_owed_only_to_sinks_that_heard_the_page_and_never_after_the_resolve() -> None:
    incident = acked_incident()
    incident.owe("acknowledged", 0, ["pagerduty", "slack"], 1)
    assert list(incident.owed) == ["pagerduty"], "slack never heard the page"
    incident.owe("acknowledged", 0, ["pagerduty"], 2)
    assert [n.status for n in incident.owed["pagerduty"]] == ["acknowledged"], "owed once"
    incident.owe("resolved", 0, ["pagerduty"], 3)
    incident.owe("acknowledged", 0, ["pagerduty"], 4)
    assert [n.status for n in incident.owed["pagerduty"]] == ["acknowledged", "resolved"]


def test_the_webhook_signature_is_checked_against_every_secret_and_every_offered_signature() -> None:
    body = b'{"event": {}}'
    assert signed_by_any(body, sign(body, "s1"), ["s1"])
    assert signed_by_any(body, f"v1=00ff, {sign(body, 's2')}", ["s1", "s2"]), "rotation: two signatures"
    assert not signed_by_any(body, sign(body, "s1"), ["s2"])
    assert not signed_by_any(body + b" ", sign(body, "s1"), ["s1"]), "a changed body"
    assert not signed_by_any(body, "", ["s1"]) and not signed_by_any(body, sign(body, "s1")[3:], ["s1"])

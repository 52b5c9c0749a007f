"""Pages a person can act on (issue 15 item 1), from an anomaly on real Kafka to real receivers.

The response plane runs on the session's Kafka with a registry naming each model's owners:
its pages go to a real Alertmanager whose routing tree sends ``team=payments`` and
``team=search`` to receivers of their own, and to PagerDuty- and Slack-format receivers.
Every page carries the routing labels and the runbook, dashboard and incident links, and its
headline says what modelmedic does next.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from modelmedic.alerting import Alerter, build_sinks
from modelmedic.config import SinkSettings
from modelmedic.errors import UnknownModelError
from modelmedic.kafka import ensure_topics
from modelmedic.response.plane import ResponsePlane
from modelmedic.response.policy import parse_policy
from test_response import anomaly, publish

pytestmark = pytest.mark.integration


@dataclass
class Spec:
    owners: tuple[str, ...]


class Owners:
    """The registry as the plane reads it: each model's ``model.yaml`` owners."""

    def __init__(self, owners: dict[str, tuple[str, ...]]) -> None:
        self.owners = owners

    def spec(self, model: str) -> Spec:
        if model not in self.owners:
            raise UnknownModelError(f"no model {model}")
        return Spec(self.owners[model])


POLICY = parse_policy({
    "guard_rails": {"storm_hold_s": 0},
    "links": {"runbook": "https://runbooks.example.com/{anomaly_class}.md",
              "dashboard": "https://grafana.example.com/d/models?var-model={model}&from={start_ms}"},
    "rules": [{"match": {"anomaly_class": ["errors"], "models": ["checkout"]}, "auto_remediate": False,
               "runbook": "https://runbooks.example.com/{model}/errors.md",
               "escalation": [{"after_s": 0, "severity": "error"}, {"after_s": 900, "severity": "critical"}]}],
})


async def test_pages_carry_labels_and_links_and_alertmanager_routes_them_by_team(settings, receiver, team_alertmanager):
    am, notifications = team_alertmanager
    settings = settings.model_copy(update={
        "http": settings.http.model_copy(update={"external_url": "https://modelmedic.example.com"}),
        "kubernetes": settings.kubernetes.model_copy(update={"cluster": "prod-eu-1"}),
    })
    await ensure_topics(settings.kafka)
    sinks = build_sinks([SinkSettings(type="alertmanager", url=am.url),
                         SinkSettings(type="pagerduty", url=receiver.pagerduty_url, routing_key="R" * 32),
                         SinkSettings(type="slack", url=receiver.slack_url)])
    registry = Owners({"checkout": ("payments", "alice@example.com"), "ranker": ("search",)})
    plane = ResponsePlane(settings, Alerter(sinks), policy=POLICY, registry=registry)
    stop = asyncio.Event()
    task = asyncio.create_task(plane.run(stop))
    try:
        await asyncio.wait_for(plane.ready.wait(), 30)
        checkout, ranker = anomaly("checkout", kind="errors"), anomaly("ranker")
        await publish(settings, checkout, ranker)

        # Alertmanager routes each incident to its team's receiver
        routed = await notifications.wait_for(kind="webhook", count=2, timeout=30)
        by_team = {r.path.rsplit("/", 1)[1]: r.json["alerts"][0] for r in routed}
        assert set(by_team) == {"payments", "search"}
        assert by_team["payments"]["labels"]["incident_id"] == checkout.id
        assert by_team["search"]["labels"]["incident_id"] == ranker.id
        labels = by_team["payments"]["labels"]
        assert (labels["team"], labels["owners"], labels["namespace"], labels["cluster"], labels["anomaly_class"]) == (
            "payments", "payments,alice@example.com", "models", "prod-eu-1", "errors")
        assert by_team["payments"]["annotations"]["link_runbook"] == "https://runbooks.example.com/checkout/errors.md"
        assert by_team["search"]["annotations"]["link_incident"] == f"https://modelmedic.example.com/incidents/{ranker.id}"

        # PagerDuty: links as its link objects, labels in the details, what happens next in the summary
        pd = {r.json["dedup_key"]: r.json for r in await receiver.wait_for(kind="pagerduty", count=2, timeout=30)}
        event = pd[f"modelmedic-{checkout.id}"]
        assert {link["text"]: link["href"] for link in event["links"]} == {
            "runbook": "https://runbooks.example.com/checkout/errors.md",
            "dashboard": f"https://grafana.example.com/d/models?var-model=checkout&from={checkout.onset}",
            "incident": f"https://modelmedic.example.com/incidents/{checkout.id}",
        }
        assert event["payload"]["custom_details"]["labels"]["team"] == "payments"
        summary = event["payload"]["summary"]
        assert summary.startswith(checkout.summary + ". Next: no automatic action (the rule does not remediate): "
                                  "needs a person; pages critical at ")
        assert summary.endswith(" UTC unless acknowledged.")
        ranker_summary = pd[f"modelmedic-{ranker.id}"]["payload"]["summary"]
        assert "no Kubernetes access configured" in ranker_summary, ranker_summary

        # Slack: the team among the facts, the links as buttons
        (slack,) = await receiver.wait_for(lambda r: checkout.model in r.json["text"], kind="slack", timeout=30)
        facts = [f["text"] for block in slack.json["blocks"] if block["type"] == "section" for f in block.get("fields", [])]
        assert facts.count("*Team*\npayments") == facts.count("*Cluster*\nprod-eu-1") == 1
        (actions,) = [b for b in slack.json["blocks"] if b["type"] == "actions"]
        assert [e["text"]["text"] for e in actions["elements"]] == ["runbook", "dashboard", "incident"]
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)

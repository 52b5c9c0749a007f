"""What a page says beyond the detection's summary (issue 15 item 1): labels, links, what happens next.

Rendered by the response plane itself (no Kafka: :meth:`ResponsePlane._render` touches none),
with a registry that names owners.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelmedic.alerting import Alerter, alertmanager_labels
from modelmedic.config import load_settings
from modelmedic.errors import UnknownModelError
from modelmedic.response.incidents import HEADLINE_MAX, Attempt, IncidentBook, Notice
from modelmedic.response.pages import page_links
from modelmedic.response.plane import ResponsePlane
from modelmedic.response.policy import parse_policy
from test_incidents import anomaly


@dataclass
class Spec:
    owners: tuple[str, ...]


class Registry:
    def __init__(self, **owners: tuple[str, ...]) -> None:
        self.owners = owners
        self.reads = 0

    def spec(self, model: str) -> Spec:
        self.reads += 1
        if model not in self.owners:
            raise UnknownModelError(f"no model {model}")
        return Spec(self.owners[model])


POLICY = parse_policy({"targets": {"namespace": "serving"},
                       "links": {"runbook": "https://rb.example.com/{anomaly_class}/{kind}",
                                 "dashboard": "https://g.example.com/d?m={model}&v={version}&from={start_ms}"}})


def plane(registry: Registry | None = None, *, k8s: object | None = object(), **settings) -> ResponsePlane:
    return ResponsePlane(load_settings(**settings), Alerter([]), policy=POLICY, registry=registry, k8s=k8s)


def test_a_page_names_its_team_and_where_to_look() -> None:
    p = plane(Registry(fraud=("risk-team", "bob@example.com")), http={"external_url": "https://mm.example.com/"},
              kubernetes={"cluster": "prod-eu-1"})
    incident = IncidentBook().apply(anomaly())
    alert = p._render(incident, Notice("firing", 0, 0))
    assert alert.labels == {"anomaly_class": "latency", "namespace": "serving", "team": "risk-team",
                            "owners": "risk-team,bob@example.com", "cluster": "prod-eu-1"}
    assert alertmanager_labels(alert)["team"] == "risk-team", "Alertmanager can route on it"
    assert alert.links == {"runbook": "https://rb.example.com/latency/latency",
                           "dashboard": f"https://g.example.com/d?m=fraud&v=1.0&from={incident.opened_at_ms}",
                           "incident": f"https://mm.example.com/incidents/{incident.id}"}
    assert alert.summary == (f"{incident.summary}. Next: modelmedic runs rollback, then scale-out, verifying each "
                             "for 60 s; pages critical if none restores it.")


def test_labels_are_fixed_at_the_first_page_so_alertmanager_sees_one_alert() -> None:
    registry = Registry(fraud=("risk-team",))
    p = plane(registry)
    incident = IncidentBook().apply(anomaly())
    first = p._render(incident, Notice("firing", 0, 0))
    registry.owners["fraud"] = ("someone-else",)
    again = p._render(incident, Notice("firing", 1, 0))
    assert alertmanager_labels(again)["team"] == alertmanager_labels(first)["team"] == "risk-team"
    assert registry.reads == 1


def test_without_registry_owners_or_settings_a_page_has_no_team_and_no_incident_link() -> None:
    p = plane(Registry())
    incident = IncidentBook().apply(anomaly())
    alert = p._render(incident, Notice("firing", 0, 0))
    assert alert.labels == {"anomaly_class": "latency", "namespace": "serving"}
    assert set(alert.links) == {"runbook", "dashboard"}
    assert set(page_links(incident, parse_policy({}), None, None)) == set()


def test_the_next_step_says_why_modelmedic_will_not_act() -> None:
    incident = IncidentBook().apply(anomaly())
    incident.created_at_ms = 1_767_225_600_000  # 2026-01-01 00:00 UTC: the first page; critical 60 s later
    alert = plane(k8s=None)._render(incident, Notice("firing", 0, 0))
    assert alert.summary.endswith(". Next: no automatic action (no Kubernetes access configured): needs a person; "
                                  "pages critical at 00:01 UTC unless acknowledged."), alert.summary
    shadow = IncidentBook().apply(anomaly(role="shadow"))
    assert "a shadow candidate under live test" in plane()._render(shadow, Notice("firing", 0, 0)).summary


def test_an_escalated_page_says_what_was_tried_and_fits() -> None:
    incident = IncidentBook().apply(anomaly())
    incident.start_attempt(Attempt(playbook="rollback", key="k", at=0, step=0))
    incident.attempts[-1].finish("skipped", "x" * 2000)
    incident.escalate("no playbook restored the series", 0)
    alert = plane()._render(incident, Notice("firing", 1, 0))
    assert alert.summary.startswith("ESCALATED (level 1): ")
    assert "rollback: skipped (xxx" in alert.summary and len(alert.summary) <= HEADLINE_MAX
    assert alert.summary.endswith(". Manual intervention needed. Next: no automatic action (escalated): needs a person.")


def test_a_resolve_says_how_it_ended_not_what_comes_next() -> None:
    book = IncidentBook()
    incident = book.apply(anomaly())
    book.apply(anomaly(state="recovered"))
    assert plane()._render(incident, Notice("resolved", 0, 0)).summary == incident.resolution


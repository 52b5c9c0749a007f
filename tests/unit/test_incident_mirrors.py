"""A traffic problem is the model's, whatever the role: canaries and shadows serve mirrors of
production's requests, so one drop fires on every role at once and must page once."""

from __future__ import annotations

import pytest
from test_incidents import anomaly

from modelmedic.response.incidents import IncidentBook

ROLES = ("production", "canary", "shadow")


@pytest.mark.parametrize("kind", ["throughput_drop", "throughput_surge"])
def test_a_traffic_change_on_every_role_is_one_incident(kind: str) -> None:
    book = IncidentBook()
    fired = [anomaly(kind, role=role) for role in ROLES]
    incidents = []
    for a in fired:
        assert book.is_new(a) == (a is fired[0])
        incidents.append(book.apply(a))
    assert len(book.open_incidents()) == 1 and all(i is incidents[0] for i in incidents)
    assert incidents[0].role == "production" and len(incidents[0].anomaly_ids) == 3
    for a in fired[:2]:
        assert book.apply(anomaly(kind, state="recovered", role=a.role)).active
    assert book.apply(anomaly(kind, state="recovered", role="shadow")).state == "resolved"
    assert book.open_incidents() == []


def test_latency_on_a_canary_is_still_its_own_problem() -> None:
    book = IncidentBook()
    production = book.apply(anomaly("latency"))
    canary = book.apply(anomaly("latency", role="canary"))
    assert canary is not production and len(book.open_incidents()) == 2


def test_the_related_problems_of_a_role_still_name_the_models_traffic_incident() -> None:
    book = IncidentBook()
    drop = book.apply(anomaly("throughput_drop"))
    errors = book.apply(anomaly("errors"))
    assert errors is not drop and errors.evidence["related"] == [f"{drop.id} (throughput): {drop.summary}"]

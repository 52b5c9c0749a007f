"""A crash between the first page's save and the first attempt's save loses no remediation.

``_page_opened`` saves the incident (no longer held, its firing page owed), then the spawned
remediation saves its first attempt before the playbook runs. Measured before the fix: a
plane restarted over an incident saved in between re-sent the owed page and never ran the
rule's playbook (the incident stayed ``open`` with no attempt until its escalation timetable
paged again). Now the restarted plane starts it, once.
"""

from __future__ import annotations

import time

import msgspec
import pytest

from modelmedic.kafka import ensure_topics
from modelmedic.response.incidents import Incident, IncidentBook
from fixtures_kafka import produce
from test_response import anomaly, pages, policy, response_plane, until

pytestmark = pytest.mark.integration


def paged_before_its_first_attempt(model: str) -> Incident:
    """The incident as ``_page_opened`` saves it: out of its storm hold, its firing page owed to
    PagerDuty, no attempt yet (the process died before ``_start_next`` saved one)."""
    incident = IncidentBook().apply(anomaly(model))
    assert incident is not None
    now = int(time.time() * 1000)
    incident.held, incident.created_at_ms = False, now
    incident.owe("firing", 0, ["pagerduty"], now)
    return incident


async def test_a_remediation_lost_between_the_page_and_its_first_attempt_runs_once_after_a_restart(
        settings, receiver, kube, kube_namespace):
    await kube_namespace.create_model("model-r", "v1", replicas=2)
    pol = policy(kube_namespace.name, playbooks=[{"name": "scale-out", "params": {"step": 2, "max_replicas": 6}}])
    lost = paged_before_its_first_attempt("model-r")
    await ensure_topics(settings.kafka)
    await produce(settings, settings.kafka.topics.incidents, [(lost.id.encode(), msgspec.json.encode(lost))])
    async with response_plane(settings, receiver, kube, pol) as plane:
        await receiver.wait_for(kind="pagerduty", count=1)  # the owed page, re-sent
        incident = plane.book.by_id[lost.id]
        try:  # verifying: the playbook returned and the plane waits for recovery (verify_s 30)
            await until(lambda: incident.state == "verifying", timeout=20)
        except TimeoutError:
            pytest.fail(f"the restarted plane never remediated: {incident.state}, attempts {incident.attempts}")
        assert [(a.playbook, a.status) for a in incident.attempts] == [("scale-out", "done")]
        assert await kube.get_replicas(kube_namespace.name, "model-r") == 4  # scaled once: 2 -> 4
    assert [p["event_action"] for p in pages(receiver)] == ["trigger"]

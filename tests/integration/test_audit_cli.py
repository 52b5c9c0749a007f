"""``modelmedic audit`` on real Kafka (issue 15 item 6): why it acted, why it did not page, who acked."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelmedic.alerting import Alerter
from modelmedic.kafka import ensure_topics
from modelmedic.remediations import Outcome, PlaybookContext, PlaybookRegistry, playbook
from modelmedic.response.plane import ResponsePlane
from modelmedic.response.policy import parse_policy
from test_response import anomaly, audit_records, publish, until
from test_silences import NoParams

pytestmark = pytest.mark.integration


def audit(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelmedic", "audit", "-c", str(config), *args],
                          capture_output=True, text=True, timeout=60)


async def test_the_audit_answers_why_it_acted_why_it_did_not_page_and_who_acked(settings, tmp_path):
    await ensure_topics(settings.kafka)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"kafka": settings.kafka.model_dump(mode="json")}))
    books = PlaybookRegistry()

    @playbook(name="rollback-ish", registry=books)
    async def act(ctx: PlaybookContext, params: NoParams) -> Outcome:
        return Outcome.done("rolled back v2 -> v1 (v2 deployed 3 min before the anomaly)")

    pol = parse_policy({"guard_rails": {"cooldown_s": 0, "storm_hold_s": 0}, "rules": [
        {"match": {"anomaly_class": "latency"}, "playbooks": [{"name": "rollback-ish"}], "verify_s": 600},
        {"match": {"anomaly_class": "errors"}, "auto_remediate": False}]})
    plane = ResponsePlane(settings, Alerter([]), policy=pol, playbooks=books, k8s=object())
    stop = asyncio.Event()
    task = asyncio.create_task(plane.run(stop))
    before = int(time.time() * 1000)
    try:
        await asyncio.wait_for(plane.ready.wait(), 30)
        slow, failing = anomaly("fraud-eu"), anomaly("churn", kind="errors")
        await publish(settings, slow, failing)
        await until(lambda: slow.id in plane.book.by_id and plane.book.by_id[slow.id].state == "verifying")
        await until(lambda: failing.id in plane.book.by_id and not plane.book.by_id[failing.id].held)
        await plane.acknowledge(failing.id, "alice")
        await audit_records(settings, failing.id, 3)  # positive evidence: the ack is in the topic
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)

    story = json.loads((await asyncio.to_thread(audit, config, "--incident", slow.id, "--json")).stdout)
    assert [r["action"] for r in story] == ["opened", "paged", "playbook-start", "playbook-end"]
    assert story[-1]["details"]["message"] == "rolled back v2 -> v1 (v2 deployed 3 min before the anomaly)"

    why_not = json.loads((await asyncio.to_thread(audit, config, "--model", "churn", "--action", "paged",
                                                  "--json")).stdout)
    assert [r["details"]["no_remediation_because"] for r in why_not] == ["the rule does not remediate"]

    who = await asyncio.to_thread(audit, config, "--action", "acknowledged", "--since=-1h")
    assert who.returncode == 0, who.stderr
    lines = who.stdout.splitlines()
    assert lines[0].split()[:5] == ["TIME", "(UTC)", "ACTOR", "ACTION", "INCIDENT"] and len(lines) == 2
    assert lines[1].split()[2:6] == ["alice", "acknowledged", failing.id, "churn"]

    later = json.loads((await asyncio.to_thread(audit, config, "--since", "+1h", "--json")).stdout)
    a_minute_before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(before / 1000 - 60))
    bounded = json.loads((await asyncio.to_thread(audit, config, "--until", a_minute_before, "--json")).stdout)
    assert later == [] and bounded == []

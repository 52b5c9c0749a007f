"""Silences and maintenance windows (issue 15 item 4) on real Kafka, created with the CLI.

A maintenance window created before the work (``modelmedic maintenance add``) holds back the
pages and the automatic remediation of its models only; the audit says which window and who
made it; removing it (``modelmedic silence rm``) pages the incident it held back.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from modelmedic.alerting import Alerter, build_sinks
from modelmedic.config import Settings, SinkSettings
from modelmedic.kafka import ensure_topics
from modelmedic.remediations import Outcome, PlaybookContext, PlaybookRegistry, playbook
from modelmedic.response.plane import ResponsePlane
from modelmedic.response.policy import parse_policy
from test_response import anomaly, audit_records, publish, until

pytestmark = pytest.mark.integration


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelmedic", *args, "-c", str(config), "--operator", "alice"],
                          capture_output=True, text=True, timeout=60)


async def test_a_maintenance_window_made_in_advance_holds_back_pages_and_remediation_of_its_models_only(
        settings: Settings, receiver, tmp_path: Path):
    await ensure_topics(settings.kafka)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"kafka": settings.kafka.model_dump(mode="json")}))
    made = await asyncio.to_thread(cli, config, "maintenance", "add", "--model", "pay-*", "--duration", "2h",
                                   "--comment", "DB migration", "--json")
    assert made.returncode == 0, made.stderr
    window = json.loads(made.stdout)
    later = await asyncio.to_thread(cli, config, "silence", "add", "--model", "search-*", "--start", "+1h",
                                    "--duration", "1h")
    assert later.returncode == 0, later.stderr

    acted: list[str] = []
    books = PlaybookRegistry()

    @playbook(name="act", registry=books)
    async def act(ctx: PlaybookContext, params: NoParams) -> Outcome:
        acted.append(ctx.target.model)
        return Outcome.done("acted")

    pol = parse_policy({"guard_rails": {"cooldown_s": 0, "storm_hold_s": 0},
                        "rules": [{"match": {"anomaly_class": "*"}, "playbooks": [{"name": "act"}], "verify_s": 600}]})
    sinks = build_sinks([SinkSettings(type="pagerduty", url=receiver.pagerduty_url, routing_key="R" * 32)])
    plane = ResponsePlane(settings, Alerter(sinks), policy=pol, playbooks=books, k8s=object())
    stop = asyncio.Event()
    task = asyncio.create_task(plane.run(stop))  # started after the window was made: it reads it from Kafka
    try:
        await asyncio.wait_for(plane.ready.wait(), 30)
        listed = {s["id"] for s in json.loads((await asyncio.to_thread(cli, config, "silence", "list", "--json")).stdout)}
        assert set(plane.silences.by_id) == listed and window["id"] in listed and len(listed) == 2
        held, other = anomaly("pay-eu"), anomaly("search-1")
        await publish(settings, held, other)
        await receiver.wait_for(lambda r: r.json["dedup_key"] == f"modelmedic-{other.id}", kind="pagerduty", timeout=30)
        await until(lambda: acted == ["search-1"])
        (opened, decision) = await audit_records(settings, held.id, 2)  # positive evidence: the decision was made
        assert (opened["action"], decision["action"]) == ("opened", "page-silenced")
        assert decision["details"]["silence"] == window["id"] and decision["details"]["created_by"] == "alice"
        assert decision["details"]["no_remediation_because"].startswith(f"remediation paused by maintenance "
                                                                        f"{window['id']} (pay-*, until ")
        assert decision["details"]["remediation"] == []
        assert [r.json["dedup_key"] for r in receiver.deliveries("pagerduty")] == [f"modelmedic-{other.id}"]
        assert acted == ["search-1"] and plane.book.by_id[held.id].state == "open"

        removed = await asyncio.to_thread(cli, config, "silence", "rm", window["id"])
        assert removed.returncode == 0, removed.stderr
        await receiver.wait_for(lambda r: r.json["dedup_key"] == f"modelmedic-{held.id}", kind="pagerduty", timeout=30)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    added = await audit_records(settings, "", 3)  # the CLI's records (no incident)
    assert [(r["action"], r["actor"], r["model"]) for r in added] == [
        ("maintenance-added", "alice", "pay-*"), ("silence-added", "alice", "search-*"),
        ("maintenance-removed", "alice", "pay-*")]
    missing = await asyncio.to_thread(cli, config, "silence", "rm", window["id"])
    assert missing.returncode != 0 and "no silence, maintenance window or pause" in missing.stderr

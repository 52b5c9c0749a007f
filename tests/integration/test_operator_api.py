"""On-call's hands: the operator API and ``modelmedic incident`` against a running service."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import httpx
import pytest

from modelmedic.app import Service
from modelmedic.config import OperatorSettings, SinkSettings, token_sha256
from modelmedic.response.policy import GuardRails
from test_response import anomaly, audit_records, publish, until

pytestmark = pytest.mark.integration

ALICE, BOB = "alice-token-for-the-operator-api-test", "bob-token-for-the-operator-api-test"
OPERATORS = [OperatorSettings(name="alice", role="operate", token_sha256=token_sha256(ALICE)),
             OperatorSettings(name="bob", role="read", token_sha256=token_sha256(BOB))]


def cli(port: int, *args: str, token: str | None = ALICE) -> subprocess.CompletedProcess:
    env = {**os.environ, "MODELMEDIC_URL": f"http://127.0.0.1:{port}"}
    env.pop("MODELMEDIC_API_TOKEN", None)
    if token:
        env["MODELMEDIC_API_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "modelmedic", "incident", *args],
                          capture_output=True, text=True, env=env, timeout=60)


async def test_list_ack_silence_and_resolve_by_hand(settings, receiver):
    settings = settings.model_copy(update={
        "sinks": [SinkSettings(type="pagerduty", url=receiver.pagerduty_url, routing_key="R" * 32)],
        "http": settings.http.model_copy(update={"operators": OPERATORS}),
    })
    service = Service(settings)
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.response.ready.wait(), 30)
        port = service.http.port
        fire = anomaly("model-ops")
        await publish(settings, fire)
        await receiver.wait_for(kind="pagerduty", count=1, timeout=GuardRails().storm_hold_s + 15)  # (held first)

        listed = await asyncio.to_thread(cli, port, "list", "--state", "open")
        assert listed.returncode == 0 and fire.id in listed.stdout

        refused = await asyncio.to_thread(cli, port, "ack", fire.id, token="wrong")
        assert refused.returncode == 3 and "401" in refused.stderr and "missing or unknown token" in refused.stderr
        reader = await asyncio.to_thread(cli, port, "ack", fire.id, token=BOB)
        assert reader.returncode == 3 and "403" in reader.stderr and "bob has the read role" in reader.stderr

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            # On the real socket: a silence of 1e308 minutes was a 500; the claimed actor was taken from X-Operator.
            huge = await http.post(f"/api/v1/incidents/{fire.id}/silence", json={"minutes": 1e308},
                                   headers={"Authorization": f"Bearer {ALICE}"})
            assert huge.status_code == 400 and huge.json()["field"] == "minutes"
            acked = await http.post(f"/api/v1/incidents/{fire.id}/ack",
                                    headers={"Authorization": f"Bearer {ALICE}", "X-Operator": "ceo@evil"})
            assert acked.status_code == 200, acked.text
        assert service.response.book.by_id[fire.id].state == "acknowledged"
        assert service.response.book.by_id[fire.id].acknowledged_by == "alice"
        audit = await audit_records(settings, fire.id, 3)  # opened, paged (the page went out first), then the ack
        assert [(r["action"], r["actor"]) for r in audit] == [("opened", "modelmedic"), ("paged", "modelmedic"),
                                                              ("acknowledged", "alice")]

        silenced = await asyncio.to_thread(cli, port, "silence", fire.id, "--minutes", "5")
        assert silenced.returncode == 0 and f"{fire.id}  acknowledged" in silenced.stdout
        assert service.response.book.by_id[fire.id].silenced_until_ms > 0

        missing = await asyncio.to_thread(cli, port, "resolve", "no-such-incident")
        assert missing.returncode == 3 and "404" in missing.stderr

        resolved = await asyncio.to_thread(cli, port, "resolve", fire.id)
        assert resolved.returncode == 0, resolved.stderr
        got = await receiver.wait_for(kind="pagerduty", count=3)  # the page, the ack (issue 15 item 2), the resolve
        assert [g.json["event_action"] for g in got] == ["trigger", "acknowledge", "resolve"]
        assert {g.json["dedup_key"] for g in got} == {got[0].json["dedup_key"]}
        await until(lambda: service.response.book.by_id[fire.id].state == "resolved")
    finally:
        service.stop.set()
        await asyncio.wait_for(task, 30)

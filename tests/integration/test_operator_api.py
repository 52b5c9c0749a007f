"""On-call's hands: the operator API and ``modelmedic incident`` against a running service."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from pydantic import SecretStr

from modelmedic.config import SinkSettings
from modelmedic.app import Service
from test_response import anomaly, publish, until

pytestmark = pytest.mark.integration


def cli(port: int, *args: str, token: str | None = "s3cret") -> subprocess.CompletedProcess:
    env = {**os.environ, "MODELMEDIC_URL": f"http://127.0.0.1:{port}"}
    env.pop("MODELMEDIC_API_TOKEN", None)
    if token:
        env["MODELMEDIC_API_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "modelmedic", "incident", "--operator", "alice", *args],
                          capture_output=True, text=True, env=env, timeout=60)


async def test_list_ack_silence_and_resolve_by_hand(settings, receiver):
    settings = settings.model_copy(update={
        "sinks": [SinkSettings(type="pagerduty", url=receiver.pagerduty_url, routing_key="R" * 32)],
        "http": settings.http.model_copy(update={"api_token": SecretStr("s3cret")}),
    })
    service = Service(settings)
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.response.ready.wait(), 30)
        port = service.http.port
        fire = anomaly("model-ops")
        await publish(settings, fire)
        await receiver.wait_for(kind="pagerduty", count=1)

        listed = await asyncio.to_thread(cli, port, "list", "--state", "open")
        assert listed.returncode == 0 and fire.id in listed.stdout

        refused = await asyncio.to_thread(cli, port, "ack", fire.id, token="wrong")
        assert refused.returncode == 2 and "401" in refused.stderr and "bearer token" in refused.stderr

        acked = await asyncio.to_thread(cli, port, "--json", "ack", fire.id)
        assert acked.returncode == 0, acked.stderr
        assert service.response.book.by_id[fire.id].state == "acknowledged"
        assert service.response.book.by_id[fire.id].acknowledged_by == "alice"

        silenced = await asyncio.to_thread(cli, port, "silence", fire.id, "--minutes", "5")
        assert silenced.returncode == 0 and service.response.book.by_id[fire.id].silenced_until_ms > 0

        missing = await asyncio.to_thread(cli, port, "resolve", "no-such-incident")
        assert missing.returncode == 2 and "404" in missing.stderr

        resolved = await asyncio.to_thread(cli, port, "resolve", fire.id)
        assert resolved.returncode == 0, resolved.stderr
        got = await receiver.wait_for(kind="pagerduty", count=2)
        assert got[1].json["event_action"] == "resolve" and got[1].json["dedup_key"] == got[0].json["dedup_key"]
        await until(lambda: service.response.book.by_id[fire.id].state == "resolved")
    finally:
        service.stop.set()
        await asyncio.wait_for(task, 30)

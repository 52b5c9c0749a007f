"""``GET /api/v1/audit`` and ``/api/v1/silences`` of a running Service on real Kafka (issue 15 items 1 and 2).

The service answers from the audit *topic*, so what was written outside it (``modelmedic silence add``
on an operator's machine) is in its answer too, and a restarted service reads the records back: no
new activity after the restart, the same answer.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from modelmedic.app import Service
from modelmedic.config import OperatorSettings, Settings, token_sha256
from test_response import anomaly, publish, until

pytestmark = pytest.mark.integration

TOKENS = {"alice": "alice-token-for-the-audit-api-test", "bob": "bob-token-for-the-audit-api-test"}


def with_operators(settings: Settings) -> Settings:
    """alice operates, bob reads."""
    operators = [OperatorSettings(name="alice", role="operate", token_sha256=token_sha256(TOKENS["alice"])),
                 OperatorSettings(name="bob", role="read", token_sha256=token_sha256(TOKENS["bob"]))]
    return settings.model_copy(update={"http": settings.http.model_copy(update={"operators": operators})})


class Running:
    """A Service started for the block, with an HTTP client per operator."""

    def __init__(self, settings: Settings) -> None:
        self.service = Service(settings)

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.service.run())
        await asyncio.wait_for(asyncio.gather(self.service.response.ready.wait(), self.service.detection.ready.wait(),
                                              self.service.audit_tail.loaded.wait()), 60)
        base = f"http://127.0.0.1:{self.service.http.port}"
        self.as_ = {name: httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
                    for name, token in TOKENS.items()}
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in self.as_.values():
            await client.aclose()
        self.service.stop.set()
        await asyncio.wait_for(self.task, 30)

    async def audit(self, **params: object) -> list[dict]:
        """Every record the audit API answers (bob's read token), following the pages."""
        found, cursor = [], None
        while True:
            r = await self.as_["bob"].get("/api/v1/audit", params={**params, **({"cursor": cursor} if cursor else {})})
            assert r.status_code == 200, r.text
            page = r.json()
            found += page["items"]
            if (cursor := page["next_cursor"]) is None:
                return found


async def answered(running: Running, check, timeout: float = 30.0, **params: object) -> list[dict]:
    """The audit API's answer once ``check`` holds of it (records reach the topic, then the tail)."""
    async with asyncio.timeout(timeout):
        while not check(records := await running.audit(**params)):
            await asyncio.sleep(0.1)
    return records


async def test_the_audit_api_answers_from_the_topic_and_after_a_restart(settings: Settings, tmp_path: Path):
    settings = with_operators(settings)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"kafka": settings.kafka.model_dump(mode="json")}))
    fire = anomaly("fraud-eu")
    async with Running(settings) as running:
        await publish(settings, fire)
        await until(lambda: (i := running.service.incident(fire.id)) is not None and not i.held, 30)
        assert (await running.as_["alice"].post(f"/api/v1/incidents/{fire.id}/ack")).status_code == 200
        made = await running.as_["alice"].post("/api/v1/silences", json={
            "kind": "maintenance", "models": ["pay-*"], "starts_ms": int(time.time() * 1000) + 3_600_000,
            "minutes": 120, "comment": "DB migration"})
        assert made.status_code == 201, made.text
        outside = await asyncio.to_thread(subprocess.run, [
            sys.executable, "-m", "modelmedic", "silence", "add", "-c", str(config), "--operator", "carol",
            "--model", "search", "--duration", "1h", "--comment", "noisy canary"], capture_output=True, text=True,
            timeout=60)
        assert outside.returncode == 0, outside.stderr

        story = await answered(running, lambda rs: "acknowledged" in [r["action"] for r in rs], incident=fire.id)
        assert [r["action"] for r in reversed(story)][:2] == ["opened", "paged"] and story[0]["actor"] == "alice"
        quiet = await answered(running, lambda rs: len(rs) == 2, action=["maintenance-added", "silence-added"])
        assert [(r["action"], r["actor"], r["details"]["silence"]["comment"]) for r in quiet] == [
            ("silence-added", "carol", "noisy canary"), ("maintenance-added", "alice", "DB migration")]
        by_glob = await running.audit(model="pay-eu")  # the window on pay-* is part of pay-eu's story
        assert [r["action"] for r in by_glob] == ["maintenance-added"]
        await until(lambda: len(running.service.silences()) == 2, 10)  # the CLI's, through the topic
        listed = (await running.as_["bob"].get("/api/v1/silences")).json()["items"]
        assert sorted((s["kind"], s["created_by"], s["state"]) for s in listed) == [
            ("maintenance", "alice", "scheduled"), ("silence", "carol", "active")]
        before = await running.audit()

    async with Running(settings) as restarted:  # nothing new happens: the same story is read back
        after = await answered(restarted, lambda rs: len(rs) >= len(before))
        assert after == before
        page = (await restarted.as_["bob"].get("/api/v1/audit", params={"limit": 1})).json()
        assert page["complete_from_ms"] is None and page["items"] == before[:1]

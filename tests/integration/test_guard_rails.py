"""Playbooks run by hand go through every guard rail: cooldown, hourly cap, max_concurrent, the global dry run.

Issue 17: 5 of 5 manual runs went through with max_actions_per_hour=1 and a 3,600 s cooldown.
Real Kafka (incidents, audit); the playbooks are the test's own, so no cluster is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel, ConfigDict

from modelmedic.alerting import Alerter
from modelmedic.config import Settings
from modelmedic.kafka import ensure_topics
from modelmedic.remediations import Outcome, PlaybookContext, PlaybookRegistry, playbook
from modelmedic.response.guards import GuardRailRefused
from modelmedic.response.plane import ResponsePlane
from modelmedic.response.policy import parse_policy
from fixtures_planes import running
from test_response import anomaly, audit_actions, publish, until

pytestmark = pytest.mark.integration


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Playbooks:
    """A registry with ``act`` (records each run and whether it was a dry run) and ``hold`` (waits to be let go)."""

    def __init__(self) -> None:
        self.registry = PlaybookRegistry()
        self.runs: list[bool] = []
        self.held = asyncio.Event()
        self.let_go = asyncio.Event()

        @playbook(name="act", registry=self.registry)
        async def act(ctx: PlaybookContext, params: NoParams) -> Outcome:
            self.runs.append(ctx.dry_run)
            return Outcome.dry_run("would act") if ctx.dry_run else Outcome.done("acted")

        @playbook(name="hold", registry=self.registry, timeout_s=60)
        async def hold(ctx: PlaybookContext, params: NoParams) -> Outcome:
            self.held.set()
            await self.let_go.wait()
            return Outcome.done("held, then acted")


@contextlib.asynccontextmanager
async def plane(settings: Settings, books: Playbooks, **rails) -> AsyncIterator[ResponsePlane]:
    await ensure_topics(settings.kafka)
    pol = parse_policy({"guard_rails": {"cooldown_s": 0, "storm_hold_s": 0, **rails},
                        "rules": [{"match": {"anomaly_class": "*"}, "auto_remediate": False}]})
    p = ResponsePlane(settings, Alerter([]), policy=pol, playbooks=books.registry, k8s=object())
    async with running(p):
        yield p


async def incident_of(settings: Settings, p: ResponsePlane, model: str) -> str:
    fire = anomaly(model)
    await publish(settings, fire)
    await until(lambda: fire.id in p.book.by_id and not p.book.by_id[fire.id].held)  # paged: its decision audited
    return fire.id


async def test_the_hourly_cap_holds_for_runs_by_hand(settings):
    books = Playbooks()
    async with plane(settings, books, max_actions_per_hour=1) as p:
        incident = await incident_of(settings, p, "model-cap")
        assert (await p.trigger(incident, "act", {}, "alice")).status == "done"
        with pytest.raises(GuardRailRefused, match=r"already had 1 actions this hour \(max_actions_per_hour=1\)"):
            await p.trigger(incident, "act", {}, "alice")
    assert books.runs == [False], "the second run never started"
    assert [a.by for a in p.book.by_id[incident].attempts] == ["alice"]
    assert await audit_actions(settings, incident, 5) == ["opened", "paged", "playbook-start", "playbook-end",
                                                          "guard-rail"]


async def test_the_cooldown_holds_for_runs_by_hand(settings):
    books = Playbooks()
    async with plane(settings, books, cooldown_s=3600) as p:
        incident = await incident_of(settings, p, "model-cool")
        await p.trigger(incident, "act", {}, "alice")
        with pytest.raises(GuardRailRefused, match=r"was acted on \d+s ago \(cooldown 3600s"):
            await p.trigger(incident, "act", {}, "bob")
    assert books.runs == [False]


async def test_max_concurrent_holds_for_runs_by_hand(settings):
    books = Playbooks()
    async with plane(settings, books, max_concurrent=1) as p:
        first, second = await incident_of(settings, p, "model-c1"), await incident_of(settings, p, "model-c2")
        running = asyncio.create_task(p.trigger(first, "hold", {}, "alice"))
        await asyncio.wait_for(books.held.wait(), 10)
        with pytest.raises(GuardRailRefused, match=r"1 remediations already running \(max_concurrent=1\)"):
            await p.trigger(second, "act", {}, "bob")
        books.let_go.set()
        assert (await running).status == "done"
        assert (await p.trigger(second, "act", {}, "bob")).status == "done", "the slot is free again"
    assert books.runs == [False]


@pytest.mark.parametrize("where", ["settings", "policy"])
async def test_the_global_dry_run_holds_for_runs_by_hand(settings, where):
    books = Playbooks()
    rails = {"dry_run": True} if where == "policy" else {}
    if where == "settings":
        settings = settings.model_copy(update={"dry_run": True})
    async with plane(settings, books, **rails) as p:
        incident = await incident_of(settings, p, "model-dry")
        outcome = await p.trigger(incident, "act", {}, "alice")
    assert books.runs == [True] and outcome.status == "dry_run"
    assert p.book.by_id[incident].attempts[-1].status == "dry_run"

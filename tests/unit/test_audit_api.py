"""``GET /api/v1/audit`` over the held tail of the audit topic (issue 15 item 6): filters, pages, the read
role, what the tail keeps; and that :data:`modelmedic.audit.ACTIONS` names every action the code writes."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path

import msgspec

from fake_status import ONSET, FakeSource, anomaly, bearer, client
from modelmedic.audit import ACTIONS, AuditFilter, AuditTail
from modelmedic.http.api import openapi_document
from modelmedic.release.notify import AuditAction
from modelmedic.response.silences import Kind

ROOT = Path(__file__).resolve().parents[2]


def record(ts: int, action: str, *, incident: str = "i-1", model: str = "fraud-eu", actor: str = "modelmedic",
           **details: object) -> bytes:
    """An audit record as the response plane writes it."""
    return msgspec.json.encode({"ts": ts, "actor": actor, "action": action, "incident_id": incident, "model": model,
                                "version": "v1", "anomaly_class": "latency", "state": "open", "details": details})


def story(source: FakeSource) -> None:
    """Two incidents' records on two partitions, and a maintenance window's (its model: a glob)."""
    written = [
        (0, record(ONSET, "opened")),
        (1, record(ONSET + 1, "opened", incident="i-2", model="churn")),
        (0, record(ONSET + 2, "paged", sinks=["pagerduty"])),
        (1, record(ONSET + 3, "paged", incident="i-2", model="churn",
                   no_remediation_because="the rule does not remediate")),
        (0, record(ONSET + 4, "playbook-end", playbook="rollback", status="done", message="rolled back v2 -> v1")),
        (1, record(ONSET + 5, "acknowledged", incident="i-2", model="churn", actor="alice", via="pagerduty")),
        (2, record(ONSET + 6, "maintenance-added", incident="", model="fraud-*,pay-*", actor="carol")),
    ]
    for offset, (partition, raw) in enumerate(written):
        source.tail.add(partition, offset, raw)


async def listing(source: FakeSource, who: str = "bob", **params: object) -> tuple[int, dict]:
    c = await client(source)
    try:
        r = await c.get("/api/v1/audit", params=params, headers=bearer(who))
        return r.status, await r.json()
    finally:
        await c.close()


async def test_the_three_questions_from_a_read_token() -> None:
    """Why did it roll back, why did it not page (or remediate), who acked: bob only reads."""
    source = FakeSource()
    story(source)
    status, why = await listing(source, incident="i-1", action="playbook-end")
    assert status == 200 and [r["details"]["message"] for r in why["items"]] == ["rolled back v2 -> v1"]
    _, why_not = await listing(source, model="churn", action="paged")
    assert [r["details"]["no_remediation_because"] for r in why_not["items"]] == ["the rule does not remediate"]
    _, who = await listing(source, action="acknowledged")
    assert [(r["actor"], r["details"]["via"]) for r in who["items"]] == [("alice", "pagerduty")]
    assert who["next_cursor"] is None and who["complete_from_ms"] is None  # the whole topic is held


async def test_filters_compose_and_a_window_is_part_of_its_models_story() -> None:
    source = FakeSource()
    story(source)
    _, fraud = await listing(source, model="fraud-eu")
    assert [r["action"] for r in fraud["items"]] == ["maintenance-added", "playbook-end", "paged", "opened"]  # newest 1st
    _, glob = await listing(source, model="fraud-*")
    assert len(glob["items"]) == 4
    _, timed = await listing(source, since=ONSET + 2, until=ONSET + 4)
    assert [r["ts"] for r in timed["items"]] == [ONSET + 4, ONSET + 3, ONSET + 2]
    _, iso = await listing(source, since="2026-01-01T00:00:00.005Z")
    assert [r["ts"] for r in iso["items"]] == [ONSET + 6, ONSET + 5]
    c = await client(source)
    try:
        r = await c.get("/api/v1/audit?action=paged&action=acknowledged", headers=bearer("bob"))
        assert [x["action"] for x in (await r.json())["items"]] == ["acknowledged", "paged", "paged"]
    finally:
        await c.close()


async def test_pages_newest_first_through_every_record() -> None:
    source = FakeSource()
    for k in range(120):
        source.tail.add(k % 3, k // 3, record(ONSET + k // 2, "updated", incident=f"i-{k}"))  # equal times: in order
    seen, cursor, pages = [], None, 0
    while True:
        _, page = await listing(source, limit=50, **({"cursor": cursor} if cursor else {}))
        seen += [r["incident_id"] for r in page["items"]]
        pages, cursor = pages + 1, page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 120
    assert [int(i[2:]) // 2 for i in seen] == sorted((k // 2 for k in range(120)), reverse=True)


async def test_bad_queries_are_a_400_naming_the_parameter() -> None:
    source = FakeSource()
    story(source)
    cases = {"action": ("bogus", "unknown action 'bogus'; the actions are opened, updated"),
             "since": ("yesterday", "not a time: 'yesterday'"), "limit": ("0", "from 1 to 500"),
             "cursor": ("xyz", "not a cursor of the audit listing"), "incident": ("", "empty"), "incidnet": ("i-1", "unknown query")}
    for name, (value, needle) in cases.items():
        status, answer = await listing(source, **{name: value})
        assert status == 400 and answer["field"] == name and needle in answer["error"], (name, answer)
    source.open(anomaly("fraud-eu"))
    source.open(anomaly("churn"))
    c = await client(source)
    try:  # a cursor of the incidents' listing is not one of the audit's
        incidents = await (await c.get("/api/v1/incidents", params={"limit": 1}, headers=bearer("bob"))).json()
        r = await c.get("/api/v1/audit", params={"cursor": incidents["next_cursor"]}, headers=bearer("bob"))
        assert r.status == 400 and (await r.json())["field"] == "cursor"
        r = await c.get("/api/v1/audit", headers={"Authorization": "Bearer nope"})
        assert r.status == 401 and (await r.json())["field"] is None
    finally:
        await c.close()


def test_the_tail_keeps_the_newest_says_from_when_and_ignores_replays() -> None:
    tail = AuditTail(capacity=3)
    for offset in range(5):
        tail.add(0, offset, record(ONSET + offset, "updated"))
    tail.add(0, 4, record(ONSET + 4, "updated"))  # read again (a replay): held once
    tail.add(0, 5, b"not json")  # logged and skipped
    assert [e.head.ts for e in tail.newest(AuditFilter(), None)] == [ONSET + 4, ONSET + 3, ONSET + 2]
    assert tail.complete_from_ms == ONSET + 2  # (ONSET + 1 was dropped)
    resumed = AuditTail()
    resumed.cut(1)  # read back from the middle of partition 1: its first record says from when
    resumed.add(0, 0, record(ONSET, "opened"))
    resumed.add(1, 40, record(ONSET + 9, "paged"))
    resumed.add(1, 41, record(ONSET + 12, "paged"))
    assert resumed.complete_from_ms == ONSET + 9 and len(resumed) == 3


def test_actions_names_every_action_the_code_audits() -> None:
    """A filter on an action the code writes must never be refused, nor a typo accepted."""
    written = set()
    for path in (ROOT / "service" / "response").glob("*.py"):
        written |= set(re.findall(r'_audit\(\s*\w+,\s*"([a-z-]+)"', path.read_text()))
    written |= {f"{kind}-{what}" for kind in typing.get_args(Kind) for what in ("added", "removed")}
    written |= set(typing.get_args(AuditAction))  # (the release commands' failures and overrides)
    assert len(written) > 15 and written == set(ACTIONS)


def test_the_openapi_document_lists_the_same_actions() -> None:
    document = json.loads(openapi_document())
    parameter = next(p for p in document["paths"]["/api/v1/audit"]["get"]["parameters"] if p["name"] == "action")
    assert tuple(parameter["schema"]["items"]["enum"]) == ACTIONS
    assert tuple(document["components"]["schemas"]["AuditRecord"]["properties"]["action"]["enum"]) == ACTIONS


async def test_until_the_topic_is_read_back_the_answer_is_a_503_not_a_short_list() -> None:
    source = FakeSource()
    source.tail = AuditTail()  # just started: nothing read back yet
    status, answer = await listing(source)
    assert status == 503 and "try again" in answer["error"] and answer["field"] is None
    source.tail.loaded.set()
    assert (await listing(source))[0] == 200

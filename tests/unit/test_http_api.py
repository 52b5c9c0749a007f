"""API v1 (issue 15 item 8): pages and cursors, validated filters, one incident, public fields, the
OpenAPI document; and the status UI's pages as HTML (the browser test is tests/integration/test_status_ui.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import typing
from pathlib import Path

from fake_status import ONSET, FakeSource, anomaly, bearer, client
from modelmedic.alerting import pagerduty_webhook
from modelmedic.config import OperatorSettings, token_sha256
from modelmedic.http import ROUTES
from modelmedic.http.api import openapi_document
from modelmedic.response.incidents import State
from modelmedic.response.policy import ANOMALY_CLASSES

ROOT = Path(__file__).resolve().parents[2]


def fleet(n: int) -> FakeSource:
    """``n`` incidents on ``n`` models, one a minute; every third one acknowledged."""
    source = FakeSource()
    for k in range(n):
        incident = source.open(anomaly(f"model-{k:03d}", onset=ONSET + k * 60_000))
        if k % 3 == 0:
            incident.acknowledge("alice", ONSET)
    return source


async def test_the_listing_pages_through_every_incident_newest_first() -> None:
    """Before: one answer capped silently at 500, no way to the rest."""
    source = fleet(620)
    c = await client(source)
    try:
        seen, cursor, pages = [], None, 0
        while True:
            r = await c.get("/api/v1/incidents", params={"limit": 250, **({"cursor": cursor} if cursor else {})},
                            headers=bearer("bob"))
            page = await r.json()
            assert r.status == 200 and len(page["items"]) <= 250
            seen += [i["opened_at_ms"] for i in page["items"]]
            pages, cursor = pages + 1, page["next_cursor"]
            if cursor is None:
                break
        assert pages == 3 and len(seen) == 620 and seen == sorted(seen, reverse=True) and len(set(seen)) == 620
        first = await (await c.get("/api/v1/incidents", headers=bearer("bob"))).json()
        assert len(first["items"]) == 50  # the default page
    finally:
        await c.close()


async def test_filters_select_and_compose() -> None:
    source = fleet(30)
    source.open(anomaly("fraud-scorer", kind="errors", onset=ONSET + 10_000_000))
    c = await client(source)
    try:
        async def ids(**params) -> list[str]:
            r = await c.get("/api/v1/incidents", params=params, headers=bearer("bob"))
            assert r.status == 200, await r.text()
            return [i["id"] for i in (await r.json())["items"]]

        assert len(await ids(state="acknowledged")) == 10
        assert len(await ids(state="open", limit=500)) == 21
        assert len(await ids(model="model-003")) == 1
        assert await ids(model="model-003", state="open") == []
        assert len(await ids(**{"class": "errors"})) == 1
    finally:
        await c.close()


async def test_bad_filters_are_a_400_naming_the_parameter_and_the_valid_values() -> None:
    """Before: ``?state=bogus`` answered ``[]``."""
    c = await client(fleet(3))
    try:
        cases = {
            "state=bogus": ("state", "unknown state 'bogus'; the states are open, remediating, verifying, escalated, "
                                     "acknowledged, resolved"),
            "class=bogus": ("class", "the classes are latency, throughput, errors, prediction, drift"),
            "limit=0": ("limit", "from 1 to 500"),
            "limit=501": ("limit", "from 1 to 500"),
            "limit=ten": ("limit", "got 'ten'"),
            "cursor=xyz": ("cursor", "not a cursor of the incidents listing: pass its next_cursor"),
            "model=": ("model", "empty"),
            "sate=open": ("sate", "unknown query parameter"),
        }
        for query, (field, needle) in cases.items():
            r = await c.get(f"/api/v1/incidents?{query}", headers=bearer("bob"))
            answer = await r.json()
            assert r.status == 400 and answer["field"] == field and needle in answer["error"], (query, answer)
    finally:
        await c.close()


async def test_one_incident_by_id_with_its_public_fields_only() -> None:
    source = FakeSource()
    incident = source.open(anomaly("fraud-scorer"))
    incident.owe("firing", 0, ["pagerduty"], ONSET)
    c = await client(source)
    try:
        r = await c.get(f"/api/v1/incidents/{incident.id}", headers=bearer("bob"))
        shown = await r.json()
        assert r.status == 200 and shown["id"] == incident.id and shown["owners"] == ["team-fraud", "carol"]
        assert shown["pages_owed"] == ["pagerduty"] and shown["pages_sent"] == []
        for internal in ("owed", "heard", "firing_anomalies", "pending", "next_step", "held", "verify_deadline_ms",
                         "anomaly_ids", "created_at_ms", "fired_at_ms", "recovered"):
            assert internal not in shown
        schema = json.loads(openapi_document())["components"]["schemas"]["Incident"]["properties"]
        assert set(shown) == set(schema)
        missing = await c.get("/api/v1/incidents/nope", headers=bearer("bob"))
        assert missing.status == 404 and (await missing.json())["field"] == "id"
    finally:
        await c.close()


async def test_the_served_openapi_document_is_the_one_in_docs_and_covers_every_route() -> None:
    c = await client(FakeSource())
    try:
        served = await (await c.get("/api/v1/openapi.json", headers=bearer("bob"))).json()
    finally:
        await c.close()
    assert served == json.loads((ROOT / "docs" / "openapi.json").read_text())
    documented = {(method.upper(), path) for path, ops in served["paths"].items() for method in ops}
    webhook = ("POST", pagerduty_webhook.PATH, None)  # mounted when a PagerDuty sink has a webhook_secret
    assert documented == {(method, path) for method, path, _, _ in ROUTES} | {webhook[:2]}
    for method, path, role in [(m, p, r) for m, p, _, r in ROUTES] + [webhook]:
        security = served["paths"][path][method.lower()]["security"]
        assert (security == []) == (role is None), path
        assert (security == [{"bearer": []}]) == (role == "operate"), path
    list_params = {p["name"]: p for p in served["paths"]["/api/v1/incidents"]["get"]["parameters"]}
    assert tuple(list_params["state"]["schema"]["enum"]) == typing.get_args(State)
    assert tuple(list_params["class"]["schema"]["enum"]) == ANOMALY_CLASSES


def test_operator_token_prints_a_token_whose_hash_is_the_entry() -> None:
    out = subprocess.run([sys.executable, "-m", "modelmedic", "operator", "token", "alice", "--role", "operate", "--json"],
                         capture_output=True, text=True, timeout=60, check=True)
    made = json.loads(out.stdout)
    assert len(made["token"]) >= 43
    assert OperatorSettings(**made["operator"]) == OperatorSettings(
        name="alice", role="operate", token_sha256=token_sha256(made["token"]))


async def test_the_front_page_tells_escalated_from_acknowledged_and_escapes_what_it_shows() -> None:
    """Before: id, class, series, summary and time only: an acknowledged and an escalated incident looked the same."""
    source = FakeSource()
    hostile = source.open(anomaly("fraud-<script>alert(1)</script>"))
    escalated = source.open(anomaly("fraud-scorer"))
    escalated.escalate("not recovered after 60 s", ONSET)
    escalated.escalate("still not recovered", ONSET)
    acked = source.open(anomaly("search-ranker"))
    acked.acknowledge("alice", ONSET)
    c = await client(source)
    try:
        page = await (await c.get("/", headers=bearer("bob"))).text()
    finally:
        await c.close()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert f'data-id="{escalated.id}" data-state="escalated"' in page
    assert f'data-id="{acked.id}" data-state="acknowledged"' in page and "acknowledged by alice" in page
    assert '<td class="level">2</td>' in page and "team-fraud, carol" in page
    assert '<meta http-equiv="refresh"' in page and "signed in as bob (read)" in page
    assert "too little history to judge yet: 1 (latency), 0 (errors), 2 (throughput)" in page
    assert hostile.id in page


def test_the_plot_keeps_far_actions_at_its_edge_with_their_time() -> None:
    """Decisions are in event time, actions in wall-clock time: a replayed backlog's action months later
    must not squash the decisions into one pixel column."""
    from modelmedic.http.ui import build_plot

    decisions = [anomaly("m", onset=ONSET, observed=v, window_end=ONSET + k * 60_000) for k, v in enumerate((90, 200, 300))]
    near = build_plot(decisions, [(ONSET + 150_000, "scale-out")], "latency")
    assert near is not None and near.unit == "median latency (ms)"
    xs = [x for x, _, _ in near.observed]
    assert xs[0] == near.left and xs[-1] < near.width - near.right  # the axis reaches the action after them
    assert near.marks[0][0] == near.width - near.right and near.marks[0][1] == "scale-out"
    far = build_plot(decisions, [(ONSET + 300 * 86_400_000, "rollback")], "latency")
    assert far is not None and [x for x, _, _ in far.observed][-1] == far.width - far.right  # decisions fill the axis
    assert far.marks == [(far.width - far.right, "rollback (at 2026-10-28 00:00:00 UTC)")]
    assert build_plot([], [], "latency") is None


async def test_the_incident_page_has_its_timeline_and_plot() -> None:
    source = FakeSource()
    incident = source.open(anomaly("fraud-scorer"))
    source.book.apply(anomaly("fraud-scorer", onset=ONSET + 60_000, observed=420.0))  # joins: a second window
    incident.escalate("not recovered after 60 s", ONSET + 180_000)
    c = await client(source)
    try:
        await c.post(f"/api/v1/incidents/{incident.id}/run", json={"playbook": "scale-out"}, headers=bearer("alice"))
        acked = await (await c.post(f"/api/v1/incidents/{incident.id}/ack", headers=bearer("alice"))).json()
        page = await (await c.get(f"/incidents/{incident.id}", headers=bearer("bob"))).text()
        model = await (await c.get("/models/fraud-scorer", headers=bearer("bob"))).text()
        missing = await c.get("/incidents/nope", headers=bearer("bob"))
    finally:
        await c.close()
    assert page.count('class="window firing"') == 2 and page.count('class="action"') == 1
    assert "playbook scale-out (run by hand) done: scaled 2 -&gt; 4" in page
    # Escalation and acknowledgement at their times (before: listed last, "time not recorded").
    assert "(time not recorded)" not in page
    assert acked["escalations"] == [{"level": 1, "at_ms": ONSET + 180_000, "reason": "not recovered after 60 s"}]
    assert acked["acknowledged_by"] == "alice" and acked["acknowledged_at_ms"] == ONSET + 180_000
    rows = page.split('<tr class="event">')[1:]
    assert [r for r in rows if "escalated to level 1: not recovered after 60 s" in r][0].startswith(
        "<td>2026-01-01 00:03:00 UTC</td><td>modelmedic</td>")
    assert [r for r in rows if ">acknowledged<" in r][0].startswith("<td>2026-01-01 00:03:00 UTC</td><td>alice</td>")
    assert '<tr class="serving"><td>v1</td><td>production</td>' in model and incident.id in model
    assert missing.status == 404

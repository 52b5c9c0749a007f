"""Silences, maintenance windows and pauses through the API and in the status UI (issue 15 items 2 and 4):
a read token lists them, an operate token makes and ends them, the pages show who made each and why, and
an incident's page shows the window holding it. (On Kafka, with the audit: tests/integration/test_audit_api_real.py.)"""

from __future__ import annotations

import time
import typing

from fake_status import FakeSource, anomaly, bearer, client

HOUR = 3_600_000


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_an_operator_makes_a_window_a_reader_sees_it_and_it_ends() -> None:
    source = FakeSource()
    c = await client(source)
    try:
        start = now_ms() + HOUR
        made = await c.post("/api/v1/silences", headers=bearer("alice"), json={
            "kind": "maintenance", "models": ["pay-*"], "starts_ms": start, "minutes": 120, "comment": "DB migration"})
        window = await made.json()
        assert made.status == 201, window
        assert (window["created_by"], window["state"], window["ends_ms"], window["id"][:3]) == (
            "alice", "scheduled", start + 2 * HOUR, "mw-")
        refused = await c.post("/api/v1/silences", headers=bearer("bob"), json={"models": ["*"], "minutes": 5})
        assert refused.status == 403 and "read role" in (await refused.json())["error"]
        listed = await (await c.get("/api/v1/silences", headers=bearer("bob"))).json()
        assert [s["id"] for s in listed["items"]] == [window["id"]] and listed["next_cursor"] is None
        assert (await c.delete(f"/api/v1/silences/{window['id']}", headers=bearer("bob"))).status == 403
        ended = await c.delete(f"/api/v1/silences/{window['id']}", headers=bearer("alice"))
        assert ended.status == 200 and (await ended.json())["state"] == "removed"
        again = await c.delete(f"/api/v1/silences/{window['id']}", headers=bearer("alice"))
        assert again.status == 404 and (await again.json())["field"] == "id"
        assert (await (await c.get("/api/v1/silences", headers=bearer("bob"))).json())["items"] == []
    finally:
        await c.close()


async def test_the_listing_filters_and_pages_soonest_end_first() -> None:
    source = FakeSource()
    now = now_ms()
    for k in range(7):
        await source.add_silence({"kind": ("silence", "maintenance", "pause")[k % 3], "models": [f"m{k}-*"],
                                  "versions": None, "classes": None, "starts_ms": now - HOUR if k % 2 else now + HOUR,
                                  "ends_ms": now + (10 - k) * HOUR, "comment": ""}, "carol")
    c = await client(source)
    try:
        async def ids(**params: object) -> list[str]:
            r = await c.get("/api/v1/silences", params=params, headers=bearer("bob"))
            assert r.status == 200, await r.text()
            return [s["models"][0] for s in (await r.json())["items"]]

        assert await ids() == [f"m{k}-*" for k in range(6, -1, -1)]
        assert await ids(kind="pause") == ["m5-*", "m2-*"]
        assert await ids(state="active") == ["m5-*", "m3-*", "m1-*"]
        assert await ids(model="m3-eu") == ["m3-*"]
        first = await (await c.get("/api/v1/silences", params={"limit": 4}, headers=bearer("bob"))).json()
        rest = await (await c.get("/api/v1/silences", params={"cursor": first["next_cursor"]},
                                  headers=bearer("bob"))).json()
        assert len(first["items"]) == 4 and len(rest["items"]) == 3 and rest["next_cursor"] is None
        for query, field in (("kind=mute", "kind"), ("state=over", "state"), ("model=", "model"),
                             ("limit=0", "limit"), ("cursor=abc", "cursor"), ("kinds=pause", "kinds")):
            r = await c.get(f"/api/v1/silences?{query}", headers=bearer("bob"))
            assert r.status == 400 and (await r.json())["field"] == field, query
    finally:
        await c.close()


async def test_bad_bodies_are_a_400_naming_the_field() -> None:
    c = await client(FakeSource())
    try:
        cases = [({"models": ["*"]}, "ends_ms", "either ends_ms"),
                 ({"models": ["*"], "minutes": 5, "ends_ms": now_ms() + HOUR}, "ends_ms", "not both"),
                 ({"models": ["*"], "ends_ms": now_ms() - 1}, "ends_ms", "over before"),
                 ({"models": ["*"], "minutes": 31 * 24 * 60}, "ends_ms", "30 days"),
                 ({"models": [], "minutes": 5}, "models", "at least 1"),
                 ({"models": [""], "minutes": 5}, "models", "empty glob"),
                 ({"models": ["*"], "minutes": 5, "classes": ["latncy"]}, "classes", "unknown class 'latncy'"),
                 ({"models": ["*"], "minutes": 5, "kind": "mute"}, "kind", "'silence', 'maintenance' or 'pause'"),
                 ({"models": ["*"], "minutes": 1e308 * 10}, "minutes", "finite"),
                 ({"models": ["*"], "minutes": 5, "by": "ceo"}, "by", "Extra inputs")]
        for body, field, needle in cases:
            r = await c.post("/api/v1/silences", json=body, headers=bearer("alice"))
            answer = await r.json()
            assert r.status == 400 and answer["field"] == field and needle in answer["error"], (body, answer)
    finally:
        await c.close()


async def test_the_pages_show_each_window_who_made_it_why_and_what_it_holds() -> None:
    source = FakeSource()
    held = source.open(anomaly("pay-eu"))
    free = source.open(anomaly("search"))
    now = now_ms()
    window = await source.add_silence({"kind": "maintenance", "models": ["pay-*"], "versions": None, "classes": None,
                                       "starts_ms": now - HOUR, "ends_ms": now + HOUR,
                                       "comment": "DB <migration>"}, "carol")
    later = await source.add_silence({"kind": "pause", "models": ["search"], "versions": ["v9"], "classes": None,
                                      "starts_ms": now + HOUR, "ends_ms": now + 2 * HOUR, "comment": ""}, "dave")
    c = await client(source)
    try:
        listing = await (await c.get("/silences", headers=bearer("bob"))).text()
        front = await (await c.get("/", headers=bearer("bob"))).text()
        held_page = await (await c.get(f"/incidents/{held.id}", headers=bearer("bob"))).text()
        free_page = await (await c.get(f"/incidents/{free.id}", headers=bearer("bob"))).text()
    finally:
        await c.close()
    row = listing.split(f'<tr class="silence" id="{window.id}"')[1].split("</tr>")[0]
    assert 'data-state="active"' in row and "ends in 59 min" in row
    assert '<td class="holds">pages and automatic remediation</td>' in row
    assert '<td class="created-by">carol</td>' in row and "DB &lt;migration&gt;" in row
    scheduled = listing.split(f'<tr class="silence" id="{later.id}"')[1].split("</tr>")[0]
    assert 'data-state="scheduled"' in scheduled and "automatic remediation</td>" in scheduled and "dave" in scheduled
    assert listing.index(window.id) < listing.index(later.id)  # active first
    assert "1 silence(s), maintenance window(s) or pause(s) active,\n1 scheduled" in front
    assert f"maintenance {window.id} (pay-*, by carol)" in front
    assert f'<tr class="held-by" data-id="{window.id}">' in held_page and "carol" in held_page
    assert 'id="held-by"' not in free_page  # the pause is scheduled, and for another version


def test_the_api_knows_the_kinds_the_response_plane_does() -> None:
    from modelmedic.http import silence_api
    from modelmedic.response import silences

    assert typing.get_args(silence_api.Kind) == typing.get_args(silences.Kind)

"""What every ``/api/v1`` route shares (issue 15 item 8): listings page alike, and every refusal is JSON
``{"error", "field"}``, the router's own (no such path, wrong method) included."""

from __future__ import annotations

import pytest

from fake_status import ONSET, FakeSource, anomaly, bearer, client
from modelmedic.http import ROUTES
from test_audit_api import record

LISTINGS = sorted(path for method, path, _, _ in ROUTES
                  if method == "GET" and path.startswith("/api/v1/") and "{" not in path and not path.endswith(".json"))


async def full_source() -> FakeSource:
    """Three items in each listing."""
    source = FakeSource()
    for k in range(3):
        source.open(anomaly(f"model-{k}", onset=ONSET + k * 60_000))
        source.tail.add(0, k, record(ONSET + k, "opened", incident=f"i-{k}"))
        await source.add_silence({"kind": "silence", "models": [f"model-{k}"], "versions": None, "classes": None,
                                  "starts_ms": ONSET, "ends_ms": 4_000_000_000_000 + k, "comment": ""}, "alice")
    return source


def test_the_listings_are_the_three_known() -> None:
    assert LISTINGS == ["/api/v1/audit", "/api/v1/incidents", "/api/v1/silences"]


@pytest.mark.parametrize("path", LISTINGS)
async def test_every_listing_pages_the_same_way(path: str) -> None:
    c = await client(await full_source())
    try:
        async def get(**params: object) -> tuple[int, dict]:
            r = await c.get(path, params=params, headers=bearer("bob"))
            return r.status, await r.json()

        status, everything = await get()
        assert status == 200 and len(everything["items"]) == 3 and everything["next_cursor"] is None
        seen, cursor = [], None
        for _ in range(3):
            status, page = await get(limit=1, **({"cursor": cursor} if cursor else {}))
            seen += page["items"]
            cursor = page["next_cursor"]
        assert seen == everything["items"] and cursor is None
        for params, field in (({"limit": 0}, "limit"), ({"limit": 501}, "limit"), ({"cursor": "xyz"}, "cursor"),
                              ({"nope": 1}, "nope")):
            status, answer = await get(**params)
            assert status == 400 and answer["field"] == field and answer["error"].startswith(f"{field}: "), answer
    finally:
        await c.close()


async def test_a_cursor_works_only_on_the_listing_that_gave_it() -> None:
    """The incidents' and the silences' sort keys have the same shape: a swapped cursor would be misread."""
    c = await client(await full_source())
    try:
        cursors = {path: (await (await c.get(path, params={"limit": 1}, headers=bearer("bob"))).json())["next_cursor"]
                   for path in LISTINGS}
        for given, cursor in cursors.items():
            for path in LISTINGS:
                r = await c.get(path, params={"cursor": cursor}, headers=bearer("bob"))
                assert (r.status == 200) == (path == given), (given, path)
                if path != given:
                    assert (await r.json())["field"] == "cursor"
    finally:
        await c.close()


async def test_the_routers_refusals_are_json_too() -> None:
    """Before: aiohttp's plain-text '404: Not Found' and '405: Method Not Allowed'."""
    c = await client(FakeSource())
    try:
        missing = await c.get("/api/v1/incidnets", headers=bearer("bob"))
        assert missing.status == 404 and await missing.json() == {
            "error": "GET /api/v1/incidnets: not found; the routes are listed in /api/v1/openapi.json", "field": None}
        wrong = await c.put("/api/v1/silences", headers=bearer("alice"))
        assert wrong.status == 405 and (await wrong.json())["field"] is None and "GET" in wrong.headers["Allow"]
        page = await c.get("/no-such-page", headers=bearer("bob"))  # the UI's are not the API's business
        assert page.status == 404 and page.content_type == "text/plain"
    finally:
        await c.close()

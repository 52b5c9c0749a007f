"""Who may call what on the service's HTTP endpoint, and who the audit says acted (issue 15 item 3).

The real aiohttp application over a real IncidentBook (tests/unit/fake_status.py), through aiohttp's
test client on a real socket."""

from __future__ import annotations

import base64
import hmac
import json

import pytest
from pydantic import SecretStr

from fake_status import TOKENS, FakeSource, anomaly, bearer, client, settings
from modelmedic.config import ConfigError, HttpSettings, OperatorSettings, load_settings, token_sha256
from modelmedic.http import ROUTES

OPEN = {"/metrics", "/healthz", "/readyz"}


def concrete(path: str, incident_id: str) -> str:
    return path.replace("{id}", incident_id).replace("{model}", "fraud-scorer")


async def test_every_route_but_the_probes_and_metrics_needs_a_known_token() -> None:
    source = FakeSource()
    incident = source.open(anomaly("fraud-scorer"))
    c = await client(source)
    try:
        for method, path, _, role in ROUTES:
            url = concrete(path, incident.id)
            for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic Zm9vOmJhcg=="}):
                r = await c.request(method, url, headers=headers)
                if path in OPEN:
                    assert r.status == 200, (method, path)
                    assert role is None
                else:
                    assert r.status == 401, (method, path, headers, r.status)
                    assert 'Bearer realm="modelmedic"' in r.headers.getall("WWW-Authenticate")
                    body = await r.json()
                    assert "missing or unknown token" in body["error"]
        assert source.book.by_id[incident.id].state == "open"  # nothing was done by anyone unknown
    finally:
        await c.close()


async def test_the_read_role_reads_and_cannot_act() -> None:
    source = FakeSource()
    incident = source.open(anomaly("fraud-scorer"))
    c = await client(source)
    try:
        for method, path, _, role in ROUTES:
            r = await c.request(method, concrete(path, incident.id), headers=bearer("bob"),
                                json={"playbook": "scale-out"} if path.endswith("/run") else None)
            if role == "operate":
                assert r.status == 403, path
                expected = f"bob has the read role; {method} {concrete(path, incident.id)} needs operate"
                assert (await r.json())["error"] == expected
            else:
                assert r.status == 200, path
        assert source.book.by_id[incident.id].state == "open" and not source.triggered
    finally:
        await c.close()


async def test_the_audit_actor_comes_from_the_credential_not_a_header() -> None:
    """Before: X-Operator named the actor, so `acknowledged_by: ceo@evil` was accepted."""
    source = FakeSource()
    incident = source.open(anomaly("fraud-scorer"))
    c = await client(source)
    try:
        r = await c.post(f"/api/v1/incidents/{incident.id}/ack", headers={**bearer("alice"), "X-Operator": "ceo@evil"})
        assert r.status == 200, await r.text()
        assert (await r.json())["acknowledged_by"] == "alice"
        assert source.book.by_id[incident.id].acknowledged_by == "alice"
        r = await c.post(f"/api/v1/incidents/{incident.id}/run", json={"playbook": "scale-out", "params": {"step": 2}},
                         headers={**bearer("alice"), "X-Operator": "ceo@evil"})
        assert r.status == 200 and source.triggered == [(incident.id, "scale-out", {"step": 2}, "alice")]
        assert (await r.json())["outcome"] == {"status": "done", "message": "scaled 2 -> 4", "details": {"replicas": 4}}
    finally:
        await c.close()


def basic(name: str, token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{token}".encode()).decode()}


async def test_a_browser_reads_with_basic_credentials_but_cannot_act_with_them() -> None:
    """Browsers resend remembered Basic credentials on any request, a cross-site form's included: actions need Bearer."""
    source = FakeSource()
    incident = source.open(anomaly("fraud-scorer"))
    c = await client(source)
    try:
        r = await c.get("/", headers=basic("alice", TOKENS["alice"]))
        assert r.status == 200 and "text/html" in r.headers["Content-Type"]
        unchallenged = await c.get("/")
        assert unchallenged.status == 401
        assert unchallenged.headers.getall("WWW-Authenticate") == ['Basic realm="modelmedic"', 'Bearer realm="modelmedic"']
        assert (await c.get("/", headers=basic("bob", TOKENS["alice"]))).status == 401  # a name not the token's
        assert (await c.get("/", headers=basic("alice", "guess"))).status == 401
        assert (await c.get("/", headers={"Authorization": "Basic !!!"})).status == 401
        r = await c.post(f"/api/v1/incidents/{incident.id}/resolve", headers=basic("alice", TOKENS["alice"]))
        assert r.status == 401 and r.headers.getall("WWW-Authenticate") == ['Bearer realm="modelmedic"']
        assert source.book.by_id[incident.id].state == "open"
    finally:
        await c.close()


async def test_every_configured_hash_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """hmac.compare_digest against every operator, whichever matches (first, last or none): no early exit."""
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a, b) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    c = await client(FakeSource())
    try:
        for headers in (bearer("alice"), bearer("bob"), {"Authorization": "Bearer nobody"}):
            calls.clear()
            await c.get("/api/v1/incidents", headers=headers)
            assert len(calls) == 2, headers
    finally:
        await c.close()


async def test_the_old_api_token_is_one_operate_operator_named_operator() -> None:
    source = FakeSource()
    incident = source.open(anomaly("fraud-scorer"))
    c = await client(source, HttpSettings(port=0, api_token=SecretStr("s3cret")))
    try:
        r = await c.post(f"/api/v1/incidents/{incident.id}/ack", headers={"Authorization": "Bearer s3cret"})
        assert r.status == 200 and (await r.json())["acknowledged_by"] == "operator"
    finally:
        await c.close()


async def test_no_operator_configured_answers_401_saying_how_to_add_one() -> None:
    c = await client(FakeSource(), HttpSettings(port=0))
    try:
        r = await c.get("/api/v1/incidents", headers={"Authorization": "Bearer anything"})
        assert r.status == 401 and "http.operators" in (await r.json())["error"]
        assert (await c.get("/healthz")).status == 200
    finally:
        await c.close()


@pytest.mark.parametrize(("path", "body", "field", "needle"), [
    ("silence", {"minutes": 1e308}, "minutes", "less than or equal to 10080"),  # was a 500
    ("silence", {"minutes": -5}, "minutes", "greater than 0"),
    ("silence", {"minutes": "soon"}, "minutes", "valid number"),
    ("silence", {"minuts": 5}, "minuts", "Extra inputs"),
    ("silence", [5], "body", "JSON object"),
    ("ack", {"by": "ceo@evil"}, "by", "Extra inputs"),
    ("run", {}, "playbook", "Field required"),
    ("run", {"playbook": "scale-out", "params": [1]}, "params", "valid dictionary"),
])
async def test_bad_input_to_an_action_is_a_400_naming_the_field(path: str, body: object, field: str, needle: str) -> None:
    source = FakeSource()
    incident = source.open(anomaly("fraud-scorer"))
    c = await client(source)
    try:
        r = await c.post(f"/api/v1/incidents/{incident.id}/{path}", json=body, headers=bearer("alice"))
        answer = await r.json()
        assert r.status == 400, answer
        assert answer["field"] == field and needle in answer["error"] and answer["error"].startswith(f"{field}: ")
        assert source.book.by_id[incident.id].state == "open" and not source.triggered
    finally:
        await c.close()


async def test_a_body_that_is_not_json_is_a_400() -> None:
    source = FakeSource()
    incident = source.open(anomaly("fraud-scorer"))
    c = await client(source)
    try:
        r = await c.post(f"/api/v1/incidents/{incident.id}/silence", data=b"{minutes: 5",
                         headers={**bearer("alice"), "Content-Type": "application/json"})
        assert r.status == 400 and (await r.json())["field"] == "body"
    finally:
        await c.close()


async def test_acting_against_the_lifecycle_is_a_409_saying_why() -> None:
    source = FakeSource()
    incident = source.open(anomaly("fraud-scorer"))
    c = await client(source)
    try:
        assert (await c.post(f"/api/v1/incidents/{incident.id}/resolve", headers=bearer("alice"))).status == 200
        r = await c.post(f"/api/v1/incidents/{incident.id}/ack", headers=bearer("alice"))
        assert r.status == 409 and "is resolved: it cannot become acknowledged" in (await r.json())["error"]
    finally:
        await c.close()


def test_operators_are_configured_by_hash_and_checked_at_load(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = {"name": "alice", "role": "operate", "token_sha256": token_sha256("t" * 43)}
    monkeypatch.setenv("MODELMEDIC_HTTP__OPERATORS", json.dumps([entry]))
    assert load_settings().http.operators == [OperatorSettings(**entry)]
    monkeypatch.delenv("MODELMEDIC_HTTP__OPERATORS")
    for http, needle in (
        ({"operators": [entry, {**entry, "token_sha256": "0" * 64}]}, "alice appear more than once"),
        ({"operators": [{**entry, "name": "operator"}], "api_token": "x"}, "'operator' is taken"),
        ({"operators": [entry, {**entry, "name": "bob"}]}, "share one token_sha256"),
        ({"operators": [{**entry, "token_sha256": "t" * 43}]}, "token_sha256"),
        ({"operators": [{**entry, "role": "admin"}]}, "role"),
    ):
        with pytest.raises(ConfigError, match=needle):
            load_settings(http=http)

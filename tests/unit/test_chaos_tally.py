"""The chaos script's pure parts (load/chaos.py): reading pages back, tallying them, and its hostile records."""

from __future__ import annotations

import json
import pickle
import zlib
from pathlib import Path

import pytest

from load.chaos import (
    Act,
    Expected,
    Page,
    deep_json,
    incident_of_event,
    page_of,
    pickle_bomb,
    poison_records,
    tally_actions,
    tally_pages,
)
from modelmedic.alerting import Alert, pagerduty_event, slack_message, webhook_payload

START_MS = 1_767_225_600_000


def _alert(status: str, level: int = 0) -> Alert:
    return Alert(incident_id="abc123", dedup_key="modelmedic-abc123", status=status, severity="error",
                 summary="p95 latency of model-003 is 6x its baseline", model="model-003", version="v1.2.0",
                 role="production", kind="latency", anomaly_class="latency", escalation_level=level,
                 started_at_ms=START_MS, ended_at_ms=START_MS + 60_000 if status == "resolved" else None)


@pytest.mark.parametrize("status, level", [("firing", 0), ("firing", 2), ("resolved", 0)])
def test_every_sink_payload_reads_back_as_the_same_page(status, level):
    alert = _alert(status, level)
    bodies = {"webhook": webhook_payload(alert), "pagerduty": pagerduty_event(alert, "k" * 32), "slack": slack_message(alert)}
    pages = {kind: page_of(kind, json.loads(json.dumps(body)), 1.0) for kind, body in bodies.items()}
    want_level = level if status == "firing" else 0
    for kind, page in pages.items():
        assert (page.incident_id, page.status, page.level) == ("abc123", status, want_level), kind
    # A PagerDuty resolve carries only the dedup key: its model comes from the incident's other pages.
    assert pages["pagerduty"].model == (None if status == "resolved" else "model-003")
    assert pages["webhook"].model == pages["slack"].model == "model-003"


def test_page_of_ignores_what_is_not_a_modelmedic_page():
    assert page_of("webhook", {"hello": 1}, 0.0) is None
    assert page_of("slack", ["not", "an", "object"], 0.0) is None


def _page(sink: str, incident: str, status: str, at: float, level: int = 0, model: str | None = "m1") -> Page:
    return Page(sink, incident, status, level, model, at)


def test_pages_delivered_missing_duplicated_and_orphan_resolves_per_sink():
    expected = [Expected("m1", "overload"), Expected("m2", "bad_version")]
    pages = [
        _page("webhook", "i1", "firing", 1), _page("webhook", "i1", "firing", 2),  # re-sent after a crash
        _page("webhook", "i1", "firing", 3, level=1), _page("webhook", "i1", "resolved", 4),
        _page("webhook", "i2", "firing", 5, model="m2"),  # m2 never resolved on the webhook
        _page("pagerduty", "i1", "firing", 1), _page("pagerduty", "i1", "resolved", 4, model=None),
        _page("pagerduty", "i2", "resolved", 6, model=None),  # a resolve of a page it never got
        _page("slack", "storm-x", "firing", 7, model="*"),
    ]
    tally = tally_pages(expected, pages)
    web, pd, slack = tally["webhook"], tally["pagerduty"], tally["slack"]
    assert (web.expected, web.delivered, web.missing, web.duplicated, web.escalations) == (4, 3, 1, 1, 1)
    assert (pd.delivered, pd.missing, pd.duplicated, pd.orphan_resolves) == (2, 2, 0, 1)
    assert (slack.delivered, slack.missing, slack.unexpected) == (0, 4, 1)


def test_a_resolve_before_its_firing_page_is_an_orphan():
    pages = [_page("webhook", "i1", "resolved", 1), _page("webhook", "i1", "firing", 2)]
    tally = tally_pages([Expected("m1", "x")], pages)["webhook"]
    assert (tally.orphan_resolves, tally.delivered) == (1, 1)


def test_actions_done_duplicated_and_escalated_instead_only_where_allowed():
    expected = [Expected("m1", "overload"), Expected("m2", "api down", may_escalate_instead=True),
                Expected("m3", "latency")]
    acts = [Act("m1", "i1", "ModelmedicScaledOut"), Act("m1", "i1", "ModelmedicScaledOut", count=2)]
    audit = [{"action": "playbook-end", "incident_id": "i1", "details": {"status": "done", "idempotency_key": None,
                                                                       "playbook": "scale-out"}}] * 2
    tally = tally_actions(expected, acts, escalated_models={"m2", "m3"}, audit=audit)
    assert (tally.expected, tally.done, tally.escalated_instead, tally.missing) == (3, 1, 1, 1)
    assert (tally.duplicated, tally.duplicated_in_audit) == (2, 1)


def test_incident_of_event_reads_the_id_modelmedic_appends():
    assert incident_of_event("scaled 1 -> 3 through the Deployment: latency anomaly (latency) (incident 7f3a)") == "7f3a"
    assert incident_of_event("Scaled up replica set") is None


def test_the_deep_record_is_64_kib_and_30000_levels_deep():
    raw = deep_json(30_000, 64 * 1024, model="m", ts=1)
    assert len(raw) == 64 * 1024
    assert raw.count(b"[") == 30_000
    with pytest.raises(RecursionError):
        json.loads(raw)
    with pytest.raises(ValueError, match="do not fit"):
        deep_json(40_000, 64 * 1024)


def test_the_poison_covers_each_record_of_the_issue():
    bad = poison_records("model-000", START_MS)
    assert json.loads(bad["ts 0"])["ts"] == 0
    assert json.loads(bad["negative latency"])["latency_ms"] < 0
    assert bad["duplicate fields"].count(b'"model"') == 2
    with pytest.raises(UnicodeDecodeError):
        bad["not JSON"].decode()


def test_the_pickle_bomb_really_runs_its_command_when_loaded(tmp_path: Path):
    """So a "no" in the chaos report means the service refused it, not that the bomb was a dud."""
    marker = tmp_path / "ran"
    pickle.loads(zlib.decompress(pickle_bomb(marker)))  # noqa: S301 (the point of the test)
    assert marker.exists()

"""The incident book: one incident per problem, replays ignored, recoveries resolve, state survives a restart."""

from __future__ import annotations

import copy

import msgspec
import pytest
from pydantic import ValidationError

from modelmedic.alerting import Alert
from modelmedic.events import Anomaly, stable_id
from modelmedic.response.incidents import (
    HEADLINE_MAX, TRANSITIONS, Attempt, Escalation, Incident, IncidentBook, InvalidTransition, Notice, State,
    credit_remediation,
)

SIZE = 1000
W = 1_700_000_000  # a window index (epoch seconds for 1 s windows)


def anomaly(kind: str = "latency", state: str = "firing", *, onset: int = W, at: int | None = None,
            model: str = "fraud", version: str = "1.0", role: str = "production") -> Anomaly:
    """A record as the judge makes it: the id hashes series, kind and onset window."""
    anomaly_class = {"latency": "latency", "errors": "errors", "throughput_drop": "throughput",
                     "throughput_surge": "throughput", "quality": "prediction"}[kind]
    series_version = "*" if kind.startswith("throughput") else version
    at = onset + 1 if at is None else at
    return Anomaly(
        id=stable_id(model, series_version, role, kind, onset), series=f"{model}/{series_version}/{role}",
        model=model, version=version, role=role, kind=kind, anomaly_class=anomaly_class,
        window_start=at * SIZE, window_end=(at + 1) * SIZE, onset=onset * SIZE,
        observed=250.0 if state == "firing" else 21.0, baseline=20.0, score=0.99999 if state == "firing" else 0.1,
        state=state, summary=f"{model} {version} ({role}): {kind} {'is off' if state == 'firing' else 'back to normal'}",
        closed_at_ms=(at + 3) * SIZE,
    )


def snapshot(book: IncidentBook) -> bytes:
    """Everything the book knows, comparable byte for byte."""
    return msgspec.json.encode(
        {"by_id": book.by_id, "by_anomaly": sorted(book._by_anomaly.items()), "open": sorted(map(list, book._open.items()))}
    )


# -- opening, replays, joining ------------------------------------------------------------


def test_firing_opens_an_incident() -> None:
    book = IncidentBook()
    a = anomaly()
    assert book.is_new(a)
    incident = book.apply(a)
    assert incident is not None
    assert incident.id == a.id
    assert (incident.series, incident.model, incident.version, incident.role) == ("fraud/1.0/production", "fraud", "1.0", "production")
    assert (incident.anomaly_class, incident.kinds, incident.firing, incident.anomaly_ids) == ("latency", ["latency"], ["latency"], [a.id])
    assert (incident.state, incident.owed, incident.alerted) == ("open", {}, []), "pages are owed by the plane, per sink"
    assert incident.opened_at_ms == a.onset
    assert incident.summary == a.summary
    assert incident.evidence == {"kind": "latency", "observed": 250.0, "baseline": 20.0, "score": 0.99999,
                                 "window_start_ms": a.window_start, "window_end_ms": a.window_end, "anomaly_id": a.id}
    assert book.open_incidents() == [incident] and book.by_id == {a.id: incident}
    assert not book.is_new(a)


def test_a_replay_of_the_same_anomaly_changes_nothing() -> None:
    book = IncidentBook()
    a = anomaly()
    book.apply(a)
    before = snapshot(book)
    assert book.apply(a) is None
    assert book.apply(copy.copy(a)) is None
    assert snapshot(book) == before


def test_a_second_kind_on_the_same_series_and_class_joins_the_open_incident() -> None:
    book = IncidentBook()
    drop = anomaly("throughput_drop", onset=W)
    surge = anomaly("throughput_surge", onset=W + 7)
    incident = book.apply(drop)
    assert not book.is_new(surge)
    joined = book.apply(surge)
    assert joined is incident and len(book.by_id) == 1
    assert incident.kinds == ["throughput_drop", "throughput_surge"]
    assert incident.firing == ["throughput_drop", "throughput_surge"]
    assert incident.anomaly_ids == [drop.id, surge.id]
    assert [e["anomaly_id"] for e in incident.evidence["also"]] == [surge.id]
    assert incident.opened_at_ms == drop.onset and incident.id == drop.id
    assert book.apply(surge) is None  # and its replay is one too


def test_a_problem_of_another_class_on_the_same_model_opens_its_own_incident() -> None:
    """Issue 13: an error burst on a model whose latency incident was open was appended to it and
    paged nobody. Another class is another problem: its own incident (its own rule and page),
    naming the model's open one; the same class on another series of the model still joins."""
    book = IncidentBook()
    latency = book.apply(anomaly("latency"))
    errors = anomaly("errors")
    assert book.is_new(errors)
    opened = book.apply(errors)
    assert opened is not latency and opened.id == errors.id and len(book.open_incidents()) == 2
    assert (opened.anomaly_class, opened.kinds, opened.state) == ("errors", ["errors"], "open")
    assert opened.evidence["related"] == [f"{latency.id} (latency): {latency.summary}"]
    assert latency.kinds == ["latency"] and "also" not in latency.evidence, "nothing was appended to the latency incident"
    other_version = anomaly("latency", version="2.0")
    assert not book.is_new(other_version) and book.apply(other_version) is latency
    assert book.apply(anomaly("errors", state="recovered")).state == "resolved"
    assert latency.active


@pytest.mark.parametrize(
    "other", [anomaly("latency", role="canary"), anomaly("latency", model="churn")], ids=["other role", "other model"],
)
def test_another_model_or_role_opens_another_incident(other: Anomaly) -> None:
    book = IncidentBook()
    first = book.apply(anomaly("latency"))
    second = book.apply(other)
    assert second is not None and second is not first and second.state == "open"
    assert len(book.open_incidents()) == 2


@pytest.mark.parametrize(
    ("first", "second"),
    [(anomaly("latency"), anomaly("latency", version="2.0")),
     (anomaly("errors"), anomaly("errors", version="2.0")),
     (anomaly("latency"), anomaly("errors"))],
    ids=["same kind, two versions", "errors of two versions", "two kinds of one version"],
)
def test_an_incident_resolves_only_when_every_series_in_it_recovered(first: Anomaly, second: Anomaly) -> None:
    """However anomalies are grouped into incidents, none is resolved while one of its series still fires."""
    book = IncidentBook()
    book.apply(first)
    book.apply(second)
    book.apply(msgspec.structs.replace(first, state="recovered", window_start=first.window_start + 9 * SIZE,
                                       window_end=first.window_end + 9 * SIZE))
    still = [i for i in book.open_incidents() if second.id in i.anomaly_ids]
    assert still, "an incident was resolved while one of its series is still anomalous"
    assert all(i.active for i in still)
    done = book.apply(msgspec.structs.replace(second, state="recovered", window_start=second.window_start + 12 * SIZE,
                                              window_end=second.window_end + 12 * SIZE))
    assert done is not None and done.state == "resolved"
    assert book.open_incidents() == []


# -- recovery -----------------------------------------------------------------------------


def test_recovered_of_every_kind_resolves_owing_a_resolved_alert() -> None:
    book = IncidentBook()
    drop, surge = anomaly("throughput_drop", onset=W), anomaly("throughput_surge", onset=W + 7)
    incident = book.apply(drop)
    book.apply(surge)
    half = book.apply(anomaly("throughput_drop", "recovered", onset=W, at=W + 12))
    assert half is incident
    assert (incident.state, incident.firing) == ("open", ["throughput_surge"])
    assert book.open_incidents() == [incident]
    done = book.apply(anomaly("throughput_surge", "recovered", onset=W + 7, at=W + 20))
    assert done is incident
    assert (incident.state, incident.firing) == ("resolved", [])
    assert incident.resolved_at_ms == (W + 21) * SIZE  # the end of the window that recovered
    assert incident.resolution == "resolved: fraud 1.0 (production): throughput_surge back to normal"
    assert book.open_incidents() == []


def test_after_resolution_the_same_series_opens_a_new_incident() -> None:
    book = IncidentBook()
    first = book.apply(anomaly(onset=W))
    book.apply(anomaly(state="recovered", onset=W, at=W + 5))
    again = anomaly(onset=W + 30)
    assert book.is_new(again)
    second = book.apply(again)
    assert second is not first and second.id == again.id and second.state == "open"
    assert first.state == "resolved" and book.open_incidents() == [second]


@pytest.mark.parametrize("case", ["unknown id", "replayed recovery", "kind not firing"])
def test_recovered_that_matches_nothing_is_ignored(case: str) -> None:
    book = IncidentBook()
    book.apply(anomaly("throughput_drop", onset=W))
    if case == "unknown id":
        record = anomaly("latency", "recovered", onset=W + 99)
    elif case == "replayed recovery":
        book.apply(anomaly("throughput_drop", "recovered", onset=W, at=W + 5))
        record = anomaly("throughput_drop", "recovered", onset=W, at=W + 5)
    else:  # a surge recovery carrying the drop's id: the kind is not firing
        record = msgspec.structs.replace(anomaly("throughput_surge", "recovered", onset=W), id=anomaly("throughput_drop").id)
    before = snapshot(book)
    assert book.apply(record) is None
    assert snapshot(book) == before


def test_close_by_hand_resolves_and_later_records_are_handled() -> None:
    book = IncidentBook()
    incident = book.apply(anomaly(onset=W))
    book.close(incident, "resolved by alice", now_ms=(W + 50) * SIZE)
    assert (incident.state, incident.firing, incident.resolution) == ("resolved", [], "resolved by alice")
    assert incident.resolved_at_ms == (W + 50) * SIZE and book.open_incidents() == []
    before = snapshot(book)
    assert book.apply(anomaly(state="recovered", onset=W, at=W + 60)) is None  # the detector catches up
    book.close(incident, "again", now_ms=(W + 70) * SIZE)  # closing twice is a no-op
    assert snapshot(book) == before
    assert book.apply(anomaly(onset=W + 80)).id != incident.id


# -- persistence --------------------------------------------------------------------------


def _busy_book() -> IncidentBook:
    book = IncidentBook()
    book.apply(anomaly("throughput_drop", onset=W)).owe("firing", 0, ["pagerduty"], W * SIZE)
    book.apply(anomaly("throughput_surge", onset=W + 7))  # joined
    book.apply(anomaly("latency", onset=W, model="ads", version="2.0"))
    book.apply(anomaly("latency", "recovered", onset=W, at=W + 9, model="ads", version="2.0"))  # resolved
    book.apply(anomaly("errors", onset=W + 3, model="churn"))  # open
    assert len(book.by_id) == 3
    return book


def test_load_round_trips_through_json_and_restores_the_indexes() -> None:
    book = _busy_book()
    stored = {i.id: msgspec.json.encode(i) for i in book.by_id.values()}  # the compacted incidents topic
    restored = IncidentBook()
    for raw in stored.values():
        restored.load(msgspec.json.decode(raw, type=Incident))
    assert snapshot(restored) == snapshot(book)
    assert {i.id for i in restored.open_incidents()} == {i.id for i in book.open_incidents()}
    assert sorted(i.state for i in restored.by_id.values()) == ["open", "open", "resolved"]
    assert [n.status for i in restored.by_id.values() for n in i.owed.get("pagerduty", [])] == ["firing"]


def test_a_restored_book_behaves_like_the_original() -> None:
    book = _busy_book()
    restored = IncidentBook()
    for incident in book.by_id.values():
        restored.load(msgspec.json.decode(msgspec.json.encode(incident), type=Incident))
    follow_up = [
        anomaly("throughput_drop", onset=W),  # a replay after the crash
        anomaly("latency", onset=W, model="ads", version="2.0"),  # a replay of a resolved incident's anomaly
        anomaly("throughput_drop", "recovered", onset=W, at=W + 30),
        anomaly("errors", onset=W + 40, model="churn", version="1.0"),  # a new episode on the open churn series: joins it
        anomaly("throughput_surge", "recovered", onset=W + 7, at=W + 31),
        anomaly("latency", onset=W + 50, model="ads", version="2.0"),  # new incident on a resolved series
    ]
    for record in follow_up:
        a, b = book.apply(record), restored.apply(record)
        assert (a is None) == (b is None)
        assert a is None or msgspec.json.encode(a) == msgspec.json.encode(b)
    assert snapshot(restored) == snapshot(book)
    assert book.apply(follow_up[0]) is None and book.apply(follow_up[1]) is None
    assert book.by_id[anomaly("throughput_drop").id].state == "resolved"


def test_an_incident_stored_before_firing_anomalies_existed_still_resolves() -> None:
    """Records in the compacted topic from before the field: tracked by kind, as then."""
    old = IncidentBook()
    incident = old.apply(anomaly("throughput_drop", onset=W))
    stored = msgspec.json.decode(msgspec.json.encode(incident))
    del stored["firing_anomalies"]
    book = IncidentBook()
    book.load(msgspec.json.decode(msgspec.json.encode(stored), type=Incident))
    joined = book.apply(anomaly("throughput_surge", onset=W + 4))
    assert joined is not None and joined.firing == ["throughput_drop", "throughput_surge"]
    assert book.apply(anomaly("throughput_drop", "recovered", onset=W, at=W + 9)).state != "resolved"
    done = book.apply(anomaly("throughput_surge", "recovered", onset=W + 4, at=W + 10))
    assert done is not None and done.state == "resolved"


# -- alerts -------------------------------------------------------------------------------


def test_alert_for_firing_and_resolved_with_one_dedup_key() -> None:
    book = IncidentBook()
    incident = book.apply(anomaly("latency", onset=W))
    firing = incident.alert("firing")
    assert isinstance(firing, Alert)
    assert (firing.status, firing.severity, firing.incident_id) == ("firing", "critical", incident.id)
    assert firing.dedup_key == f"modelmedic-{incident.id}"
    assert (firing.model, firing.version, firing.role, firing.kind, firing.anomaly_class) == ("fraud", "1.0", "production", "latency", "latency")
    assert firing.started_at_ms == W * SIZE and firing.ended_at_ms is None
    assert firing.summary == incident.summary and firing.evidence["anomaly_id"] == incident.id
    book.apply(anomaly("latency", "recovered", onset=W, at=W + 8))
    resolved = incident.alert("resolved")
    assert (resolved.status, resolved.ended_at_ms) == ("resolved", (W + 9) * SIZE)
    assert resolved.dedup_key == firing.dedup_key
    assert resolved.idempotency_key != firing.idempotency_key  # two messages, one page
    assert resolved.summary.startswith("resolved: ")
    assert Alert.model_validate_json(resolved.model_dump_json()) == resolved


def test_alert_of_a_model_level_incident() -> None:
    book = IncidentBook()
    incident = book.apply(msgspec.structs.replace(anomaly("throughput_drop"), version=""))
    book.apply(anomaly("throughput_surge", onset=W + 4))
    alert = incident.alert("firing")
    assert alert.version == "*"  # no version served most of the traffic
    assert alert.kind == "throughput_drop" and alert.anomaly_class == "throughput" and alert.severity == "critical"
    assert alert.evidence["also"][0]["kind"] == "throughput_surge"


@pytest.mark.parametrize(("kind", "severity"), [("latency", "critical"), ("errors", "critical"), ("quality", "error")])
def test_alert_severity_follows_the_class(kind: str, severity: str) -> None:
    assert IncidentBook().apply(anomaly(kind)).alert("firing").severity == severity


def test_alert_severity_and_note_can_be_raised() -> None:
    incident = IncidentBook().apply(anomaly("quality"))
    alert = incident.alert("firing", severity="critical", note="rollback failed")
    assert alert.severity == "critical" and alert.evidence["note"] == "rollback failed"
    assert "note" not in incident.evidence


def test_a_resolved_alert_for_an_open_incident_is_refused() -> None:
    incident = IncidentBook().apply(anomaly())
    with pytest.raises(ValidationError, match="a resolved alert needs ended_at_ms"):
        incident.alert("resolved")


# -- the lifecycle: every transition a method, the others refused --------------------------


def _attempt(step: int = 0) -> Attempt:
    return Attempt(playbook="scale-out", key=f"k{step}", at=W * SIZE, step=step)


def test_the_remediation_path_open_remediating_verifying_resolved() -> None:
    incident = IncidentBook().apply(anomaly())
    first = _attempt(0)
    incident.start_attempt(first)
    assert (incident.state, incident.next_step, incident.attempts) == ("remediating", 1, [first])
    first.finish("failed", "forbidden")
    incident.start_attempt(_attempt(1))  # the next playbook after one that did not act
    incident.verify(deadline_ms=123)
    assert (incident.state, incident.verify_deadline_ms, incident.next_step) == ("verifying", 123, 2)
    incident.verification_ran_out()
    assert incident.verify_deadline_ms is None and incident.state == "verifying"
    incident.escalate("no playbook restored the series", 1_000)
    incident.escalate("not acknowledged after 60s", 2_000)
    assert (incident.state, incident.escalation_level) == ("escalated", 2)
    assert incident.escalations == [Escalation(1, 1_000, "no playbook restored the series"),
                                    Escalation(2, 2_000, "not acknowledged after 60s")]
    incident.acknowledge("alice", 3_000)
    assert (incident.state, incident.acknowledged_by, incident.acknowledged_at_ms) == ("acknowledged", "alice", 3_000)
    incident.resolve("resolved by alice", at_ms=0)
    assert incident.state == "resolved" and incident.resolved_at_ms == incident.opened_at_ms


@pytest.mark.parametrize(("state", "move"), [
    ("resolved", lambda i: i.acknowledge("bob", 0)),
    ("resolved", lambda i: i.resolve("again", 0)),
    ("resolved", lambda i: i.escalate("late", 0)),
    ("acknowledged", lambda i: i.start_attempt(_attempt())),
    ("acknowledged", lambda i: i.escalate("timer", 0)),
    ("acknowledged", lambda i: i.acknowledge("bob", 0)),
    ("escalated", lambda i: i.start_attempt(_attempt())),
    ("open", lambda i: i.verify(1)),
    ("open", lambda i: i.verification_ran_out()),
    ("verifying", lambda i: i.verify(1)),
])
def test_a_transition_the_lifecycle_does_not_allow_raises(state: str, move) -> None:
    incident = IncidentBook().apply(anomaly())
    incident.state = state
    before = msgspec.json.encode(incident)
    with pytest.raises(InvalidTransition, match=f"incident {incident.id} is {state}"):
        move(incident)
    assert msgspec.json.encode(incident) == before, "a refused transition changes nothing"


def test_every_state_has_its_transitions_listed() -> None:
    assert set(TRANSITIONS) == set(State.__args__)
    assert all(targets <= set(State.__args__) for targets in TRANSITIONS.values())


def test_attempts_stored_as_plain_dicts_read_back_typed() -> None:
    """Records written before Attempt existed: the same keys, so they decode as Attempts."""
    incident = IncidentBook().apply(anomaly())
    stored = msgspec.json.decode(msgspec.json.encode(incident))
    stored["attempts"] = [
        {"playbook": "rollback", "params": {}, "step": 0, "status": "failed", "key": "k0", "at": 5, "message": "no target"},
        {"playbook": "scale-out", "params": {"step": 2}, "step": -1, "status": "running", "by": "alice", "key": "k1",
         "at": 6, "message": ""},
    ]
    stored["pending"] = "firing"
    restored = msgspec.json.decode(msgspec.json.encode(stored), type=Incident)
    assert restored.attempts == [Attempt("rollback", "k0", 5, 0, {}, "failed", "no target"),
                                 Attempt("scale-out", "k1", 6, -1, {"step": 2}, "running", "", by="alice")]
    assert restored.attempts[1].running and restored.pending == "firing"
    assert restored.tried() == "rollback: failed (no target); scale-out: running"


# -- pages owed, per sink -----------------------------------------------------------------


def test_a_resolve_is_owed_after_its_firing_and_only_to_sinks_that_heard_or_owe_it() -> None:
    incident = IncidentBook().apply(anomaly())
    incident.owe("firing", 0, ["pagerduty", "slack"], 1)
    incident.delivered("slack", incident.next_notice("slack"))
    assert incident.heard == ["slack"] and incident.alerted == ["firing"]
    incident.resolve("resolved: fine", 2)
    incident.owe("resolved", 0, incident.resolve_owed_to(), 2)
    assert [n.status for n in incident.owed["pagerduty"]] == ["firing", "resolved"], "the firing goes first"
    assert [n.status for n in incident.owed["slack"]] == ["resolved"]
    incident.owe("resolved", 0, incident.resolve_owed_to(), 3)
    assert len(incident.owed["slack"]) == 1, "one resolve per sink"
    incident.owe("resolved", 0, ["webhook"], 3)
    assert "webhook" not in incident.owed, "a sink that never heard the firing gets no resolve"


def test_an_escalation_replaces_the_firing_still_owed_and_a_failure_backs_off() -> None:
    incident = IncidentBook().apply(anomaly())
    incident.owe("firing", 0, ["pagerduty"], 1)
    first = incident.next_notice("pagerduty")
    incident.failed("pagerduty", first, "HTTP 503", next_try_ms=500)
    assert (first.tries, first.last_error, first.next_try_ms) == (1, "HTTP 503", 500)
    incident.owe("firing", 1, ["pagerduty"], 9)
    assert [(n.status, n.level, n.tries) for n in incident.owed["pagerduty"]] == [("firing", 1, 0)]
    incident.delivered("pagerduty", first)  # the replaced page came back accepted after all: nothing else changes
    assert [n.level for n in incident.owed["pagerduty"]] == [1]
    incident.delivered("pagerduty", incident.next_notice("pagerduty"))
    assert incident.owed == {} and incident.alerted == ["firing", "firing@1"]


def test_silence_cancels_owed_firings_and_give_up_drops_a_sinks_queue() -> None:
    incident = IncidentBook().apply(anomaly())
    incident.owe("firing", 0, ["pagerduty", "slack"], 1)
    incident.delivered("slack", incident.next_notice("slack"))
    incident.owe("firing", 1, ["pagerduty", "slack"], 2)
    incident.cancel_firing()
    assert incident.owed == {}
    incident.owe("firing", 1, ["pagerduty"], 3)
    incident.resolve("resolved", 4)
    incident.owe("resolved", 1, incident.resolve_owed_to(), 4)
    assert [n.status for n in incident.give_up("pagerduty")] == ["firing", "resolved"]
    assert list(incident.owed) == ["slack"]


def test_owed_pages_survive_the_incident_record() -> None:
    incident = IncidentBook().apply(anomaly())
    incident.owe("firing", 0, ["pagerduty"], 1)
    incident.failed("pagerduty", incident.next_notice("pagerduty"), "timeout", 99)
    restored = msgspec.json.decode(msgspec.json.encode(incident), type=Incident)
    assert restored.owed == incident.owed
    assert restored.owed["pagerduty"][0] == Notice("firing", 0, 1, tries=1, next_try_ms=99, last_error="timeout")


def test_an_escalation_headline_fits_and_names_every_playbooks_reason() -> None:
    """Issue 17: the summary was cut at 1,024 characters and hid the second playbook's reason."""
    from modelmedic.alerting import pagerduty_event
    from modelmedic.testing import validate_pagerduty

    incident = IncidentBook().apply(anomaly())
    for step, (name, why) in enumerate([("rollback", "no previous version: " + "x" * 2000),
                                        ("scale-out", "forbidden: deployments/scale patch denied " + "y" * 2000)]):
        attempt = Attempt(playbook=name, key=f"k{step}", at=1, step=step)
        incident.start_attempt(attempt)
        attempt.finish("failed", why)
    incident.escalate("no playbook restored the series", 1_000)
    alert = incident.alert("firing")
    assert len(alert.summary) <= HEADLINE_MAX
    assert alert.summary.startswith("ESCALATED (level 1): fraud 1.0 (production): latency is off. no playbook restored")
    assert "rollback: failed (no previous version: xx" in alert.summary
    assert "scale-out: failed (forbidden: deployments/scale patch denied yy" in alert.summary
    assert alert.summary.endswith(". Manual intervention needed.")
    event = pagerduty_event(alert, "R" * 32)
    validate_pagerduty(event)
    assert [t["message"] for t in event["payload"]["custom_details"]["tried"]] == [a.message for a in incident.attempts]


def test_a_short_escalation_headline_is_whole() -> None:
    incident = IncidentBook().apply(anomaly())
    attempt = Attempt(playbook="scale-out", key="k", at=1, step=0)
    incident.start_attempt(attempt)
    attempt.finish("done", "scaled 1 -> 2")
    incident.escalate("no playbook restored the series", 1_000)
    assert incident.alert("firing").summary == (
        "ESCALATED (level 1): fraud 1.0 (production): latency is off. no playbook restored the series; "
        "tried: scale-out: done (scaled 1 -> 2). Manual intervention needed.")


# -- flap damping -------------------------------------------------------------------------


def test_a_series_firing_again_within_the_hold_down_reopens_its_incident() -> None:
    """Issue 15: a series that recovered and fired again more than 5 windows later opened a new
    incident and paged again. Within the hold-down it is the same incident, with a flap count."""
    book = IncidentBook(hold_down_ms=lambda a: 1800 * SIZE)
    incident = book.apply(anomaly(onset=W))
    incident.owe("firing", 0, ["pagerduty"], 1)
    incident.delivered("pagerduty", incident.next_notice("pagerduty"))
    book.apply(anomaly(state="recovered", onset=W, at=W + 10))
    assert incident.state == "resolved" and incident.recovered
    for flap, onset in enumerate((W + 600, W + 600 + 1700), start=1):  # each within 30 min of the last recovery
        again = anomaly(onset=onset)
        assert not book.is_new(again) and book.flap_of(again) is incident
        assert book.apply(again) is incident
        assert (incident.state, incident.flaps, incident.firing) == ("open", flap, ["latency"])
        assert incident.resolved_at_ms is None and incident.heard == [], "no resolve is owed until a page reaches a sink"
        assert book.open_incidents() == [incident] and incident.alert("firing").evidence["flaps"] == flap
        assert book.apply(again) is None  # its replay
        book.apply(anomaly(state="recovered", onset=onset, at=onset + 5))
        assert incident.state == "resolved"
    assert len(book.by_id) == 1


@pytest.mark.parametrize("delivered", ["before the next recovery", "after it"])
def test_a_flap_while_the_resolve_is_on_its_way_owes_no_second_resolve(delivered: str) -> None:
    """tests/integration/test_response.py's flapping test failed on a loaded machine: the series flapped after
    PagerDuty had the resolve but before the courier recorded it, so the flap kept PagerDuty as a sink still
    showing the firing, and the next recovery sent it a second resolve."""
    book = IncidentBook(hold_down_ms=lambda a: 1800 * SIZE)
    incident = book.apply(anomaly(onset=W))
    incident.owe("firing", 0, ["pagerduty"], 1)
    incident.delivered("pagerduty", incident.next_notice("pagerduty"))
    book.apply(anomaly(state="recovered", onset=W, at=W + 10))
    incident.owe("resolved", 0, incident.resolve_owed_to(), 2)
    sending = incident.next_notice("pagerduty")
    book.apply(anomaly(onset=W + 600))  # the flap, while the resolve is on its way
    if delivered == "before the next recovery":
        incident.delivered("pagerduty", sending)
    book.apply(anomaly(state="recovered", onset=W + 600, at=W + 605))
    incident.owe("resolved", 0, incident.resolve_owed_to(), 3)  # as the plane does on a recovery
    if delivered == "after it":
        incident.delivered("pagerduty", sending)
    assert (sending.status, incident.state, incident.flaps) == ("resolved", "resolved", 1)
    assert incident.next_notice("pagerduty") is None and incident.heard == [], "PagerDuty was told it resolved"


@pytest.mark.parametrize("case", ["after the hold-down", "resolved by a person", "no hold-down"])
def test_a_later_firing_opens_a_new_incident(case: str) -> None:
    book = IncidentBook(hold_down_ms=lambda a: 0 if case == "no hold-down" else 1800 * SIZE)
    first = book.apply(anomaly(onset=W))
    if case == "resolved by a person":
        book.close(first, "resolved by alice", (W + 10) * SIZE)
    else:
        book.apply(anomaly(state="recovered", onset=W, at=W + 10))
    again = anomaly(onset=W + 11 + (1800 if case == "after the hold-down" else 60))
    assert book.is_new(again) and book.flap_of(again) is None
    second = book.apply(again)
    assert second is not first and first.flaps == 0 and first.state == "resolved"


def test_the_hold_down_survives_a_restart() -> None:
    book = IncidentBook(hold_down_ms=lambda a: 1800 * SIZE)
    incident = book.apply(anomaly(onset=W))
    book.apply(anomaly(state="recovered", onset=W, at=W + 10))
    restored = IncidentBook(hold_down_ms=lambda a: 1800 * SIZE)
    restored.load(msgspec.json.decode(msgspec.json.encode(incident), type=Incident))
    again = restored.apply(anomaly(onset=W + 100))
    assert again is not None and again.id == incident.id and again.flaps == 1


# -- verification credit ------------------------------------------------------------------


@pytest.mark.parametrize(("was", "deadline", "level", "now", "credited"), [
    ("verifying", 100, 0, 100, True),       # inside the window of a playbook that acted
    ("verifying", 100, 0, 101, False),      # after the window ran out (the tick had not noticed yet)
    ("verifying", None, 0, 50, False),      # the window ran out and the next step was being chosen
    ("escalated", None, 1, 50, False),      # issue 15: a fault that simply ended after an escalation
    ("acknowledged", None, 1, 50, False),
    ("remediating", None, 0, 50, False),    # the playbook had not acted yet
    ("open", None, 0, 50, False),           # nothing was tried
], ids=["in window", "window over", "between steps", "escalated", "acknowledged", "still acting", "untouched"])
def test_remediation_is_credited_only_inside_its_verification_window(was: State, deadline: int | None, level: int,
                                                                      now: int, credited: bool) -> None:
    assert credit_remediation(was, deadline, level, now) is credited

"""The incident book: one incident per problem, replays ignored, recoveries resolve, state survives a restart."""

from __future__ import annotations

import copy

import msgspec
import pytest
from pydantic import ValidationError

from modelmedic.alerting import Alert
from modelmedic.events import Anomaly, stable_id
from modelmedic.response.incidents import Incident, IncidentBook

SIZE = 1000
W = 1_700_000_000  # a window index (epoch seconds for 1 s windows)


def anomaly(kind: str = "latency", state: str = "firing", *, onset: int = W, at: int | None = None,
            model: str = "fraud", version: str = "1.0", role: str = "production") -> Anomaly:
    """A record as the judge makes it: the id hashes series, kind and onset window."""
    anomaly_class = {"latency": "latency", "errors": "throughput", "throughput_drop": "throughput",
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


def delivered(incident: Incident) -> None:
    """What the response plane does once the owed page went out."""
    if incident.pending:
        incident.alerted.append(incident.pending)
    incident.pending = None


# -- opening, replays, joining ------------------------------------------------------------


def test_firing_opens_an_incident_owing_a_firing_alert() -> None:
    book = IncidentBook()
    a = anomaly()
    assert book.is_new(a)
    incident = book.apply(a)
    assert incident is not None
    assert incident.id == a.id
    assert (incident.series, incident.model, incident.version, incident.role) == ("fraud/1.0/production", "fraud", "1.0", "production")
    assert (incident.anomaly_class, incident.kinds, incident.firing, incident.anomaly_ids) == ("latency", ["latency"], ["latency"], [a.id])
    assert (incident.state, incident.pending, incident.alerted) == ("open", "firing", [])
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
    delivered(book.by_id[a.id])
    before = snapshot(book)
    assert book.apply(a) is None
    assert book.apply(copy.copy(a)) is None
    assert snapshot(book) == before
    assert book.by_id[a.id].pending is None  # no second page


def test_a_second_kind_on_the_same_series_and_class_joins_the_open_incident() -> None:
    book = IncidentBook()
    drop = anomaly("throughput_drop", onset=W)
    surge = anomaly("throughput_surge", onset=W + 7)
    incident = book.apply(drop)
    delivered(incident)
    assert not book.is_new(surge)
    joined = book.apply(surge)
    assert joined is incident and len(book.by_id) == 1
    assert incident.kinds == ["throughput_drop", "throughput_surge"]
    assert incident.firing == ["throughput_drop", "throughput_surge"]
    assert incident.anomaly_ids == [drop.id, surge.id]
    assert incident.pending is None, "joining is no new page"
    assert [e["anomaly_id"] for e in incident.evidence["also"]] == [surge.id]
    assert incident.opened_at_ms == drop.onset and incident.id == drop.id
    assert book.apply(surge) is None  # and its replay is one too


def test_a_second_symptom_of_the_same_model_joins_its_open_incident() -> None:
    """errors (a version series) while throughput drops (the model series): one model, one problem, one page."""
    book = IncidentBook()
    drop = book.apply(anomaly("throughput_drop"))
    errors = anomaly("errors")
    assert not book.is_new(errors)
    assert book.apply(errors) is drop and len(book.by_id) == 1
    assert drop.kinds == ["throughput_drop", "errors"]
    assert drop.firing == ["throughput_drop"], "a related symptom does not hold the incident open"
    assert book.apply(anomaly("throughput_drop", state="recovered")).state == "resolved"


@pytest.mark.parametrize(
    "other", [anomaly("latency", role="canary"), anomaly("latency", model="churn")], ids=["other role", "other model"],
)
def test_another_model_or_role_opens_another_incident(other: Anomaly) -> None:
    book = IncidentBook()
    first = book.apply(anomaly("latency"))
    second = book.apply(other)
    assert second is not None and second is not first and second.pending == "firing"
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
    assert all(i.pending != "resolved" for i in still)
    done = book.apply(msgspec.structs.replace(second, state="recovered", window_start=second.window_start + 12 * SIZE,
                                              window_end=second.window_end + 12 * SIZE))
    assert done is not None and done.state == "resolved" and done.pending == "resolved"
    assert book.open_incidents() == []


# -- recovery -----------------------------------------------------------------------------


def test_recovered_of_every_kind_resolves_owing_a_resolved_alert() -> None:
    book = IncidentBook()
    drop, surge = anomaly("throughput_drop", onset=W), anomaly("throughput_surge", onset=W + 7)
    incident = book.apply(drop)
    delivered(incident)
    book.apply(surge)
    half = book.apply(anomaly("throughput_drop", "recovered", onset=W, at=W + 12))
    assert half is incident
    assert (incident.state, incident.firing, incident.pending) == ("open", ["throughput_surge"], None)
    assert book.open_incidents() == [incident]
    done = book.apply(anomaly("throughput_surge", "recovered", onset=W + 7, at=W + 20))
    assert done is incident
    assert (incident.state, incident.firing, incident.pending) == ("resolved", [], "resolved")
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
    assert second is not first and second.id == again.id and second.pending == "firing"
    assert first.state == "resolved" and book.open_incidents() == [second]


@pytest.mark.parametrize("case", ["unknown id", "replayed recovery", "kind not firing"])
def test_recovered_that_matches_nothing_is_ignored(case: str) -> None:
    book = IncidentBook()
    book.apply(anomaly("throughput_drop", onset=W))
    if case == "unknown id":
        record = anomaly("latency", "recovered", onset=W + 99)
    elif case == "replayed recovery":
        book.apply(anomaly("throughput_drop", "recovered", onset=W, at=W + 5))
        delivered(next(iter(book.by_id.values())))
        record = anomaly("throughput_drop", "recovered", onset=W, at=W + 5)
    else:  # a surge recovery carrying the drop's id: the kind is not firing
        record = msgspec.structs.replace(anomaly("throughput_surge", "recovered", onset=W), id=anomaly("throughput_drop").id)
    before = snapshot(book)
    assert book.apply(record) is None
    assert snapshot(book) == before


def test_close_by_hand_resolves_and_later_records_are_handled() -> None:
    book = IncidentBook()
    incident = book.apply(anomaly(onset=W))
    delivered(incident)
    book.close(incident, "resolved by alice", now_ms=(W + 50) * SIZE)
    assert (incident.state, incident.firing, incident.pending, incident.resolution) == ("resolved", [], "resolved", "resolved by alice")
    assert incident.resolved_at_ms == (W + 50) * SIZE and book.open_incidents() == []
    delivered(incident)
    before = snapshot(book)
    assert book.apply(anomaly(state="recovered", onset=W, at=W + 60)) is None  # the detector catches up
    book.close(incident, "again", now_ms=(W + 70) * SIZE)  # closing twice is a no-op
    assert snapshot(book) == before
    assert book.apply(anomaly(onset=W + 80)).id != incident.id


# -- persistence --------------------------------------------------------------------------


def _busy_book() -> IncidentBook:
    book = IncidentBook()
    delivered(book.apply(anomaly("throughput_drop", onset=W)))
    book.apply(anomaly("throughput_surge", onset=W + 7))  # joined
    delivered(book.apply(anomaly("latency", onset=W, model="ads", version="2.0")))
    book.apply(anomaly("latency", "recovered", onset=W, at=W + 9, model="ads", version="2.0"))  # resolved, owes its page
    book.apply(anomaly("errors", onset=W + 3, model="churn"))  # open, owes its page
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
    assert sorted(i.pending or "" for i in restored.by_id.values()) == ["", "firing", "resolved"]


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
    delivered(incident)
    stored = msgspec.json.decode(msgspec.json.encode(incident))
    del stored["firing_anomalies"]
    book = IncidentBook()
    book.load(msgspec.json.decode(msgspec.json.encode(stored), type=Incident))
    joined = book.apply(anomaly("throughput_surge", onset=W + 4))
    assert joined is not None and joined.firing == ["throughput_drop", "throughput_surge"]
    assert book.apply(anomaly("throughput_drop", "recovered", onset=W, at=W + 9)).state != "resolved"
    done = book.apply(anomaly("throughput_surge", "recovered", onset=W + 4, at=W + 10))
    assert done is not None and (done.state, done.pending) == ("resolved", "resolved")


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

"""A rebalance hands the response plane partitions while it is busy (issue 17).

aiokafka runs the rebalance listener in its own task and its fetcher hands out records of
the new partitions before the listener returns, so :meth:`ResponsePlane.take_over` runs
alongside :meth:`handle_batch` and pages in flight. Before this was fixed, a take-over that
read the incidents topic while an incident resolved loaded the stale stored copy over it:
the resolve page went out, but the book (and the API) showed the incident open, owing its
firing page, for good. The store read here is faked (``read_compacted``); the rest is real.
"""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from modelmedic.alerting import Alerter
from modelmedic.config import load_settings
from modelmedic.response import plane as plane_module
from modelmedic.response.incidents import Incident, IncidentBook
from modelmedic.response.plane import ResponsePlane
from test_incidents import anomaly


class Producer:
    """Takes every record at once; keeps what was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def send(self, topic: str, value: bytes, **kwargs) -> None:
        self.sent.append((topic, value))

    async def send_and_wait(self, topic: str, value: bytes, **kwargs) -> None:
        self.sent.append((topic, value))


def _plane() -> ResponsePlane:
    plane = ResponsePlane(load_settings(), Alerter([]))
    plane._producer = Producer()
    return plane


def _stored(monkeypatch: pytest.MonkeyPatch, *incidents: Incident, gate: asyncio.Event | None = None) -> asyncio.Event:
    """The incidents topic holds ``incidents``; its read waits for ``gate`` (if given). Returns an
    event set once the read has begun."""
    began = asyncio.Event()

    async def read_compacted(kafka, topic):
        began.set()
        if gate is not None:
            await gate.wait()
        return {i.id.encode(): msgspec.json.encode(i) for i in incidents}

    monkeypatch.setattr(plane_module, "read_compacted", read_compacted)
    return began


def _copy(incident: Incident) -> Incident:
    return msgspec.json.decode(msgspec.json.encode(incident), type=Incident)


async def test_an_incident_saved_since_the_store_was_read_keeps_its_state(monkeypatch) -> None:
    plane = _plane()
    await plane.handle(anomaly())
    incident = next(iter(plane.book.by_id.values()))
    stale = _copy(incident)  # what the store held when the take-over read it
    await plane.handle(anomaly(state="recovered", at=5))
    assert incident.state == "resolved" and incident.revision > stale.revision
    _stored(monkeypatch, stale)

    await plane.take_over({0, 1, 2}, [0, 1, 2])

    assert plane.book.by_id[incident.id] is incident
    assert plane.book.open_incidents() == []


async def test_an_incident_another_replica_saved_since_is_read_back(monkeypatch) -> None:
    plane = _plane()
    await plane.handle(anomaly())
    incident = next(iter(plane.book.by_id.values()))
    theirs = _copy(incident)
    theirs.revision += 1
    IncidentBook().close(theirs, "resolved by the other replica", theirs.opened_at_ms + 1)
    _stored(monkeypatch, theirs)

    await plane.take_over({0, 1, 2}, [0, 1, 2])

    assert plane.book.by_id[incident.id].resolution == "resolved by the other replica"
    assert plane.book.open_incidents() == []


async def test_an_anomaly_waits_for_the_take_over_and_lands_in_the_book_it_loaded(monkeypatch) -> None:
    plane = _plane()
    elsewhere = IncidentBook().apply(anomaly(model="other"))
    gate = asyncio.Event()
    began = _stored(monkeypatch, elsewhere, gate=gate)
    taking = asyncio.create_task(plane.take_over({0, 1, 2}, [0, 1, 2]))
    await began.wait()
    handling = asyncio.create_task(plane.handle(anomaly()))
    await asyncio.sleep(0)  # (lets the handler reach the lock: the evidence is that it is still waiting there)
    assert plane._lock.locked() and not handling.done()

    gate.set()
    await asyncio.gather(taking, handling)

    assert {i.model for i in plane.book.open_incidents()} == {"fraud", "other"}

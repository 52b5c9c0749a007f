"""A series that recovers and fires again before the resolve page went out (issue: the resolve could never be sent)."""

from __future__ import annotations

from test_incidents import SIZE, W, anomaly
from test_storm_pages import Clock, Sink, make_plane, run


async def test_a_flap_read_with_its_recovery_drops_the_unsent_resolve_and_resolves_later() -> None:
    """The recovery owed the sinks a resolve; the firing read right after it (one batch, before the courier
    ran) reopened the incident, which cleared its resolution time. The owed resolve then failed to render on
    every try (``Alert``: a resolve needs ``ended_at_ms``) and blocked every later page of the incident to
    that sink. It is no longer true: the sink still shows the firing it heard, and hears the resolve later."""
    clock = Clock()
    sink = Sink(clock)
    plane = make_plane(clock, sink)
    await run(plane, clock, [anomaly(onset=W, at=W + 4, model="fraud")], until_ms=(W + 30) * SIZE)
    assert sink.of() == [("fraud", "firing")]

    await plane.handle_batch([anomaly(state="recovered", onset=W, at=W + 40, model="fraud"),
                              anomaly(onset=W + 41, at=W + 42, model="fraud")])
    await plane.courier.idle()
    [incident] = plane.book.by_id.values()
    assert (incident.state, incident.flaps, incident.owed) == ("open", 1, {}), "no resolve left owed"
    assert sink.of() == [("fraud", "firing")]

    await plane.handle_batch([anomaly(state="recovered", onset=W + 41, at=W + 60, model="fraud")])
    await plane.courier.idle()
    assert sink.of() == [("fraud", "firing"), ("fraud", "resolved")]
    assert sink.pages[-1].ended_at_ms == (W + 61) * SIZE


async def test_an_episode_firing_again_with_its_first_id_after_recovering_unpaged_pages_once() -> None:
    """``load/detection_harness.py --small --seed 16``: a creep fired, recovered 37 s later (within its storm hold,
    so unpaged) and fired again with the same onset, hence the same id, for the next 12 minutes. The book read the
    second firing as a replay of the first: nobody was paged. A replay (no later than the recovery) still is one."""
    clock = Clock()
    sink = Sink(clock)
    plane = make_plane(clock, sink)
    first = anomaly(onset=W - 282, at=W - 1, model="creep")
    records = [first, anomaly(state="recovered", onset=W - 282, at=W + 36, model="creep")]
    await run(plane, clock, records, until_ms=(W + 80) * SIZE)
    assert sink.pages == [], "recovered within its hold: not news"
    await plane.handle_batch([first])  # (a replay of the first firing, read again after a restart)
    assert [i.state for i in plane.book.by_id.values()] == ["resolved"]

    again = anomaly(onset=W - 282, at=W + 100, model="creep")
    assert again.id == first.id
    await run(plane, clock, [again], until_ms=(W + 200) * SIZE)
    [incident] = plane.book.by_id.values()
    assert incident.active and incident.flaps == 1 and [p.model for p in sink.first_pages()] == ["creep"]
    await run(plane, clock, [again], until_ms=(W + 300) * SIZE)
    assert incident.flaps == 1 and [p.model for p in sink.first_pages()] == ["creep"], "its replay changes nothing"
    await plane.handle_batch([records[1], again])  # (both read again after a restart: the recovery is no news)
    await plane.courier.idle()
    assert incident.active and incident.flaps == 1 and [s for _, s in sink.of()].count("resolved") == 0

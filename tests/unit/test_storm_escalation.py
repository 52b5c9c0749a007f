"""What on-call gets when nobody acknowledges a storm (issue 13): the storm's page escalates on
the rule's timetable like any page, once per level, and its members, paged through the storm,
never escalate on their own (twelve louder pages for one shared cause would bury it).
Acknowledging the storm stops its escalation. The real response plane; clocks driven by the test.
"""

from __future__ import annotations

from test_incidents import SIZE, W
from test_storm_pages import MEMBERS, Clock, Sink, make_plane, run, storm

HOURS_3 = 3 * 3600


async def test_an_unacknowledged_storm_escalates_once_per_level_and_no_member_escalates() -> None:
    clock = Clock()
    sink = Sink(clock)
    plane = make_plane(clock, sink)
    await run(plane, clock, [a for a in storm() if a.state == "firing"], until_ms=(W + HOURS_3) * SIZE)
    storm_incident = next(i for i in plane.book.by_id.values() if i.model == "*")
    levels = len(plane._rule(storm_incident).escalation)
    assert [(p.model, p.status, p.escalation_level) for p in sink.pages] == \
        [("*", "firing", level) for level in range(levels)]
    assert levels == 2, "the default rule: a page, then a critical one after 60 s"
    members = [i for i in plane.book.by_id.values() if i.model in MEMBERS]
    assert len(members) == len(MEMBERS) and all(i.escalation_level == 0 for i in members)


async def test_an_acknowledged_storm_does_not_escalate() -> None:
    clock = Clock()
    sink = Sink(clock)
    plane = make_plane(clock, sink)
    firing = [a for a in storm() if a.state == "firing"]
    while not sink.pages:  # up to the storm's page, a second at a time
        await run(plane, clock, [a for a in firing if a.window_end == clock.ms], until_ms=clock.ms)
    [page] = sink.first_pages()
    await plane.acknowledge(page.incident_id, "on-call")
    await run(plane, clock, [a for a in firing if a.window_end >= clock.ms], until_ms=(W + HOURS_3) * SIZE)
    assert [(p.model, p.status, p.escalation_level) for p in sink.pages] == [("*", "firing", 0), ("*", "acknowledged", 0)]

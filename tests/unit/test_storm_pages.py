"""One page per storm through the real response plane (issue 13), its clocks driven by the test.

Twelve models start failing within half a minute; the dense ones fire in seconds, the
sparse ones minutes later (they need more evidence). Grouped by firing time they paged one
by one; grouped by onset, with the held ones waiting together while the storm gathers,
they page once, as a storm, and stragglers join it silently. Kafka is faked (the records
the plane saves are kept, and read back on a restart); the rest is real.
"""

from __future__ import annotations

import msgspec
import pytest

from modelmedic.alerting import Alert, Alerter
from modelmedic.config import load_settings
from modelmedic.events import Anomaly
from modelmedic.response import plane as plane_module
from modelmedic.response.incidents import Incident
from modelmedic.response.plane import ResponsePlane
from test_incidents import SIZE, W, anomaly
from test_storms import M50_SEED_2, ROUGH_SMALL_SEED_1
from test_take_over import Producer

LAGS_S = [4, 6, 9, 14, 20, 30, 45, 68, 102, 154, 231, 346]
"""Seconds each storm member takes to fire after its onset: dense to sparse (x1.5 each)."""
MEMBERS = [f"m{i:02}" for i in range(len(LAGS_S))]


class Clock:
    """The plane's wall clock, moved by the test; starts at the storm's onset."""

    def __init__(self) -> None:
        self.ms = W * SIZE

    def __call__(self) -> int:
        return self.ms


class Sink:
    """Keeps every page it is sent, with the time it was sent."""

    name = "test"
    idempotent = True

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.pages: list[Alert] = []
        self.sent_ms: dict[str, int] = {}
        """Incident id -> when its first page was sent."""

    async def send(self, alert: Alert) -> None:
        self.pages.append(alert)
        self.sent_ms.setdefault(alert.incident_id, self.clock())

    async def aclose(self) -> None:
        return None

    def first_pages(self) -> list[Alert]:
        """Firing pages at the first level (escalations, louder, follow if nobody acknowledges)."""
        return [p for p in self.pages if p.status == "firing" and p.escalation_level == 0]

    def of(self) -> list[tuple[str, str]]:
        """(model, status) of every page: what the on-call person saw."""
        return [(p.model, p.status) for p in self.pages]


def storm(recovered_at: int = 600) -> list[Anomaly]:
    """The members' firings (onsets 2 s apart, lags :data:`LAGS_S`) and recoveries."""
    records = []
    for i, (model, lag) in enumerate(zip(MEMBERS, LAGS_S)):
        records.append(anomaly(onset=W + 2 * i, at=W + 2 * i + lag, model=model))
        records.append(anomaly(state="recovered", onset=W + 2 * i, at=W + recovered_at + i, model=model))
    return sorted(records, key=lambda a: a.window_end)


def make_plane(clock: Clock, sink: Sink, producer: Producer | None = None) -> ResponsePlane:
    plane = ResponsePlane(load_settings(), Alerter([sink]), clock=clock)
    plane._producer = producer or Producer()
    return plane


async def run(plane: ResponsePlane, clock: Clock, records: list[Anomaly], until_ms: int) -> None:
    """Live: each record arrives when its window ends; the plane ticks every second between."""
    pending = list(records)
    while clock.ms <= until_ms:
        due = [a for a in pending if a.window_end <= clock.ms]
        pending = pending[len(due):]
        if due:
            await plane.handle_batch(due)
        await plane.tick()
        await plane.courier.idle()
        clock.ms += SIZE


async def test_a_storm_of_dense_and_sparse_members_pages_once_and_resolves_once() -> None:
    clock = Clock()
    sink = Sink(clock)
    plane = make_plane(clock, sink)
    await run(plane, clock, storm(), until_ms=(W + 700) * SIZE)

    [page] = sink.first_pages()
    assert page.model == "*" and sorted(page.evidence["models"]) == MEMBERS[:7]
    assert sink.sent_ms[page.incident_id] == (W + 60) * SIZE, "a minute from the first onset, with seven (a quorum) held"
    members = [i for i in plane.book.by_id.values() if i.model != "*"]
    assert sorted(i.model for i in members) == MEMBERS and {i.storm for i in members} == {page.incident_id}, \
        "the stragglers joined the storm"
    assert {m for m, _ in sink.of()} == {"*"}, "no member paged"
    assert [status for _, status in sink.of()].count("resolved") == 1, "the storm resolved once its members recovered"


async def test_a_sparse_member_whose_onset_was_estimated_minutes_early_pages_with_its_storm_not_alone() -> None:
    """``load/detection_harness.py --models 50 --seed 2`` paged its storm twice: m018's onset was estimated
    162 s before the storm began, outside its span, and it paged alone. It fired after the storm surely
    began, so it is the storm's; an error burst that fired before and a creep an hour old page on their own."""
    clock = Clock()
    sink = Sink(clock)
    plane = make_plane(clock, sink)
    records = [anomaly(onset=W + onset, at=W + fired - 1, model=m) for m, onset, fired in M50_SEED_2]
    records += [anomaly("errors", onset=W - 299, at=W - 24, model="burst"), anomaly(onset=W - 3600, at=W + 39, model="creep")]
    await run(plane, clock, sorted(records, key=lambda a: a.window_end), until_ms=(W + 400) * SIZE)

    assert sorted(p.model for p in sink.first_pages()) == ["*", "burst", "creep"]
    [storm] = [p for p in sink.first_pages() if p.model == "*"]
    assert "m018" in storm.evidence["models"]
    assert {i.storm for i in plane.book.by_id.values() if i.model.startswith("m")} == {storm.incident_id}, "m045 joined later"


M40_SEED_6 = [("model-039", -13, 7), ("model-013", 0, 10), ("model-006", 1, 10), ("model-022", 0, 21), ("model-003", -1, 42),
              ("model-019", 27, 66), ("model-000", -26, 95), ("model-026", -255, 144), ("model-008", -161, 203),
              ("model-032", -145, 203), ("model-038", 10, 215), ("model-011", 13, 268)]
"""(model, onset s, window end of its first firing s) of the 12-model storm of ``load/detection_harness.py --models 40
--hours 48 --seed 6 --seasonality 0.8 --start 2026-01-10 --weekend 0.5``: model-026 paged alone at 210 s, the storm at
220 s; replayed live with a tick a second, the storm paged at 562 s, each straggler putting the end of the wait off."""


async def test_a_storm_pages_once_when_its_quorum_has_waited_not_when_its_stragglers_have() -> None:
    clock = Clock()
    sink = Sink(clock)
    plane = make_plane(clock, sink)
    records = [anomaly(onset=W + onset, at=W + end - 1, model=m) for m, onset, end in M40_SEED_6]
    await run(plane, clock, records, until_ms=(W + 900) * SIZE)
    [page] = sink.first_pages()
    assert page.model == "*" and sink.sent_ms[page.incident_id] == (W + 110) * SIZE, "42 s (the fifth) + 68 s"
    assert sorted(i.model for i in plane.book.by_id.values() if i.storm == page.incident_id) == sorted(m for m, _, _ in M40_SEED_6)


async def test_a_member_whose_onset_was_estimated_minutes_early_waits_for_the_storm_it_fired_into() -> None:
    """Alone, ``early`` (fired 4 s after the storm began) was due at 64 s; the five that began after its onset and before
    it fired make a storm at 138 s. It fired first, but it is the storm's member, not the one to form it."""
    clock = Clock()
    sink = Sink(clock)
    plane = make_plane(clock, sink)
    records = [anomaly(onset=W + i, at=W + end - 1, model=f"m{i}") for i, end in enumerate([5, 12, 25, 45, 69])]
    records.append(anomaly(onset=W - 255, at=W + 3, model="early"))
    await run(plane, clock, sorted(records, key=lambda a: a.window_end), until_ms=(W + 300) * SIZE)
    [page] = sink.first_pages()
    assert page.model == "*" and sink.sent_ms[page.incident_id] == (W + 138) * SIZE
    assert sorted(page.evidence["models"]) == ["early", "m0", "m1", "m2", "m3", "m4"]


async def test_an_error_burst_that_began_minutes_before_a_latency_storm_pages_on_its_own() -> None:
    """``load/detection_harness.py --small --rough --seed 3``: the burst (0.23 req/s) fired 243 s into the storm; its
    onset, 300 s before it, was taken for a doubtful estimate, and it joined the storm that had paged: no page."""
    clock = Clock()
    sink = Sink(clock)
    plane = make_plane(clock, sink)
    records = [*storm(), anomaly("errors", onset=W - 290, at=W + 242, model="burst")]
    await run(plane, clock, sorted(records, key=lambda a: a.window_end), until_ms=(W + 700) * SIZE)
    assert sorted(p.model for p in sink.first_pages()) == ["*", "burst"]


async def test_a_creep_that_began_minutes_before_a_storm_and_fires_long_into_it_pages_on_its_own() -> None:
    """``load/detection_harness.py --small --seed 17``: a creep (0.60 req/s) whose onset was 322 s before a latency
    storm fired 1,636 s into it, its members still anomalous; taken for a doubtful onset, it joined silently."""
    clock = Clock()
    sink = Sink(clock)
    plane = make_plane(clock, sink)
    records = [*storm(recovered_at=2400), anomaly(onset=W - 322, at=W + 1635, model="creep")]
    await run(plane, clock, sorted(records, key=lambda a: a.window_end), until_ms=(W + 1800) * SIZE)
    assert sorted(p.model for p in sink.first_pages()) == ["*", "creep"]


M200_SEED_1 = [("model-192", 1, 3), ("model-002", -9, 5), ("model-095", -5, 7), ("model-115", 0, 9), ("model-180", 4, 15),
               ("model-189", 1, 16), ("model-142", 5, 19), ("model-130", 0, 26), ("model-092", 3, 28), ("model-089", 16, 58),
               ("model-014", -49, 119), ("model-193", -22, 147)]
"""(model, onset s, window end of its first firing s) of the 12-model storm of ``load/detection_harness.py --seed 1``
(200 models): model-192 fired 2 s after its onset, so it was due to page alone at 5 s, the second when model-002 fired."""


async def live_or_drained(live: bool, storm_members: list[tuple[str, int, int]]) -> tuple[ResponsePlane, Sink]:
    """The members' first firings (model, onset s, window end s) read live, one by one as event time passes,
    or in one batch 200 s later (a drained backlog)."""
    clock = Clock()
    sink = Sink(clock)
    plane = make_plane(clock, sink)
    records = [anomaly(onset=W + onset, at=W + end - 1, model=m) for m, onset, end in storm_members]
    if live:
        await run(plane, clock, records, until_ms=(W + 200) * SIZE)
    else:
        clock.ms = (W + 200) * SIZE
        await plane.handle_batch(records)
        await plane.courier.idle()
    return plane, sink


async def test_a_member_firing_when_a_held_incident_falls_due_makes_it_wait_for_the_storm() -> None:
    """The 200-model day paged this storm twice: model-192 alone at 5 s, then the storm of the other ten at 58 s.
    Read in one batch (a drain) or live, a record at the held incident's due time is judged before it pages."""
    for live in (True, False):
        plane, sink = await live_or_drained(live, M200_SEED_1)
        [page] = sink.first_pages()
        assert page.model == "*" and "model-192" in page.evidence["models"], (live, sink.of())


@pytest.mark.parametrize("lag_s, wait_s", [(4, 15), (30, 30), (300, 60)])
async def test_a_lone_incident_waits_as_long_again_as_it_took_to_fire_up_to_the_storm_window(lag_s: int, wait_s: int) -> None:
    """At least ``storm_hold_s`` (15 s): a dense one that fired in 4 s waits 15 s."""
    clock = Clock()
    sink = Sink(clock)
    plane = make_plane(clock, sink)
    lone = anomaly(onset=W, at=W + lag_s - 1, model="lone")  # (its window ends lag_s after the onset)
    await run(plane, clock, [lone], until_ms=lone.window_end + 400 * SIZE)
    assert [p.model for p in sink.first_pages()] == ["lone"]
    assert sink.sent_ms[lone.id] - lone.window_end == wait_s * SIZE


async def test_a_restart_while_the_storm_gathers_neither_loses_nor_repeats_its_page(monkeypatch) -> None:
    """The replica stops with five members held; the next one reads the incidents back and pages the storm once."""
    clock, producer = Clock(), Producer()
    sink = Sink(clock)
    records = storm()
    before = [a for a in records if a.state == "firing" and a.model in MEMBERS[:5]]
    await run(make_plane(clock, sink, producer), clock, before, until_ms=before[-1].window_end + 5 * SIZE)
    assert sink.pages == []

    stored: dict[bytes, bytes] = {}
    for topic, value in producer.sent:
        if topic == load_settings().kafka.topics.incidents:
            stored[msgspec.json.decode(value, type=Incident).id.encode()] = value

    async def read_compacted(kafka, topic):
        return stored

    monkeypatch.setattr(plane_module, "read_compacted", read_compacted)
    plane = make_plane(clock, sink)
    await plane.take_over({0}, [0])
    assert sum(i.held for i in plane.book.by_id.values()) == 5
    await run(plane, clock, [a for a in records if a not in before], until_ms=(W + 700) * SIZE)
    assert [p.model for p in sink.first_pages()] == ["*"] and {m for m, _ in sink.of()} == {"*"}


async def test_a_storm_whose_sparse_members_fire_after_the_wait_pages_once_with_the_members_held() -> None:
    """``load/detection_harness.py --small --rough --seed 1`` paged this storm nine times: seven members alone when
    their wait ended at 60 s, m03 (onset estimated 95 s early) alone at 80 s, the storm at 98 s. Seven of
    ``storm_models`` 10 held together are a quorum: one storm page, m03 in it, the later members join it silently."""
    for live in (True, False):
        plane, sink = await live_or_drained(live, ROUGH_SMALL_SEED_1)
        [page] = sink.first_pages()
        assert page.model == "*" and "m03" in page.evidence["models"], (live, sink.of())
        assert {i.storm for i in plane.book.by_id.values() if i.model != "*"} == {page.incident_id}, "all twelve in it"
        if live:
            assert sink.sent_ms[page.incident_id] == (W + 56) * SIZE, "a minute from the group's earliest onset"


@pytest.mark.parametrize("members", [5, 9])
async def test_a_quorum_of_models_starting_together_pages_once_as_a_storm_when_its_wait_ends(members: int) -> None:
    """Half of ``storm_models`` or more, still held together when their wait ends: a shared cause, one page."""
    clock = Clock()
    sink = Sink(clock)
    plane = make_plane(clock, sink)
    await run(plane, clock, [a for a in storm() if a.model in MEMBERS[:members]], until_ms=(W + 1300) * SIZE)
    [page] = sink.first_pages()
    assert page.model == "*" and {m for m, _ in sink.of()} == {"*"}
    assert sorted(i.model for i in plane.book.by_id.values() if i.storm == page.incident_id) == MEMBERS[:members]


@pytest.mark.parametrize("members", [2, 4])
async def test_fewer_than_a_quorum_starting_together_page_each_once_within_the_gathering_cap(members: int) -> None:
    """Not a storm: each pages once, after waiting at most ``storm_gather_max_s`` for one to form."""
    clock = Clock()
    sink = Sink(clock)
    plane = make_plane(clock, sink)
    records = [a for a in storm() if a.model in MEMBERS[:members]]
    await run(plane, clock, records, until_ms=(W + 1300) * SIZE)
    assert sorted(p.model for p in sink.first_pages()) == MEMBERS[:members]
    cap_ms = int(plane.policy.guard_rails.storm_gather_max_s * SIZE)
    assert all(sink.sent_ms[a.id] <= a.window_end + cap_ms for a in records if a.state == "firing")

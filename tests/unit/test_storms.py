"""Storms judged in event time (issue 13): by when members' problems started, not when they fired or were read."""

from __future__ import annotations

from dataclasses import replace

from modelmedic.response.incidents import Incident
from modelmedic.response.policy import GuardRails
from modelmedic.response.storms import Firing, StormWatch

T = 1_767_225_600_000
S = 1000


def watch(**rails) -> StormWatch:
    return StormWatch(GuardRails(**{"storm_models": 3, "storm_window_s": 60, "storm_hold_s": 5,
                                    "storm_gather_max_s": 600, **rails}))


def test_models_starting_hours_apart_make_no_storm_however_fast_they_are_read() -> None:
    w = watch()
    for i in range(20):  # a backlog: one model every 10 minutes of event time, all read at once
        w.observe(T + i * 600 * S + 5 * S, wall_ms=0)
        assert w.fired(Firing(f"m{i}", T + i * 600 * S, T + i * 600 * S + 5 * S)) is None


def test_models_starting_within_the_window_make_a_storm_however_far_apart_they_fire() -> None:
    """A sparse member needs minutes of evidence; its onset still says when its problem began."""
    w = watch()
    assert w.fired(Firing("dense", T, T + 4 * S)) is None
    assert w.fired(Firing("dense", T + 1 * S, T + 9 * S)) is None, "the same model twice is not a storm"
    assert w.fired(Firing("sparse", T + 20 * S, T + 500 * S)) is None
    assert w.fired(Firing("medium", T - 10 * S, T + 40 * S)) == ["dense", "medium", "sparse"], "in any arrival order"


def test_models_firing_together_whose_problems_started_apart_make_no_storm() -> None:
    """A slow creep that started an hour ago and fires now shares no cause with a fresh step."""
    w = watch()
    w.fired(Firing("creep", T - 3600 * S, T))
    w.fired(Firing("step", T - 5 * S, T))
    assert w.fired(Firing("old", T - 1800 * S, T + 1 * S)) is None


def test_event_time_is_the_watermark_moved_on_by_the_wall_clock() -> None:
    w = watch()
    w.observe(T, wall_ms=1_000)
    w.observe(T - 30 * S, wall_ms=1_500)  # an older record does not move it back
    assert w.now(1_000) == T and w.now(3_000) == T + 2 * S
    w.observe(T + 5 * S, wall_ms=1_600)  # catch-up: a later anomaly moves it at once
    assert w.now(1_600) == T + 5 * S
    for wall in range(2_000, 9_000, 1_000):  # more records of that moment, read slowly: still that moment
        w.observe(T + 5 * S, wall_ms=wall)
    assert w.now(8_000) == T + 5 * S and w.now(10_000) == T + 7 * S
    w.observe(T + 5 * S, wall_ms=14_000)  # one after a gap longer than the hold (5 s) is late: time runs on
    assert w.now(14_500) == T + 11_500
    assert watch().now(wall_ms=14_000) == 14_000, "(no anomaly yet: event time is the wall clock)"


def test_a_lone_held_incident_waits_as_long_again_as_it_took_to_fire_within_hold_and_window() -> None:
    w = watch()
    sparse = Firing("a", T - 300 * S, T)  # fired five minutes after its problem began
    far = Firing("b", T + 120 * S, T + 125 * S)
    same_model = Firing("a", T - 290 * S, T + 3 * S)  # (another class of the same model)
    assert w.due_at(sparse, [sparse]) == w.due_at(sparse, [sparse, far, same_model]) == T + 60 * S
    assert w.due_at(Firing("a", T - 20 * S, T), []) == T + 20 * S
    assert w.due_at(Firing("a", T - 2 * S, T), []) == T + 5 * S, "at least storm_hold_s"
    assert watch(storm_hold_s=0).due_at(sparse, [sparse, Firing("c", T - 300 * S, T)]) == T, "0: no hold at all"


def test_held_incidents_starting_together_wait_as_long_again_as_they_have_been_gathering() -> None:
    """Members fire later the sparser they are: the wait scales with the group's own spread."""
    w = watch(storm_models=10)  # (at least the window from the earliest onset: 58 s here)
    a, b = Firing("a", T, T + 4 * S), Firing("b", T - 2 * S, T + 40 * S)
    assert w.due_at(a, [a, b]) == w.due_at(b, [a, b]) == T + 40 * S + 42 * S
    c = Firing("c", T + 10 * S, T + 200 * S)
    assert w.due_at(a, [a, b, c]) == T + 200 * S + 202 * S, "a slower member extends the wait"


def test_a_gathering_group_waits_the_storm_window_from_its_earliest_onset() -> None:
    """Models firing seconds after a shared onset: as long again would be seconds; the window from
    the earliest onset instead, for two held models as for five."""
    w = watch(storm_models=10)
    group = [Firing(f"m{i}", T - (i % 2) * S, T + (2 + i) * S) for i in range(5)]
    assert w.due_at(group[0], group[:2]) == T - S + 60 * S, "two: the whole window"
    assert all(w.due_at(f, group) == T - S + 60 * S for f in group), "five: the whole window"
    alone = Firing("z", T, T + 2 * S)
    assert w.due_at(alone, []) == T + 2 * S + w.hold_ms, "alone: the hold"


ROUGH_SEED_29 = [("m030", 2, 6), ("m036", -1, 8), ("m027", 15, 43), ("m006", 13, 44), ("m026", 30, 49),
                 ("m008", 27, 57), ("m022", 0, 60), ("m004", 64, 91), ("m003", 2, 97), ("m014", 44, 115)]
"""(model, onset s, fired s) of the 12-model storm of ``load/detection_harness.py --models 40 --hours 48 --rough
--seed 29 --start 2026-01-06`` (its first ten; each model's first anomaly, a median's or a tail's): the two densest
fired 6 and 8 s after the storm began, the third 43 s after."""


def _first_due(w: StormWatch, storm: list[tuple[str, int, int]]) -> tuple[Firing, list[Firing]]:
    """The storm's members (model, onset s, fired s) fed to ``w`` in firing order until a held one falls
    due before the next fires: that next member and the ones held. Every one due then pages with a
    quorum (as a storm), never alone, and no storm of ``storm_models`` formed before."""
    firings = [Firing(m, T + onset * S, T + fired * S) for m, onset, fired in storm]
    for i, new in enumerate(firings):
        held = firings[:i]
        due = [h for h in held if w.due_at(h, held) <= new.fired_ms]
        assert all(w.quorum_of(h, held) is not None for h in due), f"a member paged alone before {new.model} fired"
        if due:
            return new, held
        assert w.fired(new) is None
    return firings[-1], firings[:-1]


def test_two_dense_members_are_held_until_the_storms_next_members_fire() -> None:
    """Before (two held models waited a quarter of the window from their earliest onset), m030 and m036
    fell due at 23 s and paged alone, and the storm paged a third time. Now they wait a minute from
    m036's onset, by when three more have fired: a quorum held, whose gathering (to m026's firing at
    49 s, 50 s from the earliest onset) puts the wait to 99 s, one page for nine models."""
    w = StormWatch(GuardRails(storm_models=10, storm_window_s=60, storm_gather_max_s=600))
    new, held = _first_due(w, ROUGH_SEED_29)
    assert new.model == "m014" and min(w.due_at(h, held) for h in held) == T + 99 * S
    assert w.quorum_of(held[0], held) == sorted(m for m, onset, _ in ROUGH_SEED_29[:9] if abs(onset - 2) <= 60)


SMALL_SEED_3 = [("m13", 0, 2), ("m15", 0, 3), ("m18", -1, 3), ("m06", 0, 3), ("m21", 0, 5), ("m19", -1, 20),
                ("m05", 3, 23), ("m01", -24, 30), ("m12", 2, 46), ("m08", 11, 53), ("m22", 25, 62), ("m09", -23, 77)]
"""(model, onset s, fired s) of the 12-model storm of ``load/detection_harness.py --small --seed 3``:
five members at 1.3-5 req/s fired within 5 s, the tenth (0.06 req/s) at 53 s."""


def test_the_dense_members_of_a_storm_are_held_until_a_storm_forms() -> None:
    """Before, the five that fired within 5 s waited as long again as they had gathered (to 11 s)
    and paged one by one; the storm formed at 53 s and paged a sixth time. Now none is due alone:
    the first falls due at 36 s (a minute from m01's onset) with eight models held, a quorum, so
    they page as one storm, 17 s before the tenth member would have made it."""
    w = StormWatch(GuardRails(storm_models=10, storm_window_s=60, storm_hold_s=2, storm_gather_max_s=600))
    new, held = _first_due(w, SMALL_SEED_3)
    assert new.model == "m12" and min(w.due_at(h, held) for h in held) == T + 36 * S
    assert w.quorum_of(held[0], held) == sorted(m for m, _, _ in SMALL_SEED_3[:8])


ROUGH_SMALL_SEED_1 = [("m15", 0, 8), ("m00", 4, 8), ("m12", -4, 12), ("m14", 3, 13), ("m03", -95, 20), ("m28", 8, 21),
                      ("m17", 0, 26), ("m06", 16, 28), ("m10", 7, 63), ("m23", 28, 77), ("m20", 9, 98), ("m18", 14, 138)]
"""(model, onset s, fired s) of the 12-model storm of ``load/detection_harness.py --small --rough --seed 1``: seven
members held together by 28 s (m03's onset, estimated 95 s early, is in no group), the three that made ten
(0.06-0.1 req/s, batched arrivals) fired at 63, 77 and 98 s."""


def test_a_quorum_of_models_held_together_when_their_wait_ends_is_a_storm() -> None:
    """Before, the seven paged one by one when their wait ended at 60 s, m03 alone at 80 s and the storm at 98 s."""
    w = StormWatch(GuardRails(storm_models=10, storm_window_s=60, storm_hold_s=2, storm_gather_max_s=600))
    firings = [Firing(m, T + onset * S, T + fired * S) for m, onset, fired in ROUGH_SMALL_SEED_1]
    held = firings[:8]
    assert all(w.fired(f) is None for f in held), "eight held, no storm yet"
    due = min(w.due_at(h, held) for h in held)
    assert due == T + 56 * S and due < firings[8].fired_ms, "the wait ends a minute from the earliest onset (m12's)"
    group = sorted(m for m, onset, _ in ROUGH_SMALL_SEED_1[:8] if onset > -95)
    assert [w.quorum_of(h, held) for h in held if h.model != "m03"] == [group] * 7, "seven of ten: a storm"
    assert w.quorum_of(held[4], held) is None, "m03 is not in the group (the storm takes it in: onset_in)"
    assert w.quorum_of(held[0], held[:4]) is None, "four of ten are not a quorum"
    assert StormWatch(GuardRails(storm_models=10, storm_hold_s=0)).quorum_of(held[0], held) is None, "holding off"


def test_a_member_firing_after_a_quorum_was_held_no_longer_puts_the_wait_off() -> None:
    """Five held models are a storm whenever their wait ends: waiting for more only delays its page."""
    w = StormWatch(GuardRails(storm_models=10, storm_window_s=60, storm_hold_s=2, storm_gather_max_s=600))
    five = [Firing(f"m{i}", T + i * S, T + (5 + 10 * i) * S) for i in range(5)]  # (the fifth fired at 45 s)
    late = Firing("late", T + 10 * S, T + 268 * S)
    assert w.due_at(five[0], five) == w.due_at(five[0], [*five, late]) == T + 90 * S, "as long again as 0..45 s"
    assert w.due_at(five[0], five[:4] + [late]) == T + 536 * S, "four and a straggler: no quorum before it"


def test_a_member_whose_onset_was_estimated_minutes_early_waits_for_the_group_it_fired_into() -> None:
    """``load/detection_harness.py --models 40 --hours 48 --seed 6 ...``: model-026's onset was estimated
    255 s before its storm began; no held incident had started within a minute of it, so it was due alone
    before the storm formed and paged on its own."""
    w = StormWatch(GuardRails(storm_models=10, storm_window_s=60, storm_hold_s=2, storm_gather_max_s=600))
    group = [Firing(f"m{i}", T + i * S, T + (5 + 16 * i) * S) for i in range(5)]  # (a quorum, the fifth fired at 69 s)
    early = Firing("early", T - 255 * S, T + 60 * S)
    assert w.due_at(early, [early]) == T + 120 * S, "alone: a minute after it fired"
    assert w.due_at(group[0], [*group, early]) == T + 138 * S
    assert w.due_at(early, [*group, early]) == T + 138 * S, "with the group it fired into"
    assert w.due_at(early, [*group[:1], early]) == T + 120 * S, "(never less than its lone wait)"
    burst = Firing("burst", T - 299 * S, T - 23 * S)  # (fired before any of them began)
    assert w.due_at(burst, [*group, burst]) == T + 37 * S
    assert w.due_at(Firing("early", T - 601 * S, T + 60 * S), [*group]) == T + 120 * S, "beyond storm_gather_max_s"
    sparse = [Firing(f"s{i}", T + i * S, T + 61 * S + i * S) for i in range(5)]  # (their own onsets are doubtful)
    assert w.due_at(early, [*sparse, early]) == T + 120 * S, "only sure onsets keep it waiting"


def test_the_gathering_wait_ends_storm_gather_max_s_after_an_incident_fired() -> None:
    w = watch(storm_gather_max_s=120)
    a, b = Firing("a", T, T + 4 * S), Firing("b", T + 30 * S, T + 300 * S)
    assert w.due_at(a, [a, b]) == T + 124 * S
    assert w.due_at(b, [a, b]) == T + 420 * S
    assert watch(storm_gather_max_s=0).due_at(b, [a, b]) == T + 360 * S, "never less than its lone wait"
    storm = Firing("*", T, T + 300 * S)
    assert w.due_at(storm, [a, b]) == T + 305 * S, "a storm's own page waits the plain hold"


def test_a_storm_takes_in_later_members_starting_within_its_window_and_ends() -> None:
    w = watch()
    storm = w.open_storm("production", [Firing(m, T + i * 10 * S, T + (i * 10 + 5) * S) for i, m in enumerate("abc")])
    assert storm.id.startswith("storm-") and w.open_storm("production", [Firing("c", T + 20 * S, T + 25 * S),
                                                                         Firing("a", T, T + 9 * S)]).id == storm.id
    w.storms = [storm]
    assert w.storm_of(Firing("d", T + 70 * S, T + 99 * S)) is storm and w.storm_of(Firing("d", T + 90 * S, T + 99 * S)) is None
    w.joined(storm, Firing("d", T + 70 * S, T + 99 * S))
    assert w.storm_of(Firing("e", T + 120 * S, T + 130 * S)) is storm, "its span grew with the late member"
    w.ended(storm.id)
    assert w.storm_of(Firing("a", T, T + 5 * S)) is None


M50_SEED_2 = [("m039", 3, 10), ("m003", 2, 11), ("m019", -7, 11), ("m023", 3, 18), ("m048", -14, 21), ("m018", -162, 29),
              ("m015", 1, 38), ("m043", -23, 45), ("m020", -1, 52), ("m028", -6, 60), ("m029", 2, 73), ("m045", -22, 273)]
"""(model, onset s, fired s) of the 12-model storm of ``load/detection_harness.py --models 50 --seed 2``: m018
(0.19 req/s) fired at 29 s, its onset estimated 162 s before the storm began (a noise excursion the change continued)."""


def test_a_member_whose_onset_was_estimated_minutes_early_is_the_storms_if_it_fired_after_the_storm_surely_began() -> None:
    """Its truth lies between its onset and its firing; the storm's surest onset is its densest member's (m039: 3 s, fired 10)."""
    w = StormWatch(GuardRails(storm_models=10, storm_window_s=60, storm_hold_s=2, storm_gather_max_s=600))
    storm = w.open_storm("production", [Firing(m, T + o * S, T + f * S) for m, o, f in M50_SEED_2 if m != "m018"][:10])
    assert (storm.first_ms, storm.surest.model) == (T - 23 * S, "m039")
    assert w.onset_in(storm, Firing("m018", T - 162 * S, T + 29 * S)) == storm.first_ms, "seen as starting with the storm"
    assert w.storm_of(Firing("m018", T - 162 * S, T + 29 * S)) is storm
    w.joined(storm, Firing("m018", T - 162 * S, T + 29 * S))
    assert (storm.first_ms, storm.surest.model) == (T - 23 * S, "m039"), "its doubtful onset widens nothing"
    burst = Firing("burst", T - 299 * S, T - 23 * S)  # (--small --seed 2: an error burst 300 s before the storm)
    assert w.onset_in(storm, burst) is None, "it fired before the storm surely began"
    assert w.onset_in(storm, Firing("creep", T - 3600 * S, T + 30 * S)) is None, "an hour before: not a doubtful onset"
    assert w.onset_in(storm, Firing("early", T - 624 * S, T + 30 * S)) is None, "more than storm_gather_max_s before"
    assert w.onset_in(storm, Firing("early", T - 623 * S, T + 30 * S)) == storm.first_ms
    assert w.onset_in(storm, Firing("creep", T - 322 * S, T + 1636 * S)) is None, "fired long after a sparse member would"
    assert w.onset_in(storm, Firing("creep", T - 322 * S, T + 604 * S)) is None
    assert w.onset_in(storm, Firing("creep", T - 322 * S, T + 603 * S)) == storm.first_ms, "(600 s from m039's onset, 3 s)"
    assert w.onset_in(storm, Firing("later", T + 64 * S, T + 65 * S)) is None, "after the span's window: no uncertainty"


def test_a_doubtful_onset_joins_a_storm_only_with_a_class_its_sure_members_have() -> None:
    """``--small --rough --seed 3``: an error burst that began 300 s before a latency storm and fired 243 s into
    it was taken in after the storm had paged, and paged nobody."""
    w = StormWatch(GuardRails(storm_models=10, storm_window_s=60, storm_hold_s=2, storm_gather_max_s=600))
    storm = w.open_storm("production", [Firing(f"m{i}", T + i * S, T + (5 + i) * S, anomaly_class="latency") for i in range(10)])
    assert storm.classes == {"latency"}
    assert w.onset_in(storm, Firing("burst", T - 290 * S, T + 243 * S, anomaly_class="errors")) is None
    assert w.onset_in(storm, Firing("slow", T - 290 * S, T + 243 * S, anomaly_class="latency")) == storm.first_ms
    silent = Firing("burst", T + 120 * S, T + 243 * S, seen_ms=T + 5 * S, anomaly_class="errors")
    assert w.onset_in(storm, silent) is None and w.onset_in(storm, replace(silent, anomaly_class="latency")) == storm.last_ms
    sure = Firing("errs", T + 30 * S, T + 200 * S, anomaly_class="errors")
    assert w.onset_in(storm, sure) == sure.onset_ms, "a shared cause may show as another class: its sure onset counts"
    w.joined(storm, sure)
    assert w.onset_in(storm, Firing("burst", T - 290 * S, T + 243 * S, anomaly_class="errors")) == storm.first_ms
    early = Firing("early", T - 255 * S, T + 60 * S, anomaly_class="errors")
    group = [Firing(f"g{i}", T + i * S, T + (5 + 16 * i) * S, anomaly_class="latency") for i in range(5)]
    assert w.due_at(early, [*group, early]) == T + 120 * S, "nor does it wait for a group of another class"


def test_a_member_silent_since_within_the_span_is_the_storms_however_late_its_first_request() -> None:
    """The rough 200-model day, seed 1: model-014 (0.11 req/s, batched) sent nothing from 14 s before
    the storm began to 88 s after; its onset, its first request's window, lay 73 s past the span."""
    w = StormWatch(GuardRails(storm_models=10, storm_window_s=60, storm_hold_s=2, storm_gather_max_s=600))
    storm = w.open_storm("production", [Firing(m, T + o * S, T + f * S) for m, o, f in M50_SEED_2 if m != "m018"][:10])
    assert (storm.first_ms, storm.last_ms) == (T - 23 * S, T + 3 * S)
    late = Firing("model-014", T + 87 * S, T + 270 * S, seen_ms=T - 14 * S)
    assert w.onset_in(storm, late) == storm.last_ms and w.storm_of(late) is storm, "seen as starting at the span's end"
    w.joined(storm, late)
    assert (storm.first_ms, storm.last_ms) == (T - 23 * S, T + 3 * S), "its doubtful onset widens nothing"
    assert w.onset_in(storm, Firing("x", T + 87 * S, T + 270 * S, seen_ms=T + 64 * S)) is None, "it had data after the window"
    assert w.onset_in(storm, Firing("x", T + 87 * S, T + 270 * S, seen_ms=T + 63 * S)) == storm.last_ms
    assert w.onset_in(storm, Firing("x", T + 87 * S, T + 270 * S)) is None, "not known: its onset is its start"
    assert w.onset_in(storm, Firing("x", T + 604 * S, T + 700 * S, seen_ms=T)) is None, "more than storm_gather_max_s after"
    assert w.onset_in(storm, Firing("x", T + 603 * S, T + 700 * S, seen_ms=T)) == storm.last_ms


def test_rebuilt_storms_keep_their_span_and_surest_member_whatever_a_doubtful_member_said() -> None:
    rails = GuardRails(storm_models=3, storm_window_s=60, storm_hold_s=5)
    w = StormWatch.rebuilt(rails, [incident("s", "*", T - 5 * S, T + 20 * S), incident("x", "x", T - 162 * S, T + 9 * S, "s"),
                                   incident("a", "a", T - 5 * S, T + 10 * S, "s"), incident("b", "b", T, T + 2 * S, "s"),
                                   incident("c", "c", T + 8 * S, T + 20 * S, "s")], wall_ms=7)
    [storm] = w.storms
    assert (storm.first_ms, storm.last_ms, storm.surest.model) == (T - 5 * S, T + 8 * S, "b")


def incident(id: str, model: str, onset: int, fired: int, storm: str | None = None) -> Incident:
    return Incident(id=id, series=f"{model}/*/production", model=model, version="*", role="production",
                    anomaly_class="latency", kinds=["latency"], firing=["latency"], anomaly_ids=[id], summary="",
                    evidence={}, opened_at_ms=onset, fired_at_ms=fired, storm=storm)


def test_rebuilt_from_the_incidents_after_a_restart() -> None:
    """Recent firings (by onset) and the open storm's span of onsets come back from the incident records."""
    w = StormWatch.rebuilt(GuardRails(storm_models=3, storm_window_s=60, storm_hold_s=5),
                           [incident("s", "*", T - 5 * S, T + 10 * S), incident("a", "a", T - 5 * S, T, "s"),
                            incident("b", "b", T + 8 * S, T + 10 * S, "s"), incident("c", "c", T + 100 * S, T + 200 * S)],
                           wall_ms=7)
    assert w.watermark_ms == T + 200 * S and w.now(7) == T + 200 * S
    assert [(s.id, s.first_ms, s.last_ms) for s in w.storms] == [("s", T - 5 * S, T + 8 * S)]
    assert w.fired(Firing("d", T + 110 * S, T + 210 * S)) is None
    assert w.fired(Firing("e", T + 90 * S, T + 220 * S)) == ["c", "d", "e"], "the firings before the restart still count"

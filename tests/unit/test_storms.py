"""Storms judged in event time (issue 13): by when anomalies fired, not when they were read."""

from __future__ import annotations

from modelmedic.response.policy import GuardRails
from modelmedic.response.storms import StormWatch

T = 1_767_225_600_000
S = 1000


def watch(**rails) -> StormWatch:
    return StormWatch(GuardRails(**{"storm_models": 3, "storm_window_s": 60, "storm_hold_s": 5, **rails}))


def test_models_firing_hours_apart_make_no_storm_however_fast_they_are_read() -> None:
    w = watch()
    for i in range(20):  # a backlog: one model every 10 minutes of event time, all read at once
        w.observe(T + i * 600 * S, wall_ms=0)
        assert w.fired(f"m{i}", T + i * 600 * S) is None


def test_models_firing_within_the_window_make_a_storm_in_any_arrival_order() -> None:
    w = watch()
    assert w.fired("c", T + 50 * S) is None
    assert w.fired("a", T) is None
    assert w.fired("a", T + 1 * S) is None, "the same model twice is not a storm"
    assert w.fired("b", T + 30 * S) == ["a", "b", "c"]
    assert w.fired("d", T + 200 * S) is None, "the earlier ones are out of its window"


def test_event_time_is_the_watermark_moved_on_by_the_wall_clock() -> None:
    w = watch()
    w.observe(T, wall_ms=1_000)
    w.observe(T - 30 * S, wall_ms=1_500)  # an older record does not move it back
    assert w.now(1_000) == T and w.now(3_000) == T + 2 * S
    assert not w.due(T, wall_ms=5_999) and w.due(T, wall_ms=6_000)  # live: the wall clock ends a lone hold
    w.observe(T + 5 * S, wall_ms=1_600)  # catch-up: a later anomaly ends it at once
    assert w.due(T, wall_ms=1_600)


def test_a_storm_takes_in_later_members_within_its_window_and_ends() -> None:
    w = watch()
    storm = w.open_storm("production", [T, T + 10 * S, T + 20 * S])
    assert storm.id.startswith("storm-") and w.open_storm("production", [T + 20 * S, T]).id == storm.id
    w.storms = [storm]
    assert w.storm_of(T + 70 * S) is storm and w.storm_of(T + 90 * S) is None
    w.joined(storm, T + 70 * S)
    assert w.storm_of(T + 120 * S) is storm, "its span grew with the late member"
    w.ended(storm.id)
    assert w.storm_of(T) is None


def test_rebuilt_from_the_incidents_after_a_restart() -> None:
    """Held incidents, recent firings and the open storm come back from the incident records."""
    from modelmedic.response.incidents import Incident

    def incident(id: str, model: str, fired: int, storm: str | None = None) -> Incident:
        return Incident(id=id, series=f"{model}/*/production", model=model, version="*", role="production",
                        anomaly_class="latency", kinds=["latency"], firing=["latency"], anomaly_ids=[id], summary="",
                        evidence={}, opened_at_ms=fired, fired_at_ms=fired, storm=storm)

    w = StormWatch.rebuilt(GuardRails(storm_models=3, storm_window_s=60, storm_hold_s=5),
                           [incident("s", "*", T + 10 * S), incident("a", "a", T, "s"), incident("b", "b", T + 10 * S, "s"),
                            incident("c", "c", T + 20 * S)], wall_ms=7)
    assert w.watermark_ms == T + 20 * S and w.now(7) == T + 20 * S
    assert [(s.id, s.first_ms, s.last_ms) for s in w.storms] == [("s", T, T + 10 * S)]
    assert w.fired("d", T + 30 * S) is not None, "the firings before the restart still count"

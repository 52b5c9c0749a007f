"""Closed windows wait for the other partitions' so one judge call covers them all.

The plane's windows of several partitions are judged in one vectorized call per round;
while a consumer catches up, a batch holds only one to three partitions, so windows wait
(up to ``detection.judge_batch_ms``) for the others. They never wait past a checkpoint: a
snapshot holds the judge's state.
"""

from __future__ import annotations

from aiokafka import TopicPartition

from modelmedic.config import load_settings
from modelmedic.detection.plane import DetectionPlane
from modelmedic.events import InferenceEvent, encode
from modelmedic.testing import FakeConsumer, Record, offline_plane

T0 = 1_767_225_600_000


def _plane(judge_batch_ms: int, partitions: int = 2, catching_up: bool = False) -> tuple[DetectionPlane, list[list]]:
    """An offline plane spying on its judge; ``catching_up``: a poll's worth of records waits behind each batch."""
    settings = load_settings()
    settings = settings.model_copy(update={"detection": settings.detection.model_copy(
        update={"judge_batch_ms": judge_batch_ms, "quality": False})})
    lag = FakeConsumer(lambda tp: plane.parts[tp.partition].next_offset + settings.kafka.max_poll_records)
    plane = offline_plane(settings, partitions, consumer=lag if catching_up else None)
    calls: list[list] = []
    judge_in_turns = plane.judge.judge_in_turns

    async def spy(rounds, rows):
        calls.extend([(cw.source, cw.window) for cw in cws] for cws in rounds)  # one entry per round
        return await judge_in_turns(rounds, rows)

    plane.judge.judge_in_turns = spy  # type: ignore[method-assign]
    return plane, calls


def _batch(plane: DetectionPlane, partition: int, seconds: int) -> dict:
    """``seconds`` windows of one model's traffic on one partition (ten requests a window)."""
    tp = TopicPartition(plane.settings.kafka.topics.inference, partition)
    first = plane.parts[partition].next_offset
    records = [Record(tp.topic, partition, first + i,
                      encode(InferenceEvent(f"m{partition}", "1", "production", f"r{first + i}",
                                            T0 + 100 * (first + i), 5.0, True, 0.5)))
               for i in range(10 * seconds)]
    return {tp: records}


async def test_windows_wait_for_the_other_partitions_then_are_judged_in_one_call() -> None:
    plane, calls = _plane(judge_batch_ms=60_000)
    await plane._process(_batch(plane, 0, 10))
    assert calls == [] and plane.parts[0].windows.closed_through > 0  # closed, not judged yet
    await plane._process(_batch(plane, 1, 10))
    p0, p1 = plane.parts[0].windows, plane.parts[1].windows
    assert calls and all({source for source, _ in call} == {p0, p1} for call in calls)
    # Round r holds the r-th window of each partition: each partition's stay in order.
    assert [[w for source, w in call if source is p0] for call in calls] == \
           [[w] for w in range(p0.closed_through - len(calls) + 1, p0.closed_through + 1)]


async def test_without_batching_each_batch_is_judged_at_once() -> None:
    plane, calls = _plane(judge_batch_ms=0)
    await plane._process(_batch(plane, 0, 10))
    assert calls and all({source for source, _ in call} == {plane.parts[0].windows} for call in calls)


async def test_a_checkpoint_judges_what_waits() -> None:
    plane, calls = _plane(judge_batch_ms=60_000)
    await plane._process(_batch(plane, 0, 10))
    assert calls == []
    await plane._checkpoint([0])
    assert plane._unjudged == {}
    # The snapshot's judge rows are those of the judged windows: the same as judging at once.
    reference, reference_calls = _plane(judge_batch_ms=0)
    await reference._process(_batch(reference, 0, 10))
    assert [[w for _, w in call] for call in calls] == [[w for _, w in call] for call in reference_calls]
    slots, groups = list(plane.parts[0].windows.keys), list(plane.parts[0].windows.group_keys)
    assert repr(plane.judge.rows(slots, groups)) == repr(reference.judge.rows(slots, groups))


async def test_while_catching_up_windows_wait_for_batches_not_for_the_clock() -> None:
    """A consumer a poll or more behind judges every partition together even with no time
    budget: the windows wait for up to one batch per partition."""
    plane, calls = _plane(judge_batch_ms=0, partitions=3, catching_up=True)
    await plane._process(_batch(plane, 0, 10))
    await plane._process(_batch(plane, 1, 10))
    assert calls == []
    await plane._process(_batch(plane, 2, 10))
    assert calls and all(len(call) == 3 for call in calls)
    # A partition that closes nothing does not hold the others back for longer than that.
    for _ in range(3):
        await plane._process(_batch(plane, 0, 10))
    assert plane._unjudged == {} and {len(call) for call in calls[-7:]} == {1}


async def test_while_catching_up_only_rounds_every_partition_has_are_judged() -> None:
    """Partitions bring different numbers of windows per batch; the extra ones wait for the
    others' next batch, so every judge call still covers every partition."""
    plane, calls = _plane(judge_batch_ms=0, partitions=2, catching_up=True)
    p0, p1 = plane.parts[0].windows, plane.parts[1].windows
    await plane._process(_batch(plane, 0, 20))
    await plane._process(_batch(plane, 1, 8))
    assert calls and all(len(call) == 2 for call in calls)
    judged = len(calls)
    waiting = [w for _, _, shut in plane._unjudged.values() for w in shut]  # shut, not closed yet
    assert waiting and all(state.windows is p0 for state, _, _ in plane._unjudged.values())
    await plane._process(_batch(plane, 1, 12))
    assert all(len(call) == 2 for call in calls[judged:]) and len(calls) > judged
    # Each partition's windows were judged in order, none twice, none skipped.
    for windows in (p0, p1):
        seen = [w for call in calls for source, w in call if source is windows]
        assert seen == list(range(seen[0], seen[0] + len(seen)))
    # The windows that waited were judged with the second partition's next batch.
    assert set(waiting) <= {w for call in calls[judged:] for source, w in call if source is p0}


async def test_while_catching_up_a_partition_that_brought_nothing_does_not_break_the_rounds() -> None:
    """When the wait for a partition that brought no window is over, the others' windows are judged
    in the rounds they all have; the extra ones of a partition that ran ahead in event time wait on
    (judged alone, each would be a round of its own)."""
    plane, calls = _plane(judge_batch_ms=0, partitions=3, catching_up=True)
    p0, p1, p2 = (plane.parts[p].windows for p in range(3))
    await plane._process(_batch(plane, 0, 20))
    await plane._process(_batch(plane, 1, 8))
    assert calls == []
    await plane._process(_batch(plane, 0, 10))  # a third batch without partition 2: the wait is over
    assert calls and all({source for source, _ in call} == {p0, p1} for call in calls)
    waiting = [w for _, _, shut in plane._unjudged.values() for w in shut]
    assert len(waiting) > 15 and all(state.windows is p0 for state, _, _ in plane._unjudged.values())
    judged = len(calls)
    await plane._process(_batch(plane, 2, 30))
    await plane._checkpoint([0, 1, 2])  # judges everything that waits
    assert plane._unjudged == {} and set(waiting) <= {w for call in calls[judged:] for source, w in call
                                                      if source is p0}
    assert all(len(call) == 2 for call in calls[judged:judged + len(waiting)])  # with partition 2's windows
    for windows in (p0, p1, p2):  # each partition's windows in order, none twice, none skipped
        seen = [w for call in calls for source, w in call if source is windows]
        assert seen == list(range(seen[0], seen[0] + len(seen)))

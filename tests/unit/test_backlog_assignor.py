"""Partitions shared by backlog, sticky and co-partitioned (modelmedic.kafka.BacklogAssignor), and the
detection plane going on from memory with the partitions a rebalance hands back; on the real broker
with two planes: tests/integration/test_scaleout_real.py."""

from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import CommitFailedError

from modelmedic.config import load_settings
from modelmedic.detection.plane import DetectionPlane, _Rebalance
from modelmedic.kafka import BacklogAssignor, share_by_backlog
from modelmedic.testing import FakeConsumer, offline_plane


def test_a_joining_member_takes_half_and_the_other_keeps_the_rest():
    assert share_by_backlog(list(range(6)), {"a": dict.fromkeys(range(6), 0), "b": {}}) == {"a": [0, 1, 2],
                                                                                             "b": [3, 4, 5]}


def test_a_member_with_drained_partitions_is_given_backlog_not_a_count():
    """Range would split 3 + 3, leaving a drained member idle while the other has 2,400 records to go."""
    shares = share_by_backlog(list(range(6)), {"a": {0: 0, 1: 0, 2: 0, 3: 800}, "b": {4: 800, 5: 800}})
    behind = {0: 0, 1: 0, 2: 0, 3: 800, 4: 800, 5: 800}
    loads = sorted(sum(behind[p] for p in ps) for ps in shares.values())
    assert loads == [800, 1600] and sorted(shares["a"] + shares["b"]) == list(range(6))


def test_with_no_backlog_the_split_is_by_count_and_a_member_keeps_what_it_had():
    shares = share_by_backlog(list(range(6)), {"a": {1: 0, 3: 0, 5: 0}, "b": {0: 0, 2: 0, 4: 0}, "c": {}})
    assert {m: len(ps) for m, ps in shares.items()} == {"a": 2, "b": 2, "c": 2}
    assert set(shares["a"]) <= {1, 3, 5} and set(shares["b"]) <= {0, 2, 4}


def test_partition_p_of_every_topic_goes_to_one_member_and_lags_are_reported_for_the_next_join():
    class Cluster:
        def partitions_for_topic(self, topic):
            return set(range(4))

    a, b = BacklogAssignor(), BacklogAssignor()
    a.on_assignment(ConsumerProtocolMemberAssignment(0, [("in", [0, 1, 2, 3]), ("labels", [0, 1, 2, 3])], b""))
    a.lag = {TopicPartition("in", 0): 900, TopicPartition("labels", 0): 100, TopicPartition("in", 3): 10}
    members = {"a": a.metadata(["in", "labels"]), "b": b.metadata(["in", "labels"])}
    assignment = a.assign(Cluster(), members)
    partitions = {m: {(tp.topic, tp.partition) for tp in x.partitions()} for m, x in assignment.items()}
    for p in range(4):
        assert sum(("in", p) in ps and ("labels", p) in ps for ps in partitions.values()) == 1
    assert {p for t, p in partitions["a"]} == {0}  # 1,000 records behind: as much as the other three together


class Group(FakeConsumer):
    """A consumer whose group holds ``assigned`` and takes commits (or refuses them: ``refuse``)."""

    def __init__(self, assigned: set[TopicPartition], refuse: bool = False) -> None:
        super().__init__()
        self.assigned, self.refuse, self.seeks = assigned, refuse, {}

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def commit(self, offsets) -> None:
        if self.refuse:
            raise CommitFailedError("the group rebalanced without us")

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp] = offset


async def handover(refuse: bool, assigned: set[int]) -> tuple[DetectionPlane, dict, list[int], list[list[int]]]:
    """Revoke a two-partition plane's partitions, then assign it ``assigned``: the plane, the states it
    held, the seeks, and the partitions the state topic was read for."""
    settings = load_settings(windows={"idle_close_ms": 600_000})
    topic = settings.kafka.topics.inference
    group = Group({TopicPartition(topic, p) for p in (0, 1)}, refuse)
    plane = offline_plane(settings, partitions=2, consumer=group)
    for p, state in plane.parts.items():
        state.next_offset = 100 + p
    before = dict(plane.parts)
    restored: list[list[int]] = []

    async def restore(partitions: list[int]) -> None:
        restored.append(partitions)
        for p in partitions:
            plane.parts[p] = plane.fresh_partition()

    plane._restore = restore  # type: ignore[method-assign]
    listener = _Rebalance(plane)
    await listener.on_partitions_revoked(set(group.assigned))
    await listener.on_partitions_assigned({TopicPartition(topic, p) for p in assigned})
    return plane, before, group.seeks, restored


async def test_a_partition_handed_back_goes_on_from_memory_and_one_that_moved_is_let_go():
    plane, before, seeks, restored = await handover(refuse=False, assigned={1, 2})
    assert plane.parts[1] is before[1] and 0 not in plane.parts
    assert seeks[TopicPartition(plane.settings.kafka.topics.inference, 1)] == 101
    assert restored == [[2]]


async def test_after_a_refused_commit_nothing_is_kept_in_memory():
    """The group moved on without us: another member may have taken the partition meanwhile."""
    plane, before, seeks, restored = await handover(refuse=True, assigned={1})
    assert plane.parts[1] is not before[1] and restored == [[1]] and not seeks

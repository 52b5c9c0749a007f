"""Partitions shared by backlog, sticky and co-partitioned (modelmedic.kafka.BacklogAssignor); on the
real broker with two consumers: tests/integration/test_scaleout_real.py."""

from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from modelmedic.kafka import BacklogAssignor, share_by_backlog


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

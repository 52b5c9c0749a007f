"""The detection plane's consumer gets aiokafka's own records; every other consumer still gets ConsumerRecords."""

from __future__ import annotations

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.consumer import fetcher
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords

from modelmedic.kafka import as_fetched

TP = TopicPartition("inference", 3)


def _fetched(value_deserializer, base_offset: int = 40, fetch_offset: int = 41) -> list:
    """Three records fetched from offset ``base_offset``, read from ``fetch_offset`` on, as aiokafka's fetcher builds them."""
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for i in range(3):
        builder.append(i, timestamp=1_700_000_000_000 + i, key=b"model-%d" % i, value=b'{"n": %d}' % i, headers=[])
    buffer = bytearray(builder.build())
    buffer[:8] = base_offset.to_bytes(8, "big")  # the broker stamps the batch's base offset
    records = fetcher.PartitionRecords(TP, MemoryRecords(bytes(buffer)), [], fetch_offset, None, value_deserializer,
                                       True, fetcher.READ_UNCOMMITTED)
    got = list(records)
    assert records.next_fetch_offset == base_offset + 3, "the position moves past the batch either way"
    return got


def test_the_plane_gets_the_records_as_fetched():
    got = _fetched(as_fetched)
    assert not any(isinstance(r, ConsumerRecord) for r in got), "no ConsumerRecord built per record"
    assert [(r.offset, r.key, r.value) for r in got] == [(41, b"model-1", b'{"n": 1}'), (42, b"model-2", b'{"n": 2}')]


def test_other_consumers_still_get_consumer_records():
    got = _fetched(None)
    assert all(isinstance(r, ConsumerRecord) for r in got)
    assert [(r.topic, r.partition, r.offset, r.value) for r in got] == [("inference", 3, 41, b'{"n": 1}'),
                                                                        ("inference", 3, 42, b'{"n": 2}')]

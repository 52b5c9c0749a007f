"""Memory bounded by the live series, with a cap (issue 17 item 4).

1M distinct model names took the service from 157 MB to 1,343 MB, and it stayed there
after every one of them expired: the native decoder numbered every name ever seen and
never let one go. Now expiry releases a series everywhere (windows, judge rows, the
decoder's table), and at most ``detection.max_series`` series are tracked at once.
"""

from __future__ import annotations

from aiokafka import TopicPartition

from modelmedic import metrics
from modelmedic.config import load_settings
from modelmedic.detection.plane import DetectionPlane
from modelmedic.events import InferenceEvent, encode
from modelmedic.testing import Record, offline_plane

T0 = 1_767_225_600_000
TTL = 5


def _plane(partitions: int = 1, **detection: object) -> DetectionPlane:
    settings = load_settings(windows={"series_ttl_s": TTL, "idle_close_ms": 600_000},
                             detection={"quality": False, **detection})
    return offline_plane(settings, partitions)


async def _feed(plane: DetectionPlane, partition: int, events: list[tuple[str, str, int]]) -> None:
    """(model, version, ts) events on one partition, after the records it already has."""
    state = plane.parts[partition]
    tp = TopicPartition(plane.settings.kafka.topics.inference, partition)
    records = [Record(tp.topic, partition, state.next_offset + i,
                      encode(InferenceEvent(model, version, "production", f"r{i}", ts, 5.0, True, 0.5)), model.encode())
               for i, (model, version, ts) in enumerate(events)]
    for i in range(0, len(records), 5000):
        await plane._process({tp: records[i:i + 5000]})


def _keeper(first_window: int, windows: int) -> list[tuple[str, str, int]]:
    """One model's traffic over ``windows`` windows: it moves event time on and expiry with it."""
    return [("keeper", "1", T0 + w * 1000 + 500) for w in range(first_window, first_window + windows)]


def _sizes(plane: DetectionPlane) -> dict[str, int]:
    windows = plane.parts[0].windows
    return {"decoder": len(plane.decoder), "names": sum(name is not None for name in plane.decoder.series),
            "slot_of": len(windows.slot_of), "keys": len(windows.keys), "last_window": len(windows.last_window),
            "groups": len(windows.group_of), "cached": int((windows._by_series[1] >= 0).sum())}


async def test_expired_series_are_released_everywhere_the_decoder_included() -> None:
    plane = _plane()
    flood = [(f"flood-{i}", "1", T0 + 100) for i in range(20_000)]
    await _feed(plane, 0, flood)
    assert _sizes(plane)["decoder"] == 20_000 and len(plane.parts[0].windows.keys) == 20_000
    await _feed(plane, 0, _keeper(1, 70))  # expiry runs every 60 windows; the flood is silent for > TTL
    assert _sizes(plane) == dict.fromkeys(("decoder", "names", "slot_of", "keys", "last_window", "groups", "cached"), 1)
    assert len(plane.pool.free_slots) == 20_000  # slots go back to the pool, reused by the next series
    # A name back after expiry gets a (reused) number and a slot of its own.
    await _feed(plane, 0, [("flood-7", "1", T0 + 71_000)])
    assert plane.parts[0].windows.slot_of.keys() == {("keeper", "1", "production"), ("flood-7", "1", "production")}
    assert _sizes(plane)["decoder"] == 2


async def test_beyond_max_series_new_series_are_counted_and_dropped_until_others_expire() -> None:
    plane = _plane(max_series=100)
    refused, created = metrics.SERIES_REFUSED._value.get(), metrics.SERIES_CREATED._value.get()
    events = [(f"m{i}", "1", T0 + 100 + j) for i in range(150) for j in range(2)]
    await _feed(plane, 0, events)
    assert len(plane.parts[0].windows.keys) == len(plane.decoder) == 100
    assert metrics.SERIES_REFUSED._value.get() - refused == 100  # 50 series over the cap, 2 records each
    assert metrics.SERIES_CREATED._value.get() - created == 100
    assert plane.processed == len(events)
    assert {key[0] for key in plane.parts[0].windows.slot_of} == {f"m{i}" for i in range(100)}
    # The guard's refused records still move event time on: the silent series expire, and
    # there is room again (a partition fed only refused records would otherwise be stuck).
    await _feed(plane, 0, _keeper(1, 70))
    assert metrics.SERIES_REFUSED._value.get() - refused == 170 and not plane.parts[0].windows.keys
    await _feed(plane, 0, [("late-comer", "1", T0 + 71_000)])
    assert set(plane.parts[0].windows.slot_of) == {("late-comer", "1", "production")}


async def test_a_number_the_decoder_gives_again_never_feeds_another_partitions_series() -> None:
    """A model seen on two partitions (a key that differs from its model) has one decoder number;
    when one partition expires it, the number may go to a new series: the other partition must
    still file its records under its own series."""
    plane = _plane(partitions=2)
    await _feed(plane, 0, [("twice", "1", T0 + 100)])
    await _feed(plane, 1, [("twice", "1", T0 + 100)] + _keeper(1, 100))
    await _feed(plane, 0, _keeper(1, 70))  # partition 0 expires "twice"; partition 1 still serves it
    await _feed(plane, 0, [("newcomer", "1", T0 + 71_000)])  # takes the number "twice" had
    await _feed(plane, 1, [("twice", "1", T0 + 101_500)])
    one = plane.parts[1].windows
    assert set(one.slot_of) == {("twice", "1", "production"), ("keeper", "1", "production")}
    assert one.last_window[one.slot_of[("twice", "1", "production")]] == (T0 + 101_500) // 1000
    assert set(plane.parts[0].windows.slot_of) == {("keeper", "1", "production"), ("newcomer", "1", "production")}


async def test_a_flood_of_versions_of_one_model_is_linear() -> None:
    """Each new version looks for its predecessor among the model's latest versions only."""
    plane = _plane()
    await _feed(plane, 0, [("m", str(v), T0 + 100) for v in range(20_000)])
    windows = plane.parts[0].windows
    assert len(windows.keys) == 20_000 and len(windows.group_of) == 1
    assert len(windows.born) == 19_999

"""The detection plane's batch hot path gives exactly what the per-record path gives.

``RecordDecoder.decode`` (the native decoder into columns, msgspec for the records it
leaves) against ``decode_inference`` per record, and ``PartitionWindows.add_columns`` over
whole batches against ``PartitionWindows.add`` (one record) event by event: same
events, same rejections and reasons, same windows, late records and series.
"""

from __future__ import annotations

import copy
import math
import random
import zlib
from dataclasses import dataclass

import numpy as np
import pytest
from test_events import INFERENCE_CASES, NOT_JSON, inference

from modelmedic.detection.columns import InferenceColumns, RecordDecoder
from modelmedic.events import MAX_RECORD_BYTES, InferenceEvent, Rejected, decode_inference
from modelmedic.detection.windows import PartitionWindows

BAD: list[bytes | None] = [raw for _, raw, reason in INFERENCE_CASES if reason is not None]
BAD += [damage(inference()) for _, damage in NOT_JSON]
BAD += [None, b" " * (MAX_RECORD_BYTES + 1), inference(model="x" * MAX_RECORD_BYTES),
        inference().replace(b'"fraud"', b'"fr\\udc80d"'), inference() + b",", b"," + inference(),
        inference().replace(b'"ok": true', b'"ok": 1'), inference().replace(b'"ts": ', b'"ts": 1.5, "x": '),
        inference(ts=1.7e12), inference(prediction=[0.1, None]), inference(prediction=True),
        inference(prediction={"a": 1}), inference(role="Production"), b"[]", b"null", b"\xef\xbb\xbf" + inference()]
GOOD: list[bytes] = [raw for _, raw, reason in INFERENCE_CASES if reason is None]
GOOD += [b" " + inference() + b"\n", inference(latency_ms=-0.0), inference(ts=1),
         inference(model="x" * (MAX_RECORD_BYTES - len(inference()) + len("fraud"))),
         inference().replace(b'"fraud"', b'"fr\\u00e4ud"'), inference(model="m\u00e9t\u00e9o", request_id="\u00fc-1"),
         inference().replace(b'"ok": true', b'"ok": true, "model": "again"'),  # a repeated field: msgspec keeps the last
         inference().replace(b'{', b'{"extra":{"deep":[1,2,{"x":null}]},"big":1e400,'),
         inference(prediction=3), inference(prediction=[1, 2.5]), inference(prediction="cat"), inference(prediction=None),
         inference(latency_ms=5), inference(ts=4_102_444_799_999)]
GOOD += [inference(request_id=f"req-{i}", role=role, prediction=prediction)  # in and out of the sample
         for i, (role, prediction) in enumerate([(r, p) for r in ("production", "canary", "shadow")
                                                 for p in (0.5, "cat", [0.2, 0.8], None)])]


def fields(event: InferenceEvent) -> tuple:
    return tuple(getattr(event, f) for f in InferenceEvent.__struct_fields__)


def per_record(values: list[bytes | None]) -> tuple[dict[int, InferenceEvent], list]:
    events, rejected = {}, []
    for i, raw in enumerate(values):
        result = decode_inference(raw)
        if isinstance(result, Rejected):
            rejected.append((i, result))
        else:
            events[i] = result
    return events, rejected


def rows(cols: InferenceColumns) -> list[tuple]:
    """One comparable tuple per decoded record (NaN prediction: None)."""
    return [(i, cols.names[s], ts, lat, ok, None if math.isnan(p) else p)
            for i, s, ts, lat, ok, p in zip(*(column.tolist() for column in cols.arrays()))]


def expected_row(i: int, e: InferenceEvent) -> tuple:
    numeric = e.prediction if isinstance(e.prediction, (int, float)) else None
    return (i, (e.model, e.version, e.role), e.ts, e.latency_ms, e.ok, numeric)


def assert_same_decoding(values: list[bytes | None], decoder: RecordDecoder | None = None) -> None:
    decoder = decoder or RecordDecoder(sample_every=SAMPLE_EVERY)
    cols, rejected, refused, _ = decoder.decode(values)
    assert not refused  # no cap
    want_events, want_rejected = per_record(values)
    assert rows(cols) == [expected_row(i, e) for i, e in want_events.items()]
    assert rejected == want_rejected
    # The quality monitor's sample: by request id, production and canary only, as msgspec decodes them.
    assert [(i, cols.names[s], ts, ok, rid, pred) for i, s, ts, ok, rid, pred in cols.sample] == [
        (i, (e.model, e.version, e.role), e.ts, e.ok, e.request_id, e.prediction) for i, e in want_events.items()
        if e.role != "shadow" and zlib.crc32(e.request_id.encode()) % SAMPLE_EVERY == 0]
    assert all(type(row[5]) is type(want_events[row[0]].prediction) for row in cols.sample)


SAMPLE_EVERY = 2
"""Half the requests (by id) in the quality sample: both sides of the rule are exercised."""


def test_every_single_record_batch_matches() -> None:
    for raw in GOOD + BAD:
        assert_same_decoding([raw])


def test_ordinary_records_never_leave_the_native_decoder() -> None:
    """The fast path is taken: plain, escaped, unicode and extended records are all native."""
    native = RecordDecoder()._native
    plain = [raw for raw in GOOD if b'"model": "again"' not in raw]  # a repeated field is msgspec's to resolve
    _, _, fallback, *_ = native.decode(plain)
    assert fallback == []
    _, _, fallback, *_ = native.decode(BAD)
    assert fallback == list(range(len(BAD)))


def test_bad_records_anywhere_in_a_batch_are_found_with_their_reasons() -> None:
    rng = random.Random(5)
    decoder = RecordDecoder(sample_every=SAMPLE_EVERY)  # one decoder across batches: series numbers carry over
    for _ in range(300):
        n = rng.randint(0, 40)
        values = [rng.choice(GOOD) if rng.random() < 0.7 else rng.choice(BAD) for _ in range(n)]
        assert_same_decoding(values, decoder)
    assert_same_decoding(BAD, decoder)
    assert_same_decoding([], decoder)


def test_fragments_that_would_form_valid_json_together_are_each_rejected() -> None:
    good = inference()
    values = [good[:20], good[20:], good + b"," + good, b"[" + good, good + b"]", good]
    cols, rejected, _, _ = RecordDecoder().decode(values)
    assert [i for i, _ in rejected] == [0, 1, 2, 3, 4] and cols.index.tolist() == [5]


def test_random_damage_never_raises_and_matches() -> None:
    """The native decoder accepts only what msgspec accepts, to the same values, under mutation."""
    rng = random.Random(2)
    pieces = [b'"', b"\\", b"\\u0000", b"\x00", b"\xff", b"1e999", b"-", b"null", b",", b"}", b"]", b"\xc3\xa9", b" ",
              b'"ts":', b'"model":""', b"0.0", b"true"]
    values = []
    for _ in range(3000):
        raw = bytearray(rng.choice(GOOD))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(raw))
            if rng.random() < 0.5:
                raw[at] = rng.randrange(256)
            else:
                raw[at:at + rng.randint(0, 3)] = rng.choice(pieces)
        values.append(bytes(raw))
    for i in range(0, len(values), 100):
        assert_same_decoding(values[i:i + 100])


# -- add_columns == add, one by one -----------------------------------------------------------


@dataclass
class Record:
    offset: int


def state(pw: PartitionWindows) -> tuple:
    opened = {w: sorted((s, lat, ok, None if math.isnan(p) else p)
                        for s, lat, ok, p in zip(*(np.concatenate(c).tolist() for c in zip(*chunks))))
              for w, chunks in pw.open.items()}
    return (opened, pw.first_offset, pw.max_ts, pw.closed_through, pw.late, pw.slot_of, pw.keys,
            pw.group_of_slot, pw.group_of, pw.group_keys, pw.last_window)


def test_add_columns_is_add_event_by_event() -> None:
    rng = random.Random(3)
    size, t0 = 1000, 1_700_000_000_000
    one, many = PartitionWindows(size, 2000, 300), PartitionWindows(size, 2000, 300)
    decoder = RecordDecoder()
    offset, now = 0, t0
    for batch in range(60):
        events, records = [], []
        for _ in range(rng.randint(0, 300)):
            now += rng.randint(0, 40)
            ts = now - rng.choice([0, 0, 0, 500, 2500, 6000])  # some out of order, some late
            pred = rng.choice([rng.random(), 2, "cat", [0.1, 0.9], None, -0.0])
            event = InferenceEvent(f"m{rng.randint(0, 4)}", f"v{rng.randint(0, 2)}", rng.choice(["production", "canary"]),
                                   "r", ts, rng.expovariate(0.1), rng.random() > 0.05, pred)
            if rng.random() >= 0.03:  # the others: rejected records, in no column
                events.append((len(records), event))
            records.append(Record(offset))
            offset += rng.choice([1, 1, 1, 2])  # gaps: compacted or transaction markers
        want_late = [i for i, e in events if not one.add(e, records[i].offset)]
        cols = decoder.columns([e for _, e in events])
        cols = InferenceColumns(np.array([i for i, _ in events], dtype=np.uint32), *cols.arrays()[1:], cols.names, [])
        late, future = many.add_columns(cols, records)
        assert (late.tolist(), future.tolist()) == (want_late, [])
        assert state(many) == state(one)
        through = one.ready_through()
        for a, b in zip(one.close_through(through), many.close_through(through), strict=True):
            assert (a.source, b.source) == (one, many)
            assert all(np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True) for f in vars(a) if f not in ("source", "closed_at_ms"))
        assert state(many) == state(one)
    assert one.late > 0 and len(one.slot_of) > 10


def test_add_columns_on_an_empty_batch_changes_nothing() -> None:
    pw = PartitionWindows(1000, 2000, 300)
    before = copy.deepcopy(state(pw))
    late, future = pw.add_columns(RecordDecoder().columns([]), [])
    assert late.size == future.size == 0
    assert state(pw) == before


# -- Episodes.step's quiet-window shortcut == the full update --------------------------------


def reference_step(ep, slots, anomalous, judged, kind, window, idle=None):
    """Episodes.step without the shortcut (the full update, as written before it)."""
    idle = ~judged if idle is None else idle
    firing = ep.firing[slots]
    bad = np.where(judged, np.where(anomalous, ep.bad[slots] + 1, 0), ep.bad[slots])
    good = np.where(judged, np.where(anomalous, 0, ep.good[slots] + 1), ep.good[slots] + (firing & idle))
    start = ~firing & (bad >= ep.trigger)
    end = firing & (good >= ep.recover)
    bad = np.where(end, 0, bad)
    ep.bad[slots], ep.good[slots] = bad, good
    ep.firing[slots] = (firing | start) & ~end
    started, ended = slots[start], slots[end]
    ep.onset[started] = window - ep.trigger + 1
    ep.kind[started] = kind[start]
    return started, ended


def test_episode_step_shortcut_matches_the_full_update() -> None:
    from modelmedic.detection.judge import Episodes

    rng = np.random.default_rng(4)
    for trial in range(400):
        n = int(rng.integers(0, 12))
        fast, full = Episodes(2, 3), Episodes(2, 3)
        for ep in (fast, full):
            ep.ensure(16)
        # Arbitrary states, including counts a smaller trigger setting leaves behind after a restart.
        size = fast.bad.size
        bad, good, firing = rng.integers(0, 4, size), rng.integers(0, 5, size), rng.random(size) < 0.2
        for ep in (fast, full):
            ep.bad[:], ep.good[:], ep.firing[:] = bad, good, firing
        for window in range(5):
            slots = np.sort(rng.choice(size, n, replace=False)).astype(np.int64)
            quiet = rng.random() < 0.6
            anomalous = np.zeros(n, bool) if quiet else rng.random(n) < 0.3
            judged, idle = rng.random(n) < 0.8, rng.random(n) < 0.5
            kind = rng.integers(0, 2, n).astype(np.int8)
            args = (slots, anomalous, judged, kind, window)
            got = fast.step(*args, idle=idle if trial % 2 else None)
            want = reference_step(full, *args, idle=idle if trial % 2 else None)
            assert all(np.array_equal(g, w) for g, w in zip(got, want))
            for name in ("bad", "good", "firing", "onset", "kind"):
                assert np.array_equal(getattr(fast, name), getattr(full, name)), name

"""Inference records to columns: the detection plane's decode step.

A batch of one partition's records becomes a few numpy arrays (:class:`InferenceColumns`),
so everything downstream (windows, quantiles, the quality sample) is a handful of numpy
calls per batch instead of Python code per record. The decoding itself is native
(``native/src/lib.rs``, built into ``modelmedic._columns``): per record it parses the
JSON, checks the contract and appends to the columns, with no Python object per record.

msgspec stays the authority on the contract. The native decoder accepts a strict subset
of what :func:`~modelmedic.events.decode_inference` accepts, to the same values; every
record it leaves (invalid, oversized, or only unusual, such as a repeated field) is
decoded here with msgspec, which gives either the event or the dead-letter reason.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import NamedTuple

import msgspec
import numpy as np

from modelmedic import metrics
from modelmedic._columns import ColumnDecoder
from modelmedic.events import MAX_RECORD_BYTES, MAX_TS_MS, InferenceEvent, Rejected, decode_inference

_DTYPES = (np.uint32, np.uint32, np.int64, np.float64, np.bool_, np.float64)


@dataclass(frozen=True)
class InferenceColumns:
    """Valid inference records of one batch, one array entry per record, in batch order."""

    index: np.ndarray
    """Position of the record in the batch (uint32)."""
    series: np.ndarray
    """Series number of its (model, version, role): :attr:`RecordDecoder.series` names it."""
    ts: np.ndarray
    latency_ms: np.ndarray
    ok: np.ndarray
    prediction: np.ndarray
    """A numeric prediction, or NaN (a label, class probabilities, or none)."""
    names: list[tuple[str, str, str] | None]
    """Series number -> (model, version, role): the decoder's numbering (shared; None: a free number)."""
    sample: list[tuple[int, int, int, bool, str, object]]
    """``(index, series, ts, ok, request_id, prediction)`` of the production and canary
    records in the quality monitor's sample (:class:`RecordDecoder`), in batch order; the
    prediction as msgspec decodes it. Only these become Python objects."""
    features: list[tuple[int, int, int, bytes]] = field(default_factory=list)
    """``(index, series, ts, JSON text)`` of the ``features`` of the sampled records that carry
    them (not null), in batch order, unchecked: the input monitor decodes them
    (``modelmedic.detection.features``). A request outside the sample never pays for its features."""

    def __len__(self) -> int:
        return self.index.size

    def arrays(self) -> list[np.ndarray]:
        """The arrays, in field order (not ``names``, ``sample`` and ``features``)."""
        return [getattr(self, name) for name in _ARRAYS]

    def take(self, which: np.ndarray) -> InferenceColumns:
        """The records selected by a boolean mask or an index array (the sample as it is)."""
        return InferenceColumns(*(column[which] for column in self.arrays()), self.names, self.sample, self.features)


_ARRAYS = ("index", "series", "ts", "latency_ms", "ok", "prediction")


UNLIMITED = 2**32 - 1
"""No cap on the series a decoder numbers at once."""


@dataclass(frozen=True)
class Refused:
    """Valid records the decoder refused: their series would be one over its ``max_series``."""

    index: list[int]
    """Batch positions, ascending."""
    ts: np.ndarray
    """Their event times (int64, in the order of ``index``): they still move event time on, or a
    partition whose traffic is all refused would never close the windows that expire series."""

    def __len__(self) -> int:
        return len(self.index)


class Decoded(NamedTuple):
    """One batch, decoded (:meth:`RecordDecoder.decode`)."""

    columns: InferenceColumns
    """The valid records."""
    rejected: list[tuple[int, Rejected]]
    """(batch position, reason) of the invalid records."""
    refused: Refused
    """Valid records of a series over ``max_series``."""
    misrouted: list[int]
    """Batch positions of valid records whose Kafka key is not their model (when keys were
    given): the producer's partitioner may put such a model's records on several
    partitions, and split its state between them."""


class RecordDecoder:
    """Decodes inference records to columns; numbers every live series it sees.

    ``sample_every``: the quality monitor's sample (``QualityMonitor.label_sample_every``),
    one request in that many by a hash of its id, so a request's production and canary
    predictions and its label are in or out together; 0 (the default): no sample.
    Series numbers are this decoder's: the windows keep them only as a cache in front of
    their own (model, version, role) -> slot map, and never snapshot them. The owner
    hands back the numbers of expired series (:meth:`forget`), so the table holds live
    series only; at most ``max_series`` are numbered at once, and a record of one more
    is refused (:meth:`decode`): a flood of new names costs no memory.
    """

    def __init__(self, sample_every: int = 0, max_series: int = UNLIMITED) -> None:
        self.sample_every = sample_every
        self._native = ColumnDecoder(MAX_TS_MS, MAX_RECORD_BYTES, sample_every, max_series)
        self.series: list[tuple[str, str, str] | None] = []
        """Series number -> (model, version, role); None: the number is free."""

    def __len__(self) -> int:
        """Series numbered now."""
        return len(self._native)

    def decode(self, values: list[bytes | None], keys: list[bytes | None] | None = None) -> Decoded:
        """Decode a batch of record values (and check their Kafka ``keys``, when given)."""
        buffers, sample, fallback, new, refused, refused_ts, misrouted, features = self._native.decode(values, keys)
        self._name(new)
        columns = InferenceColumns(*(np.frombuffer(b, dtype) for b, dtype in zip(buffers, _DTYPES)), self.series, sample,
                                   features)
        refused = Refused(refused, np.frombuffer(refused_ts, np.int64))
        if not fallback:
            return Decoded(columns, [], refused, misrouted)
        rejected: list[tuple[int, Rejected]] = []
        accepted: list[tuple[int, InferenceEvent]] = []
        for i in fallback:
            event = decode_inference(values[i])
            if event.__class__ is Rejected:
                rejected.append((i, event))  # type: ignore[arg-type]
            else:
                accepted.append((i, event))  # type: ignore[arg-type]
        if accepted:
            if keys is not None:
                misrouted = sorted(misrouted + [i for i, e in accepted if keys[i] != e.model.encode()])
            columns, more = self._merge(columns, accepted)
            if more:
                pairs = sorted([*zip(refused.index, refused.ts.tolist()), *more])
                refused = Refused([i for i, _ in pairs], np.array([ts for _, ts in pairs], dtype=np.int64))
        return Decoded(columns, rejected, refused, misrouted)

    def forget(self, numbers: list[int]) -> None:
        """Forget the series of these numbers (they expired): the numbers are handed out again,
        so every holder of a cache of them must drop it (:meth:`PartitionWindows.uncache`)."""
        self._native.forget(numbers)
        for number in numbers:
            self.series[number] = None

    def columns(self, events: Sequence[InferenceEvent]) -> InferenceColumns:
        """Columns of decoded events (indices 0..n-1): tests, and the records msgspec decoded."""
        return self._merge(None, list(enumerate(events)))[0]

    def _name(self, new: list[tuple[int, str, str, str]]) -> None:
        """Record the names of the series just numbered (new numbers, or free ones handed out again)."""
        series = self.series
        for number, model, version, role in new:
            if number == len(series):
                series.append((model, version, role))
            else:
                series[number] = (model, version, role)
        if new:
            metrics.SERIES_CREATED.inc(len(new))

    def _merge(self, columns: InferenceColumns | None,
               events: list[tuple[int, InferenceEvent]]) -> tuple[InferenceColumns, list[tuple[int, int]]]:
        """``columns`` with the events added (in batch order), and (index, ts) of the events refused."""
        numbered = [(i, self._number(e), e) for i, e in events]
        refused = [(i, e.ts) for i, s, e in numbered if s is None]
        if refused:
            numbered = [row for row in numbered if row[1] is not None]
        rows = [(i, s, e.ts, e.latency_ms, e.ok, _numeric(e.prediction)) for i, s, e in numbered]
        extra = [np.array(col, dtype) for col, dtype in zip(zip(*rows), _DTYPES)] if rows else \
            [np.empty(0, dtype) for dtype in _DTYPES]
        k = self.sample_every
        sampled = [(i, s, e) for i, s, e in numbered
                   if k and e.role != "shadow" and not zlib.crc32(e.request_id.encode()) % k]
        sample = [(i, s, e.ts, e.ok, e.request_id, e.prediction) for i, s, e in sampled]
        # As JSON text again, as the native decoder hands them on (rare: these records were odd).
        features = [(i, s, e.ts, msgspec.json.encode(e.features)) for i, s, e in sampled if e.features is not None]
        if columns is None:
            return InferenceColumns(*extra, self.series, sample, features), refused
        merged = [np.concatenate([column, more]) for column, more in zip(columns.arrays(), extra)]
        order = np.argsort(merged[0], kind="stable")  # batch order, as the native rows are
        return InferenceColumns(*(column[order] for column in merged), self.series,
                                sorted(columns.sample + sample, key=itemgetter(0)),
                                sorted(columns.features + features, key=itemgetter(0))), refused

    def _number(self, event: InferenceEvent) -> int | None:
        """The event's series number; None if its series is new and refused (``max_series``)."""
        number, new = self._native.number(event.model, event.version, event.role)
        if new:
            self._name([(number, event.model, event.version, event.role)])
        return number


def _numeric(prediction: object) -> float:
    return float(prediction) if prediction.__class__ in (float, int) else float("nan")

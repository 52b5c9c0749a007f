"""Model-quality monitoring for one partition: the detectors of ``detectors/quality.py``, fed by events.

Latency and error windows cannot see a model that answers fast and wrong; this monitor watches
the answers themselves, four ways, each keyed per model and version:

| detector                    | fed by                                            | anomaly kind (class)             |
|-----------------------------|---------------------------------------------------|----------------------------------|
| ``CanaryDivergence``        | production's and the canary's answer to one request | ``canary_divergence`` (prediction) |
| ``DelayedLabelPerformance`` | a production prediction and its (late) label      | ``label_performance`` (prediction) |
| ``PredictionDrift``         | production predictions vs a reference             | ``drift`` (drift)                |
| ``EstimatedAccuracy``       | production probability vectors (and their labels) | ``estimated_accuracy`` (prediction), ``calibration_gap`` (drift) |

The detection plane calls, for one partition::

    monitor.observe_sampled(rows, names)   # each batch's sampled requests (RecordDecoder's sample)
    monitor.observe_label(label)           # every decoded label event of the same models
    monitor.poll(window_end_ms, active)    # once per closed window -> list[Anomaly]; active:
                                           # (model, version, role) with requests in that window,
                                           # or their slots once monitor.watch(windows)

Why a sample: only one request in ``label_sample_every`` (chosen by a hash of the request id,
the same in every process, so a sampled prediction still meets its canary twin and its label)
is looked at one by one; the others cost that hash. That a version still serves comes from
``active``, which the plane's windows already know, not from every event.

Why joins here: a label names no version, so the pending prediction remembers it; a canary
prediction finds its production twin in the same label join (which holds every sampled
production prediction anyway), and only canary predictions that come before their twin wait
in a join of their own. Shadow predictions are not used.

Baselines, from the most specific source there is, so a new or quiet model is judged from
its first requests: the accuracy baseline is the registry's certification
(:meth:`QualityMonitor.set_baseline`), else the model's previous version's, else the Wilson
lower bound of the version's first ``label_warmup`` labelled outcomes; the drift reference
(and a numeric canary's scale) is the certification run's predictions
(:meth:`QualityMonitor.set_reference`), else the reference of the model's latest other version if the new
version's first ``drift_reference`` predictions match it (an upgrade that predicts as before keeps the day it
learned), else those predictions, learning for a day from the live blocks that began in that day, by hour of
the day too (``drift_reference_s``); the
canary's tolerated disagreement is ``canary_expected_rate``, else the rate learned on a
healthy version of the model (two versions never agree perfectly), else
``canary_prior_rate``. Until a detector has enough observations its state is
``insufficient_data`` (:meth:`QualityMonitor.states`) and it raises nothing.

Records: :meth:`QualityMonitor.poll` returns one ``firing`` record when a decision turns
anomalous and one ``recovered`` record (same id) when it turns back; the detectors' own
hysteresis keeps a measure hovering at its limit from flapping. The id is
``stable_id(model, version, "production", kind, onset_window)`` (``onset_window = ts //
window_size_ms`` of the event that turned the decision), so re-feeding the same events gives
the same ids. A firing version whose production traffic stops for ``idle_recover_ms`` is
recovered ("no longer serving", observed and baseline -1) and forgotten. Evidence
(``observed`` / ``baseline`` / ``score`` in [0, 1]): canary, the disagreement rate of the
CUSUM's run vs the tolerated rate (or the bias in prediction spreads vs half the bias effect),
score ``1 - exp(-LLR)``; labels, accuracy over the CUSUM's run vs the baseline, score
``1 - exp(-LLR)``; drift, PSI vs ``psi_threshold``, score ``1 - p`` of the G-test.
The numbers and summaries are :mod:`~modelmedic.detection.quality_evidence`'s.

Memory is bounded because a partition may see any number of models and request ids: the joins
hold at most ``canary_max_pending`` (canary predictions, and a mirrored model's production
predictions left out of the label join) and ``label_max_pending`` entries (oldest dropped), each
for at most ``canary_join_ms`` / ``label_horizon_ms``, and as many ids of predictions that left the label join
(judged or pushed out), each for at most ``label_horizon_ms``; the label join is shared between models
(:meth:`QualityMonitor._admit`: past half full, a model over its share keeps every 2^j-th of
its predictions, so what is kept can wait for its label); per version, counters and two count arrays
of ``drift_bins + 1`` (no rings of values), and from its first joined label 20 counts of label delays
(:meth:`QualityMonitor.label_delay`: the buckets of ``modelmedic_quality_label_delay_seconds``); at most ``max_models`` models, kept in least
recently active order, so eviction (beyond ``max_models``) and expiry (after
``series_ttl_ms``) take the oldest in O(1) and never scan; at most ``max_versions`` versions
each. Every setting is a field of :class:`modelmedic.config.QualitySettings`; what it costs in
CPU and memory, with the command that measured it, is in docs/benchmarks.md ("The quality
monitor").

Counters (int attributes, for metrics): ``labels_duplicate``, ``labels_orphan`` (no pending
prediction, and none left out by its model's share: a request never seen, or a model no longer
tracked), ``labels_unjoined_thinned`` (no pending prediction, and its model left predictions out of
the join within the last one or two horizons: counted here up to that number; also
``modelmedic_quality_labels_unjoined_thinned_total``), ``labels_missed`` (its prediction was
pushed out by ``label_max_pending``; also ``modelmedic_quality_labels_missed_total``),
``labels_expired`` / ``labels_dropped`` (no label within the horizon / pushed out),
``canary_expired`` / ``canary_dropped`` (no production twin in time / pushed out),
``predictions_skipped`` (failed, no prediction, or a class from a numeric model),
``predictions_thinned`` (sampled production predictions left out of the label join by their
model's share), ``series_evicted``.

The monitor is part of the partition snapshot: after a restore the plane feeds it only
records at or past the offset it had reached (``replay_until``), or replayed requests would
count twice.
"""

from __future__ import annotations

import copy
import time
import zlib
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from typing import TYPE_CHECKING

import msgspec
import numpy as np

from modelmedic import metrics
from modelmedic._columns import QualityTable
from modelmedic.config import QualitySettings
from modelmedic.detectors.drift import DriftReference, PredictionDrift
from modelmedic.detectors.estimated import EstimatedAccuracy
from modelmedic.detectors.quality import INSUFFICIENT, CanaryDivergence, Decision, DelayedLabelPerformance, wilson
from modelmedic.detection.packed import Packed, deflate, inflate
from modelmedic.detection.quality_evidence import (CALIBRATION, CANARY, DRIFT, ESTIMATE, LABELS, Transition, anomalies,
                                                   describe, forgotten)
from modelmedic.events import Anomaly, InferenceEvent, LabelEvent

if TYPE_CHECKING:
    from modelmedic.detection.windows import PartitionWindows

_NEVER = 1 << 62
_FULL, _TWIN, _PAIR, _PUT = 1, 2, 3, 4
"""What is left of the row ``QualityTable.step`` stopped at: all of it, the twin join's put, a canary's pairing, the
label join's put."""
_PRODUCTION, _CANARY, _SHADOW = 1, 2, 3
"""What ``QualityTable.bind`` binds a slot to: a production version's row, a canary's model row, a shadow series."""
_REORDER = 256
"""Models moved from the front to the back of the order per poll, at most (see :meth:`QualityMonitor.poll`)."""
TOLERANCE_MAES = 2.0
"""A numeric model's learned label tolerance, in mean absolute errors of its healthy answers."""
IDLE_RECOVER_MIN_MS = 15 * 60_000
"""Default floor of ``idle_recover_ms``: a model serving 0.6 req/s is silent for 5 s one time in
twenty, so five 1 s windows declared its firing versions "no longer serving" (and forgot their
evidence) every few minutes; at 0.01 req/s, 15 silent minutes happen about once in 8,000."""
COUNTERS = ("labels_duplicate", "labels_orphan", "labels_unjoined_thinned", "labels_expired", "labels_dropped",
            "labels_missed", "canary_expired", "canary_dropped", "predictions_skipped", "predictions_thinned",
            "series_evicted")
_DELAY_BOUNDS_MS = tuple(int(s * 1000) for s in metrics.LABEL_DELAY_BUCKETS)
"""Upper bounds of a version's label delay counts (:meth:`QualityMonitor.label_delay`): the histogram's buckets."""
DELAY_QUANTILES = (0.5, 0.95, 0.99)
"""The label delay quantiles a version's view gives (:meth:`QualityMonitor.label_delay`)."""


def _plain(value: object) -> object:
    """msgpack's fallback for a numpy scalar in a join entry (a caller that passes numpy floats as
    predictions or probabilities, as the offline estimate does): its Python value, as it would have
    been pickled before."""
    if isinstance(value, np.generic):
        return value.item()
    raise NotImplementedError(f"a quality join entry holds a {type(value).__name__}, which a snapshot cannot store")


_PACK, _UNPACK = msgspec.msgpack.Encoder(enc_hook=_plain).encode, msgspec.msgpack.Decoder().decode
"""A join's entries to and from their snapshot form (:meth:`_Pending.__getstate__`)."""
JOIN_CHUNK = 256
"""Entries a join encodes together (:meth:`_Pending.chunks`): a chunk is re-encoded when one of its entries
leaves or changes, so smaller chunks re-encode less of a join whose labels come from anywhere in it, and
cost more to check and keep (two lists of references each)."""


class _Pending:
    """Bounded join buffer: request id -> (ts_ms, value), oldest first. ``put`` / ``advance`` return what they drop."""

    def __init__(self, ttl_ms: int, cap: int) -> None:
        self.ttl_ms, self.cap = ttl_ms, cap
        self.items: OrderedDict[object, tuple] = OrderedDict()
        self.now = 0
        self.first_ts = _NEVER
        """Event time of the first entry when last looked at: nothing has expired while it is
        within ``ttl_ms``. When that entry leaves by a join, an out-of-order one behind it may
        outlive ``ttl_ms`` until this one would have expired (``cap`` still bounds the size)."""
        self._chunks: list[tuple[list, list, Packed]] = []
        """(keys, values, their encoding) of the chunks :meth:`chunks` last returned, in order; not snapshotted."""

    def __getstate__(self) -> dict:
        """The snapshot's form: the entries, in order, as compressed msgpack maps of about :data:`JOIN_CHUNK`
        entries each (``chunks``, :meth:`chunks`), which the snapshot carries as they are. The entries are
        decoded JSON values (ids, versions, predictions), so msgpack holds them: probability vectors come
        back as lists, as they went in."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("items", "_chunks")}
        state["chunks"] = self.chunks()
        return state

    def chunks(self) -> list[Packed]:
        """The entries in order, encoded in chunks; only the chunks whose entries changed since the last call
        are encoded again. Entries join at the back and leave from the front (expiry, the cap) or, joined by
        a label or twin, from anywhere; most of a full join sits untouched between two checkpoints, and
        re-encoding all of it made each checkpoint cost more as the join filled (docs/benchmarks.md, "Soak").

        A chunk is reused only where the entries now in its place are its own, the same keys with equal
        values, so the result is the join's encoding whatever happened to it; its last entry, when still
        there, tells where a changed chunk ended, and the changed runs between reused chunks are encoded
        again in chunks of :data:`JOIN_CHUNK`. O(entries) reference comparisons in C, O(changed) encoding.

        The entries are read in the order of the dict under the ``OrderedDict`` (``dict.keys``), ten times
        faster than its linked list (0.7 against 7.6 ms for 50,000): the two orders are one while entries
        are only added, replaced in place and removed, never moved (no ``move_to_end``)."""
        keys, values = list(dict.keys(self.items)), list(dict.values(self.items))
        out: list[tuple[list, list, Packed]] = []
        start = at = slack = 0  # out covers keys[:start]; the next old chunk's entries start at `at`, give or take `slack`
        for old_keys, old_values, blob in self._chunks:
            n = len(old_keys)
            if not slack and keys[at:at + n] == old_keys and values[at:at + n] == old_values:
                _encode(out, keys, values, start, at)
                out.append((old_keys, old_values, blob))
                start = at = at + n
                continue
            try:  # changed: it ends at its last entry, if that is still there
                at, slack = keys.index(old_keys[-1], at, at + slack + n) + 1, 0
            except ValueError:  # its last entry left: where it ends is found with the next chunk's
                slack += n
        _encode(out, keys, values, start, len(keys))
        self._chunks = out
        return [blob for _, _, blob in out]

    def __setstate__(self, state: dict) -> None:
        """Restore :meth:`__getstate__`'s form, or a snapshot's written before it (``packed``: one msgpack list of
        [key, value] pairs; ``flat``: one flat list of ``shape`` values an entry; older, ``items`` as they were)."""
        if "chunks" in state:
            state = dict(state)
            items: OrderedDict[object, tuple] = OrderedDict()
            for blob in state.pop("chunks"):
                items.update((key, tuple(value)) for key, value in _UNPACK(inflate(blob)).items())
            state["items"] = items
        elif "packed" in state:
            state = dict(state)
            state["items"] = OrderedDict((tuple(key), tuple(value)) for key, value in _UNPACK(state.pop("packed")))
        elif "flat" in state:
            state = dict(state)
            flat, (key_width, value_width) = state.pop("flat"), state.pop("shape")
            width = key_width + value_width
            rows = (flat[i:i + width] for i in range(0, len(flat), width or 1))
            state["items"] = OrderedDict((tuple(row[:key_width]), tuple(row[key_width:])) for row in rows)
        self.__dict__.update(state)
        self._chunks = []

    def put(self, key: object, value: tuple) -> object:
        """Add an entry; returns the key of the oldest when the cap pushed it out, else None."""
        items = self.items
        if not items:
            self.first_ts = value[0]
        items[key] = value
        if len(items) > self.cap:
            return items.popitem(last=False)[0]
        return None

    def advance(self, ts: int) -> int:
        """Move event time to ``ts`` (if later) and expire entries older than ``ttl_ms``."""
        if ts > self.now:
            self.now = ts
        limit = self.now - self.ttl_ms
        if self.first_ts >= limit:
            return 0
        items, n = self.items, 0
        while items:
            first = items[next(iter(items))][0]
            if first >= limit:
                self.first_ts = first
                return n
            items.popitem(last=False)
            n += 1
        self.first_ts = _NEVER
        return n


def _encode(out: list[tuple[list, list, Packed]], keys: list, values: list, start: int, end: int) -> None:
    """Append the entries ``keys[start:end]`` (with their values) to ``out`` as chunks of :data:`JOIN_CHUNK`."""
    for first in range(start, end, JOIN_CHUNK):
        chunk_keys, chunk_values = keys[first:min(first + JOIN_CHUNK, end)], values[first:min(first + JOIN_CHUNK, end)]
        out.append((chunk_keys, chunk_values, deflate(_PACK(dict(zip(chunk_keys, chunk_values))))))


class _Slotted:
    """Per-model state as slots, not a ``__dict__`` per object: at 100k models the hot path reads a
    cold ``_Model`` and ``_Version`` for every sampled request, and a dict per object was one more
    cache miss each (and ~100-200 B). The snapshot keeps them as attribute maps, as before;
    ``_DEFAULTS`` are the values of attributes a snapshot written before them lacks."""

    __slots__ = ()
    _DEFAULTS: dict[str, object] = {}

    def __getstate__(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__ if hasattr(self, name)}

    def __setstate__(self, state: dict) -> None:
        for name, value in {**self._DEFAULTS, **state}.items():
            setattr(self, name, value)


class _Rowed(_Slotted):
    """State of which the fields a skipped row changes (``_ROWED``) live in the monitor's native table
    (``QualityTable``, ``native/src/quality.rs``), read and written through properties: a production row that
    needs no Python is done there without touching this object (docs/benchmarks.md, "The quality monitor").
    The snapshot holds them as attributes, as before; restored, they wait in ``loose`` until the monitor
    gives the object its row (:meth:`QualityMonitor.__setstate__`)."""

    __slots__ = ("table", "row", "loose")
    _ROWED: tuple[str, ...] = ()

    def __getstate__(self) -> dict:
        state = _Slotted.__getstate__(self)
        state.update((name, getattr(self, name)) for name in self._ROWED)
        return state

    def __setstate__(self, state: dict) -> None:
        state = {**self._DEFAULTS, **state}
        self.loose = {name: state.pop(name) for name in self._ROWED}
        for name, value in state.items():
            setattr(self, name, value)


def _model_field(index: int, kind: type = int) -> property:
    """A ``_Model`` field held in the table's model row (``QualityTable.model_field``'s ``index``)."""
    def get(m: _Model) -> object:
        return m.table.model_field(m.row, index)

    def get_as(m: _Model) -> object:
        return kind(m.table.model_field(m.row, index))

    def put(m: _Model, value: object) -> None:
        m.table.set_model_field(m.row, index, int(value))  # type: ignore[call-overload]

    return property(get if kind is int else get_as, put)


class _Version(_Rowed):
    """Detector state of one production version."""

    __slots__ = ("canary", "canary_version", "labels", "warm_n", "warm_correct", "warm_error", "drift", "estimate",
                 "onset", "delays", "delay_max_ms")
    _ROWED = ("last_ms",)
    _DEFAULTS = {"estimate": None, "warm_error": 0.0, "delays": None, "delay_max_ms": 0}
    __setstate__ = _Rowed.__setstate__  # the snapshot decoder looks in the class's own namespace

    def __init__(self, table: QualityTable, model_row: int, drift: PredictionDrift, ts: int) -> None:
        self.canary: CanaryDivergence | None = None
        self.canary_version = ""
        self.labels: DelayedLabelPerformance | None = None
        self.warm_n = self.warm_correct = 0
        self.warm_error = 0.0
        """Sum of the absolute errors counted while a numeric model's tolerance is learned."""
        self.drift = drift
        self.estimate: EstimatedAccuracy | None = None
        """Label-free accuracy of a version that answers probabilities (from its first vector)."""
        self.onset: dict[str, int] = {}
        """Kinds firing -> onset window index."""
        self.delays: list[int] | None = None
        """Joined labels per label delay bucket (``_DELAY_BOUNDS_MS``, then one past a day), from the first
        joined label on: 20 ints, not the delays, so a quantile is known to its bucket."""
        self.delay_max_ms = 0
        """The longest label delay joined."""
        self.attach(table, model_row, ts)

    def attach(self, table: QualityTable, model_row: int, last_ms: int) -> None:
        """Take a version row of ``table`` (of model row ``model_row``); ``drift``'s predictions may wait there."""
        self.table, self.row = table, table.add_version(model_row, last_ms)
        self._room(self.drift)

    @property
    def last_ms(self) -> int:
        """Event time of the last sampled production prediction, or of the last window with
        requests (reported to :meth:`QualityMonitor.poll`)."""
        return self.table.version_last(self.row)

    @last_ms.setter
    def last_ms(self, ts: int) -> None:
        self.table.set_version_last(self.row, ts)

    def settled(self) -> PredictionDrift:
        """The drift detector, given the predictions the table held for it (what every reader of it must see)."""
        held = self.table.take_drift(self.row)
        if held:
            self.drift.extend(held)
        return self.drift

    def observe_drift(self, prediction: object, ts: int) -> None:
        """One prediction for the drift detector; how many may wait in the table until the next is due."""
        drift = self.settled()
        drift.observe(prediction, ts / 1000)
        self._room(drift)

    def replace_drift(self, drift: PredictionDrift) -> None:
        """A new drift detector (the predictions held for the old one go with it)."""
        self.settled()
        self.drift = drift
        self._room(drift)

    def _room(self, drift: PredictionDrift) -> None:
        """Tell the table how many predictions may wait for ``drift``, and whether a class may (a class from a
        numeric model is skipped: Python's, :meth:`QualityMonitor._observe_row`). Half of a fleet's models may
        answer classes: each of their rows went through Python."""
        self.table.set_room(self.row, drift.room(), drift.numeric is not True)

    def __getstate__(self) -> dict:
        self.settled()
        return _Rowed.__getstate__(self)


class _Model(_Rowed):
    __slots__ = ("versions", "baseline", "tolerance", "canary_rate")
    _ROWED = ("last_ms", "label_n", "label_since", "thinned", "thinned_before", "thinned_since", "mirrored")
    """In ``QualityTable.model_field``'s numbering."""
    _DEFAULTS = {"tolerance": None, "mirrored": False, "label_n": 0, "label_since": -_NEVER, "thinned": 0,
                 "thinned_before": 0, "thinned_since": -_NEVER}
    __setstate__ = _Rowed.__setstate__

    last_ms = _model_field(0)
    """Event time of the last sampled prediction (production or canary), or of a window with requests."""
    label_n = _model_field(1)
    label_since = _model_field(2)
    """The model's sampled production predictions counted since ``label_since`` (scaled down to half a
    ``label_horizon_ms`` when the span exceeds one): its rate, for its share of the label join
    (:meth:`QualityMonitor._admit`)."""
    thinned = _model_field(3)
    thinned_before = _model_field(4)
    thinned_since = _model_field(5)
    """Predictions left out of the label join since ``thinned_since`` (``thinned``) and in the span of
    about a horizon before it (``thinned_before``), less the orphan labels already put down to them:
    what a label without a pending prediction may be put down to (:meth:`QualityMonitor._thinned_label`)."""
    mirrored = _model_field(6, bool)
    """A canary prediction of this model was seen: production predictions left out of the label join
    wait ``canary_join_ms`` for their twin in the twin join instead."""

    def __init__(self, table: QualityTable, name: str, ts: int) -> None:
        self.versions: dict[str, _Version] = {}
        self.baseline: float | None = None
        """Accuracy baseline of the model's latest judged version (inherited by new versions)."""
        self.tolerance: float | None = None
        """A numeric answer within this of its label is correct (learned with the first baseline,
        when ``label_tolerance`` is 0; inherited with it: the baseline is an accuracy at it)."""
        self.canary_rate: float | None = None
        """Disagreement rate learned on a healthy version (inherited by new versions): two
        versions of one model never agree perfectly, and a release is judged against what
        is normal for this model, not against its own first requests."""
        self.table, self.row = table, table.add_model(name, [ts, 0, ts, 0, 0, -_NEVER, 0])  # _ROWED, from ts

    def attach(self, table: QualityTable, name: str) -> None:
        """Take a model row of ``table`` (at the back of its order) with the restored fields (``loose``), and give
        each version one."""
        loose = self.loose
        self.table, self.row = table, table.add_model(name, [int(loose[field]) for field in self._ROWED])
        del self.loose
        for vs in self.versions.values():
            vs.attach(table, self.row, vs.loose["last_ms"])
            del vs.loose


class QualityMonitor:
    """Prediction quality (canary divergence, delayed-label accuracy) and drift of one partition's models.

    O(1) Python work per event, eviction and expiry included (drift counts every ``drift_every``
    production predictions of a version and tests them at most once per ``drift_test_interval_s``
    of its event time); picklable; bounded memory (see
    the module docstring). Event times are epoch milliseconds.

    >>> from modelmedic.config import QualitySettings
    >>> from modelmedic.events import InferenceEvent
    >>> m = QualityMonitor(60_000, QualitySettings(canary_expected_rate=0.01))
    >>> for i in range(3000):  # a request a second for 50 minutes, 10% of the canary's answers differ
    ...     for role, version, pred in (("production", "2.1.0", i % 3), ("canary", "2.0.0", (i % 3) if i % 10 else -1)):
    ...         m.observe_inference(InferenceEvent("m", version, role, f"r{i}", 1_000_000 + 1000 * i, 5.0, True, str(pred)))
    >>> [(a.state, a.kind, a.anomaly_class, a.series) for a in m.poll(4_020_000)]
    [('firing', 'canary_divergence', 'prediction', 'm/2.1.0/production')]
    >>> m.poll(4_080_000)
    []
    """

    def __init__(self, window_size_ms: int, settings: QualitySettings | None = None, *, label_sample_every: int = 1,
                 clock: Callable[[], float] | None = time.time) -> None:
        """``settings`` documents each detector setting (defaults when None); ``label_sample_every``
        is the plane's ``detection.quality_sample_every`` (its decoder picks the same sample)."""
        s = settings if settings is not None else QualitySettings()
        self.window_size_ms, self.label_sample_every = window_size_ms, label_sample_every
        # Each setting as an attribute of its own (the hot path reads them; snapshots keep them).
        for name in QualitySettings.model_fields:
            setattr(self, name, getattr(s, name))
        self.idle_recover_ms = max(5 * window_size_ms, IDLE_RECOVER_MIN_MS) if s.idle_recover_ms is None else s.idle_recover_ms
        self.series_ttl_ms = s.label_horizon_ms if s.series_ttl_ms is None else s.series_ttl_ms
        self.clock = clock
        self._models: dict[str, _Model] = {}
        self._table = QualityTable(self.label_horizon_ms, window_size_ms)
        """The models' and versions' fields a row changes, by row; the models in least recently active order
        (:meth:`QualityTable.order`, eviction and expiry take from the front); slots bound to their rows
        (:meth:`observe_sampled`)."""
        self._firing: dict[tuple[str, str], None] = {}
        """(model, version) with a decision firing: checked for idleness at every poll (few)."""
        self._canary_join = _Pending(s.canary_join_ms, s.canary_max_pending)
        """(model, request id) -> (ts, version, prediction) of canary predictions that came before their twin."""
        self._label_join = _Pending(s.label_horizon_ms, s.label_max_pending)
        """(model, request id) -> (ts, version, prediction, paired) of production predictions awaiting a label;
        also where a canary prediction finds its production twin (``paired``: it did already)."""
        self._twins = _Pending(s.canary_join_ms, s.canary_max_pending)
        """(model, request id) -> (ts, version, prediction) of a mirrored model's production predictions left out
        of the label join by its share (:meth:`_admit`): they wait ``canary_join_ms`` for their canary twin only."""
        self._judged: OrderedDict[tuple[str, str], int] = OrderedDict()
        """(model, request id) -> the event time it left, of the predictions that left the label join within the
        last ``label_horizon_ms`` (at most ``label_max_pending``), to tell duplicate labels (judged: the time) and
        missed ones (pushed out by the bound before its label came: minus the time) from orphans. One int, not a
        (time, how) tuple: ~56 B less an id kept (tracemalloc, docs/benchmarks.md). Oldest first: the time is the
        label join's, which never goes back, so expiry takes from the front (:meth:`_expire_judged`)."""
        self._version_count = 0
        """Production versions tracked over all models (kept as they come and go: :meth:`sizes` is read once a
        checkpoint and walked every model before)."""
        self._references: OrderedDict[tuple[str, str], DriftReference] = OrderedDict()
        self._baselines: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._estimates: OrderedDict[tuple[str, str], EstimatedAccuracy] = OrderedDict()
        """Certified label-free estimates, untrained, copied into a version when it is (re)created."""
        self.created: list[tuple[str, str]] = []
        """(model, version) of versions first seen since the owner last looked: the detection
        plane reads their certified facts from the registry and hands them back through
        :meth:`set_baseline` / :meth:`set_reference`."""
        self._out: list[Transition] = []
        """Decision changes since the last poll."""
        self._served: dict[tuple[str, str, str], int] = {}
        """(model, version, role) -> end (minus 1 ms) of the last window it served in, from ``poll``'s
        ``active`` since ``_served_since``; ``_served_before`` holds the generation before. Swapped once
        the current one spans ``max(series_ttl_ms, idle_recover_ms)``, so every stamp within that
        horizon is kept and the two hold only series that served within twice of it."""
        self._served_before: dict[tuple[str, str, str], int] = {}
        self._served_since = -_NEVER
        self._windows: PartitionWindows | None = None
        """The partition's windows, once :meth:`watch` gave them: ``poll``'s ``active`` is then their slots and the
        stamps are theirs (``_served`` keeps only what a snapshot of an older release held, until it ages out)."""
        self.labels_duplicate = self.labels_orphan = self.labels_expired = self.labels_dropped = 0
        self.canary_expired = self.canary_dropped = self.predictions_skipped = self.series_evicted = 0
        self.predictions_thinned = self.labels_missed = self.labels_unjoined_thinned = 0

    def __getstate__(self) -> dict:
        """The snapshot's attributes: the windows are the partition's own (their stamps go in their snapshot)."""
        state = dict(self.__dict__)
        del state["_windows"], state["_table"]
        models = self._models
        state["_models"] = OrderedDict((model, models[model]) for model in self._table.order())
        return state

    def watch(self, windows: PartitionWindows) -> None:
        """Take ``poll``'s ``active`` as ``windows``' slots (:meth:`PartitionWindows.served_slots`) and keep the
        stamps there (:meth:`PartitionWindows.mark_served`): the detection plane's partitions, fresh or restored.

        Stamped by name, a window's ~17,000 served series at 100k models were a dict update of their names, 18% of
        the monitor's CPU (docs/benchmarks.md, "The quality monitor"); by slot they are one numpy store. The
        windows hand a slot out again only after its series was silent ``windows.series_ttl_s``: a series they
        forgot reads as not served, as one older than two spans of ``max(series_ttl_ms, idle_recover_ms)`` did
        by name (the same at the defaults, where that TTL is ``label_horizon_ms`` = ``series_ttl_ms``)."""
        self._windows = windows

    def __setstate__(self, state: dict) -> None:
        """Restore a snapshot (rebuilt by attributes, ``detection/snapshots.py``): one written by an older
        release lacks the attributes added since (the estimate's settings, its certified estimates),
        which start at their defaults."""
        fresh = QualityMonitor(state["window_size_ms"], label_sample_every=state["label_sample_every"], clock=None)
        self.__dict__.update({**fresh.__dict__, **state})
        self._models, self._table = dict(state["_models"]), QualityTable(self.label_horizon_ms, self.window_size_ms)
        for model, m in self._models.items():  # least recently active first
            m.attach(self._table, model)
        if "_version_count" not in state:  # written before the count was kept
            self._version_count = sum(len(m.versions) for m in self._models.values())
        judged = self._judged
        if judged and next(iter(judged.values())) in (None, True):  # written before ids expired by time
            now = self._label_join.now
            self._judged = OrderedDict((key, -now if missed else now) for key, missed in judged.items())

    # -- configuration from the registry ----------------------------------------------------

    def set_reference(self, model: str, version: str, values: Iterable[object]) -> None:
        """Use ``values`` (e.g. the certification run's predictions) as the drift reference of a version.

        Only its bins and their frequencies are kept (:class:`DriftReference`), and, for
        numbers, their spread, which scales the canary's numeric differences; probability
        vectors stand for their arg-max class. A version already being watched starts its
        drift test afresh against the new reference.
        """
        if hasattr(values, "tolist"):  # a numpy array: plain floats, rows as lists
            values = values.tolist()
        self._certify_estimate(model, version, [v for v in values if isinstance(v, list) and v])
        values = [_argmax(v) if isinstance(v, list) else v for v in values]  # probability vectors: classes
        values = [v for v in values if v is not None and not isinstance(v, bool)]
        if not values:
            return
        reference = DriftReference(values, self.drift_bins)
        _bounded_put(self._references, (model, version), reference, self.max_models * self.max_versions)
        m = self._models.get(model)
        vs = m.versions.get(version) if m else None
        if vs is not None:
            vs.replace_drift(self._new_drift(reference))
            self._sync(model, version, vs, DRIFT, vs.drift, self._last_served(model, version, vs))

    def _certify_estimate(self, model: str, version: str, vectors: list[list[float]]) -> None:
        """Certified probability predictions and accuracy: the label-free estimate's reference and
        calibration (:meth:`EstimatedAccuracy.certify`), so it judges from the first request."""
        accuracy = self._baselines.get((model, version))
        if not vectors or accuracy is None:
            return
        det = self._new_estimate()
        det.certify([max(v) for v in vectors], accuracy, len(vectors[0]))
        _bounded_put(self._estimates, (model, version), det, self.max_models * self.max_versions)
        m = self._models.get(model)
        vs = m.versions.get(version) if m else None
        if vs is not None and ESTIMATE not in vs.onset and CALIBRATION not in vs.onset:
            vs.estimate = copy.deepcopy(det)

    def set_baseline(self, model: str, version: str, accuracy: float) -> None:
        """Use ``accuracy`` (the certification report's) as the labelled-accuracy baseline of a version."""
        _bounded_put(self._baselines, (model, version), float(accuracy), self.max_models * self.max_versions)
        m = self._models.get(model)
        vs = m.versions.get(version) if m else None
        if vs is not None and (vs.labels is None or vs.labels.baseline != accuracy):
            vs.labels, vs.warm_n, vs.warm_correct = self._new_labels(float(accuracy)), 0, 0
            m.baseline = float(accuracy)
            self._sync(model, version, vs, LABELS, vs.labels, self._last_served(model, version, vs))

    # -- the hot path -----------------------------------------------------------------------

    def observe_sampled(self, rows: Iterable[tuple[int, int, int, bool, str, object]],
                        names: Sequence[tuple[str, str, str]]) -> None:
        """Take a batch of sampled requests: ``(index, series, ts, ok, request_id, prediction)``
        rows with ``names[series] = (model, version, role)``, as the plane's decoder gives them
        (:attr:`modelmedic.columns.InferenceColumns.sample`).

        The decoder picks the sample (``RecordDecoder(sample_every=label_sample_every)``): a
        request outside it (k - 1 in k with ``label_sample_every = k``; k = 4 in the plane by
        default) never becomes a Python object, and its activity reaches the monitor through
        ``poll(..., active=...)`` instead. This is the monitor's share of the hot path: the native table
        (``QualityTable.step``) does the bookkeeping of a production prediction (a number, or a class where the
        version's drift reference is not numeric) of a known version that expires nothing, finds no canary twin
        waiting and completes no drift count (most rows at 100k models: whole when its model's share leaves it out
        of a half-full label join, else with the label join's put unless that pushes an entry out or the join is
        empty) and stops at each row that needs Python, which :meth:`_observe_row` does as the loop over every row
        did (or only a join's put, or a canary's pairing). A slot is bound to its rows once Python did one of its
        rows, while ``names[series]`` is the same tuple.
        """
        rows = rows if rows.__class__ is list else list(rows)
        names = names if names.__class__ is list else list(names)
        table, canary_join, label_join = self._table, self._canary_join, self._label_join
        # A model's share of the label join, as predictions per horizon (:meth:`_admit`), once a batch.
        scale = self.label_horizon_ms * max(len(self._models), 1) / self.label_max_pending
        at, end = 0, len(rows)
        while at < end:
            at, left, label_join.now, canary_join.now, thinned = table.step(
                rows, at, names, label_join.now, label_join.first_ts, label_join.ttl_ms, label_join.items,
                label_join.cap, canary_join.items or None, canary_join.now, canary_join.first_ts, canary_join.ttl_ms,
                scale)
            self.predictions_thinned += thinned
            if left == _FULL:
                self._observe_row(rows[at], names, scale)
            elif left == _PUT:
                _, series, ts, _, request_id, prediction = rows[at]
                model, version, _ = names[series]
                self._put_label((model, request_id), (ts, version, prediction, False))
            elif left == _TWIN:
                _, series, ts, _, request_id, prediction = rows[at]
                model, version, _ = names[series]
                self._put_twin((model, request_id), ts, version, prediction)
            elif left == _PAIR:
                _, series, ts, ok, request_id, prediction = rows[at]
                if prediction is None or not ok:
                    self.predictions_skipped += 1
                else:
                    model, version, _ = names[series]
                    self._observe_canary(self._models[model], model, request_id, ts, version, prediction)
            at += 1

    def _observe_row(self, row: tuple[int, int, int, bool, str, object], names: list[tuple[str, str, str]],
                     scale: float) -> None:
        """One sampled request that needs Python (:meth:`observe_sampled`); its slot is bound to its rows."""
        _, series, ts, ok, request_id, prediction = row
        name = names[series]
        model, version, role = name
        table, canary_join, label_join = self._table, self._canary_join, self._label_join
        if role == "shadow":
            table.bind(series, name, _SHADOW, 0)
            return
        if prediction is None or not ok:
            self.predictions_skipped += 1
            prediction = None
        m = self._models.get(model)
        if m is None:
            m = self._new_model(model, ts)
        else:
            table.touch(m.row)  # least recently active first: O(1) eviction and expiry
        m.last_ms = ts
        if role == "canary":
            table.bind(series, name, _CANARY, m.row)
            if prediction is not None:
                self._observe_canary(m, model, request_id, ts, version, prediction)
            return
        vs = m.versions.get(version)
        if vs is None:
            vs = self._new_version(m, model, version, ts)
        table.bind(series, name, _PRODUCTION, vs.row)
        vs.last_ms = ts
        if prediction is None:
            return
        key = (model, request_id)
        paired = False
        if canary_join.items:  # a canary prediction came first (usually it comes after: then it finds this one)
            self.canary_expired += canary_join.advance(ts)
            twin = canary_join.items.pop(key, None)
            if twin is not None:
                paired = True
                self._pair(m, model, version, prediction, twin[1], twin[2], ts)
        self.labels_expired += label_join.advance(ts)
        # Probability vectors wait as they are (a canary twin is compared on them) and
        # stand for their arg-max class for labels and drift.
        m.label_n += 1
        if len(label_join.items) < self.label_max_pending // 2 or self._admit(m, ts, scale):
            self._put_label(key, (ts, version, prediction, paired))
        else:
            self.predictions_thinned += 1
            if ts - m.thinned_since >= self.label_horizon_ms:  # a new span: no call per thinned prediction
                _roll_thinned(m, ts, self.label_horizon_ms)
            m.thinned += 1
            if m.mirrored and not paired:
                self._put_twin(key, ts, version, prediction)
        if prediction.__class__ is list:
            self._estimate(model, version, vs, prediction, ts)
            prediction = _argmax(prediction)
            if prediction is None:  # an empty vector
                self.predictions_skipped += 1
                return
        if prediction.__class__ is str and vs.drift.numeric:  # a class from a numeric model
            self.predictions_skipped += 1
            return
        vs.observe_drift(prediction, ts)
        if vs.drift.anomalous is not (DRIFT in vs.onset):
            self._sync(model, version, vs, DRIFT, vs.drift, ts)

    def _put_label(self, key: tuple[str, str], entry: tuple) -> None:
        """A sampled production prediction waits in the label join (the oldest pushed out past its bound)."""
        dropped = self._label_join.put(key, entry)
        if dropped is not None:
            self.labels_dropped += 1
            self._left(dropped, True)

    def _put_twin(self, key: tuple[str, str], ts: int, version: str, prediction: object) -> None:
        """A mirrored model's production prediction left out of the label join waits for its canary twin in the twin
        join (most never meet one: their expiry is not counted)."""
        self.canary_dropped += self._twins.put(key, (ts, version, prediction)) is not None

    def _admit(self, m: _Model, ts: int, scale: float) -> bool:
        """Whether a sampled production prediction waits in the label join at least half full: its model's share.

        The join holds ``label_max_pending`` predictions, each for up to ``label_horizon_ms``. Kept
        first come, first served, a fleet fills it within minutes (100k models at 0.05 req/s, 1 in 4
        sampled: 50,000 entries in ~40 s) and pushes out every prediction before its label comes.
        So while the join is at least half full (below, the caller keeps everything), a model whose
        sampled rate would hold more than ``label_max_pending / models`` predictions over the
        horizon keeps every 2^j-th of them (the least power of two that brings it within that
        share), and its labels are judged on those: a quiet model keeps all its predictions, a
        busy one a sample spread over its traffic, and what is kept can wait its horizon. The
        rate is the model's count (``label_n``, counted by the caller, this prediction included)
        since ``label_since`` over that span plus one window (a new model counts as one prediction
        a window); past a horizon both shrink to half a horizon's worth at that rate, so it follows
        the model's traffic. A count, not a hash of the request id: the snapshot keeps it, so a
        replay keeps the same predictions, and it costs no hashing per prediction. ``scale`` is
        ``label_horizon_ms x models / label_max_pending`` (the caller's, once a batch). O(1).
        """
        age, horizon = ts - m.label_since, self.label_horizon_ms
        if age > horizon:  # the count over half a horizon at the same rate: older traffic fades
            m.label_n = m.label_n * horizon // (2 * age) + 1
            age = horizon // 2
            m.label_since = ts - age
        n = m.label_n
        need = n * scale / (max(age, 0) + self.window_size_ms)
        return need <= 1.0 or not n % (1 << int(need).bit_length())

    def _left(self, key: tuple[str, str], missed: bool | None) -> None:
        """Note a prediction that left the label join: judged (None), or pushed out before its label (True)."""
        judged = self._judged
        judged[key] = -self._label_join.now if missed else self._label_join.now
        if len(judged) > self.label_max_pending:
            judged.popitem(last=False)

    def _expire_judged(self, now: int) -> None:
        """Forget the ids that left the label join more than ``label_horizon_ms`` before event time ``now``: a
        label for one of them is as late as one whose prediction expired in the join (an orphan), so ids kept
        longer only cost memory (50,000 per partition at the default bound, by count alone, before). Once a
        poll (a lookup checks the age too). O(1) a call, amortized."""
        judged, limit = self._judged, now - self.label_horizon_ms
        while judged and abs(next(iter(judged.values()))) < limit:
            judged.popitem(last=False)

    def _thinned_label(self, model: str, ts: int) -> bool:
        """Whether a label without a pending prediction (nor a judged or pushed-out one) is put down to its
        model's share: the model left a prediction out within the last one or two horizons that no label was
        put down to yet (one is, now). Ids of thinned predictions are not kept, so a thinning model's labels
        for requests never seen count here too, up to that number; a model that did not thin has none. O(1)."""
        m = self._models.get(model)
        if m is None:
            return False
        _roll_thinned(m, ts, self.label_horizon_ms)
        if m.thinned_before:
            m.thinned_before -= 1
        elif m.thinned:
            m.thinned -= 1
        else:
            return False
        return True

    def observe_inference(self, event: InferenceEvent) -> None:
        """Take one decoded inference event (:meth:`observe_sampled`, if its request is in the sample).

        Shadow predictions are ignored; failed requests (``ok`` false) and requests without a
        prediction are counted in ``predictions_skipped`` (errors are the window judge's). A
        list prediction (class probabilities) is compared with its canary twin as a vector and
        stands for its arg-max class index for labels and drift. A request
        outside the label sample is not looked at (not even for activity: see :meth:`poll`).
        """
        k = self.label_sample_every
        if k == 1 or not _crc(event.request_id) % k:
            self.observe_sampled([(0, 0, event.ts, event.ok, event.request_id, event.prediction)],
                                 [(event.model, event.version, event.role)])

    def _observe_canary(self, m: _Model, model: str, request_id: str, ts: int, version: str,
                        prediction: object) -> None:
        """Pair a canary prediction with its production twin, or keep it until the twin comes.

        The twin is looked up in the label join, which holds every sampled production
        prediction anyway (a get: its label still needs it); it pairs once, and only within
        ``canary_join_ms`` of the canary join's event time. Keeping production predictions
        in a second buffer just in case a canary twin comes cost a put and an expiry per
        prediction, and most (all but the canary's share of requests) never got one. A
        production prediction whose label came before its canary twin (labels come minutes
        later, twins within milliseconds) is gone, and that twin is not paired.
        """
        join, key = self._canary_join, (model, request_id)
        m.mirrored = True
        self.canary_expired += join.advance(ts)
        pending = self._label_join.items
        prod = pending.get(key)
        if prod is not None and not prod[3] and prod[0] >= join.now - self.canary_join_ms:
            pending[key] = (prod[0], prod[1], prod[2], True)  # an existing key keeps its place (expiry order)
            self._pair(m, model, prod[1], prod[2], version, prediction, ts)
            return
        if prod is None and self._twins.items:  # left out of the label join by its share (:meth:`_admit`)
            prod = self._twins.items.pop(key, None)
            if prod is not None and prod[0] >= join.now - self.canary_join_ms:
                self._pair(m, model, prod[1], prod[2], version, prediction, ts)
                return
        join.items.pop(key, None)  # a repeated canary replaces the first, from its own time on
        self.canary_dropped += join.put(key, (ts, version, prediction)) is not None

    def _pair(self, m: _Model, model: str, version: str, prod: object, canary_version: str, canary: object,
              ts: int) -> None:
        """Feed one production/canary pair to the production version's canary detector."""
        vs = m.versions.get(version)
        if vs is None:  # the production version was forgotten meanwhile
            return
        det = vs.canary
        if det is None:
            expected = self.canary_expected_rate if self.canary_expected_rate is not None else m.canary_rate
            reference = self._references.get((model, version))
            det = vs.canary = CanaryDivergence(
                expected_rate=expected, prior_rate=self.canary_prior_rate, margin=self.canary_margin,
                effect=self.canary_effect, large_effect=self.canary_large_effect,
                tolerance=self.canary_tolerance, probability_tolerance=self.canary_probability_tolerance,
                bias_effect=self.canary_bias_effect, false_alarms_per_day=self.false_alarms_per_day,
                min_pairs=self.canary_min_pairs,
                warmup=self.canary_warmup, window_s=self.canary_join_ms / 1000, max_pending=1,
                scale=reference.spread if reference is not None and reference.spread > 0 else None)
        vs.canary_version = canary_version
        det.observe_pair(prod, canary, ts / 1000)
        anomalous = det.anomalous
        if m.canary_rate is None and not anomalous and det.expected is not None:
            m.canary_rate = det.expected
        if anomalous is not (CANARY in vs.onset):
            self._sync(model, version, vs, CANARY, det, ts)

    def observe_label(self, label: LabelEvent) -> None:
        """Take one decoded label event: join it to its pending production prediction."""
        rid = label.request_id
        if self.label_sample_every != 1 and _crc(rid) % self.label_sample_every:
            return  # its prediction was not kept (sampled out)
        join, key = self._label_join, (label.model, rid)
        self.labels_expired += join.advance(label.ts)
        pending = join.items.pop(key, None)
        if pending is None:
            left = self._judged.get(key, 0)
            if abs(left) < join.now - self.label_horizon_ms:  # never there, or a horizon ago: an orphan's lateness
                left = 0
            if left > 0:
                self.labels_duplicate += 1
            elif left < 0:
                self.labels_missed += 1
                metrics.LABELS_MISSED.inc()
            elif self._thinned_label(label.model, label.ts):
                self.labels_unjoined_thinned += 1
                metrics.LABELS_UNJOINED_THINNED.inc()
            else:
                self.labels_orphan += 1
            return
        self._left(key, None)
        ts, version, vector, _ = pending
        prediction = _argmax(vector) if vector.__class__ is list else vector
        m = self._models.get(label.model)
        vs = m.versions.get(version) if m is not None else None
        if vs is None:
            self.labels_orphan += 1
            return
        _delay(vs, label.ts - ts)
        if vs.estimate is not None and vector.__class__ is list:  # the estimate vs what the label says
            error = vs.estimate.observe_outcome(vector, self._correct(prediction, label.label), label.ts / 1000)
            if error is not None:
                metrics.ESTIMATE_ERROR.observe(abs(error))
            if vs.estimate.calibration_check.anomalous is not (CALIBRATION in vs.onset):
                self._sync(label.model, version, vs, CALIBRATION, vs.estimate.calibration_check, label.ts)
        det = vs.labels
        if det is None:
            baseline = m.baseline
            if baseline is None:  # learn this version's accuracy first
                if not self._warm_up(m, vs, prediction, label.label):
                    return
                # The lower bound, not the estimate: a baseline learned a little high would
                # take the version's healthy accuracy for a drop.
                baseline = wilson(vs.warm_correct, vs.warm_n, 2.0)[0]
            det = vs.labels = self._new_labels(baseline, m.tolerance)
            m.baseline = baseline
        det.observe_outcome(prediction, label.label, label.ts / 1000)
        if det.anomalous is not (LABELS in vs.onset):
            self._sync(label.model, version, vs, LABELS, det, label.ts)

    # -- once per closed window -------------------------------------------------------------

    def poll(self, now_ms: int, active: Iterable[tuple[str, str, str]] | np.ndarray = ()) -> list[Anomaly]:
        """Anomaly records for the decisions that changed since the last poll; ``now_ms`` is the closed window's end.

        ``active``: (model, version, role) of the series with at least one request in the
        window ending at ``now_ms`` (the plane's window aggregates know them), or their slots in
        the windows given to :meth:`watch` (the plane's form). Requests
        outside the label sample are not looked at one by one, so this is how the monitor
        learns that a version still serves: each series is stamped active at ``now_ms - 1``
        before the checks below, in one dict update, or one numpy store by slot (no model or version is looked up
        per series: at 100k models that loop was half of the monitor's CPU); the checks read the
        stamps of the few they look at (a production version's, for its versions; those of
        its production versions and paired canaries, for a model; shadow's never). Models and
        versions not known (no sampled request yet) are not created.

        Also recovers (and forgets) firing versions without production traffic for
        ``idle_recover_ms`` (the few firing ones are looked at), and forgets models without
        traffic for ``series_ttl_ms`` from the front of the least-recently-sampled order: the
        cost is what expires, not what is tracked. A model at the front kept alive by
        ``active`` alone goes to the back (at most ``_REORDER`` per poll, so a model behind it
        may expire a few polls late, never early), as moving every served series cost more than
        the rest of the monitor. A quiet version of a
        model that still serves goes when the model gets a new version (``max_versions``
        bounds them meanwhile).
        """
        at, models = now_ms - 1, self._models
        if at - self._served_since >= max(self.series_ttl_ms, self.idle_recover_ms):
            self._served_before, self._served, self._served_since = self._served, {}, at
        if self._windows is not None:  # slots (:meth:`watch`)
            self._windows.mark_served(at, active)
        else:
            self._served.update(zip(active, repeat(at)))  # C speed: no lookup of a model or version per series
        self.labels_expired += self._label_join.advance(now_ms)
        self.canary_expired += self._canary_join.advance(now_ms)
        self._twins.advance(now_ms)  # here, not per prediction: a twin older than canary_join_ms never pairs anyway
        self._expire_judged(self._label_join.now)
        for model, version in list(self._firing):
            m = models[model]
            if now_ms - self._last_served(model, version, m.versions[version]) >= self.idle_recover_ms:
                self._forget(model, m, version, "no longer serving traffic")
        # Each model at most once a poll: past that the front is one already moved (20 live
        # models cycled 256 times a poll, 13% of the plane's CPU in bench_plane).
        limit, reordered, most = now_ms - self.series_ttl_ms, 0, min(_REORDER, len(models))
        while models and reordered < most:
            model = self._table.front()
            m = models[model]
            if m.last_ms <= limit:
                m.last_ms = self._model_last_served(model, m)
            if m.last_ms > limit:  # kept alive by unsampled requests only (``active``): its place is stale
                self._table.touch(m.row)
                reordered += 1
                continue
            self._drop_model(model, "no longer serving traffic")
        out, self._out = self._out, []
        if not out:
            return []
        closed_at = int(self.clock() * 1000) if self.clock is not None else 0
        return anomalies(out, now_ms, self.window_size_ms, closed_at)

    def _stamp(self, series: tuple[str, str, str]) -> int:
        """End (minus 1 ms) of the last window in which ``series`` served, as ``poll``'s ``active`` said;
        -inf-like when not within the last two generations (older than any horizon asked about)."""
        at = self._served.get(series)
        named = at if at is not None else self._served_before.get(series, -_NEVER)
        return named if self._windows is None else max(named, self._windows.served_stamp(series))

    def _last_served(self, model: str, version: str, vs: _Version) -> int:
        """Event time a production version last served: its last sampled request or its last active window."""
        return max(vs.last_ms, self._stamp((model, version, "production")))

    def _model_last_served(self, model: str, m: _Model) -> int:
        """Event time a model last served: its last sampled request, or the last active window of one of
        its production versions or of a canary paired with one (asked of the few at the front of the order)."""
        versions = m.versions.items()
        return max([m.last_ms, *(self._last_served(model, v, vs) for v, vs in versions),
                    *(self._stamp((model, vs.canary_version, "canary")) for _, vs in versions if vs.canary_version)])

    # -- state changes ----------------------------------------------------------------------

    def _sync(self, model: str, version: str, vs: _Version, kind: str, det, ts: int) -> None:
        """Record a change of ``det``'s decision (firing or recovered) at event time ``ts``."""
        firing = det.anomalous
        if firing == (kind in vs.onset):
            return
        if firing:
            vs.onset[kind] = onset = ts // self.window_size_ms
            self._firing[(model, version)] = None
        else:
            onset = vs.onset.pop(kind)
            if not vs.onset:
                del self._firing[(model, version)]
        observed, baseline, score, summary = describe(model, version, vs.canary_version, kind, det, firing)
        self._out.append((model, version, kind, "firing" if firing else "recovered", onset, observed, baseline, score, summary))

    def _forget(self, model: str, m: _Model, version: str, why: str) -> None:
        """Drop a version's state; a firing decision is recovered with ``why``."""
        vs = m.versions.pop(version)
        self._table.free_version(vs.row)
        self._version_count -= 1
        if vs.onset:
            del self._firing[(model, version)]
        self._out.extend(forgotten(model, version, kind, onset, why) for kind, onset in vs.onset.items())

    def _drop_model(self, model: str, why: str) -> None:
        """Forget a model and its versions (its pending predictions expire in time; their labels are orphans)."""
        m = self._models.pop(model)
        for version in list(m.versions):
            self._forget(model, m, version, why)
        self._table.free_model(m.row)

    def _new_model(self, model: str, ts: int) -> _Model:
        if len(self._models) >= self.max_models:  # the least recently active goes: O(1)
            evicted = self._table.front()
            self.series_evicted += len(self._models[evicted].versions)
            self._drop_model(evicted, f"no longer tracked (over {self.max_models} models per partition)")
        m = self._models[model] = _Model(self._table, model, ts)
        return m

    def _new_version(self, m: _Model, model: str, version: str, ts: int) -> _Version:
        """A version's state; quiet versions of the model are forgotten first (at most ``max_versions`` looked at)."""
        quiet = [v for v, vs in m.versions.items() if not vs.onset and ts - self._last_served(model, v, vs) >= self.series_ttl_ms]
        for old in quiet:
            self._forget(model, m, old, "no longer serving traffic")
        # The model's healthy versions say what a new one may disagree on with its canary:
        # the version compared on the most pairs, even short of ``canary_warmup`` (a quiet model
        # releases before it gets there).
        rates = [(vs.canary.pairs, vs.canary.healthy_rate()) for vs in m.versions.values() if vs.canary is not None]
        learned = max((r for r in rates if r[1] is not None), default=None)
        if learned is not None:
            m.canary_rate = learned[1]
        if len(m.versions) >= self.max_versions:
            old = min(m.versions, key=lambda k: self._last_served(model, k, m.versions[k]))
            self._forget(model, m, old, f"no longer tracked (over {self.max_versions} versions of one model)")
            self.series_evicted += 1
        before = max(m.versions.items(), key=lambda kv: self._last_served(model, *kv), default=None)
        drift = self._new_drift(self._references.get((model, version)), before[1].drift if before else None)
        vs = m.versions[version] = _Version(self._table, m.row, drift, ts)
        self._version_count += 1
        self.created.append((model, version))
        certified = self._estimates.get((model, version))
        vs.estimate = copy.deepcopy(certified) if certified is not None else None
        baseline = self._baselines.get((model, version))
        if baseline is not None:
            vs.labels = self._new_labels(baseline)
            m.baseline = baseline
        return vs

    def _estimate(self, model: str, version: str, vs: _Version, probabilities: list, ts: int) -> None:
        """Feed a probability vector to the version's label-free accuracy estimate."""
        det = vs.estimate
        if det is None:
            det = vs.estimate = self._new_estimate()
        det.observe(probabilities, ts / 1000)
        if det.anomalous is not (ESTIMATE in vs.onset):
            self._sync(model, version, vs, ESTIMATE, det, ts)

    def _new_estimate(self) -> EstimatedAccuracy:
        return EstimatedAccuracy(
            bins=self.estimate_bins, margin=self.label_margin, effect=self.label_effect, gap=self.estimate_gap,
            false_alarms_per_day=self.false_alarms_per_day, warmup=self.estimate_warmup,
            calibration_warmup=self.estimate_calibration_warmup)

    def _new_drift(self, reference: DriftReference | None, predecessor: PredictionDrift | None = None
                   ) -> PredictionDrift:
        """A version's drift detector: against ``reference`` (certified), else its predecessor's (the model's
        latest other version) if its first predictions match it, else its own first predictions."""
        return PredictionDrift(reference=reference, reference_size=self.drift_reference, window=self.drift_window,
                               min_live=self.drift_min_live, bins=self.drift_bins, psi_threshold=self.psi_threshold,
                               false_alarms_per_day=self.false_alarms_per_day,
                               test_interval_s=self.drift_test_interval_s, every=self.drift_every,
                               reference_s=self.drift_reference_s, predecessor=predecessor)

    def _new_labels(self, baseline: float, tolerance: float | None = None) -> DelayedLabelPerformance:
        return DelayedLabelPerformance(
            baseline=baseline, margin=self.label_margin, effect=self.label_effect,
            false_alarms_per_day=self.false_alarms_per_day,
            min_outcomes=self.label_min_outcomes, tolerance=self.label_tolerance or tolerance or 0.0,
            horizon_s=self.label_horizon_ms / 1000, max_pending=1)

    def _warm_up(self, m: _Model, vs: _Version, prediction: object, label: object) -> bool:
        """Count one labelled outcome of a version without a baseline; True once it can be learned.

        A regressor's answer is never exactly its label, so exact equality would make every
        healthy one 0% accurate. Without a configured ``label_tolerance``, a numeric model's
        first ``label_warmup // 2`` outcomes set its tolerance to ``TOLERANCE_MAES`` mean
        absolute errors (about 89% of healthy answers within it for Gaussian errors, 86% for
        Laplace ones: the next outcomes measure what it really is), and the remaining ones of
        ``label_warmup`` count the answers within it, like a classifier's correct ones.
        """
        if m.tolerance is None and not self.label_tolerance and _numeric(prediction) and _numeric(label):
            vs.warm_n += 1
            vs.warm_error += abs(float(prediction) - float(label))
            if vs.warm_n >= max(self.label_warmup // 2, 1):
                m.tolerance = TOLERANCE_MAES * vs.warm_error / vs.warm_n
                vs.warm_n = 0
            return False
        vs.warm_n += 1
        vs.warm_correct += self._correct(prediction, label, m.tolerance)
        learned_tolerance = m.tolerance is not None and not self.label_tolerance
        return vs.warm_n >= self.label_warmup - (self.label_warmup // 2 if learned_tolerance else 0)

    def _correct(self, prediction: object, label: object, tolerance: float | None = None) -> bool:
        """Whether an answer is right: a number within ``label_tolerance`` (else ``tolerance``) of its label, else equal."""
        tolerance = self.label_tolerance or tolerance
        if tolerance and _numeric(label) and _numeric(prediction):
            return abs(float(prediction) - float(label)) <= tolerance
        return prediction == label

    # -- introspection ----------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        """The counters (also plain attributes), by name, for the metrics exporter."""
        return {name: getattr(self, name) for name in COUNTERS}

    def firing(self) -> list[tuple[str, str, str]]:
        """(model, version, kind) of every decision currently firing."""
        return [(model, version, kind) for model, version in self._firing
                for kind in self._models[model].versions[version].onset]

    def states(self, model: str, version: str) -> dict[str, str]:
        """Each detector's state for one production version: ``insufficient_data`` (including a
        detector not started: no pair, label or reference yet), ``ok`` or ``anomalous``."""
        m = self._models.get(model)
        vs = m.versions.get(version) if m is not None else None
        if vs is None:
            return {}
        return {kind: d.state if d is not None else INSUFFICIENT for kind, d in _decisions(vs).items()}

    def decisions(self, model: str) -> dict[str, dict[str, Decision | None]]:
        """Each production version's decisions by kind, None for a detector not started (no pair, label or
        reference yet): the status page's view of the model (a page view, not the hot path)."""
        m = self._models.get(model)
        return {} if m is None else {version: _decisions(vs) for version, vs in m.versions.items()}

    def estimate(self, model: str, version: str) -> dict[str, float | int | str] | None:
        """The label-free estimate of one production version, reconciled: estimated and usual accuracy,
        realized vs estimated accuracy on the same labelled predictions, the calibration's source
        (:meth:`EstimatedAccuracy.decision`'s evidence); None unless it answers probabilities."""
        m = self._models.get(model)
        vs = m.versions.get(version) if m is not None else None
        return vs.estimate.decision().evidence if vs is not None and vs.estimate is not None else None

    def label_delay(self, model: str, version: str) -> dict[str, int | None] | None:
        """How late the labels joined to one production version came (label minus prediction event time, ms):
        ``labels`` joined, ``max_ms``, and ``p50_ms`` / ``p95_ms`` / ``p99_ms`` as the upper bound of the
        bucket that quantile falls in (``modelmedic_quality_label_delay_seconds``'s buckets; past a day, the
        maximum), and the ``horizon_ms`` they are cut at; None before its first joined label. What
        ``label_horizon_ms`` is sized from (docs/detection.md, "Sizing the label join")."""
        m = self._models.get(model)
        vs = m.versions.get(version) if m is not None else None
        if vs is None or vs.delays is None:
            return None
        counts, n = vs.delays, sum(vs.delays)
        view: dict[str, int | None] = {"labels": n, "max_ms": vs.delay_max_ms, "horizon_ms": self.label_horizon_ms}
        for q in DELAY_QUANTILES:
            view[f"p{round(q * 100)}_ms"] = _quantile_bound(counts, q * n, vs.delay_max_ms)
        return view

    def sizes(self) -> dict[str, int]:
        """Entries held, for the memory bounds: models, versions, pending joins, judged label ids. O(1): read once
        a checkpoint (``modelmedic_quality_join_entries``)."""
        return {
            "models": len(self._models),
            "versions": self._version_count,
            "canary_pending": len(self._canary_join.items),
            "label_pending": len(self._label_join.items),
            "twin_pending": len(self._twins.items),
            "label_judged": len(self._judged),
            "references": len(self._references),
        }


def _decisions(vs: _Version) -> dict[str, Decision | None]:
    """A version's current decision per kind (None: its detector has not started)."""
    vs.settled()
    estimate = vs.estimate
    gap = estimate.calibration_check if estimate is not None else None
    return {kind: det.decision() if det is not None else None
            for kind, det in ((CANARY, vs.canary), (LABELS, vs.labels), (DRIFT, vs.drift), (ESTIMATE, estimate),
                              (CALIBRATION, gap))}


def _numeric(value: object) -> bool:
    """An int or float answer or label (a bool is a class)."""
    return value.__class__ in (int, float)


def _argmax(values: list[float]) -> int | None:
    """The class index a probability vector stands for (the first of equal maxima)."""
    return max(range(len(values)), key=values.__getitem__) if values else None


def _crc(request_id: str) -> int:
    """A hash of a request id that is the same in every process (``hash()`` of a str is not)."""
    return zlib.crc32(request_id.encode())


def _bounded_put(d: OrderedDict, key: object, value: object, cap: int) -> None:
    d[key] = value
    d.move_to_end(key)
    while len(d) > cap:
        d.popitem(last=False)


def _roll_thinned(m: _Model, ts: int, horizon_ms: int) -> None:
    """Start a new span of a model's thinned count once the current one is a horizon old (event time ``ts``): the
    current one becomes the one before, and one older than two horizons is forgotten (its labels would have
    expired). A prediction left out at t is still counted at t + horizon. O(1)."""
    age = ts - m.thinned_since
    if age >= horizon_ms:
        m.thinned_before = m.thinned if age < 2 * horizon_ms else 0
        m.thinned, m.thinned_since = 0, ts


def _delay(vs: _Version, delay_ms: int) -> None:
    """Count one joined label's delay for its version and in ``modelmedic_quality_label_delay_seconds``. O(1):
    a bisection of 19 bounds."""
    delay_ms = max(delay_ms, 0)  # a label stamped before its prediction (producers' clocks): no delay
    counts = vs.delays
    if counts is None:
        counts = vs.delays = [0] * (len(_DELAY_BOUNDS_MS) + 1)
    counts[bisect_left(_DELAY_BOUNDS_MS, delay_ms)] += 1
    if delay_ms > vs.delay_max_ms:
        vs.delay_max_ms = delay_ms
    metrics.LABEL_DELAY.observe(delay_ms / 1000)


def _quantile_bound(counts: list[int], rank: float, max_ms: int) -> int:
    """Upper bound (ms) of the bucket holding the ``rank``-th delay (no more than the maximum seen)."""
    seen = 0
    for bound, n in zip((*_DELAY_BOUNDS_MS, max_ms), counts):
        seen += n
        if seen >= rank:
            return min(bound, max_ms)
    return max_ms

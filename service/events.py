"""Event contract v1: the records model servers emit and modelmedic publishes.

Inbound records (``inference``, ``label``) are decoded on the hot path with msgspec
structs: one C-level decode + validation per record, about 9x faster than pydantic
for this shape. Anything that does not decode or validate is returned as a
:class:`Rejected` with a human reason, to be sent to the dead-letter topic.

Outbound records (``anomaly``) carry deterministic ids (a hash of series, kind and
onset window) so a replay after a crash maps to the same anomaly and incident.

The JSON Schemas in ``schemas/`` are the language-neutral form of these structs;
``tests/unit/test_events.py`` checks the two agree.
"""

from __future__ import annotations

import hashlib
import math
import sys
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any, Literal

import msgspec

CONTRACT_VERSION = 1
MAX_RECORD_BYTES = 64 * 1024
"""Records larger than this are rejected: a per-request event is a few hundred bytes,
so a huge one is a producer bug and must not stall the hot path."""
MAX_TS_MS = 4_102_444_800_000
"""Event times must be before 2100-01-01 UTC (epoch ms). A timestamp in microseconds or
nanoseconds is a producer bug; accepted, it would push the partition's watermark
centuries ahead and turn every later record of every model on it into a late one."""

Role = Literal["production", "canary", "shadow"]
Severity = Literal["critical", "error", "warning", "info"]
"""How loud an alert is, from an informational note to a page that wakes someone."""
Prediction = float | str | list[float] | None
MAX_FEATURES = 64
"""Most entries of an event's ``features``: a sample of the model's inputs for the quality
monitor, not the whole request (one with more is counted and its features dropped)."""


class InferenceEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """One request served by one model version."""

    model: str
    version: str
    role: Role
    request_id: str
    ts: int
    """Event time, epoch milliseconds."""
    latency_ms: float
    ok: bool
    prediction: Prediction = None
    features: dict[str, msgspec.Raw] | None = None
    """The model's inputs, name -> number, string, boolean or null (at most :data:`MAX_FEATURES`);
    optional. An object, its values kept as their JSON text: what they hold is checked only for
    the requests in the quality sample, and features that break the rules are dropped and counted
    there, never the event (``modelmedic.detection.features``)."""


class LabelEvent(msgspec.Struct, frozen=True):
    """Delayed ground truth for one request, joined to predictions by ``request_id``."""

    model: str
    request_id: str
    ts: int
    label: float | str


class Anomaly(msgspec.Struct, frozen=True):
    """A detector's decision about one closed window of one series, with its evidence."""

    id: str
    series: str
    """The series judged: ``model/version/role``, or ``model/*/role`` for model-level
    metrics such as throughput (then ``version`` is the version serving most traffic)."""
    model: str
    version: str
    role: str
    kind: str
    """What went wrong: ``latency``, ``throughput_drop``, ``throughput_surge``, ``errors``..."""
    anomaly_class: str
    """The response class: ``latency``, ``throughput``, ``prediction`` or ``drift``."""
    window_start: int
    window_end: int
    onset: int
    """Start of the first window of this episode; part of the id so replays dedupe."""
    observed: float
    baseline: float
    score: float
    state: Literal["firing", "recovered"]
    summary: str
    closed_at_ms: int = 0
    """Wall-clock time the window was closed (for close-to-alert latency)."""
    seen_before: int = 0
    """Start of the series' last window with data before ``onset`` (0: not known). A sparse
    series' onset is its first request after the change, which can come minutes after it: the
    problem started between this and ``onset`` (storms take such a member in:
    ``modelmedic.response.storms``)."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that failed to decode or validate, on its way to the dead-letter topic."""

    reason: str
    raw: bytes

    @property
    def kind(self) -> str:
        """A low-cardinality class of the reason: the dead-letter metric's label.

        >>> Rejected("not JSON: truncated", b"{").kind, Rejected("invalid inference event: Expected `str`", b"").kind
        ('json', 'schema')
        """
        for needle, label in (("nested deeper", "depth"), ("undecodable", "undecodable"), ("not JSON", "json"),
                              ("bytes, over", "size"), ("empty record", "empty"), ("ahead of", "future"),
                              ("must be", "value"), ("Expected", "schema"), ("missing", "schema")):
            if needle in self.reason:
                return label
        return "schema"


def dead_letter_headers(rejected: Rejected, topic: str, partition: int | None = None,
                        offset: int | None = None) -> list[tuple[str, bytes]]:
    """The headers of a dead letter: why (``reason``) and where it was read (``source.topic``, and
    ``source.partition`` and ``source.offset`` when known), so a person can find and replay it."""
    headers = [("reason", rejected.reason.encode()[:1000]), ("source.topic", topic.encode())]
    if partition is not None and offset is not None:
        headers += [("source.partition", str(partition).encode()), ("source.offset", str(offset).encode())]
    return headers


_inference_decoder = msgspec.json.Decoder(InferenceEvent)


_label_decoder = msgspec.json.Decoder(LabelEvent)
_anomaly_decoder = msgspec.json.Decoder(Anomaly)
_encoder = msgspec.json.Encoder()


def _check_inference(event: InferenceEvent) -> str | None:
    """Semantic checks msgspec's type system cannot express; returns a reason or None."""
    if not event.model or not event.version:
        return "model and version must be non-empty"
    if not math.isfinite(event.latency_ms) or event.latency_ms < 0:
        return f"latency_ms must be a finite number >= 0, got {event.latency_ms!r}"
    if not 0 < event.ts < MAX_TS_MS:
        return _ts_reason(event.ts)
    pred = event.prediction
    if isinstance(pred, float) and not math.isfinite(pred):
        return "prediction must be finite"
    return None


def _ts_reason(ts: int) -> str:
    return f"ts must be epoch milliseconds > 0 and before 2100 (< {MAX_TS_MS}), got {ts!r}"


def _check_label(event: LabelEvent) -> str | None:
    if not event.model:
        return "model must be non-empty"
    if not 0 < event.ts < MAX_TS_MS:
        return _ts_reason(event.ts)
    return None


def _decode(raw: bytes | None, decoder: msgspec.json.Decoder, check: Callable[[Any], str | None] | None, what: str,
            limit: int | None = MAX_RECORD_BYTES):
    """Decode and validate one record with ``decoder`` and the semantic ``check`` (None: the types
    say it all), refusing records over ``limit`` bytes (None: the broker's limit only); never raises."""
    if raw is None:
        return Rejected("empty record (null value)", b"")
    if limit is not None and len(raw) > limit:
        return Rejected(f"record is {len(raw)} bytes, over the {MAX_RECORD_BYTES}-byte limit", raw[:1024])
    try:
        event = decoder.decode(raw)
    except msgspec.ValidationError as exc:
        return Rejected(f"invalid {what} event: {exc}", raw)
    except msgspec.DecodeError as exc:
        return Rejected(f"not JSON: {exc}", raw)
    except UnicodeDecodeError as exc:  # invalid UTF-8 inside a string: msgspec raises this one as is
        return Rejected(f"not JSON: invalid UTF-8: {exc}", raw)
    except RecursionError:  # msgspec recurses per nesting level, even into a field it would ignore
        return Rejected(f"invalid {what} event: JSON nested deeper than this service decodes (Python's recursion "
                        f"limit, {sys.getrecursionlimit()}); the contract's values nest at most two levels", raw)
    except Exception as exc:  # noqa: BLE001 - never raises: one record must not stop the stream (issue 17)
        return Rejected(f"undecodable {what} record ({type(exc).__name__}: {exc})", raw)
    reason = check(event) if check is not None else None
    return Rejected(f"invalid {what} event: {reason}", raw) if reason else event


def decode_inference(raw: bytes | None) -> InferenceEvent | Rejected:
    """Decode and validate one inference record; never raises."""
    return _decode(raw, _inference_decoder, _check_inference, "inference")


def decode_label(raw: bytes | None) -> LabelEvent | Rejected:
    """Decode and validate one label record; never raises."""
    return _decode(raw, _label_decoder, _check_label, "label")


def encode(record: msgspec.Struct) -> bytes:
    """Encode any contract record as compact JSON."""
    return _encoder.encode(record)


def decode_anomaly(raw: bytes) -> Anomaly:
    """Decode an anomaly record (our own output, so errors are bugs and raise)."""
    return msgspec.json.decode(raw, type=Anomaly)


def read_anomaly(raw: bytes | None) -> Anomaly | Rejected:
    """Decode one record consumed from the anomalies topic; never raises. The detection plane
    writes them, but whoever may write to the topic can write anything (issue 17: one such
    record crash-looped the response plane): it goes to the dead-letter topic instead."""
    return _decode(raw, _anomaly_decoder, None, "anomaly")


def read_state(raw: bytes | None, decoder: msgspec.json.Decoder, what: str) -> Any | Rejected:
    """Decode one record of a topic holding modelmedic's own state (``decoder``'s type: an
    incident, say); never raises. No size limit but the broker's: state records grow."""
    return _decode(raw, decoder, None, what, limit=None)


def stable_id(*parts: object) -> str:
    """A short deterministic id: the same inputs give the same id across processes and restarts."""
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


def json_schema(struct: type) -> dict:
    """The JSON Schema of a contract struct, as published in ``schemas/``."""
    return msgspec.json.schema(struct)

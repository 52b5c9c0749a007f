"""``modelmedic replay``: what the service computes, offline, from a file.

- A metric CSV (``timestamp,value``, NAB's format): every row's anomaly score in [0, 1]
  from the per-value bank ``detection.metric_bank`` (or ``--detector``), built by
  :func:`~modelmedic.detection.banks.series_bank` as the judge builds a family's
  per-value bank, each row scored before it is learned, through the bank's batch path
  (:func:`~modelmedic.detectors.replay_series`: :class:`CalibratedBank`'s
  ``score_series``, equal to one ``score_learn`` per row; banks without one fall back to
  that, about 50x slower). ``load/nab.py`` (the NAB benchmark) runs through
  :data:`DETECTORS` and :func:`epoch_seconds` too.
- Inference events, JSONL (one record of the ``inference.v1`` contract a line): the real
  detection plane (:class:`~modelmedic.detection.plane.DetectionPlane`: decoder, windows,
  quality monitors, judge) with in-memory Kafka clients, the records partitioned by model
  as Kafka's default partitioner does and handed over in polls of
  ``kafka.max_poll_records``; out come the anomaly records the live service would
  publish, with the same ids. The file's end is the end of the stream, not an outage:
  the windows closed by then are judged (as a stopping service's last checkpoint does)
  and no window is closed by the wall clock, so there are no idle-close anomalies.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
import warnings
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import numpy as np
from aiokafka import TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from modelmedic.config import DetectionSettings, Settings, load_settings
from modelmedic.detection.banks import SERIES_BANKS, series_bank
from modelmedic.detection.plane import DetectionPlane
from modelmedic.detectors import SeriesBank, replay_series
from modelmedic.errors import ModelmedicError
from modelmedic.events import Anomaly, InferenceEvent, decode_anomaly, decode_inference, encode

DETECTORS = {"default": lambda: series_bank(DetectionSettings().metric_bank), **SERIES_BANKS}
"""``--detector`` names: ``default`` (the default ``detection.metric_bank``) and every per-value bank."""


def epoch_seconds(stamp: str) -> float:
    """Event time of a CSV timestamp: epoch seconds or milliseconds, or ISO 8601 (UTC if naive).

    >>> epoch_seconds("2014-04-01 00:05:00"), epoch_seconds("1396310700"), epoch_seconds("1396310700000")
    (1396310700.0, 1396310700.0, 1396310700.0)
    """
    try:
        number = float(stamp)
    except ValueError:
        parsed = datetime.fromisoformat(stamp.strip())
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.timestamp()
    return number / 1000.0 if number > 1e11 else number


def epoch_seconds_all(stamps: list[str]) -> np.ndarray:
    """:func:`epoch_seconds` of every stamp, parsed by numpy where it can (all numbers, or all ISO
    dates without a zone: 0.05 us a row instead of 1.6), else one by one.

    >>> epoch_seconds_all(["2014-04-01 00:05:00", "2014-04-01T00:10:00"]).tolist()
    [1396310700.0, 1396311000.0]
    >>> epoch_seconds_all(["1396310700", "1396310700000"]).tolist(), epoch_seconds_all(["2014-04-01T02:05:00+02:00"]).tolist()
    ([1396310700.0, 1396310700.0], [1396310700.0])
    """
    try:
        number = np.array(stamps, dtype=np.float64)
        return np.where(number > 1e11, number / 1000.0, number)
    except ValueError:
        pass
    if all("-" in s[1:] for s in stamps):  # dates; a number would be read as a year by numpy
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a zone suffix: numpy warns and converts; fromisoformat is exact
            try:
                return np.array(stamps, dtype="datetime64[us]").astype(np.int64) / 1e6
            except (ValueError, UserWarning, DeprecationWarning):
                pass
    return np.array([epoch_seconds(s) for s in stamps], dtype=np.float64)


def _bank(detector: str | None, settings: DetectionSettings) -> SeriesBank:
    if detector in (None, "default"):
        return series_bank(settings.metric_bank)
    return series_bank(detector)


def replay_scores(timestamps: Iterable[str], values: Iterable[float], detector: str | None = None,
                  settings: DetectionSettings | None = None) -> np.ndarray:
    """Anomaly score of every row, in order, each row scored before it is learned.

    ``detector``: a per-value bank's name; None or ``default``: ``settings.metric_bank``.

    >>> import numpy as np
    >>> stamps = [f"2024-01-01 00:{m:02d}:00" for m in range(60)]
    >>> values = 10 + np.sin(np.arange(60.0))
    >>> values[50] = 40
    >>> scores = replay_scores(stamps, values, "robust")
    >>> int(np.argmax(scores)), len(scores)
    (50, 60)
    """
    bank = _bank(detector, settings or DetectionSettings())
    t = epoch_seconds_all(list(timestamps))
    scores, _ = replay_series(bank, np.asarray(list(values), dtype=np.float64), t)
    return scores


def read_csv(path: Path) -> tuple[list[str], list[float]]:
    """The ``timestamp`` and ``value`` columns of a CSV file (blank values become NaN)."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise ModelmedicError(f"cannot read {path}: {exc.strerror}; pass an existing CSV file") from exc
    if rows and not {"timestamp", "value"} <= set(rows[0]):
        raise ModelmedicError(f"{path} has columns {list(rows[0])}; it needs a header with timestamp,value")
    try:
        return [r["timestamp"] for r in rows], [float(r["value"] or "nan") for r in rows]
    except ValueError as exc:
        raise ModelmedicError(f"{path}: {exc}; every value must be a number") from exc


# -- inference events through the real plane ---------------------------------------------


class MemoryProducer:
    """The plane's producer, in memory: takes every record at once and remembers (topic, value)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def send(self, topic: str, value: bytes, **kwargs: Any) -> asyncio.Future:
        self.sent.append((topic, value))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


class _NoFetch:
    """The plane's consumer when records are handed over by hand: nothing assigned, no lag known."""

    def assignment(self) -> set[TopicPartition]:
        return set()

    def highwater(self, tp: TopicPartition) -> int | None:
        return None


class _Record:
    """What the plane reads of a consumer record."""

    __slots__ = ("topic", "partition", "offset", "value", "key")

    def __init__(self, topic: str, partition: int, offset: int, value: bytes, key: bytes) -> None:
        self.topic, self.partition, self.offset, self.value, self.key = topic, partition, offset, value, key


def _records(lines: Iterable[bytes], topic: str, partitions: int) -> Iterator[_Record]:
    """Each line as a record keyed by its model, on the partition Kafka's default partitioner
    gives that key (a line that is no valid event has no model: partition 0, as keyless)."""
    choose, ids, of = DefaultPartitioner(), list(range(partitions)), {}
    offsets = [0] * partitions
    for line in lines:
        event = decode_inference(line)
        key = event.model.encode() if isinstance(event, InferenceEvent) else b""
        p = of.get(key)
        if p is None:
            p = of[key] = choose(key, ids, ids) if key else 0
        yield _Record(topic, p, offsets[p], line, key)
        offsets[p] += 1


async def replay_events(lines: Iterable[bytes], settings: Settings, partitions: int | None = None) -> list[Anomaly]:
    """The anomaly records the detection plane publishes for these inference records, in order.

    ``partitions``: of the inference topic (default ``kafka.partitions``); the ids do not
    depend on it, but which windows a partition has closed when the stream ends does.
    """
    n = partitions or settings.kafka.partitions
    producer = MemoryProducer()
    plane = DetectionPlane(settings, consumer_factory=lambda kafka, **options: _NoFetch(),
                           producer_factory=lambda kafka, **options: producer)
    plane.open_clients()
    for p in range(n):
        plane.parts[p] = plane.fresh_partition()
    topic, poll = settings.kafka.topics.inference, settings.kafka.max_poll_records
    batch: dict[TopicPartition, list] = {}
    size = 0
    for record in _records(lines, topic, n):
        batch.setdefault(TopicPartition(topic, record.partition), []).append(record)
        size += 1
        if size == poll:
            await plane._process(batch)  # what the plane's run loop does with each poll
            batch, size = {}, 0
    await plane._process(batch)
    await plane._checkpoint(list(plane.parts))  # as a stopping service: judge what closed, flush the sends
    return [decode_anomaly(value) for t, value in producer.sent if t == settings.kafka.topics.anomalies]


def _open_output(path: str | None) -> IO[str]:
    return open(path, "w", newline="") if path else sys.stdout


def command(args: argparse.Namespace) -> int:
    """``modelmedic replay FILE``: a CSV metric or a JSONL of inference events, by its suffix."""
    settings = load_settings(args.config)
    path = Path(args.file)
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        if args.detector is not None:
            raise ModelmedicError("--detector applies to a CSV metric; events are judged by the configured "
                                  "banks (detection.latency_bank, errors_bank, throughput_bank in --config)")
        try:
            lines = [line for line in path.read_bytes().splitlines() if line.strip()]
        except OSError as exc:
            raise ModelmedicError(f"cannot read {path}: {exc.strerror}; pass an existing JSONL file") from exc
        anomalies = asyncio.run(replay_events(lines, settings, args.partitions))
        out = _open_output(args.output)
        try:
            out.writelines(encode_line(a) for a in anomalies)
        finally:
            if out is not sys.stdout:
                out.close()
        return 0
    stamps, values = read_csv(path)
    scores = replay_scores(stamps, values, args.detector, settings.detection)
    out = _open_output(args.output)
    try:
        if args.json:  # (the global --json) one JSON object a line, as the events' replay writes
            out.writelines(json.dumps({"timestamp": t, "value": v, "anomaly_score": round(s, 6)}) + "\n"
                           for t, v, s in zip(stamps, values, scores))
        else:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["timestamp", "value", "anomaly_score"])
            writer.writerows((t, repr(v), f"{s:.6f}") for t, v, s in zip(stamps, values, scores))
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def encode_line(anomaly: Anomaly) -> str:
    """One anomaly record as a JSONL line (the anomalies topic's value)."""
    return encode(anomaly).decode() + "\n"

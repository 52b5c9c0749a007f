"""Silences, maintenance windows and remediation pauses: planned quiet, set up before the work.

A :class:`Silence` matches incidents by model (shell-style globs), version and anomaly class,
between a start and an end (epoch ms; the start may be in the future). Its ``kind`` says
what it holds back:

- ``silence``: pages (the incident still runs and remediates);
- ``maintenance``: pages and automatic remediation (planned work on the models);
- ``pause``: automatic remediation only (pages still go: a person acts by hand).

They live in their own compacted Kafka topic (``kafka.topics.silences``), keyed by id, a
tombstone removing one, so every replica and every restart sees the same set: each replica
reads the topic to its end before it takes any anomaly (:func:`follow`) and keeps following
it. ``modelmedic silence`` / ``modelmedic maintenance`` write them (:func:`publish`), with an
audit record naming who.

>>> s = Silence(id="m1", kind="maintenance", models=["pay-*"], starts_ms=1000, ends_ms=2000, created_by="alice")
>>> book = SilenceBook()
>>> book.put(s)
>>> book.muting("pay-eu", "v3", "latency", 1500).id, book.muting("search", "v1", "latency", 1500)
('m1', None)
>>> book.pausing("pay-eu", "v3", "latency", 2500) is None  # over
True
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
import uuid
from typing import Literal

import msgspec

from modelmedic.config import KafkaSettings
from modelmedic.errors import ModelmedicError
from modelmedic.kafka import follow_assigned, follower, producer, read_compacted, topic_partitions

log = logging.getLogger(__name__)

Kind = Literal["silence", "maintenance", "pause"]
PREFIX: dict[str, str] = {"silence": "s", "maintenance": "mw", "pause": "p"}
"""How the id of each kind starts (``mw-3f2a1c9b``): a person tells them apart in a list."""
KINDS: dict[str, str] = {"silence": "pages held back", "maintenance": "pages and automatic remediation held back",
                         "pause": "automatic remediation paused (pages still go)"}


class SilenceError(ModelmedicError):
    """A silence that cannot be created (an end before its start, no matcher...)."""


class Silence(msgspec.Struct, frozen=True):
    """Quiet for the incidents it matches, from ``starts_ms`` to ``ends_ms``."""

    id: str
    kind: Kind
    models: list[str]
    """Shell-style globs of model names (``fraud-*``); ``*`` is every model."""
    starts_ms: int
    ends_ms: int
    created_by: str
    versions: list[str] | None = None
    """Versions it covers; None: any."""
    classes: list[str] | None = None
    """Anomaly classes it covers; None: any."""
    comment: str = ""
    created_ms: int = 0

    @property
    def mutes_pages(self) -> bool:
        return self.kind != "pause"

    @property
    def pauses_remediation(self) -> bool:
        return self.kind != "silence"

    def covers(self, model: str, version: str, anomaly_class: str, at_ms: int) -> bool:
        return (self.starts_ms <= at_ms < self.ends_ms
                and any(fnmatch.fnmatchcase(model, glob) for glob in self.models)
                and (self.versions is None or version in self.versions)
                and (self.classes is None or anomaly_class in self.classes))

    def describe(self) -> str:
        """``maintenance m1 (pay-*, until 2026-01-01 04:00 UTC)``: for pages and the audit."""
        until = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.ends_ms / 1000))
        return f"{self.kind} {self.id} ({', '.join(self.models)}, until {until})"


def check(silence: Silence) -> Silence:
    """``silence`` if it can hold anything back; :class:`SilenceError` saying what to fix otherwise."""
    if silence.ends_ms <= silence.starts_ms:
        raise SilenceError(f"{silence.kind} {silence.id}: it ends before it starts; give an end after the start")
    if not silence.models:
        raise SilenceError(f"{silence.kind} {silence.id}: no model matcher; give --model (a glob, '*' for all)")
    return silence


def new_silence(kind: Kind, models: list[str], starts_ms: int, ends_ms: int, created_by: str, *,
                versions: list[str] | None = None, classes: list[str] | None = None, comment: str = "") -> Silence:
    """A new silence with a fresh id, checked by :func:`check` (``modelmedic silence add`` and the API make them so)."""
    return check(Silence(id=f"{PREFIX[kind]}-{uuid.uuid4().hex[:8]}", kind=kind, models=models, starts_ms=starts_ms,
                         ends_ms=ends_ms, created_by=created_by, versions=versions, classes=classes, comment=comment,
                         created_ms=int(time.time() * 1000)))


def audit_record(silence: Silence, action: str, by: str) -> dict:
    """An audit record in the response plane's shape (``model``: the silence's globs)."""
    return {"ts": int(time.time() * 1000), "actor": by, "action": action, "incident_id": "",
            "model": ",".join(silence.models), "version": ",".join(silence.versions or ["*"]),
            "anomaly_class": ",".join(silence.classes or ["*"]), "state": "",
            "details": {"silence": msgspec.to_builtins(silence)}}


class SilenceBook:
    """The silences known, by id (pure; :func:`follow` keeps it equal to the topic)."""

    def __init__(self) -> None:
        self.by_id: dict[str, Silence] = {}

    def put(self, silence: Silence) -> None:
        self.by_id[silence.id] = silence

    def remove(self, silence_id: str) -> None:
        self.by_id.pop(silence_id, None)

    def current(self, now_ms: int) -> list[Silence]:
        """Active and scheduled ones (not over), soonest end first."""
        return sorted((s for s in self.by_id.values() if s.ends_ms > now_ms), key=lambda s: (s.ends_ms, s.id))

    def muting(self, model: str, version: str, anomaly_class: str, at_ms: int) -> Silence | None:
        """The silence holding back this incident's pages now, if any."""
        return next((s for s in self.current(at_ms) if s.mutes_pages and s.covers(model, version, anomaly_class, at_ms)),
                    None)

    def pausing(self, model: str, version: str, anomaly_class: str, at_ms: int) -> Silence | None:
        """The silence pausing this incident's automatic remediation now, if any."""
        return next((s for s in self.current(at_ms)
                     if s.pauses_remediation and s.covers(model, version, anomaly_class, at_ms)), None)


_DECODER = msgspec.json.Decoder(Silence)


async def follow(settings: KafkaSettings, book: SilenceBook, loaded: asyncio.Event, stop: asyncio.Event) -> None:
    """Keep ``book`` equal to the silences topic: read it to its end (then set ``loaded``), and
    follow it until ``stop``. A record that does not decode is logged and skipped (never a
    silence nobody meant)."""
    c = follower(settings)
    await c.start()
    try:
        tps = await topic_partitions(c, settings.topics.silences)
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        ends = await c.end_offsets(tps)
        await follow_assigned(c, ends, loaded, stop, lambda tp, r: _apply(book, r.key, r.value))
    finally:
        await c.stop()


def _apply(book: SilenceBook, key: bytes | None, value: bytes | None) -> None:
    if value is None:
        book.remove((key or b"").decode())
        return
    try:
        book.put(_DECODER.decode(value))
    except msgspec.DecodeError as exc:
        log.error("silences topic: unreadable record %r skipped (%s)", key, exc)


async def publish(settings: KafkaSettings, silence_id: str, silence: Silence | None, audit: dict) -> None:
    """Write a silence (or, for None, its tombstone) and its audit record, both acknowledged by Kafka."""
    p = producer(settings)
    await p.start()
    try:
        await p.send_and_wait(settings.topics.silences, None if silence is None else msgspec.json.encode(silence),
                              key=silence_id.encode())
        await p.send_and_wait(settings.topics.audit, msgspec.json.encode(audit), key=b"*silences*")
    finally:
        await p.stop()


async def add(settings: KafkaSettings, silence: Silence) -> None:
    """Publish a new silence, audited as ``<kind>-added`` by its creator."""
    await publish(settings, silence.id, silence, audit_record(silence, f"{silence.kind}-added", silence.created_by))


async def remove(settings: KafkaSettings, silence: Silence, by: str) -> None:
    """End a silence now (its tombstone), audited as ``<kind>-removed`` by ``by``."""
    await publish(settings, silence.id, None, audit_record(silence, f"{silence.kind}-removed", by))


async def read_all(settings: KafkaSettings) -> SilenceBook:
    """Every silence in the topic now (the CLI's ``list``)."""
    book = SilenceBook()
    for key, value in (await read_compacted(settings, settings.topics.silences)).items():
        _apply(book, key, value)
    return book

"""Live testing: a candidate runs in shadow on mirrored production traffic, then is judged.

Certification replays recorded requests; live testing watches the real ones. The model's
servers mirror requests to the candidate (role ``shadow``, same ``request_id``), and this
module reads the inference topic for a set time, pairs every shadow prediction with the
production prediction of the same request, and compares:

- latency: the shadow's p99 against production's (a ratio gate);
- errors: the shadow's error rate against production's (a difference gate);
- predictions: how often the shadow disagrees with production on the same request.

The verdict, with every gate's observed value and threshold, is recorded next to the
version in the registry (``<v>.livetest.json`` and ``.md``): a pass is evidence for the
release, a failure says which gate and by how much.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

from aiokafka import TopicPartition
from pydantic import BaseModel, ConfigDict, Field

from modelmedic.config import KafkaSettings
from modelmedic.events import InferenceEvent, decode_inference
from modelmedic.errors import KafkaUnavailable
from modelmedic.kafka import consumer as make_consumer
from modelmedic.kafka import topic_partitions

MAX_SAMPLES = 200_000
"""Latencies kept per role (a reservoir would be fairer; a live test is minutes, not days)."""


class LiveTestPolicy(BaseModel):
    """When a shadow candidate passes its live test."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    p99_ratio: float = Field(1.25, gt=0)
    """Shadow p99 latency at most this many times production's."""
    error_rate_delta: float = Field(0.01, ge=0)
    """Shadow error rate at most production's plus this."""
    max_disagreement: float = Field(0.05, ge=0, le=1)
    """Share of paired requests on which the shadow's prediction differs from production's."""
    min_pairs: int = Field(200, ge=1)
    """Fewer paired requests than this is no evidence: the test fails as inconclusive."""
    tolerance: float = Field(1e-6, ge=0)
    """Numbers closer than this (relative to production's) agree."""


@dataclass
class RoleStats:
    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    def add(self, event: InferenceEvent) -> None:
        self.requests += 1
        self.errors += not event.ok
        if len(self.latencies) < MAX_SAMPLES:
            self.latencies.append(event.latency_ms)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else math.nan

    @property
    def p99(self) -> float:
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


@dataclass
class LiveTestStats:
    """What was seen of one model during the test: production, the shadow, and their pairs."""

    model: str
    version: str
    production: RoleStats = field(default_factory=RoleStats)
    shadow: RoleStats = field(default_factory=RoleStats)
    pairs: int = 0
    disagreements: int = 0
    _waiting: dict[str, tuple[str, object]] = field(default_factory=dict)

    def observe(self, event: InferenceEvent, tolerance: float) -> None:
        """Take one event of the model (others are ignored)."""
        if event.model != self.model:
            return
        if event.role == "shadow":
            if event.version != self.version:
                return
            self.shadow.add(event)
        elif event.role == "production":
            self.production.add(event)
        else:
            return
        if not event.ok or event.prediction is None:
            return
        other = self._waiting.pop(event.request_id, None)
        if other is None or other[0] == event.role:
            self._waiting[event.request_id] = (event.role, event.prediction)
            if len(self._waiting) > MAX_SAMPLES:
                self._waiting.pop(next(iter(self._waiting)))
            return
        self.pairs += 1
        self.disagreements += not _agree(event.prediction, other[1], tolerance)


def _agree(a: object, b: object, tolerance: float) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return abs(float(a) - float(b)) <= tolerance * max(1.0, abs(float(a)), abs(float(b)))
    return a == b


def judge(stats: LiveTestStats, policy: LiveTestPolicy) -> dict:
    """The verdict: every gate with what was observed and what was allowed."""
    disagreement = stats.disagreements / stats.pairs if stats.pairs else math.nan
    gates = [
        _gate("paired requests", stats.pairs, policy.min_pairs, stats.pairs >= policy.min_pairs, ">="),
        _gate("p99 latency (ms) vs production", stats.shadow.p99, policy.p99_ratio * stats.production.p99,
              stats.shadow.p99 <= policy.p99_ratio * stats.production.p99, "<="),
        _gate("error rate vs production", stats.shadow.error_rate, stats.production.error_rate + policy.error_rate_delta,
              stats.shadow.error_rate <= stats.production.error_rate + policy.error_rate_delta, "<="),
        _gate("disagreement with production", disagreement, policy.max_disagreement,
              disagreement <= policy.max_disagreement, "<="),
    ]
    return {
        "model": stats.model, "version": stats.version, "passed": all(g["passed"] for g in gates), "gates": gates,
        "production": {"requests": stats.production.requests, "error_rate": _num(stats.production.error_rate),
                       "p99_ms": _num(stats.production.p99)},
        "shadow": {"requests": stats.shadow.requests, "error_rate": _num(stats.shadow.error_rate),
                   "p99_ms": _num(stats.shadow.p99)},
        "policy": policy.model_dump(),
    }


def _gate(name: str, observed: float, threshold: float, passed: bool, op: str) -> dict:
    return {"gate": name, "observed": _num(observed), "threshold": _num(threshold), "op": op, "passed": bool(passed)}


def _num(x: float) -> float | int | None:
    if isinstance(x, int):
        return x
    return None if math.isnan(x) else round(float(x), 6)


def render_markdown(report: dict) -> str:
    """The verdict as people read it in the registry."""
    verdict = "PASSED" if report["passed"] else "FAILED"
    lines = [f"# Live test of {report['model']} {report['version']} in shadow: {verdict}", "",
             "| gate | observed | allowed | |", "|---|---:|---:|---|"]
    for g in report["gates"]:
        lines.append(f"| {g['gate']} | {g['observed']} | {g['op']} {g['threshold']} | {'pass' if g['passed'] else 'FAIL'} |")
    p, s = report["production"], report["shadow"]
    lines += ["", f"Production: {p['requests']} requests, error rate {p['error_rate']}, p99 {p['p99_ms']} ms.",
              f"Shadow: {s['requests']} requests, error rate {s['error_rate']}, p99 {s['p99_ms']} ms.", ""]
    return "\n".join(lines)


async def observe(kafka: KafkaSettings, model: str, version: str, duration_s: float, policy: LiveTestPolicy,
                  *, from_beginning: bool = False) -> LiveTestStats:
    """Watch the inference topic for ``duration_s`` (from now, or from the beginning to its end)."""
    stats = LiveTestStats(model, version)
    c = make_consumer(kafka, group_id=None)
    await c.start()
    try:
        tps = await topic_partitions(c, kafka.topics.inference)
        if not tps:
            raise KafkaUnavailable(f"topic {kafka.topics.inference} has no partitions: is it the inference topic?")
        c.assign(tps)
        if from_beginning:
            await c.seek_to_beginning(*tps)
            ends = await c.end_offsets(tps)
        else:
            await c.seek_to_end(*tps)
            ends = None
        deadline = time.monotonic() + duration_s
        while time.monotonic() < deadline:
            batch = await c.getmany(timeout_ms=200)
            for records in batch.values():
                for r in records:
                    event = decode_inference(r.value)
                    if isinstance(event, InferenceEvent):
                        stats.observe(event, policy.tolerance)
            if ends is not None and all(await asyncio.gather(*(_at_end(c, tp, ends[tp]) for tp in tps))):
                break
    finally:
        await c.stop()
    return stats


async def _at_end(c, tp: TopicPartition, end: int) -> bool:
    return await c.position(tp) >= end

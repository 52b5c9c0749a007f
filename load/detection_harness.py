"""Detection quality on generated fleets: which incidents are found, how fast, and how many
false alarms, per incident kind.

    .venv/bin/python load/detection_harness.py --small            # CI size: 30 models, 3 h
    .venv/bin/python load/detection_harness.py                    # the benchmark: 200 models, 1 day

Two fleets of the same shape (``load/fleet.py``: :func:`~load.fleet.realistic`, rates
log-uniform in ``--rates``) are generated: a **quiet** one, where the only changes are
normal deploys (+3% latency: not incidents), and an **incident** one, where every entry
of :data:`LIBRARY` breaks one model (a storm breaks a dozen at once), each on its own
model, staggered after a warm-up. Each fleet's inference and label records go through
the real detection plane at the settings of ``--config`` (default: the service's
defaults), offline (``modelmedic.testing``'s plane: decode, windows, quality monitor,
judge; no fetch), as polls of a consumer that keeps up with the traffic.

Scoring, per ground-truth entry: a firing anomaly of one of its models whose window ends
between its start and ``MATCH_GRACE_S`` after its end detects it; the delay is that
window's end minus the start (event time), compared with the entry's deadline and with
``bound s``, what the data allow (:func:`information_bound_s`: the expected delay of a test
designed for exactly that change at the judge's false-alarm budget). Pages: the
real response plane (incidents, storms, storm holds; no Kubernetes, so no remediation)
folds the anomalies in, its clock set to the stream's event time, and every first page
its alerter sends is counted (``page s``: event time from the start to the first page).
Anomalies and pages matching no incident are false, counted per model-day of the fleet
(deploys are not incidents: anything on them is false). Poison records must all reach
the dead-letter topic.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import math
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timezone
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from aiokafka import TopicPartition
from scipy.special import ndtr, ndtri
from aiokafka.partitioner import DefaultPartitioner

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from load.fleet import (  # noqa: E402
    FLAP_HALF_PERIOD_S, START_MS, TAIL_FRACTION, FleetSpec, Incident, ModelProfile, profiles, realistic, rough, stream,
)
from modelmedic.config import Settings, load_settings  # noqa: E402
from modelmedic.detectors.sequential import threshold_for  # noqa: E402
from modelmedic.detection.quality import QualityMonitor  # noqa: E402
from modelmedic.events import Anomaly, Rejected, decode_anomaly, decode_inference  # noqa: E402
from modelmedic.alerting import Alert, Alerter  # noqa: E402
from modelmedic.response.plane import ResponsePlane  # noqa: E402
from modelmedic.testing.plane import FakeProducer, Record, offline_plane  # noqa: E402

MATCH_GRACE_S = 900.0
"""Anomalies up to this long after an incident's end still belong to it (recovery lag)."""
DAY_S = 86_400.0


@dataclass(frozen=True)
class Kind:
    """One entry of the incident library: what the fleet does and what the service should do."""

    name: str
    fleet_kind: str
    magnitude: float
    duration_s: float
    expected_class: str | None
    """The anomaly class it should be paged as; None: must not page (deploy, poison)."""
    deadline_s: float
    models: int = 1
    max_pages: int = 1
    """First pages it may take per class it shows (:attr:`Row.paged_too_often`): one incident a problem; a problem
    of another class on the model (a bad release's errors beside its latency) has its own rule and its own page."""


LIBRARY: tuple[Kind, ...] = (
    Kind("latency step x2", "latency_spike", 2.0, 3600, "latency", 600),
    Kind("latency step x4", "latency_spike", 4.0, 3600, "latency", 600),
    Kind("latency creep +2%/10min", "creep", 0.02, 6 * 3600, "latency", 3 * 3600),
    Kind("throughput drop -30%", "throughput_collapse", 0.7, 7200, "throughput", 3600),
    Kind("throughput drop -90%", "throughput_collapse", 0.1, 3600, "throughput", 900),
    Kind("surge x3", "surge", 3.0, 3600, "throughput", 900),
    Kind("error burst 13%", "error_burst", 0.13, 3600, "errors", 900),
    Kind("storm: 12 models latency x3", "latency_spike", 3.0, 1800, "latency", 600, models=12),
    Kind("flapping x3 every 3 min", "flapping", 3.0, 3600, "latency", 900),
    Kind("bad release x3", "bad_version", 3.0, 3600, "latency", 600),
    Kind("poison records 5%", "poison", 0.05, 1800, None, 300, max_pages=0),
    Kind("tail: 10% of requests x4 (p99 ~3x)", "tail", 4.0, 3600, "latency", 900),
)
DEPLOY = Kind("normal deploy +3% (not an incident)", "deploy", 1.03, math.inf, None, 0, max_pages=0)


@dataclass(frozen=True)
class Truth:
    """Ground truth of one injected change."""

    kind: Kind
    models: tuple[str, ...]
    rate: float
    """Request rate (req/s, before seasonality) of its slowest model."""
    start_ms: int
    end_ms: int

    def covers(self, model: str, t_ms: int) -> bool:
        return model in self.models and self.start_ms <= t_ms <= self.end_ms + MATCH_GRACE_S * 1000


@dataclass(frozen=True)
class Scenario:
    """A fleet, what is injected into it, and for how long."""

    name: str
    spec: FleetSpec
    duration_s: float
    incidents: tuple[Incident, ...]
    truths: tuple[Truth, ...]
    start_ms: int = START_MS
    """Event time of the run's first record."""


@dataclass(frozen=True)
class Shape:
    """A fleet shape and its schedule: a warm-up, then one incident every ``spacing_s``."""

    models: int
    duration_s: float
    warmup_s: float
    spacing_s: float
    rates: tuple[float, float]
    min_rate: float = 0.05
    """Incidents go to models serving at least this many req/s (the issue's target traffic)."""
    rough: bool = False
    """Traffic with the irregularities of :func:`load.fleet.rough` (wandering rates, batches, slow outliers)."""
    start_ms: int = START_MS
    """Event time of the first record: a Monday by default, so two days see no weekend (``--start`` moves it)."""
    seasonality: float | None = None
    """The daily cycle's amplitude (None: :func:`load.fleet.realistic`'s 0.6, a night at a quarter of the peak;
    0.95: at 2.6%, a business application's night)."""
    weekend: float | None = None
    """Weekend traffic as a share of the weekdays' (None: :func:`load.fleet.realistic`'s 0.6)."""
    business: float | None = None
    """Business days ramping over this many hours at 08:00 and 17:00 local (None: the sine; ``FleetSpec.business_ramp_h``)."""
    latency_load: float | None = None
    """Latency following load with this exponent (None: none; ``FleetSpec.latency_load``)."""
    error_load: float | None = None
    """Errors following load with this exponent (None: none; ``FleetSpec.error_load``)."""
    input_cycle: float | None = None
    """Inputs with a daily cycle of this many standard deviations (None: none; ``FleetSpec.input_cycle``)."""
    latency_sigma: float | None = None
    """The per-request lognormal latency's shape (None: :func:`load.fleet.realistic`'s 0.3; ``FleetSpec.latency_sigma``)."""
    canary_fraction: float | None = None
    """Share of a mirrored model's requests its canary and shadow get (None: :func:`load.fleet.realistic`'s 1)."""


SMALL = Shape(models=30, duration_s=3 * 3600, warmup_s=3600, spacing_s=300, rates=(0.05, 5.0))
FULL = Shape(models=200, duration_s=DAY_S, warmup_s=6 * 3600, spacing_s=5400, rates=(0.01, 5.0))


def _truth(kind: Kind, chosen: Sequence[ModelProfile], start_s: float, duration_s: float, t0_ms: int) -> Truth:
    return Truth(kind, tuple(p.model for p in chosen), min(p.rate for p in chosen),
                 t0_ms + int(start_s * 1000), t0_ms + int((start_s + duration_s) * 1000))


def scenarios(shape: Shape, seed: int) -> tuple[Scenario, Scenario]:
    """The quiet and the incident fleet of ``shape``: the same models and traffic; deploys on
    every fifth model of the quiet one; :data:`LIBRARY` in the other, each kind as many
    times as the schedule fits, each on models no other entry touches."""
    spec = realistic(shape.models, seed=seed, rate_range=shape.rates)
    cycles = {"seasonality": shape.seasonality, "weekend": shape.weekend, "business_ramp_h": shape.business,
              "latency_load": shape.latency_load, "error_load": shape.error_load, "input_cycle": shape.input_cycle,
              "latency_sigma": shape.latency_sigma, "canary_fraction": shape.canary_fraction}
    spec = replace(spec, **{name: value for name, value in cycles.items() if value is not None})
    spec = rough(spec) if shape.rough else spec
    fleet = profiles(spec)
    rng = np.random.default_rng([seed, 7])
    deploys = [p for p in fleet[4::5]]
    deploy_starts = rng.uniform(shape.warmup_s, shape.duration_s - 3600, len(deploys))
    quiet_incidents = tuple(Incident("deploy", p.model, float(t), shape.duration_s - float(t), DEPLOY.magnitude)
                            for p, t in zip(deploys, deploy_starts))
    quiet_truths = tuple(_truth(DEPLOY, [p], float(t), shape.duration_s - float(t), shape.start_ms) for p, t in zip(deploys, deploy_starts))
    quiet = Scenario("quiet", spec, shape.duration_s, quiet_incidents, quiet_truths, shape.start_ms)

    free = [p for p in rng.permutation(np.array(fleet, dtype=object)).tolist() if p.rate >= shape.min_rate]
    starts = np.arange(shape.warmup_s, shape.duration_s - 1800, shape.spacing_s)
    incidents: list[Incident] = []
    truths: list[Truth] = []
    for kind, start_s in zip(itertools.cycle(LIBRARY), starts.tolist()):
        if len(free) < kind.models:
            break
        chosen, free = free[:kind.models], free[kind.models:]
        duration_s = min(kind.duration_s, shape.duration_s - start_s)
        incidents += [Incident(kind.fleet_kind, p.model, start_s, duration_s, kind.magnitude) for p in chosen]  # type: ignore[arg-type]
        truths.append(_truth(kind, chosen, start_s, duration_s, shape.start_ms))
    return quiet, Scenario("incidents", spec, shape.duration_s, tuple(incidents), tuple(truths), shape.start_ms)


# -- what the data allow -------------------------------------------------------------------

CREEP_STEP_S = 600.0
"""A ``creep`` multiplies the latency by ``1 + magnitude`` once per this many seconds (load/fleet.py)."""


def _bernoulli_kl(p1: float, p0: float) -> float:
    """Nats per request telling a rate ``p1`` from ``p0``."""
    return p1 * math.log(p1 / p0) + (1 - p1) * math.log((1 - p1) / (1 - p0))


def information_per_request(kind: Kind, profile: ModelProfile, sigma: float, elapsed_s: np.ndarray,
                            clump: float = 1.0) -> np.ndarray:
    """Nats per usual request that ``kind`` gives, ``elapsed_s`` into it, against the model as it was:
    the Kullback-Leibler divergence of the changed metric from the usual one, per request of its
    usual traffic (the drift of the log-likelihood ratio of a test designed for exactly this change).

    Latency is lognormal with log spread ``sigma`` (a shift ``d`` gives ``d^2 / (2 sigma^2)``);
    traffic is Poisson (a rate ``m`` times the usual gives ``m ln m - m + 1`` per usual request), or
    Poisson batches of ``clump`` requests on average (:func:`load.fleet.rough`): the same per usual
    batch, so ``clump`` times less per request (a batch's size says nothing of the rate);
    errors and the share of requests over the usual p99 are Bernoulli trials, errors one per batch
    (a batch succeeds or fails as one: ``clump`` times less per request; before 2026-12-05 a
    batch's requests failed independently). A ``tail`` is
    counted by the share over p99, the statistic the judge reads. Kinds that are not incidents give 0.
    """
    m, zero = kind.magnitude, np.zeros_like(elapsed_s)
    step = math.log(max(m, 1e-12)) ** 2 / (2 * sigma**2)
    if kind.fleet_kind == "latency_spike":
        return zero + step
    if kind.fleet_kind == "bad_version":  # latency x m and errors x m^2
        return zero + step + _bernoulli_kl(min(profile.error_rate * m * m, 0.999), profile.error_rate) / clump
    if kind.fleet_kind == "flapping":  # slow for a half period, then normal as long
        return step * ((elapsed_s % (2 * FLAP_HALF_PERIOD_S)) < FLAP_HALF_PERIOD_S)
    if kind.fleet_kind == "creep":
        return (np.floor(elapsed_s / CREEP_STEP_S) * math.log1p(m)) ** 2 / (2 * sigma**2)
    if kind.fleet_kind in ("throughput_collapse", "surge"):
        return zero + (m * math.log(m) - m + 1) / clump
    if kind.fleet_kind == "error_burst":
        return zero + _bernoulli_kl(m, profile.error_rate) / clump
    if kind.fleet_kind == "tail":
        usual = 0.01
        slowed = float(ndtr(math.log(m) / sigma - ndtri(1 - usual)))
        return zero + _bernoulli_kl((1 - TAIL_FRACTION) * usual + TAIL_FRACTION * slowed, usual)
    return zero


def wander_variance(spec: FleetSpec, rate: float, elapsed_s: np.ndarray) -> np.ndarray:
    """The variance that the rate's own wander (``spec.rate_wander``, an Ornstein-Uhlenbeck walk of the
    log rate: variance ``s^2``, time constant ``tau``) adds to a step's log-size read ``elapsed_s`` into it,
    by a test that knows the walk's law: the lesser of two references.

    - **The rate just before the step**: known at best to the Kalman-Bucy filter's steady error of the walk
      seen through counts of ``rate`` (a batch count's relative variance ``clump / rate`` a second), and
      the walk moves on after it (the mean of its path over ``t`` strays ``q t / 3`` from its start, ``q =
      2 s^2 / tau`` its diffusion);
    - **the walk's long-run mean**, known exactly (days of history): the mean of ``t`` seconds of the walk
      strays ``2 s^2 (tau / t) (1 - (tau / t) (1 - exp(-t / tau)))`` from it.

    A -30% drop (``d^2`` 0.127) at the judge's ``h`` (about 20.6 nats: ``d^2 / 2h`` = 0.0031) on
    :func:`load.fleet.rough`'s walk (``s`` 0.1, half an hour; batches of two) stays beyond reach below
    about 20 req/s: the filter's error alone is 0.0024 at 3 req/s, and the long-run mean's 0.0057 after an
    hour. A x3 surge (``d^2`` 1.21) barely notices it."""
    s2, tau = spec.rate_wander**2, spec.rate_wander_s
    q, r = 2 * s2 / tau, spec.clump / max(rate, 1e-12)
    onset = r * (math.sqrt(1 / tau**2 + q / r) - 1 / tau)
    x = elapsed_s / tau
    return np.minimum(onset + q * elapsed_s / 3, 2 * s2 / x * (1 - (1 - np.exp(-x)) / x))


def information_bound_s(kind: Kind, profile: ModelProfile, spec: FleetSpec, start_ms: int, h: float,
                        horizon_s: float = 2 * DAY_S) -> float:
    """Seconds until the evidence of ``kind`` on ``profile`` from ``start_ms`` is worth ``h`` nats on
    average: the expected delay (overshoot aside) of a CUSUM designed for exactly this change, at
    the judge's false-alarm budget. No detector with that budget does much better on average
    (Lorden 1971: ``h / KL`` is asymptotically the least worst-case delay), so an incident kind is
    detectable within a third of its deadline on a model only where this is below that third.
    The usual traffic follows the fleet's daily cycle and its weekends (before 2026-12-05 not its
    weekends: a Sunday's bound was the weekday's, 561 s where 60% of the traffic allows about 900), and
    a rate change is told from the rate's own wander (:func:`wander_variance`; before 2026-12-06 the bound
    held rough fleets' -30% drops at 0.5-3 req/s to 184-814 s, as if the rate stood still); inf:
    not within ``horizon_s``.
    """
    elapsed = np.arange(horizon_s)
    t_ms = start_ms + 1000 * elapsed
    rate = spec.seasonal_rate(profile.rate, profile.phase, t_ms)
    evidence = np.cumsum(rate * information_per_request(kind, profile, spec.latency_sigma, elapsed, spec.clump))
    if kind.fleet_kind in ("throughput_collapse", "surge") and spec.rate_wander:
        # Gaussian terms: the step's log-size d is known to a variance d^2 / (2 E) from the counts alone; the
        # wander adds its own, which no count removes.
        d2 = math.log(kind.magnitude) ** 2
        evidence = evidence / (1 + 2 * evidence * wander_variance(spec, float(rate[0]), elapsed + 1) / d2)
    reached = np.flatnonzero(evidence >= h)
    return float(reached[0] + 1) if reached.size else math.inf


# -- running -------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What the service did with one fleet."""

    anomalies: list[Anomaly] = field(default_factory=list)
    pages: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    """(event time, models) of every first page: one model, or a storm's members."""
    dead_letters: int = 0
    poisoned: int = 0
    """Records of the fleet that break the contract (``poison``), counted as generated."""
    events: int = 0
    seconds: float = 0.0


class _Accepting:
    """Takes the response plane's incident and audit records at once (offline: no Kafka)."""

    async def send(self, topic: str, value: bytes, **kwargs: object) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def send_and_wait(self, topic: str, value: bytes, **kwargs: object) -> None:
        return None


class Pager:
    """The real response plane on the anomalies, in event time (offline runs): its clock is the
    latest anomaly's window end, so storm windows and storm holds run as they would live;
    every first page (escalation level 0) a sink receives is recorded with that time."""

    name = "harness"
    idempotent = True
    """(A sink attribute: pages to it need no "sending" mark first.)"""

    def __init__(self, settings: Settings) -> None:
        self.now_ms = 0
        self.pages: list[tuple[int, tuple[str, ...]]] = []
        self.plane = ResponsePlane(settings, Alerter([self]), clock=lambda: self.now_ms)
        self.plane._producer = _Accepting()  # ResponsePlane builds its producer only in run()

    async def send(self, alert: Alert) -> None:
        if alert.status == "firing" and alert.escalation_level == 0:
            models = alert.evidence.get("models") if alert.model == "*" else None
            self.pages.append((self.now_ms, tuple(models or (alert.model,))))

    async def aclose(self) -> None:
        return None

    async def batch(self, anomalies: list[Anomaly]) -> None:
        self.now_ms = max(self.now_ms, max(a.window_end for a in anomalies))
        await self.plane.handle_batch(anomalies)
        await self.plane.courier.idle()

    async def advance(self, to_ms: int) -> None:
        """Event time runs on to ``to_ms`` (the stream's, as the wall clock runs on live): held
        incidents past their storm hold page then, not when the next anomaly comes."""
        self.now_ms = max(self.now_ms, to_ms)
        await self.plane.tick()
        await self.plane.courier.idle()


class _Partitions:
    """Kafka's default partition of each key (murmur2 is slow in Python: once per model)."""

    def __init__(self, partitions: int) -> None:
        self.ids, self.choose, self.of = list(range(partitions)), DefaultPartitioner(), {}

    def __call__(self, key: bytes) -> int:
        p = self.of.get(key)
        if p is None:
            p = self.of[key] = self.choose(key, self.ids, self.ids)
        return p


def _polls(records: Sequence[tuple[str, bytes, bytes]], partition: _Partitions, offsets: dict[TopicPartition, int],
           poll: int) -> Iterator[dict[TopicPartition, list[Record]]]:
    """(topic, key, value) records as consumer polls of at most ``poll`` records, partitioned like the producer."""
    for at in range(0, len(records), poll):
        batch: dict[TopicPartition, list[Record]] = {}
        for topic, key, value in records[at:at + poll]:
            tp = TopicPartition(topic, partition(key))
            offset = offsets.get(tp, 0)
            offsets[tp] = offset + 1
            batch.setdefault(tp, []).append(Record(topic, tp.partition, offset, value, key))
        yield batch


async def run_offline(scenario: Scenario, settings: Settings, *, partitions: int = 6, chunk_s: float = 10.0,
                      pager: Pager | None = None) -> Outcome:
    """The scenario's records through the real detection plane without Kafka, as polls of a
    consumer that keeps up (every partition's records of ``chunk_s`` of event time per poll).

    Shut windows are judged in the poll that shut them (``detection.judge_batch_ms`` = 0): a live
    consumer that keeps up waits at most that many milliseconds of wall time for the other
    partitions' windows, a few milliseconds of event time. Here a poll is ``chunk_s`` of event
    time and the wait was measured on this machine's clock, so which poll judged a window (and
    the page times the pager derives from it) varied run to run by up to 50 s."""
    detection = settings.detection.model_copy(update={"judge_batch_ms": 0})
    settings = settings.model_copy(update={"detection": detection})
    d, topics = settings.detection, settings.kafka.topics
    producer = FakeProducer()
    quality = (lambda: QualityMonitor(settings.windows.size_ms, settings.quality,  # as the plane builds them
                                      label_sample_every=d.quality_sample_every)) if d.quality else None
    plane = offline_plane(settings, partitions, quality, producer=producer)
    pager = pager or Pager(settings)
    poisoned = {i.model.encode() for i in scenario.incidents if i.kind == "poison"}
    outcome, offsets, seen, partition = Outcome(), {}, 0, _Partitions(partitions)
    started = time.process_time()
    for chunk in stream(scenario.spec, scenario.incidents, scenario.start_ms, scenario.duration_s, chunk_s=chunk_s):
        records = [(topics.inference, k, v) for k, v in chunk.inference] + [(topics.labels, k, v) for k, v in chunk.labels]
        outcome.events += len(records)
        outcome.poisoned += sum(decode_inference(v).__class__ is Rejected for k, v in chunk.inference if k in poisoned)
        for batch in _polls(records, partition, offsets, settings.kafka.max_poll_records):
            await plane._process(batch)
            await asyncio.sleep(0)  # one loop turn: the plane's sends (ensure_future) reach the producer
            fresh, seen = producer.sent[seen:], len(producer.sent)
            anomalies = [decode_anomaly(value) for topic, value in fresh if topic == topics.anomalies]
            outcome.dead_letters += sum(topic == topics.dlq for topic, _ in fresh)
            if anomalies:
                await pager.batch(anomalies)
                outcome.anomalies += anomalies
        await pager.advance(int(chunk.end_ms))
    outcome.seconds = time.process_time() - started
    outcome.pages = pager.pages
    return outcome


# -- scoring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """How the service did on one ground-truth entry."""

    truth: Truth
    delay_s: float | None
    """Event time from the start to the end of the first matching firing window; None: missed."""
    classes: tuple[str, ...]
    pages: int
    page_s: float | None = None
    """Event time from the start to its first page; None: not paged."""
    bound_s: float = math.inf
    """What the data allow: :func:`information_bound_s` on its quickest model (inf: not an incident)."""

    @property
    def bar_s(self) -> float | None:
        """The delay this instance is held to: a third of its deadline where the data allow it on
        average (``bound_s`` within that third), else its deadline where they allow that; None
        where no detector at the judge's false-alarm budget could be expected to find it in time,
        or where the run ends (incident and grace) before the bar."""
        deadline, ran_s = self.truth.kind.deadline_s, (self.truth.end_ms - self.truth.start_ms) / 1000 + MATCH_GRACE_S
        return next((bar for bar in (deadline / 3, deadline) if self.bound_s <= bar <= ran_s), None)

    @property
    def detected(self) -> bool:
        return self.delay_s is not None

    @property
    def in_time(self) -> bool:
        return self.delay_s is not None and self.delay_s <= self.truth.kind.deadline_s

    @property
    def paged_too_often(self) -> bool:
        """More first pages than its kind allows for the classes it showed (marked ``!`` in the table)."""
        return self.pages > self.truth.kind.max_pages * max(len(self.classes), 1)


@dataclass(frozen=True)
class Report:
    scenario: Scenario
    outcome: Outcome
    rows: tuple[Row, ...]
    false_anomalies: Counter[str]
    """Firing anomalies matching no incident, by class."""
    false_paged: tuple[tuple[int, tuple[str, ...]], ...]
    """The pages matching no incident: (event time, models), all printed."""
    false: tuple[Anomaly, ...] = ()
    """The firing anomalies matching no incident (the first ``--show-false`` are printed)."""

    @property
    def false_pages(self) -> int:
        return len(self.false_paged)

    @property
    def model_days(self) -> float:
        return self.scenario.spec.models * self.scenario.duration_s / DAY_S

    @property
    def false_pages_per_model_day(self) -> float:
        return self.false_pages / self.model_days

    @property
    def false_anomalies_per_model_day(self) -> float:
        return self.false_anomalies.total() / self.model_days

    def rows_of(self, name: str) -> list[Row]:
        return [r for r in self.rows if r.truth.kind.name == name]


FALSE_SHOWN = 10


def score(scenario: Scenario, outcome: Outcome, h: float) -> Report:
    """Match anomalies and pages to the ground truth (module docstring); ``h``: the judge's
    threshold, for each entry's :func:`information_bound_s`."""
    incidents = [t for t in scenario.truths if t.kind.expected_class is not None]
    fleet = {p.model: p for p in profiles(scenario.spec)}
    rows = []
    for truth in scenario.truths:
        bound_s = min(information_bound_s(truth.kind, fleet[m], scenario.spec, truth.start_ms, h) for m in truth.models)
        matching = [a for a in outcome.anomalies if a.state == "firing" and truth.covers(a.model, a.window_end)]
        first = min((a.window_end for a in matching), default=None)
        paged = [t for t, models in outcome.pages if any(truth.covers(m, t) for m in models)]
        rows.append(Row(truth, None if first is None else (first - truth.start_ms) / 1000,
                        tuple(sorted({a.anomaly_class for a in matching})), len(paged),
                        None if not paged else (min(paged) - truth.start_ms) / 1000, bound_s))
    false = [a for a in outcome.anomalies
             if a.state == "firing" and not any(t.covers(a.model, a.window_end) for t in incidents)]
    false_paged = tuple((at, models) for at, models in outcome.pages
                        if not any(t.covers(m, at) for t in incidents for m in models))
    return Report(scenario, outcome, tuple(rows), Counter(a.anomaly_class for a in false), false_paged, tuple(false))


def render(report: Report, show_false: int = FALSE_SHOWN) -> str:
    """The per-kind table of one fleet, its false pages and first ``show_false`` false anomalies, and its
    false-alarm rates."""
    s, o = report.scenario, report.outcome
    lines = [f"== {s.name} fleet: {s.spec.models} models, {s.duration_s / 3600:g} h of event time, "
             f"{o.events:,} records, {o.seconds:.1f} s CPU",
             f"{'incident kind':<38} {'model':<10} {'req/s':>7} {'detected':>9} {'delay s':>8} {'deadline':>8} "
             f"{'bound s':>8} {'classes':<22} {'pages':>5} {'page s':>7}"]
    for r in report.rows:
        t = r.truth
        model = t.models[0] if len(t.models) == 1 else f"{len(t.models)} models"
        if t.kind.expected_class is None:  # not an incident: any anomaly on it is a false alarm
            verdict = "FALSE" if r.detected else "-"
        else:
            verdict = ("yes" if r.in_time else "late") if r.detected else "MISSED"
        delay = f"{r.delay_s:.0f}" if r.delay_s is not None else "-"
        expected = t.kind.expected_class or "none"
        classes = ",".join(r.classes) or "-"
        bound = f"{r.bound_s:.0f}" if math.isfinite(r.bound_s) else "-"
        lines.append(f"{t.kind.name:<38} {model:<10} {t.rate:>7.2f} {verdict:>9} {delay:>8} {t.kind.deadline_s:>8.0f} "
                     f"{bound:>8} {classes + ' (want ' + expected + ')':<22} {r.pages:>4}{'!' if r.paged_too_often else ' '} "
                     f"{'-' if r.page_s is None else f'{r.page_s:.0f}':>7}")
    rates = {p.model: p.rate for p in profiles(s.spec)}
    for a in report.false[:show_false]:  # where to look: which series, when, what it saw
        lines.append(f"  false: {a.series} {a.kind} at {(a.window_end - s.start_ms) / 3_600_000:.2f} h "
                     f"({rates[a.model]:.2f} req/s): {a.summary}")
    if len(report.false) > show_false:
        lines.append(f"  ... and {len(report.false) - show_false} more false anomalies (--show-false)")
    for at, models in report.false_paged:
        lines.append(f"  false page: {', '.join(models)} at {(at - s.start_ms) / 3_600_000:.2f} h "
                     f"({', '.join(f'{rates[m]:.2f}' for m in models)} req/s)")
    by_class = ", ".join(f"{name} {count}" for name, count in report.false_anomalies.most_common())
    lines.append(f"false anomalies: {report.false_anomalies.total()} ({report.false_anomalies_per_model_day:.2f} per model-day"
                 f"{'; ' + by_class if by_class else ''}); "
                 f"false pages: {report.false_pages} ({report.false_pages_per_model_day:.2f} per model-day); "
                 f"dead letters: {o.dead_letters} (poison records: {o.poisoned})")
    return "\n".join(lines)


async def evaluate(shape: Shape, seed: int, settings: Settings) -> tuple[Report, Report]:
    """Both fleets of ``shape`` through the offline plane, scored."""
    reports = []
    h = threshold_for(settings.windows.size_ms / 1000, 1.0 - settings.detection.threshold)
    for scenario in scenarios(shape, seed):
        reports.append(score(scenario, await run_offline(scenario, settings), h))
    return reports[0], reports[1]


def add_shape_arguments(parser: argparse.ArgumentParser) -> None:
    """The fleets' shape and seed on a command line (this harness's, and ``load/throughput_alone.py``'s)."""
    parser.add_argument("--small", action="store_true", help="the CI-sized fleets (30 models, 3 h)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--models", type=int, help="override the shape's model count")
    parser.add_argument("--hours", type=float, help="override the shape's event time")
    parser.add_argument("--rates", type=float, nargs=2, metavar=("LOW", "HIGH"), help="req/s range (log-uniform)")
    parser.add_argument("--rough", action="store_true", help="rough traffic (load/fleet.py rough())")
    parser.add_argument("--start", type=date.fromisoformat, help="the first day (UTC, YYYY-MM-DD; default Monday 2026-01-05)")
    parser.add_argument("--seasonality", type=float,
                        help="the daily cycle's amplitude (default 0.6: nights at a quarter of the peak)")
    parser.add_argument("--weekend", type=float, help="weekend traffic as a share of the weekdays' (default 0.6)")
    parser.add_argument("--business", type=float, metavar="RAMP_H",
                        help="business days: traffic ramps up at 08:00 and down at 17:00 local over this many hours, "
                             "nights at the sine's trough (default: a sine)")
    parser.add_argument("--latency-load", type=float, metavar="BETA",
                        help="latency follows load: the median x (utilization / base) ** BETA (default: none)")
    parser.add_argument("--error-load", type=float, metavar="GAMMA",
                        help="errors follow load: the error rate x (utilization / base) ** GAMMA (default: none)")
    parser.add_argument("--input-cycle", type=float, metavar="SD",
                        help="inputs move by SD standard deviations times the sine of the time of day (default: none)")
    parser.add_argument("--latency-sigma", type=float, metavar="SIGMA",
                        help="shape of the per-request lognormal latency (default 0.3: p99 about 2x the median)")
    parser.add_argument("--canary-fraction", type=float, metavar="SHARE",
                        help="share of a mirrored model's requests its canary and shadow get (default 1)")


def shape_from(args: argparse.Namespace) -> Shape:
    """The shape :func:`add_shape_arguments`' options name."""
    shape = replace(SMALL if args.small else FULL, rough=args.rough)
    if args.models:
        shape = replace(shape, models=args.models)
    if args.hours:
        shape = replace(shape, duration_s=args.hours * 3600, warmup_s=min(shape.warmup_s, args.hours * 900))
    if args.rates:
        shape = replace(shape, rates=tuple(args.rates))
    shape = replace(shape, seasonality=args.seasonality, weekend=args.weekend, business=args.business,
                    latency_load=args.latency_load, error_load=args.error_load, input_cycle=args.input_cycle,
                    latency_sigma=args.latency_sigma, canary_fraction=args.canary_fraction)
    if args.start:
        shape = replace(shape, start_ms=int(datetime.combine(args.start, datetime.min.time(), timezone.utc).timestamp() * 1000))
    return shape


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_shape_arguments(parser)
    parser.add_argument("--config", help="modelmedic settings file (default: the service's defaults)")
    parser.add_argument("--show-false", type=int, default=FALSE_SHOWN, help="false anomalies listed per fleet")
    args = parser.parse_args(argv)
    shape = shape_from(args)
    settings = load_settings(args.config) if args.config else load_settings()
    logging.getLogger("modelmedic").setLevel(logging.ERROR)  # one warning per anomaly: the table says it all
    quiet, incidents = asyncio.run(evaluate(shape, args.seed, settings))
    print(f"fleet shape: {shape}, seed {args.seed}")
    print(render(quiet, args.show_false))
    print(render(incidents, args.show_false))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A simulated fleet of model servers: the demo's traffic, the benchmarks' load and the
detection harness's fleets (``load/detection_harness.py``).

Every model of the fleet serves one ``production`` version and, optionally, mirrors a
fraction of its requests (same ``request_id``) to a ``canary`` running the previous
stable version, and to a ``shadow`` running a release candidate. Requests arrive as a
Poisson process whose rate varies per model, with a daily cycle and lighter weekends;
latency is lognormal around a per-model base (which can follow load:
``FleetSpec.latency_load``); a per-model fraction of requests fails;
regressors predict a number, classifiers a label, probability models a vector over
their labels. A fraction of successful production requests gets a delayed label
(contract ``label.v1``) 5 to 30 minutes later (:meth:`Fleet.due_labels`, :func:`stream`).

Everything is drawn from numpy generators seeded by ``FleetSpec.seed``, one time slice
at a time for all models at once, so the same seed gives byte-identical records and
generation runs far faster than Kafka can take them (see ``docs/benchmarks.md``).
Models far below one request a second get Poisson arrivals too: a 0.01 req/s model
serves a request every couple of minutes at random times, not a rounded rate.
:func:`realistic` is the shape of a production fleet (rates log-uniform from 0.01 to
5,000 req/s, nightly trough at a quarter of the peak, every fourth model with a canary).

Scripted incidents break one model for a while. Their compact form, for the CLI and
the demo, is::

    KIND:MODEL@START+DURATION[xMAGNITUDE]      e.g. latency_spike:model-003@20+15x5

START and DURATION are seconds from the start of the run (decimals allowed);
MAGNITUDE defaults per kind:

==================== ======= =====================================================
kind                 default what happens to the model while the incident is active
==================== ======= =====================================================
latency_spike        5       production latency x MAGNITUDE
creep                0.02    production latency x (1 + MAGNITUDE) more after every
                             whole 10 minutes (+2% every 10 minutes: x2.0 after 6 hours)
flapping             3       production latency x MAGNITUDE during the first 3 minutes
                             of every 6, normal during the other 3
throughput_collapse  0.05    request rate x MAGNITUDE (production and its mirrors)
surge                3       request rate x MAGNITUDE, with capacity to spare (latency
                             unchanged)
error_burst          0.3     production error rate becomes MAGNITUDE
bad_version          3       production serves the model's next version, whose latency
                             is x MAGNITUDE, error rate x MAGNITUDE**2 and predictions
                             shifted (regressors by MAGNITUDE-1 standard deviations,
                             classifiers mixed 1-1/MAGNITUDE toward their rarest label)
deploy               1.03    a normal release: like ``bad_version``, at the small
                             MAGNITUDE of a healthy new version (not an incident)
overload             3       request rate x MAGNITUDE; production latency then grows with
                             rate / (replicas x per-replica capacity)
poison               0.05    this fraction of the model's production records is
                             malformed (not JSON, a field missing, a negative latency,
                             a timestamp in microseconds, in turn): dead-letter material
tail                 4       a random 10% of production requests (the calls that reach a
                             slow dependency, the ones a GC pause catches) take MAGNITUDE
                             times longer; the others are untouched. At 4 with the
                             realistic fleet's spread (sigma 0.3): p99 about x2.9, p95
                             about x2.4, median +4%
drift                1       the inputs move (a new population of users): every request
                             of the model and its mirrors asks as if its latent input were
                             MAGNITUDE standard deviations off (regressors predict that
                             much higher; classifiers' classes lean toward their last
                             labels); the truth moves with them, so accuracy holds: a
                             redesign signal, not an outage
==================== ======= =====================================================

Overload arithmetic with the defaults: one replica runs at 50% utilization at the
model's base rate (``FleetSpec.utilization``); latency is untouched below 70% and grows
like ``0.3 / (1 - u)`` above, up to x6. ``overload`` x3 on one replica (u = 1.5) gives
x6; on two replicas (u = 0.75) x1.2; on three or more, nothing.

Two hooks connect the fleet to real infrastructure: ``capacity(model) -> replicas`` and
``version(model) -> version string``. By default the fleet runs one replica per model
and the scripted version. A demo passes hooks that read the model's Kubernetes
Deployment, so that scaling out really cures an ``overload`` and rolling back really
cures a ``bad_version``: with a version hook the behaviour follows the served version,
not the clock, so the demo's ``on_incident(..., "start", ...)`` deploys the model's
``ModelProfile.next_version`` (see :func:`profiles`) for real. The hooks are called
once per model per time slice and must be cheap (read a cache).

Command line (produces to a real Kafka, paced in real time)::

    python load/fleet.py --bootstrap 127.0.0.1:9092 --models 20 --rate 50 --duration 60 \\
        --seed 1 --incident latency_spike:model-003@20+15x5 --incident bad_version:model-007@30+20
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import itertools
import math
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Literal, get_args

import msgspec
import numpy as np
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from modelmedic.events import InferenceEvent, LabelEvent, encode

IncidentKind = Literal["latency_spike", "throughput_collapse", "error_burst", "bad_version", "overload",
                       "creep", "flapping", "surge", "deploy", "poison", "tail", "drift"]
Phase = Literal["start", "end"]
Prediction = Literal["number", "label", "probabilities"]
Record = tuple[bytes, bytes]
"""A Kafka record as produced: (key = model id, value = JSON inference or label event)."""

DEFAULT_MAGNITUDE: dict[str, float] = {
    "latency_spike": 5.0,
    "throughput_collapse": 0.05,
    "error_burst": 0.3,
    "bad_version": 3.0,
    "overload": 3.0,
    "creep": 0.02,
    "flapping": 3.0,
    "surge": 3.0,
    "deploy": 1.03,
    "poison": 0.05,
    "tail": 4.0,
    "drift": 1.0,
}
RELEASES = ("bad_version", "deploy")
"""Kinds that serve the model's next version (with the incident's magnitude as its severity)."""
CREEP_STEP_S = 600.0
"""A ``creep`` adds its magnitude to the latency once per this many seconds."""
TAIL_FRACTION = 0.1
"""A ``tail`` incident slows this fraction of the model's production requests, drawn at random."""
FLAP_HALF_PERIOD_S = 180.0
"""A ``flapping`` model is slow for this long, then normal for this long, and so on."""
LABEL_DELAY_S = (300.0, 1800.0)
"""A delayed label arrives uniformly within this many seconds after its request."""
LABEL_ACCURACY = 0.85
"""How often a classifier's true label is the class a healthy version predicts."""
LABEL_NOISE = 0.3
"""A regressor's true value differs from a healthy prediction by this many standard deviations (sd)."""
LABEL_BUCKET_MS = 60_000
DEFAULT_TOPIC = "modelmedic.inference"
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
MONDAY_MS = 4 * DAY_MS
"""The first Monday 00:00 UTC after the epoch (1970-01-05): weeks are counted from it."""
START_MS = 1_767_571_200_000
"""Monday 2026-01-05 00:00 UTC, where the generated fleets of ``load/`` start by default: in the past (the plane
dead-letters events ahead of its clock)."""
WEEKEND_RAMP_MS = 6 * 3_600_000
"""Traffic eases into and out of a weekend over this long (no step at midnight)."""
CLASS_LABELS = ("approve", "review", "decline", "escalate")


BUSINESS_HOURS = (8.0, 17.0)
"""A business day's local opening and closing hours (:func:`daily_factor` with ``ramp_h``)."""


def daily_factor(seasonality: float, phase: np.ndarray | float, t_ms: np.ndarray | float,
                 harmonic: float = 0.0, ramp_h: float = 0.0) -> np.ndarray:
    """A model's rate multiplier of the time of day at ``t_ms`` (weekends aside): a sine of
    amplitude ``seasonality`` shifted by the model's ``phase`` (its time zone), times a second
    harmonic of amplitude ``harmonic`` (a steeper morning, a second peak: days are not sines).

    With ``ramp_h`` > 0, a business day instead of the sine: traffic eases up from 08:00 local
    and down from 17:00 over ``ramp_h`` hours (cosine ramps), its nights at the sine's
    trough-to-peak ratio ``(1 - seasonality) / (1 + seasonality)``, scaled to a daily mean of 1.
    Hourly seasonal factors draw a sine's smooth swing well; a ramp of an hour or two they do
    not (docs/detection.md, "Business days")."""
    angle = 2 * math.pi * (t_ms % DAY_MS) / DAY_MS + phase
    if ramp_h > 0:
        night = (1 - seasonality) / (1 + seasonality)
        hour = np.mod(angle * 24 / (2 * math.pi), 24)
        up, down = (np.clip((hour - at) / ramp_h, 0.0, 1.0) for at in BUSINESS_HOURS)
        opened = np.cos(math.pi * down) / 2 - np.cos(math.pi * up) / 2  # 0 at night, 1 in business hours
        open_h = BUSINESS_HOURS[1] - BUSINESS_HOURS[0]  # the ramps' halves add up to these hours
        day = (night + (1 - night) * opened) / (night + (1 - night) * open_h / 24)
    else:
        day = 1 + seasonality * np.sin(angle)
    return day * (1 + harmonic * np.sin(2 * angle))


def weekly_factor(weekend: float, phase: np.ndarray | float, t_ms: np.ndarray | float) -> np.ndarray:
    """A model's rate multiplier of the day of the week at ``t_ms``: 1 on weekdays, ``weekend`` from
    06:00 Saturday to 18:00 Sunday of its time zone (its ``phase``, as in :func:`daily_factor`), with
    six-hour cosine ramps in between (a step at midnight would look like an incident)."""
    local = (t_ms - MONDAY_MS + phase / (2 * math.pi) * DAY_MS) % WEEK_MS
    weekend_share = _ramp((local - 5 * DAY_MS) / WEEKEND_RAMP_MS) - _ramp((local - 7 * DAY_MS + WEEKEND_RAMP_MS) / WEEKEND_RAMP_MS)
    return 1.0 - (1.0 - weekend) * weekend_share


@dataclass(frozen=True)
class FleetSpec:
    """The shape of the fleet; together with ``seed`` it fixes every record generated.

    The defaults are the demo's fleet (a few dozen busy, similar models); :func:`realistic`
    gives the shape of a production fleet. Fields added after the first release draw from
    random streams of their own, so at their defaults every record stays what it was.
    """

    models: int = 20
    rate: float = 50.0
    """Mean requests per second per model."""
    rate_spread: float = 0.5
    """Per-model rates are uniform in ``rate * [1 - spread, 1 + spread]``."""
    rate_range: tuple[float, float] | None = None
    """When set, per-model rates are log-uniform in this range (req/s), not ``rate`` +- ``rate_spread``."""
    seasonality: float = 0.2
    """Amplitude of the daily sinusoid on every model's rate (0.2 = +-20% over a day; 0.6
    puts the nightly trough at a quarter of the peak)."""
    weekend: float = 1.0
    """Rate multiplier on Saturdays and Sundays (in the model's time zone), eased in and out
    over ``WEEKEND_RAMP_MS``."""
    latency_ms: tuple[float, float] = (20.0, 80.0)
    """Range of the per-model median latency."""
    latency_log_uniform: bool = False
    """Draw the per-model median latency log-uniformly in ``latency_ms`` (uniformly if False)."""
    latency_sigma: float = 0.25
    """Shape of the lognormal latency around the median."""
    error_rate: float = 0.005
    error_rate_range: tuple[float, float] | None = None
    """When set, per-model base error rates are log-uniform in this range, not ``error_rate``."""
    canary_fraction: float = 0.0
    """Fraction of production requests mirrored to a canary running the previous stable version."""
    canary_every: int = 1
    """Only every ``canary_every``-th model (model ``canary_every - 1``, ``2 canary_every - 1``...) has a canary."""
    shadow_every: int = 0
    """Every ``shadow_every``-th model from model-001 (0: none) also mirrors the requests its
    canary would get (``canary_fraction``) to a shadow release candidate."""
    classifier_share: float = 0.5
    """Fraction of models that are classifiers (label predictions); the rest are regressors."""
    probability_share: float = 0.0
    """Fraction of models that answer a probability vector over their labels (taken from the regressors' share)."""
    label_fraction: float = 0.0
    """Fraction of successful production requests that get a delayed label (``LABEL_DELAY_S``)."""
    utilization: float = 0.5
    """Load of one replica at the model's base rate: per-replica capacity is ``rate / utilization``."""
    seed: int = 1
    daily_harmonic: float = 0.0
    """Amplitude of the daily cycle's second harmonic (:func:`daily_factor`); 0: a pure sine."""
    business_ramp_h: float = 0.0
    """Hours a business day's traffic ramps over at 08:00 and 17:00 local (:func:`daily_factor`); 0: the sine."""
    rate_wander: float = 0.0
    """Standard deviation of a slow random walk of each model's log rate (an Ornstein-Uhlenbeck
    process with time constant ``rate_wander_s``): real traffic drifts around its daily cycle
    (campaigns, batch clients, retries) more than a Poisson process allows. 0: none."""
    rate_wander_s: float = 1800.0
    clump: float = 1.0
    """Mean requests per arrival: clients that send requests in batches (geometric sizes, one
    timestamp per batch), so counts vary more than Poisson from second to second; a batch
    succeeds or fails as one (one outcome draw per batch and role: its requests meet the same
    fault), so errors come in clumps too. 1: none."""
    latency_outliers: float = 0.0
    """Share of requests slowed 3-20x (log-uniform): pauses and cold caches. 0: none."""
    latency_load: float = 0.0
    """Latency that follows load below the knee of :func:`slowdown` too: the median is multiplied by
    ``(utilization / self.utilization) ** latency_load`` (1 at the base rate on one replica). Busy hours
    are slower on real servers (contention, batching, caches). At the daily cycle's 0.6, 0.15 gives
    -13% at night and +7% at the peak. 0: none."""
    error_load: float = 0.0
    """Errors that follow load: each request's error rate is multiplied by ``(utilization / self.utilization) **
    error_load`` (timeouts and shed requests are commoner when busy). At the daily cycle's 0.6, 1 gives 0.4x the base
    rate at night and 1.6x at the peak. 0: none."""
    input_cycle: float = 0.0
    """Inputs with a daily cycle: every request's latent input moves by ``input_cycle`` standard deviations times
    the sine of the model's time of day (what is asked changes over a day: a regressor's predictions follow it, a
    classifier's class mix moves as under ``drift``), the labels with it. 0: none."""

    def daily(self, phase: np.ndarray | float, t_ms: np.ndarray | float) -> np.ndarray:
        """The rate multiplier of the time of day for models of ``phase`` (:func:`daily_factor` of this fleet's day)."""
        return daily_factor(self.seasonality, phase, t_ms, self.daily_harmonic, self.business_ramp_h)

    def seasonal_rate(self, rate: np.ndarray | float, phase: np.ndarray | float, t_ms: np.ndarray | float) -> np.ndarray:
        """``rate`` (req/s, before seasonality) at ``t_ms`` for models of ``phase``: times this fleet's day, then its
        week."""
        rate = rate * self.daily(phase, t_ms)
        return rate if self.weekend == 1.0 else rate * weekly_factor(self.weekend, phase, t_ms)

    def expected_requests(self, duration_s: float) -> float:
        """About how many production requests ``duration_s`` of this fleet holds (before
        seasonality): decide a fleet's shape before paying for it."""
        return sum(p.rate for p in profiles(self)) * duration_s


def rough(spec: FleetSpec) -> FleetSpec:
    """``spec`` with the irregularities of real traffic that a Poisson process on a sine lacks:
    rates that wander +-10% around the daily cycle over half-hours, requests in batches of 2 on
    average (a batch succeeds or fails as one: errors in clumps), a day with a second harmonic,
    and 0.2% of requests 3-20x slow. Detection is tuned on smooth fleets; a rough quiet fleet
    tells whether it pages on what is normal elsewhere (``load/detection_harness.py --rough``).

    Each replica serves as much more as four standard deviations of the walk raise the rate
    (``utilization`` divided by ``exp(4 * rate_wander)``): at ``realistic()``'s 0.3 the walk's
    peaks on top of the day's took a server past the knee of :func:`slowdown` (the rough
    200-model fleet's model-158 past 0.7 for 20 minutes of its first day's peak, up to 0.8:
    latency up to 1.5x), a real overload the harness counted as a false page. Below the knee
    latency is untouched, so nothing else of the fleet changes."""
    wander = 0.1
    return replace(spec, daily_harmonic=0.2, rate_wander=wander, rate_wander_s=1800.0, clump=2.0, latency_outliers=0.002,
                   utilization=spec.utilization / math.exp(4 * wander))


def realistic(models: int, seed: int = 1, rate_range: tuple[float, float] = (0.01, 5000.0)) -> FleetSpec:
    """A production-like fleet: rates log-uniform in ``rate_range``; daily cycle with the
    nightly trough at a quarter of the peak; weekends at 60%; median latency 5-500 ms;
    base error rate 0.1%-1%; a third each of regressors, classifiers and probability
    models; every fourth model mirrors all its requests to a canary, every sixth to a
    shadow; 30% of the answered requests labelled 5-30 minutes later.

    The fleet's size is its rates: log-uniform to 5,000 req/s averages ~380 req/s per
    model (see :meth:`FleetSpec.expected_requests`).
    """
    return FleetSpec(
        models=models, rate_range=rate_range, seasonality=0.6, weekend=0.6,
        latency_ms=(5.0, 500.0), latency_log_uniform=True, latency_sigma=0.3, error_rate_range=(0.001, 0.01),
        classifier_share=1 / 3, probability_share=1 / 3, canary_fraction=1.0, canary_every=4, shadow_every=6,
        label_fraction=0.3, utilization=0.3, seed=seed,
    )


@dataclass(frozen=True)
class ModelProfile:
    """One model's drawn parameters (see :func:`profiles`)."""

    model: str
    rate: float
    latency_ms: float
    phase: float
    """Daily seasonality phase in radians (models serve different time zones)."""
    stable_version: str
    previous_version: str
    next_version: str
    """What a ``bad_version`` or ``deploy`` incident deploys."""
    labels: tuple[str, ...]
    """Class labels (classifiers and probability models); empty for a regressor."""
    label_p: tuple[float, ...]
    pred_mean: float
    pred_sd: float
    capacity_per_replica: float
    """Requests per second one replica serves at full utilization."""
    error_rate: float = 0.005
    prediction: Prediction = "number"
    canary: bool = False
    """Mirrors ``canary_fraction`` of its requests to its previous version."""
    shadow: bool = False
    """Mirrors the same requests to ``candidate_version`` as a shadow."""

    @property
    def candidate_version(self) -> str:
        """The release candidate a shadow runs (healthy, whatever its next version does)."""
        return f"{self.next_version}-rc1"


@dataclass(frozen=True)
class Incident:
    """A scripted fault on one model: ``kind`` from ``start_s`` for ``duration_s`` seconds of the run."""

    kind: IncidentKind
    model: str
    start_s: float
    duration_s: float
    magnitude: float

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    @classmethod
    def parse(cls, text: str) -> "Incident":
        """Parse the compact form ``KIND:MODEL@START+DURATION[xMAGNITUDE]`` (module docstring)."""
        match = _INCIDENT_RE.fullmatch(text.strip())
        if match is None:
            raise ValueError(
                f"bad incident {text!r}: expected KIND:MODEL@START+DURATION[xMAGNITUDE], "
                "e.g. latency_spike:model-003@20+15x5"
            )
        kind = match["kind"]
        if kind not in DEFAULT_MAGNITUDE:
            raise ValueError(f"bad incident {text!r}: kind must be one of {', '.join(get_args(IncidentKind))}")
        magnitude = float(match["mag"]) if match["mag"] else DEFAULT_MAGNITUDE[kind]
        return cls(kind, match["model"], float(match["start"]), float(match["dur"]), magnitude)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.kind}:{self.model}@{self.start_s:g}+{self.duration_s:g}x{self.magnitude:g}"


_NUM = r"\d+(?:\.\d+)?"
_INCIDENT_RE = re.compile(
    rf"(?P<kind>[a-z_]+):(?P<model>[^@\s]+)@(?P<start>{_NUM})\+(?P<dur>{_NUM})(?:x(?P<mag>{_NUM}))?"
)


def model_id(index: int) -> str:
    """The fleet's model ids: ``model-000``, ``model-001``..."""
    return f"model-{index:03d}"


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    low, high = bounds
    return low * (high / low) ** rng.random()


def profiles(spec: FleetSpec) -> list[ModelProfile]:
    """Draw every model's parameters from the spec's seed (independent of the traffic stream)."""
    rng = np.random.default_rng([spec.seed, 0])
    later = np.random.default_rng([spec.seed, 3])  # parameters added later: the first ones keep their draws
    out = []
    for i in range(spec.models):
        if spec.rate_range is None:
            rate = spec.rate * rng.uniform(1 - spec.rate_spread, 1 + spec.rate_spread)
        else:
            rate = _log_uniform(rng, spec.rate_range)
        major, minor = int(rng.integers(1, 4)), int(rng.integers(1, 9))
        draw = rng.random()
        labelled = draw < spec.classifier_share + spec.probability_share
        labels = CLASS_LABELS[: int(rng.integers(2, len(CLASS_LABELS) + 1))] if labelled else ()
        weights = rng.dirichlet(np.full(len(labels), 4.0)) if labelled else np.empty(0)
        latency = _log_uniform(rng, spec.latency_ms) if spec.latency_log_uniform else rng.uniform(*spec.latency_ms)
        out.append(ModelProfile(
            model=model_id(i),
            rate=rate,
            latency_ms=latency,
            phase=rng.uniform(0, math.pi / 2),
            stable_version=f"v{major}.{minor}.0",
            previous_version=f"v{major}.{minor - 1}.0",
            next_version=f"v{major}.{minor + 1}.0",
            labels=labels,
            label_p=tuple(float(w) for w in weights),
            pred_mean=rng.uniform(-5, 5),
            pred_sd=rng.uniform(0.5, 2.0),
            capacity_per_replica=rate / spec.utilization,
            error_rate=spec.error_rate if spec.error_rate_range is None else _log_uniform(later, spec.error_rate_range),
            prediction="number" if not labelled else "label" if draw < spec.classifier_share else "probabilities",
            canary=spec.canary_fraction > 0 and (i + 1) % spec.canary_every == 0,
            shadow=spec.canary_fraction > 0 and spec.shadow_every > 0 and i % spec.shadow_every == 1 % spec.shadow_every,
        ))
    return out


def slowdown(utilization: np.ndarray, knee: float = 0.7, floor: float = 0.05) -> np.ndarray:
    """Latency multiplier of a server at ``utilization``: 1 below the knee, then queueing-like
    ``(1 - knee) / (1 - u)``, capped where ``1 - u`` reaches ``floor`` (timeouts bound it)."""
    return np.maximum(1.0, (1.0 - knee) / np.maximum(1.0 - utilization, floor))


_UNIFORMS = 6
"""Per arrival: position in the slice, thinning, classifier quantile, production ok, mirror, canary ok."""
_NORMALS = 5
"""Per arrival: regressor input, production latency, canary input jitter, canary quantile jitter, canary latency."""
_LATER_UNIFORMS = 5
"""Per arrival, from a stream of their own: shadow ok, confidence, label (drawn and delay), label right, poison."""
_LATER_NORMALS = 2
"""Per arrival, from a stream of their own: shadow latency, regressor label noise."""
ROLES = ("production", "canary", "shadow")


@dataclass(frozen=True)
class _Arrivals:
    """Candidate requests of one slice with every random number they will need, ordered by event time."""

    model: np.ndarray
    ts: np.ndarray
    rid: np.ndarray
    stream: np.ndarray
    uniform: np.ndarray
    normal: np.ndarray
    later_u: np.ndarray
    later_n: np.ndarray
    slow: np.ndarray
    """Per arrival, two uniforms per role (production, canary, shadow) for :attr:`FleetSpec.latency_outliers`;
    no columns without outliers."""

    @classmethod
    def concat(cls, a: "_Arrivals", b: "_Arrivals") -> "_Arrivals":
        """Both sets merged in event-time order (``a`` first on ties)."""
        merged = [np.concatenate([x, y]) for x, y in zip(a.fields(), b.fields())]
        order = np.argsort(merged[1], kind="stable")
        return cls(*(m[order] for m in merged))

    def fields(self) -> tuple[np.ndarray, ...]:
        return self.model, self.ts, self.rid, self.stream, self.uniform, self.normal, self.later_u, self.later_n, self.slow

    def take(self, index: np.ndarray) -> "_Arrivals":
        return _Arrivals(*(f[index] for f in self.fields()))


def _drifted(u: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """A classifier's input quantile ``u`` after an input drift of ``shift``: pushed toward its
    last labels (``1 - (1 - u) ** (1 + shift)``), untouched where there is none."""
    return np.where(shift > 0, 1.0 - (1.0 - u) ** (1.0 + np.maximum(shift, 0.0)), u)


def _padded(rows: Sequence[Sequence[object]], width: int, fill: object) -> list[list[object]]:
    """Rows of different lengths as one rectangular table (per-model label tables for numpy)."""
    return [list(row) + [fill] * (width - len(row)) for row in rows]


def malformed(raw: bytes, variant: int) -> bytes:
    """A broken copy of a valid inference record (``poison``), one of four ways producers
    break the contract: cut off (not JSON), ``ok`` missing, a negative latency, ``ts`` in
    microseconds. Each must end in the dead-letter topic."""
    if variant % 4 == 0:
        return raw[: len(raw) // 2]
    event = msgspec.json.decode(raw)
    if variant % 4 == 1:
        del event["ok"]
    elif variant % 4 == 2:
        event["latency_ms"] = -1.0 - event["latency_ms"]
    else:
        event["ts"] *= 1000
    return msgspec.json.encode(event)


def _ramp(x: np.ndarray) -> np.ndarray:
    """0 before 0, 1 after 1, a cosine in between (traffic changes without a step)."""
    return 0.5 - 0.5 * np.cos(math.pi * np.clip(x, 0.0, 1.0))


CapacityHook = Callable[[str], int]
VersionHook = Callable[[str], str]


class Fleet:
    """The generator's state: profiles, incidents, the random streams, the request counter
    and the delayed labels not yet due.

    :meth:`slice` produces every model's records for one time slice; :func:`stream`,
    :func:`generate` and :func:`run_live` only decide how long the slices are and when
    they are made.
    """

    def __init__(
        self,
        spec: FleetSpec,
        incidents: Sequence[Incident],
        start_ms: int,
        *,
        capacity: CapacityHook | None = None,
        version: VersionHook | None = None,
    ) -> None:
        self.spec, self.incidents, self.start_ms = spec, tuple(incidents), start_ms
        self.capacity, self.version = capacity, version
        self.profiles = profiles(spec)
        self._index = {p.model: i for i, p in enumerate(self.profiles)}
        unknown = sorted({i.model for i in self.incidents} - self._index.keys())
        if unknown:
            raise ValueError(f"incidents name models not in the fleet: {unknown} (ids run model-000..{model_id(spec.models - 1)})")
        self._rng = np.random.default_rng([spec.seed, 1])
        self._surge_rng = np.random.default_rng([spec.seed, 2])
        self._later = (np.random.default_rng([spec.seed, 1, 1]), np.random.default_rng([spec.seed, 2, 1]))
        self._next_request = [0, 0]
        # The rough shape's draws (rough()), from streams of their own: smooth fleets stay byte-identical. The walk
        # has its own; batch sizes and slow outliers are drawn per arrival stream, before thinning, so an incident
        # (a drop thins, a surge adds) moves no other model's walk, batches or outliers.
        self._rough_rng = np.random.default_rng([spec.seed, 5])
        self._wander = spec.rate_wander * self._rough_rng.standard_normal(spec.models)
        self._clump_rng = (np.random.default_rng([spec.seed, 5, 1]), np.random.default_rng([spec.seed, 5, 2]))
        self._slow_rng = (np.random.default_rng([spec.seed, 6, 1]), np.random.default_rng([spec.seed, 6, 2]))
        self._keys = [p.model.encode() for p in self.profiles]
        self._rate = np.array([p.rate for p in self.profiles])
        self._capacity = np.array([p.capacity_per_replica for p in self.profiles])
        self._phase = np.array([p.phase for p in self.profiles])
        self._latency = np.array([p.latency_ms for p in self.profiles])
        self._error = np.array([p.error_rate for p in self.profiles])
        self._pred_mean = np.array([p.pred_mean for p in self.profiles])
        self._pred_sd = np.array([p.pred_sd for p in self.profiles])
        self._probabilities = np.array([p.prediction == "probabilities" for p in self.profiles], dtype=bool)
        self._mirrors = np.array([(p.canary, p.shadow) for p in self.profiles], dtype=bool).reshape(-1, 2)
        self._names = [p.model for p in self.profiles]
        width = len(CLASS_LABELS)
        self._n_labels = np.array([len(p.labels) for p in self.profiles])
        self._label_p = np.array(_padded([p.label_p for p in self.profiles], width, 0.0), dtype=float).reshape(-1, width)
        self._label_names = np.array(_padded([p.labels for p in self.profiles], width, ""), dtype=object).reshape(-1, width)
        self._label_rarest = np.zeros_like(self._label_p)
        rarest = np.argmin(np.where(self._label_p > 0, self._label_p, 2.0), axis=1)
        self._label_rarest[np.arange(len(self.profiles)), rarest] = 1.0
        # Versions are indices into one table of (model, version) pairs: a version string is
        # only bad for the model whose bad_version incident names it. Severity 1.0 is healthy.
        self._versions: list[str] = []
        self._severity: list[float] = []
        self._version_of: dict[tuple[int, str], int] = {}
        for inc in self.incidents:
            if inc.kind in RELEASES:
                m = self._index[inc.model]
                self._version_index(m, self.profiles[m].next_version, inc.magnitude)
        self._stable = np.array([self._version_index(m, p.stable_version) for m, p in enumerate(self.profiles)])
        self._previous = np.array([self._version_index(m, p.previous_version) for m, p in enumerate(self.profiles)])
        self._candidate = np.array([self._version_index(m, p.candidate_version) for m, p in enumerate(self.profiles)])
        self._labels_due: dict[int, list[tuple[int, Record]]] = {}
        """Label records by the minute of event time (since ``start_ms``) they are stamped in."""

    def _version_index(self, model: int, name: str, severity: float = 1.0) -> int:
        """The index of ``model`` serving ``name``; the first registration sets its severity."""
        key = (model, name)
        if key not in self._version_of:
            self._version_of[key] = len(self._versions)
            self._versions.append(name)
            self._severity.append(severity)
        return self._version_of[key]

    def _hooked(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Replicas per model and (when hooked) version index per model, read once per slice."""
        replicas = np.ones(len(self.profiles))
        if self.capacity is not None:
            replicas = np.array([max(1, self.capacity(p.model)) for p in self.profiles], dtype=float)
        if self.version is None:
            return replicas, None
        return replicas, np.array([self._version_index(m, self.version(p.model)) for m, p in enumerate(self.profiles)])

    def _seasonal_rate(self, t_ms: float) -> np.ndarray:
        return self.spec.seasonal_rate(self._rate, self._phase, t_ms)

    def weekly_factor(self, t_ms: float) -> np.ndarray:
        """Per model, the rate multiplier of the day of the week at ``t_ms`` (:func:`weekly_factor`)."""
        return weekly_factor(self.spec.weekend, self._phase, t_ms)

    def _peak_rate_factor(self, t0_s: float, t1_s: float) -> np.ndarray:
        """Per model, the largest rate multiplier any incident applies inside [t0_s, t1_s)."""
        peak = np.ones(len(self.profiles))
        for inc in self.incidents:
            if inc.kind in ("overload", "surge") and inc.start_s < t1_s and inc.end_s > t0_s:
                m = self._index[inc.model]
                peak[m] = max(peak[m], inc.magnitude)
        return peak

    def slice(self, t0_ms: float, dt_ms: float) -> list[Record]:
        """All inference records with event time in ``[t0_ms, t0_ms + dt_ms)``, in event-time
        order; the delayed labels of these requests wait for :meth:`due_labels`.

        Non-homogeneous Poisson arrivals by thinning: base arrivals at each model's normal
        rate (the seasonal rate of the slice's midpoint), plus surge arrivals from a second
        random stream up to the peak rate of an ``overload`` or ``surge``; each is kept with
        the probability that makes the rate right at its own event time, so incident
        boundaries fall on event times, not slice edges. Every random number of an arrival
        is drawn before thinning, so an incident changes only the records it should: all
        other records stay byte-identical.
        """
        t0_s = (t0_ms - self.start_ms) / 1000.0
        rate = self._seasonal_rate(t0_ms + dt_ms / 2)
        if self.spec.rate_wander:
            rate = rate * self._wandered(dt_ms)
        expected = rate * dt_ms / 1000.0
        surge = self._peak_rate_factor(t0_s, t0_s + dt_ms / 1000.0) - 1.0
        arrivals = _Arrivals.concat(
            self._arrivals(self._rng, 0, expected, t0_ms, dt_ms),
            self._arrivals(self._surge_rng, 1, expected * surge, t0_ms, dt_ms),
        )
        model, t_rel = arrivals.model, (arrivals.ts - self.start_ms) / 1000.0
        replicas, hooked_version = self._hooked()
        rate_mult = np.ones(model.size)
        spare = np.ones(model.size)
        """Rate multipliers the servers have capacity for (``surge``): no slowdown from them."""
        lat_mult = np.ones(model.size)
        shift = np.zeros(model.size)
        """Input drift (``drift``): standard deviations the requests' latent inputs moved."""
        poisoned = np.zeros(model.size, dtype=bool)
        err = self._error[model]
        version = self._stable[model] if hooked_version is None else hooked_version[model]
        for inc in self.incidents:
            m = self._index[inc.model]
            hit = (model == m) & (t_rel >= inc.start_s) & (t_rel < inc.end_s)
            since = t_rel - inc.start_s
            if inc.kind == "latency_spike":
                lat_mult[hit] *= inc.magnitude
            elif inc.kind == "creep":
                lat_mult[hit] *= (1.0 + inc.magnitude) ** np.floor(since[hit] / CREEP_STEP_S)
            elif inc.kind == "flapping":
                lat_mult[hit & (np.floor(since / FLAP_HALF_PERIOD_S) % 2 == 0)] *= inc.magnitude
            elif inc.kind == "error_burst":
                err[hit] = inc.magnitude
            elif inc.kind in ("throughput_collapse", "overload", "surge"):
                rate_mult[hit] *= inc.magnitude
                if inc.kind == "surge":
                    spare[hit] *= inc.magnitude
            elif inc.kind == "poison":
                poisoned |= hit & (arrivals.later_u[:, 4] < inc.magnitude)
            elif inc.kind == "tail":  # the top of the poison draw: the two never pick the same request
                lat_mult[hit & (arrivals.later_u[:, 4] >= 1.0 - TAIL_FRACTION)] *= inc.magnitude
            elif inc.kind == "drift":
                shift[hit] += inc.magnitude
            elif hooked_version is None:  # releases follow the clock only without a version hook
                version[hit] = self._version_of[(m, self.profiles[m].next_version)]

        keep_p = np.where(
            arrivals.stream == 0, np.minimum(rate_mult, 1.0),
            (rate_mult - 1.0) / np.maximum(surge[model], 1e-12),
        )
        keep = np.flatnonzero(arrivals.uniform[:, 1] < keep_p)
        utilization = rate[model] * rate_mult / spare / (replicas[model] * self._capacity[model])
        severity = np.asarray(self._severity)[version]
        lat_mult *= slowdown(utilization) * severity
        load = utilization / self.spec.utilization
        if self.spec.latency_load:
            lat_mult *= load ** self.spec.latency_load
        if self.spec.error_load:  # the base rate follows load; a burst's rate is what it is
            err = np.where(err == self._error[model], err * load ** self.spec.error_load, err)
        if self.spec.input_cycle:
            shift += self.spec.input_cycle * np.sin(2 * math.pi * (arrivals.ts % DAY_MS) / DAY_MS + self._phase[model])
        err = np.minimum(1.0, err * severity**2)
        return self._records(arrivals.take(keep), version[keep], lat_mult[keep], err[keep], severity[keep], poisoned[keep],
                             shift[keep])

    def _wandered(self, dt_ms: float) -> np.ndarray:
        """Per model, the rate multiplier of its log-rate walk (``spec.rate_wander``), moved on by ``dt_ms``;
        mean 1 (the walk is normal with variance ``rate_wander ** 2``, the multiplier its lognormal, centred)."""
        sd, keep = self.spec.rate_wander, math.exp(-dt_ms / 1000.0 / self.spec.rate_wander_s)
        self._wander = keep * self._wander + sd * math.sqrt(1.0 - keep * keep) * self._rough_rng.standard_normal(self._wander.size)
        return np.exp(self._wander - sd * sd / 2)

    def _arrivals(self, rng: np.random.Generator, stream: int, expected: np.ndarray, t0_ms: float, dt_ms: float) -> "_Arrivals":
        """Poisson arrivals of every model with ``expected`` counts in the slice, with all their random draws
        (with ``spec.clump`` > 1, Poisson batches of geometric size, a batch's requests at one time and with one
        outcome)."""
        models, clump = np.arange(len(self.profiles)), self.spec.clump
        if clump > 1.0:
            batches = np.repeat(models, rng.poisson(expected / clump))
            size = self._clump_rng[stream].geometric(1.0 / clump, batches.size)
            model, first = np.repeat(batches, size), np.repeat(np.cumsum(size) - size, size)
        else:
            model = np.repeat(models, rng.poisson(expected))
            first = slice(None)
        n = model.size
        uniform, normal = rng.random((n, _UNIFORMS)), rng.standard_normal((n, _NORMALS))
        later = self._later[stream]
        later_u, later_n = later.random((n, _LATER_UNIFORMS)), later.standard_normal((n, _LATER_NORMALS))
        if clump > 1.0:  # a batch's outcome (production's, the canary's, the shadow's) is its first request's
            uniform[:, [3, 5]], later_u[:, 0] = uniform[first][:, [3, 5]], later_u[first, 0]
        slow = self._slow_rng[stream].random((n, 2 * len(ROLES) if self.spec.latency_outliers else 0))
        ts = np.floor(t0_ms + uniform[first, 0] * dt_ms).astype(np.int64)
        order = np.argsort(ts, kind="stable")
        rid = np.arange(self._next_request[stream], self._next_request[stream] + n)
        self._next_request[stream] += n
        return _Arrivals(model[order], ts[order], rid, np.full(n, stream), uniform[order], normal[order],
                         later_u[order], later_n[order], slow[order])

    def _records(
        self, a: "_Arrivals", version: np.ndarray, lat_mult: np.ndarray, err: np.ndarray, severity: np.ndarray,
        poisoned: np.ndarray, shift: np.ndarray,
    ) -> list[Record]:
        """Latency, outcome and prediction per request, plus the canary and shadow mirrors, encoded.

        Each request has a latent input (``z`` for regressors, quantile ``u`` for
        classifiers, a confidence for probability models) that its mirrors share up to a
        little noise, so their predictions agree until a bad version shifts production's.
        """
        n = a.model.size
        picked = a.uniform[:, 4] < self.spec.canary_fraction
        canary_rows = np.flatnonzero(picked & self._mirrors[a.model, 0])
        shadow_rows = np.flatnonzero(picked & self._mirrors[a.model, 1])
        source = np.concatenate([np.arange(n), canary_rows, shadow_rows])
        role = np.concatenate([np.zeros(n, np.int64), np.ones(canary_rows.size, np.int64),
                               np.full(shadow_rows.size, 2, np.int64)])
        mirror = role > 0
        model = a.model[source]
        version = np.concatenate([version, self._previous[a.model[canary_rows]], self._candidate[a.model[shadow_rows]]])
        lat_mult = np.concatenate([lat_mult, np.ones(source.size - n)])
        err = np.concatenate([err, self._error[model[n:]]])
        severity = np.concatenate([severity, np.ones(source.size - n)])
        normal, uniform = a.normal[source], a.uniform[source]
        z = normal[:, 0] + shift[source] + np.where(mirror, 0.05 * normal[:, 2], 0.0)
        jitter = np.where(mirror, 0.02 * normal[:, 3], 0.0)
        u = np.clip(_drifted(uniform[:, 2], shift[source]) + jitter, 0.0, 1.0)
        confidence = np.clip(a.later_u[source, 1] + jitter, 0.0, 1.0)
        latency_noise = np.choose(role, [normal[:, 1], normal[:, 4], a.later_n[source, 0]])
        latency = self._latency[model] * lat_mult * np.exp(self.spec.latency_sigma * latency_noise)
        if self.spec.latency_outliers:
            hit, size = a.slow[source, 2 * role], a.slow[source, 2 * role + 1]
            latency *= np.where(hit < self.spec.latency_outliers, 3.0 * (20.0 / 3.0) ** size, 1.0)
        ok = np.choose(role, [uniform[:, 3], uniform[:, 5], a.later_u[source, 0]]) >= err
        prediction = self._predictions(model, ok, z, u, confidence, severity)
        prefixes = (f"{self.spec.seed}-", f"{self.spec.seed}-s")
        self._queue_labels(a, ok[:n], prefixes, shift)

        order = np.lexsort((role, source))
        keys, versions, names = self._keys, self._versions, self._names
        records = [
            (keys[m], encode(InferenceEvent(names[m], versions[v], ROLES[c], f"{prefixes[st]}{r:x}", t, lat, o, p)))
            for m, v, c, st, r, t, lat, o, p in zip(
                model[order].tolist(), version[order].tolist(), role[order].tolist(),
                a.stream[source][order].tolist(), a.rid[source][order].tolist(), a.ts[source][order].tolist(),
                np.round(latency[order], 2).tolist(), ok[order].tolist(), prediction[order].tolist(),
            )
        ]
        if poisoned.any():
            position = np.empty_like(order)
            position[order] = np.arange(order.size)
            for row in np.flatnonzero(poisoned).tolist():
                key, raw = records[position[row]]
                records[position[row]] = (key, malformed(raw, int(a.rid[row])))
        return records

    def _classify(self, model: np.ndarray, u: np.ndarray, severity: np.ndarray) -> np.ndarray:
        """Label index per request: quantile ``u`` of the model's label distribution, which a
        version of severity s mixes 1-1/s toward the rarest label."""
        p = self._label_p[model]
        mix = (1.0 - 1.0 / severity)[:, None]
        cdf = np.cumsum((1.0 - mix) * p + mix * self._label_rarest[model], axis=1)
        return np.maximum(np.minimum((u[:, None] >= cdf).sum(axis=1), self._n_labels[model] - 1), 0)

    def _predictions(
        self, model: np.ndarray, ok: np.ndarray, z: np.ndarray, u: np.ndarray, confidence: np.ndarray,
        severity: np.ndarray,
    ) -> np.ndarray:
        """Per request: a number (regressor), a label (classifier), a probability vector or
        None (failed request).

        A version of severity s shifts a regressor by s-1 standard deviations and mixes a
        classifier's label distribution 1-1/s toward its rarest label. A probability model
        gives its predicted class between 0.3 and 1 of the probability left above uniform
        (by ``confidence``) and shares the rest evenly.
        """
        value = np.round(self._pred_mean[model] + self._pred_sd[model] * (z + severity - 1.0), 4)
        label = self._classify(model, u, severity)
        out = np.where(self._n_labels[model] > 0, self._label_names[model, label], value.astype(object))
        rows = np.flatnonzero(self._probabilities[model] & ok)
        if rows.size:
            k = self._n_labels[model[rows]]
            top = 1.0 / k + (1.0 - 1.0 / k) * (0.3 + 0.7 * confidence[rows])
            rest = (1.0 - top) / (k - 1)
            vectors = np.where(np.arange(len(CLASS_LABELS)) == label[rows, None], top[:, None], rest[:, None])
            for row, vector, size in zip(rows.tolist(), np.round(vectors, 3).tolist(), k.tolist()):
                out[row] = vector[:size]
        out[~ok] = None
        return out

    def _queue_labels(self, a: "_Arrivals", ok: np.ndarray, prefixes: tuple[str, str], shift: np.ndarray) -> None:
        """Draw the delayed labels of the successful production requests ``a`` and keep them
        until due: a regressor's true value is near a healthy prediction; a classifier's true
        class is the one a healthy version predicts ``LABEL_ACCURACY`` of the time (probability
        models are labelled with the class index). The truth follows drifted inputs (``shift``):
        a drift changes what is asked, not how well a healthy model answers."""
        fraction = self.spec.label_fraction
        pick = a.later_u[:, 2]
        rows = np.flatnonzero(ok & (pick < fraction))
        if not rows.size:
            return
        m = a.model[rows]
        low, high = LABEL_DELAY_S
        due = a.ts[rows] + ((low + pick[rows] / fraction * (high - low)) * 1000).astype(np.int64)
        value = np.round(self._pred_mean[m] + self._pred_sd[m] * (a.normal[rows, 0] + shift[rows]
                                                                   + LABEL_NOISE * a.later_n[rows, 1]), 4)
        k = self._n_labels[m]
        right = a.later_u[rows, 3]
        wrong = 1 + np.floor((right - LABEL_ACCURACY) / (1.0 - LABEL_ACCURACY) * (k - 1)).astype(np.int64)
        cls = (self._classify(m, _drifted(a.uniform[rows, 2], shift[rows]), np.ones(rows.size)) + np.where(right < LABEL_ACCURACY, 0, wrong)) \
            % np.maximum(k, 1)
        label = value.astype(object)
        named = k > 0
        label[named] = self._label_names[m[named], cls[named]]
        indexed = self._probabilities[m]
        label[indexed] = cls[indexed].astype(object)
        keys, names = self._keys, self._names
        for mi, st, r, t, y in zip(m.tolist(), a.stream[rows].tolist(), a.rid[rows].tolist(), due.tolist(), label.tolist()):
            record = (keys[mi], encode(LabelEvent(names[mi], f"{prefixes[st]}{r:x}", t, y)))
            self._labels_due.setdefault((t - self.start_ms) // LABEL_BUCKET_MS, []).append((t, record))

    def due_labels(self, through_ms: float) -> list[Record]:
        """The label records stamped before ``through_ms`` (rounded down to a whole minute of
        event time since ``start_ms``) not handed out yet, in event-time order."""
        last = (through_ms - self.start_ms) // LABEL_BUCKET_MS
        out: list[Record] = []
        for minute in sorted(m for m in self._labels_due if m < last):
            out.extend(record for _, record in sorted(self._labels_due.pop(minute), key=lambda item: item[0]))
        return out


@dataclass(frozen=True)
class Chunk:
    """What :func:`stream` makes of one slice of event time: its inference records and the
    delayed labels that fell due during it."""

    start_ms: float
    end_ms: float
    inference: list[Record]
    labels: list[Record]


def stream(
    spec: FleetSpec,
    incidents: Sequence[Incident],
    start_ms: int,
    duration_s: float | None,
    *,
    chunk_s: float = 1.0,
    capacity: CapacityHook | None = None,
    version: VersionHook | None = None,
) -> Iterator[Chunk]:
    """``duration_s`` seconds of fleet traffic (endless if None) in slices of ``chunk_s``,
    all models at once. Longer slices generate faster (a minute suits a fleet of sparse
    models: per-slice overhead dominates otherwise); the seasonal rate is held for a
    slice. Labels stamped after the end are never handed out."""
    fleet = Fleet(spec, incidents, start_ms, capacity=capacity, version=version)
    step = 0
    while duration_s is None or step * chunk_s < duration_s:
        t_s = step * chunk_s
        width_s = chunk_s if duration_s is None else min(chunk_s, duration_s - t_s)
        t0_ms = start_ms + t_s * 1000
        inference = fleet.slice(t0_ms, width_s * 1000.0)
        yield Chunk(t0_ms, t0_ms + width_s * 1000, inference, fleet.due_labels(t0_ms + width_s * 1000))
        step += 1


def generate(
    spec: FleetSpec,
    incidents: Sequence[Incident],
    start_ms: int,
    duration_s: float | None,
    *,
    chunk_s: float = 1.0,
    capacity: CapacityHook | None = None,
    version: VersionHook | None = None,
) -> Iterator[Record]:
    """Every inference record of ``duration_s`` seconds of fleet traffic (endless if None), in
    event-time order, as fast as the machine allows (:func:`stream` without the labels)."""
    for chunk in stream(spec, incidents, start_ms, duration_s, chunk_s=chunk_s, capacity=capacity, version=version):
        yield from chunk.inference


IncidentCallback = Callable[[Incident, Phase, float], Awaitable[None] | None]


async def _announce(
    incidents: Sequence[Incident], t0_s: float, t1_s: float, duration_s: float, on_incident: IncidentCallback | None
) -> None:
    """Call ``on_incident`` for every incident boundary in ``[t0_s, t1_s)`` of run time; an
    incident still active when the run ends ends with it."""
    if on_incident is None:
        return
    for inc in incidents:
        if inc.start_s >= duration_s:
            continue
        for phase, at in (("start", inc.start_s), ("end", min(inc.end_s, duration_s))):
            if t0_s <= at < t1_s:
                result = on_incident(inc, phase, time.time())  # type: ignore[arg-type]
                if inspect.isawaitable(result):
                    await result


async def run_live(
    producer: AIOKafkaProducer,
    topic: str,
    spec: FleetSpec,
    incidents: Sequence[Incident],
    duration_s: float,
    speed: float = 1.0,
    on_incident: IncidentCallback | None = None,
    *,
    tick_s: float = 0.05,
    capacity: CapacityHook | None = None,
    version: VersionHook | None = None,
    labels_topic: str | None = None,
) -> int:
    """Produce the fleet's traffic paced in real time (event time = wall time x ``speed``).

    Every ``tick_s`` of wall time the records of the next slice are handed to the
    producer keyed by model id (one model stays on one partition); ``on_incident`` (sync
    or async) hears each incident start and end so a demo can print a timeline or roll
    a bad version out for real. A slow broker makes ticks late, never drops records.
    With ``labels_topic`` the delayed labels (``spec.label_fraction``) go there as they fall
    due (:meth:`Fleet.due_labels`, same keys); without it none is sent, so a service's label
    joins only fill and expire. Returns the number of records sent (labels included).
    """
    loop = asyncio.get_running_loop()
    start_ms = int(time.time() * 1000)
    fleet = Fleet(spec, incidents, start_ms, capacity=capacity, version=version)
    wall0, step_s = loop.time(), tick_s * speed
    sent = 0
    for tick in range(math.ceil(duration_s / step_s)):
        t0_s, t1_s = tick * step_s, min((tick + 1) * step_s, duration_s)
        await _announce(incidents, t0_s, t1_s, duration_s, on_incident)
        for key, value in fleet.slice(start_ms + t0_s * 1000.0, (t1_s - t0_s) * 1000.0):
            await producer.send(topic, value, key=key)
            sent += 1
        if labels_topic is not None:
            for key, value in fleet.due_labels(start_ms + t1_s * 1000.0):
                await producer.send(labels_topic, value, key=key)
                sent += 1
        await asyncio.sleep(max(0.0, wall0 + (tick + 1) * tick_s - loop.time()))
    await _announce(incidents, duration_s, math.inf, duration_s, on_incident)
    await producer.flush()
    return sent


def producer_for(bootstrap: str) -> AIOKafkaProducer:
    """A producer tuned for load: batches fill for a few ms, no compression (the broker shares our 2 cores)."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, compression_type=None,
        max_batch_size=1 << 20, request_timeout_ms=30_000,
    )


async def ensure_topic(bootstrap: str, topic: str, partitions: int = 6) -> None:
    """Create ``topic`` with ``partitions`` unless it exists (auto-creation would pick the broker's count)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


def add_backlog_arguments(parser: argparse.ArgumentParser, *, events: int, models: int = 20, rate: float = 50.0,
                          canary: float = 0.1) -> None:
    """The options of the benchmarks that drain a backlog of fleet traffic (load/bench_*.py): where Kafka is,
    how many events, and the fleet's shape (:func:`backlog_spec` reads them back)."""
    parser.add_argument("--bootstrap", help="use this Kafka instead of starting one")
    parser.add_argument("--events", type=int, default=events)
    parser.add_argument("--models", type=int, default=models)
    parser.add_argument("--rate", type=float, default=rate, help="events/s per model (event time)")
    parser.add_argument("--canary", type=float, default=canary, help="fraction of requests mirrored to a canary")
    parser.add_argument("--seed", type=int, default=1)


def backlog_spec(args: argparse.Namespace) -> FleetSpec:
    """The fleet :func:`add_backlog_arguments`' options describe."""
    return FleetSpec(models=args.models, rate=args.rate, canary_fraction=args.canary, seed=args.seed)


async def fill_topic(
    bootstrap: str, topic: str, n_events: int, spec: FleetSpec, seed: int | None = None,
    *, start_ms: int = 1_767_225_600_000, partitions: int = 6, incidents: Sequence[Incident] = (),
) -> int:
    """Produce the first ``n_events`` records of the fleet (``seed`` overrides the spec's) with
    ``incidents``, as fast as the broker takes them; the topic is created with ``partitions`` if missing.

    Records go in whole batches per partition (same murmur2 key partitioning as ``send``):
    per-record ``send`` costs more Python than generating the record does.
    """
    if seed is not None:
        spec = replace(spec, seed=seed)
    await ensure_topic(bootstrap, topic, partitions)
    producer = producer_for(bootstrap)
    await producer.start()
    try:
        all_partitions = sorted(await producer.partitions_for(topic))
        partition_of: dict[bytes, int] = {}
        batches: dict[int, BatchBuilder] = {}
        pending: list[asyncio.Future] = []
        for key, value in itertools.islice(generate(spec, incidents, start_ms, None), n_events):
            partition = partition_of.get(key)
            if partition is None:
                partition = partition_of[key] = DefaultPartitioner()(key, all_partitions, all_partitions)
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = producer.create_batch()
            if batch.append(timestamp=None, key=key, value=value) is None:  # full: send it, start the next
                pending.append(await producer.send_batch(batch, topic, partition=partition))
                batches[partition] = producer.create_batch()
                batches[partition].append(timestamp=None, key=key, value=value)
        for partition, batch in batches.items():
            pending.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return n_events


def _print_timeline(incident: Incident, phase: Phase, wall_time: float) -> None:
    stamp = time.strftime("%H:%M:%S", time.localtime(wall_time))
    print(f"{stamp} {phase:5s} {incident}", flush=True)


async def _main(args: argparse.Namespace, spec: FleetSpec, incidents: list[Incident]) -> int:
    await ensure_topic(args.bootstrap, args.topic, args.partitions)
    producer = producer_for(args.bootstrap)
    await producer.start()
    try:
        sent = await run_live(producer, args.topic, spec, incidents, args.duration, args.speed, _print_timeline)
    finally:
        await producer.stop()
    print(f"sent {sent} events to {args.topic} in {args.duration:g}s of event time", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap HOST:PORT")
    parser.add_argument("--topic", default=DEFAULT_TOPIC)
    parser.add_argument("--partitions", type=int, default=6, help="used if the topic must be created")
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--rate", type=float, default=50.0, help="mean events/s per model")
    parser.add_argument("--canary", type=float, default=0.0, help="fraction of requests mirrored to a canary")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of event time")
    parser.add_argument("--speed", type=float, default=1.0, help="event-time seconds per wall second")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--incident", action="append", default=[], metavar="KIND:MODEL@START+DURATION[xMAG]")
    args = parser.parse_args(argv)
    spec = FleetSpec(models=args.models, rate=args.rate, seed=args.seed, canary_fraction=args.canary)
    try:
        incidents = [Incident.parse(text) for text in args.incident]
        Fleet(spec, incidents, 0)  # fails on unknown models before connecting to Kafka
    except ValueError as exc:
        parser.error(str(exc))
    return asyncio.run(_main(args, spec, incidents))


if __name__ == "__main__":
    sys.exit(main())

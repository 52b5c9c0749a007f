"""A simulated fleet of model servers: the demo's traffic and the benchmarks' load.

Every model of the fleet serves one ``production`` version and, optionally, mirrors a
fraction of its requests (same ``request_id``) to a ``canary`` running the previous
stable version. Requests arrive as a Poisson process whose rate varies per model and
with a mild daily seasonality; latency is lognormal around a per-model base; about
0.5% of requests fail; regressors predict a number, classifiers a label.

Everything is drawn from numpy generators seeded by ``FleetSpec.seed``, one time slice
at a time for all models at once, so the same seed gives byte-identical records and
generation runs far faster than Kafka can take them (see ``docs/benchmarks.md``).

Scripted incidents break one model for a while. Their compact form, for the CLI and
the demo, is::

    KIND:MODEL@START+DURATION[xMAGNITUDE]      e.g. latency_spike:model-003@20+15x5

START and DURATION are seconds from the start of the run (decimals allowed);
MAGNITUDE defaults per kind:

==================== ======= =====================================================
kind                 default what happens to the model while the incident is active
==================== ======= =====================================================
latency_spike        5       production latency x MAGNITUDE
throughput_collapse  0.05    request rate x MAGNITUDE (production and its canary mirror)
error_burst          0.3     production error rate becomes MAGNITUDE
bad_version          3       production serves the model's next version, whose latency
                             is x MAGNITUDE, error rate x MAGNITUDE**2 and predictions
                             shifted (regressors by MAGNITUDE-1 standard deviations,
                             classifiers mixed 1-1/MAGNITUDE toward their rarest label)
overload             3       request rate x MAGNITUDE; production latency then grows with
                             rate / (replicas x per-replica capacity)
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

import numpy as np
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from modelmedic.events import InferenceEvent, encode

IncidentKind = Literal["latency_spike", "throughput_collapse", "error_burst", "bad_version", "overload"]
Phase = Literal["start", "end"]
Record = tuple[bytes, bytes]
"""A Kafka record as produced: (key = model id, value = JSON inference event)."""

DEFAULT_MAGNITUDE: dict[str, float] = {
    "latency_spike": 5.0,
    "throughput_collapse": 0.05,
    "error_burst": 0.3,
    "bad_version": 3.0,
    "overload": 3.0,
}
DEFAULT_TOPIC = "modelmedic.inference"
DAY_MS = 86_400_000
CLASS_LABELS = ("approve", "review", "decline", "escalate")


@dataclass(frozen=True)
class FleetSpec:
    """The shape of the fleet; together with ``seed`` it fixes every record generated."""

    models: int = 20
    rate: float = 50.0
    """Mean requests per second per model."""
    rate_spread: float = 0.5
    """Per-model rates are uniform in ``rate * [1 - spread, 1 + spread]``."""
    seasonality: float = 0.2
    """Amplitude of the daily sinusoid on every model's rate (0.2 = +-20% over a day)."""
    latency_ms: tuple[float, float] = (20.0, 80.0)
    """Range of the per-model median latency."""
    latency_sigma: float = 0.25
    """Shape of the lognormal latency around the median."""
    error_rate: float = 0.005
    canary_fraction: float = 0.0
    """Fraction of production requests mirrored to a canary running the previous stable version."""
    classifier_share: float = 0.5
    """Fraction of models that are classifiers (label predictions); the rest are regressors."""
    utilization: float = 0.5
    """Load of one replica at the model's base rate: per-replica capacity is ``rate / utilization``."""
    seed: int = 1


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
    """What a ``bad_version`` incident deploys."""
    labels: tuple[str, ...]
    """Classifier labels; empty for a regressor."""
    label_p: tuple[float, ...]
    pred_mean: float
    pred_sd: float
    capacity_per_replica: float
    """Requests per second one replica serves at full utilization."""


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


def profiles(spec: FleetSpec) -> list[ModelProfile]:
    """Draw every model's parameters from the spec's seed (independent of the traffic stream)."""
    rng = np.random.default_rng([spec.seed, 0])
    out = []
    for i in range(spec.models):
        rate = spec.rate * rng.uniform(1 - spec.rate_spread, 1 + spec.rate_spread)
        major, minor = int(rng.integers(1, 4)), int(rng.integers(1, 9))
        classifier = rng.random() < spec.classifier_share
        labels = CLASS_LABELS[: int(rng.integers(2, len(CLASS_LABELS) + 1))] if classifier else ()
        weights = rng.dirichlet(np.full(len(labels), 4.0)) if classifier else np.empty(0)
        out.append(ModelProfile(
            model=model_id(i),
            rate=rate,
            latency_ms=rng.uniform(*spec.latency_ms),
            phase=rng.uniform(0, math.pi / 2),
            stable_version=f"v{major}.{minor}.0",
            previous_version=f"v{major}.{minor - 1}.0",
            next_version=f"v{major}.{minor + 1}.0",
            labels=labels,
            label_p=tuple(float(w) for w in weights),
            pred_mean=rng.uniform(-5, 5),
            pred_sd=rng.uniform(0.5, 2.0),
            capacity_per_replica=rate / spec.utilization,
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


@dataclass(frozen=True)
class _Arrivals:
    """Candidate requests of one slice with every random number they will need, ordered by event time."""

    model: np.ndarray
    ts: np.ndarray
    rid: np.ndarray
    stream: np.ndarray
    uniform: np.ndarray
    normal: np.ndarray

    @classmethod
    def concat(cls, a: "_Arrivals", b: "_Arrivals") -> "_Arrivals":
        """Both sets merged in event-time order (``a`` first on ties)."""
        merged = [np.concatenate([x, y]) for x, y in zip(a.fields(), b.fields())]
        order = np.argsort(merged[1], kind="stable")
        return cls(*(m[order] for m in merged))

    def fields(self) -> tuple[np.ndarray, ...]:
        return self.model, self.ts, self.rid, self.stream, self.uniform, self.normal

    def take(self, index: np.ndarray) -> "_Arrivals":
        return _Arrivals(*(f[index] for f in self.fields()))


def _padded(rows: Sequence[Sequence[object]], width: int, fill: object) -> list[list[object]]:
    """Rows of different lengths as one rectangular table (per-model label tables for numpy)."""
    return [list(row) + [fill] * (width - len(row)) for row in rows]


CapacityHook = Callable[[str], int]
VersionHook = Callable[[str], str]


class Fleet:
    """The generator's state: profiles, incidents, the random stream and the request counter.

    :meth:`slice` produces every model's records for one time slice; :func:`generate`
    and :func:`run_live` only decide how long the slices are and when they are made.
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
        self._next_request = [0, 0]
        self._keys = [p.model.encode() for p in self.profiles]
        self._rate = np.array([p.rate for p in self.profiles])
        self._capacity = np.array([p.capacity_per_replica for p in self.profiles])
        self._phase = np.array([p.phase for p in self.profiles])
        self._latency = np.array([p.latency_ms for p in self.profiles])
        self._pred_mean = np.array([p.pred_mean for p in self.profiles])
        self._pred_sd = np.array([p.pred_sd for p in self.profiles])
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
            if inc.kind == "bad_version":
                m = self._index[inc.model]
                self._version_index(m, self.profiles[m].next_version, inc.magnitude)
        self._stable = np.array([self._version_index(m, p.stable_version) for m, p in enumerate(self.profiles)])
        self._previous = np.array([self._version_index(m, p.previous_version) for m, p in enumerate(self.profiles)])

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
        day = 2 * math.pi * (t_ms % DAY_MS) / DAY_MS
        return self._rate * (1 + self.spec.seasonality * np.sin(day + self._phase))

    def _peak_rate_factor(self, t0_s: float, t1_s: float) -> np.ndarray:
        """Per model, the largest rate multiplier any incident applies inside [t0_s, t1_s)."""
        peak = np.ones(len(self.profiles))
        for inc in self.incidents:
            if inc.kind == "overload" and inc.start_s < t1_s and inc.end_s > t0_s:
                m = self._index[inc.model]
                peak[m] = max(peak[m], inc.magnitude)
        return peak

    def slice(self, t0_ms: float, dt_ms: float) -> list[Record]:
        """All records with event time in ``[t0_ms, t0_ms + dt_ms)``, in event-time order.

        Non-homogeneous Poisson arrivals by thinning: base arrivals at each model's normal
        rate, plus surge arrivals from a second random stream up to the peak rate of an
        ``overload``; each is kept with the probability that makes the rate right at its
        own event time, so incident boundaries fall on event times, not slice edges.
        Every random number of an arrival is drawn before thinning, so an incident changes
        only the records it should: all other records stay byte-identical.
        """
        t0_s = (t0_ms - self.start_ms) / 1000.0
        rate = self._seasonal_rate(t0_ms + dt_ms / 2)
        expected = rate * dt_ms / 1000.0
        surge = self._peak_rate_factor(t0_s, t0_s + dt_ms / 1000.0) - 1.0
        arrivals = _Arrivals.concat(
            self._arrivals(self._rng, 0, expected, t0_ms, dt_ms),
            self._arrivals(self._surge_rng, 1, expected * surge, t0_ms, dt_ms),
        )
        model, t_rel = arrivals.model, (arrivals.ts - self.start_ms) / 1000.0
        replicas, hooked_version = self._hooked()
        rate_mult = np.ones(model.size)
        lat_mult = np.ones(model.size)
        err = np.full(model.size, self.spec.error_rate)
        version = self._stable[model] if hooked_version is None else hooked_version[model]
        for inc in self.incidents:
            m = self._index[inc.model]
            hit = (model == m) & (t_rel >= inc.start_s) & (t_rel < inc.end_s)
            if inc.kind == "latency_spike":
                lat_mult[hit] *= inc.magnitude
            elif inc.kind == "error_burst":
                err[hit] = inc.magnitude
            elif inc.kind in ("throughput_collapse", "overload"):
                rate_mult[hit] *= inc.magnitude
            elif hooked_version is None:  # bad_version follows the clock only without a version hook
                version[hit] = self._version_of[(m, self.profiles[m].next_version)]

        keep_p = np.where(
            arrivals.stream == 0, np.minimum(rate_mult, 1.0),
            (rate_mult - 1.0) / np.maximum(surge[model], 1e-12),
        )
        keep = np.flatnonzero(arrivals.uniform[:, 1] < keep_p)
        utilization = rate[model] * rate_mult / (replicas[model] * self._capacity[model])
        severity = np.asarray(self._severity)[version]
        lat_mult *= slowdown(utilization) * severity
        err = np.minimum(1.0, err * severity**2)
        return self._records(arrivals.take(keep), version[keep], lat_mult[keep], err[keep], severity[keep])

    def _arrivals(self, rng: np.random.Generator, stream: int, expected: np.ndarray, t0_ms: float, dt_ms: float) -> "_Arrivals":
        """Poisson arrivals of every model with ``expected`` counts in the slice, with all their random draws."""
        model = np.repeat(np.arange(len(self.profiles)), rng.poisson(expected))
        n = model.size
        uniform, normal = rng.random((n, _UNIFORMS)), rng.standard_normal((n, _NORMALS))
        ts = np.floor(t0_ms + uniform[:, 0] * dt_ms).astype(np.int64)
        order = np.argsort(ts, kind="stable")
        rid = np.arange(self._next_request[stream], self._next_request[stream] + n)
        self._next_request[stream] += n
        return _Arrivals(model[order], ts[order], rid, np.full(n, stream), uniform[order], normal[order])

    def _records(
        self, a: "_Arrivals", version: np.ndarray, lat_mult: np.ndarray, err: np.ndarray, severity: np.ndarray
    ) -> list[Record]:
        """Latency, outcome and prediction per request, plus the canary mirrors, encoded.

        Each request has a latent input (``z`` for regressors, quantile ``u`` for
        classifiers) that its canary mirror shares up to a little noise, so the two
        predictions agree until a bad version shifts production's.
        """
        n = a.model.size
        mirrored = np.flatnonzero(a.uniform[:, 4] < self.spec.canary_fraction)
        source = np.concatenate([np.arange(n), mirrored])
        canary = np.arange(source.size) >= n
        model = a.model[source]
        version = np.concatenate([version, self._previous[a.model[mirrored]]])
        lat_mult = np.concatenate([lat_mult, np.ones(mirrored.size)])
        err = np.concatenate([err, np.full(mirrored.size, self.spec.error_rate)])
        severity = np.concatenate([severity, np.ones(mirrored.size)])
        normal, uniform = a.normal[source], a.uniform[source]
        z = normal[:, 0] + np.where(canary, 0.05 * normal[:, 2], 0.0)
        u = np.clip(uniform[:, 2] + np.where(canary, 0.02 * normal[:, 3], 0.0), 0.0, 1.0)
        latency_noise = np.where(canary, normal[:, 4], normal[:, 1])
        latency = self._latency[model] * lat_mult * np.exp(self.spec.latency_sigma * latency_noise)
        ok = np.where(canary, uniform[:, 5], uniform[:, 3]) >= err
        prediction = self._predictions(model, ok, z, u, severity)

        order = np.lexsort((canary, source))
        roles = ("production", "canary")
        keys, versions, names = self._keys, self._versions, self._names
        prefixes = (f"{self.spec.seed}-", f"{self.spec.seed}-s")
        return [
            (keys[m], encode(InferenceEvent(names[m], versions[v], roles[c], f"{prefixes[st]}{r:x}", t, lat, o, p)))
            for m, v, c, st, r, t, lat, o, p in zip(
                model[order].tolist(), version[order].tolist(), canary[order].tolist(),
                a.stream[source][order].tolist(), a.rid[source][order].tolist(), a.ts[source][order].tolist(),
                np.round(latency[order], 2).tolist(), ok[order].tolist(), prediction[order].tolist(),
            )
        ]

    def _predictions(
        self, model: np.ndarray, ok: np.ndarray, z: np.ndarray, u: np.ndarray, severity: np.ndarray
    ) -> np.ndarray:
        """Per request: a number (regressor), a label (classifier) or None (failed request).

        A version of severity s shifts a regressor by s-1 standard deviations and mixes
        a classifier's label distribution 1-1/s toward its rarest label.
        """
        value = np.round(self._pred_mean[model] + self._pred_sd[model] * (z + severity - 1.0), 4)
        p = self._label_p[model]
        mix = (1.0 - 1.0 / severity)[:, None]
        cdf = np.cumsum((1.0 - mix) * p + mix * self._label_rarest[model], axis=1)
        label = np.minimum((u[:, None] >= cdf).sum(axis=1), self._n_labels[model] - 1)
        out = np.where(self._n_labels[model] > 0, self._label_names[model, np.maximum(label, 0)], value.astype(object))
        out[~ok] = None
        return out


def generate(
    spec: FleetSpec,
    incidents: Sequence[Incident],
    start_ms: int,
    duration_s: float | None,
    *,
    capacity: CapacityHook | None = None,
    version: VersionHook | None = None,
) -> Iterator[Record]:
    """Every record of ``duration_s`` seconds of fleet traffic (endless if None), in event-time
    order, as fast as the machine allows: one-second slices, all models at once."""
    fleet = Fleet(spec, incidents, start_ms, capacity=capacity, version=version)
    second = 0
    while duration_s is None or second < duration_s:
        width_s = 1.0 if duration_s is None else min(1.0, duration_s - second)
        yield from fleet.slice(start_ms + second * 1000, width_s * 1000.0)
        second += 1


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
) -> int:
    """Produce the fleet's traffic paced in real time (event time = wall time x ``speed``).

    Every ``tick_s`` of wall time the records of the next slice are handed to the
    producer keyed by model id (one model stays on one partition); ``on_incident`` (sync
    or async) hears each incident start and end so a demo can print a timeline or roll
    a bad version out for real. A slow broker makes ticks late, never drops records.
    Returns the number of records sent.
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


async def fill_topic(
    bootstrap: str, topic: str, n_events: int, spec: FleetSpec, seed: int | None = None,
    *, start_ms: int = 1_767_225_600_000, partitions: int = 6,
) -> int:
    """Produce the first ``n_events`` records of the fleet (``seed`` overrides the spec's) as
    fast as the broker takes them; the topic is created with ``partitions`` if missing.

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
        for key, value in itertools.islice(generate(spec, (), start_ms, None), n_events):
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

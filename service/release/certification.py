"""Certification: replay recorded requests against a candidate version, measure it, gate it, bless it.

What TFX's Evaluator calls "blessing", for a model behind an HTTP endpoint (load/model_server.py's
contract: ``POST /predict {request_id, features} -> {prediction, version}``):

1. **Load**: the recorded request set (JSONL) is replayed open-loop at each rate of a short ladder
   (default 10, 25, 50, 100 req/s for 3 s each) with bounded concurrency. Latency is measured from
   the moment a request was *due*, not from when a free slot sent it, so a saturated server shows
   up as latency instead of silently lowering the rate (coordinated omission). The ladder stops at
   the first rate that misses the latency objective: higher rates would only miss it worse.
2. **Quality**: every labelled holdout request is sent once; accuracy for labels, MAE and RMSE for
   numbers.
3. **Gates** (a :class:`CertificationPolicy`): absolute ones (p99 latency, error rate, saturation
   throughput) and, when the model has a stable version with a certification report, relative ones
   (each quality metric not worse than stable's by more than a fraction; p99 not more than k x stable's).
4. **Report**: a JSON dict (the registry's certification report, so it is also the monitor's baseline)
   and its Markdown rendering, both attached to the version; the version is promoted to ``certified``
   only when every gate passed. :func:`render_png` draws the ladder as a chart, on request.

The headline latency of a report is the ladder's first (lowest) rate: the unloaded latency, which
is what versions are compared on; the saturation throughput says how the version behaves under load.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from modelmedic.config import read_yaml_mapping
from modelmedic.errors import CertificationInputError, CertificationMissingError, EndpointError

if TYPE_CHECKING:
    from modelmedic.registry import CertifiedBaseline, Registry

HIGHER_IS_BETTER = frozenset({"accuracy"})
"""Quality metrics where more is better; every other metric (mae, rmse) is an error, where less is."""

Progress = Callable[[str], None]
"""Where progress lines go: the CLI prints them; library callers get them as INFO log records by default."""

log = logging.getLogger(__name__)


class CertificationPolicy(BaseModel):
    """How a candidate is loaded and the gates it must pass to be certified."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    rates_rps: list[float] = Field(default_factory=lambda: [10.0, 25.0, 50.0, 100.0], min_length=1)
    """The request-rate ladder, ascending; each rate runs for ``step_s``."""
    step_s: float = Field(3.0, gt=0, le=600)
    """Seconds per rate: long enough for a p99 (rate x step_s requests), short enough for CI."""
    concurrency: int = Field(64, ge=1, le=10_000)
    """Requests in flight at most; a slow server queues behind it and shows as latency."""
    timeout_s: float = Field(5.0, gt=0)
    """A request unanswered after this long counts as an error."""
    max_p99_ms: float = Field(250.0, gt=0)
    """The latency objective: headline p99 must meet it, and it defines the saturation throughput."""
    max_error_rate: float = Field(0.01, ge=0, le=1)
    """Errors (non-200 answers, timeouts) as a fraction of all load requests."""
    min_throughput_rps: float = Field(25.0, ge=0)
    """The highest ladder rate still meeting the latency objective and error rate must reach this."""
    max_quality_regression: float = Field(0.02, ge=0)
    """Relative: each quality metric may be worse than stable's by at most this fraction of it."""
    max_latency_ratio: float = Field(1.5, ge=1)
    """Headline p99 may be at most this many times stable's certified p99."""
    task: Literal["auto", "classification", "regression"] = "auto"
    """How holdout labels are scored; auto: strings, booleans and integers are classes, other numbers regression."""

    @field_validator("rates_rps")
    @classmethod
    def _ascending_positive(cls, rates: list[float]) -> list[float]:
        if any(r <= 0 for r in rates) or rates != sorted(set(rates)):
            raise ValueError(f"rates must be positive, distinct and ascending, e.g. [10, 25, 50], got {rates}")
        return rates


def load_certification_policy(path: str | Path | None) -> CertificationPolicy:
    """The policy from a YAML or JSON file (the defaults when ``path`` is None), every error naming its field."""
    if path is None:
        return CertificationPolicy()
    data = read_yaml_mapping(path, "certification policy", CertificationInputError, "give a readable YAML file")
    try:
        return CertificationPolicy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors())
        raise CertificationInputError(f"policy {path} is invalid: {problems}") from exc


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Sample:
    """One recorded request (and its label, in a holdout set)."""

    request_id: str
    features: list[Any]
    label: Any = None


def load_samples(path: str | Path, *, labelled: bool = False) -> list[Sample]:
    """Read a JSONL request set: one ``{"request_id"?, "features": [...], "label"?}`` per line.

    ``labelled`` (a holdout) requires a label on every line. An error names the line to fix.
    """
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise CertificationInputError(f"cannot read {path}: {exc.strerror}; give a JSONL file of requests") from exc
    samples = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CertificationInputError(f"{path}:{n}: not JSON ({exc.msg}); one JSON object per line") from exc
        if not isinstance(record, dict) or not isinstance(record.get("features"), list):
            raise CertificationInputError(f'{path}:{n}: give an object with "features": [...]')
        if labelled and "label" not in record:
            raise CertificationInputError(f'{path}:{n}: a holdout line needs a "label" (the true answer)')
        samples.append(Sample(str(record.get("request_id", f"line-{n}")), record["features"], record.get("label")))
    if not samples:
        raise CertificationInputError(f"{path} holds no requests: record some traffic first")
    return samples


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class StepResult:
    """One rate of the ladder."""

    rate_rps: float
    requests: int
    errors: int
    achieved_rps: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def meets(self, policy: CertificationPolicy) -> bool:
        """Whether the server held this rate within the latency objective and the error budget."""
        return self.latency_p99_ms <= policy.max_p99_ms and self.error_rate <= policy.max_error_rate


@dataclass(frozen=True)
class Measurement:
    """Everything measured about a candidate: the ladder's steps and the holdout quality."""

    steps: tuple[StepResult, ...]
    quality: dict[str, float]
    holdout_size: int
    holdout_errors: int

    @property
    def headline(self) -> StepResult:
        """The unloaded step (the ladder's first): what versions are compared on."""
        return self.steps[0]

    @property
    def error_rate(self) -> float:
        total = sum(s.requests for s in self.steps)
        return sum(s.errors for s in self.steps) / total if total else 0.0

    def saturation_rps(self, policy: CertificationPolicy) -> float:
        """The highest rate (as actually sent) that met the objective; 0 when even the first did not."""
        return max((min(s.rate_rps, s.achieved_rps) for s in self.steps if s.meets(policy)), default=0.0)


def percentiles_ms(latencies_s: Sequence[float]) -> tuple[float, float, float]:
    """p50, p95, p99 in milliseconds (nearest-rank upward: a p99 is never better than some real request).

    >>> percentiles_ms([i / 1000 for i in range(1, 101)])
    (50.0, 95.0, 99.0)
    """
    values = np.asarray(latencies_s, dtype=float) * 1000
    p50, p95, p99 = np.percentile(values, [50, 95, 99], method="inverted_cdf")
    return round(float(p50), 3), round(float(p95), 3), round(float(p99), 3)


async def _send(client: httpx.AsyncClient, sample: Sample) -> Any:
    """One prediction; raise httpx.HTTPError (counted as an error) unless it answers 200 with a prediction."""
    response = await client.post("/predict", json={"request_id": sample.request_id, "features": sample.features})
    response.raise_for_status()
    body = response.json()
    if not isinstance(body, dict) or "prediction" not in body:
        raise httpx.DecodingError(f"answer without a prediction: {response.text[:200]}", request=response.request)
    return body["prediction"]


async def run_step(client: httpx.AsyncClient, samples: Sequence[Sample], rate_rps: float,
                   policy: CertificationPolicy) -> StepResult:
    """Send ``rate_rps x step_s`` requests open-loop at ``rate_rps`` and measure each from when it was due."""
    loop = asyncio.get_running_loop()
    count = max(1, round(rate_rps * policy.step_s))
    slots = asyncio.Semaphore(policy.concurrency)
    start = loop.time()

    async def one(i: int) -> tuple[float, bool]:
        due = start + i / rate_rps
        await asyncio.sleep(max(0.0, due - loop.time()))
        async with slots:
            try:
                await _send(client, samples[i % len(samples)])
                ok = True
            except (httpx.HTTPError, ValueError):
                ok = False
        return loop.time() - due, ok

    outcomes = await asyncio.gather(*(one(i) for i in range(count)))
    elapsed = loop.time() - start
    p50, p95, p99 = percentiles_ms([latency for latency, _ in outcomes])
    return StepResult(rate_rps=rate_rps, requests=count, errors=sum(not ok for _, ok in outcomes),
                      achieved_rps=round(count / elapsed, 3), latency_p50_ms=p50, latency_p95_ms=p95,
                      latency_p99_ms=p99)


def task_of(labels: Sequence[Any], task: str = "auto") -> Literal["classification", "regression"]:
    """Whether labels are classes or numbers to regress.

    >>> task_of([0, 1, 1]), task_of(["cat", "dog"]), task_of([0.5, 2.0])
    ('classification', 'classification', 'regression')
    """
    if task != "auto":
        return task  # type: ignore[return-value]
    return "classification" if all(isinstance(label, (str, bool, int)) for label in labels) else "regression"


def quality_metrics(predictions: Sequence[Any], labels: Sequence[Any], task: str) -> dict[str, float]:
    """Accuracy for classes; MAE and RMSE for numbers.

    >>> quality_metrics([1, 0, 1, 1], [1, 0, 0, 1], "classification")
    {'accuracy': 0.75}
    >>> quality_metrics([1.0, 3.0], [2.0, 1.0], "regression")
    {'mae': 1.5, 'rmse': 1.581139}
    """
    if task == "classification":
        return {"accuracy": round(sum(p == y for p, y in zip(predictions, labels)) / len(labels), 6)}
    try:
        errors = np.asarray(predictions, dtype=float) - np.asarray(labels, dtype=float)
    except (TypeError, ValueError) as exc:
        raise EndpointError(f"regression needs numeric predictions and labels ({exc}); set task: classification "
                            "in the policy if the model answers classes") from exc
    return {"mae": round(float(np.mean(np.abs(errors))), 6), "rmse": round(float(np.sqrt(np.mean(errors**2))), 6)}


_FAILED = object()
"""A holdout request that got no prediction: left out of the metrics, counted."""


async def evaluate_quality(client: httpx.AsyncClient, holdout: Sequence[Sample],
                           policy: CertificationPolicy) -> tuple[dict[str, float], int]:
    """Score every holdout sample once; failed requests are left out of the metrics and counted."""
    slots = asyncio.Semaphore(policy.concurrency)

    async def one(sample: Sample) -> Any:
        async with slots:
            try:
                return await _send(client, sample)
            except (httpx.HTTPError, ValueError):
                return _FAILED

    predictions = await asyncio.gather(*(one(s) for s in holdout))
    answered = [(p, s.label) for p, s in zip(predictions, holdout) if p is not _FAILED]
    if not answered:
        raise EndpointError(f"the candidate answered none of the {len(holdout)} holdout requests: check its logs")
    task = task_of([label for _, label in answered], policy.task)
    return quality_metrics([p for p, _ in answered], [y for _, y in answered], task), len(holdout) - len(answered)


async def _preflight(client: httpx.AsyncClient, sample: Sample, endpoint: str, version: str | None) -> None:
    """Fail at once, with a clear message, when the endpoint is not there or answers for another version."""
    try:
        response = await client.post("/predict", json={"request_id": sample.request_id, "features": sample.features})
    except httpx.TransportError as exc:
        raise EndpointError(f"cannot reach the candidate at {endpoint} ({exc!r}): start it, or pass the right "
                            "--endpoint (it must serve POST /predict)") from exc
    try:
        served = response.json().get("version")
    except (ValueError, AttributeError):
        served = None
    if version is not None and served not in (None, version):
        raise EndpointError(f"{endpoint} serves {served}, not {version}: point --endpoint at the candidate "
                            "(measuring another build would certify the wrong one)")


async def measure(endpoint: str, samples: Sequence[Sample], holdout: Sequence[Sample] | None,
                  policy: CertificationPolicy, *, version: str | None = None,
                  transport: httpx.AsyncBaseTransport | None = None, progress: Progress = log.info) -> Measurement:
    """Run the rate ladder (stopping at the first rate that misses the objective), then score the holdout.

    With ``version``, an endpoint whose answers name another version is refused before any load.
    """
    limits = httpx.Limits(max_connections=policy.concurrency, max_keepalive_connections=policy.concurrency)
    async with httpx.AsyncClient(base_url=endpoint, transport=transport, timeout=policy.timeout_s,
                                 limits=limits) as client:
        await _preflight(client, samples[0], endpoint, version)
        steps: list[StepResult] = []
        for rate in policy.rates_rps:
            step = await run_step(client, samples, rate, policy)
            steps.append(step)
            progress(f"{rate:g} req/s: p50 {step.latency_p50_ms:.1f} ms, p99 {step.latency_p99_ms:.1f} ms, "
                     f"{step.errors}/{step.requests} errors, sent at {step.achieved_rps:.1f} req/s")
            if not step.meets(policy):
                progress(f"stopping the ladder: {rate:g} req/s misses p99 <= {policy.max_p99_ms:g} ms "
                         f"or error rate <= {policy.max_error_rate:g}")
                break
        quality, failed = await evaluate_quality(client, holdout, policy) if holdout else ({}, 0)
        if holdout:
            progress(f"holdout: {quality} over {len(holdout) - failed} of {len(holdout)} answered requests")
    return Measurement(steps=tuple(steps), quality=quality, holdout_size=len(holdout or ()), holdout_errors=failed)


# --------------------------------------------------------------------------- gates


@dataclass(frozen=True)
class Gate:
    """One check of a certification: what was observed against what the policy allows.

    ``passed`` is None for a gate that could not be evaluated (e.g. no stable version to compare with).
    """

    name: str
    observed: float | None
    threshold: float | None
    comparison: Literal["<=", ">="]
    passed: bool | None
    note: str = ""

    def describe(self) -> str:
        """One line for a person: ``p99_latency_ms: observed 312.4, must be <= 250``."""
        if self.passed is None:
            return f"{self.name}: not evaluated ({self.note})"
        verdict = "passed" if self.passed else "FAILED"
        return (f"{self.name}: {verdict}, observed {_fmt(self.observed)}, must be {self.comparison} "
                f"{_fmt(self.threshold)}" + (f" ({self.note})" if self.note else ""))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _gate(name: str, observed: float, comparison: Literal["<=", ">="], threshold: float, note: str = "") -> Gate:
    passed = observed <= threshold if comparison == "<=" else observed >= threshold
    return Gate(name, observed, round(threshold, 6), comparison, passed, note)


def absolute_gates(measurement: Measurement, policy: CertificationPolicy) -> list[Gate]:
    """Latency, error rate and throughput against the policy's fixed limits."""
    head = measurement.headline
    return [
        _gate("p99_latency_ms", head.latency_p99_ms, "<=", policy.max_p99_ms, f"at {head.rate_rps:g} req/s"),
        _gate("error_rate", measurement.error_rate, "<=", policy.max_error_rate),
        _gate("throughput_rps", measurement.saturation_rps(policy), ">=", policy.min_throughput_rps,
              f"highest rate with p99 <= {policy.max_p99_ms:g} ms"),
    ]


def relative_gates(measurement: Measurement, policy: CertificationPolicy, stable: CertifiedBaseline | None,
                   stable_version: str | None) -> list[Gate]:
    """Quality and latency against the stable version's certified numbers (TFX's change threshold)."""
    if stable is None:
        why = f"stable {stable_version} has no certification report" if stable_version else "no stable version yet"
        return [Gate("relative_to_stable", None, None, "<=", None, why)]
    vs = f"stable {stable_version}"
    delta = policy.max_quality_regression
    gates = [_gate("p99_latency_ratio", round(measurement.headline.latency_p99_ms / max(stable.latency_p99_ms, 1e-9), 6),
                   "<=", policy.max_latency_ratio, f"vs {vs} p99 {stable.latency_p99_ms:g} ms")]
    for metric in sorted({*measurement.quality, *stable.quality}):
        name = f"quality.{metric}"
        if metric not in measurement.quality or metric not in stable.quality:
            side = "the candidate" if metric not in measurement.quality else vs
            gates.append(Gate(name, measurement.quality.get(metric), None, "<=", None, f"{side} has no {metric}"))
        elif metric in HIGHER_IS_BETTER:
            gates.append(_gate(name, measurement.quality[metric], ">=", stable.quality[metric] * (1 - delta),
                               f"{vs}: {stable.quality[metric]:g}"))
        else:
            gates.append(_gate(name, measurement.quality[metric], "<=", stable.quality[metric] * (1 + delta),
                               f"{vs}: {stable.quality[metric]:g}"))
    return gates


# --------------------------------------------------------------------------- report


def build_report(model: str, version: str, endpoint: str, policy: CertificationPolicy, measurement: Measurement,
                 gates: Sequence[Gate], stable_version: str | None, now: datetime) -> dict[str, Any]:
    """The certification report: the registry's baseline fields first, then how they were obtained."""
    head = measurement.headline
    return {
        "latency_p50_ms": head.latency_p50_ms,
        "latency_p95_ms": head.latency_p95_ms,
        "latency_p99_ms": head.latency_p99_ms,
        "throughput_rps": measurement.saturation_rps(policy),
        "error_rate": round(measurement.error_rate, 6),
        "quality": measurement.quality,
        "passed": all(g.passed is not False for g in gates),
        "model": model,
        "version": version,
        "endpoint": endpoint,
        "certified_at": now.isoformat(timespec="seconds"),
        "compared_with": stable_version,
        "ladder": [{**asdict(s), "error_rate": round(s.error_rate, 6)} for s in measurement.steps],
        "holdout": {"size": measurement.holdout_size, "errors": measurement.holdout_errors},
        "gates": [asdict(g) for g in gates],
        "policy": policy.model_dump(),
    }


def render_markdown(report: dict[str, Any]) -> str:
    """The report as reviewers read it in the registry's pull request."""
    verdict = "PASSED: certified" if report["passed"] else "FAILED: not certified"
    lines = [
        f"# Certification of {report['model']} {report['version']}: {verdict}",
        "",
        f"Endpoint {report['endpoint']}, {report['certified_at']}, compared with "
        f"{report['compared_with'] or 'no stable version'}.",
        "",
        "## Gates",
        "",
        "| gate | result | observed | threshold | note |",
        "|---|---|---|---|---|",
    ]
    for g in report["gates"]:
        result = {True: "pass", False: "**FAIL**", None: "n/a"}[g["passed"]]
        threshold = "-" if g["threshold"] is None else f"{g['comparison']} {_fmt(g['threshold'])}"
        lines.append(f"| {g['name']} | {result} | {_fmt(g['observed'])} | {threshold} | {g['note']} |")
    lines += ["", "## Load ladder", "", "| rate (req/s) | sent (req/s) | requests | errors | p50 ms | p95 ms | p99 ms |",
              "|---|---|---|---|---|---|---|"]
    for s in report["ladder"]:
        lines.append(f"| {s['rate_rps']:g} | {s['achieved_rps']:g} | {s['requests']} | {s['errors']} | "
                     f"{s['latency_p50_ms']:g} | {s['latency_p95_ms']:g} | {s['latency_p99_ms']:g} |")
    quality = ", ".join(f"{k} {v:g}" for k, v in report["quality"].items()) or "no holdout given"
    lines += ["", f"Saturation throughput {report['throughput_rps']:g} req/s; error rate {report['error_rate']:g}; "
              f"quality: {quality} (holdout {report['holdout']['size']}, {report['holdout']['errors']} unanswered).", ""]
    return "\n".join(lines)


PLOT_COLOURS = {"latency_p50_ms": (46, 125, 50), "latency_p95_ms": (239, 160, 0), "latency_p99_ms": (198, 40, 40)}
"""p50 green, p95 amber, p99 red; the latency objective is a grey dashed line."""
_GREY, _BLACK = (140, 140, 140), (0, 0, 0)


def render_png(report: dict[str, Any], width: int = 480, height: int = 240) -> bytes:
    """The ladder as a PNG line chart: p50/p95/p99 (y, from 0 ms) per rate (x, evenly spaced, ascending).

    No text (no font without a plotting library): the Markdown report carries the numbers, the
    picture shows the knee at a glance, and where it crosses the dashed objective line.
    """
    margin = 12
    canvas = bytearray(b"\xff" * width * height * 3)
    ladder, objective = report["ladder"], report["policy"]["max_p99_ms"]
    top = 1.1 * max([objective, *(step["latency_p99_ms"] for step in ladder)])

    def at(i: float, ms: float) -> tuple[float, float]:
        return (margin + (width - 2 * margin) * i / max(len(ladder) - 1, 1),
                height - margin - (height - 2 * margin) * ms / top)

    def dot(x: float, y: float, colour: tuple[int, int, int], size: int = 1) -> None:
        for dx in range(-size // 2 + 1, size // 2 + 1):
            for dy in range(-size // 2 + 1, size // 2 + 1):
                px, py = round(x) + dx, round(y) + dy
                if 0 <= px < width and 0 <= py < height:
                    canvas[(py * width + px) * 3:(py * width + px) * 3 + 3] = bytes(colour)

    def line(a: tuple[float, float], b: tuple[float, float], colour: tuple[int, int, int], dash: int = 0) -> None:
        steps = max(round(abs(b[0] - a[0])), round(abs(b[1] - a[1])), 1)
        for k in range(steps + 1):
            if not dash or (k // dash) % 2 == 0:
                dot(a[0] + (b[0] - a[0]) * k / steps, a[1] + (b[1] - a[1]) * k / steps, colour, 2)

    line((margin, height - margin), (width - margin, height - margin), _BLACK)
    line((margin, margin), (margin, height - margin), _BLACK)
    line((margin, at(0, objective)[1]), (width - margin, at(0, objective)[1]), _GREY, dash=6)
    for key, colour in PLOT_COLOURS.items():
        points = [at(i, step[key]) for i, step in enumerate(ladder)]
        for a, b in zip(points, points[1:]):
            line(a, b, colour)
        for point in points:
            dot(*point, colour, 7)
    return _png(width, height, bytes(canvas))


def _png(width: int, height: int, rgb: bytes) -> bytes:
    """An 8-bit RGB PNG: signature, IHDR, one zlib IDAT of filter-0 rows, IEND (RFC 2083)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = width * 3
    raw = b"".join(b"\x00" + rgb[y * row:(y + 1) * row] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


# --------------------------------------------------------------------------- the whole run


@dataclass(frozen=True)
class CertificationResult:
    """What ``certify`` did: the report, its Markdown, and the gates that failed (empty when certified)."""

    report: dict[str, Any]
    markdown: str
    failures: tuple[Gate, ...]
    promoted: bool
    """Whether this run moved the version to ``certified`` (not when it already was, stable or canary)."""

    @property
    def passed(self) -> bool:
        return not self.failures


def _stable_baseline(registry: Registry, model: str, version: str) -> tuple[str | None, CertifiedBaseline | None]:
    """The stable version to compare with (never the candidate itself) and its certified numbers, if any."""
    stable = registry.stable_version(model)
    if stable is None or stable == version:
        return None, None
    try:
        return stable, registry.certified_baseline(model, stable)
    except CertificationMissingError:
        return stable, None


async def certify(registry: Registry, model: str, version: str, endpoint: str, samples: Sequence[Sample],
                  holdout: Sequence[Sample] | None, policy: CertificationPolicy, *,
                  transport: httpx.AsyncBaseTransport | None = None, progress: Progress = log.info,
                  now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> CertificationResult:
    """Measure ``model@version`` at ``endpoint``, attach the report, and certify it if every gate passed."""
    from modelmedic.registry import normalize_version

    version = normalize_version(version)
    stage = await asyncio.to_thread(registry.stage, model, version)  # fails early on an unknown model or version
    stable_version, stable = await asyncio.to_thread(_stable_baseline, registry, model, version)
    measurement = await measure(endpoint, samples, holdout, policy, version=version, transport=transport,
                                progress=progress)
    gates = absolute_gates(measurement, policy) + relative_gates(measurement, policy, stable, stable_version)
    report = build_report(model, version, endpoint, policy, measurement, gates, stable_version, now())
    markdown = render_markdown(report)
    await asyncio.to_thread(registry.attach_certification, model, version, report, markdown)
    failures = tuple(g for g in gates if g.passed is False)
    promoted = not failures and stage in (None, "candidate")
    if promoted:
        await asyncio.to_thread(registry.promote, model, version, "certified",
                                reason=f"modelmedic certify: every gate passed against {endpoint}")
    return CertificationResult(report=report, markdown=markdown, failures=failures, promoted=promoted)


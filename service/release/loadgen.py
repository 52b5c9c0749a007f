"""The load generator and the holdout scorer: what certification measures about a candidate endpoint.

Latency is measured from the moment a request was *due*, not from when a free slot sent it, so a
saturated server shows up as latency instead of silently lowering the rate (coordinated omission).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import numpy as np

from modelmedic.errors import EndpointError
from modelmedic.release.inputs import CertificationPolicy, Sample

Progress = Callable[[str], None]
"""Where progress lines go: the CLI prints them; library callers get them as INFO log records by default."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Percentiles:
    """p50, p95 and p99 of some requests, in ms; None where too few requests were sent to report one."""

    requests: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    def describe(self, q: str) -> str:
        """One percentile for a person: the figure, or why there is none."""
        value = getattr(self, f"{q}_ms")
        return f"{value:g} ms" if value is not None else f"insufficient ({self.requests} requests)"


QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}


def percentiles(latencies_ms: Sequence[float], min_tail_samples: int) -> Percentiles:
    """Nearest-rank (upward) percentiles, each reported only from enough requests: n x (1 - q) >= ``min_tail_samples``.

    A p99 of 100 requests is just their slowest one; it takes ~1,000 before the figure stops
    jumping from run to run, so with fewer it is "insufficient", not a number.

    >>> percentiles([float(i) for i in range(1, 1001)], 10)
    Percentiles(requests=1000, p50_ms=500.0, p95_ms=950.0, p99_ms=990.0)
    >>> percentiles([float(i) for i in range(1, 301)], 10)
    Percentiles(requests=300, p50_ms=150.0, p95_ms=285.0, p99_ms=None)
    """
    values = np.asarray(latencies_ms, dtype=float)
    n = len(values)
    figures = {}
    for name, q in QUANTILES.items():
        enough = n * (1 - q) >= min_tail_samples - 1e-9
        figures[name] = round(float(np.percentile(values, 100 * q, method="inverted_cdf")), 3) if enough else None
    return Percentiles(n, figures["p50"], figures["p95"], figures["p99"])


@dataclass(frozen=True)
class StepResult:
    """One rate of the ladder."""

    rate_rps: float
    requests: int
    errors: int
    achieved_rps: float
    latencies_ms: tuple[float, ...] = field(repr=False)
    """Every request's latency, from when it was due."""

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def tail_ms(self) -> float:
        """What the objective is checked on: the nearest-rank p99 of this step (its slowest request below 100)."""
        return float(np.percentile(np.asarray(self.latencies_ms), 99, method="inverted_cdf")) if self.latencies_ms else 0.0

    def percentiles(self, policy: CertificationPolicy) -> Percentiles:
        return percentiles(self.latencies_ms, policy.min_tail_samples)

    def meets(self, policy: CertificationPolicy) -> bool:
        """Whether the server held this rate within the latency objective and the error budget."""
        return self.tail_ms <= policy.max_p99_ms and self.error_rate <= policy.max_error_rate


@dataclass(frozen=True)
class Measurement:
    """Everything measured about a candidate: the ladder's steps and the holdout quality."""

    steps: tuple[StepResult, ...]
    quality: dict[str, float]
    holdout_size: int
    holdout_errors: int
    predictions: tuple[Any, ...] = ()
    """The holdout's answered predictions: what the version's output schema is checked on."""

    def loaded_steps(self, policy: CertificationPolicy) -> tuple[StepResult, ...]:
        """The steps the headline pools: every rate up to saturation (the first step alone when none met the objective)."""
        met = tuple(s for s in self.steps if s.meets(policy))
        return met or self.steps[:1]

    def headline(self, policy: CertificationPolicy) -> Percentiles:
        """The percentiles versions are compared on and the monitor's baseline: every request of the loaded steps."""
        return percentiles([x for s in self.loaded_steps(policy) for x in s.latencies_ms], policy.min_tail_samples)

    @property
    def error_rate(self) -> float:
        total = sum(s.requests for s in self.steps)
        return sum(s.errors for s in self.steps) / total if total else 0.0

    def saturation_rps(self, policy: CertificationPolicy) -> float:
        """The highest rate (as actually sent) that met the objective; 0 when even the first did not."""
        return max((min(s.rate_rps, s.achieved_rps) for s in self.steps if s.meets(policy)), default=0.0)


def request_body(sample: Sample) -> dict[str, Any]:
    """What ``POST /predict`` is sent for ``sample``: what the version's input schema describes."""
    return {"request_id": sample.request_id, "features": sample.features}


async def _send(client: httpx.AsyncClient, sample: Sample) -> Any:
    """One prediction; raise httpx.HTTPError (counted as an error) unless it answers 200 with a prediction."""
    response = await client.post("/predict", json=request_body(sample))
    response.raise_for_status()
    body = response.json()
    if not isinstance(body, dict) or "prediction" not in body:
        raise httpx.DecodingError(f"answer without a prediction: {response.text[:200]}", request=response.request)
    return body["prediction"]


async def run_step(client: httpx.AsyncClient, samples: Sequence[Sample], rate_rps: float,
                   policy: CertificationPolicy, count: int | None = None) -> StepResult:
    """Send ``count`` (default ``rate_rps x step_s``) requests open-loop at ``rate_rps``, each measured from when it was due."""
    loop = asyncio.get_running_loop()
    count = max(1, round(rate_rps * policy.step_s)) if count is None else count
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
    return StepResult(rate_rps=rate_rps, requests=count, errors=sum(not ok for _, ok in outcomes),
                      achieved_rps=round(count / elapsed, 3),
                      latencies_ms=tuple(round(latency * 1000, 3) for latency, _ in outcomes))


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
                           policy: CertificationPolicy) -> tuple[dict[str, float], list[Any]]:
    """Score every holdout sample once: the metrics and the answered predictions (failed requests are left out)."""
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
    return quality_metrics([p for p, _ in answered], [y for _, y in answered], task), [p for p, _ in answered]


async def _preflight(client: httpx.AsyncClient, sample: Sample, endpoint: str, version: str | None) -> None:
    """Fail at once, with a clear message, when the endpoint is not there or answers for another version."""
    try:
        response = await client.post("/predict", json=request_body(sample))
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
        if policy.warmup_requests:
            await run_step(client, samples, policy.rates_rps[0], policy, count=policy.warmup_requests)
            progress(f"warm-up: {policy.warmup_requests} requests at {policy.rates_rps[0]:g} req/s, left out of every figure")
        steps: list[StepResult] = []
        for rate in policy.rates_rps:
            step = await run_step(client, samples, rate, policy)
            steps.append(step)
            figures = step.percentiles(policy)
            progress(f"{rate:g} req/s: p50 {figures.describe('p50')}, p99 {figures.describe('p99')} "
                     f"(slowest 1%: {step.tail_ms:.1f} ms), {step.errors}/{step.requests} errors, "
                     f"sent at {step.achieved_rps:.1f} req/s")
            if not step.meets(policy):
                progress(f"stopping the ladder: {rate:g} req/s misses p99 <= {policy.max_p99_ms:g} ms "
                         f"or error rate <= {policy.max_error_rate:g}")
                break
        quality, predictions = await evaluate_quality(client, holdout, policy) if holdout else ({}, [])
        if holdout:
            progress(f"holdout: {quality} over {len(predictions)} of {len(holdout)} answered requests")
    return Measurement(steps=tuple(steps), quality=quality, holdout_size=len(holdout or ()),
                       holdout_errors=len(holdout or ()) - len(predictions), predictions=tuple(predictions))

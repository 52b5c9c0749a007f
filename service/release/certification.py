"""Certification: replay recorded requests against a candidate version, measure it, gate it, bless it.

What TFX's Evaluator calls "blessing", for a model behind an HTTP endpoint (load/model_server.py's
contract: ``POST /predict {request_id, features} -> {prediction, version}``):

1. **Load**: after ``warmup_requests`` left out of every figure, the recorded request set (JSONL) is
   replayed open-loop at each rate of a short ladder (default 10, 25, 50, 100 req/s for 6 s each)
   with bounded concurrency. Latency is measured from
   the moment a request was *due*, not from when a free slot sent it, so a saturated server shows
   up as latency instead of silently lowering the rate (coordinated omission). The ladder stops at
   the first rate that misses the latency objective: higher rates would only miss it worse.
2. **Quality**: every labelled holdout request is sent once; accuracy for labels, MAE and RMSE for
   numbers.
3. **Gates** (a :class:`CertificationPolicy`, with the model's own ``gates`` from model.yaml over it):
   absolute ones (p99 latency, error rate, saturation throughput, quality floors and ceilings) that
   every version must meet, the first one too, and, when the model has a stable version with a
   certification report, relative ones (each quality metric not worse than stable's by more than a
   fraction; p99 not more than k x stable's). A first version with no quality floor configured fails:
   nothing would say its quality is good enough. The version's interface (registry) is enforced on the traffic:
   every request sent must match its input schema and every holdout prediction its output schema.
4. **Report**: a JSON dict (the registry's certification report, so it is also the monitor's baseline,
   with the reference distributions it judges the version's predictions and inputs against from its first
   request: :func:`~modelmedic.release.report.reference_distributions`) and its Markdown rendering, both
   attached to the version; the version is promoted to ``certified`` only when every gate passed. :func:`~modelmedic.release.report.render_png` draws the ladder as a
   chart, on request.

Modules by job: :mod:`~modelmedic.release.inputs` (policy and request sets),
:mod:`~modelmedic.release.loadgen` (the ladder and the holdout), :mod:`~modelmedic.release.report`
(gates, report, Markdown and chart); this one runs them in order and records the result.

The headline latencies of a report (and so the monitor's baseline) pool every request of the steps
that met the objective, i.e. the load the version is certified for, warm-up excluded; a percentile
is reported only from enough requests (``min_tail_samples``: a p99 from 1,000), else as
insufficient, which fails the p99 gate rather than certifying a figure that means nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from modelmedic.errors import CertificationMissingError
from modelmedic.release.inputs import CertificationPolicy, Sample
from modelmedic.release.loadgen import Progress, measure
from modelmedic.release.report import (Gate, absolute_gates, build_report, interface_gates, reference_distributions,
                                       relative_gates, render_markdown)

if TYPE_CHECKING:
    from modelmedic.registry import CertifiedBaseline, Registry

log = logging.getLogger(__name__)


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
    policy = policy.with_model_gates((await asyncio.to_thread(registry.spec, model)).gates)
    interface = await asyncio.to_thread(registry.interface, model, version)
    stable_version, stable = await asyncio.to_thread(_stable_baseline, registry, model, version)
    measurement = await measure(endpoint, samples, holdout, policy, version=version, transport=transport,
                                progress=progress)
    gates = (absolute_gates(measurement, policy) + relative_gates(measurement, policy, stable, stable_version)
             + interface_gates(interface, [*samples, *(holdout or ())], measurement.predictions))
    report = {**build_report(model, version, endpoint, policy, measurement, gates, stable_version, now()),
              **reference_distributions(interface, [*samples, *(holdout or ())], measurement.predictions)}
    markdown = render_markdown(report)
    await asyncio.to_thread(registry.attach_certification, model, version, report, markdown)
    failures = tuple(g for g in gates if g.passed is False)
    promoted = not failures and stage in (None, "candidate")
    if promoted:
        await asyncio.to_thread(registry.promote, model, version, "certified",
                                reason=f"modelmedic certify: every gate passed against {endpoint}")
    return CertificationResult(report=report, markdown=markdown, failures=failures, promoted=promoted)

"""What certification reads: the policy (load ladder and gates) and the recorded request sets."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from modelmedic.config import read_yaml_mapping
from modelmedic.errors import CertificationInputError


class CertificationPolicy(BaseModel):
    """How a candidate is loaded and the gates it must pass to be certified."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    rates_rps: list[float] = Field(default_factory=lambda: [10.0, 25.0, 50.0, 100.0], min_length=1)
    """The request-rate ladder, ascending; each rate runs for ``step_s``."""
    step_s: float = Field(6.0, gt=0, le=600)
    """Seconds per rate. The headline percentiles pool every step that met the objective, so the
    default ladder sends 1,110 requests: enough for a p99 (see ``min_tail_samples``)."""
    warmup_requests: int = Field(50, ge=0)
    """Requests sent at the first rate before the ladder and left out of every figure (connection
    set-up, lazy loading, JIT: the first requests say nothing about the steady state)."""
    min_tail_samples: int = Field(10, ge=1)
    """A percentile q is reported only from n requests with n x (1 - q) >= this: with 10, a p99 needs
    1,000 requests, a p95 200, a p50 20; fewer, and it is reported as insufficient, not as a figure."""
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
    min_quality: dict[str, float] = Field(default_factory=dict)
    """Absolute floors for metrics where more is better, e.g. ``{accuracy: 0.9}``: no version passes below
    them, first versions included. The model's ``gates`` in model.yaml override them per metric."""
    max_quality: dict[str, float] = Field(default_factory=dict)
    """Absolute ceilings for error metrics, e.g. ``{mae: 2.5}`` (same rules)."""
    max_quality_regression: float = Field(0.02, ge=0)
    """Relative: each quality metric may be worse than stable's by at most this fraction of it."""
    max_latency_ratio: float = Field(1.5, ge=1)
    """Headline p99 may be at most this many times stable's certified p99."""
    task: Literal["auto", "classification", "regression"] = "auto"
    """How holdout labels are scored; auto: strings, booleans and integers are classes, other numbers regression."""

    def with_model_gates(self, gates: dict[str, Any]) -> CertificationPolicy:
        """This policy with a model's own ``gates`` (model.yaml) over it: the model's numbers win, metric by metric."""
        update: dict[str, Any] = {k: gates[k] for k in ("max_p99_ms", "max_error_rate", "min_throughput_rps") if k in gates}
        for bound in ("min_quality", "max_quality"):
            if bound in gates:
                update[bound] = {**getattr(self, bound), **gates[bound]}
        return self.model_validate({**self.model_dump(), **update})

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

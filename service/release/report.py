"""Judging and reporting a certification: the gates, the report (JSON and Markdown) and its chart."""

from __future__ import annotations

import importlib.util
import io
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from modelmedic.errors import ModelmedicError
from modelmedic.release.inputs import CertificationPolicy, Sample
from modelmedic.release.loadgen import Measurement, StepResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from modelmedic.registry import CertifiedBaseline

HIGHER_IS_BETTER = frozenset({"accuracy"})
"""Quality metrics where more is better; every other metric (mae, rmse) is an error, where less is."""


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


def _ms(value: float | None) -> str:
    return "insufficient" if value is None else f"{value:g} ms"


def _gate(name: str, observed: float, comparison: Literal["<=", ">="], threshold: float, note: str = "") -> Gate:
    passed = observed <= threshold if comparison == "<=" else observed >= threshold
    return Gate(name, observed, round(threshold, 6), comparison, passed, note)


def absolute_gates(measurement: Measurement, policy: CertificationPolicy) -> list[Gate]:
    """Latency, error rate, throughput and quality against fixed limits: what every version must meet, first ones too."""
    head = measurement.headline(policy)
    rates = ", ".join(f"{s.rate_rps:g}" for s in measurement.loaded_steps(policy))
    if head.p99_ms is None:
        need = round(policy.min_tail_samples / (1 - 0.99))
        latency = Gate("p99_latency_ms", None, policy.max_p99_ms, "<=", False,
                       f"insufficient: {head.requests} requests at {rates} req/s, a p99 needs {need}; "
                       "raise step_s or the rates")
    else:
        latency = _gate("p99_latency_ms", head.p99_ms, "<=", policy.max_p99_ms,
                        f"{head.requests} requests at {rates} req/s")
    return [
        latency,
        _gate("error_rate", measurement.error_rate, "<=", policy.max_error_rate),
        _gate("throughput_rps", measurement.saturation_rps(policy), ">=", policy.min_throughput_rps,
              f"highest rate with p99 <= {policy.max_p99_ms:g} ms"),
        *quality_floors(measurement, policy),
    ]


def named_features(schema: dict[str, Any], features: Sequence[Any]) -> Any:
    """A recorded request's features as the version's input schema describes the model's input.

    The input schema describes the features a model takes (docs/registry.md: ``properties`` named
    ``amount``, ``country``; the live input monitor checks an inference event's named ``features``
    against it), while a recorded request's features are positional (``POST /predict {features: [...]}``):
    position ``i`` is named after the ``i``-th property. An ``array`` schema takes the list as it is; an
    object schema that names no property, positions ``"0"``, ``"1"``, ...; a request with another number
    of features than the schema names stays a list, which the object schema then refuses, saying so."""
    if schema.get("type") == "array":
        return list(features)
    names = list(schema.get("properties") or ())
    if not names:
        return {str(i): value for i, value in enumerate(features)}
    return dict(zip(names, features)) if len(features) == len(names) else list(features)


def interface_gates(interface: dict[str, Any], requests: Sequence[Sample],
                    predictions: Sequence[Any]) -> list[Gate]:
    """The version's interface enforced on its certification traffic: every request's features must match
    its input schema (:func:`named_features`) and every prediction its output schema (none may mismatch: a
    version whose callers' requests it does not declare, or whose answers break its own contract, is not
    certified)."""
    from jsonschema import Draft202012Validator

    def mismatches(schema: dict[str, Any], documents: Sequence[Any], what: str) -> tuple[int, str]:
        validator = Draft202012Validator(schema)
        bad = [(i, err) for i, doc in enumerate(documents) if (err := next(validator.iter_errors(doc), None))]
        if not bad:
            return 0, f"{len(documents)} {what} checked"
        i, err = bad[0]
        where = "/".join(map(str, err.absolute_path)) or "<root>"
        return len(bad), f"{len(bad)} of {len(documents)} {what}; first: #{i} at {where}: {err.message}"

    inputs = [named_features(interface["input"], sample.features) for sample in requests]
    gates = []
    for side, documents, what in (("input", inputs, "requests"), ("output", predictions, "holdout predictions")):
        if not documents:
            gates.append(Gate(f"interface.{side}", None, 0, "<=", None, f"no {what} to check"))
            continue
        count, note = mismatches(interface[side], documents, what)
        gates.append(_gate(f"interface.{side}", count, "<=", 0, note))
    return gates


def quality_floors(measurement: Measurement, policy: CertificationPolicy) -> list[Gate]:
    """Each configured floor (``min_quality``) and ceiling (``max_quality``) as a gate; a metric not measured fails it.

    With no floor at all, quality is judged only against a stable version: :func:`relative_gates`
    fails the ``quality`` gate when there is none, so nothing passes a model whose quality nobody judged.
    """
    gates = []
    for bound, comparison in (("min_quality", ">="), ("max_quality", "<=")):
        for metric, limit in sorted(getattr(policy, bound).items()):
            name = f"quality_floor.{metric}" if comparison == ">=" else f"quality_ceiling.{metric}"
            if metric not in measurement.quality:
                gates.append(Gate(name, None, limit, comparison, False,  # type: ignore[arg-type]
                                  f"{metric} was not measured: give a holdout whose labels yield it"))
            else:
                gates.append(_gate(name, measurement.quality[metric], comparison, limit, f"{bound} in the policy or model.yaml"))  # type: ignore[arg-type]
    return gates


def relative_gates(measurement: Measurement, policy: CertificationPolicy, stable: CertifiedBaseline | None,
                   stable_version: str | None) -> list[Gate]:
    """Quality and latency against the stable version's certified numbers (TFX's change threshold).

    Without a stable baseline they are not evaluated, except that quality must then be judged by an
    absolute floor: a first version with no floor configured fails the ``quality`` gate.
    """
    if stable is None:
        why = f"stable {stable_version} has no certification report" if stable_version else "no stable version yet"
        gates = [Gate("relative_to_stable", None, None, "<=", None, why)]
        if not (policy.min_quality or policy.max_quality):
            gates.append(Gate("quality", None, None, ">=", False,
                              f"{why} and no absolute floor: set min_quality / max_quality in the policy or gates "
                              "in model.yaml (nothing else says this quality is good enough)"))
        return gates
    if stable.latency_p99_ms is None:
        return [Gate("relative_to_stable", None, None, "<=", None, f"stable {stable_version}'s report has no p99")]
    head = measurement.headline(policy)
    vs = f"stable {stable_version}"
    delta = policy.max_quality_regression
    gates = [Gate("p99_latency_ratio", None, policy.max_latency_ratio, "<=", False, "the candidate's p99 is insufficient")
             if head.p99_ms is None else
             _gate("p99_latency_ratio", round(head.p99_ms / max(stable.latency_p99_ms, 1e-9), 6),
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
    """The certification report: the registry's baseline fields first (the pooled loaded steps, warm-up
    excluded; None for a percentile with too few requests), then how they were obtained."""
    head = measurement.headline(policy)
    return {
        "latency_p50_ms": head.p50_ms,
        "latency_p95_ms": head.p95_ms,
        "latency_p99_ms": head.p99_ms,
        "throughput_rps": measurement.saturation_rps(policy),
        "error_rate": round(measurement.error_rate, 6),
        "quality": measurement.quality,
        "passed": all(g.passed is not False for g in gates),
        "model": model,
        "version": version,
        "endpoint": endpoint,
        "certified_at": now.isoformat(timespec="seconds"),
        "compared_with": stable_version,
        "headline": {"requests": head.requests, "rates_rps": [s.rate_rps for s in measurement.loaded_steps(policy)],
                     "warmup_requests": policy.warmup_requests},
        "ladder": [_step_record(s, policy) for s in measurement.steps],
        "holdout": {"size": measurement.holdout_size, "errors": measurement.holdout_errors},
        "gates": [asdict(g) for g in gates],
        "policy": policy.model_dump(),
    }


REFERENCE_VALUES = 2000
"""Values kept per reference distribution in a report: the monitor's drift tests bin them (quantiles, category
counts), and a G-test's power against a reference grows little beyond a few thousand (docs/detection.md)."""


def reference_distributions(interface: dict[str, Any], requests: Sequence[Sample],
                            predictions: Sequence[Any]) -> dict[str, Any]:
    """What the live monitor judges a certified version against from its first request: the holdout's
    predictions (``reference_predictions``) and each input feature's values in the requests sent
    (``reference_features``: name -> values), at most :data:`REFERENCE_VALUES` each.

    A recorded request's features are named as :func:`named_features` says; a request with another number
    of features than the schema has properties, and any value that is not a number, string or boolean, adds
    nothing (no property names: no ``reference_features``)."""
    schema = interface.get("input", {})
    names = list(schema.get("properties") or ())
    features: dict[str, list[Any]] = {name: [] for name in names}
    for sample in requests:
        named = named_features(schema, sample.features) if names else None
        if not isinstance(named, dict):
            continue
        for name, value in named.items():
            if isinstance(value, int | float | str) and len(features[name]) < REFERENCE_VALUES:
                features[name].append(value)
    out: dict[str, Any] = {"reference_predictions": list(predictions[:REFERENCE_VALUES])}
    if any(features.values()):
        out["reference_features"] = {name: values for name, values in features.items() if values}
    return out


def _step_record(step: StepResult, policy: CertificationPolicy) -> dict[str, Any]:
    figures = step.percentiles(policy)
    return {"rate_rps": step.rate_rps, "requests": step.requests, "errors": step.errors,
            "achieved_rps": step.achieved_rps, "error_rate": round(step.error_rate, 6),
            "latency_p50_ms": figures.p50_ms, "latency_p95_ms": figures.p95_ms, "latency_p99_ms": figures.p99_ms,
            "tail_ms": round(step.tail_ms, 3)}


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
    head = report["headline"]
    lines += ["", "## Load ladder", "",
              f"Headline (the monitor's baseline): p50 {_ms(report['latency_p50_ms'])}, p95 "
              f"{_ms(report['latency_p95_ms'])}, p99 {_ms(report['latency_p99_ms'])} over {head['requests']} requests "
              f"at {', '.join(f'{r:g}' for r in head['rates_rps'])} req/s (after {head['warmup_requests']} warm-up "
              "requests); a percentile from too few requests is insufficient (-).", "",
              "| rate (req/s) | sent (req/s) | requests | errors | p50 ms | p95 ms | p99 ms | slowest 1% ms |",
              "|---|---|---|---|---|---|---|---|"]
    for s in report["ladder"]:
        lines.append(f"| {s['rate_rps']:g} | {s['achieved_rps']:g} | {s['requests']} | {s['errors']} | "
                     f"{_fmt(s['latency_p50_ms'])} | {_fmt(s['latency_p95_ms'])} | {_fmt(s['latency_p99_ms'])} | "
                     f"{_fmt(s['tail_ms'])} |")
    quality = ", ".join(f"{k} {v:g}" for k, v in report["quality"].items()) or "no holdout given"
    lines += ["", f"Saturation throughput {report['throughput_rps']:g} req/s; error rate {report['error_rate']:g}; "
              f"quality: {quality} (holdout {report['holdout']['size']}, {report['holdout']['errors']} unanswered).", ""]
    return "\n".join(lines)


PLOT_STYLE = {"latency_p50_ms": ("p50", "tab:green"), "latency_p95_ms": ("p95", "tab:orange"),
              "latency_p99_ms": ("p99", "tab:red")}
"""Label and colour of each latency percentile in the chart."""


class PlotUnavailableError(ModelmedicError):
    """The chart was asked for but matplotlib, an optional dependency (extra ``report``), is not installed."""


def require_plotting() -> None:
    """Raise :class:`PlotUnavailableError` now when :func:`plot_ladder` could not draw.

    matplotlib is the ``report`` extra, not a dependency: only this chart uses it, and it
    (with Pillow, fontTools, kiwisolver) is about 96 MB the container image does not carry.
    The CLI calls this before a certification runs, so a missing package costs no run.
    """
    if importlib.util.find_spec("matplotlib") is None:
        raise PlotUnavailableError(
            "the ladder chart (--plot) needs matplotlib, which is not installed here (the container image "
            "leaves it out): pip install 'modelmedic[report]', or drop --plot"
        )


def plot_ladder(report: dict[str, Any]) -> Figure:
    """The load ladder as a chart: latency percentiles (top) and error rate (bottom) against the offered
    rate, with the latency objective, the error budget and the saturation throughput marked.

    A :class:`matplotlib.figure.Figure` on the Agg canvas (no display, no pyplot state), so a
    caller can check or extend it before :func:`render_png` writes it.
    """
    # Imported here: matplotlib takes about half a second to import, and only --plot needs it.
    require_plotting()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ladder, policy = report["ladder"], report["policy"]
    offered = [step["rate_rps"] for step in ladder]
    fig = Figure(figsize=(8, 6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    latency, errors = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    for key, (label, colour) in PLOT_STYLE.items():
        # A percentile from too few requests is no point at all (matplotlib leaves a gap for nan).
        latency.plot(offered, [math.nan if step[key] is None else step[key] for step in ladder], marker="o",
                     color=colour, label=label)
    latency.axhline(policy["max_p99_ms"], color="grey", linestyle="--", label=f"p99 objective {policy['max_p99_ms']:g} ms")
    saturation = report["throughput_rps"]
    for axes in (latency, errors):
        if saturation > 0:
            axes.axvline(saturation, color="black", linestyle=":",
                         label=f"saturation {saturation:g} req/s" if axes is latency else None)
    if saturation <= 0:
        latency.plot([], [], " ", label="saturation: no rate met the objective")
    latency.set_ylabel("latency (ms)")
    latency.set_ylim(bottom=0)
    latency.legend(loc="upper left")
    latency.grid(alpha=0.3)
    errors.plot(offered, [100 * step["error_rate"] for step in ladder], marker="o", color="tab:purple",
                label="error rate")
    errors.axhline(100 * policy["max_error_rate"], color="grey", linestyle="--",
                   label=f"error budget {100 * policy['max_error_rate']:g}%")
    errors.set_xlabel("offered rate (requests/s)")
    errors.set_ylabel("errors (%)")
    errors.set_ylim(bottom=0)
    errors.legend(loc="upper left")
    errors.grid(alpha=0.3)
    verdict = "certified" if report["passed"] else "NOT certified"
    fig.suptitle(f"{report['model']} {report['version']}: latency and errors per offered rate ({verdict})")
    return fig


def render_png(report: dict[str, Any], *, dpi: int = 100) -> bytes:
    """:func:`plot_ladder` as PNG bytes (800 x 600 pixels at the default ``dpi``)."""
    out = io.BytesIO()
    plot_ladder(report).savefig(out, format="png", dpi=dpi)
    return out.getvalue()

"""The remediation policy: which anomalies get which playbooks, alerts and escalation, within which guard rails.

One YAML file, validated whole when the service starts (:func:`load_policy`), playbook
params included (:meth:`Policy.validate_playbooks`): a typo fails the start with the
field's path, never an incident at 3 a.m.

Routing (:meth:`Policy.route`): the file's ``rules`` are tried in order and the first
whose ``match`` fits wins; when none does, the built-in rule of the anomaly class
applies (:data:`DEFAULT_RULES`, the mission's defaults):

- latency, throughput: alert now, auto-remediate with ``rollback`` (acts only when the
  anomalous version was just deployed) then ``scale-out``, verify, escalate;
- errors: alert and page, no auto-remediation (a rollback or more replicas rarely fix failing requests);
- prediction: alert and page for manual intervention, no auto-remediation;
- drift: warn the owning team that the model may need redesign.

>>> policy = parse_policy({"rules": [{"match": {"anomaly_class": ["latency"], "models": ["fraud-*"]}, "page": True}]})
>>> policy.route("latency", "latency", "fraud-eu", "production").page
True
>>> [p.name for p in policy.route("latency", "latency", "churn", "production").playbooks]
['rollback', 'scale-out']
>>> policy.target("churn", "v3", "canary")
Target(model='churn', version='v3', role='canary', namespace='models', deployment='churn')
"""

from __future__ import annotations

import fnmatch
import os
import string
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from modelmedic.config import read_yaml_mapping
from modelmedic.errors import PlaybookError, PolicyError
from modelmedic.events import Severity
from modelmedic.remediations.api import Target

if TYPE_CHECKING:
    from modelmedic.remediations.api import PlaybookRegistry

AnomalyClass = Literal["latency", "throughput", "errors", "prediction", "drift"]
ANOMALY_CLASSES: tuple[str, ...] = AnomalyClass.__args__
TEMPLATE_FIELDS = frozenset({"model", "role"})
LINK_FIELDS = frozenset({"model", "version", "role", "anomaly_class", "kind", "incident_id", "start_ms"})
"""What a page's link templates (``links.runbook``, ``links.dashboard``, a rule's ``runbook``) may use."""


def _classes(value: Any) -> Any:
    """``*`` means every class, a single name a list of one."""
    return list(ANOMALY_CLASSES) if value == "*" else [value] if isinstance(value, str) else value


def _check_template(template: str, fields: frozenset[str] = TEMPLATE_FIELDS) -> str:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as error:
        raise ValueError(f"{template!r} is not a valid template ({error})") from None
    unknown = names - fields
    if unknown:
        *others, last = [f"{{{f}}}" for f in sorted(fields)]
        available = f"{', '.join(others)} and {last}"
        raise ValueError(f"{template!r} uses {sorted(unknown)}; only {available} are available")
    return template


DeploymentTemplate = Annotated[str, AfterValidator(_check_template)]
LinkTemplate = Annotated[str, AfterValidator(lambda t: _check_template(t, LINK_FIELDS))]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)


class PageLinks(_Section):
    """Links every page carries, as URL templates filled from the incident: ``{model}``,
    ``{version}``, ``{role}``, ``{anomaly_class}``, ``{kind}``, ``{incident_id}`` and
    ``{start_ms}`` (its onset, epoch ms, for a dashboard's time range). The incident's own
    page in the status UI is added when ``http.external_url`` is set."""

    runbook: LinkTemplate | None = None
    """``https://runbooks.example.com/{anomaly_class}.md``; a rule's ``runbook`` overrides it."""
    dashboard: LinkTemplate | None = None
    """``https://grafana.example.com/d/models?var-model={model}&from={start_ms}``."""


class Match(_Section):
    """Which anomalies a rule applies to; every given criterion must hold."""

    anomaly_class: Annotated[list[AnomalyClass], BeforeValidator(_classes)] = Field(
        default_factory=lambda: list(ANOMALY_CLASSES)
    )
    """Anomaly classes (one or a list), or ``*`` for all."""
    kinds: list[str] | None = None
    """Detector kinds (``latency``, ``throughput_drop``, ``errors``...); omitted: any."""
    models: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    """Model names as shell-style globs (``fraud-*``)."""
    roles: list[Literal["production", "canary", "shadow"]] | None = None
    """Roles; omitted: any."""

    def fits(self, anomaly_class: str, kind: str, model: str, role: str) -> bool:
        return (
            anomaly_class in self.anomaly_class
            and (self.kinds is None or kind in self.kinds)
            and any(fnmatch.fnmatchcase(model, pattern) for pattern in self.models)
            and (self.roles is None or role in self.roles)
        )


class PlaybookRef(_Section):
    """One playbook a rule runs, with its params (checked against the playbook's params model at load)."""

    name: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class EscalationLevel(_Section):
    """One alert level: sent ``after_s`` seconds after the incident opened, if it has not recovered by then."""

    after_s: float = Field(ge=0)
    """0 for the first alert."""
    severity: Severity
    sinks: list[str] | Literal["all"] = "all"
    """Names of configured sinks (``sinks[].name``, else their type), or ``all``."""


class Rule(_Section):
    """What to do about the anomalies a ``match`` selects."""

    match: Match = Field(default_factory=Match)
    playbooks: list[PlaybookRef] = Field(default_factory=list)
    """Tried in order; each run is verified over ``verify_s`` before the next is tried."""
    auto_remediate: bool = True
    """False: alert (and page) only, never run the playbooks without an operator."""
    verify_s: float = Field(60.0, gt=0)
    """Verification window: how long a remediated series has to recover before it counts as failed."""
    flap_hold_s: float = Field(1800.0, ge=0)
    """Flap hold-down (event time): a series firing again this soon after its incident
    recovered reopens that incident (its flap count goes up) instead of paging again;
    0 turns flap damping off."""
    escalation: list[EscalationLevel] = Field(
        default_factory=lambda: [EscalationLevel(after_s=0, severity="error")], min_length=1
    )
    """Alert levels, first at ``after_s: 0``, each later one louder."""
    page: bool = False
    """Page on-call for manual intervention from the first alert."""
    note: str | None = None
    """A sentence added to every alert of the rule (``the model may need redesign``)."""
    runbook: LinkTemplate | None = None
    """The runbook of what this rule matches, a URL template (see :class:`PageLinks`); overrides ``links.runbook``."""

    @field_validator("escalation")
    @classmethod
    def _levels_in_order(cls, levels: list[EscalationLevel]) -> list[EscalationLevel]:
        if levels[0].after_s != 0:
            raise ValueError(f"the first escalation level is the first alert: give it after_s: 0 (got {levels[0].after_s:g})")
        times = [level.after_s for level in levels]
        if times != sorted(set(times)):
            raise ValueError(f"escalation levels must have strictly increasing after_s, got {times}")
        return levels


def _rule(anomaly_class: AnomalyClass, **fields: Any) -> Rule:
    return Rule(match=Match(anomaly_class=[anomaly_class]), **fields)


_REMEDIATE = dict(
    playbooks=[PlaybookRef(name="rollback"), PlaybookRef(name="scale-out")],
    escalation=[EscalationLevel(after_s=0, severity="error"), EscalationLevel(after_s=60, severity="critical")],
)
DEFAULT_RULES: dict[str, Rule] = {
    "latency": _rule("latency", **_REMEDIATE),
    "throughput": _rule("throughput", **_REMEDIATE),
    "errors": _rule(
        "errors", auto_remediate=False, page=True,
        escalation=[EscalationLevel(after_s=0, severity="error"), EscalationLevel(after_s=900, severity="critical")],
        note="requests are failing more than usual: needs a person (check the model's logs and its dependencies)",
    ),
    "prediction": _rule(
        "prediction", auto_remediate=False, page=True,
        escalation=[EscalationLevel(after_s=0, severity="error"), EscalationLevel(after_s=1800, severity="critical")],
        note="prediction quality fell below its baseline: needs a person (roll back by hand if the new version is at fault)",
    ),
    "drift": _rule(
        "drift", auto_remediate=False,
        escalation=[EscalationLevel(after_s=0, severity="warning")],
        note="the inputs or predictions drifted from the certification reference: the model may need retraining or redesign",
    ),
}
"""The rule of each class when no rule of the file matches."""
FALLBACK_RULE = Rule(auto_remediate=False, page=True, note="an anomaly class without a default rule: needs a person")
"""For an anomaly class modelmedic does not know (a newer detector): page, do nothing."""


class TargetOverride(_Section):
    """Where one model's Deployment lives when it is not where the template says."""

    namespace: str | None = None
    deployment: DeploymentTemplate | None = None
    """A name or a template like the default one."""


class Targets(_Section):
    """How a model maps to the Deployment serving it."""

    namespace: str = "models"
    deployment: DeploymentTemplate = "{model}"
    """Deployment name template; ``{model}`` and ``{role}`` are filled in (``{model}-{role}``)."""
    overrides: dict[str, TargetOverride] = Field(default_factory=dict)
    """Per model name."""

    def resolve(self, model: str, version: str, role: str) -> Target:
        override = self.overrides.get(model, TargetOverride())
        template = override.deployment or self.deployment
        return Target(
            model=model, version=version, role=role,
            namespace=override.namespace or self.namespace,
            deployment=template.format(model=model, role=role),
        )


class GuardRails(_Section):
    """Limits on automatic action: remediation must never become the outage."""

    cooldown_s: float = Field(300.0, ge=0)
    """Per model: no new remediation within this long of the last one."""
    max_actions_per_hour: int = Field(6, ge=1)
    """Per model: remediations (playbook runs that acted) in any rolling hour."""
    max_concurrent: int = Field(5, ge=1)
    """Remediations running at once, across all models."""
    storm_models: int = Field(10, ge=2)
    """This many distinct models whose incidents' problems started (their onset) within
    ``storm_window_s`` of each other (event time) means a shared cause: one page for the
    storm, no per-model remediation. So do half as many (rounded up, at least two) still
    held together when their gathering wait ends (``storm_gather_max_s``)."""
    storm_window_s: float = Field(60.0, gt=0)
    storm_hold_s: float = Field(15.0, ge=0)
    """A new incident is held (no page, no playbook) after it fired, so a storm forming
    meanwhile takes it in without a page of its own: alone, as long again as it took to fire
    (event time from its onset), at least this long and at most ``storm_window_s``. 0: no
    hold at all (a storm then pages only after its first members did). At least 10 s: on a
    rough 40-model fleet (load/detection_harness.py --models 40 --hours 48 --rough --seed 1)
    a storm's densest member fired 5 s after its onset and the next 8 s later; held 5 s, it
    paged alone, and so did every other member (12 pages); held 10 s or more, one page.
    Alertmanager's ``group_wait`` (30 s by default) holds every first notification longer."""
    storm_gather_max_s: float = Field(600.0, ge=0)
    """While other models' incidents that started within ``storm_window_s`` of a held one
    are held too, a storm may be gathering (sparse members fire later): they wait together,
    as long again as the group has been gathering and at least ``storm_window_s`` from its
    earliest onset (members firing after half of ``storm_models`` were held no longer
    lengthen it), but at most this long after each fired. An open storm also takes in
    a member whose onset is up to this long before its span, if it fired after the storm
    surely began and at most this long after (a sparse series' onset may be minutes early:
    :mod:`modelmedic.response.storms`), and one whose onset is up to this long after its span
    if its series had no data since within the span (a sparse series' onset is its first
    request after the change); either only for a class of the storm's sure members."""
    dry_run: bool = False
    """Run every playbook in dry-run: say what would be done, change nothing."""


class Delivery(_Section):
    """How pages a sink did not take are retried: per sink, until delivered or given up."""

    retry_base_s: float = Field(1.0, gt=0)
    """First wait after a failed try; doubled (with jitter) each further failure."""
    retry_max_s: float = Field(60.0, gt=0)
    """Longest wait between two tries of one page on one sink."""
    give_up_after_s: float = Field(86_400.0, gt=0)
    """A page still not taken this long after it was owed is given up (logged, audited,
    counted as ``modelmedic_alerts_total{result="expired"}``), with whatever that sink
    owed after it: a resolve alone would announce an incident the sink never heard of."""
    per_sink_concurrency: int = Field(8, ge=1)
    """Pages in flight at once to one sink (each incident's pages go in order)."""


class Policy(_Section):
    """The whole policy file."""

    rules: list[Rule] = Field(default_factory=list)
    """Tried in order before the built-in rule of the anomaly class."""
    targets: Targets = Field(default_factory=Targets)
    guard_rails: GuardRails = Field(default_factory=GuardRails)
    delivery: Delivery = Field(default_factory=Delivery)
    links: PageLinks = Field(default_factory=PageLinks)

    def route(self, anomaly_class: str, kind: str, model: str, role: str) -> Rule:
        """The first rule of the file that fits, else the class's default rule."""
        for rule in self.rules:
            if rule.match.fits(anomaly_class, kind, model, role):
                return rule
        return DEFAULT_RULES.get(anomaly_class, FALLBACK_RULE)

    def target(self, model: str, version: str, role: str) -> Target:
        """The Deployment a playbook acts on for this model."""
        return self.targets.resolve(model, version, role)

    def validate_playbooks(self, registry: PlaybookRegistry) -> None:
        """Check every playbook the policy names, defaults included, exists and accepts its params."""
        where = [(f"rules.{i}", rule) for i, rule in enumerate(self.rules)]
        where += [(f"default rule for {name}", rule) for name, rule in DEFAULT_RULES.items()]
        for place, rule in where:
            for j, ref in enumerate(rule.playbooks):
                try:
                    registry.validate(ref.name, ref.params)
                except PlaybookError as error:
                    raise PolicyError(f"{place}.playbooks.{j} ({ref.name}): {error}") from None

    def validate_sinks(self, names: Iterable[str]) -> None:
        """Check every sink an escalation level names is configured (``sinks[].name``, else its type)."""
        known = set(names)
        for i, rule in enumerate(self.rules):
            for j, level in enumerate(rule.escalation):
                unknown = [] if level.sinks == "all" else sorted(set(level.sinks) - known)
                if unknown:
                    raise PolicyError(
                        f"rules.{i}.escalation.{j}.sinks: {', '.join(unknown)} not configured "
                        f"(configured: {', '.join(sorted(known)) or 'none'}); add it under sinks or fix the name"
                    )


def _explain(error: ValidationError, source: str) -> str:
    lines = [f"invalid remediation policy ({source}):"]
    for err in error.errors():
        path = ".".join(str(p) for p in err["loc"]) or "<root>"
        lines.append(f"  {path}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def parse_policy(data: Mapping[str, Any], source: str = "policy") -> Policy:
    """Validate a policy mapping; raise PolicyError listing every bad field by path."""
    try:
        return Policy.model_validate(data)
    except ValidationError as error:
        raise PolicyError(_explain(error, source)) from None


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read and validate a policy YAML file (an empty file is the default policy)."""
    return parse_policy(read_yaml_mapping(path, "policy file", PolicyError, "pass an existing YAML file"), str(path))

"""What the HTTP endpoint sees of the running service: :class:`StatusSource` and the views it returns.

The composition root (``modelmedic.app.Service``) implements it with small methods that read
the planes; this package imports no plane (an import-linter contract), so these protocols are
the whole of what the UI and the API may show or do. Every view is read, never written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aiohttp import web

    from modelmedic.audit import AuditTail


class AttemptView(Protocol):
    """One playbook run on an incident, automatic (``by`` None) or by hand."""

    playbook: str
    at: int
    """When it started, epoch ms (wall clock)."""
    params: dict
    status: str
    """``running`` until it returns, then ``done``, ``skipped``, ``dry_run``, ``failed``..."""
    message: str
    by: str | None


class EscalationView(Protocol):
    """One escalation: the level reached, when (epoch ms, wall clock) and why."""

    level: int
    at_ms: int
    reason: str


class NoticeView(Protocol):
    """A page one sink still owes."""

    status: str
    level: int
    owed_since_ms: int
    tries: int
    last_error: str


class IncidentView(Protocol):
    """What the UI and the API show of an incident (the public part of the response plane's record)."""

    id: str
    series: str
    model: str
    version: str
    role: str
    anomaly_class: str
    kinds: list[str]
    firing: list[str]
    summary: str
    evidence: dict
    state: str
    opened_at_ms: int
    """Event time of the episode's first window."""
    created_at_ms: int
    """Wall-clock time the response plane opened it (or reopened it after a flap); 0 in old records."""
    resolved_at_ms: int | None
    resolution: str
    escalation_level: int
    escalation_reason: str
    acknowledged_by: str | None
    acknowledged_at_ms: int | None
    """None: not acknowledged, or acknowledged before the record kept the time."""
    escalations: Sequence[EscalationView]
    """Oldest first; fewer than ``escalation_level`` in records written before they were kept."""
    silenced_until_ms: int
    storm: str | None
    members: list[str]
    flaps: int
    recovered_after_remediation: bool
    attempts: Sequence[AttemptView]
    alerted: list[str]
    """Pages at least one sink took: ``firing``, ``firing@<level>``, ``resolved``."""
    owed: Mapping[str, Sequence[NoticeView]]
    """Sink name -> the pages it still owes."""


class DecisionView(Protocol):
    """One anomaly decision the detection plane published about one window of one series."""

    id: str
    series: str
    model: str
    version: str
    kind: str
    anomaly_class: str
    window_start: int
    window_end: int
    observed: float
    baseline: float
    state: str
    """``firing`` or ``recovered``."""
    summary: str


class SilenceView(Protocol):
    """A silence, maintenance window or remediation pause (``modelmedic.response.silences.Silence``)."""

    id: str
    kind: str
    """``silence`` (pages held back), ``maintenance`` (pages and automatic remediation), ``pause`` (remediation)."""
    models: list[str]
    """Shell-style globs of model names."""
    versions: list[str] | None
    classes: list[str] | None
    starts_ms: int
    ends_ms: int
    created_by: str
    created_ms: int
    comment: str

    @property
    def mutes_pages(self) -> bool: ...

    @property
    def pauses_remediation(self) -> bool: ...

    def covers(self, model: str, version: str, anomaly_class: str, at_ms: int) -> bool: ...


class ServingView(Protocol):
    """One (version, role) of a model the detection plane has seen requests of lately."""

    version: str
    role: str
    last_window_end_ms: int
    """End of the last window it served requests in (event time)."""


class QualityView(Protocol):
    """What the quality and input monitors say of one production version of a model (docs/api.md)."""

    version: str
    decisions: Mapping[str, tuple[str, str]]
    """Decision kind (``canary_divergence``, ``label_performance``, ``drift``, ``estimated_accuracy``,
    ``calibration_gap``, ``data_quality``, ``feature_drift``) -> (state, its sentence); the state is
    ``insufficient_data`` (too few pairs, labels or values to judge yet), ``ok`` or ``anomalous``."""
    estimate: Mapping[str, float | int | str | None] | None
    """The label-free accuracy estimate reconciled with the labels (``estimated_accuracy``, ``usual_accuracy``,
    ``realized_accuracy``, ``estimated_on_labelled``, ``realized_labels``, ``calibration``...; None for a figure
    without data); None unless the version answers probabilities."""
    data_quality: Mapping[str, float | int] | None
    """``requests`` with features checked against the input schema, ``violated`` (with a violation), ``budget``
    (the tolerated share); None when the version sent no features."""
    drifting_features: Sequence[tuple[str, float, float, int]]
    """(feature, PSI, p-value, live values) of the features drifting now, the most moved first."""
    label_delay: Mapping[str, int | None] | None
    """How late its joined labels came, in ms (``labels``, ``p50_ms``, ``p95_ms``, ``p99_ms``, ``max_ms``,
    ``horizon_ms``: ``QualityMonitor.label_delay``); None before its first joined label."""


class OutcomeView(Protocol):
    """What a playbook run by hand did."""

    status: str
    message: str
    details: dict


class StatusSource(Protocol):
    """Everything the HTTP endpoint reads from, or asks of, the running service."""

    def ready(self) -> bool:
        """Both planes have joined their consumer groups and loaded their state."""

    def incidents(self) -> Sequence[IncidentView]:
        """Every incident this replica knows, open or not."""

    def open_incidents(self) -> Sequence[IncidentView]: ...

    def incident(self, incident_id: str) -> IncidentView | None:
        """One incident by id, or None."""

    def incident_states(self) -> Sequence[str]:
        """Every state an incident can be in (the API's ``state`` filter accepts these)."""

    def anomaly_classes(self) -> Sequence[str]:
        """Every anomaly class (the API's ``class`` filter accepts these)."""

    def owners(self, model: str) -> Sequence[str]:
        """The model's owners (teams or people) from the registry; empty when unknown."""

    def serving(self, model: str) -> Sequence[ServingView]:
        """The model's versions and roles with requests in the detection plane's live series."""

    def recent_decisions(self, n: int) -> Sequence[DecisionView]:
        """The last ``n`` anomaly decisions published, oldest first."""

    def decisions_of(self, model: str) -> Sequence[DecisionView]:
        """The model's anomaly decisions among those this replica still keeps, oldest first."""

    def quality(self, model: str) -> Sequence[QualityView]:
        """The model's production versions as the quality and input monitors see them (empty: none seen, or
        quality monitoring off)."""

    def counters(self) -> Mapping[str, int]:
        """Headline figures for the status page: partitions, series, events, incidents, and
        ``insufficient_data_<family>``: series not judged yet for too little history."""

    async def acknowledge(self, incident_id: str, by: str) -> IncidentView: ...

    async def resolve(self, incident_id: str, by: str) -> IncidentView: ...

    async def silence(self, incident_id: str, minutes: float, by: str) -> IncidentView: ...

    async def trigger(self, incident_id: str, playbook: str, params: Mapping[str, Any], by: str) -> OutcomeView: ...

    def audit(self) -> AuditTail:
        """The newest records of the audit topic, held by this replica (:mod:`modelmedic.audit`)."""

    def silences(self) -> Sequence[SilenceView]:
        """Silences, maintenance windows and remediation pauses not over yet (active or scheduled), soonest end first."""

    async def add_silence(self, fields: Mapping[str, Any], by: str) -> SilenceView:
        """Make one (``kind``, ``models``, ``versions``, ``classes``, ``starts_ms``, ``ends_ms``, ``comment``,
        checked by the caller) as ``by``: published to the silences topic and audited, as the CLI does."""

    async def remove_silence(self, silence_id: str, by: str) -> SilenceView:
        """End one now as ``by`` (audited); KeyError if there is no such silence."""

    def webhooks(self) -> Sequence[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]]:
        """(method, path, handler) of the inbound webhooks the service takes (PagerDuty's): each
        authenticates its sender itself (a signature), so they are mounted without an operator credential."""

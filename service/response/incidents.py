"""Incidents: one per problem, from the first anomaly to resolution.

:class:`IncidentBook` is the pure logic (no I/O, unit-tested): an anomaly record either
opens an incident, joins the open incident of the same model, role and class, is a replay
of one already seen (ignored), or recovers one. A problem of another class on a model
with an open incident opens its own incident (and pages): it is never folded into the
other one. The response plane
(:mod:`modelmedic.response.plane`) runs it on the anomalies topic, drives each incident
through its lifecycle and keeps every incident in a compacted Kafka topic.

Lifecycle (every transition is a method of :class:`Incident`; any other raises
:class:`InvalidTransition`)::

    open ──► remediating ──► verifying ──► resolved
      │        │   ▲  (next playbook) │        ▲
      │        │   └──────────────────┘        │ (from every state)
      │        ▼                               │
      └──────► escalated (level k) ──► acknowledged

``open``, ``remediating`` and ``verifying`` may also be acknowledged directly. A playbook
run by hand is recorded as an :class:`Attempt` without a transition. An incident resolved
by its series' recovery opens again (``resolved ──► open``, :meth:`Incident.refire`) when
the series fires again within the rule's ``flap_hold_s``: a flap, counted in
:attr:`Incident.flaps`, not a new incident or a new page.

Pages are owed per sink (:class:`Notice`, in :attr:`Incident.owed`): written into the
incident before they are sent and removed once that sink accepted them, so what one sink
still owes survives a restart and never waits on another sink.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import msgspec

from modelmedic.alerting import PAGERDUTY_SUMMARY_MAX, Alert
from modelmedic.errors import ModelmedicError
from modelmedic.events import Anomaly

State = Literal["open", "remediating", "verifying", "escalated", "acknowledged", "resolved"]
PageStatus = Literal["firing", "acknowledged", "resolved"]

SEVERITY = {"latency": "critical", "throughput": "critical", "errors": "critical", "prediction": "error",
            "drift": "warning"}
HEADLINE_MAX = PAGERDUTY_SUMMARY_MAX
"""A page's one-line summary fits the shortest destination limit (PagerDuty's); the full
per-playbook messages go in the evidence (PagerDuty's custom_details, Slack's evidence block)."""
SUMMARY_SHARE = 300
"""At most this much of an escalated headline repeats the incident's own summary."""

TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"remediating", "escalated", "acknowledged", "resolved"}),
    "remediating": frozenset({"remediating", "verifying", "escalated", "acknowledged", "resolved"}),
    "verifying": frozenset({"remediating", "escalated", "acknowledged", "resolved"}),
    "escalated": frozenset({"escalated", "acknowledged", "resolved"}),
    "acknowledged": frozenset({"resolved"}),
    "resolved": frozenset({"open"}),
}
"""State -> the states it may move to. ``remediating -> remediating`` is the next playbook
after one that did not act; ``escalated -> escalated`` the next escalation level;
``resolved -> open`` a flap (:meth:`Incident.refire`)."""


class InvalidTransition(ModelmedicError):
    """An incident was asked to move to a state its lifecycle does not allow from where it is."""


class Attempt(msgspec.Struct):
    """One playbook run on an incident: written as ``running`` before it runs, finished after.

    The same typed record for automatic runs (``step`` is the index of the playbook in
    the incident's rule) and runs by hand (``step`` is -1, ``by`` names the operator).
    """

    playbook: str
    key: str
    """Idempotency key: a replay after a crash runs with the same key, and the playbook
    recognises its own earlier action instead of acting twice."""
    at: int
    """When it started, epoch ms."""
    step: int = -1
    params: dict = msgspec.field(default_factory=dict)
    status: str = "running"
    """``running`` until the playbook returns, then its outcome's status."""
    message: str = ""
    by: str | None = None
    """The operator who ran it by hand; None for automatic runs."""

    @property
    def running(self) -> bool:
        return self.status == "running"

    def finish(self, status: str, message: str) -> None:
        """Record the playbook's outcome."""
        self.status, self.message = status, message

    def line(self, message_chars: int | None = None) -> str:
        """``playbook: status (message)``, the message cut to ``message_chars`` if given (0: none)."""
        message = self.message if message_chars is None else _cut(self.message, message_chars) if message_chars else ""
        return f"{self.playbook}: {self.status}" + (f" ({message})" if message else "")


class Escalation(msgspec.Struct):
    """One level louder: which, when (epoch ms, wall clock) and why. Kept per level so the
    incident's timeline shows each escalation's time and reason, not only the last."""

    level: int
    at_ms: int
    reason: str


class Notice(msgspec.Struct):
    """One page one sink still owes: written before it is sent, removed once that sink took it."""

    status: PageStatus
    level: int
    """The escalation level it pages at (its severity and wording)."""
    owed_since_ms: int
    """When it became owed; it is given up after the policy's ``delivery.give_up_after_s``."""
    tries: int = 0
    next_try_ms: int = 0
    """Not retried before this time (backoff after a failed try)."""
    last_error: str = ""
    """Why the last try failed (redacted: no secret of the sink's URL)."""
    sending: bool = False
    """Saved just before the first try on a sink that cannot fold a repeat (Slack), cleared
    only with the notice once delivered: a try that finds it set may repeat a message that
    is already there (:mod:`modelmedic.response.delivery`)."""


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


class Incident(msgspec.Struct):
    """One problem of one series, from first anomaly to recovery."""

    id: str
    series: str
    model: str
    version: str
    role: str
    anomaly_class: str
    kinds: list[str]
    firing: list[str]
    """Kinds still anomalous; the incident resolves when this empties."""
    anomaly_ids: list[str]
    summary: str
    evidence: dict
    opened_at_ms: int
    state: State = "open"
    resolved_at_ms: int | None = None
    pending: PageStatus | None = None
    """Read from records written before per-sink delivery (:attr:`owed`): the one alert
    owed to every sink. The response plane turns it into notices when it loads the
    incident and never writes it again."""
    alerted: list[str] = msgspec.field(default_factory=list)
    """Alerts at least one sink accepted: ``firing``, ``firing@<level>``, ``resolved``."""
    escalation_level: int = 0
    resolution: str = ""
    """What the recovery looked like (the recovered anomaly's sentence)."""
    attempts: list[Attempt] = msgspec.field(default_factory=list)
    """Playbook runs, oldest first."""
    next_step: int = 0
    """Index of the next playbook of the incident's rule to try."""
    verify_deadline_ms: int | None = None
    """While verifying: when the series must have recovered by."""
    acknowledged_by: str | None = None
    silenced_until_ms: int = 0
    """No pages (escalations included) before this time; the incident still runs."""
    storm: str | None = None
    """The storm incident this one belongs to: a shared cause, paged once for all."""
    members: list[str] = msgspec.field(default_factory=list)
    """For a storm incident: the models caught in it."""
    escalation_reason: str = ""
    """Why it was last escalated (what was tried is added when the page is written)."""
    created_at_ms: int = 0
    """Wall-clock time the response plane opened it, or reopened it after a flap
    (``opened_at_ms`` is the anomaly's event time): escalation timetables run on this clock."""
    firing_anomalies: dict[str, str] = msgspec.field(default_factory=dict)
    """Anomaly id -> kind of every anomaly of this incident still firing. Several series of
    one model can fire the same kind (two versions' latency): the incident lasts until the
    last of them recovers, not the first. Empty in incidents stored before it existed."""
    owed: dict[str, list[Notice]] = msgspec.field(default_factory=dict)
    """Sink name -> the pages it still owes, in the order they must arrive (a firing
    before its resolve)."""
    heard: list[str] = msgspec.field(default_factory=list)
    """Sinks that accepted a firing page of this incident: only they are owed its resolve."""
    fired_at_ms: int = 0
    """Event time (window end) of the anomaly that opened it: storms are judged on it."""
    seen_before_ms: int = 0
    """The opening anomaly's ``seen_before``: its series' last window with data before the onset
    (0: not known). A storm takes in a sparse member silent since within its span."""
    held: bool = False
    """Opened but not yet paged or remediated: waiting out the storm hold
    (:mod:`modelmedic.response.storms`)."""
    recovered: bool = False
    """Resolved because its series recovered (not by a person's or a storm's decision): only
    such an incident opens again when its series flaps."""
    flaps: int = 0
    """Times its series fired again within the flap hold-down after recovering."""
    refired_at_ms: int = 0
    """Event time (window end) of the firing that last reopened it (0: never): a recovery record from
    before that is a replay, whose id may be the reopening one's (the same episode firing again)."""
    recovered_after_remediation: bool = False
    """Set when it resolved by recovery: True only if the series recovered inside the
    verification window of a playbook that acted and the incident never escalated
    (:func:`credit_remediation`); otherwise it recovered on its own."""
    muted_by: str = ""
    """The silence or maintenance window (id) that held back its page: it is paged when that is over."""
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    """Routing labels of its pages (team, owners, namespace, cluster...), fixed when it first
    pages: Alertmanager identifies an alert by its label set, which must not change under it."""
    escalations: list[Escalation] = msgspec.field(default_factory=list)
    """Every escalation, oldest first (empty in records written before it existed, even if escalated)."""
    acknowledged_at_ms: int | None = None
    """When it was acknowledged (wall clock); None if not, or in records written before it existed."""
    revision: int = 0
    """Times it was saved (the response plane counts up before each save). A replica taking
    over a partition keeps its in-memory incident unless the stored one is newer: its own
    saves after the store was read are not in what it read back (issue 17)."""

    @property
    def active(self) -> bool:
        return self.state != "resolved"

    # -- transitions ------------------------------------------------------------------------

    def _move(self, to: State) -> None:
        if to not in TRANSITIONS[self.state]:
            raise InvalidTransition(
                f"incident {self.id} is {self.state}: it cannot become {to} "
                f"(from {self.state} it may become {', '.join(sorted(TRANSITIONS[self.state])) or 'nothing'})"
            )
        self.state = to

    def start_attempt(self, attempt: Attempt) -> None:
        """The rule's next playbook starts: remediating until it returns."""
        self._move("remediating")
        self.attempts.append(attempt)
        self.next_step = attempt.step + 1

    def verify(self, deadline_ms: int) -> None:
        """A playbook acted: the series has until ``deadline_ms`` to recover."""
        self._move("verifying")
        self.verify_deadline_ms = deadline_ms

    def verification_ran_out(self) -> None:
        """The window passed without recovery: the next playbook or an escalation follows."""
        if self.state != "verifying":
            raise InvalidTransition(f"incident {self.id} is {self.state}, not verifying: no verification ran out")
        self.verify_deadline_ms = None

    def escalate(self, reason: str, at_ms: int) -> None:
        """One level louder at ``at_ms``, saying why."""
        self._move("escalated")
        self.escalation_level += 1
        self.escalation_reason = reason
        self.escalations.append(Escalation(self.escalation_level, at_ms, reason))

    def acknowledge(self, by: str, at_ms: int) -> None:
        """A person took it at ``at_ms``: no more automatic remediation or timed escalation."""
        self._move("acknowledged")
        self.acknowledged_by = by
        self.acknowledged_at_ms = at_ms

    def resolve(self, resolution: str, at_ms: int) -> None:
        """Recovered (or closed by decision): nothing fires any more."""
        self._move("resolved")
        self.firing = []
        self.firing_anomalies = {}
        self.resolved_at_ms = max(at_ms, self.opened_at_ms)
        self.resolution = resolution
        self.verify_deadline_ms = None

    def refire(self) -> None:
        """Its series fired again within the flap hold-down: the same problem, open again.

        No page is owed for it (the caller decides what is). The sinks that heard the firing
        were told it resolved, so none is owed a resolve until a page reaches it again; a
        resolve still owed is not true any more and is not sent (it could not be: an
        open incident has no resolution time): its sink still shows the firing it heard,
        unless that resolve was already on its way (:meth:`delivered` then forgets the sink).
        """
        self._move("open")
        self.flaps += 1
        self.resolved_at_ms, self.resolution, self.recovered = None, "", False
        self.recovered_after_remediation = False
        untold = {sink for sink, queue in self.owed.items() if any(n.status == "resolved" for n in queue)}
        self.heard = [sink for sink in self.heard if sink in untold]
        self._forget("resolved")

    def record_manual(self, attempt: Attempt) -> None:
        """A playbook run by hand: recorded, no transition (the incident's own course goes on)."""
        self.attempts.append(attempt)

    # -- pages owed, per sink ---------------------------------------------------------------

    def owe(self, status: PageStatus, level: int, sinks: list[str], now_ms: int) -> None:
        """Owe a page to ``sinks``. A newer firing replaces a firing still owed (same incident,
        louder); an acknowledgement or a resolve goes only to sinks that heard or still owe
        its firing, after it (an acknowledgement never after the resolve)."""
        for sink in sinks:
            queue = self.owed.get(sink, [])
            if status == "firing":
                queue = [n for n in queue if n.status != "firing"]
                queue.insert(0, Notice("firing", level, now_ms))
            elif sink in self.heard or any(n.status == "firing" for n in queue):
                if not any(n.status in (status, "resolved") for n in queue):
                    queue.append(Notice(status, level, now_ms))
            self._keep(sink, queue)

    def resolve_owed_to(self) -> list[str]:
        """The sinks a resolve (or an acknowledgement) is owed to: those that heard the firing or still owe it."""
        return sorted(set(self.heard) | {s for s, q in self.owed.items() if any(n.status == "firing" for n in q)})

    def next_notice(self, sink: str) -> Notice | None:
        """The page ``sink`` must get next, if any."""
        queue = self.owed.get(sink)
        return queue[0] if queue else None

    def delivered(self, sink: str, notice: Notice) -> None:
        """``sink`` accepted ``notice``: it is no longer owed. A sink told the incident resolved shows
        nothing firing, so it is owed no further resolve until a firing reaches it again, even when
        the series flapped (and recovered again) while that resolve was on its way: :meth:`refire`
        kept the sink as one that still shows the firing, and the next recovery resolved it twice."""
        self._drop(sink, notice)
        if notice.status == "firing" and sink not in self.heard:
            self.heard.append(sink)
        elif notice.status == "resolved":
            self.heard = [s for s in self.heard if s != sink]
            queue = self.owed.get(sink, [])
            if not any(n.status == "firing" for n in queue):
                self._keep(sink, [n for n in queue if n.status != "resolved"])
        tag = f"firing@{notice.level}" if notice.status == "firing" and notice.level else notice.status
        if tag not in self.alerted:
            self.alerted.append(tag)

    def failed(self, sink: str, notice: Notice, error: str, next_try_ms: int) -> None:
        """A try of ``notice`` on ``sink`` failed: count it and back off."""
        notice.tries += 1
        notice.last_error = error
        notice.next_try_ms = next_try_ms

    def give_up(self, sink: str) -> list[Notice]:
        """Stop owing ``sink`` anything (its firing expired: a resolve alone would be nonsense)."""
        return self.owed.pop(sink, [])

    def cancel_firing(self) -> None:
        """Pages still owed for a firing that no longer needs one (silenced, joined a storm)."""
        self._forget("firing")

    def _forget(self, status: PageStatus) -> None:
        """No sink is owed a notice of ``status`` any more."""
        for sink in list(self.owed):
            self._keep(sink, [n for n in self.owed[sink] if n.status != status])

    def _drop(self, sink: str, notice: Notice) -> None:
        self._keep(sink, [n for n in self.owed.get(sink, []) if n is not notice])

    def _keep(self, sink: str, queue: list[Notice]) -> None:
        """``sink`` is owed ``queue`` from now on; an empty queue is none (``owed`` lists only sinks owed a page)."""
        if queue:
            self.owed[sink] = queue
        else:
            self.owed.pop(sink, None)

    # -- what the pages say -----------------------------------------------------------------

    def alert(self, status: PageStatus, severity: str | None = None, note: str | None = None,
              level: int | None = None, *, links: dict[str, str] | None = None, next_step: str = "") -> Alert:
        """The message for the sinks; the dedup key is the incident id, for its whole life.

        ``next_step`` (what modelmedic does next, and when it gets louder) ends a firing
        headline; ``links`` (runbook, dashboard, the incident's page) go with it.
        """
        level = self.escalation_level if level is None else level
        evidence = {**self.evidence, "note": note} if note else self.evidence
        if self.flaps:
            evidence = {**evidence, "flaps": self.flaps}
        if self.attempts:
            evidence = {**evidence, "tried": [{"playbook": a.playbook, "status": a.status, "message": a.message}
                                              for a in self.attempts]}
        return Alert(
            incident_id=self.id, dedup_key=f"modelmedic-{self.id}", status=status,
            severity=severity or SEVERITY.get(self.anomaly_class, "error"),
            summary=self._headline(status, level, next_step), model=self.model,
            version=self.version or "*", role=self.role, kind=self.kinds[0], anomaly_class=self.anomaly_class,
            escalation_level=level, started_at_ms=self.opened_at_ms,
            ended_at_ms=self.resolved_at_ms if status == "resolved" else None, evidence=evidence,
            labels=self.labels, links=links or {}, acknowledged_by=self.acknowledged_by,
        )

    def _headline(self, status: str, level: int, next_step: str = "") -> str:
        """What a person reads first: what is wrong and how badly since when (the detection's
        summary, in units with the factor), what was tried, and what happens next."""
        if status == "resolved" and self.resolution:
            return self.resolution
        if status == "acknowledged":
            return _cut(f"ACKNOWLEDGED by {self.acknowledged_by}: {self.summary}. No more automatic remediation or "
                        "escalation; resolve it when done.", HEADLINE_MAX)
        next_text = f" Next: {next_step}." if next_step else ""
        if level:
            return self._escalated_headline(level, next_text)
        tail = (f"; tried: {'; '.join(a.line(0) for a in self.attempts)}" if self.attempts else "") + (
            f".{next_text}" if next_text else "")
        return _cut(_cut(self.summary, max(HEADLINE_MAX - len(tail), SUMMARY_SHARE)) + tail, HEADLINE_MAX)

    def _escalated_headline(self, level: int, next_text: str = "") -> str:
        """``ESCALATED (level k): <summary>. <reason>; tried: a: status (msg); b: ... Manual
        intervention needed.`` (then ``next_text``), within :data:`HEADLINE_MAX`: each
        playbook's message gets an equal share of the room left, so the last one's reason
        shows as well as the first's."""
        reason = self.escalation_reason.split("; tried: ")[0]  # (records before 2026-12 held the tried list too)
        head = f"ESCALATED (level {level}): {_cut(self.summary, SUMMARY_SHARE)}. {reason}; tried: "
        tail = ". Manual intervention needed." + next_text
        if not self.attempts:
            return _cut(head + "nothing" + tail, HEADLINE_MAX)
        bare = "; ".join(a.line(0) for a in self.attempts)  # statuses, no messages
        room = HEADLINE_MAX - len(head) - len(bare) - len(tail) - 3 * len(self.attempts)  # " (" + ")" each
        share = max(room // len(self.attempts), 0)
        return _cut(head + "; ".join(a.line(share) if share else a.line(0) for a in self.attempts) + tail, HEADLINE_MAX)

    def tried(self) -> str:
        """What remediation did, in one line, for pages and the audit trail."""
        return "; ".join(a.line() for a in self.attempts) or "nothing"


def credit_remediation(was: State, verify_deadline_ms: int | None, escalation_level: int, now_ms: int) -> bool:
    """Does a recovery seen at ``now_ms`` count as the remediation's doing?

    Only when the incident was verifying a playbook that acted (so the action came first),
    the verification window had not run out, and it had never escalated. A fault that simply
    ended after an escalation, or before any playbook acted, recovered on its own.
    """
    return (was == "verifying" and verify_deadline_ms is not None and now_ms <= verify_deadline_ms
            and escalation_level == 0)


def _evidence(a: Anomaly) -> dict:
    return {"kind": a.kind, "observed": a.observed, "baseline": a.baseline, "score": round(a.score, 6),
            "window_start_ms": a.window_start, "window_end_ms": a.window_end, "anomaly_id": a.id}


MIRRORED_CLASSES = frozenset({"throughput"})
"""Classes whose problem is the model's, whatever the role: canaries and shadows serve mirrors of
production's requests, so a drop or surge shows on every role of the model at once."""


def _problem(model: str, role: str, anomaly_class: str) -> tuple[str, str, str]:
    """The open problem an anomaly of ``anomaly_class`` on ``model``'s ``role`` belongs to: one per
    model, role and class, or per model and class (role ``*``) for :data:`MIRRORED_CLASSES`: a
    -90% drop on a model with a canary and a shadow paged three times at once before
    (``load/detection_harness.py --small``, seed 1, model-019)."""
    return model, "*" if anomaly_class in MIRRORED_CLASSES else role, anomaly_class


class IncidentBook:
    """Every incident, indexed by id, by anomaly id and by open (series, class).

    ``hold_down_ms`` says, for a firing record, how long (event time) after its series'
    incident recovered the series' firing again is a flap of that incident rather than a
    new one (the policy rule's ``flap_hold_s``; 0: never).
    """

    def __init__(self, hold_down_ms: Callable[[Anomaly], int] = lambda a: 0) -> None:
        self.hold_down_ms = hold_down_ms
        self.by_id: dict[str, Incident] = {}
        self._recovered: dict[tuple[str, str], str] = {}
        """(series, class) -> its last incident that resolved by recovery (a flap reopens it)."""
        self._by_anomaly: dict[str, str] = {}
        self._open: dict[tuple[str, str], str] = {}
        self._open_model: dict[tuple[str, str, str], str] = {}
        """:func:`_problem` -> its open incident: the same class of problem on another
        series of the model (two versions' latency) is the same problem, not a new page. A
        problem of another class (an error burst while latency is high) opens its own
        incident: it has its own rule (errors are paged, not remediated) and its own page."""

    def load(self, incident: Incident) -> None:
        """Add an incident read back from the store."""
        self.by_id[incident.id] = incident
        for aid in incident.anomaly_ids:
            self._by_anomaly[aid] = incident.id
        if incident.active:
            self._open[(incident.series, incident.anomaly_class)] = incident.id
            self._open_model.setdefault(_problem(incident.model, incident.role, incident.anomaly_class), incident.id)
        else:  # read back resolved (another replica resolved it): no index may still point at it
            self._forget_open(incident)
            if incident.recovered:
                self._recovered[(incident.series, incident.anomaly_class)] = incident.id

    def incident_of(self, anomaly_id: str) -> Incident | None:
        """The incident an anomaly record belongs to, if any."""
        incident_id = self._by_anomaly.get(anomaly_id)
        return None if incident_id is None else self.by_id[incident_id]

    def open_incidents(self) -> list[Incident]:
        return [self.by_id[i] for i in self._open.values()]

    def is_new(self, a: Anomaly) -> bool:
        """Would this firing record open a new incident (not a replay, not joining an open one)?"""
        return (a.id not in self._by_anomaly and (a.series, a.anomaly_class) not in self._open
                and _problem(a.model, a.role, a.anomaly_class) not in self._open_model and self.flap_of(a) is None)

    def flap_of(self, a: Anomaly) -> Incident | None:
        """The recovered incident this firing record would reopen (its series fired again
        within the hold-down, or its very episode fired again), if any.

        An episode that recovers while its CUSUM stays above 0 keeps its onset, so firing again
        it has its first firing's id: read as a replay, it was dropped, and an incident that had
        recovered within its storm hold never paged (``load/detection_harness.py --small --seed
        16``: a creep at 2.44 req/s fired, recovered 37 s later, fired again for the next 12
        minutes and paged nobody). A record of a known id later than its incident's recovery is
        that episode firing again; one no later is a replay."""
        if a.state != "firing":
            return None
        known = self._by_anomaly.get(a.id)
        if known is not None:
            incident = self.by_id[known]
            again = (incident.recovered and incident.resolved_at_ms is not None and a.window_end > incident.resolved_at_ms
                     and self._recovered.get((incident.series, incident.anomaly_class)) == incident.id
                     and (a.series, a.anomaly_class) not in self._open
                     and _problem(a.model, a.role, a.anomaly_class) not in self._open_model)
            return incident if again else None
        incident_id = self._recovered.get((a.series, a.anomaly_class))
        if incident_id is None:
            return None
        incident = self.by_id[incident_id]
        if incident.active or incident.resolved_at_ms is None:
            return None
        return incident if a.window_end - incident.resolved_at_ms <= self.hold_down_ms(a) else None

    def apply(self, a: Anomaly) -> Incident | None:
        """Fold one anomaly record in; returns the incident if it changed (None: a replay).

        A recovered record that returns an incident no longer active has just resolved it.
        """
        if a.state == "firing":
            flapped = self.flap_of(a)
            if a.id in self._by_anomaly and flapped is None:
                return None
            open_id = self._open.get((a.series, a.anomaly_class)) or self._open_model.get(
                _problem(a.model, a.role, a.anomaly_class))
            if open_id is not None:
                return self._join(self.by_id[open_id], a)
            if flapped is not None:
                return self._reopen(flapped, a)
            return self._open_new(a)
        incident_id = self._by_anomaly.get(a.id)
        if incident_id is None:
            return None
        incident = self.by_id[incident_id]
        if a.window_end < incident.refired_at_ms:
            return None
        if incident.firing_anomalies:
            if incident.firing_anomalies.get(a.id) != a.kind:
                return None
            del incident.firing_anomalies[a.id]
            still = set(incident.firing_anomalies.values())
            incident.firing = [k for k in incident.firing if k in still]
        elif a.kind in incident.firing:  # stored before firing_anomalies: by kind
            incident.firing.remove(a.kind)
        else:
            return None
        if not incident.firing and incident.active:
            self.close(incident, f"resolved: {a.summary}", a.window_end)
            incident.recovered = True
            self._recovered[(incident.series, incident.anomaly_class)] = incident.id
        return incident

    def _open_new(self, a: Anomaly) -> Incident:
        evidence = _evidence(a)
        related = sorted(i for i in self._open_model.values()
                         if (self.by_id[i].model, self.by_id[i].role) == (a.model, a.role))
        if related:  # the on-call person sees the model's other open problems on this page
            evidence["related"] = [f"{i} ({self.by_id[i].anomaly_class}): {self.by_id[i].summary}" for i in related]
        incident = Incident(
            id=a.id, series=a.series, model=a.model, version=a.version, role=a.role, anomaly_class=a.anomaly_class,
            kinds=[a.kind], firing=[a.kind], anomaly_ids=[a.id], summary=a.summary, evidence=evidence,
            opened_at_ms=a.onset, firing_anomalies={a.id: a.kind}, fired_at_ms=a.window_end, seen_before_ms=a.seen_before,
        )
        self.load(incident)
        return incident

    def _reopen(self, incident: Incident, a: Anomaly) -> Incident:
        incident.refire()
        incident.refired_at_ms = a.window_end
        if a.id not in incident.anomaly_ids:
            incident.anomaly_ids.append(a.id)
        if a.kind not in incident.kinds:
            incident.kinds.append(a.kind)
        incident.firing, incident.firing_anomalies = [a.kind], {a.id: a.kind}
        incident.evidence.setdefault("also", []).append(_evidence(a))
        del self._recovered[(incident.series, incident.anomaly_class)]
        self.load(incident)
        return incident

    def _join(self, incident: Incident, a: Anomaly) -> Incident:
        incident.anomaly_ids.append(a.id)
        self._by_anomaly[a.id] = incident.id
        if a.kind not in incident.kinds:
            incident.kinds.append(a.kind)
        # Only symptoms of the incident's own series must recover before it resolves (that
        # is what remediation is verified against); another series of the same model and
        # class (a second version's latency) is recorded as a related symptom.
        if a.series == incident.series and a.kind not in incident.firing:
            incident.firing.append(a.kind)
        if incident.firing_anomalies:  # (empty while active: stored before it existed, tracked by kind)
            incident.firing_anomalies[a.id] = a.kind
        incident.evidence.setdefault("also", []).append(_evidence(a))
        return incident

    def close(self, incident: Incident, resolution: str, now_ms: int) -> None:
        """Resolve by recovery or by decision (an operator, a storm ending); a no-op once resolved."""
        if not incident.active:
            return
        incident.resolve(resolution, now_ms)
        self._forget_open(incident)

    def _forget_open(self, incident: Incident) -> None:
        for index, key in ((self._open, (incident.series, incident.anomaly_class)),
                           (self._open_model, _problem(incident.model, incident.role, incident.anomaly_class))):
            if index.get(key) == incident.id:
                del index[key]

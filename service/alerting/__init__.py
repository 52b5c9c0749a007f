"""Alert delivery: one :class:`Alert` per incident transition, fanned out to every sink.

The response plane decides *what* to say (an incident fired, escalated or resolved);
this module only says it, to every configured destination at once:

- :class:`WebhookSink` posts the alert as versioned JSON (:func:`webhook_payload`) with an
  ``Idempotency-Key`` header, so a receiver can drop the duplicates a retry may cause.
- :class:`AlertmanagerSink` posts to Alertmanager's API v2; the label set is the same for
  every message of one incident, so Alertmanager deduplicates, and ``endsAt`` resolves.
- :class:`PagerDutySink` speaks the Events API v2 (trigger / resolve, one ``dedup_key``
  per incident, so an incident is one page however often it is re-sent).
- :class:`SlackSink` posts to an incoming webhook (``text`` fallback plus ``blocks``).

HTTP delivery is at least once: a destination may take a message whose answer never
arrives (a timeout, a crash), and the message is sent again. Every message therefore
carries an identity that is the same on every send of it, computed from the incident,
the message kind and the escalation level only, never from time or chance: PagerDuty's
``dedup_key``, Alertmanager's label set, the webhook's ``Idempotency-Key``. Those three
fold a repeat into what a person already has (``idempotent = True`` on their sinks). An
incoming Slack webhook cannot (``idempotent = False``): the courier marks the copies that
may repeat (:attr:`Alert.maybe_repeat`) and Slack shows the mark.

Every sink retries connection errors, timeouts, 429 (honouring ``Retry-After``, capped)
and 5xx with bounded exponential backoff and jitter, and fails at once on any other 4xx:
a rejected payload or a revoked URL does not heal by retrying. :class:`Alerter` sends to
all sinks concurrently, each under its own deadline, so one dead destination never
delays or suppresses the page on another.
"""

from __future__ import annotations

import abc
import asyncio
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modelmedic.config import SinkSettings
from modelmedic.errors import ConfigError, SinkError
from modelmedic.events import Severity
from modelmedic.logs import redact, redact_url, register_secret
from modelmedic.metrics import ALERT_SECONDS, ALERTS
from modelmedic.retry import RetryPolicy

log = logging.getLogger(__name__)

PAYLOAD_VERSION = 1
"""Version of the webhook payload (:func:`webhook_payload`); bumped on any breaking change."""
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
PAGERDUTY_SUMMARY_MAX = 1024
"""PagerDuty truncates (and some integrations reject) longer summaries."""
PAGERDUTY_DEDUP_KEY_MAX = 255

Status = Literal["firing", "acknowledged", "resolved"]
"""``acknowledged``: a person took the incident (in modelmedic or at PagerDuty); still unresolved."""

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_CORE_LABELS = ("alertname", "model", "version", "role", "kind", "severity", "incident_id")


class Alert(BaseModel):
    """One message about one incident: it fired, escalated (same incident, higher level) or resolved.

    Immutable and validated at construction, so a malformed alert fails in the response
    plane with a clear message rather than as a 400 from a paging service at 3 a.m.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    incident_id: str = Field(min_length=1)
    dedup_key: str = Field(min_length=1, max_length=PAGERDUTY_DEDUP_KEY_MAX)
    """Stable for the whole incident: every sink uses it to fold re-sends into one page."""
    status: Status
    severity: Severity
    summary: str = Field(min_length=1)
    """One human sentence: what is wrong with which model."""
    model: str = Field(min_length=1)
    version: str = Field(min_length=1)
    role: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    """What went wrong: ``latency``, ``throughput_drop``, ``errors``..."""
    anomaly_class: str = Field(min_length=1)
    """The response class: ``latency``, ``throughput``, ``prediction`` or ``drift``."""
    escalation_level: int = Field(0, ge=0)
    """0 for the first alert; each failed remediation raises it by one."""
    started_at_ms: int = Field(gt=0)
    """Onset of the incident, epoch milliseconds."""
    ended_at_ms: int | None = None
    """When it recovered, epoch milliseconds; required when ``status`` is ``resolved``."""
    evidence: dict[str, Any] = Field(default_factory=dict)
    """Observed, baseline, score, window start/end, what was tried: whatever helps on-call decide."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Extra routing labels (team, tier...); they never override the core ones."""
    links: dict[str, str] = Field(default_factory=dict)
    """Name -> URL (dashboard, runbook, incident page)."""
    acknowledged_by: str | None = None
    """Who took the incident (an ``acknowledged`` message says so)."""
    maybe_repeat: bool = False
    """This message may already have reached the destination: an earlier try of it ended
    without a known answer (a timeout, a restart of modelmedic). Set only for destinations
    that cannot fold a repeat themselves (Slack), whose readers are told so."""

    @field_validator("labels")
    @classmethod
    def _label_names(cls, labels: dict[str, str]) -> dict[str, str]:
        for name in labels:
            if not _LABEL_NAME.match(name):
                raise ValueError(f"label name {name!r} must match [a-zA-Z_][a-zA-Z0-9_]* (Alertmanager rejects others)")
            if name in _CORE_LABELS:
                raise ValueError(f"label {name!r} is set by modelmedic itself: use another name")
        return labels

    @model_validator(mode="after")
    def _resolution(self) -> "Alert":
        if self.status == "resolved" and self.ended_at_ms is None:
            raise ValueError("a resolved alert needs ended_at_ms (Alertmanager resolves an alert by its endsAt)")
        if self.ended_at_ms is not None and self.ended_at_ms < self.started_at_ms:
            raise ValueError(f"ended_at_ms={self.ended_at_ms} is before started_at_ms={self.started_at_ms}")
        return self

    @property
    def idempotency_key(self) -> str:
        """Unique per message, equal for every send of one message (retries, re-sends after a
        restart): the incident, its status and level, nothing random or time-dependent."""
        return f"{self.dedup_key}:{self.status}:{self.escalation_level}"


def iso8601(epoch_ms: int) -> str:
    """RFC 3339 UTC with milliseconds, the form Alertmanager and PagerDuty both parse."""
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return ", ".join(_format_value(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def evidence_text(evidence: Mapping[str, Any]) -> str:
    """The evidence as ``key: value`` lines, for sinks that only carry text."""
    return "\n".join(f"{key}: {_format_value(value)}" for key, value in evidence.items())


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- payloads: pure functions, one per destination -------------------------------------------


def webhook_payload(alert: Alert) -> dict[str, Any]:
    """The generic webhook body, version :data:`PAYLOAD_VERSION`::

        {"type": "modelmedic.alert", "payload_version": 1,
         "idempotency_key": "<dedup_key>:<status>:<escalation_level>",
         "alert": {every field of Alert, timestamps in epoch ms}}

    New optional fields may appear within a version; anything else bumps it. ``alert.status`` is
    ``firing``, ``acknowledged`` (a person took it; still unresolved: a receiver that does not know
    the value can treat it as firing) or ``resolved``.
    """
    return {
        "type": "modelmedic.alert",
        "payload_version": PAYLOAD_VERSION,
        "idempotency_key": alert.idempotency_key,
        "alert": alert.model_dump(mode="json"),
    }


def alertmanager_labels(alert: Alert) -> dict[str, str]:
    """The identity of the incident in Alertmanager: identical for every message of one incident.

    Alertmanager deduplicates and resolves by label set, so nothing that changes during an
    incident (escalation level, evidence) is a label. A severity change on escalation is a
    new label set on purpose: it can route to a louder receiver.
    """
    return {
        **alert.labels,
        "alertname": f"modelmedic_{alert.anomaly_class}",
        "model": alert.model,
        "version": alert.version,
        "role": alert.role,
        "kind": alert.kind,
        "severity": alert.severity,
        "incident_id": alert.incident_id,
    }


def alertmanager_alert(alert: Alert) -> dict[str, Any]:
    """One element of the ``POST /api/v2/alerts`` body; ``endsAt`` only when resolved; an acknowledged
    incident is the same firing alert with an ``acknowledged_by`` annotation."""
    annotations = {
        "summary": alert.summary,
        "evidence": evidence_text(alert.evidence),
        "escalation_level": str(alert.escalation_level),
        "dedup_key": alert.dedup_key,
        **{f"link_{name}": url for name, url in alert.links.items()},
    }
    if alert.status == "acknowledged":  # still firing for Alertmanager (same labels: the same alert), now taken
        annotations["acknowledged_by"] = alert.acknowledged_by or "someone"
    body: dict[str, Any] = {
        "labels": alertmanager_labels(alert),
        "annotations": annotations,
        "startsAt": iso8601(alert.started_at_ms),
    }
    if alert.status == "resolved":
        body["endsAt"] = iso8601(alert.ended_at_ms)  # type: ignore[arg-type]  # validated by Alert
    return body


def pagerduty_event(alert: Alert, routing_key: str) -> dict[str, Any]:
    """A PagerDuty Events API v2 event: ``trigger`` while firing, ``acknowledge`` once a person
    took it in modelmedic, ``resolve`` when resolved.

    The affected system (``source``) is one model version; ``group`` is the model, so
    PagerDuty can correlate versions; ``class`` is the anomaly class and kind. A resolve
    (or an acknowledge) carries only the routing key, action and dedup key, as the API specifies.
    """
    if alert.status != "firing":
        action = "resolve" if alert.status == "resolved" else "acknowledge"
        return {"routing_key": routing_key, "event_action": action, "dedup_key": alert.dedup_key}
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": alert.dedup_key,
        "client": "modelmedic",
        "payload": {
            "summary": _truncate(alert.summary, PAGERDUTY_SUMMARY_MAX),
            "source": f"{alert.model}/{alert.version}",
            "severity": alert.severity,
            "timestamp": iso8601(alert.started_at_ms),
            "component": alert.role,
            "group": alert.model,
            "class": f"{alert.anomaly_class}/{alert.kind}",
            "custom_details": {
                **alert.evidence,
                "incident_id": alert.incident_id,
                "escalation_level": alert.escalation_level,
                "labels": alert.labels,
            },
        },
    }
    if alert.links:
        event["links"] = [{"href": url, "text": name} for name, url in alert.links.items()]
    return event


_SLACK_EMOJI = {"critical": ":rotating_light:", "error": ":red_circle:", "warning": ":warning:", "info": ":information_source:"}
_SLACK_HEADER_MAX = 150
_SLACK_TEXT_MAX = 3000
_SLACK_BUTTON_TEXT_MAX = 75
_SLACK_MAX_BUTTONS = 25
_SLACK_REPEAT_TAG = " (may repeat)"
_SLACK_REPEAT_NOTE = ("may repeat a message already posted: an earlier send of it got no answer "
                      "(modelmedic restarted or timed out), so this is the same alert, not a new one")


def _slack_escape(text: str) -> str:
    """Slack mrkdwn treats ``&``, ``<`` and ``>`` as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_title(alert: Alert) -> str:
    if alert.status == "resolved":
        return f":white_check_mark: RESOLVED: {alert.anomaly_class} on {alert.model} {alert.version}"
    if alert.status == "acknowledged":
        return (f":eyes: ACKNOWLEDGED by {alert.acknowledged_by or 'someone'}: {alert.anomaly_class} on {alert.model} "
                f"{alert.version}")
    level = f" (escalation {alert.escalation_level})" if alert.escalation_level else ""
    return f"{_SLACK_EMOJI[alert.severity]} {alert.severity.upper()}: {alert.anomaly_class} on {alert.model} {alert.version}{level}"


def slack_message(alert: Alert) -> dict[str, Any]:
    """An incoming-webhook message: ``text`` for notifications and old clients, ``blocks`` for the rest.

    Resolved messages start with ``:white_check_mark: RESOLVED`` in both, so they are told
    apart at a glance and by filters. A message that may repeat one already posted
    (:attr:`Alert.maybe_repeat`) says so in both, so nobody takes it for a new alert.
    """
    title = _slack_title(alert)
    text = f"{title}{_SLACK_REPEAT_TAG if alert.maybe_repeat else ''}: {_slack_escape(alert.summary)}"
    facts = [
        f"*Model*\n{alert.model}", f"*Version*\n{alert.version}", f"*Role*\n{alert.role}",
        f"*Kind*\n{alert.kind}", f"*Severity*\n{alert.severity}", f"*Started*\n{iso8601(alert.started_at_ms)}",
    ]
    if alert.ended_at_ms is not None:
        facts.append(f"*Ended*\n{iso8601(alert.ended_at_ms)}")
    facts += [f"*{name.capitalize()}*\n{alert.labels[name]}" for name in ("team", "cluster") if name in alert.labels]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _truncate(title, _SLACK_HEADER_MAX), "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _truncate(_slack_escape(alert.summary), _SLACK_TEXT_MAX)}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": _slack_escape(f)} for f in facts]},
    ]
    if alert.evidence:
        evidence = _truncate(_slack_escape(evidence_text(alert.evidence)), _SLACK_TEXT_MAX - 6)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"```{evidence}```"}})
    context = f"incident {alert.incident_id} · escalation level {alert.escalation_level}"
    if alert.maybe_repeat:
        context += f" · {_SLACK_REPEAT_NOTE}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(context)}]})
    if alert.links:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": _truncate(name, _SLACK_BUTTON_TEXT_MAX)}, "url": url}
            for name, url in list(alert.links.items())[:_SLACK_MAX_BUTTONS]
        ]})
    return {"text": _truncate(text, _SLACK_TEXT_MAX), "blocks": blocks}


# --- retries --------------------------------------------------------------------------------


_RETRYABLE_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def _retryable_status(status: int) -> bool:
    return status in (408, 429) or status >= 500


# --- sinks ----------------------------------------------------------------------------------


class Sink(Protocol):
    """Where alerts go. ``send`` raises :class:`SinkError` once it has given up."""

    name: str
    idempotent: bool
    """Does the destination fold a second send of one message into the first (by the
    message's identity)? If not, a repeat shows twice and is marked as one."""

    async def send(self, alert: Alert) -> None: ...

    async def aclose(self) -> None: ...


class HttpSink(abc.ABC):
    """One HTTP destination: builds a request per alert, posts it, retries what is worth retrying."""

    default_name = "http"
    """The sink's name in logs and metrics when the configuration gives none."""
    secret_path = False
    """True when the URL's path is itself the credential (a Slack incoming webhook)."""
    idempotent = True
    """See :attr:`Sink.idempotent`."""

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        timeout_s: float = 5.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name or self.default_name
        self.url = url
        self.shown_url = redact_url(url, secret_path=self.secret_path)
        """The URL as errors and logs show it: its secrets masked (:func:`modelmedic.logs.redact_url`)."""
        if self.secret_path:
            register_secret(urlsplit(url).path)
        self._retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(timeout=timeout_s, transport=transport, headers={"User-Agent": "modelmedic"})

    @abc.abstractmethod
    def body(self, alert: Alert) -> Any:
        """The JSON body for ``alert``."""

    def headers(self, alert: Alert) -> dict[str, str]:
        """Extra request headers for ``alert``."""
        return {}

    def accepted(self, response: httpx.Response) -> bool:
        return response.is_success

    def rejection(self, response: httpx.Response) -> str:
        """Why a non-retryable response means the alert is lost, and what to fix."""
        return (
            f"sink {self.name}: {self.shown_url} rejected the alert with HTTP {response.status_code}: "
            f"{redact(response.text[:300])!r}; check the sink's URL and credentials in the config"
        )

    async def send(self, alert: Alert) -> None:
        await self._post(self.body(alert), self.headers(alert))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, body: Any, headers: dict[str, str]) -> None:
        policy = self._retry
        for attempt in range(policy.attempts):
            try:
                response = await self._http.post(self.url, json=body, headers=headers)
            except _RETRYABLE_ERRORS as exc:
                reason, delay = redact(f"{type(exc).__name__}: {exc}"), policy.backoff(attempt)
            except httpx.HTTPError as exc:
                raise SinkError(
                    f"sink {self.name}: cannot post to {self.shown_url}: {redact(str(exc))}; fix the URL in the config"
                ) from None
            else:
                if self.accepted(response):
                    return
                if not _retryable_status(response.status_code):
                    raise SinkError(self.rejection(response))
                reason = f"HTTP {response.status_code}"
                delay = policy.retry_after(response.headers.get("Retry-After"), time.time())
                if delay is None:
                    delay = policy.backoff(attempt)
            if attempt == policy.attempts - 1:
                raise SinkError(
                    f"sink {self.name}: gave up on {self.shown_url} after {attempt + 1} attempts (last: {reason}); "
                    "check that the destination is up and reachable from modelmedic"
                )
            log.warning("sink %s: attempt %d failed (%s), retrying in %.2fs", self.name, attempt + 1, reason, delay)
            await policy.sleep(delay)


class WebhookSink(HttpSink):
    """POSTs :func:`webhook_payload` with an ``Idempotency-Key`` header (:attr:`Alert.idempotency_key`).

    Idempotent if the receiver drops a key it has seen, which is the header's contract;
    the key is also in the body for receivers that cannot read headers.
    """

    default_name = "webhook"

    def body(self, alert: Alert) -> Any:
        return webhook_payload(alert)

    def headers(self, alert: Alert) -> dict[str, str]:
        return {"Idempotency-Key": alert.idempotency_key}


class AlertmanagerSink(HttpSink):
    """POSTs to ``<url>/api/v2/alerts``, ``url`` being Alertmanager's base URL.

    Alertmanager forgets a firing alert ``resolve_timeout`` (5 minutes by default) after
    the last time it was posted: whoever owns the incident re-sends firing alerts more
    often than that.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str | None = "alertmanager",
        timeout_s: float = 5.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(url.rstrip("/") + "/api/v2/alerts", name=name, timeout_s=timeout_s, retry=retry, transport=transport)

    def body(self, alert: Alert) -> Any:
        return [alertmanager_alert(alert)]


class PagerDutySink(HttpSink):
    """Events API v2: 202 is success, 429 and 5xx are retried, 400 means the event was rejected."""

    def __init__(
        self,
        routing_key: str,
        *,
        url: str = PAGERDUTY_URL,
        name: str | None = "pagerduty",
        timeout_s: float = 5.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(url, name=name, timeout_s=timeout_s, retry=retry, transport=transport)
        self._routing_key = routing_key
        register_secret(routing_key)

    def body(self, alert: Alert) -> Any:
        return pagerduty_event(alert, self._routing_key)

    def accepted(self, response: httpx.Response) -> bool:
        return response.status_code == 202

    def rejection(self, response: httpx.Response) -> str:
        if response.status_code != 400:
            return super().rejection(response)
        try:
            errors = response.json().get("errors", [])
        except ValueError:
            errors = [response.text[:300]]
        return (
            f"sink {self.name}: PagerDuty rejected the event payload (HTTP 400: {errors}); "
            "check the routing_key (the service's Events API v2 integration key) or report a modelmedic bug"
        )


class SlackSink(HttpSink):
    """POSTs :func:`slack_message` to an incoming-webhook URL (the URL is the credential).

    Not idempotent: an incoming webhook answers ``ok`` and nothing else (no message ``ts``
    to find a message by), and posts every request it takes.
    """

    default_name = "slack"
    secret_path = True
    idempotent = False

    def body(self, alert: Alert) -> Any:
        return slack_message(alert)


def build_sink(
    settings: SinkSettings,
    transport: httpx.AsyncBaseTransport | None = None,
    retry: RetryPolicy | None = None,
) -> HttpSink:
    """One sink from its configuration; ``retry`` defaults to ``settings.retries`` with default delays."""
    name = settings.name or settings.type
    common: dict[str, Any] = {
        "name": name,
        "timeout_s": settings.timeout_s,
        "retry": retry or RetryPolicy(attempts=settings.retries + 1),
        "transport": transport,
    }
    if settings.type == "pagerduty":
        return PagerDutySink(settings.routing_key or "", url=settings.url, **common)
    sink_class = {"webhook": WebhookSink, "alertmanager": AlertmanagerSink, "slack": SlackSink}[settings.type]
    return sink_class(settings.url, **common)


def build_sinks(
    settings: Sequence[SinkSettings],
    transport: httpx.AsyncBaseTransport | None = None,
    retry: RetryPolicy | None = None,
) -> list[HttpSink]:
    """Every configured sink; names must be distinct because metrics and logs key on them."""
    sinks = [build_sink(s, transport, retry) for s in settings]
    names = [s.name for s in sinks]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"two sinks are named {name!r}: give each sink of the same type a distinct name")
    return sinks


# --- fan-out --------------------------------------------------------------------------------

Result = Literal["ok", "error", "timeout"]


@dataclass(frozen=True, slots=True)
class SinkResult:
    """How one sink fared with one alert."""

    sink: str
    result: Result
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.result == "ok"


class Alerter:
    """Sends every alert to every sink concurrently; each sink is isolated from the others.

    A sink that fails is logged and counted; one that hangs is cut off at ``deadline_s``
    (retries included). Neither delays or fails the delivery to the other sinks, and
    :meth:`send` itself never raises for a sink's sake: it returns one result per sink.
    """

    def __init__(self, sinks: Sequence[Sink], *, deadline_s: float = 30.0) -> None:
        self.sinks = list(sinks)
        self.deadline_s = deadline_s

    async def send(self, alert: Alert) -> list[SinkResult]:
        return list(await asyncio.gather(*(self.send_to(sink, alert) for sink in self.sinks)))

    async def aclose(self) -> None:
        await asyncio.gather(*(sink.aclose() for sink in self.sinks))

    async def send_to(self, sink: Sink, alert: Alert) -> SinkResult:
        """Deliver ``alert`` to one sink under the deadline; never raises for the sink's sake."""
        t0 = time.perf_counter()
        error: str | None = None
        result: Result = "ok"
        try:
            await asyncio.wait_for(sink.send(alert), self.deadline_s)
        except TimeoutError:
            result, error = "timeout", f"no delivery within the {self.deadline_s:g}s deadline"
        except SinkError as exc:
            result, error = "error", str(exc)
        except Exception as exc:  # a bug in one sink must not cost the page on the others
            log.exception("sink %s: unexpected error delivering incident %s", sink.name, alert.incident_id)
            result, error = "error", redact(f"{type(exc).__name__}: {exc}")
        seconds = time.perf_counter() - t0
        ALERTS.labels(sink=sink.name, result=result).inc()
        ALERT_SECONDS.labels(sink=sink.name).observe(seconds)
        if error is not None:
            log.error(
                "alert for incident %s (%s) not delivered to %s: %s",
                alert.incident_id, alert.status, sink.name, error,
                extra={"incident": alert.incident_id, "sink": sink.name},
            )
        return SinkResult(sink.name, result, seconds, error)

"""Page the owning team and write the audit when a release step fails or is forced.

Without this a failed release is an exit code and a Kubernetes event, seen only by whoever ran
the command. A failure is sent as one :class:`~modelmedic.alerting.Alert` (``anomaly_class``
``release``, severity ``error``, the ``team`` and ``owners`` labels from the registry's model
record) through the same sinks and the same :class:`~modelmedic.alerting.Alerter` the service
pages with, so it is routed like any other page of that team.

Every failure is its own page: the incident id carries the moment it failed, so re-running a
failed certification tomorrow pages again, while the sinks' own retries of one send fold into
one page (the ids are fixed before the first try).

Failures and ``--force`` overrides are also records of the audit topic, in the response plane's
shape (``modelmedic audit --action release-failed``), so "who forced v2 past certification, and why
was it refused" is answered where every other decision is.
"""

from __future__ import annotations

import asyncio
import getpass
import time
from collections.abc import Sequence
from typing import Any, Literal

import msgspec

from modelmedic.alerting import Alert, Alerter, SinkResult, build_sinks
from modelmedic.config import KafkaSettings, SinkSettings
from modelmedic.kafka import producer
from modelmedic.logs import redact

Stage = Literal["certification", "live-test", "deploy", "rollback"]
AuditAction = Literal["release-failed", "release-forced"]

NEXT_STEP: dict[Stage, str] = {
    "certification": "it is not certified and cannot be deployed: read its report in the registry, "
                     "fix the version and run `modelmedic certify` again",
    "live-test": "its shadow verdict failed: read the verdict in the registry before deploying it",
    "deploy": "production keeps the version it ran: read the reason, then certify, live-test or "
              "deploy another version",
    "rollback": "check which version serves now (`kubectl describe deployment`) and decide by hand "
                "before deploying again",
}
"""What the person paged should do, per failed stage."""


def failure_alert(model: str, version: str, stage: Stage, reason: str, owners: Sequence[str], *,
                  now_ms: int | None = None) -> Alert:
    """The page for ``model@version`` failing ``stage`` because of ``reason``; ``team`` is the first owner."""
    started = int(time.time() * 1000) if now_ms is None else now_ms
    incident = f"release-{stage}-{model}-{version}-{started}"
    labels = {"stage": stage}
    if owners:
        labels["team"], labels["owners"] = owners[0], ",".join(owners)
    return Alert(
        incident_id=incident, dedup_key=f"modelmedic-{incident}", status="firing", severity="error",
        summary=f"{model} {version}: {stage} failed: {reason}. Next: {NEXT_STEP[stage]}",
        model=model, version=version, role="release", kind=stage, anomaly_class="release",
        started_at_ms=started, evidence={"stage": stage, "reason": reason}, labels=labels,
    )


async def notify_failure(settings_sinks: Sequence[SinkSettings], alert: Alert) -> list[SinkResult]:
    """Send a :func:`failure_alert` to every configured sink; one result per sink, never raises for a sink's sake."""
    alerter = Alerter(build_sinks(settings_sinks))
    try:
        return await alerter.send(alert)
    finally:
        await alerter.aclose()


def audit_record(model: str, version: str, action: AuditAction, details: dict[str, Any], *, incident_id: str = "",
                 actor: str | None = None, now_ms: int | None = None) -> dict[str, Any]:
    """An audit record in the response plane's shape; ``incident_id`` links a failure to its page.

    The actor is the account that ran the command: a release tool has no operator token, and
    "which login forced it" is what the audit must answer.
    """
    return {"ts": int(time.time() * 1000) if now_ms is None else now_ms, "actor": actor or _login(),
            "action": action, "incident_id": incident_id, "model": model, "version": version,
            "anomaly_class": "release", "state": "", "details": details}


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a container's random uid)
        return "unknown"


async def publish_audit(kafka: KafkaSettings, records: Sequence[dict[str, Any]], timeout_s: float = 20.0) -> None:
    """Write ``records`` to the audit topic, acknowledged by Kafka (keyed by model, like the plane's)."""
    p = producer(kafka)
    try:
        async with asyncio.timeout(timeout_s):
            await p.start()
            for record in records:
                value = redact(msgspec.json.encode(record).decode()).encode()
                await p.send_and_wait(kafka.topics.audit, value, key=str(record["model"]).encode())
    finally:
        await p.stop()

"""Page the owning team when a release step fails: certification, live test, deploy, automatic rollback.

Without this a failed release is an exit code and a Kubernetes event, seen only by whoever ran
the command. A failure is sent as one :class:`~modelmedic.alerting.Alert` (``anomaly_class``
``release``, severity ``error``, the ``team`` and ``owners`` labels from the registry's model
record) through the same sinks and the same :class:`~modelmedic.alerting.Alerter` the service
pages with, so it is routed like any other page of that team.

Every failure is its own page: the incident id carries the moment it failed, so re-running a
failed certification tomorrow pages again, while the sinks' own retries of one send fold into
one page (the ids are fixed before the first try).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Literal

from modelmedic.alerting import Alert, Alerter, SinkResult, build_sinks
from modelmedic.config import SinkSettings

Stage = Literal["certification", "live-test", "deploy", "rollback"]

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


async def notify_failure(settings_sinks: Sequence[SinkSettings], model: str, version: str, stage: Stage,
                         reason: str, owners: Sequence[str]) -> list[SinkResult]:
    """Send the failure page to every configured sink; one result per sink, never raises for a sink's sake."""
    alerter = Alerter(build_sinks(settings_sinks))
    try:
        return await alerter.send(failure_alert(model, version, stage, reason, owners))
    finally:
        await alerter.aclose()

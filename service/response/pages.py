"""What a page says beyond the detection's summary: whose it is, where to look, what happens next.

Pure functions of the incident, its policy rule and the settings (unit-tested), used by the
response plane when it renders a notice:

- :func:`page_labels`: the routing labels (``team`` and ``owners`` from the registry's model
  record, ``namespace``, ``cluster``, ``anomaly_class``), so Alertmanager routes by team;
- :func:`page_links`: the runbook and dashboard of the policy (URL templates) and the
  incident's page in the status UI;
- :func:`remediation_block` and :func:`next_step`: whether modelmedic will act, and the one
  sentence that tells the person paged what modelmedic does next and when it gets louder.

>>> from modelmedic.response.policy import DEFAULT_RULES
>>> rule = DEFAULT_RULES["latency"]
>>> next_step(rule, level=0, next_playbook=0, opened_ms=0, block=None)
'modelmedic runs rollback, then scale-out, verifying each for 60 s; pages critical if none restores it'
>>> next_step(DEFAULT_RULES["errors"], level=0, next_playbook=0, opened_ms=0, block="the rule does not remediate")
'no automatic action (the rule does not remediate): needs a person; pages critical at 00:15 UTC unless acknowledged'
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from modelmedic.errors import ModelmedicError
from modelmedic.response.incidents import Incident
from modelmedic.response.policy import Policy, Rule


def registry_owners(registry: Any, model: str) -> tuple[str, ...]:
    """The model's owners from the registry (first: the team paged); none without a registry or
    for a model it does not know (a page is never held back for a registry read)."""
    if registry is None:
        return ()
    try:
        return tuple(registry.spec(model).owners)
    except ModelmedicError:
        return ()


def page_labels(incident: Incident, *, namespace: str, cluster: str, owners: Sequence[str]) -> dict[str, str]:
    """Routing labels beside the core ones (model, version, severity... set by the sinks):
    ``team`` is the first owner, ``owners`` all of them comma-separated."""
    labels = {"anomaly_class": incident.anomaly_class}
    if incident.model != "*":
        labels["namespace"] = namespace
    if owners:
        labels["team"], labels["owners"] = owners[0], ",".join(owners)
    if cluster:
        labels["cluster"] = cluster
    return labels


def page_links(incident: Incident, policy: Policy, rule: Rule | None, external_url: str | None) -> dict[str, str]:
    """Runbook (the rule's, else the policy's), dashboard, and the incident's page in the status UI."""
    fields = {"model": incident.model, "version": incident.version, "role": incident.role,
              "anomaly_class": incident.anomaly_class, "kind": incident.kinds[0], "incident_id": incident.id,
              "start_ms": incident.opened_at_ms}
    links = {}
    runbook = (rule.runbook if rule else None) or policy.links.runbook
    if runbook:
        links["runbook"] = runbook.format(**fields)
    if policy.links.dashboard:
        links["dashboard"] = policy.links.dashboard.format(**fields)
    if external_url:
        links["incident"] = f"{external_url.rstrip('/')}/incidents/{incident.id}"
    return links


def remediation_block(incident: Incident, rule: Rule | None, *, kubernetes: bool, paused_by: str | None) -> str | None:
    """Why modelmedic will not run the rule's playbooks on ``incident``; None when it will."""
    if rule is None:
        return "a storm: no per-model remediation"
    if not rule.auto_remediate or not rule.playbooks:
        return "the rule does not remediate"
    if incident.role == "shadow":
        return "a shadow candidate under live test: production is never touched for it"
    if not kubernetes:
        return "no Kubernetes access configured"
    if paused_by:
        return f"remediation paused by {paused_by}"
    return None


def _clock(epoch_ms: int) -> str:
    return time.strftime("%H:%M UTC", time.gmtime(epoch_ms / 1000))


def next_step(rule: Rule | None, *, level: int, next_playbook: int, opened_ms: int, block: str | None) -> str:
    """What modelmedic does next about an incident paged at ``level``, and when it gets louder.

    ``next_playbook`` is the index of the rule's next playbook to try; ``opened_ms`` the wall
    clock its escalation timetable runs from; ``block`` :func:`remediation_block`'s answer.
    """
    if rule is None:
        return "nothing per model; it resolves when every model in it recovers"
    left = [p.name for p in rule.playbooks[next_playbook:]]
    if block is None and left:
        action = f"modelmedic runs {', then '.join(left)}, verifying each for {rule.verify_s:g} s"
    elif block is None:
        action = "no playbook left to try: needs a person"
    else:
        action = f"no automatic action ({block}): needs a person"
    if level + 1 < len(rule.escalation):  # (timed escalation waits while a playbook runs or is verified)
        louder = rule.escalation[level + 1]
        action += (f"; pages {louder.severity} if none restores it" if block is None and left else
                   f"; pages {louder.severity} at {_clock(opened_ms + int(louder.after_s * 1000))} unless acknowledged")
    return action

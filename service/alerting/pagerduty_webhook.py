"""PagerDuty in: an incident acknowledged or resolved at PagerDuty is acknowledged or resolved here.

PagerDuty's v3 webhook subscription POSTs one JSON event per change (``incident.acknowledged``,
``incident.resolved``, and many this handler ignores) signed with the subscription's secret:
``X-PagerDuty-Signature: v1=<hex HMAC-SHA256 of the raw body>``, several comma-separated
while a secret is being rotated. :class:`PagerDutyWebhook` checks the signature against every
configured secret (``sinks[].webhook_secret`` of the PagerDuty sinks) in constant time, finds
modelmedic's incident by the event's ``incident_key`` (the ``dedup_key`` modelmedic triggered
it with, ``modelmedic-<incident id>``) and acknowledges or resolves it under the PagerDuty
user's name (``pagerduty:<name>``). An acknowledged incident is no longer remediated nor
escalated, whichever side it was acknowledged on.

Answers (refusals in the API's shape, ``{"error": ..., "field": ...}``): 401 for a missing or
wrong signature, 400 for a body that is not a v3 event, 503
when another replica owns the incident (PagerDuty retries), 200 otherwise, with what was
done or why nothing was (an event about another integration's incident, an incident already
in that state): PagerDuty retries what is not a 2xx, and retrying those would change nothing.

The HTTP endpoint mounts :meth:`PagerDutyWebhook.handle` at :data:`PATH` (no operator
credential: the signature is the credential).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from aiohttp import web

from modelmedic.errors import ModelmedicError, NotOwnedError

log = logging.getLogger(__name__)

PATH = "/api/v1/pagerduty/webhook"
SIGNATURE_HEADER = "X-PagerDuty-Signature"
DEDUP_PREFIX = "modelmedic-"
"""How modelmedic's PagerDuty ``dedup_key`` starts (:meth:`Incident.alert <modelmedic.response.incidents.Incident.alert>`)."""
ACTIONS = {"incident.acknowledged": "acknowledge", "incident.resolved": "resolve"}


class IncidentDesk(Protocol):
    """What the webhook asks of the response plane."""

    async def acknowledge(self, incident_id: str, by: str, via: str = ...) -> Any: ...

    async def resolve(self, incident_id: str, by: str, via: str = ...) -> Any: ...


def sign(body: bytes, secret: str) -> str:
    """The signature PagerDuty sends for ``body``: ``v1=<hex HMAC-SHA256>``."""
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed_by_any(body: bytes, header: str, secrets: Sequence[str]) -> bool:
    """Does one of the header's ``v1=`` signatures match ``body`` under one of ``secrets``?"""
    offered = [part.strip() for part in header.split(",") if part.strip().startswith("v1=")]
    expected = [sign(body, secret) for secret in secrets]
    return any(hmac.compare_digest(e, o) for e in expected for o in offered)


def _answer(status: int, **fields: str | None) -> web.Response:
    return web.json_response(fields, status=status)


class PagerDutyWebhook:
    """The aiohttp handler of PagerDuty's v3 webhook (see the module docstring)."""

    def __init__(self, secrets: Sequence[str], desk: IncidentDesk) -> None:
        if not secrets:
            raise ValueError("a PagerDuty webhook needs at least one signing secret (sinks[].webhook_secret)")
        self.secrets, self.desk = list(secrets), desk

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not signed_by_any(body, request.headers.get(SIGNATURE_HEADER, ""), self.secrets):
            log.warning("PagerDuty webhook: refused a request without a valid %s", SIGNATURE_HEADER)
            return _answer(401, error=f"missing or wrong {SIGNATURE_HEADER}: check the subscription's secret "
                                      "against sinks[].webhook_secret", field=SIGNATURE_HEADER)
        try:
            event = json.loads(body)["event"]
            event_type, data = event["event_type"], event.get("data") or {}
            key = str(data.get("incident_key") or "")
            agent = (event.get("agent") or {}).get("summary") or "someone"
        except (ValueError, KeyError, TypeError, AttributeError):
            return _answer(400, error="not a PagerDuty v3 webhook event (expected {\"event\": {\"event_type\": ...}})",
                           field="body")
        action = ACTIONS.get(event_type)
        if action is None or not key.startswith(DEDUP_PREFIX):
            return _answer(200, ignored=f"{event_type} of {key or 'an incident'}: not an acknowledgement or "
                                        "resolution of a modelmedic incident")
        incident_id, by = key[len(DEDUP_PREFIX):], f"pagerduty:{agent}"
        try:
            await getattr(self.desk, action)(incident_id, by, via="pagerduty")
        except NotOwnedError as exc:
            return _answer(503, error=str(exc), field=None)
        except (KeyError, ModelmedicError) as exc:  # unknown here, or already in that state
            return _answer(200, ignored=str(exc).strip("'\""))
        log.warning("incident %s: %s at PagerDuty by %s", incident_id, event_type.split(".")[1], agent)
        return _answer(200, done=f"{action}d {incident_id} as {by}")

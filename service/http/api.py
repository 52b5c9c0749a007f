"""The JSON API, version 1: incidents listed (filtered, paged), read one by one, and acted on.

Every answer is JSON; every refusal too: ``{"error": "<what to do>", "field": "<the input at
fault or null>"}`` with 400 (bad input, the field named), 401/403 (credential or role, see
:mod:`modelmedic.http.auth`), 404 (no such incident), 409 (the incident's state, a guard rail
or another replica's ownership refused the action). The OpenAPI document beside this module
(``openapi.json``, served at ``/api/v1/openapi.json``) describes every route.

An incident is shown by :func:`public_incident`: what an operator needs (state, level, what was
tried, which pages went out and which are still owed), not the response plane's bookkeeping
(idempotency keys, delivery backoff, indexes).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelmedic.errors import KafkaUnavailable, ModelmedicError, NotOwnedError, PlaybookError, UnknownPlaybookError
from modelmedic.http.answers import as_json, bad_request, refusal
from modelmedic.http.auth import Operator
from modelmedic.http.paging import Listing, check_parameters, limit_of, text_of
from modelmedic.http.source import IncidentView, StatusSource

MAX_SILENCE_MINUTES = 7 * 24 * 60
"""A silence longer than a week is a decision to stop watching the model: resolve, or change the policy."""
FILTERS = frozenset({"state", "model", "class"})
LISTING = Listing("incidents", (int, str))


class Body(BaseModel):
    """A request body: unknown fields are refused (a typo must not be ignored)."""

    model_config = ConfigDict(extra="forbid")


B = TypeVar("B", bound=Body)


class AckBody(Body):
    """``ack`` and ``resolve`` take nothing: the actor is the credential's operator."""


class SilenceBody(Body):
    minutes: float = Field(60.0, gt=0, le=MAX_SILENCE_MINUTES, allow_inf_nan=False)


class RunBody(Body):
    playbook: str = Field(min_length=1, max_length=200)
    params: dict[str, Any] = Field(default_factory=dict)


def public_incident(i: IncidentView, owners: Sequence[str] = ()) -> dict[str, Any]:
    """The fields of an incident the API and the UI show."""
    return {
        "id": i.id, "series": i.series, "model": i.model, "version": i.version, "role": i.role,
        "anomaly_class": i.anomaly_class, "kinds": list(i.kinds), "firing": list(i.firing), "summary": i.summary,
        "state": i.state, "escalation_level": i.escalation_level, "escalation_reason": i.escalation_reason,
        "opened_at_ms": i.opened_at_ms, "resolved_at_ms": i.resolved_at_ms, "resolution": i.resolution,
        "acknowledged_by": i.acknowledged_by, "acknowledged_at_ms": i.acknowledged_at_ms,
        "escalations": [{"level": e.level, "at_ms": e.at_ms, "reason": e.reason} for e in i.escalations],
        "silenced_until_ms": i.silenced_until_ms, "storm": i.storm,
        "members": list(i.members), "flaps": i.flaps, "recovered_after_remediation": i.recovered_after_remediation,
        "owners": list(owners), "evidence": i.evidence,
        "attempts": [{"playbook": a.playbook, "at_ms": a.at, "params": a.params, "status": a.status,
                      "message": a.message, "by": a.by} for a in i.attempts],
        "pages_sent": list(i.alerted),
        "pages_owed": sorted(sink for sink, queue in i.owed.items() if queue),
    }


@dataclass(frozen=True)
class Query:
    """What a listing of incidents asks for (validated by :func:`parse_query`)."""

    limit: int
    cursor: tuple | None
    state: str | None
    model: str | None
    anomaly_class: str | None

    def wants(self, i: IncidentView) -> bool:
        return ((self.state is None or i.state == self.state) and (self.model is None or i.model == self.model)
                and (self.anomaly_class is None or i.anomaly_class == self.anomaly_class)
                and (self.cursor is None or sort_key(i) < self.cursor))


def sort_key(i: IncidentView) -> tuple[int, str]:
    """Newest first: by the event time of the first window, then id."""
    return i.opened_at_ms, i.id


def parse_query(query: Any, states: Sequence[str], classes: Sequence[str]) -> Query:
    """The listing's query, validated: every problem is a 400 naming the parameter."""
    check_parameters(query, FILTERS)
    state, anomaly_class = query.get("state"), query.get("class")
    if state is not None and state not in states:
        raise bad_request("state", f"unknown state {state!r}; the states are {', '.join(states)}")
    if anomaly_class is not None and anomaly_class not in classes:
        raise bad_request("class", f"unknown class {anomaly_class!r}; the classes are {', '.join(classes)}")
    return Query(limit_of(query), LISTING.cursor_of(query), state, text_of(query, "model"), anomaly_class)


async def read_body(request: web.Request, model: type[B]) -> B:
    """The request's JSON body as ``model``: a 400 names the first field at fault."""
    data: Any = {}
    if request.can_read_body:
        try:
            data = json.loads(await request.text())
        except ValueError:
            raise bad_request("body", "not JSON: send a JSON object (or no body)") from None
    if not isinstance(data, dict):
        raise bad_request("body", "must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "body"
        raise bad_request(field, error["msg"]) from None


class IncidentApi:
    """The handlers of ``/api/v1/incidents...``, each called with the operator already authenticated."""

    def __init__(self, source: StatusSource) -> None:
        self.source = source

    def _view(self, incident: IncidentView) -> dict[str, Any]:
        return public_incident(incident, self.source.owners(incident.model))

    def _get(self, request: web.Request) -> IncidentView:
        incident_id = request.match_info["id"]
        incident = self.source.incident(incident_id)
        if incident is None:
            raise refusal(web.HTTPNotFound, f"no incident {incident_id!r}: list them with GET /api/v1/incidents", "id")
        return incident

    async def listing(self, request: web.Request, operator: Operator) -> web.Response:
        query = parse_query(request.query, self.source.incident_states(), self.source.anomaly_classes())
        chosen = sorted((i for i in self.source.incidents() if query.wants(i)), key=sort_key, reverse=True)
        items, next_cursor = LISTING.page(chosen, sort_key, query.limit)
        return as_json({"items": [self._view(i) for i in items], "next_cursor": next_cursor})

    async def get(self, request: web.Request, operator: Operator) -> web.Response:
        return as_json(self._view(self._get(request)))

    async def acknowledge(self, request: web.Request, operator: Operator) -> web.Response:
        incident = self._get(request)
        await read_body(request, AckBody)
        return as_json(self._view(await refusing(self.source.acknowledge(incident.id, operator.name))))

    async def resolve(self, request: web.Request, operator: Operator) -> web.Response:
        incident = self._get(request)
        await read_body(request, AckBody)
        return as_json(self._view(await refusing(self.source.resolve(incident.id, operator.name))))

    async def silence(self, request: web.Request, operator: Operator) -> web.Response:
        incident = self._get(request)
        body = await read_body(request, SilenceBody)
        return as_json(self._view(await refusing(
            self.source.silence(incident.id, body.minutes, operator.name))))

    async def run(self, request: web.Request, operator: Operator) -> web.Response:
        incident = self._get(request)
        body = await read_body(request, RunBody)
        outcome = await refusing(self.source.trigger(incident.id, body.playbook, body.params, operator.name))
        return as_json({"outcome": {"status": outcome.status, "message": outcome.message, "details": outcome.details},
                        "incident": self._view(self._get(request))})


async def refusing(action: Any) -> Any:
    """Await an operator action, turning the service's refusals into answers that say why."""
    try:
        return await action
    except UnknownPlaybookError as exc:
        raise bad_request("playbook", str(exc)) from None
    except PlaybookError as exc:
        raise bad_request("params", str(exc)) from None
    except NotOwnedError as exc:
        raise refusal(web.HTTPConflict, str(exc)) from None
    except KafkaUnavailable as exc:  # (a silence is published before it is answered)
        raise refusal(web.HTTPServiceUnavailable, f"{exc}; try again") from None
    except ModelmedicError as exc:  # the lifecycle (acknowledging a resolved incident), a guard rail
        raise refusal(web.HTTPConflict, str(exc)) from None


def openapi_document() -> str:
    """The OpenAPI 3 document of this API (``openapi.json`` beside this module; docs/openapi.json is the same file)."""
    return resources.files(__package__).joinpath("openapi.json").read_text()

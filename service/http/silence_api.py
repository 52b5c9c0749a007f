"""``/api/v1/silences``: silences, maintenance windows and remediation pauses, read and made through the API.

The same objects ``modelmedic silence`` / ``modelmedic maintenance`` write to their compacted
topic (:mod:`modelmedic.response.silences`): a matcher (model globs, versions, classes), a
start and an end, who made it and why. Its ``kind`` says what it holds back: ``silence`` pages,
``maintenance`` pages and automatic remediation, ``pause`` automatic remediation only.

- ``GET`` (read): those not over (active and scheduled), soonest end first, a listing like the
  others (:mod:`modelmedic.http.paging`), filtered by ``kind``, ``state`` and ``model`` (the
  ones whose globs match that model);
- ``POST`` (operate): one more, made by the token's operator (the audit's actor);
- ``DELETE /api/v1/silences/{id}`` (operate): ended now, by the token's operator.
"""

from __future__ import annotations

import fnmatch
import time
import typing
from collections.abc import Sequence
from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from modelmedic.http.answers import as_json, bad_request, refusal
from modelmedic.http.api import Body, read_body, refusing
from modelmedic.http.auth import Operator
from modelmedic.http.paging import Listing, check_parameters, limit_of, text_of
from modelmedic.http.source import SilenceView, StatusSource

Kind = Literal["silence", "maintenance", "pause"]
"""The kinds of ``modelmedic.response.silences`` (this package imports no plane; a unit test keeps them equal)."""
SilenceState = Literal["active", "scheduled"]
MAX_WINDOW_MS = 30 * 86_400_000
"""A month: longer is not a maintenance window but a decision to stop watching (change the policy)."""
FILTERS = frozenset({"kind", "state", "model"})
LISTING = Listing("silences", (int, str))


class NewSilence(Body):
    """``POST /api/v1/silences``: an end (``ends_ms``) or a length (``minutes``) from ``starts_ms`` (default now)."""

    kind: Kind = "silence"
    models: list[str] = Field(min_length=1, max_length=100)
    versions: list[str] | None = Field(None, min_length=1)
    classes: list[str] | None = Field(None, min_length=1)
    starts_ms: int | None = Field(None, ge=0)
    ends_ms: int | None = Field(None, ge=0)
    minutes: float | None = Field(None, gt=0, allow_inf_nan=False)
    comment: str = Field("", max_length=2000)


def state_of(s: SilenceView, now_ms: int) -> str:
    return "active" if s.starts_ms <= now_ms else "scheduled"


def public_silence(s: SilenceView, now_ms: int) -> dict[str, Any]:
    return {"id": s.id, "kind": s.kind, "state": state_of(s, now_ms), "models": list(s.models),
            "versions": s.versions, "classes": s.classes, "starts_ms": s.starts_ms, "ends_ms": s.ends_ms,
            "created_by": s.created_by, "created_ms": s.created_ms, "comment": s.comment}


def sort_key(s: SilenceView) -> tuple[int, str]:
    """Soonest end first (then id): what lifts next is what on-call asks about."""
    return s.ends_ms, s.id


def fields_of(body: NewSilence, classes: Sequence[str], now_ms: int) -> dict[str, Any]:
    """The new silence's fields, checked: each refusal names the field at fault."""
    if any(not m for m in body.models):
        raise bad_request("models", "an empty glob matches nothing: give a model name or glob ('*' for all)")
    unknown = sorted(set(body.classes or ()) - set(classes))
    if unknown:
        raise bad_request("classes", f"unknown class {unknown[0]!r}; the classes are {', '.join(classes)}")
    if (body.ends_ms is None) == (body.minutes is None):
        raise bad_request("ends_ms", "give either ends_ms (epoch ms) or minutes (from starts_ms), not both or neither")
    starts = now_ms if body.starts_ms is None else body.starts_ms
    ends = body.ends_ms if body.ends_ms is not None else starts + int((body.minutes or 0) * 60_000)
    if ends <= max(starts, now_ms):
        raise bad_request("ends_ms", "it would be over before it holds anything: give an end after the start and now")
    if ends - starts > MAX_WINDOW_MS:
        raise bad_request("ends_ms", "longer than 30 days: that is a policy change, not a silence")
    return {"kind": body.kind, "models": body.models, "versions": body.versions, "classes": body.classes,
            "starts_ms": starts, "ends_ms": ends, "comment": body.comment}


class SilenceApi:
    """The handlers of ``/api/v1/silences...``."""

    def __init__(self, source: StatusSource) -> None:
        self.source = source

    async def listing(self, request: web.Request, operator: Operator) -> web.Response:
        query = request.query
        check_parameters(query, FILTERS)
        kind, state, model = query.get("kind"), query.get("state"), text_of(query, "model")
        if kind is not None and kind not in typing.get_args(Kind):
            raise bad_request("kind", f"unknown kind {kind!r}; the kinds are {', '.join(typing.get_args(Kind))}")
        if state is not None and state not in typing.get_args(SilenceState):
            raise bad_request("state", f"unknown state {state!r}; the states are active, scheduled")
        limit, cursor = limit_of(query), LISTING.cursor_of(query)
        now = int(time.time() * 1000)

        def wants(s: SilenceView) -> bool:
            return ((kind is None or s.kind == kind) and (state is None or state_of(s, now) == state)
                    and (model is None or any(fnmatch.fnmatchcase(model, glob) for glob in s.models))
                    and (cursor is None or sort_key(s) > cursor))

        chosen = sorted(filter(wants, self.source.silences()), key=sort_key)
        items, next_cursor = LISTING.page(chosen, sort_key, limit)
        return as_json({"items": [public_silence(s, now) for s in items], "next_cursor": next_cursor})

    async def create(self, request: web.Request, operator: Operator) -> web.Response:
        body = await read_body(request, NewSilence)
        now = int(time.time() * 1000)
        fields = fields_of(body, self.source.anomaly_classes(), now)
        made = await refusing(self.source.add_silence(fields, operator.name))
        return as_json(public_silence(made, now), status=201)

    async def remove(self, request: web.Request, operator: Operator) -> web.Response:
        silence_id = request.match_info["id"]
        try:
            removed = await refusing(self.source.remove_silence(silence_id, operator.name))
        except KeyError as exc:
            raise refusal(web.HTTPNotFound, str(exc).strip("'\""), "id") from None
        return as_json({**public_silence(removed, int(time.time() * 1000)), "state": "removed"})

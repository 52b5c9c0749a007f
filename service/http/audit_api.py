"""``GET /api/v1/audit``: why it rolled back, why it did not page, who acked, from the service itself.

The service holds the newest records of the audit topic (:mod:`modelmedic.audit`: every
replica follows the whole topic, so each answers alike). A listing like the others
(:mod:`modelmedic.http.paging`), newest first, filtered by ``incident``, ``model`` (a name or
glob; a silence's own globs count), ``action`` (repeatable) and ``since`` / ``until``
(epoch ms or ISO 8601). Each item is the record as written: ``ts``, ``actor``, ``action``,
``incident_id``, ``model``, ``version``, ``anomaly_class``, ``state`` and ``details`` (the
reason and evidence). ``complete_from_ms`` says from when the answer is whole (null: the
service holds the whole topic); older records: ``modelmedic audit`` reads the topic itself.
Until the records there were at the start are read back (a moment) the answer is a 503.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from modelmedic.audit import ACTIONS, AuditFilter, Entry
from modelmedic.http.answers import as_json, bad_request, refusal
from modelmedic.http.auth import Operator
from modelmedic.http.paging import Listing, check_parameters, limit_of, text_of, time_of
from modelmedic.http.source import StatusSource

FILTERS = frozenset({"incident", "model", "action", "since", "until"})
LISTING = Listing("audit", (int, int, int))
"""Sorted by (ts, partition, offset)."""


def parse_filter(query: Any) -> AuditFilter:
    """The filters of an audit query, validated: an unknown action is a 400 listing the actions."""
    actions = query.getall("action", [])
    for action in actions:
        if action not in ACTIONS:
            raise bad_request("action", f"unknown action {action!r}; the actions are {', '.join(ACTIONS)}")
    return AuditFilter(incident=text_of(query, "incident"), model=text_of(query, "model"), actions=frozenset(actions),
                       since_ms=time_of(query, "since"), until_ms=time_of(query, "until"))


def _key(entry: Entry) -> tuple[int, int, int]:
    return entry.key


class AuditApi:
    """The handler of ``/api/v1/audit`` (read role)."""

    def __init__(self, source: StatusSource) -> None:
        self.source = source

    async def listing(self, request: web.Request, operator: Operator) -> web.Response:
        check_parameters(request.query, FILTERS)
        which = parse_filter(request.query)
        limit, cursor = limit_of(request.query), LISTING.cursor_of(request.query)
        tail = self.source.audit()
        if not tail.loaded.is_set():  # a moment after a start: an answer now would be short, and say nothing of it
            raise refusal(web.HTTPServiceUnavailable, "reading the audit topic back after a start: try again in a "
                          "few seconds", headers={"Retry-After": "2"})
        items, next_cursor = LISTING.page(tail.newest(which, cursor), _key, limit)
        return as_json({"items": [e.record() for e in items], "next_cursor": next_cursor,
                        "complete_from_ms": tail.complete_from_ms})

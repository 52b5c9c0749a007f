"""What every ``/api/v1`` listing shares: its query checked, one page cut, the next page's cursor.

A listing answers ``{"items": [...], "next_cursor": "..." | null}``, at most ``limit`` items
(1 to :data:`MAX_LIMIT`, default :data:`DEFAULT_LIMIT`); ``cursor`` is the previous page's
``next_cursor``, as given: an opaque encoding of the last item's sort key, so a page is cut
after that item even if items came or went meanwhile. Every problem is a 400 naming the
parameter; an unknown parameter too (a typo must not silently widen the answer).

>>> letters = Listing("letters", (int,))
>>> letters.page(iter("abc"), key=lambda x: (ord(x),), limit=2)
(['a', 'b'], 'WyJsZXR0ZXJzIiwgOThd')
>>> letters.decode('WyJsZXR0ZXJzIiwgOThd')
(98,)
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

from modelmedic.http.answers import bad_request

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
PAGING = frozenset({"limit", "cursor"})
"""The parameters of every listing."""

T = TypeVar("T")


def check_parameters(query: Any, filters: frozenset[str]) -> None:
    """A 400 for a parameter the listing does not take, listing those it does."""
    known = PAGING | filters
    unknown = sorted(set(query) - known)
    if unknown:
        raise bad_request(unknown[0], f"unknown query parameter; the parameters are {', '.join(sorted(known))}")


def limit_of(query: Any) -> int:
    raw = query.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise bad_request("limit", f"must be a whole number from 1 to {MAX_LIMIT}, got {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class Listing:
    """One listing's cursors: they name the listing (one given to another listing is refused, not
    misread) and hold the last item's sort key, of the types ``shape`` says."""

    name: str
    shape: tuple[type, ...]

    def encode(self, key: tuple) -> str:
        return base64.urlsafe_b64encode(json.dumps([self.name, *key]).encode()).decode()

    def decode(self, cursor: str) -> tuple:
        """The sort key ``cursor`` holds; a 400 for anything this listing did not give."""
        try:
            name, *key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
            if name != self.name or len(key) != len(self.shape) or not all(
                    type(k) is t for k, t in zip(key, self.shape, strict=True)):
                raise ValueError
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
            raise bad_request("cursor", f"not a cursor of the {self.name} listing: pass its next_cursor as "
                                        "given") from None
        return tuple(key)

    def cursor_of(self, query: Any) -> tuple | None:
        return self.decode(query["cursor"]) if "cursor" in query else None

    def page(self, ordered: Iterable[T], key: Callable[[T], tuple], limit: int) -> tuple[list[T], str | None]:
        """The first ``limit`` of ``ordered`` (filtered, in the listing's order, already after the cursor)
        and the cursor of the next page (None: this is the last)."""
        items = list(itertools.islice(ordered, limit + 1))
        return items[:limit], self.encode(key(items[limit - 1])) if len(items) > limit else None


def text_of(query: Any, name: str) -> str | None:
    """A filter naming something: absent is None, empty is a 400."""
    value = query.get(name)
    if value is not None and not value:
        raise bad_request(name, "empty: give a value, or leave the parameter out")
    return value


def time_of(query: Any, name: str) -> int | None:
    """A time filter: epoch milliseconds or an ISO 8601 time (UTC unless it says otherwise), as epoch ms."""
    value = text_of(query, name)
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise bad_request(name, f"not a time: {value!r}; give epoch milliseconds or ISO 8601 "
                                "(2026-01-10T02:00:00Z)") from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp() * 1000)

"""Who is calling: per-operator tokens, stored as SHA-256 hashes, with a ``read`` or ``operate`` role.

The credential names the person: the audit's actor is the operator whose token matched,
never a header the caller fills in. Two ways to present a token:

- ``Authorization: Bearer <token>``: the CLI and scripts; the only way to reach an
  ``operate`` endpoint.
- ``Authorization: Basic <name:token>``: what a browser sends after its login prompt, for
  the status UI and other GET endpoints only. A browser attaches remembered Basic
  credentials to any request to this host, including a form another site posts here; a
  form cannot set a Bearer header, so no action can be forged that way.

Every configured hash is compared (``hmac.compare_digest``, no early exit), so the time an
answer takes says nothing about which token, or how much of one, was right.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

from modelmedic.config import LEGACY_OPERATOR, HttpSettings, token_sha256

Role = Literal["read", "operate"]
RANK: dict[str, int] = {"read": 0, "operate": 1}


@dataclass(frozen=True)
class Operator:
    """An authenticated caller."""

    name: str
    role: Role

    def may(self, role: Role) -> bool:
        return RANK[self.role] >= RANK[role]


class Operators:
    """The configured operators, by token hash (``http.operators``, plus ``http.api_token`` as ``operator``)."""

    def __init__(self, settings: HttpSettings) -> None:
        self._entries: list[tuple[bytes, Operator]] = [
            (bytes.fromhex(o.token_sha256), Operator(o.name, o.role)) for o in settings.operators
        ]
        if settings.api_token is not None:
            legacy = token_sha256(settings.api_token.get_secret_value())
            self._entries.append((bytes.fromhex(legacy), Operator(LEGACY_OPERATOR, "operate")))

    def __bool__(self) -> bool:
        return bool(self._entries)

    def _match(self, token: str) -> Operator | None:
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for stored, operator in self._entries:  # every entry, always: constant work whatever matches
            if hmac.compare_digest(stored, digest):
                found = operator
        return found

    def identify(self, authorization: str, *, basic: bool) -> Operator | None:
        """The operator an ``Authorization`` header proves, or None. ``basic``: accept ``Basic name:token``
        too (GET endpoints only, see the module docstring); the name must be the token's operator's."""
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() == "bearer" and credential:
            return self._match(credential)
        if basic and scheme.lower() == "basic" and credential:
            try:
                name, sep, token = base64.b64decode(credential, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            operator = self._match(token) if sep else None
            return operator if operator is not None and hmac.compare_digest(operator.name.encode(), name.encode()) else None
        return None

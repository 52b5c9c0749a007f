"""How the HTTP endpoint answers: JSON bodies, and refusals that say what is wrong and which input.

Every refusal is ``{"error": "<what is wrong and what to do>", "field": "<the input at fault or null>"}``
(the API's, the UI's and the credential checks' alike), so a client reads one shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web


def refusal(status: type[web.HTTPException], message: str, field: str | None = None,
            headers: Mapping[str, str] | None = None) -> web.HTTPException:
    """An HTTP error whose body is ``{"error": message, "field": field}``."""
    return status(text=json.dumps({"error": message, "field": field}), content_type="application/json", headers=headers)


def bad_request(field: str, message: str) -> web.HTTPException:
    return refusal(web.HTTPBadRequest, f"{field}: {message}", field)


def as_json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")

"""The service's HTTP endpoint: probes and metrics, the status UI and the JSON API (v1).

aiohttp serves it on the service's own event loop, so the pages read live state without
locks or copies. It sees the service only through :class:`StatusSource`, a narrow interface
the composition root (``modelmedic.app``) implements: this package imports no plane.

Who may call what (:mod:`modelmedic.http.auth`): ``/metrics``, ``/healthz`` and ``/readyz``
answer anyone (probes and Prometheus); every other route needs an operator's credential,
``read`` for the UI and GET endpoints, ``operate`` for the actions. :data:`ROUTES` is the
whole table, and the OpenAPI document (``openapi.json``) is checked against it by the tests.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import CIMultiDict
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modelmedic.config import HttpSettings
from modelmedic.http.answers import refusal
from modelmedic.http.api import IncidentApi, openapi_document
from modelmedic.http.audit_api import AuditApi
from modelmedic.http.auth import Operator, Operators, Role
from modelmedic.http.quality_api import QualityApi
from modelmedic.http.silence_api import SilenceApi
from modelmedic.http.source import DecisionView, IncidentView, StatusSource
from modelmedic.http.ui import StatusPages

__all__ = ["HttpServer", "StatusSource", "IncidentView", "DecisionView", "ROUTES"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Guarded = Callable[[web.Request, Operator], Awaitable[web.StreamResponse]]

ROUTES: list[tuple[str, str, str, Role | None]] = [
    ("GET", "/metrics", "metrics", None),
    ("GET", "/healthz", "healthz", None),
    ("GET", "/readyz", "readyz", None),
    ("GET", "/", "pages.index", "read"),
    ("GET", "/status", "pages.index", "read"),
    ("GET", "/incidents/{id}", "pages.incident", "read"),
    ("GET", "/models/{model}", "pages.model", "read"),
    ("GET", "/api/v1/openapi.json", "openapi", "read"),
    ("GET", "/api/v1/incidents", "api.listing", "read"),
    ("GET", "/api/v1/incidents/{id}", "api.get", "read"),
    ("GET", "/api/v1/audit", "audit.listing", "read"),
    ("GET", "/api/v1/silences", "silences.listing", "read"),
    ("GET", "/api/v1/models/{model}/quality", "quality.get", "read"),
    ("POST", "/api/v1/silences", "silences.create", "operate"),
    ("DELETE", "/api/v1/silences/{id}", "silences.remove", "operate"),
    ("GET", "/silences", "pages.silences", "read"),
    ("POST", "/api/v1/incidents/{id}/ack", "api.acknowledge", "operate"),
    ("POST", "/api/v1/incidents/{id}/resolve", "api.resolve", "operate"),
    ("POST", "/api/v1/incidents/{id}/silence", "api.silence", "operate"),
    ("POST", "/api/v1/incidents/{id}/run", "api.run", "operate"),
]
"""(method, path, handler attribute of :class:`HttpServer`, least role; None: no credential)."""


@web.middleware
async def api_refusals_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The router's own refusals under ``/api/`` (no such path: 404, a method the path does not
    take: 405, with its ``Allow``) in the API's shape, like every other refusal there."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.content_type == "application/json" or exc.status < 400:
            raise
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
        return web.json_response({"error": f"{request.method} {request.path}: {exc.reason.lower()}; the routes "
                                           "are listed in /api/v1/openapi.json", "field": None},
                                 status=exc.status, headers=allow)


class HttpServer:
    """Binds ``settings.host:settings.port`` (port 0: a free one, see :attr:`port`)."""

    def __init__(self, settings: HttpSettings, service: StatusSource) -> None:
        self.settings = settings
        self.service = service
        self.port = settings.port
        self.operators = Operators(settings)
        self.started = time.time()
        self.api = IncidentApi(service)
        self.audit = AuditApi(service)
        self.silences = SilenceApi(service)
        self.quality = QualityApi(service)
        self.pages = StatusPages(service, self.started)
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[api_refusals_as_json])
        for method, path, name, role in ROUTES:
            target: object = self
            for part in name.split("."):
                target = getattr(target, part)
            app.router.add_route(method, path, self._guarded(target, role, basic=method == "GET"))  # type: ignore[arg-type]
        for method, path, handler in self.service.webhooks():  # (signed by their sender: no operator credential)
            app.router.add_route(method, path, handler)
        return app

    def _guarded(self, handler: Handler | Guarded, role: Role | None, *, basic: bool) -> Handler:
        """``handler`` behind a credential of at least ``role``, called with the operator (None: open to anyone)."""
        if role is None:
            return handler  # type: ignore[return-value]

        async def guarded(request: web.Request) -> web.StreamResponse:
            # One header per scheme (browsers do not split one header's list), Basic first: what a browser answers.
            challenge = CIMultiDict([("WWW-Authenticate", f'{scheme} realm="modelmedic"')
                                     for scheme in (("Basic", "Bearer") if basic else ("Bearer",))])
            if not self.operators:
                raise refusal(web.HTTPUnauthorized, "no operator is configured: add one to http.operators "
                              "(modelmedic operator token NAME prints the entry)", headers=challenge)
            operator = self.operators.identify(request.headers.get("Authorization", ""), basic=basic)
            if operator is None:
                how = "Authorization: Bearer <token>" + (" (or Basic with your name and token)" if basic else "")
                raise refusal(web.HTTPUnauthorized, f"missing or unknown token: send {how}",
                              headers=challenge)
            if not operator.may(role):
                raise refusal(web.HTTPForbidden, f"{operator.name} has the {operator.role} role; "
                              f"{request.method} {request.path} needs {role}")
            return await handler(request, operator)  # type: ignore[call-arg]

        return guarded

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - the bound port for port=0

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, request: web.Request) -> web.Response:
        """Liveness: the process and its loop answer."""
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        """Readiness: both planes have joined their consumer groups and loaded their state."""
        ready = self.service.ready()
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    async def openapi(self, request: web.Request, operator: Operator) -> web.Response:
        return web.Response(text=openapi_document(), content_type="application/json")

    async def status(self, request: web.Request | None) -> web.Response:
        """The front page of the status UI (kept as a method: callers render it without a request)."""
        return await self.pages.index(request, None)

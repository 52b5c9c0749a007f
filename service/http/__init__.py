"""The service's HTTP endpoint: ``/metrics``, ``/healthz``, ``/readyz``, ``/status`` and a JSON API.

aiohttp serves it on the service's own event loop, so the pages read live state without
locks or copies. It sees the service only through :class:`StatusSource`, a narrow interface
the composition root (``modelmedic.app``) implements: this module imports no plane.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modelmedic.config import HttpSettings
from modelmedic.errors import ModelmedicError



class IncidentView(Protocol):
    """What the status page shows of an incident."""

    id: str
    anomaly_class: str
    series: str
    summary: str
    state: str
    opened_at_ms: int


class DecisionView(Protocol):
    """What the status page shows of a recent anomaly decision."""

    window_end: int
    state: str
    summary: str


class StatusSource(Protocol):
    """Everything the HTTP endpoint reads from, or asks of, the running service."""

    def ready(self) -> bool:
        """Both planes have joined their consumer groups and loaded their state."""

    def incidents(self) -> Sequence[IncidentView]:
        """Every incident this replica knows, open or not."""

    def open_incidents(self) -> Sequence[IncidentView]: ...

    def recent_decisions(self, n: int) -> Sequence[DecisionView]:
        """The last ``n`` anomaly decisions published, oldest first."""

    def counters(self) -> Mapping[str, int]:
        """Headline figures for the status page: partitions, series, events, incidents, and
        ``insufficient_data_<family>``: series not judged yet for too little history."""

    async def acknowledge(self, incident_id: str, by: str) -> Any: ...

    async def resolve(self, incident_id: str, by: str) -> Any: ...

    async def silence(self, incident_id: str, minutes: float, by: str) -> Any: ...

    async def trigger(self, incident_id: str, playbook: str, params: Mapping[str, Any], by: str) -> Any: ...


class HttpServer:
    """Binds ``settings.host:settings.port`` (port 0: a free one, see :attr:`port`)."""

    def __init__(self, settings: HttpSettings, service: StatusSource) -> None:
        self.settings = settings
        self.service = service
        self.port = settings.port
        self._runner: web.AppRunner | None = None
        self.started = time.time()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/status", self.status)
        app.router.add_get("/", self.status)
        app.router.add_get("/api/incidents", self.incidents)
        app.router.add_post("/api/incidents/{id}/ack", self.acknowledge)
        app.router.add_post("/api/incidents/{id}/resolve", self.resolve)
        app.router.add_post("/api/incidents/{id}/silence", self.silence)
        app.router.add_post("/api/incidents/{id}/run", self.run_playbook)
        return app

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

    async def incidents(self, request: web.Request) -> web.Response:
        state = request.query.get("state")
        items = [i for i in self.service.incidents() if state is None or i.state == state]
        items.sort(key=lambda i: i.opened_at_ms, reverse=True)
        return web.Response(body=msgspec.json.encode(items[:500]), content_type="application/json")

    # -- the operator API (bearer token) ---------------------------------------------------

    def _operator(self, request: web.Request) -> str:
        """Who is calling; raises 401/403 unless the bearer token matches the configured one."""
        token = self.settings.api_token
        if token is None:
            raise web.HTTPForbidden(text="the operator API is disabled: set http.api_token (MODELMEDIC_HTTP__API_TOKEN)")
        if request.headers.get("Authorization", "") != f"Bearer {token.get_secret_value()}":
            raise web.HTTPUnauthorized(text="missing or wrong bearer token (Authorization: Bearer <http.api_token>)")
        return request.headers.get("X-Operator", "operator")

    async def _body(self, request: web.Request) -> dict:
        if not request.can_read_body:
            return {}
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="the body must be a JSON object") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="the body must be a JSON object")
        return body

    async def _act(self, request: web.Request, action) -> web.Response:
        by = self._operator(request)
        body = await self._body(request)
        try:
            result = await action(request.match_info["id"], body, by)
        except KeyError as exc:
            raise web.HTTPNotFound(text=str(exc.args[0])) from None
        except (ValueError, ModelmedicError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        return web.Response(body=msgspec.json.encode(result), content_type="application/json")

    async def acknowledge(self, request: web.Request) -> web.Response:
        return await self._act(request, lambda i, body, by: self.service.acknowledge(i, by))

    async def resolve(self, request: web.Request) -> web.Response:
        return await self._act(request, lambda i, body, by: self.service.resolve(i, by))

    async def silence(self, request: web.Request) -> web.Response:
        return await self._act(request, lambda i, body, by: self.service.silence(i, float(body.get("minutes", 60)), by))

    async def run_playbook(self, request: web.Request) -> web.Response:
        def run(i: str, body: dict, by: str):
            if "playbook" not in body:
                raise ValueError('name the playbook: {"playbook": "scale-out", "params": {...}}')
            return self.service.trigger(i, body["playbook"], body.get("params") or {}, by)
        return await self._act(request, run)

    async def status(self, request: web.Request) -> web.Response:
        """A plain status page: what is open now, what fired lately, how the planes are doing."""
        counts = self.service.counters()
        open_rows = "".join(
            f"<tr><td>{html.escape(i.id)}</td><td>{html.escape(i.anomaly_class)}</td>"
            f"<td>{html.escape(i.series)}</td><td>{html.escape(i.summary)}</td>"
            f"<td>{time.strftime('%H:%M:%S', time.gmtime(i.opened_at_ms / 1000))}</td></tr>"
            for i in self.service.open_incidents()
        ) or "<tr><td colspan=5>none: all models healthy</td></tr>"
        recent = "".join(
            f"<li>{time.strftime('%H:%M:%S', time.gmtime(a.window_end / 1000))} {html.escape(a.state)} "
            f"{html.escape(a.summary)}</li>" for a in reversed(self.service.recent_decisions(20))
        ) or "<li>none yet</li>"
        body = f"""<!doctype html><html><head><meta charset=utf-8><title>modelmedic status</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}</style>
</head><body><h1>modelmedic</h1>
<p>up {int(time.time() - self.started)} s &middot; {counts["partitions"]} partition(s) &middot; {counts["series"]} series &middot;
{counts["events"]} events processed &middot; {counts["incidents"]} incident(s) known &middot;
too little history to judge yet: {", ".join(f"{counts.get('insufficient_data_' + f, 0)} ({f})" for f in ("latency", "errors", "throughput"))}</p>
<h2>Open incidents</h2><table><tr><th>id</th><th>class</th><th>series</th><th>summary</th><th>opened (UTC)</th></tr>{open_rows}</table>
<h2>Recent anomaly decisions</h2><ul>{recent}</ul>
<p><a href="/metrics">metrics</a> &middot; <a href="/api/incidents">incidents (JSON)</a></p></body></html>"""
        return web.Response(text=body, content_type="text/html")

"""The service's HTTP endpoint: ``/metrics``, ``/healthz``, ``/readyz``, ``/status`` and a JSON API.

aiohttp (already required by faust-streaming) serves it on the service's own event loop,
so the pages read live state without locks or copies.
"""

from __future__ import annotations

import html
import time
from typing import TYPE_CHECKING

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modelmedic.config import HttpSettings

if TYPE_CHECKING:
    from modelmedic.service import Service


class HttpServer:
    """Binds ``settings.host:settings.port`` (port 0: a free one, see :attr:`port`)."""

    def __init__(self, settings: HttpSettings, service: "Service") -> None:
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
        ready = self.service.detection.ready.is_set() and self.service.response.ready.is_set()
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    async def incidents(self, request: web.Request) -> web.Response:
        state = request.query.get("state")
        items = [i for i in self.service.response.book.by_id.values() if state is None or i.state == state]
        items.sort(key=lambda i: i.opened_at_ms, reverse=True)
        return web.Response(body=msgspec.json.encode(items[:500]), content_type="application/json")

    async def status(self, request: web.Request) -> web.Response:
        """A plain status page: what is open now, what fired lately, how the planes are doing."""
        det, resp = self.service.detection, self.service.response
        open_rows = "".join(
            f"<tr><td>{html.escape(i.id)}</td><td>{html.escape(i.anomaly_class)}</td>"
            f"<td>{html.escape(i.series)}</td><td>{html.escape(i.summary)}</td>"
            f"<td>{time.strftime('%H:%M:%S', time.gmtime(i.opened_at_ms / 1000))}</td></tr>"
            for i in resp.book.open_incidents()
        ) or "<tr><td colspan=5>none: all models healthy</td></tr>"
        recent = "".join(
            f"<li>{time.strftime('%H:%M:%S', time.gmtime(a.window_end / 1000))} {html.escape(a.state)} "
            f"{html.escape(a.summary)}</li>" for a in reversed(det.published[-20:])
        ) or "<li>none yet</li>"
        series = sum(len(p.windows.slot_of) for p in det.parts.values())
        body = f"""<!doctype html><html><head><meta charset=utf-8><title>modelmedic status</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}</style>
</head><body><h1>modelmedic</h1>
<p>up {int(time.time() - self.started)} s &middot; {len(det.parts)} partition(s) &middot; {series} series &middot;
{det.processed} events processed &middot; {len(resp.book.by_id)} incident(s) known</p>
<h2>Open incidents</h2><table><tr><th>id</th><th>class</th><th>series</th><th>summary</th><th>opened (UTC)</th></tr>{open_rows}</table>
<h2>Recent anomaly decisions</h2><ul>{recent}</ul>
<p><a href="/metrics">metrics</a> &middot; <a href="/api/incidents">incidents (JSON)</a></p></body></html>"""
        return web.Response(text=body, content_type="text/html")

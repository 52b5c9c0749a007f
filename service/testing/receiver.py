"""A local stand-in for PagerDuty, Alertmanager, Slack and a generic webhook, strict about their contracts.

No outside network exists where modelmedic is tested, so the alert sinks are exercised
against this receiver. It answers like the real services: a PagerDuty event that breaks
the Events API v2 contract gets a 400 with the errors, a Slack message without text or
with malformed blocks gets ``no_text`` / ``invalid_blocks``. A lenient fake would let a
broken payload pass every test and fail on the first real page.

Paths (relative to :attr:`AlertReceiver.base_url`):

- ``/v2/enqueue``: PagerDuty Events API v2 (202 on success)
- ``/api/v2/alerts``: Alertmanager's alerts API (200)
- ``/slack...``: Slack incoming webhooks (200 ``ok``)
- ``/webhook...``: any JSON object (200)

Every accepted request is recorded (:class:`Received`); tests await them with
:meth:`AlertReceiver.wait_for` and make the next requests fail with
:meth:`AlertReceiver.fail_next`. What a person would have been paged with is told apart
from what arrived: :meth:`AlertReceiver.pages_to_humans` folds repeats the way each real
service does. :meth:`AlertReceiver.before_answer` runs a hook between taking a request
and answering it: the window where a sender can crash after the page was taken. The HTTP
server runs in its own thread, so the same receiver serves async tests (whatever their
event loop) and plain scripts (``python load/receiver.py`` runs one and prints every
request it gets).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from modelmedic.testing.contracts import (
    Invalid, json_object, validate_alertmanager, validate_pagerduty, validate_slack,
)

log = logging.getLogger(__name__)

PAGERDUTY_PATH = "/v2/enqueue"
ALERTMANAGER_PATH = "/api/v2/alerts"
SLACK_PATH = "/slack"
WEBHOOK_PATH = "/webhook"


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the receiver saw and answered it."""

    kind: str
    """``pagerduty``, ``alertmanager``, ``slack``, ``webhook`` or ``unknown`` (by path)."""
    path: str
    headers: dict[str, str]
    """Header names in lower case."""
    json: Any
    received_at: float
    """Wall clock, epoch seconds."""
    status: int
    """The status the receiver answered with."""
    reason: str | None = None
    """Why it was refused, when it was."""

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class Page:
    """A page a person got: the first accepted message of its identity, as the real service folds repeats."""

    kind: str
    identity: str
    """What the service folds repeats on: the PagerDuty ``dedup_key``, the Alertmanager label
    set, the webhook's ``Idempotency-Key``; for Slack, which folds nothing, the arrival index."""
    received: Received


# --- what reached a person --------------------------------------------------------------------


def _pagerduty_pages(deliveries: list[Received]) -> list[Page]:
    """A trigger opens a PagerDuty incident unless one is open under its ``dedup_key`` (then it
    only updates it); a resolve closes it, and a later trigger opens a new one."""
    open_keys: set[str] = set()
    pages: list[Page] = []
    for n, r in enumerate(deliveries):
        key, action = r.json.get("dedup_key") or f"(generated {n})", r.json["event_action"]
        if action == "trigger" and key not in open_keys:
            open_keys.add(key)
            pages.append(Page("pagerduty", key, r))
        elif action == "resolve":
            open_keys.discard(key)
    return pages


def _alertmanager_pages(deliveries: list[Received]) -> list[Page]:
    """An alert notifies when its label set starts firing; a re-post while it fires is the
    same alert, and one whose ``endsAt`` has passed resolves it. (The ``repeat_interval``
    reminders of a long-firing alert are routing policy, not modelled.)"""
    firing: set[str] = set()
    pages: list[Page] = []
    for r in deliveries:
        for alert in r.json:
            identity = json.dumps(alert["labels"], sort_keys=True)
            if "endsAt" in alert and datetime.fromisoformat(alert["endsAt"]).timestamp() <= r.received_at:
                firing.discard(identity)
            elif identity not in firing:
                firing.add(identity)
                pages.append(Page("alertmanager", identity, r))
    return pages


def _webhook_pages(deliveries: list[Received]) -> list[Page]:
    """A receiver honouring ``Idempotency-Key`` acts once per key; without the header, on every delivery."""
    seen: set[str] = set()
    pages: list[Page] = []
    for n, r in enumerate(deliveries):
        key = r.headers.get("idempotency-key") or f"(none {n})"
        if key not in seen:
            seen.add(key)
            pages.append(Page("webhook", key, r))
    return pages


_PAGES: dict[str, Callable[[list[Received]], list[Page]]] = {
    "pagerduty": _pagerduty_pages, "alertmanager": _alertmanager_pages, "webhook": _webhook_pages,
    "slack": lambda deliveries: [Page("slack", str(n), r) for n, r in enumerate(deliveries)],
}


# --- the server -----------------------------------------------------------------------------


def _kind(path: str) -> str:
    if path == PAGERDUTY_PATH:
        return "pagerduty"
    if path == ALERTMANAGER_PATH:
        return "alertmanager"
    if path.startswith(SLACK_PATH):
        return "slack"
    if path.startswith(WEBHOOK_PATH):
        return "webhook"
    return "unknown"


def _answer(kind: str, body: Any, reason: str | None) -> tuple[int, str, bytes]:
    """Status, content type and body, as the real service would answer."""
    if kind == "unknown":
        return 404, "text/plain", b"no_service"
    if kind == "pagerduty":
        if reason is not None:
            doc = {"status": "invalid event", "message": "Event object is invalid", "errors": [reason]}
            return 400, "application/json", json.dumps(doc).encode()
        doc = {"status": "success", "message": "Event processed", "dedup_key": body.get("dedup_key", "")}
        return 202, "application/json", json.dumps(doc).encode()
    if reason is not None:
        return 400, "text/plain", reason.encode()
    if kind == "alertmanager":
        return 200, "application/json", b""
    if kind == "slack":
        return 200, "text/html", b"ok"
    return 200, "application/json", b'{"status": "ok"}'


def _validate(kind: str, raw: bytes) -> tuple[Any, str | None]:
    """The decoded body and the reason it is refused (None when accepted)."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        return None, f"invalid_payload: body is not JSON ({exc})"
    try:
        if kind == "pagerduty":
            validate_pagerduty(body)
        elif kind == "alertmanager":
            validate_alertmanager(body)
        elif kind == "slack":
            validate_slack(body)
        elif kind == "webhook":
            json_object(body, "the webhook body")
    except Invalid as exc:
        return body, str(exc)
    return body, None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects
    timeout = 10  # idle keep-alive connections do not pin a thread forever
    server: "_Server"

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        kind = _kind(self.path)
        receiver = self.server.receiver
        injected = receiver._take_failure()
        # Each request is recorded before it is answered: a sender that awaited its answer and then asks
        # the receiver what arrived must find it (recorded after the answer, a test under load read 3 of
        # its 4 Alertmanager posts).
        if injected is not None:
            status, retry_after = injected
            extra = {"Retry-After": retry_after} if retry_after is not None else {}
            receiver._record(Received(kind, self.path, headers, None, time.time(), status, "injected failure"))
            self._reply(status, "text/plain", b"injected failure", extra)
            return
        body, reason = _validate(kind, raw) if kind != "unknown" else (None, "no such path")
        status, content_type, payload = _answer(kind, body, reason)
        received = Received(kind, self.path, headers, body, time.time(), status, reason)
        hook = receiver._before_answer
        if hook is not None and received.accepted:
            hook(received)
        receiver._record(received)
        try:
            self._reply(status, content_type, payload, {})
        except ConnectionError:  # the sender is gone (killed by the hook): the request was taken all the same
            self.close_connection = True

    def _reply(self, status: int, content_type: str, payload: bytes, extra: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        log.debug("receiver: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, receiver: "AlertReceiver", host: str, port: int) -> None:
        self.receiver = receiver
        super().__init__((host, port), _Handler)


class AlertReceiver:
    """A strict PagerDuty / Alertmanager / Slack / webhook receiver on 127.0.0.1, recording what it accepts.

    ``with AlertReceiver() as r:`` starts and stops it; so do :meth:`start` / :meth:`stop`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._requests: list[Received] = []
        self._failures: list[tuple[int, str | None]] = []
        self._wakeups: set[Callable[[], None]] = set()
        self._before_answer: Callable[[Received], None] | None = None

    # lifecycle

    def start(self) -> "AlertReceiver":
        if self._server is not None:
            raise RuntimeError("the receiver is already running")
        self._server = _Server(self, *self._address)
        # A short poll interval keeps stop() fast: shutdown() waits for the serve loop's next poll.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="alert-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> "AlertReceiver":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the receiver is not running: call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def pagerduty_url(self) -> str:
        return self.base_url + PAGERDUTY_PATH

    @property
    def alertmanager_url(self) -> str:
        """The base URL an Alertmanager sink is configured with (it posts to ``/api/v2/alerts``)."""
        return self.base_url

    @property
    def slack_url(self) -> str:
        return self.base_url + SLACK_PATH

    @property
    def webhook_url(self) -> str:
        return self.base_url + WEBHOOK_PATH

    # what was received

    @property
    def requests(self) -> list[Received]:
        """Every request so far, refused ones included, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.requests if r.accepted]

    def deliveries(self, kind: str) -> list[Received]:
        """Every accepted request of ``kind``, repeats included: what went over the wire."""
        return [r for r in self.accepted if r.kind == kind]

    def pages_to_humans(self, kind: str) -> list[Page]:
        """What a person got from ``kind``: its accepted requests with repeats folded as the real
        service folds them. PagerDuty: one incident per ``dedup_key`` while it is open (a
        resolve ends it). Alertmanager: one notification per label set while it fires.
        Webhook: one per ``Idempotency-Key``. Slack folds nothing: every message is seen."""
        return _PAGES[kind](self.deliveries(kind))

    def before_answer(self, hook: Callable[[Received], None] | None) -> None:
        """Run ``hook`` (None: none) on every valid request, in the server's thread, once it is
        taken and before it is answered. The request counts as accepted whatever the hook does:
        it may block (the sender waits, as on a slow destination) or kill the sender (the
        destination took the page and the sender never learnt it). It is recorded (and
        :meth:`wait_for` sees it) after the answer, as without a hook."""
        self._before_answer = hook

    def fail_next(self, n: int, status: int = 503, *, retry_after: float | None = None) -> None:
        """Answer the next ``n`` requests with ``status`` (and ``Retry-After`` if given), whatever they hold."""
        header = None if retry_after is None else f"{retry_after:g}"
        with self._lock:
            self._failures.extend([(status, header)] * n)

    async def wait_for(
        self,
        predicate: Callable[[Received], bool] | None = None,
        *,
        kind: str | None = None,
        count: int = 1,
        timeout: float = 5.0,
    ) -> list[Received]:
        """Wait until ``count`` accepted requests (of ``kind``, matching ``predicate``) have arrived; return them all.

        Raises :class:`TimeoutError` listing what did arrive, so a failing test says why.
        """
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()

        def wake() -> None:
            loop.call_soon_threadsafe(changed.set)

        with self._lock:
            self._wakeups.add(wake)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed.clear()
                    matches = [
                        r for r in self.accepted
                        if (kind is None or r.kind == kind) and (predicate is None or predicate(r))
                    ]
                    if len(matches) >= count:
                        return matches
                    await changed.wait()
        except TimeoutError:
            seen = [(r.kind, r.path, r.status, r.reason) for r in self.requests]
            raise TimeoutError(
                f"expected {count} accepted {kind or 'any'} request(s) matching within {timeout:g}s; received {seen}"
            ) from None
        finally:
            with self._lock:
                self._wakeups.discard(wake)

    # called from the server's threads

    def _take_failure(self) -> tuple[int, str | None] | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def _record(self, received: Received) -> None:
        with self._lock:
            self._requests.append(received)
            wakeups = list(self._wakeups)
        for wake in wakeups:
            wake()

"""Page delivery, per (incident, sink): nothing owed is lost, no sink waits on another.

Every page an incident owes a sink is a :class:`~modelmedic.response.incidents.Notice` in
the incident record (saved before it is sent, removed after that sink accepted it). The
:class:`Courier` runs one task per (incident, sink) with pages owed: it sends that sink's
pages in order (a firing before its resolve), and after a failure backs off with
:class:`~modelmedic.retry.RetryPolicy` and leaves the rest to :meth:`Courier.retry_due`,
which the response plane calls on every tick. A hanging or failing sink therefore holds
up only its own pages; every other sink, and every other incident, goes on. A page is
given up only after the policy's ``delivery.give_up_after_s``.

Delivery is at least once on the wire: a sink can take a page and the process die before
the incident record saying so is saved (or the answer times out), and the page, still
owed, is sent again. Where it must be once, for the person paged, the sink folds the
repeat: every send of one notice renders the same identity (PagerDuty's ``dedup_key``,
Alertmanager's label set, the webhook's ``Idempotency-Key``: see
:mod:`modelmedic.alerting`). A sink that cannot fold one (Slack's incoming webhook,
``Sink.idempotent`` false) gets the notice saved as ``sending`` just before its first
try; every later try of it, in this process or after a restart, is sent anyway (a page
is never dropped for being uncertain) and marked :attr:`~modelmedic.alerting.Alert.maybe_repeat`,
so its reader sees it is the same alert, not a new one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from modelmedic.alerting import Alert, Alerter, Sink
from modelmedic.metrics import ALERTS
from modelmedic.response.incidents import Incident, Notice
from modelmedic.response.policy import Delivery
from modelmedic.retry import RetryPolicy

log = logging.getLogger(__name__)

Render = Callable[[Incident, Notice], Alert]
Save = Callable[[Incident], Awaitable[None]]
Audit = Callable[[Incident, str, dict], Awaitable[None]]


class Courier:
    """Sends the pages incidents owe, each sink on its own, retrying with backoff."""

    def __init__(
        self,
        alerter: Alerter,
        delivery: Delivery,
        *,
        render: Render,
        save: Save,
        audit: Audit,
        clock: Callable[[], int],
        owns: Callable[[Incident], bool] = lambda incident: True,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.alerter = alerter
        self.delivery = delivery
        self._render, self._save, self._audit, self._clock, self._owns = render, save, audit, clock, owns
        self._retry = retry or RetryPolicy(base_delay_s=delivery.retry_base_s, max_delay_s=delivery.retry_max_s)
        self._sinks: dict[str, Sink] = {s.name: s for s in alerter.sinks}
        self._limits = {name: asyncio.Semaphore(delivery.per_sink_concurrency) for name in self._sinks}
        self._owing: dict[str, Incident] = {}
        """Incidents with pages owed, by id: what :meth:`retry_due` looks at."""
        self._running: dict[tuple[str, str], asyncio.Task] = {}

    @property
    def sink_names(self) -> list[str]:
        return list(self._sinks)

    def dispatch(self, incident: Incident) -> None:
        """Start delivering what ``incident`` owes, on every sink with a page due and no task yet."""
        if not incident.owed:
            self._owing.pop(incident.id, None)
            return
        self._owing[incident.id] = incident
        if not self._owns(incident):
            return
        now = self._clock()
        for sink in list(incident.owed):
            notice = incident.next_notice(sink)
            key = (incident.id, sink)
            if notice is not None and notice.next_try_ms <= now and key not in self._running:
                task = asyncio.create_task(self._deliver(incident, sink), name=f"page {incident.id} -> {sink}")
                self._running[key] = task
                task.add_done_callback(lambda _, key=key: self._running.pop(key, None))

    def retry_due(self) -> None:
        """Retry every page whose backoff has passed (the plane calls this on each tick)."""
        for incident in list(self._owing.values()):
            self.dispatch(incident)

    def forget(self, incident_id: str) -> None:
        """Another replica owns ``incident_id`` now: it delivers what it owes."""
        self._owing.pop(incident_id, None)

    async def idle(self) -> None:
        """Wait for the deliveries in flight (tests; shutdown)."""
        while self._running:
            await asyncio.wait(list(self._running.values()))

    async def aclose(self, timeout_s: float) -> None:
        """Give the deliveries in flight ``timeout_s`` to finish, then cut them off: what they
        did not deliver is still owed in the incident record and is sent after the restart."""
        tasks = list(self._running.values())
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def _deliver(self, incident: Incident, sink: str) -> None:
        """Send ``sink`` the pages ``incident`` owes it, in order, until one fails or none is due."""
        while (notice := incident.next_notice(sink)) is not None and notice.next_try_ms <= self._clock():
            if sink not in self._sinks or self._expired(notice):
                await self._give_up(incident, sink, notice)
                break
            async with self._limits[sink]:
                alert = self._render(incident, notice)
                if not self._sinks[sink].idempotent:
                    alert = await self._sending(incident, sink, notice, alert)
                result = await self.alerter.send_to(self._sinks[sink], alert)
            if result.ok:
                incident.delivered(sink, notice)
                await self._save(incident)
                log.warning("incident %s: %s page (level %d) delivered to %s", incident.id, notice.status, notice.level,
                            sink, extra={"model": incident.model, "incident_id": incident.id})
                continue
            delay = self._retry.backoff(notice.tries)
            incident.failed(sink, notice, result.error or result.result, self._clock() + int(delay * 1000))
            await self._save(incident)
            if incident.next_notice(sink) is notice:  # (else a newer page replaced it while it was in flight)
                log.warning("incident %s: %s page not taken by %s (try %d); retrying in %.1fs",
                            incident.id, notice.status, sink, notice.tries, delay, extra={"incident_id": incident.id})
                break
        if not incident.owed and self._owing.get(incident.id) is incident:
            # (only this object's entry: after a take-over the book holds a new object for the
            # id, whose pages a retry must still find)
            self._owing.pop(incident.id, None)

    async def _sending(self, incident: Incident, sink: str, notice: Notice, alert: Alert) -> Alert:
        """Before a try on a sink that cannot fold a repeat: on the first, save the notice as
        ``sending`` (so a restart knows it may have arrived); on any later one, mark the alert
        as a possible repeat."""
        if notice.sending:
            log.warning("incident %s: re-sending the %s page (level %d) to %s, which cannot drop a repeat: "
                        "an earlier try got no answer, the message says it may repeat", incident.id, notice.status,
                        notice.level, sink, extra={"incident_id": incident.id})
            return alert.model_copy(update={"maybe_repeat": True})
        notice.sending = True
        await self._save(incident)
        return alert

    def _expired(self, notice: Notice) -> bool:
        return self._clock() - notice.owed_since_ms >= self.delivery.give_up_after_s * 1000

    async def _give_up(self, incident: Incident, sink: str, notice: Notice) -> None:
        """Drop what ``sink`` owes: its page expired, or the sink is no longer configured."""
        why = (f"sink {sink} is no longer configured" if sink not in self._sinks else
               f"not taken within delivery.give_up_after_s={self.delivery.give_up_after_s:g}s "
               f"after {notice.tries} tries (last: {notice.last_error})")
        dropped = incident.give_up(sink)
        ALERTS.labels(sink=sink, result="expired").inc(len(dropped))
        log.error("incident %s: giving up the %s page(s) owed to %s: %s", incident.id,
                  "+".join(n.status for n in dropped), sink, why, extra={"incident_id": incident.id})
        await self._save(incident)
        await self._audit(incident, "page-expired", {"sink": sink, "pages": [n.status for n in dropped], "reason": why})

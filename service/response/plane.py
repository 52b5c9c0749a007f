"""The response plane: anomalies in; pages, remediations, verification and escalation out.

Low volume, high consequence. Every incident lives in a compacted Kafka topic keyed by
its id, and every step is written there *before* its side effect and again after:

1. a page owed is written into the incident per sink before it is sent and removed once
   that sink took it (:mod:`modelmedic.response.delivery`): a sink that is down or hangs
   is retried with backoff on its own, the firing always reaches it before the resolve, a
   crash re-sends a page at most once more, under the same identity, which PagerDuty,
   Alertmanager and webhooks fold into the page already sent (Slack cannot: the repeat
   says it may be one);
2. a playbook run is written as an attempt with status ``running`` and a deterministic
   idempotency key before it runs; after a crash the same attempt is re-run with the
   same key, and the playbook recognises its own earlier action (an annotation on the
   Deployment) instead of acting twice.

After acting, the incident *verifies*: the detection plane keeps judging the same
series, and a ``recovered`` record resolves the incident. If the verification window
passes first, the next playbook of the rule runs, and when none is left the incident
escalates: a louder page at the next level, saying what was tried and how it went.
Every decision is also written to the audit topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec
from aiokafka import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.partitioner import DefaultPartitioner

from modelmedic import metrics
from modelmedic.alerting import Alerter
from modelmedic.config import Settings
from modelmedic.events import Anomaly
from modelmedic.response.guards import Guards
from modelmedic.response.storms import Firing, StormWatch
from modelmedic.response.storm_incidents import StormHandling
from modelmedic.response.silences import Silence, SilenceBook
from modelmedic.response.silences import follow as follow_silences
from modelmedic.response.delivery import Courier
from modelmedic.response.incidents import Incident, IncidentBook, Notice, credit_remediation
from modelmedic.response.intake import Intake
from modelmedic.response.operators import OperatorActions
from modelmedic.response.remediation import Remediation
from modelmedic.response.pages import next_step, page_labels, page_links, registry_owners, remediation_block
from modelmedic.logs import redact
from modelmedic.kafka import ConsumerFactory, ProducerFactory, ensure_topics, read_compacted
from modelmedic.kafka import consumer as make_consumer
from modelmedic.kafka import producer as make_producer
from modelmedic.response.policy import EscalationLevel, Policy, Rule
from modelmedic.remediations import PlaybookRegistry
from modelmedic.alerting import Alert, AlertmanagerSink
from modelmedic.retry import RetryPolicy

log = logging.getLogger("modelmedic.response.plane")

TICK_S = 0.5
"""How often verification deadlines and timed escalations are checked."""
AM_REFRESH_S = 60
"""How often open incidents are re-posted to Alertmanager (its resolve_timeout is 5 min)."""
HEARTBEAT_FLOOR_MS = 1000
"""The response plane's group heartbeats at least this far apart (``kafka.heartbeat_interval_ms`` when
longer). A rebalance waits for every member to notice it at its next heartbeat; meanwhile those that
did act on no incident (``_owns``), so a page or escalation of a moving partition waits up to this long
once per rebalance. The detection plane's 300 ms is about how soon a joining replica takes backlog; at
300 ms here too the two groups' heartbeats were ~40% of an idle replica's CPU (docs/benchmarks.md)."""


def now_ms() -> int:
    return int(time.time() * 1000)


class ResponsePlane(StormHandling, OperatorActions, Remediation):
    """Consumes anomalies, runs the incident lifecycle, delivers pages, drives playbooks."""

    def __init__(
        self,
        settings: Settings,
        alerter: Alerter,
        *,
        policy: Policy | None = None,
        playbooks: PlaybookRegistry | None = None,
        k8s: Any = None,
        registry: Any = None,
        group_id: str | None = None,
        clock=now_ms,
        redelivery: RetryPolicy | None = None,
        consumer_factory: ConsumerFactory = make_consumer,
        producer_factory: ProducerFactory = make_producer,
    ) -> None:
        self.settings = settings
        self._consumer_factory, self._producer_factory = consumer_factory, producer_factory
        """Build the Kafka clients in :meth:`run`: modelmedic.kafka's, or a test's fakes."""
        self.alerter = alerter
        self.policy = policy or Policy()
        self.playbooks = playbooks or PlaybookRegistry()
        self.k8s = k8s
        self.registry = registry
        self.clock = clock
        self.group_id = group_id or f"{settings.kafka.group_id}-response"
        self.book = IncidentBook(hold_down_ms=self._hold_down_ms)
        self.guards = Guards(self.policy.guard_rails)
        self.storms = StormWatch(self.policy.guard_rails)
        self.dry_run = settings.dry_run or self.policy.guard_rails.dry_run
        self.silences = SilenceBook()
        """Silences, maintenance windows, remediation pauses: all of them, read from their topic."""
        self.ready = asyncio.Event()
        self.owned: set[int] | None = None
        """Partitions of the anomalies topic this replica owns (None: all, before Kafka says)."""
        self._partitions: list[int] = []
        self._partitioner = DefaultPartitioner()
        self._producer = None
        self._tasks: set[asyncio.Task] = set()
        self._lock = asyncio.Lock()
        self._am_refreshed: dict[str, int] = {}
        self.intake = Intake(settings.kafka)
        """Decodes what the plane consumes; dead-letters what it cannot (issue 17)."""
        self.courier = Courier(alerter, self.policy.delivery, render=self._render, save=self._save, audit=self._audit,
                               clock=clock, owns=self._owns, retry=redelivery)
        """Delivers the pages incidents owe, per sink, with retries."""

    # -- lifecycle ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, topics_checked: bool = False) -> None:
        """Handle anomalies until ``stop``. ``topics_checked``: the caller ran
        :func:`~modelmedic.kafka.ensure_topics` already (``modelmedic run``: once for every consumer)."""
        k = self.settings.kafka
        if not topics_checked:
            await ensure_topics(k)
        self._producer = self._producer_factory(k)
        consumer = self._consumer_factory(k, group_id=self.group_id, max_poll_records=500,
                                          heartbeat_interval_ms=max(k.heartbeat_interval_ms, HEARTBEAT_FLOOR_MS))
        await self._producer.start()
        loaded = asyncio.Event()
        follower = asyncio.create_task(follow_silences(k, self.silences, loaded, stop), name="silences")
        try:
            await _first_read(loaded, follower)  # a maintenance window holds from the first anomaly
            await consumer.start()
            consumer.subscribe([k.topics.anomalies], listener=_Ownership(self, consumer))
            last_tick = 0.0
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=int(TICK_S * 1000))
                anomalies = await self.intake.anomalies(self._producer, batch)
                if anomalies:
                    await self.handle_batch(anomalies)
                if batch:  # a batch of dead letters only is done with too
                    await self._commit(consumer)
                if time.monotonic() - last_tick >= TICK_S:
                    last_tick = time.monotonic()
                    await self.tick()
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=30)
            await self.courier.aclose(timeout_s=10)
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
            await consumer.stop()
            await self._producer.stop()

    async def _commit(self, consumer) -> None:
        """Commit what was handled. A commit the group refuses because it rebalanced meanwhile
        is no reason to stop: the consumer rejoins on its next fetch, and the records are read
        again by whoever owns their partition now (a replay is ignored by the incident book)."""
        try:
            await consumer.commit()
        except (CommitFailedError, IllegalStateError) as exc:
            metrics.COMMIT_FAILURES.labels(plane="response").inc()
            log.warning("response plane: offset commit refused (%s: %s); rejoining the group and going on",
                        type(exc).__name__, exc)

    def _owns(self, incident: Incident) -> bool:
        """Is this replica the one acting on ``incident``? The owner of its model's partition is."""
        if not self.owned:  # None: Kafka has not said yet (one replica, tests); empty: a rebalance is on
            return self.owned is None
        key = incident.model.encode()
        return self._partitioner(key, self._partitions, self._partitions) in self.owned

    async def take_over(self, partitions: set[int], all_partitions: list[int]) -> None:
        """A rebalance gave us ``partitions``: read their incidents back and finish what is owed.

        Kafka calls this from its own task, and its fetcher hands out records of the new
        partitions before this returns: the read and the load hold the lock, so no anomaly is
        handled against a book about to be replaced. Pages in flight save without the lock, so
        the store can still be older than memory: an incident is taken from the store only when
        it is newer (:attr:`Incident.revision`: another replica acted on it since).
        """
        k = self.settings.kafka
        async with self._lock:
            stored = await self.intake.incidents(self._producer, await read_compacted(k, k.topics.incidents))
            self._partitions, self.owned = all_partitions, set(partitions)
            for incident in stored:
                current = self.book.by_id.get(incident.id)
                if self._owns(incident) and (current is None or incident.revision > current.revision):
                    self.book.load(incident)
                    self._rebuild_guards(incident)
            metrics.OPEN_INCIDENTS.set(len(self.book.open_incidents()))
            self._rebuild_storms()
        await self._resume()
        self.ready.set()

    def _rebuild_storms(self) -> None:
        """The storm watch after a restart or rebalance, from the incidents this replica owns."""
        self.storms = StormWatch.rebuilt(self.policy.guard_rails,
                                         [i for i in self.book.by_id.values() if self._owns(i)], self.clock())

    def _rebuild_guards(self, incident: Incident) -> None:
        """Cooldowns and hourly caps survive restarts: they are replayed from the attempts."""
        for attempt in incident.attempts:
            if attempt.status in ("done", "running"):
                self.guards.acted(incident.model, incident.id, attempt.at)

    async def _resume(self) -> None:
        """Finish what a crash interrupted: owed pages, playbook runs still marked running, and
        remediations that were due but never started."""
        for incident in list(self.book.by_id.values()):
            if not self._owns(incident):
                self.courier.forget(incident.id)
                continue
            if incident.pending:  # written before pages were owed per sink: owe it to each sink now
                log.info("incident %s: re-sending the owed %s page after a restart", incident.id, incident.pending)
                self._owe(incident, incident.pending)
                incident.pending = None
                await self._save(incident)
            self.courier.dispatch(incident)
            if incident.state == "remediating" and incident.attempts and incident.attempts[-1].running:
                log.info("incident %s: resuming %s after a restart", incident.id, incident.attempts[-1].playbook)
                self._spawn(self._remediate(incident, resume=True))
            await self._start_lost_remediation(incident)

    async def _start_lost_remediation(self, incident: Incident) -> None:
        """Start the remediation its rule asks for if a crash came between the first page's save
        and the first attempt's (``_page_opened``, then ``_start_next``): open, paged, no attempt.
        An attempt is saved before its playbook runs, so none saved means none ran. Decided under
        the lock: a remediation spawned before a rebalance saves its attempt under it, so it is
        seen here and never started twice."""
        async with self._lock:
            if incident.state != "open" or incident.held or incident.storm is not None or incident.attempts:
                return
            rule = None if incident.model == "*" else self._rule(incident)
            if self._block(incident, rule) is not None:  # (a storm, no playbooks, a pause...)
                return
            log.info("incident %s: starting its remediation after a restart (none had started)", incident.id)
            self._spawn(self._remediate(incident))

    # -- anomalies ----------------------------------------------------------------------

    async def handle_batch(self, anomalies: list[Anomaly]) -> None:
        """Fold a batch of anomaly records in, in event-time order (partitions of a batch are
        read one after another; each record's own order is kept: its recovery ends later than
        its firing), then page the held incidents whose hold is over."""
        for anomaly in sorted(anomalies, key=lambda a: a.window_end):
            await self.handle(anomaly)
        await self._release_held()

    async def handle(self, anomaly: Anomaly) -> None:
        async with self._lock:
            self.storms.observe(anomaly.window_end, self.clock())
            # What was due before this record's time and no storm took pages first; what is due at its very
            # time waits for it: it may be the member that makes a storm of the held ones.
            await self._release_due(before=True)
            new = anomaly.state == "firing" and self.book.is_new(anomaly)
            flapped = anomaly.state == "firing" and self.book.flap_of(anomaly) is not None
            before = self.book.incident_of(anomaly.id) if anomaly.state != "firing" else None
            was = (before.state, before.verify_deadline_ms, before.escalation_level) if before else None
            incident = self.book.apply(anomaly)
            if incident is None:
                return
            if new:
                await self._opened(incident)
            elif flapped:
                await self._flapped(incident, anomaly)
            elif was is not None and not incident.active:  # this recovery resolved it
                await self._resolved(incident, credit_remediation(*was, self.clock()))
            else:
                await self._save(incident)
                await self._audit(incident, "updated", {"anomaly_id": anomaly.id, "kind": anomaly.kind})
        metrics.OPEN_INCIDENTS.set(len(self.book.open_incidents()))

    async def _opened(self, incident: Incident) -> None:
        """A new incident: held for the storm hold, or taken into the storm it belongs to or completes."""
        metrics.INCIDENTS.labels(incident.anomaly_class, "opened").inc()
        incident.created_at_ms = self.clock()
        members = self.storms.fired(Firing.of(incident))
        storm = self.storms.storm_of(Firing.of(incident))
        if storm is not None:
            await self._join_storm(incident, storm)
        elif members is not None:
            await self._start_storm(incident, members)
        else:
            incident.held = True
            await self._save(incident)
            rule = self._rule(incident)
            await self._audit(incident, "opened", {
                "summary": incident.summary, "auto_remediate": rule.auto_remediate,
                "playbooks": [p.name for p in rule.playbooks], "verify_s": rule.verify_s,
                "fired_at_ms": incident.fired_at_ms, "onset_ms": incident.opened_at_ms,
                "held_until_ms": self.storms.due_at(Firing.of(incident), [])})  # (alone; longer while a storm gathers)

    async def _release_held(self) -> None:
        """Page (and remediate) the held incidents whose storm hold is over and no storm took."""
        async with self._lock:
            await self._release_due()

    async def _release_due(self, before: bool = False) -> None:
        """:meth:`_release_held` with the lock held: the held incidents are judged together (a
        storm may be gathering among them), then those due page (``before``: those due before now
        only, not at it; the 200-model day's storm paged its densest member alone, due at the very
        second its second member fired), or, if a quorum of models waited together, form a storm
        that takes the rest of their group in (:meth:`StormWatch.quorum_of`). In the order they fell
        due, the surest (soonest fired after its onset) first at the same time: a member with a
        doubtful early onset waits for the group it fired into (:meth:`StormWatch.due_at`), and is
        taken into the storm that group forms, not the one to form it."""
        now = self.storms.now(self.clock()) - int(before)
        held = [i for i in self.book.open_incidents() if i.held and self._owns(i)]
        firing = {i.id: Firing.of(i) for i in held}
        firings = [f for f in firing.values() if f.model != "*"]
        due = {i.id: self.storms.due_at(firing[i.id], firings) for i in held}
        for incident in sorted((i for i in held if due[i.id] <= now), key=lambda i: (due[i.id], firing[i.id].lag_ms)):
            if not incident.held:  # a storm formed by a due member of its group took it in
                continue
            quorum = self.storms.quorum_of(firing[incident.id], firings)
            if quorum is not None:  # (its page now: the group waited already)
                await self._page_opened(await self._start_storm(incident, quorum))
            else:
                await self._page_opened(incident)

    async def _page_opened(self, incident: Incident) -> None:
        """Its storm hold is over: page, and remediate by its rule (a storm pages and remediates nothing)."""
        incident.held = False
        incident.created_at_ms = self.clock()  # its escalation timetable starts with its first page
        if incident.state != "open":  # a person took it meanwhile
            await self._save(incident)
            return
        paged = self._owe(incident, "firing")
        await self._save(incident)
        if incident.model == "*":
            metrics.INCIDENTS.labels(incident.anomaly_class, "storm").inc()
            await self._audit(incident, "storm", {"models": incident.members})
        rule = None if incident.model == "*" else self._rule(incident)
        # Without Kubernetes: paged, escalated on its timetable. A shadow is a candidate under
        # live test, not a service: its trouble is a verdict on the candidate, never a reason
        # to scale or roll back what serves production.
        block = self._block(incident, rule)
        details = {"sinks": sorted(incident.owed), "level": 0} if paged else self._muted(incident)
        details.update(remediation=[p.name for p in rule.playbooks] if rule and block is None else [],
                       no_remediation_because=block)
        await self._audit(incident, "paged" if paged else "page-silenced", details)
        self.courier.dispatch(incident)
        if block is None:
            self._spawn(self._remediate(incident))

    async def _flapped(self, incident: Incident, anomaly: Anomaly) -> None:
        """Its series fired again within the hold-down: open again, no page and no playbook now.

        A flap is the same problem coming back, not news; if it stays, the rule's escalation
        timetable, restarted here, pages at its next level."""
        metrics.INCIDENTS.labels(incident.anomaly_class, "flapped").inc()
        incident.created_at_ms = self.clock()
        if not incident.alerted and not incident.owed and incident.storm is None:
            incident.held = True  # it recovered within its storm hold, unpaged: it is news after all
        await self._save(incident)
        await self._audit(incident, "flapped", {"anomaly_id": anomaly.id, "flaps": incident.flaps,
                                                "summary": anomaly.summary})

    async def _resolved(self, incident: Incident, remediated: bool) -> None:
        """The series recovered. The remediation gets the credit only if the recovery came inside
        the verification window of a playbook that acted, on an incident that never escalated."""
        metrics.INCIDENTS.labels(incident.anomaly_class, "resolved").inc()
        incident.recovered_after_remediation = remediated
        if incident.attempts:
            incident.resolution += (f"; recovered after remediation ({incident.attempts[-1].playbook})" if remediated
                                    else f"; recovered on its own (tried: {incident.tried()})")
        paged = not incident.held  # (one that recovered within the storm hold never paged)
        incident.held = False
        if incident.storm is None:
            self._owe(incident, "resolved")
        await self._save(incident)
        await self._audit(incident, "resolved", {"resolution": incident.resolution, "after_remediation": remediated,
                                                 "paged": paged, "escalation_level": incident.escalation_level,
                                                 "tried": incident.tried()})
        if incident.storm is None:
            self.courier.dispatch(incident)
        else:  # paged through the storm: the storm's own resolve says it
            await self._maybe_end_storm(incident.storm)

    # -- remediation --------------------------------------------------------------------

    def _hold_down_ms(self, anomaly: Anomaly) -> int:
        """The flap hold-down of the rule ``anomaly`` routes to."""
        return int(self.policy.route(anomaly.anomaly_class, anomaly.kind, anomaly.model, anomaly.role).flap_hold_s * 1000)

    def _rule(self, incident: Incident) -> Rule:
        return self.policy.route(incident.anomaly_class, incident.kinds[0], incident.model, incident.role)

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def tick(self) -> None:
        """Deadlines: verification windows that ran out, timed escalations, pages to retry."""
        now = self.clock()
        refresh = any(isinstance(s, AlertmanagerSink) for s in self.alerter.sinks)
        for incident in list(self.book.open_incidents()):
            if not self._owns(incident):
                continue
            if refresh and incident.storm is None:
                await self._refresh_alertmanager(incident, now)
            if incident.state == "verifying" and incident.verify_deadline_ms and now >= incident.verify_deadline_ms:
                incident.verification_ran_out()
                await self._audit(incident, "verification-failed", {"tried": incident.tried()})
                self._spawn(self._remediate(incident))
            elif incident.state in ("open", "escalated") and incident.storm is None and not incident.held:
                await self._timed_escalation(incident, now)
            if incident.muted_by and not incident.held:
                await self._unmute(incident, now)
        await self._release_held()
        self.courier.retry_due()

    async def _timed_escalation(self, incident: Incident, now: int) -> None:
        """A rule's escalation levels with ``after_s``: unacknowledged incidents get louder."""
        levels = self._rule(incident).escalation
        nxt = incident.escalation_level + 1
        opened = incident.created_at_ms or incident.opened_at_ms
        if nxt < len(levels) and now - opened >= levels[nxt].after_s * 1000:
            await self._escalate(incident, f"not acknowledged after {levels[nxt].after_s:g}s")

    async def _escalate(self, incident: Incident, reason: str) -> None:
        async with self._lock:
            if not incident.active or incident.state == "acknowledged":
                return
            incident.escalate(reason, self.clock())
            metrics.INCIDENTS.labels(incident.anomaly_class, "escalated").inc()
            silenced = not self._owe(incident, "firing")
            await self._save(incident)
            await self._audit(incident, "escalated", {"level": incident.escalation_level, "reason": reason,
                                                      "tried": incident.tried()})
            if silenced:
                await self._audit(incident, "page-silenced", self._muted(incident))
            self.courier.dispatch(incident)

    # -- pages ----------------------------------------------------------------------------

    def _level(self, incident: Incident, level: int) -> tuple[Rule | None, EscalationLevel | None]:
        """The rule of ``incident`` and its escalation ``level`` (None for a storm: no rule)."""
        if incident.storm is not None or incident.model == "*":
            return None, None
        rule = self._rule(incident)
        return rule, rule.escalation[min(level, len(rule.escalation) - 1)]

    def _owe(self, incident: Incident, status: str) -> bool:
        """Owe ``status`` at the incident's level to the sinks it goes to (saved by the caller
        before the courier sends it). False when a firing page is silenced instead."""
        now = self.clock()
        if status != "firing":  # acknowledged, resolved: to whoever heard the firing
            incident.owe(status, incident.escalation_level, incident.resolve_owed_to(), now)  # type: ignore[arg-type]
            return True
        if incident.silenced_until_ms > now:
            return False
        muting = self._silence(incident, pausing=False)
        if muting is not None:
            incident.muted_by = muting.id  # paged when it is over, if still open (tick)
            return False
        _, level = self._level(incident, incident.escalation_level)
        sinks = [name for name in self.courier.sink_names if level is None or level.sinks == "all" or name in level.sinks]
        incident.owe("firing", incident.escalation_level, sinks, now)
        return True

    def _muted(self, incident: Incident) -> dict:
        """Why a firing page of ``incident`` is not sent now (the audit's evidence)."""
        silence = self.silences.by_id.get(incident.muted_by)
        if silence is not None:
            return {"silence": silence.id, "by": silence.describe(), "created_by": silence.created_by,
                    "comment": silence.comment}
        return {"until_ms": incident.silenced_until_ms, "by": "the incident's own silence"}

    def _silence(self, incident: Incident, *, pausing: bool) -> Silence | None:
        """The silence holding back the incident's pages (``pausing``: its automatic remediation) now."""
        find = self.silences.pausing if pausing else self.silences.muting
        return find(incident.model, incident.version, incident.anomaly_class, self.clock())

    async def _unmute(self, incident: Incident, now_ms: int) -> None:
        """Page an open incident whose page a silence held back, once no silence holds it any more."""
        if self._silence(incident, pausing=False) is not None:
            return
        was, incident.muted_by = incident.muted_by, ""
        paged = self._owe(incident, "firing")
        await self._save(incident)
        if paged:
            await self._audit(incident, "paged", {"sinks": sorted(incident.owed), "level": incident.escalation_level,
                                                   "after_silence": was})
            self.courier.dispatch(incident)

    def _render(self, incident: Incident, notice: Notice) -> Alert:
        """The page ``notice`` stands for: its level's severity, the rule's note, the incident's routing
        labels (fixed at its first page), its links, and (firing) what modelmedic does next."""
        rule, level = self._level(incident, notice.level)
        if not incident.labels:
            owners = registry_owners(self.registry, incident.model) if incident.model != "*" else ()
            namespace = self.policy.target(incident.model, incident.version, incident.role).namespace
            incident.labels = page_labels(incident, namespace=namespace, cluster=self.settings.kubernetes.cluster,
                                          owners=owners)
        nxt = "" if notice.status != "firing" else next_step(
            rule, level=notice.level, next_playbook=incident.next_step, block=self._block(incident, rule),
            opened_ms=incident.created_at_ms or self.clock())
        return incident.alert(notice.status, severity=level.severity if level else None,
                              note=rule.note if rule else None, level=notice.level, next_step=nxt,
                              links=page_links(incident, self.policy, rule, self.settings.http.external_url))

    def _block(self, incident: Incident, rule: Rule | None) -> str | None:
        """Why the rule's playbooks will not run on ``incident`` (None: they will)."""
        if incident.state in ("escalated", "acknowledged"):
            return incident.state
        paused = self._silence(incident, pausing=True)
        return remediation_block(incident, rule, kubernetes=self.k8s is not None,
                                 paused_by=paused.describe() if paused else None)

    async def _refresh_alertmanager(self, incident: Incident, now_ms: int) -> None:
        """Alertmanager forgets a firing alert ``resolve_timeout`` (5 min) after its last post:
        keep re-posting open incidents to it (it dedupes by labels; other sinks are not re-paged)."""
        if now_ms - self._am_refreshed.get(incident.id, incident.created_at_ms or now_ms) < AM_REFRESH_S * 1000:
            return
        self._am_refreshed[incident.id] = now_ms
        sinks = [s.name for s in self.alerter.sinks if isinstance(s, AlertmanagerSink)
                 and s.name in incident.heard and s.name not in incident.owed]
        if sinks and incident.silenced_until_ms <= now_ms:
            # (an acknowledged one stays acknowledged there: its annotation says who took it)
            incident.owe("acknowledged" if incident.state == "acknowledged" else "firing", incident.escalation_level,
                         sinks, now_ms)
            await self._save(incident)
            self.courier.dispatch(incident)

    async def _save(self, incident: Incident) -> None:
        incident.revision += 1
        await self._producer.send_and_wait(
            self.settings.kafka.topics.incidents, msgspec.json.encode(incident), key=incident.id.encode()
        )

    async def _audit(self, incident: Incident, action: str, details: dict, actor: str = "modelmedic") -> None:
        record = {"ts": self.clock(), "actor": actor, "action": action, "incident_id": incident.id,
                  "model": incident.model, "version": incident.version, "anomaly_class": incident.anomaly_class,
                  "state": incident.state, "details": details}
        # Awaited to the broker's acknowledgement (acks=all): an action is taken as audited only once it is.
        await self._producer.send_and_wait(self.settings.kafka.topics.audit,
                                           redact(msgspec.json.encode(record).decode()).encode(), key=incident.model.encode())


async def _first_read(loaded: asyncio.Event, follower: asyncio.Task) -> None:
    """Until the silences topic is read to its end (``loaded``); the follower's failure is the plane's."""
    waiter = asyncio.create_task(loaded.wait())
    await asyncio.wait({waiter, follower}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if follower.done():
        follower.result()


class _Ownership(ConsumerRebalanceListener):
    """Which incidents this replica acts on follows which anomaly partitions it consumes."""

    def __init__(self, plane: ResponsePlane, consumer) -> None:
        self.plane, self.consumer = plane, consumer

    async def on_partitions_revoked(self, revoked) -> None:
        self.plane.owned = set(self.plane.owned or ()) - {tp.partition for tp in revoked}

    async def on_partitions_assigned(self, assigned) -> None:
        topic = self.plane.settings.kafka.topics.anomalies
        partitions = sorted(self.consumer.partitions_for_topic(topic) or {tp.partition for tp in assigned})
        await self.plane.take_over({tp.partition for tp in assigned}, partitions)

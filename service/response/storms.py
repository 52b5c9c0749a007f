"""Storms in event time: many models anomalous together page once, before any of them does.

Pure logic with both clocks passed in (unit-tested in tests/unit/test_storms.py). A storm
is ``storm_models`` distinct models whose problems **started** (the incident's ``onset``,
the first window of its anomaly's episode) within ``storm_window_s`` of each other in event
time. Onset, not firing: a shared cause starts every member's problem in the same minute,
but a member serving 0.05 req/s needs minutes of evidence before it fires where one serving
thousands fires in seconds; grouped by firing time, the dense members fired alone and the
sparse ones fell outside the window. A backlog drained in one second is judged by when its
anomalies happened, not when they were read: unrelated alarms hours apart never form a storm.

A sparse member's onset is itself an estimate: a noise excursion that the change continued
can put it minutes early, and a series that sent nothing for a minute puts it late (its
first request after the change). So an open storm also takes in a member whose onset lies up
to ``storm_gather_max_s`` before its span if that member fired after the storm surely began,
and one whose onset lies up to ``storm_gather_max_s`` after its span if that member's series
had no data from within the span to its onset (:meth:`StormWatch.onset_in`). Such doubtful
onsets never form a storm, only join one.

So that a storm pages once before any member pages, a new incident is *held* (no page, no
playbook) for a while of event time after it fired, and members fire later the sparser
they are, so the hold scales with how long evidence took to gather (:meth:`StormWatch.due_at`):

- alone, an incident waits as long again as it took to fire (from its onset), at least
  ``storm_hold_s`` and at most ``storm_window_s``: a dense model that fired in 4 s waits
  4 s, by when the storm's next-densest member has fired if there is a storm;
- while other models' incidents that started within ``storm_window_s`` of it are held too,
  a storm may be gathering: they wait together, as long again as the group has been
  gathering (earliest onset to latest firing), and at least ``storm_window_s`` from the
  group's earliest onset, at most ``storm_gather_max_s`` after each fired. Each member
  that fires meanwhile extends the wait, until the group holds half of ``storm_models``
  (:attr:`StormWatch.quorum`); ``storm_models`` of them make the storm, which takes the held
  ones in (one page). If the wait ends with a quorum held together, they are a storm too
  (:meth:`StormWatch.quorum_of`: on rough traffic the sparse members that would make ten
  fire later), and later members join it; fewer page each on their own;
- a member whose onset lies minutes before every held group's (an estimate a noise excursion
  put early) waits as long as the group that surely began after its onset and before it
  fired, for the storm that group forms takes it in (:meth:`StormWatch.onset_in`).

Why the whole window: a storm's densest members fire within seconds of its onset, together,
so their "as long again" ends seconds later, while the ``storm_models``-th member, serving a
tenth of a request a second, fires about a minute in (load/detection_harness.py: the 12-model
storm's tenth member fired 34-53 s after the storm began on the small fleets, 73 and 91 s on
two 50-model days; docs/detection.md, "One page per storm"). Two held models waited only a
quarter of the window until session 33: on rough traffic (``--models 40 --hours 48 --rough
--seed 29 --start 2026-01-06``) a storm's two densest members fired 6 and 8 s after its onset,
the third 43 s after, and the two paged alone before the storm did (three pages). Two
incidents that started within a minute of each other wait at most a minute: Alertmanager's
``group_wait`` (30 s by default) holds every first notification about as long.

Event time is the latest ``window_end`` seen, moved on by the wall clock while no anomaly
advances it or arrives at it (:meth:`StormWatch.now`): during catch-up anomalies carry it
forward fast; live, and after a backlog ends, the wall clock carries it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from modelmedic.events import stable_id
from modelmedic.response.incidents import Incident
from modelmedic.response.policy import GuardRails


@dataclass(frozen=True)
class Firing:
    """A new incident as storms see it: its model, when its problem started and when it fired (event time)."""

    model: str
    onset_ms: int
    fired_ms: int
    seen_ms: int = 0
    """Its series' last window with data before the onset (0: not known): its problem started after it."""
    anomaly_class: str = ""

    @property
    def lag_ms(self) -> int:
        """How long its evidence took to gather (onset to firing): the sooner, the surer its onset."""
        return self.fired_ms - self.onset_ms

    @classmethod
    def of(cls, incident: Incident) -> Firing:
        """The incident as storms see it."""
        return cls(incident.model, incident.opened_at_ms, incident.fired_at_ms, incident.seen_before_ms, incident.anomaly_class)


@dataclass
class Storm:
    """An open storm: its incident id, the event-time span of its members' onsets and its surest member."""

    id: str
    first_ms: int
    last_ms: int
    surest: Firing
    """The member that fired soonest after its onset (the densest): its onset is the storm's
    surest, seconds from the truth where a sparse member's may be minutes off."""
    classes: set[str]
    """The anomaly classes of the members whose onsets fell within its span: a member with a
    doubtful onset joins only with one of these (:meth:`StormWatch.onset_in`)."""

    @classmethod
    def of(cls, id: str, members: list[Firing]) -> Storm:
        """A storm of ``members`` (those that made it: their onsets within the storm window)."""
        onsets = [m.onset_ms for m in members]
        return cls(id, min(onsets), max(onsets), min(members, key=lambda m: m.lag_ms),
                   {m.anomaly_class for m in members})


class StormWatch:
    """Which new incidents make a storm, which join one, and when a held one may page."""

    def __init__(self, rails: GuardRails) -> None:
        self.rails = rails
        self.window_ms = int(rails.storm_window_s * 1000)
        self.hold_ms = int(rails.storm_hold_s * 1000)
        self.gather_max_ms = int(rails.storm_gather_max_s * 1000)
        self.watermark_ms = 0
        """The latest event time an anomaly carried."""
        self._advanced_at_ms = 0
        """Wall clock when the watermark last moved or a record arrived at it."""
        self._fired: list[Firing] = []
        """Recent new incidents."""
        self.storms: list[Storm] = []
        """Open storms (the response plane drops a storm when it resolves)."""

    @classmethod
    def rebuilt(cls, rails: GuardRails, incidents: Iterable[Incident], wall_ms: int) -> StormWatch:
        """The watch as the incidents left it (after a restart or a rebalance): event time,
        recent firings and open storms (incidents of model ``*``)."""
        watch = cls(rails)
        ordered = sorted((i for i in incidents if i.fired_at_ms), key=lambda i: i.fired_at_ms)
        for incident in ordered:
            watch.observe(incident.fired_at_ms, wall_ms)
            if incident.model != "*":
                watch.fired(Firing.of(incident))
        for record in (i for i in ordered if i.model == "*" and i.active):
            members = [Firing.of(m) for m in ordered if m.storm == record.id]  # (in firing order, as they joined)
            makers = [m for m in members if 0 <= m.onset_ms - record.opened_at_ms <= watch.window_ms]
            storm = Storm.of(record.id, makers or [Firing.of(record)])  # (the record's onset is its makers' first)
            for member in members:
                watch.joined(storm, member)
            watch.storms.append(storm)
        return watch

    def observe(self, event_ms: int, wall_ms: int) -> None:
        """An anomaly record carried event time ``event_ms``. One at the watermark's own time,
        less than ``storm_hold_s`` (wall clock) after the last, holds event time there: fifty
        models' records of the same window, read over a few seconds of a busy loop, are one
        moment, not a hold running out while they are read."""
        if event_ms == self.watermark_ms and 0 <= wall_ms - self._advanced_at_ms < self.hold_ms:
            self._advanced_at_ms = wall_ms
        if event_ms > self.watermark_ms:
            self.watermark_ms, self._advanced_at_ms = event_ms, wall_ms
            horizon = event_ms - 2 * self.window_ms - self.hold_ms - self.gather_max_ms
            self._fired = [f for f in self._fired if f.fired_ms >= horizon]

    def now(self, wall_ms: int) -> int:
        """Event time now: the watermark, moved on by the wall clock since it last moved (or a
        record arrived at it)."""
        return self.watermark_ms + max(0, wall_ms - self._advanced_at_ms)

    def due_at(self, held: Firing, others: Iterable[Firing]) -> int:
        """Event time at which the held incident ``held`` may page, given the other held incidents.

        Alone: after as long again as it took to fire, between ``storm_hold_s`` and
        ``storm_window_s``. While other models' held incidents started within ``storm_window_s``
        of it: until its group has gathered (:meth:`_gathered`). With none, but a group that surely
        started after its onset and before it fired (:meth:`_fired_into`): until that group has
        gathered, for its onset may be an estimate minutes early and the storm that group forms
        takes it in (:meth:`onset_in`). A storm's own page (model ``*``) waits the plain hold: its
        members are in it already. ``storm_hold_s`` 0 turns holding off: every incident pages
        when it fires.
        """
        if self.hold_ms == 0 or held.model == "*":
            return held.fired_ms + self.hold_ms
        others = list(others)
        group = self._group(held, others)
        due = self._due(held, group)
        if group:
            return due
        into = [self._due(f, self._group(f, others)) for f in self._fired_into(held, others)]
        return max(due, min(max(into, default=due), held.fired_ms + self.gather_max_ms))

    def _due(self, held: Firing, group: list[Firing]) -> int:
        """:meth:`due_at` by ``held``'s own onset, given its :meth:`_group`: alone, or until that group has gathered."""
        own = held.fired_ms + max(self.hold_ms, min(held.lag_ms, self.window_ms))
        return max(own, self._gathered(held, group)) if group else own

    def _gathered(self, held: Firing, group: list[Firing]) -> int:
        """When ``held``'s wait with the other held incidents ``group`` ends: as long again as the
        group has been gathering (earliest onset to latest firing, or to the firing that made a
        :attr:`quorum`) and ``storm_window_s`` from its earliest onset, at most ``storm_gather_max_s``
        after ``held`` fired.

        Once the group holds a :attr:`quorum` of models it will page as one storm whenever its
        wait ends, so a member firing after that no longer lengthens it: the gathering counts up
        to the firing that made the quorum. Live, with a tick a second, seed 6's storm
        (``load/detection_harness.py --models 40 --hours 48 --seed 6 ...``) paged at 562 s: seven
        members held by 95 s, and each straggler (215 s, 268 s) put the end off again."""
        members = sorted([held, *group], key=lambda f: f.fired_ms)
        first = min(f.onset_ms for f in members)
        models: set[str] = set()
        for last in members:
            models.add(last.model)
            if len(models) == self.quorum:
                break
        gathering = max(last.fired_ms + max(self.hold_ms, last.fired_ms - first), first + self.window_ms)
        return min(gathering, held.fired_ms + self.gather_max_ms)

    def _group(self, held: Firing, others: Iterable[Firing]) -> list[Firing]:
        """The other models' held incidents that started within ``storm_window_s`` of ``held``."""
        return [f for f in others if f.model not in (held.model, "*") and abs(f.onset_ms - held.onset_ms) <= self.window_ms]

    def _fired_into(self, held: Firing, others: Iterable[Firing]) -> list[Firing]:
        """The other models' held incidents that surely started (they fired within ``storm_window_s``
        of their onsets) after ``held``'s onset, at most ``storm_gather_max_s`` after it, and before
        ``held`` fired: the group a member with a doubtful early onset fired into.

        Seed 6's storm paged twice: model-026 (0.05-0.3 req/s) had its onset estimated 255 s before
        the storm began and fired at 144 s. No held incident had started within a minute of its
        onset, so it waited alone, until 204 s, and paged at 210 s; the others made the storm at
        216-220 s. Only sure onsets of its own class: an error burst that began 300 s before a storm
        is not kept waiting for a member whose own onset is as doubtful, nor for a latency storm."""
        return [f for f in others if f.model not in (held.model, "*") and f.anomaly_class == held.anomaly_class
                and held.onset_ms < f.onset_ms <= min(held.onset_ms + self.gather_max_ms, held.fired_ms)
                and f.lag_ms <= self.window_ms]

    @property
    def quorum(self) -> int:
        """Half of ``storm_models`` (rounded up, at least two): this many models held together are
        likelier a storm than not (:meth:`quorum_of`)."""
        return max(2, (self.rails.storm_models + 1) // 2)

    def quorum_of(self, held: Firing, others: Iterable[Firing]) -> list[str] | None:
        """The models of the group ``held`` waited with, if its wait ended with a :attr:`quorum` of
        them held: they page as one storm (later members join it), not one by one. None: fewer.

        On rough traffic a storm's sparse members fire after its wait ends (batched arrivals give them
        about half the independent evidence): ``load/detection_harness.py --small --rough --seed 1``
        held seven of its twelve models together 28 s after the storm began, their wait ended at 60 s
        and the three that made ten fired at 63, 77 and 98 s; the seven paged alone, then the storm
        (docs/detection.md, "One page per storm on rough traffic"). Never while holding is off
        (``storm_hold_s`` 0: every incident pages when it fires)."""
        models = {held.model, *(f.model for f in self._group(held, others))}
        return sorted(models) if self.hold_ms and held.model != "*" and len(models) >= self.quorum else None

    def storm_of(self, member: Firing) -> Storm | None:
        """The open storm a new incident belongs to (:meth:`onset_in`)."""
        return next((s for s in self.storms if self.onset_in(s, member) is not None), None)

    def onset_in(self, storm: Storm, member: Firing) -> int | None:
        """When ``member``'s problem started as ``storm`` sees it; None if it is not the storm's.

        An onset within ``storm_window_s`` of the storm's span of onsets is the storm's. An
        onset further back is an estimate, not a fact: the CUSUM's last zero, which a noise
        excursion that the real change continued puts minutes early on a sparse series (the
        truth lies between onset and firing; load/detection_harness.py, 50 models, seed 2: one
        member at 0.19 req/s 162 s before the storm began, the other eleven within -23..+3 s).
        So a member whose onset is at most ``storm_gather_max_s`` (the longest a sparse member's
        evidence is waited for) before the span and which fired after the storm surely began (the
        onset of its :attr:`Storm.surest` member) may have started with it: it is the storm's, seen
        as starting when the storm did, so its doubtful onset widens the span for no later
        incident. One that fired before the storm surely began is not (the 30-model fleet, seed 2:
        an error burst that began 300 s before the storm, at 0.44 req/s, fired 23 s before its
        densest member's onset), nor a creep that began an hour before and fires during the storm,
        nor an incident whose onset follows the span by more than the window, unless its series was
        silent since within it.

        A sparse member's onset can also be late: it is the member's first request after the change,
        and a model serving 0.1 req/s in batches may send none for a minute and more (the rough
        200-model day, seed 1: a storm's member silent from 14 s before the storm began to 88 s
        after, its onset 73 s past the others' span). So a member whose onset is at most
        ``storm_gather_max_s`` after the span, and whose series had no data between the span (its
        window included) and that onset (:attr:`Firing.seen_ms`), may have started with it too: it is
        the storm's, seen as starting at the span's end.

        Either doubt is the storm's only for a member of a class its sure members have: an error
        burst that began 300 s before a latency storm and fired 243 s into it (``--small --rough
        --seed 3``, 0.23 req/s) was taken in, after the storm had paged, and paged nobody. And an
        early onset only for a member that fired within ``storm_gather_max_s`` of the storm's surest
        onset, as long as a sparse member's evidence is waited for: a creep (``--small --seed 17``,
        0.60 req/s) whose onset was 322 s before a latency storm fired 1,636 s into it, while the
        storm's members were still anomalous, and was taken in silently.
        """
        if storm.first_ms - self.window_ms <= member.onset_ms <= storm.last_ms + self.window_ms:
            return member.onset_ms
        if member.anomaly_class not in storm.classes:
            return None
        if (storm.first_ms - self.gather_max_ms <= member.onset_ms < storm.first_ms
                and storm.surest.onset_ms <= member.fired_ms <= storm.surest.onset_ms + self.gather_max_ms):
            return storm.first_ms
        if 0 < member.seen_ms <= storm.last_ms + self.window_ms < member.onset_ms <= storm.last_ms + self.gather_max_ms:
            return storm.last_ms
        return None

    def fired(self, new: Firing) -> list[str] | None:
        """Record a new incident; the models of the storm it completes, if it does.

        Any ``storm_window_s`` span of onsets containing its onset with ``storm_models``
        distinct models is a storm; the order the incidents fire or arrive in does not matter.
        """
        self._fired.append(new)
        near = sorted((f.onset_ms, f.model) for f in self._fired if abs(f.onset_ms - new.onset_ms) <= self.window_ms)
        for start, _ in near:
            if start > new.onset_ms:
                break
            members = {m for t, m in near if start <= t <= start + self.window_ms}
            if len(members) >= self.rails.storm_models:
                return sorted(members)
        return None

    def open_storm(self, role: str, members: list[Firing]) -> Storm:
        """A storm formed of ``members``: its id follows from its first member's onset, so every
        replica and every replay names it the same."""
        storm = Storm.of("storm-" + stable_id("storm", role, min(m.onset_ms for m in members)), members)
        self.storms.append(storm)
        return storm

    def joined(self, storm: Storm, member: Firing) -> None:
        """``member`` joined ``storm``: its span of onsets grows by the member's onset as the storm
        sees it (:meth:`onset_in`); a member whose own onset counts and fired sooner after it is its surest."""
        onset = member.onset_ms
        if self.onset_in(storm, member) != onset:
            return  # (a doubtful onset, seen as the storm's first, widens nothing and is no one's surest)
        storm.first_ms, storm.last_ms = min(storm.first_ms, onset), max(storm.last_ms, onset)
        storm.classes.add(member.anomaly_class)
        if member.lag_ms < storm.surest.lag_ms:
            storm.surest = member

    def ended(self, storm_id: str) -> None:
        self.storms = [s for s in self.storms if s.id != storm_id]

"""The status UI: what on-call looks at during an incident, served by the service itself.

Four pages, rendered server-side from Jinja templates (``templates/``, autoescaped) and
refreshed by a ``<meta http-equiv=refresh>``; no script, font or stylesheet comes from
anywhere else, so the UI works on a cluster without outside network:

- ``/`` (and ``/status``): open incidents (state, escalation level, age, owners, what was
  tried), the latest anomaly decisions and the history of resolved incidents;
- ``/incidents/{id}``: its timeline (opened, playbook runs, escalation, acknowledgement,
  pages sent and owed, resolution) and a plot of the judged series, drawn as inline SVG;
- ``/models/{model}``: the versions serving, their quality (each decision's state, the label-free estimate
  vs the labels, data quality, drifting features), its recent decisions and its incidents;
- ``/silences``: silences, maintenance windows and remediation pauses active or scheduled,
  with what each holds back, who made it and why (an incident's page shows those holding it).

The plot shows the windows the judge decided about (each anomaly record: observed against
the baseline the detector held, firing or recovered) and every playbook run as a marked
line. The detection plane keeps no history of undecided windows, so quiet stretches between
decisions are drawn as straight segments, not measured.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import jinja2
from aiohttp import web

from modelmedic.http.answers import refusal
from modelmedic.http.api import public_incident
from modelmedic.http.auth import Operator
from modelmedic.http.quality_api import model_quality
from modelmedic.http.silence_api import public_silence
from modelmedic.http.source import DecisionView, IncidentView, SilenceView, StatusSource

REFRESH_S = 15
"""How often the pages reload themselves."""
HISTORY = 50
"""Resolved incidents on the front page, newest first."""
DECISIONS = 20
"""Latest anomaly decisions on the front page."""
MARK_REACH_MS = 30 * 60_000
"""How far (at least) from the plotted decisions an action still widens the plot's time axis."""
UNITS = {"latency": "median latency (ms)", "errors": "error rate", "throughput_drop": "request rate (/s)",
         "throughput_surge": "request rate (/s)"}

_env = jinja2.Environment(loader=jinja2.PackageLoader("modelmedic.http", "templates"),
                          autoescape=jinja2.select_autoescape(["html", "svg"], default=True),
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def utc(ms: int | None) -> str:
    """``2026-01-01 13:52:07 UTC``, or an empty string for no time."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000)) if ms else ""


def age(since_ms: int | None, now_ms: int) -> str:
    """How long ago, in the largest two units a person reads at a glance: ``3 h 12 min``, ``45 s``."""
    return duration(now_ms - since_ms) if since_ms else ""


def duration(ms: int) -> str:
    """A span in the largest two units a person reads at a glance: ``3 h 12 min``, ``45 s`` (0 s below 0)."""
    s = max(0, ms // 1000)
    for size, unit, smaller, sunit in ((86400, "d", 3600, "h"), (3600, "h", 60, "min"), (60, "min", 1, "s")):
        if s >= size:
            return f"{s // size} {unit} {s % size // smaller} {sunit}"
    return f"{s} s"


_env.filters["utc"] = utc
_env.filters["duration"] = duration


@dataclass
class Plot:
    """An observed-against-baseline chart in SVG coordinates (``templates/plot.svg.j2`` draws it)."""

    unit: str
    width: int = 760
    height: int = 260
    left: int = 70
    right: int = 50
    top: int = 20
    bottom: int = 40
    observed: list[tuple[float, float, str]] = field(default_factory=list)
    """(x, y, state) of each decided window: state ``firing`` is drawn flagged."""
    baseline: list[tuple[float, float]] = field(default_factory=list)
    marks: list[tuple[float, str]] = field(default_factory=list)
    """(x, label): playbook runs and other actions, drawn as vertical lines."""
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    x_ticks: list[tuple[float, str]] = field(default_factory=list)

    @property
    def polyline_observed(self) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in self.observed)

    @property
    def polyline_baseline(self) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in self.baseline)


def build_plot(decisions: Sequence[DecisionView], marks: Sequence[tuple[int, str]], kind: str) -> Plot | None:
    """The chart of ``decisions`` (one kind of one series, any order) with ``marks`` (epoch ms, label).

    None without a decision to draw. Decisions are stamped in event time, actions in wall-clock
    time: live they are seconds apart, but replaying a backlog they can be months apart. So the
    time axis spans the decisions and the marks within :data:`MARK_REACH_MS` (or the decisions'
    own span, if longer) of them; a mark further away is pinned to the nearer edge, its label
    saying when it was. The value axis starts at zero (the distance from zero is the story).
    """
    points = sorted((d.window_end, d.observed, d.baseline, d.state) for d in decisions
                    if d.observed == d.observed and d.baseline == d.baseline)  # NaN: nothing to draw
    if not points:
        return None
    plot = Plot(unit=UNITS.get(kind, kind))
    d0, d1 = points[0][0], points[-1][0]
    reach = max(d1 - d0, MARK_REACH_MS)
    near = [t for t, _ in marks if d0 - reach <= t <= d1 + reach]
    t0, t1 = min([d0, *near]), max([d1, *near])
    if t1 - t0 < 60_000:
        t0, t1 = t0 - 30_000, t1 + 30_000
    top = max(max(p[1], p[2]) for p in points) * 1.1 or 1.0
    inner_w = plot.width - plot.left - plot.right
    inner_h = plot.height - plot.top - plot.bottom

    def x(t: float) -> float:
        return plot.left + (min(max(t, t0), t1) - t0) / (t1 - t0) * inner_w

    def y(v: float) -> float:
        return plot.top + inner_h - max(v, 0.0) / top * inner_h

    plot.observed = [(x(t), y(o), state) for t, o, _, state in points]
    plot.baseline = [(x(t), y(b)) for t, _, b, _ in points]
    plot.marks = [(x(t), label if t0 <= t <= t1 else f"{label} (at {utc(t)})") for t, label in sorted(marks)]
    plot.y_ticks = [(y(top * k / 4), f"{top * k / 4:.3g}") for k in range(5)]
    plot.x_ticks = [(x(t0 + (t1 - t0) * k / 4), time.strftime("%H:%M:%S", time.gmtime((t0 + (t1 - t0) * k / 4) / 1000)))
                    for k in range(5)]
    return plot


@dataclass(frozen=True)
class Event:
    """One line of an incident's timeline."""

    at_ms: int | None
    """None: the record says it happened, not when (listed after the timed events it follows)."""
    what: str
    who: str = "modelmedic"


def timeline(i: IncidentView) -> list[Event]:
    """What happened to an incident, oldest first, from its record: opening, playbook runs, escalation,
    acknowledgement, silence, pages, resolution."""
    events = [Event(i.created_at_ms or i.opened_at_ms, f"opened ({i.state if i.state == 'open' else 'was open'}): "
                    f"{i.summary}")]
    if i.flaps:
        events.append(Event(None, f"flapped: its series fired again within the hold-down {i.flaps} time(s)"))
    for a in i.attempts:
        how = "run by hand" if a.by else "automatic"
        events.append(Event(a.at, f"playbook {a.playbook} ({how}) {a.status}" + (f": {a.message}" if a.message else ""),
                            a.by or "modelmedic"))
    for page in i.alerted:
        events.append(Event(None, f"page delivered: {page}"))
    for sink, queue in sorted(i.owed.items()):
        for n in queue:
            error = f", last error: {n.last_error}" if n.last_error else ""
            events.append(Event(n.owed_since_ms, f"page owed to {sink}: {n.status} at level {n.level} "
                                                 f"({n.tries} tries{error})"))
    events += [Event(e.at_ms, f"escalated to level {e.level}: {e.reason}") for e in i.escalations]
    if i.escalation_level > len(i.escalations):  # a record older than the escalations' times
        events.append(Event(None, f"escalated to level {i.escalation_level}: {i.escalation_reason}"))
    if i.silenced_until_ms:
        events.append(Event(None, f"silenced until {utc(i.silenced_until_ms)}"))
    if i.acknowledged_by:
        events.append(Event(i.acknowledged_at_ms, "acknowledged", i.acknowledged_by))
    if i.resolved_at_ms is not None:
        after = " after remediation" if i.recovered_after_remediation else ""
        events.append(Event(i.resolved_at_ms, f"resolved{after}: {i.resolution}"))
    timed = sorted((e for e in events if e.at_ms is not None), key=lambda e: e.at_ms)
    return timed + [e for e in events if e.at_ms is None]


def _series_decisions(source: StatusSource, i: IncidentView) -> list[DecisionView]:
    """The decisions about the incident's series and first kind: its own evidence (kept with the incident)
    and whatever this replica still holds of the detection plane's latest decisions."""
    kind = i.kinds[0] if i.kinds else ""
    found: dict[tuple[int, str], DecisionView] = {}
    for d in source.decisions_of(i.model):
        if d.series == i.series and d.kind == kind:
            found[(d.window_end, d.state)] = d
    for e in [i.evidence, *i.evidence.get("also", [])]:
        if e.get("kind") == kind and "window_end_ms" in e and (e["window_end_ms"], "firing") not in found:
            found[(e["window_end_ms"], "firing")] = _EvidencePoint(
                window_end=e["window_end_ms"], observed=float(e["observed"]), baseline=float(e["baseline"]))
    return list(found.values())


def silence_row(s: SilenceView, now_ms: int) -> dict:
    """A silence as the UI shows it: its public fields and what it holds back, in words."""
    held = [what for what, yes in (("pages", s.mutes_pages), ("automatic remediation", s.pauses_remediation)) if yes]
    return {**public_silence(s, now_ms), "holds": " and ".join(held)}


def holding(source: StatusSource, i: IncidentView, now_ms: int) -> list[dict]:
    """The silences holding an open incident's pages or remediation now (by their matchers)."""
    if i.state == "resolved":
        return []
    return [silence_row(s, now_ms) for s in source.silences() if s.covers(i.model, i.version, i.anomaly_class, now_ms)]


@dataclass(frozen=True)
class _EvidencePoint:
    """A firing decision as the incident's evidence recorded it (for the plot)."""

    window_end: int
    observed: float
    baseline: float
    state: str = "firing"


class StatusPages:
    """The UI's handlers."""

    def __init__(self, source: StatusSource, started: float) -> None:
        self.source = source
        self.started = started

    def _render(self, template: str, **context: object) -> web.Response:
        now = int(time.time() * 1000)
        html = _env.get_template(template).render(refresh_s=REFRESH_S, now_ms=now, age=age, **context)
        return web.Response(text=html, content_type="text/html")

    def _row(self, i: IncidentView, now_ms: int) -> dict:
        view = public_incident(i, self.source.owners(i.model))
        view["age"] = age(i.created_at_ms or i.opened_at_ms, now_ms)
        view["tried"] = "; ".join(f"{a.playbook}: {a.status}" for a in i.attempts) or "nothing yet"
        return view

    async def index(self, request: web.Request | None, operator: Operator | None) -> web.Response:
        """The front page (``request`` unused: the page shows the whole service)."""
        now = int(time.time() * 1000)
        counts = self.source.counters()
        open_now = sorted(self.source.open_incidents(), key=lambda i: (-i.escalation_level, -i.opened_at_ms))
        resolved = sorted((i for i in self.source.incidents() if i.state == "resolved"),
                          key=lambda i: i.resolved_at_ms or 0, reverse=True)[:HISTORY]
        return self._render(
            "index.html", operator=operator, counts=counts, uptime_s=int(time.time() - self.started),
            quiet=[silence_row(s, now) for s in self.source.silences()],
            insufficient={f: counts.get(f"insufficient_data_{f}", 0) for f in ("latency", "errors", "throughput")},
            open_incidents=[self._row(i, now) for i in open_now],
            history=[self._row(i, now) for i in resolved],
            decisions=list(reversed(self.source.recent_decisions(DECISIONS))),
        )

    async def incident(self, request: web.Request, operator: Operator) -> web.Response:
        incident_id = request.match_info["id"]
        i = self.source.incident(incident_id)
        if i is None:
            raise refusal(web.HTTPNotFound, f"no incident {incident_id!r}: the front page lists them", "id")
        marks = [(a.at, a.playbook) for a in i.attempts]
        if i.resolved_at_ms is not None:
            marks.append((i.resolved_at_ms, "resolved"))
        plot = build_plot(_series_decisions(self.source, i), marks, i.kinds[0] if i.kinds else "")
        now = int(time.time() * 1000)
        return self._render("incident.html", operator=operator, incident=self._row(i, now), events=timeline(i),
                            plot=plot, held_by=holding(self.source, i, now))

    async def silences(self, request: web.Request, operator: Operator) -> web.Response:
        """Silences, maintenance windows and pauses not over: active ones first, then scheduled, by end."""
        now = int(time.time() * 1000)
        rows = sorted((silence_row(s, now) for s in self.source.silences()),
                      key=lambda r: (r["state"] != "active", r["ends_ms"], r["id"]))
        return self._render("silences.html", operator=operator, silences=rows)

    async def model(self, request: web.Request, operator: Operator) -> web.Response:
        model = request.match_info["model"]
        now = int(time.time() * 1000)
        incidents = sorted((i for i in self.source.incidents() if i.model == model),
                           key=lambda i: i.opened_at_ms, reverse=True)
        return self._render(
            "model.html", operator=operator, model=model, owners=self.source.owners(model),
            serving=sorted(self.source.serving(model), key=lambda s: (s.role, s.version)),
            decisions=list(reversed(self.source.decisions_of(model)))[:50],
            quality=model_quality(self.source, model),
            open_incidents=[self._row(i, now) for i in incidents if i.state != "resolved"],
            history=[self._row(i, now) for i in incidents if i.state == "resolved"][:HISTORY],
        )

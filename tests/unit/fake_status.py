"""A StatusSource over a real IncidentBook, for the HTTP tests: the incidents are the response plane's own
records, the actions its own transitions, without Kafka."""

from __future__ import annotations

import time
import typing
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from modelmedic.audit import AuditTail
from modelmedic.config import HttpSettings, OperatorSettings, token_sha256
from modelmedic.events import Anomaly, stable_id
from modelmedic.http import HttpServer
from modelmedic.remediations import Outcome
from modelmedic.response.incidents import Attempt, Incident, IncidentBook, State
from modelmedic.response.policy import ANOMALY_CLASSES
from modelmedic.response.silences import Silence, SilenceBook, new_silence

ONSET = 1_767_225_600_000
TOKENS = {"alice": "alice-token-0123456789abcdef0123456789abcdef", "bob": "bob-token-0123456789abcdef0123456789abcdef"}
"""alice operates, bob reads."""


def settings(**update: Any) -> HttpSettings:
    operators = [OperatorSettings(name="alice", role="operate", token_sha256=token_sha256(TOKENS["alice"])),
                 OperatorSettings(name="bob", role="read", token_sha256=token_sha256(TOKENS["bob"]))]
    return HttpSettings(port=0, operators=operators).model_copy(update=update)


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


def anomaly(model: str, *, onset: int = ONSET, kind: str = "latency", state: str = "firing",
            observed: float = 300.0, window_end: int | None = None) -> Anomaly:
    end = window_end if window_end is not None else onset + 60_000
    return Anomaly(id=stable_id(model, "v1", "production", kind, onset), series=f"{model}/v1/production", model=model,
                   version="v1", role="production", kind=kind, anomaly_class="latency" if kind == "latency" else "errors",
                   window_start=end - 60_000, window_end=end, onset=onset, observed=observed, baseline=40.0, score=1.0,
                   state=state, summary=f"median latency {observed:.0f} ms vs usual 40 ms since onset")


@dataclass
class Serving:
    version: str
    role: str
    last_window_end_ms: int


@dataclass
class Quality:
    version: str
    decisions: dict
    estimate: dict | None
    data_quality: dict | None
    drifting_features: list
    label_delay: dict | None = None


QUALITY = [
    Quality("v1", {"canary_divergence": ("insufficient_data", "too few shared requests to compare with the canary yet (4 of 10)"),
                   "label_performance": ("ok", "accuracy 91.0% on the last 200 labelled requests is consistent with the baseline 92.0%"),
                   "estimated_accuracy": ("anomalous", "estimated accuracy 0.81, usually 0.93"),
                   "data_quality": ("ok", "inputs within their schema (3 of 900 sampled requests with a violation)"),
                   "feature_drift": ("anomalous", "inputs drifted from the reference: amount (PSI 0.63): redesign signal")},
            {"estimated_accuracy": 0.81, "usual_accuracy": 0.93, "realized_accuracy": 0.8, "estimated_on_labelled": 0.82,
             "realized_labels": 240, "calibration": "labels"},
            {"requests": 900, "violated": 3, "budget": 0.01}, [("amount", 0.63, 7e-18, 975)],
            {"labels": 240, "p50_ms": 900_000, "p95_ms": 1_800_000, "p99_ms": 1_800_000, "max_ms": 1_790_000,
             "horizon_ms": 21_600_000}),
    Quality("v2", {"drift": ("insufficient_data", "too few predictions to compare with the reference yet")}, None, None, []),
]
"""Two production versions of ``fraud``: one with an estimate, inputs and a drifting feature; one just started."""


class FakeSource:
    """The StatusSource interface over an IncidentBook."""

    def __init__(self) -> None:
        self.book = IncidentBook()
        self.published: list[Anomaly] = []
        self.triggered: list[tuple[str, str, dict, str]] = []
        self.tail = AuditTail()
        self.tail.loaded.set()
        self.quiet = SilenceBook()

    def open(self, a: Anomaly, created_at_ms: int | None = None) -> Incident:
        self.published.append(a)
        incident = self.book.apply(a)
        assert incident is not None
        incident.created_at_ms = created_at_ms or a.window_end
        return incident

    def ready(self) -> bool:
        return True

    def incidents(self) -> list[Incident]:
        return list(self.book.by_id.values())

    def open_incidents(self) -> list[Incident]:
        return self.book.open_incidents()

    def incident(self, incident_id: str) -> Incident | None:
        return self.book.by_id.get(incident_id)

    def incident_states(self) -> tuple[str, ...]:
        return typing.get_args(State)

    def anomaly_classes(self) -> tuple[str, ...]:
        return ANOMALY_CLASSES

    def owners(self, model: str) -> tuple[str, ...]:
        return ("team-fraud", "carol") if model.startswith("fraud") else ()

    def serving(self, model: str) -> list[Serving]:
        return [Serving("v1", "production", ONSET + 120_000), Serving("v2", "canary", ONSET + 120_000)]

    def quality(self, model: str) -> list[Quality]:
        return list(reversed(QUALITY)) if model == "fraud" else []

    def recent_decisions(self, n: int) -> list[Anomaly]:
        return self.published[-n:]

    def decisions_of(self, model: str) -> list[Anomaly]:
        return [a for a in self.published if a.model == model]

    def counters(self) -> dict[str, int]:
        return {"partitions": 3, "series": 7, "events": 1000, "incidents": len(self.book.by_id),
                "insufficient_data_latency": 1, "insufficient_data_errors": 0, "insufficient_data_throughput": 2}

    async def acknowledge(self, incident_id: str, by: str) -> Incident:
        incident = self.book.by_id[incident_id]
        incident.acknowledge(by, incident.created_at_ms + 120_000)
        return incident

    async def resolve(self, incident_id: str, by: str) -> Incident:
        incident = self.book.by_id[incident_id]
        self.book.close(incident, f"resolved by {by}", incident.opened_at_ms + 600_000)
        return incident

    async def silence(self, incident_id: str, minutes: float, by: str) -> Incident:
        incident = self.book.by_id[incident_id]
        incident.silenced_until_ms = incident.created_at_ms + int(minutes * 60_000)
        return incident

    def audit(self) -> AuditTail:
        return self.tail

    def webhooks(self) -> list:
        return []

    def silences(self) -> list[Silence]:
        return self.quiet.current(int(time.time() * 1000))

    async def add_silence(self, fields: dict[str, Any], by: str) -> Silence:
        silence = new_silence(created_by=by, **fields)
        self.quiet.put(silence)
        return silence

    async def remove_silence(self, silence_id: str, by: str) -> Silence:
        if silence_id not in self.quiet.by_id:
            raise KeyError(f"no silence, maintenance window or pause {silence_id!r}")
        return self.quiet.by_id.pop(silence_id)

    async def trigger(self, incident_id: str, playbook: str, params: dict, by: str) -> Outcome:
        self.triggered.append((incident_id, playbook, params, by))
        incident = self.book.by_id[incident_id]
        incident.record_manual(Attempt(playbook=playbook, key="k", at=incident.created_at_ms + 1000, params=params,
                                       status="done", message="scaled 2 -> 4", by=by))
        return Outcome.done("scaled 2 -> 4", replicas=4)


async def client(source: FakeSource, http: HttpSettings | None = None) -> TestClient:
    """A test client of the real aiohttp application over ``source`` (close it when done)."""
    app = HttpServer(http or settings(), source).app()
    c = TestClient(TestServer(app))
    await c.start_server()
    return c

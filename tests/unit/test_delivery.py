"""The courier's bookkeeping with a fake clock and fake sinks: backoff, order, expiry."""

from __future__ import annotations

from prometheus_client import REGISTRY

from modelmedic.alerting import Alert, Alerter
from modelmedic.errors import SinkError
from modelmedic.response.delivery import Courier
from modelmedic.response.incidents import Incident, IncidentBook, Notice
from modelmedic.response.policy import Delivery
from modelmedic.retry import RetryPolicy

from test_incidents import anomaly


class FakeSink:
    """Fails while ``down``; records what it accepted."""

    def __init__(self, name: str) -> None:
        self.name, self.down, self.got = name, True, []

    async def send(self, alert: Alert) -> None:
        if self.down:
            raise SinkError(f"sink {self.name}: HTTP 503")
        self.got.append(alert.status)

    async def aclose(self) -> None:
        return None


class Harness:
    def __init__(self, owns=lambda incident: True, **delivery) -> None:
        self.now = 1_000_000
        self.sink = FakeSink("pd")
        self.saved, self.audited = 0, []

        async def save(incident: Incident) -> None:
            self.saved += 1

        async def audit(incident: Incident, action: str, details: dict) -> None:
            self.audited.append((action, details))

        self.courier = Courier(
            Alerter([self.sink]), Delivery(**delivery), clock=lambda: self.now, save=save, audit=audit,
            render=lambda incident, notice: incident.alert(notice.status, level=notice.level),
            retry=RetryPolicy(base_delay_s=1.0, max_delay_s=4.0, jitter=lambda: 1.0), owns=owns,
        )
        self.incident = IncidentBook().apply(anomaly())

    async def tick(self, advance_s: float) -> None:
        self.now += int(advance_s * 1000)
        self.courier.retry_due()
        await self.courier.idle()


def expired() -> float:
    return REGISTRY.get_sample_value("modelmedic_alerts_total", {"sink": "pd", "result": "expired"}) or 0.0


async def test_retries_back_off_and_the_firing_goes_before_the_resolve() -> None:
    h = Harness()
    h.incident.owe("firing", 0, ["pd"], h.now)
    h.courier.dispatch(h.incident)
    await h.courier.idle()
    assert [(n.tries, n.next_try_ms - h.now) for n in h.incident.owed["pd"]] == [(1, 1000)]
    await h.tick(0.5)  # not due yet: no try
    assert h.incident.owed["pd"][0].tries == 1
    await h.tick(0.5)
    assert [(n.tries, n.last_error) for n in h.incident.owed["pd"]] == [(2, "sink pd: HTTP 503")]
    h.incident.resolve("resolved: fine", h.now)
    h.incident.owe("resolved", 0, h.incident.resolve_owed_to(), h.now)
    h.sink.down = False
    await h.tick(2.0)  # backoff doubled: 2 s
    assert h.sink.got == ["firing", "resolved"] and h.incident.owed == {}


async def test_a_page_not_taken_in_time_is_given_up_with_what_followed_it() -> None:
    h = Harness(give_up_after_s=10)
    before = expired()
    h.incident.owe("firing", 0, ["pd"], h.now)
    h.courier.dispatch(h.incident)
    await h.courier.idle()
    h.incident.resolve("resolved: fine", h.now)
    h.incident.owe("resolved", 0, h.incident.resolve_owed_to(), h.now)
    for _ in range(3):
        await h.tick(4.0)
    assert h.incident.owed == {} and h.sink.got == []
    assert expired() == before + 2
    action, details = h.audited[-1]
    assert action == "page-expired" and details["pages"] == ["firing", "resolved"]
    assert "not taken within delivery.give_up_after_s=10s after 3 tries (last: sink pd: HTTP 503)" in details["reason"]


async def test_pages_for_a_sink_no_longer_configured_are_dropped() -> None:
    h = Harness()
    h.incident.owed["gone"] = [Notice("firing", 0, h.now)]
    h.courier.dispatch(h.incident)
    await h.courier.idle()
    assert h.incident.owed == {} and h.audited[-1][1]["reason"] == "sink gone is no longer configured"


async def test_an_incident_another_replica_owns_is_not_delivered() -> None:
    h = Harness(owns=lambda incident: False)
    h.sink.down = False
    h.incident.owe("firing", 0, ["pd"], h.now)
    h.courier.dispatch(h.incident)
    await h.courier.idle()
    assert h.sink.got == [] and h.incident.owed["pd"][0].tries == 0

"""The courier's bookkeeping with a fake clock and fake sinks: backoff, order, expiry, repeats."""

from __future__ import annotations

import msgspec
from prometheus_client import REGISTRY

from modelmedic.alerting import Alert, Alerter, WebhookSink, alertmanager_alert, pagerduty_event
from modelmedic.errors import SinkError
from modelmedic.response.delivery import Courier
from modelmedic.response.incidents import Incident, IncidentBook, Notice
from modelmedic.response.policy import Delivery
from modelmedic.retry import RetryPolicy

from test_incidents import anomaly


class FakeSink:
    """Fails while ``down``; records what it accepted, and every alert it was sent in ``sent``."""

    def __init__(self, name: str, idempotent: bool = True) -> None:
        self.name, self.idempotent, self.down, self.got, self.sent = name, idempotent, True, [], []

    async def send(self, alert: Alert) -> None:
        self.sent.append(alert)
        if self.down:
            raise SinkError(f"sink {self.name}: HTTP 503")
        self.got.append(alert.status)

    async def aclose(self) -> None:
        return None


class Harness:
    def __init__(self, owns=lambda incident: True, idempotent: bool = True, **delivery) -> None:
        self.now = 1_000_000
        self.sink = FakeSink("pd", idempotent)
        self.saved: list[bytes] = []
        """Every incident record saved, in order: what a restart would read back."""
        self.audited = []

        async def save(incident: Incident) -> None:
            self.saved.append(msgspec.json.encode(incident))

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


def restarted(record: bytes) -> Incident:
    """The incident as a new process reads it back from the compacted topic."""
    return msgspec.json.decode(record, type=Incident)


async def test_a_sink_that_cannot_fold_a_repeat_has_the_send_saved_as_started_first() -> None:
    h = Harness(idempotent=False)
    h.sink.down = False
    h.incident.owe("firing", 0, ["pd"], h.now)
    h.courier.dispatch(h.incident)
    await h.courier.idle()
    before, after = restarted(h.saved[0]), restarted(h.saved[-1])
    assert len(h.saved) == 2, "saved as sending before the send, and as delivered right after"
    assert [n.sending for n in before.owed["pd"]] == [True] and after.owed == {}
    assert [a.maybe_repeat for a in h.sink.sent] == [False]


async def test_a_try_after_one_without_an_answer_says_it_may_repeat() -> None:
    h = Harness(idempotent=False)
    h.incident.owe("firing", 0, ["pd"], h.now)
    h.courier.dispatch(h.incident)
    await h.courier.idle()
    h.sink.down = False
    await h.tick(1.0)
    assert [a.maybe_repeat for a in h.sink.sent] == [False, True] and h.sink.got == ["firing"]


async def test_after_a_crash_mid_send_slack_gets_the_page_again_marked_as_a_repeat() -> None:
    h = Harness(idempotent=False)
    h.sink.down = False
    h.incident.owe("firing", 0, ["pd"], h.now)
    h.courier.dispatch(h.incident)
    await h.courier.idle()
    crashed = restarted(h.saved[0])  # the process died after this record, before the sink's answer was saved
    again = Harness(idempotent=False)
    again.sink.down = False
    again.courier.dispatch(crashed)
    await again.courier.idle()
    assert [(a.status, a.maybe_repeat) for a in again.sink.sent] == [("firing", True)] and crashed.owed == {}


async def test_an_idempotent_sink_costs_no_extra_save_and_is_never_marked() -> None:
    h = Harness()
    h.incident.owe("firing", 0, ["pd"], h.now)
    h.courier.dispatch(h.incident)
    await h.courier.idle()
    h.sink.down = False
    await h.tick(1.0)
    assert len(h.saved) == 2, "one save per try's outcome, none before"
    assert [a.maybe_repeat for a in h.sink.sent] == [False, False]


def identities(alert: Alert) -> tuple:
    """What each idempotent sink folds repeats on, for one rendered alert."""
    event = pagerduty_event(alert, "R" * 32)
    return (event["dedup_key"], event["event_action"], tuple(sorted(alertmanager_alert(alert)["labels"].items())),
            WebhookSink("http://hook.test/").headers(alert)["Idempotency-Key"])


async def test_every_send_of_one_notice_has_the_same_identity_at_every_sink_across_a_restart() -> None:
    h = Harness()
    h.incident.owe("firing", 0, ["pd"], h.now)
    first = h.incident.alert("firing", level=0)
    later = restarted(msgspec.json.encode(h.incident))  # read back by a new process, then changed
    later.evidence["observed"] = 999.0
    later.summary = "fraud 1.0 (production): latency is worse"
    again = later.alert("firing", level=0)
    assert first != again and identities(first) == identities(again)
    assert identities(later.alert("firing", level=1))[3] != identities(first)[3], "an escalation is a new message"
    later.resolve("resolved: fine", h.now)
    assert identities(later.alert("resolved", level=0))[:2] == (first.dedup_key, "resolve")

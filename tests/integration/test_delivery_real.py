"""Pages are owed per sink and never lost: sinks down, failing, hanging, and a restart in between.

Real Kafka (the anomalies and the compacted incidents topic), real HTTP (the strict
receiver, a port where nothing listens yet, a server that accepts and never answers).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from deploy.local.procs import free_port
from fixtures_planes import running
from modelmedic.alerting import Alerter, build_sinks
from modelmedic.config import Settings, SinkSettings
from modelmedic.kafka import ensure_topics
from modelmedic.response.plane import ResponsePlane
from modelmedic.retry import RetryPolicy
from modelmedic.testing import AlertReceiver
from test_response import anomaly, policy, publish, until

pytestmark = pytest.mark.integration

ROUTING_KEY = "R" * 32
QUICK = RetryPolicy(base_delay_s=0.05, max_delay_s=0.2)
"""The plane's redelivery backoff in these tests: a recovered sink hears within a tick."""


def pagerduty(url: str, **extra) -> SinkSettings:
    return SinkSettings(type="pagerduty", url=url, routing_key=ROUTING_KEY, **extra)


@contextlib.asynccontextmanager
async def plane_with(settings: Settings, sinks: list[SinkSettings], *, deadline_s: float = 30.0) -> AsyncIterator[ResponsePlane]:
    """A response plane paging ``sinks`` (one HTTP try per delivery: the plane does the retrying)."""
    await ensure_topics(settings.kafka)
    alerter = Alerter(build_sinks(sinks, retry=RetryPolicy(attempts=1)), deadline_s=deadline_s)
    plane = ResponsePlane(settings, alerter, policy=policy("models", auto_remediate=False), redelivery=QUICK)
    try:
        async with running(plane):
            yield plane
    finally:
        await alerter.aclose()


def owed(plane: ResponsePlane, incident_id: str, sink: str) -> list[tuple[str, int]]:
    incident = plane.book.by_id.get(incident_id)
    return [(n.status, n.tries) for n in incident.owed.get(sink, [])] if incident else []


def actions(receiver: AlertReceiver, kind: str) -> list[str]:
    if kind == "pagerduty":
        return [r.json["event_action"] for r in receiver.accepted if r.kind == kind]
    return [r.json["alert"]["status"] for r in receiver.accepted if r.kind == kind]


async def test_all_sinks_down_then_up_get_the_trigger_before_the_resolve(settings):
    pd_port, hook_port = free_port(), free_port()  # nothing listens there yet: every try is refused
    sinks = [pagerduty(f"http://127.0.0.1:{pd_port}/v2/enqueue", timeout_s=2),
             SinkSettings(type="webhook", url=f"http://127.0.0.1:{hook_port}/webhook", timeout_s=2)]
    fire = anomaly("model-down")
    async with plane_with(settings, sinks) as plane:
        await publish(settings, fire)
        await until(lambda: all(owed(plane, fire.id, s) and owed(plane, fire.id, s)[0][1] >= 2 for s in ("pagerduty", "webhook")))
        await publish(settings, anomaly("model-down", "recovered"))
        await until(lambda: [s for s, _ in owed(plane, fire.id, "pagerduty")] == ["firing", "resolved"]
                    and [s for s, _ in owed(plane, fire.id, "webhook")] == ["firing", "resolved"])
        with AlertReceiver(port=pd_port) as pd, AlertReceiver(port=hook_port) as hook:
            await pd.wait_for(kind="pagerduty", count=2, timeout=15)
            await hook.wait_for(kind="webhook", count=2, timeout=15)
            await until(lambda: plane.book.by_id[fire.id].owed == {})
        assert plane.book.by_id[fire.id].alerted == ["firing", "resolved"]
    assert actions(pd, "pagerduty") == ["trigger", "resolve"], "PagerDuty heard the trigger before the resolve"
    assert actions(hook, "webhook") == ["firing", "resolved"]


async def test_a_sink_failing_for_a_while_gets_the_page_once_it_recovers(settings, receiver):
    with AlertReceiver() as flaky:
        flaky.fail_next(4, status=500)
        sinks = [pagerduty(receiver.pagerduty_url), SinkSettings(type="webhook", url=flaky.webhook_url, name="flaky")]
        fire = anomaly("model-flaky")
        async with plane_with(settings, sinks) as plane:
            await publish(settings, fire)
            await receiver.wait_for(kind="pagerduty", count=1)
            await flaky.wait_for(kind="webhook", count=1, timeout=15)
            await publish(settings, anomaly("model-flaky", "recovered"))
            await flaky.wait_for(kind="webhook", count=2, timeout=15)
            await receiver.wait_for(kind="pagerduty", count=2)
            await until(lambda: plane.book.by_id[fire.id].owed == {})
        statuses = [(r.status, r.json["alert"]["status"] if r.accepted else None) for r in flaky.requests]
    assert statuses == [(500, None)] * 4 + [(200, "firing"), (200, "resolved")]
    assert actions(receiver, "pagerduty") == ["trigger", "resolve"], "the healthy sink was paged once each"


async def test_an_owed_page_survives_a_restart(settings):
    port = free_port()
    fire = anomaly("model-restart")
    async with plane_with(settings, [pagerduty(f"http://127.0.0.1:{port}/v2/enqueue", timeout_s=2)]) as plane:
        await publish(settings, fire)
        await until(lambda: owed(plane, fire.id, "pagerduty") and owed(plane, fire.id, "pagerduty")[0][1] >= 1)
    with AlertReceiver(port=port) as pd:
        async with plane_with(settings, [pagerduty(pd.pagerduty_url)]) as plane:
            await pd.wait_for(kind="pagerduty", count=1, timeout=15)
            await until(lambda: plane.book.by_id[fire.id].owed == {})
            assert plane.book.by_id[fire.id].heard == ["pagerduty"]
    assert actions(pd, "pagerduty") == ["trigger"]


class HangingServer:
    """Accepts connections, reads the request, never answers: a sink that hangs."""

    def __init__(self) -> None:
        self.requests = 0
        self.open = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._release = asyncio.Event()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            await self._release.wait()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()

    async def __aenter__(self) -> "HangingServer":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        assert self._server is not None
        self._server.close()


async def test_a_hanging_sink_delays_no_other_sink_and_no_other_incident(settings, receiver):
    async with HangingServer() as hang:
        sinks = [SinkSettings(type="webhook", url=f"http://127.0.0.1:{hang.port}/webhook", name="hangs", timeout_s=120),
                 pagerduty(receiver.pagerduty_url)]
        async with plane_with(settings, sinks, deadline_s=120) as plane:
            first, second = anomaly("model-h1"), anomaly("model-h2", kind="latency", version="v9")
            await publish(settings, first)
            await until(lambda: hang.requests >= 1)  # the hanging sink holds the first page
            await publish(settings, second)
            got = await receiver.wait_for(kind="pagerduty", count=2, timeout=15)
            # Both incidents were paged on PagerDuty while the hanging sink still held its requests open.
            assert hang.open >= 1 and {r.json["dedup_key"] for r in got} == {f"modelmedic-{first.id}", f"modelmedic-{second.id}"}
            assert owed(plane, first.id, "hangs") == [("firing", 0)], "still owed to the hanging sink, nothing lost"

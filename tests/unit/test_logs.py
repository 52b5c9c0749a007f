"""One redaction for every secret a URL carries, and log lines that cannot be forged."""

from __future__ import annotations

import logging
import sys

import httpx
import pytest

from modelmedic.alerting import Alerter, PagerDutySink, RetryPolicy, SlackSink, WebhookSink
from modelmedic.logs import JsonFormatter, TextFormatter, redact, redact_url

from test_alerting import make_alert

SLACK = "https://hooks.slack.com/services/T0AAAA/B0BBBB/s3cr3tW3bh00kPath"


@pytest.mark.parametrize(("text", "hidden", "shown"), [
    (SLACK, "s3cr3tW3bh00kPath", "https://hooks.slack.com/services/***"),
    ("https://hooks.slack.com/workflows/T0/A0/123/s3cr3tFlow", "s3cr3tFlow", "https://hooks.slack.com/workflows/***"),
    ("https://discord.com/api/webhooks/1/s3cr3tDiscord", "s3cr3tDiscord", "https://discord.com/api/***"),
    ("https://alice:hunter22@am.example/api?x=1", "hunter22", "https://***@am.example/api?x=1"),
    ("https://x.example/hook?token=s3cr3tTok&team=risk", "s3cr3tTok", "https://x.example/hook?token=***&team=risk"),
    ("https://x.example/h?api_key=k1&Signature=s1&code=c1", "k1", "https://x.example/h?api_key=***&Signature=***&code=***"),
])
def test_every_kind_of_url_secret_is_masked(text: str, hidden: str, shown: str) -> None:
    assert redact_url(text) == shown
    line = redact(f"sink slack: gave up on {text}, after 4 attempts ({text}).")
    assert hidden not in line and line == f"sink slack: gave up on {shown}, after 4 attempts ({shown})."


def test_urls_without_secrets_and_plain_text_are_left_alone() -> None:
    text = "see https://grafana.local/d/fraud?orgId=1&from=now-1h for model fraud: p99 812 ms"
    assert redact(text) == text


def record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError(f"boom posting to {SLACK}")
        except RuntimeError:
            exc_info = sys.exc_info()
    return logging.LogRecord("modelmedic.test", logging.ERROR, __file__, 1, message, args, exc_info)


def test_the_text_formatter_redacts_and_escapes_control_characters() -> None:
    line = TextFormatter("%(levelname)s %(message)s").format(
        record("incident for model %s not delivered to %s", "fraud\nERROR forged: all good\x1b[2J", SLACK, exc=True))
    first, *traceback = line.split("\n")
    assert first == (r"ERROR incident for model fraud\nERROR forged: all good\x1b[2J not delivered to "
                     "https://hooks.slack.com/services/***")
    assert traceback and traceback[0].startswith("Traceback"), "a traceback keeps its own lines"
    assert "s3cr3t" not in line


def test_the_json_formatter_redacts_message_and_exception() -> None:
    line = JsonFormatter().format(record("posting to %s failed", SLACK, exc=True))
    assert "s3cr3t" not in line and "https://hooks.slack.com/services/***" in line


async def test_sink_errors_never_carry_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    """Slack's URL is its credential; a PagerDuty routing key too: neither reaches a message or a log."""
    transport = httpx.MockTransport(lambda request: httpx.Response(404, text=f"no_service for {request.url}"))
    quick = RetryPolicy(attempts=2, sleep=lambda s: _noop(), jitter=lambda: 0.0)
    local_slack = "http://127.0.0.1:9/slack/T0AAAA/B0BBBB/l0calS3cretPath"
    sinks = [SlackSink(SLACK, transport=transport, retry=quick), SlackSink(local_slack, name="local", transport=transport),
             WebhookSink("https://ops:hunter22@hooks.example/x?token=t0kenValue", transport=transport),
             PagerDutySink("R0UT1NGKEY0123456789abcdefABCDEF", transport=httpx.MockTransport(
                 lambda r: httpx.Response(500, text="routing_key R0UT1NGKEY0123456789abcdefABCDEF")), retry=quick)]
    with caplog.at_level(logging.WARNING):
        results = await Alerter(sinks).send(make_alert())
    everything = " ".join(r.error or "" for r in results) + caplog.text
    assert all(not r.ok for r in results)
    for secret in ("s3cr3tW3bh00kPath", "l0calS3cretPath", "hunter22", "t0kenValue", "R0UT1NGKEY0123456789abcdefABCDEF"):
        assert secret not in everything, secret
    assert "https://hooks.slack.com/services/***" in everything and "http://127.0.0.1:9/slack/***" in everything


async def _noop() -> None:
    return None

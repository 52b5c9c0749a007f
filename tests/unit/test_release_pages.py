"""A failed release step pages the model's owners through the configured sinks, over real HTTP.

The CLI runs as a user runs it (its own event loop, in a thread), against the reference model
server and a strict alert receiver, both on loopback.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from load import model_server
from load.model_server import ServerConfig
from modelmedic.cli import main
from modelmedic.registry import Registry
from modelmedic.release.notify import failure_alert
from modelmedic.testing import AlertReceiver

POLICY = """
rates_rps: [50]
step_s: 0.4
warmup_requests: 0
min_tail_samples: 1
max_p99_ms: 1000
min_throughput_rps: 10
min_quality: {accuracy: 0.9}
"""


def features(i: int) -> list[float]:
    return [(i % 7) / 7 - 0.5]


@pytest.fixture
def receiver() -> Iterator[AlertReceiver]:
    with AlertReceiver() as r:
        yield r


@pytest_asyncio.fixture(loop_scope="function")  # served by the test's own loop while the CLI runs in a thread
async def wrong_server() -> AsyncIterator[str]:
    """A classifier whose every answer is flipped: accuracy 0.0 on a holdout the good model gets right."""
    server = await model_server.start_server(ServerConfig(model="fraud", version="v1.0.0", bad=True, bad_latency_ms=0))
    try:
        yield server.url
    finally:
        await server.close()


def certify_args(tmp_path: Path, endpoint: str, sink_url: str) -> list[str]:
    """A first version of ``fraud`` (owners fraud-team, risk) and the inputs to certify it; one webhook sink."""
    registry = Registry.init(tmp_path / "registry")
    registry.register_model("fraud", description="Scores payments", owners=["fraud-team", "risk"],
                            interface={"input": {"type": "object"}, "output": {"type": "object"}})
    registry.add_version("fraud", "1.0.0", "first", "s3://m/fraud/1", "sha256:" + "1" * 64)
    (tmp_path / "requests.jsonl").write_text(
        "".join(json.dumps({"request_id": f"r{i}", "features": features(i)}) + "\n" for i in range(20)))
    (tmp_path / "holdout.jsonl").write_text("".join(
        json.dumps({"request_id": f"h{i}", "features": features(i), "label": int(sum(features(i)) > 0)}) + "\n"
        for i in range(30)))
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "config.yaml").write_text(f"sinks:\n  - {{type: webhook, name: oncall, url: '{sink_url}'}}\n"
                                          "kafka: {bootstrap_servers: '127.0.0.1:1'}\n")  # no broker: audit unreachable
    return ["certify", "fraud", "1.0.0", "--registry", str(registry.path), "--endpoint", endpoint,
            "--requests", str(tmp_path / "requests.jsonl"), "--holdout", str(tmp_path / "holdout.jsonl"),
            "--policy", str(tmp_path / "policy.yaml"), "--config", str(tmp_path / "config.yaml")]


async def test_a_failed_certification_pages_the_owning_team_naming_the_gate(
        tmp_path: Path, wrong_server: str, receiver: AlertReceiver, capsys: pytest.CaptureFixture[str]) -> None:
    code = await asyncio.to_thread(main, certify_args(tmp_path, wrong_server, receiver.webhook_url))
    out, err = capsys.readouterr()
    assert code == 1 and "paged oncall" in out, err
    [page] = receiver.deliveries("webhook")
    alert = page.json["alert"]
    assert (alert["labels"]["team"], alert["labels"]["owners"], alert["labels"]["stage"]) == (
        "fraud-team", "fraud-team,risk", "certification")
    assert (alert["model"], alert["version"], alert["severity"], alert["anomaly_class"]) == (
        "fraud", "v1.0.0", "error", "release")
    assert "quality_floor.accuracy: FAILED, observed 0, must be >= 0.9" in alert["summary"]
    assert "run `modelmedic certify` again" in alert["summary"]


async def test_an_undeliverable_page_is_reported_and_the_exit_code_still_means_the_gate(
        tmp_path: Path, wrong_server: str, receiver: AlertReceiver, capsys: pytest.CaptureFixture[str]) -> None:
    receiver.fail_next(1, status=400)  # a rejected payload: not retried
    code = await asyncio.to_thread(main, certify_args(tmp_path, wrong_server, receiver.webhook_url))
    captured = capsys.readouterr()
    assert code == 1 and "paged" not in captured.out
    assert "page to oncall not delivered (error)" in captured.err
    assert "could not write the audit record to modelmedic.audit" in captured.err, "reported, exit code unchanged"
    assert [r.status for r in receiver.requests] == [400]


def test_a_page_without_owners_has_no_team_label_and_a_fresh_incident_per_failure() -> None:
    first = failure_alert("fraud", "v2.0.0", "deploy", "refused", (), now_ms=1_000)
    again = failure_alert("fraud", "v2.0.0", "deploy", "refused", (), now_ms=2_000)
    assert first.labels == {"stage": "deploy"} and first.dedup_key != again.dedup_key

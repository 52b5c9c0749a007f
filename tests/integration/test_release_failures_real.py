"""Every failed release step pages the owning team and lands on the audit topic; so does ``--force``.

All real: the ``modelmedic`` CLI as a release manager types it (its own loop, in a thread), a git
registry, the local API server as modelmedic's least-privilege identity, a reference model server
whose /healthz answers 503 (the post-deploy check fails), the strict HTTP alert receiver as the
webhook sink, and Kafka (the live test reads its inference topic; the audit is read back from it).
tests/unit/test_release_pages.py covers the certification failure.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from fixtures_kube import KubeNamespace

from load import model_server
from load.model_server import ServerConfig
from modelmedic.cli import main
from modelmedic.cli.audit import read_audit
from modelmedic.config import Settings
from modelmedic.kafka import ensure_topics
from modelmedic.kube import VERSION_LABEL
from modelmedic.registry import Registry
from modelmedic.testing import AlertReceiver

pytestmark = pytest.mark.integration

MODEL = "fraud"
REPORT = {"latency_p50_ms": 2, "latency_p95_ms": 3, "latency_p99_ms": 4, "throughput_rps": 100, "error_rate": 0.0,
          "quality": {"accuracy": 1.0}, "passed": True}


@pytest.fixture
def receiver() -> Iterator[AlertReceiver]:
    with AlertReceiver() as r:
        yield r


@pytest_asyncio.fixture(loop_scope="function")  # served by the test's loop while the CLI runs in a thread
async def unhealthy() -> AsyncIterator[str]:
    """A model server whose /healthz answers 503: every post-deploy health check fails."""
    server = await model_server.start_server(ServerConfig(model=MODEL, version="v2.0.0", fail_health=True))
    try:
        yield server.url + "/healthz"
    finally:
        await server.close()


def make_registry(root: Path) -> Registry:
    """fraud: v1.0.0 certified and stable, v2.0.0 registered and never certified; owners fraud-team, risk."""
    reg = Registry.init(root)
    reg.register_model(MODEL, description="Scores payments", owners=["fraud-team", "risk"],
                       interface={"input": {"type": "object"}, "output": {"type": "number"}})
    for version, digit in (("1.0.0", "1"), ("2.0.0", "2")):
        reg.add_version(MODEL, version, "notes", f"s3://models/{MODEL}/{version}/", "sha256:" + digit * 64)
    reg.attach_certification(MODEL, "1.0.0", REPORT)
    reg.promote(MODEL, "1.0.0", "certified")
    reg.promote(MODEL, "1.0.0", "stable")
    return reg


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run ``modelmedic`` in a thread; its exit code and everything it printed."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def pages(receiver: AlertReceiver) -> list[dict[str, Any]]:
    return [d.json["alert"] for d in receiver.deliveries("webhook")]


async def test_failed_live_test_deploy_refusal_failed_checks_undo_and_rollback_page_and_audit(
    tmp_path: Path, settings: Settings, kube_namespace: KubeNamespace, receiver: AlertReceiver, unhealthy: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ns = kube_namespace
    await ensure_topics(settings.kafka)
    reg = make_registry(tmp_path / "registry")
    await ns.create_model(MODEL, "v1.0.0", replicas=1)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"kafka": settings.kafka.model_dump(mode="json"),
                                  "sinks": [{"type": "webhook", "name": "oncall", "url": receiver.webhook_url}]}))
    common = ("--registry", str(reg.path), "--config", str(config))
    kube = ("--namespace", ns.name, "--kubeconfig", str(ns.stack.service_kubeconfig), "--rollout-timeout", "60",
            "--health-url", unhealthy, "--health-timeout", "1")

    # 1. a live test with no shadow traffic fails its pairs gate
    code, out = await cli(capsys, "live-test", MODEL, "2.0.0", *common, "--duration", "0.5", "--from-beginning")
    assert code == 1 and "paged oncall" in out and "audited release-failed" in out, out

    # 2. deploying a version never certified is refused by the gate
    code, out = await cli(capsys, "deploy", MODEL, "2.0.0", *common, *kube)
    assert code == 3 and "refusing to deploy" in out and "paged oncall" in out, out

    # 3. forced past the gate, its health check fails: undone automatically (v1.0.0 runs again)
    code, out = await cli(capsys, "deploy", MODEL, "2.0.0", *common, *kube, "--force")
    assert code == 1 and "audited release-forced, release-failed" in out, out
    assert {p.metadata.labels[VERSION_LABEL] for p in ns.pods(MODEL)} == {"v1.0.0"}
    assert reg.stage(MODEL, "v2.0.0") == "retired"

    # 4. an emergency rollback to the retired version is refused by the gate: the rollback someone counted on
    #    did not happen, so it pages and is audited like a refused deploy
    code, out = await cli(capsys, "rollback", MODEL, "--to", "2.0.0", *common, *kube)
    assert code == 3 and "refusing to roll back to v2.0.0" in out and "paged oncall" in out, out
    assert {p.metadata.labels[VERSION_LABEL] for p in ns.pods(MODEL)} == {"v1.0.0"}

    #    forced, it fails its own checks: left for a person
    code, out = await cli(capsys, "rollback", MODEL, "--to", "2.0.0", *common, *kube, "--force")
    assert code == 1 and "audited release-forced, release-failed" in out, out

    # 5. deploying v1.0.0 over the retired v2.0.0 fails its checks and is NOT undone (v2.0.0 may not run)
    code, out = await cli(capsys, "deploy", MODEL, "1.0.0", *common, *kube)
    assert code == 1 and "not rolled back" in out, out

    sent = pages(receiver)
    assert [(p["version"], p["labels"]["stage"]) for p in sent] == [
        ("v2.0.0", "live-test"), ("v2.0.0", "deploy"), ("v2.0.0", "rollback"), ("v2.0.0", "rollback"),
        ("v2.0.0", "rollback"), ("v1.0.0", "deploy")]
    assert all(p["labels"]["team"] == "fraud-team" and p["anomaly_class"] == "release" for p in sent)
    assert "paired requests 0 (must be >= 200)" in sent[0]["summary"]
    assert "refused by a release gate" in sent[1]["summary"] and "never" in sent[1]["summary"]
    assert "modelmedic rolled back to v1.0.0" in sent[2]["summary"]
    assert "refused by a release gate" in sent[3]["summary"] and "retired" in sent[3]["summary"]
    assert "rolling back to it failed its checks" in sent[4]["summary"]
    assert "failed its checks and was not rolled back" in sent[5]["summary"]

    records = [r for r in await read_audit(settings.kafka, None) if r["anomaly_class"] == "release"]
    assert [(r["action"], r["version"], r["details"].get("stage") or r["details"]["command"]) for r in records] == [
        ("release-failed", "v2.0.0", "live-test"),
        ("release-failed", "v2.0.0", "deploy"),
        ("release-forced", "v2.0.0", "deploy"), ("release-failed", "v2.0.0", "rollback"),
        ("release-failed", "v2.0.0", "rollback"),
        ("release-forced", "v2.0.0", "rollback"), ("release-failed", "v2.0.0", "rollback"),
        ("release-failed", "v1.0.0", "deploy")]
    failed = [r for r in records if r["action"] == "release-failed"]
    assert [r["incident_id"] for r in failed] == [p["incident_id"] for p in sent], "each failure names its page"
    forced = [r for r in records if r["action"] == "release-forced"]
    assert "was never certified" in forced[0]["details"]["overridden"]
    assert "retired" in forced[1]["details"]["overridden"]
    assert all(r["actor"] and r["model"] == MODEL for r in records)

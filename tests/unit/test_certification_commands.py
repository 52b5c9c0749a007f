"""``modelmedic certify | deploy | rollback``: refusals are exit code 2 with a message saying what to do.

The commands' happy paths run end to end in tests/integration/test_release.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from modelmedic.cli import main
from modelmedic.registry import Registry


@pytest.fixture
def registry(tmp_path: Path) -> str:
    reg = Registry.init(tmp_path / "registry")
    reg.register_model("fraud", description="Card fraud", owners=["risk"],
                       interface={"input": {"type": "object"}, "output": {"type": "integer"}})
    reg.add_version("fraud", "1.0.0", "first", "s3://m/fraud/1", "sha256:" + "1" * 64)
    return str(reg.path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_certify_refuses_bad_inputs_before_sending_anything(tmp_path: Path, registry: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_text('{"features": [1]}\n')
    policy = tmp_path / "policy.yaml"
    policy.write_text("step_s: -1\n")
    args = ("certify", "fraud", "1.0.0", "--registry", registry, "--endpoint", "http://nowhere.invalid")
    code, err = run(capsys, *args, "--requests", str(requests), "--policy", str(policy))
    assert code == 3 and "is invalid: step_s: Input should be greater than 0" in err
    code, err = run(capsys, *args, "--requests", str(tmp_path / "absent.jsonl"))
    assert code == 3 and "cannot read" in err and "absent.jsonl" in err
    code, err = run(capsys, *args, "--requests", str(requests), "--holdout", str(requests))
    assert code == 3 and 'a holdout line needs a "label"' in err


def test_release_commands_need_a_registry(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("MODELMEDIC_REGISTRY", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    code, err = run(capsys, "certify", "fraud", "1.0.0", "--endpoint", "http://x", "--requests", "r.jsonl")
    assert code == 3 and "no registry given: pass --registry PATH or set MODELMEDIC_REGISTRY" in err


def test_deploy_without_a_kubeconfig_outside_a_pod_says_so(registry: str, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    code, err = run(capsys, "deploy", "fraud", "1.0.0", "--registry", registry)
    assert code == 1 and "not running in a Kubernetes pod" in err

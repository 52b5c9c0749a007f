"""CLI conventions (issue 15 item 9): --version, exit codes, a closed pipe, playbooks list, policy check."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import modelmedic.cli
from modelmedic import errors
from modelmedic.cli import add_global_options, main
from modelmedic.cli.incident import ApiError, ApiUnreachable
from modelmedic.cli.silence import NotFound
from modelmedic.remediations import api


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"modelmedic {importlib.metadata.version('modelmedic')}"


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["playbooks", "frobnicate"])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(("error", "code"), [
    (errors.KafkaUnavailable("kafka down"), 4),
    (errors.KubeUnavailable("api server down"), 4),
    (errors.EndpointError("candidate down"), 4),
    (errors.UnknownModelError("no such model"), 3),
    (errors.KubeNotFound("no such deployment"), 3),
    (errors.KubeForbidden("rbac"), 3),
    (errors.UnknownPlaybookError("no such playbook"), 3),
    (errors.NotCertifiedError("not certified"), 3),
    (errors.PolicyError("bad policy"), 3),
    (errors.ReleaseError("refused"), 3),
    (errors.CertificationInputError("unreadable holdout"), 3),
    (NotFound("no such silence"), 3),
    (ApiError("401 missing token"), 3),
    (ApiUnreachable("connection refused"), 4),
    (errors.RegistryGitError("git failed"), 1),
    (errors.KubeRolloutTimeout("slow rollout"), 1),
    (errors.ModelmedicError("other"), 1),
])
def test_errors_exit_with_their_code(error: errors.ModelmedicError, code: int, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    def fail(args: argparse.Namespace) -> int:
        raise error

    parser = argparse.ArgumentParser(prog="modelmedic")
    add_global_options(parser)
    parser.set_defaults(func=fail)
    monkeypatch.setattr(modelmedic.cli, "build_parser", lambda: parser)
    assert main([]) == code
    assert capsys.readouterr().err == f"modelmedic: {error}\n"


def test_closed_pipe_exits_141_without_a_traceback() -> None:
    """``modelmedic playbooks list | head -1`` with head already gone: made deterministic by
    letting head read its one line and exit before modelmedic writes, so the write must fail."""
    read_end, write_end = os.pipe()
    head = subprocess.Popen(["head", "-1"], stdin=read_end, stdout=subprocess.PIPE)
    os.close(read_end)
    os.write(write_end, b"first line\n")
    assert head.communicate(timeout=30)[0] == b"first line\n"  # head has exited: nobody reads the pipe now
    try:
        cli = subprocess.run([sys.executable, "-m", "modelmedic", "playbooks", "list"], stdout=write_end,
                             stderr=subprocess.PIPE, timeout=120, check=False)
    finally:
        os.close(write_end)
    assert cli.stderr.decode() == ""
    assert cli.returncode == 141


def test_playbooks_list_names_params_and_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["playbooks", "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    scale_out = next(pb for pb in listing["playbooks"] if pb["name"] == "scale-out")
    assert scale_out["source"] == "modelmedic"
    assert scale_out["params"] == {"step": "int=1", "max_replicas": "int=10", "stabilization_s": "float=300.0"}
    assert {"rollback", "restart"} <= {pb["name"] for pb in listing["playbooks"]}

    assert main(["playbooks", "list"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert any(line.split()[:2] == ["scale-out", "modelmedic"] and "step: int=1" in line for line in table)


def test_playbooks_list_shows_a_broken_plugin_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    dist = tmp_path / "ghost_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ghost-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[modelmedic.playbooks]\nghost = no_such_module_for_ghost:fix\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(api, "default_registry", api.PlaybookRegistry())  # keep the process-wide one clean

    assert main(["playbooks", "list", "--json"]) == 0
    broken = json.loads(capsys.readouterr().out)["broken"]
    assert broken == [{"entry_point": "ghost",
                       "reason": "ModuleNotFoundError: No module named 'no_such_module_for_ghost'"}]
    assert main(["playbooks", "list"]) == 0
    assert any(line.split()[:2] == ["ghost", "BROKEN"] for line in capsys.readouterr().out.splitlines())


POLICY = """\
rules:
  - match: {anomaly_class: latency}
    playbooks: [{name: scale-out, params: {step: 2}}, {name: restart}]
  - match: {anomaly_class: errors}
    playbooks: [{name: rollback}]
"""


def test_policy_check_ok_summarises(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    assert main(["policy", "check", str(path)]) == 0
    assert capsys.readouterr().out == f"OK {path}: 2 rules, playbooks used: restart, rollback, scale-out\n"
    assert main(["policy", "check", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "file": str(path), "ok": True, "rules": 2, "playbooks": ["restart", "rollback", "scale-out"]}


@pytest.mark.parametrize(("text", "expected"), [
    (POLICY.replace("step: 2", "stepz: 2"), "rules.0.playbooks.0 (scale-out)"),
    (POLICY.replace("name: rollback", "name: rolback"), "no playbook named 'rolback'"),
    ("rules: 7\n", "rules"),
])
def test_policy_check_refuses_a_bad_file_with_exit_3(text: str, expected: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    assert main(["policy", "check", str(path)]) == 3
    assert expected in capsys.readouterr().err
    assert main(["policy", "check", str(path), "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and expected in report["error"]


def test_policy_check_of_a_missing_file_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(tmp_path / "nope.yaml")]) == 3
    assert "not found" in capsys.readouterr().err


@contextmanager
def socket_closed_port() -> Iterator[int]:
    """A local port bound but not listening: a connection to it is refused, and nobody else can take it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_an_unreachable_service_exits_4(capsys: pytest.CaptureFixture[str]) -> None:
    with socket_closed_port() as port:
        assert main(["incident", "--url", f"http://127.0.0.1:{port}", "--timeout", "5", "list"]) == 4
    assert "cannot reach modelmedic" in capsys.readouterr().err

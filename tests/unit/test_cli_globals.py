"""The CLI's global options (issue 15 item 9): ``--config``, ``--json`` and ``-v`` before or after the command,
on every command, with the exit codes unchanged; ``--json`` output where the command prints something, and its errors as JSON."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelmedic.cli import GLOBAL_OPTIONS, _parsers, build_parser, main

COMMANDS = [["run"], ["replay", "m.csv"], ["audit"], ["silence", "list"], ["maintenance", "rm", "mw-1"],
            ["incident", "list"], ["incident", "ack", "i-1"], ["playbooks", "list"], ["policy", "check", "p.yaml"],
            ["operator", "token", "alice"], ["registry", "list"], ["rollback", "fraud"]]
"""A command of every group, with its required arguments."""


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def test_every_parser_takes_the_global_options_and_only_the_top_one_defaults_them() -> None:
    """A sub-parser's default would overwrite what was given before the command."""
    top, *below = _parsers(build_parser())
    assert len(below) > 30
    for parser in below:
        for option_strings, _ in GLOBAL_OPTIONS:
            action = parser._option_string_actions.get(option_strings[0])
            assert action is not None and action.default is argparse.SUPPRESS, (parser.prog, option_strings)
    assert {(a.dest, a.default) for a in top._actions if a.dest in ("config", "json", "verbose")} == {
        ("config", None), ("json", False), ("verbose", 0)}


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_the_global_options_mean_the_same_before_and_after_the_command(command: list[str]) -> None:
    parser = build_parser()
    given = ["--json", "-c", "service.yaml", "-vv"]
    before, after, between = (parser.parse_args(given + command), parser.parse_args(command + given),
                              parser.parse_args(command[:1] + given + command[1:]))
    plain = parser.parse_args(command)
    for args in (before, after, between):
        assert (args.json, args.config, args.verbose) == (True, "service.yaml", 2), command
    assert (plain.json, plain.config, plain.verbose) == (False, None, 0)


def test_config_before_the_command_is_the_one_read(capsys: pytest.CaptureFixture[str]) -> None:
    """The exit codes stay: a missing settings file is refused (3), wherever --config is; bad usage is 2."""
    assert main(["-c", "/no/such/settings.yaml", "audit"]) == 3
    assert "config file /no/such/settings.yaml not found" in capsys.readouterr().err
    assert main(["audit", "--config", "/no/such/settings.yaml"]) == 3
    with pytest.raises(SystemExit) as usage:
        main(["--json", "audit", "--limit", "3"])
    assert usage.value.code == 2


def test_errors_under_json_are_json_with_the_same_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    """A script that parses ``--json`` output parses the failure too: one JSON object on stderr, nothing on stdout."""
    assert main(["--json", "-c", "/no/such/settings.yaml", "audit"]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    error = json.loads(captured.err)["error"]
    assert error["exit_code"] == 3 and "config file /no/such/settings.yaml not found" in error["message"]
    assert error["type"].endswith("Error")


def test_json_before_the_command_reaches_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - match: {anomaly_class: latency}\n    playbooks: [{name: scale-out}]\n")
    assert main(["--json", "policy", "check", str(policy)]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert main(["--json", "operator", "token", "alice"]) == 0
    assert json.loads(capsys.readouterr().out)["operator"]["name"] == "alice"
    metric = tmp_path / "metric.csv"
    metric.write_text("timestamp,value\n" + "".join(f"2026-01-01 00:{m:02d}:00,{1.0 + m % 3}\n" for m in range(30)))
    assert main(["--json", "replay", str(metric)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 30 and set(rows[0]) == {"timestamp", "value", "anomaly_score"}
    assert main(["replay", str(metric)]) == 0  # without it, the CSV as before
    assert capsys.readouterr().out.splitlines()[0] == "timestamp,value,anomaly_score"


def test_v_logs_more(root_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["playbooks", "list", "-v"]) == 0
    assert logging.getLogger().level == logging.INFO
    assert main(["-vv", "playbooks", "list"]) == 0
    assert logging.getLogger().level == logging.DEBUG

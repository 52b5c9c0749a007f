"""deploy/local/alertmanager.py without starting anything: install guidance and the generated config."""

from __future__ import annotations

import json

import pytest

from deploy.local import alertmanager as stack


def test_missing_binary_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack.shutil, "which", lambda name: None)
    monkeypatch.setattr(stack.os, "geteuid", lambda: 1000)
    with pytest.raises(stack.StackError, match=r"apt-get install -y prometheus-alertmanager"):
        stack.ensure_installed()
    monkeypatch.setattr(stack.os, "geteuid", lambda: 0)
    with pytest.raises(stack.StackError, match=r"apt-get install -y prometheus-alertmanager"):
        stack.ensure_installed(install=False)


def test_config_forwards_to_the_webhook_with_resolutions() -> None:
    config = json.loads(stack.config_yaml("http://127.0.0.1:1/webhook/am"))
    (receiver,) = config["receivers"]
    assert config["route"]["receiver"] == receiver["name"]
    assert config["route"]["group_wait"] == "0s"
    assert receiver["webhook_configs"] == [{"url": "http://127.0.0.1:1/webhook/am", "send_resolved": True}]
    assert "webhook_configs" not in json.loads(stack.config_yaml())["receivers"][0]

"""Pytest fixtures for alert delivery: a real Alertmanager per session, a strict receiver per test.

Registered as a plugin (``pytest_plugins = ["fixtures_alerting"]`` in ``tests/conftest.py``,
or ``-p fixtures_alerting`` with ``tests`` on ``PYTHONPATH``). A missing Alertmanager binary
is installed when running as root, otherwise the fixture errors with the install command:
alerting tests never skip.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# deploy/local/ holds scripts, not part of the installed package: import them from the checkout.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from deploy.local import alertmanager as alertmanager_stack  # noqa: E402
from modelmedic.testing import AlertReceiver  # noqa: E402


@pytest.fixture(scope="session")
def alertmanager_notifications() -> Iterator[AlertReceiver]:
    """Where the session's Alertmanager forwards every alert it notifies about, resolutions included."""
    with AlertReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def alertmanager(
    tmp_path_factory: pytest.TempPathFactory, alertmanager_notifications: AlertReceiver
) -> Iterator[alertmanager_stack.Alertmanager]:
    """A real Alertmanager on a free loopback port, for the whole session; ``.url`` is its base URL.

    It is shared: tests tell their alerts apart by a unique ``incident_id``.
    """
    workdir = tmp_path_factory.mktemp("alertmanager")
    running = alertmanager_stack.start(workdir, webhook_url=alertmanager_notifications.webhook_url + "/alertmanager")
    try:
        yield running
    finally:
        alertmanager_stack.stop(workdir)


@pytest.fixture
def receiver() -> Iterator[AlertReceiver]:
    """A fresh PagerDuty / Slack / webhook receiver on a free loopback port."""
    with AlertReceiver() as r:
        yield r


TEAMS = ("payments", "search")
"""The teams :func:`team_alertmanager` routes to receivers of their own."""


def team_routes(webhook_url: str) -> str:
    """An Alertmanager routing tree by the ``team`` label: each of :data:`TEAMS` to its own
    webhook receiver (``<webhook_url>/<team>``), anything else to ``<webhook_url>/default``."""
    def receiver(name: str) -> dict:
        return {"name": name, "webhook_configs": [{"url": f"{webhook_url}/{name}", "send_resolved": True}]}

    route = {"receiver": "default", "group_by": ["incident_id"], "group_wait": "0s", "group_interval": "1s",
             "repeat_interval": "1h",
             "routes": [{"matchers": [f'team="{team}"'], "receiver": team} for team in TEAMS]}
    return json.dumps({"route": route, "receivers": [receiver("default"), *(receiver(t) for t in TEAMS)]}, indent=2)


@pytest.fixture
def team_alertmanager(tmp_path: Path) -> Iterator[tuple[alertmanager_stack.Alertmanager, AlertReceiver]]:
    """A real Alertmanager of its own routing by team (:func:`team_routes`), and the receiver its
    notifications reach: ``received.path`` ends with the team whose receiver it went to."""
    with AlertReceiver() as notifications:
        running = alertmanager_stack.start(tmp_path, config=team_routes(notifications.webhook_url))
        try:
            yield running, notifications
        finally:
            alertmanager_stack.stop(tmp_path)

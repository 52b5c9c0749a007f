"""Shared fixtures. Real components are started once per session and stopped at teardown;
a component that cannot start fails the tests that need it, loudly (never a skip)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from deploy.local import kafka as kafka_stack  # noqa: E402
from modelmedic.config import Settings, Topics, load_settings  # noqa: E402

pytest_plugins = ["fixtures_alerting", "fixtures_kube"]


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kafka_stack.Broker]:
    """A real single-node Kafka broker for the whole session."""
    workdir = tmp_path_factory.mktemp("kafka")
    broker = kafka_stack.start(workdir, partitions=3)
    try:
        yield broker
    finally:
        kafka_stack.stop(workdir)


@pytest.fixture
def topics() -> Topics:
    """Fresh topic names per test, so tests never see each other's records or state."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    return Topics(**{name: f"{prefix}.{name}" for name in Topics.model_fields})


@pytest.fixture
def settings(kafka: kafka_stack.Broker, topics: Topics) -> Settings:
    """Settings pointing at the session broker with this test's topics and group."""
    return load_settings(
        kafka={"bootstrap_servers": kafka.bootstrap, "topics": topics.model_dump(), "partitions": 3,
               **kafka_stack.SINGLE_BROKER,
               "group_id": f"g-{topics.inference}"},
        http={"port": 0},
        detection={"snapshot_interval_s": 1.0},
        # Finite test streams end; a wall-clock idle close would read that as a fleet-wide outage.
        windows={"idle_close_ms": 600_000},
    )

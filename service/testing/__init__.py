"""The test kit: what playbook authors and modelmedic's own tests and benchmarks stand in for the world with.

- :class:`FakeKube` (``modelmedic.testing.kube``): the Kubernetes boundary in memory, every
  write recorded, for the decisions of playbooks and releases (docs/playbooks.md shows a
  playbook tested with it).
- :func:`offline_plane` (``modelmedic.testing.plane``): the detection plane's hot path with a
  :class:`FakeConsumer` and :class:`FakeProducer` handed in through its client factories.
- :class:`AlertReceiver` (``modelmedic.testing.receiver``): a local PagerDuty / Alertmanager /
  Slack / webhook endpoint as strict about their contracts as the real services, that tests
  await pages on, and that tells what a person was paged with from what went over the wire.

Nothing in the product imports this package (an import contract in pyproject.toml).
"""

from modelmedic.testing.kube import Event, FakeKube, Write, deployment_state
from modelmedic.testing.plane import FakeConsumer, FakeProducer, Record, offline_plane
from modelmedic.testing.contracts import Invalid, validate_alertmanager, validate_pagerduty, validate_slack
from modelmedic.testing.receiver import AlertReceiver, Page, Received

__all__ = [
    "AlertReceiver", "Event", "FakeConsumer", "FakeKube", "FakeProducer", "Invalid", "Page", "Received", "Record",
    "Write", "deployment_state", "offline_plane", "validate_alertmanager", "validate_pagerduty", "validate_slack",
]

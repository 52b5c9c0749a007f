"""deploy/local/kube.py itself: a second start finds the running plane, stop is idempotent."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy.local import kube as local_kube

pytestmark = pytest.mark.integration


def test_start_again_returns_the_running_plane_without_starting_another(kube_stack: local_kube.KubeStack) -> None:
    again = local_kube.start(kube_stack.workdir)
    assert again == kube_stack, "same server port and pids: nothing was restarted"
    assert local_kube.status(kube_stack.workdir) == kube_stack


def test_stop_where_nothing_runs_is_a_no_op(tmp_path: Path) -> None:
    assert local_kube.stop(tmp_path) is False
    assert local_kube.status(tmp_path) is None

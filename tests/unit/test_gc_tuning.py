"""``modelmedic run`` fits the garbage collector to a streaming service (``service.tune_gc``)."""

from __future__ import annotations

import argparse
import gc

import pytest

from modelmedic import app as service
from modelmedic.cli import run as commands


@pytest.fixture
def restore_gc():
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_tune_gc_freezes_what_start_up_made_and_raises_the_threshold(restore_gc) -> None:
    assert gc.get_threshold() != service.GC_THRESHOLD
    service.tune_gc()
    assert gc.get_threshold() == service.GC_THRESHOLD
    assert gc.get_freeze_count() > 10_000  # modules, classes and functions loaded so far


def test_the_run_command_tunes_the_collector_before_serving(restore_gc, monkeypatch) -> None:
    seen = []

    async def serve(settings) -> int:
        seen.append(gc.get_threshold())
        return 0

    monkeypatch.setattr(service, "serve", serve)
    assert commands._run(argparse.Namespace(config=None, json=False, verbose=0)) == 0
    assert seen == [service.GC_THRESHOLD]

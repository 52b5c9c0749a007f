"""The service's metrics about itself: no *_created series, the build, readiness and the event loop's lag."""

from __future__ import annotations

import asyncio
from importlib import metadata

import pytest
from prometheus_client import REGISTRY, generate_latest

from modelmedic import metrics
from modelmedic.app import watch_loop_lag
from modelmedic.metrics import TopModels
from virtual_time import VirtualTimeLoop, run_in_virtual_time


def test_metrics_has_no_created_series_and_says_which_build_runs():
    metrics.EVENTS.labels("ok").inc(0)
    text = generate_latest(REGISTRY).decode()
    assert "modelmedic_events_total" in text
    assert not [line for line in text.splitlines() if "_created" in line and not line.startswith("#")
                and "modelmedic_series_created_total" not in line]
    build = REGISTRY.get_sample_value("modelmedic_build_info", {"version": metadata.version("modelmedic"),
                                                                 "python_version": __import__("platform").python_version()})
    assert build == 1.0


def test_the_ready_gauge_reads_the_readiness_check_at_scrape_time():
    ready = {"now": False}
    metrics.READY.set_function(lambda: float(ready["now"]))
    assert REGISTRY.get_sample_value("modelmedic_ready") == 0.0
    ready["now"] = True
    assert REGISTRY.get_sample_value("modelmedic_ready") == 1.0


def test_the_loop_lag_gauge_shows_how_long_work_held_the_loop():
    """A 0.3 s blocking call shows at the end of the window that saw it as 0.3 s less what of it fell before
    the next tick was due (5 ms here); a later window, with nothing blocking, brings the gauge back to 0.
    On a virtual clock (tests/unit/virtual_time.py), so a loaded machine stalling the test process adds nothing."""

    async def scenario() -> tuple[float | None, float | None]:
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch_loop_lag(stop, tick_s=0.01, window_s=0.1))
        await asyncio.sleep(0.025)  # between two ticks (0.02, 0.03): no tie of timers decides the figure
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualTimeLoop)
        loop.hold(0.3)  # the work that holds the loop, past the end of the watcher's window
        await asyncio.sleep(0.02)  # the watcher's overdue timer runs first and publishes that window
        held = REGISTRY.get_sample_value("modelmedic_event_loop_lag_seconds")
        await asyncio.sleep(0.25)
        after = REGISTRY.get_sample_value("modelmedic_event_loop_lag_seconds")
        stop.set()
        await watcher
        return held, after

    held, after = run_in_virtual_time(scenario())
    assert held == pytest.approx(0.3 - 0.005, abs=1e-9)
    assert after == pytest.approx(0.0, abs=1e-9)


def test_per_model_series_are_bounded_to_the_k_models_with_the_most_open_incidents():
    """5,000 models with open incidents export at most k models' series: the worst ones."""
    top = TopModels(k=20)
    incidents = [(f"model-{i:04d}", "latency") for i in range(5000)]
    incidents += [(f"model-{i:04d}", "errors") for i in range(4990, 5000)]  # ten models with two
    incidents += [("model-4999", "errors")]
    top.source = lambda: incidents
    (family,) = top.collect()
    models = {s.labels["model"] for s in family.samples}
    assert len(models) == 20
    assert {f"model-{i:04d}" for i in range(4990, 5000)} <= models
    assert {(s.labels["anomaly_class"], s.value) for s in family.samples if s.labels["model"] == "model-4999"} == {
        ("latency", 1.0), ("errors", 2.0)}
    assert len(family.samples) == 30  # 20 models, ten of them in two classes
    top.source = lambda: ()
    assert [f.samples for f in top.collect()] == [[]]

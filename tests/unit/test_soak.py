"""load/soak.py's verdict on its samples (the 30-minute soak itself is a benchmark, not a test)."""

from __future__ import annotations

import pytest

from load.soak import (JOIN_ENTRY_BYTES, LAG_FLOOR, Sample, allocator_lines, judge, override, read_metrics,
                       service_env, span_lines)


CAP = 1_000_000


def samples(rss_mb_per_h: float, lag_per_s: float, minutes: int = 30, joins_mb_per_h: float = 0.0) -> list[Sample]:
    """One sample every 10 s of a service consuming 1,000 events/s at 20% of a core, RSS 300 MB
    plus an allocator's +-2 MB breathing, with the given trends; of the RSS trend, ``joins_mb_per_h``
    is the quality joins' filling (from 100 MB)."""
    return [Sample(t_s=t, rss_mb=300 + rss_mb_per_h * t / 3600 + (2 if (t // 10) % 2 else -2), cpu_s=0.2 * t,
                   events=1000.0 * t, lag=50 + lag_per_s * t, loop_lag_s=0.01,
                   joins=(100 + joins_mb_per_h * t / 3600) * 1e6 / JOIN_ENTRY_BYTES["label"],
                   joins_mb=100 + joins_mb_per_h * t / 3600)
            for t in range(0, minutes * 60 + 1, 10)]


def test_a_steady_service_is_flat_with_no_lag_growth():
    verdict = judge(samples(rss_mb_per_h=0.0, lag_per_s=0.0), warmup_s=300, joins_cap=CAP)
    assert verdict.memory_flat and verdict.lag_steady
    assert verdict.events_per_s == pytest.approx(1000) and verdict.cpu_share == pytest.approx(0.2)
    assert abs(verdict.rss_slope_mb_per_h) < 1


def test_a_leak_of_20_mb_an_hour_and_a_falling_behind_consumer_are_caught():
    verdict = judge(samples(rss_mb_per_h=20.0, lag_per_s=5.0), warmup_s=300, joins_cap=CAP)
    assert not verdict.memory_flat and verdict.rss_slope_mb_per_h == pytest.approx(20, rel=0.05)
    assert not verdict.lag_steady and verdict.lag_growth == pytest.approx(5.0 * 1500, rel=0.01)
    # 0.5 records/s of lag growth over 25 minutes is 750 records: under a second of traffic and the floor
    assert judge(samples(0.0, 0.5), warmup_s=300, joins_cap=CAP).lag_growth < LAG_FLOOR


def test_growth_the_quality_joins_take_is_told_from_growth_beside_them():
    filling = judge(samples(rss_mb_per_h=20.0, lag_per_s=0.0, joins_mb_per_h=20.0), warmup_s=300, joins_cap=CAP)
    assert not filling.memory_flat and filling.rest_flat  # bounded: it stops when the joins are full
    assert filling.joins_per_h == pytest.approx(20e6 / JOIN_ENTRY_BYTES["label"], rel=1e-6)
    assert "cap 1,000,000" in filling.lines()[2] and filling.lines()[2].endswith("FLAT")
    leaking = judge(samples(rss_mb_per_h=40.0, lag_per_s=0.0, joins_mb_per_h=20.0), warmup_s=300, joins_cap=CAP)
    assert not leaking.rest_flat and leaking.rest_slope_mb_per_h == pytest.approx(20, rel=0.05)


def test_the_spans_show_when_memory_rose():
    """A step of 10 MB at minute 10, flat around it: the spans' slopes say where, the whole span's would not."""
    stepped = [Sample(t_s=t, rss_mb=200 + (10 if t >= 600 else 0) + 0.2 * (t % 20 == 0), cpu_s=0.05 * t, events=500.0 * t,
                      lag=0, loop_lag_s=0.001 * (t // 60), joins=100.0 * min(t, 900)) for t in range(0, 1800, 10)]
    lines = span_lines(stepped, 600)
    assert len(lines) == 2 + 3
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    assert [row[0] for row in cells] == ["0-590", "600-1190", "1200-1790"]
    assert cells[0][1] == "200.2 -> 200.0" and cells[1][1] == "210.2 -> 210.0" and cells[2][1] == "210.2 -> 210.0"
    assert all(abs(int(row[2])) <= 1 for row in cells)  # flat within each span
    assert cells[1][3] == "60,000 -> 90,000" and cells[2][3] == "90,000 -> 90,000"
    assert [row[4:] for row in cells] == [["100", "500", "9"], ["100", "500", "19"], ["100", "500", "29"]]
    stalled = [Sample(t_s=t, rss_mb=200, cpu_s=1.0, events=7.0, lag=0, loop_lag_s=0) for t in (0, 10)]
    assert span_lines(stalled, 600)[2] == "| 0-10 | 200.0 -> 200.0 | +0 | 0 -> 0 | - | 0 | 0 |"  # no event: no CPU per event
    assert span_lines([], 600) == lines[:2]


def test_too_few_samples_after_the_warmup_says_what_to_do():
    with pytest.raises(ValueError, match="run longer or sample more often"):
        judge(samples(0.0, 0.0, minutes=1), warmup_s=300, joins_cap=CAP)


def test_the_metrics_page_is_read_for_lag_loop_lag_and_every_outcome():
    page = ("# TYPE modelmedic_events_total counter\nmodelmedic_events_total{outcome=\"ok\"} 90.0\n"
            "modelmedic_events_total{outcome=\"late\"} 10.0\nmodelmedic_consumer_lag_records 7.0\n"
            "modelmedic_event_loop_lag_seconds 0.25\n")
    page += ("modelmedic_quality_join_entries{join=\"label\"} 1000.0\n"
             "modelmedic_quality_join_entries{join=\"judged\"} 2000.0\n")
    assert read_metrics(page) == {"events": 100.0, "lag": 7.0, "loop_lag_s": 0.25, "joins": 3000.0,
                                  "joins_mb": (1000 * JOIN_ENTRY_BYTES["label"] + 2000 * JOIN_ENTRY_BYTES["judged"]) / 1e6}


def test_a_setting_is_set_at_its_dotted_path_as_yaml():
    config = {"kafka": {"partitions": 6}}
    override(config, "quality.label_horizon_ms=2400000")
    override(config, "kafka.partitions=3")
    assert config == {"kafka": {"partitions": 3}, "quality": {"label_horizon_ms": 2400000}}
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        override(config, "quality.label_horizon_ms")


def test_a_service_environment_variable_is_a_name_and_its_value_as_given():
    assert service_env("MALLOC_ARENA_MAX=2") == ("MALLOC_ARENA_MAX", "2")
    assert service_env("GLIBC_TUNABLES=glibc.malloc.trim_threshold=131072") == (
        "GLIBC_TUNABLES", "glibc.malloc.trim_threshold=131072")
    assert service_env("EMPTY=") == ("EMPTY", "")
    for bad in ("MALLOC_ARENA_MAX", "=2"):
        with pytest.raises(SystemExit, match="expected NAME=VALUE"):
            service_env(bad)


def test_a_heap_snapshot_is_written_on_request_and_what_grew_is_named_by_its_line(tmp_path) -> None:
    """``modelmedic.app.dump_heap`` (SIGUSR1) writes nothing unless tracing; two of its snapshots name the line
    that allocated what grew between them (``load/soak.py --heap-every``)."""
    import sys
    import tracemalloc

    from load.soak import heap_growth
    from modelmedic.app import dump_heap

    assert not tracemalloc.is_tracing() and dump_heap(tmp_path) is None
    assert not list(tmp_path.glob("heap-*"))
    # The list exists before the first snapshot: a list built between them would count 1 or 2 blocks of its own
    # depending on whether CPython's free list of list objects had one to reuse (what earlier tests left in
    # this process: a full `pytest -n 2` run gave 2,002 blocks where the file alone gives 2,001).
    kept: list[bytes | None] = [None] * 2000
    tracemalloc.start(1)
    try:
        first = dump_heap(tmp_path)
        for i in range(len(kept)):
            kept[i] = bytes(1000)  # the growth: 2,000 blocks, and only they, allocated on this line
        last = dump_heap(tmp_path)
    finally:
        tracemalloc.stop()
    assert first is not None and last is not None
    lines = heap_growth(tmp_path, after_s=0, t0=0, frames=1)
    assert lines[0].startswith(f"heap: {first.name} -> {last.name}")
    grew = lines[1].split()
    assert "test_soak.py" in lines[1] and grew[:3] == [f"{2000 * sys.getsizeof(bytes(1000)) / 1e6:+.3f}", "MB", "+2,000"]


def test_each_signal_appends_the_allocators_books_and_the_soak_prints_their_trends(tmp_path) -> None:
    """``dump_heap`` (SIGUSR1) writes the books with or without tracing; the soak's trend after the warm-up
    tells memory held while in use stays flat (retention) from live growth."""
    import json

    from modelmedic.app import dump_heap

    dump_heap(tmp_path)
    written = [json.loads(line) for line in next(tmp_path.glob("alloc-*.jsonl")).read_text().splitlines()]
    assert len(written) == 1 and written[0]["pymalloc_arena_bytes"] >= written[0]["pymalloc_allocated_bytes"] > 0
    t0 = written[0]["epoch_ms"] / 1000
    rows = [{"epoch_ms": written[0]["epoch_ms"] + 600_000 * i, "pymalloc_arena_bytes": 80e6 + 1e6 * i,
             "pymalloc_allocated_bytes": 70e6, "malloc_heap_bytes": 30e6 + 1e6 * i, "malloc_mmap_bytes": 5e6,
             "malloc_used_bytes": 25e6 + 5e6, "malloc_free_bytes": 5e6 + 1e6 * i} for i in range(4)]
    (tmp_path / "alloc-2.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    lines = allocator_lines(tmp_path, after_s=1, t0=t0)
    assert len(lines) == 1 + 1 + 4 + 1  # the header, this process's books, the four written, the trend
    assert lines[-1] == "allocators after the warm-up (3 books): held +12.00 MB/h, in use +0.00 MB/h"
    assert lines[3].split() == ["600s", "81.0", "/", "70.0", "31.0", "/", "5.0", "/", "30.0", "/", "6.0"]
    holes = {"malloc_top_bytes": 1e6, "malloc_holes_small_bytes": 2e6, "malloc_holes_medium_bytes": 3e6,
             "malloc_holes_large_bytes": 4e6, "malloc_hole_largest_bytes": 2.5e6, "malloc_arenas": 2}
    (tmp_path / "alloc-2.jsonl").write_text(json.dumps({**rows[1], **holes}) + "\n")  # books since the holes
    assert allocator_lines(tmp_path, after_s=1, t0=t0)[2].split()[-8:] == [
        "(1.0,", "2.0", "/", "3.0", "/", "4.0,", "2.5;", "2)"]
    assert allocator_lines(tmp_path / "none", after_s=0, t0=0)[0].startswith("allocators: no books")

"""The simulated fleet: deterministic, valid, at the right rates, and each incident breaks
exactly what it says (the right field of the right model in the right time range) and
nothing else: every other record stays byte-identical to the run without it."""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from modelmedic.events import InferenceEvent, Rejected, decode_inference, decode_label

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from load import fleet  # noqa: E402
from load.fleet import FleetSpec, Incident  # noqa: E402

START = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SPEC = FleetSpec(models=6, rate=40.0, canary_fraction=0.1, seed=7)
WINDOW = (20.0, 35.0)


def run(spec: FleetSpec = SPEC, incidents: tuple[Incident, ...] = (), duration_s: float = 60, **hooks) -> list[tuple[bytes, bytes]]:
    return list(fleet.generate(spec, incidents, START, duration_s, **hooks))


def decoded(records: list[tuple[bytes, bytes]]) -> list[InferenceEvent]:
    events = [decode_inference(value) for _, value in records]
    assert all(isinstance(e, InferenceEvent) for e in events)
    return events  # type: ignore[return-value]


def seconds(event: InferenceEvent) -> float:
    return (event.ts - START) / 1000.0


def regressor(spec: FleetSpec = SPEC) -> fleet.ModelProfile:
    return next(p for p in fleet.profiles(spec) if not p.labels)


def classifier(spec: FleetSpec = SPEC) -> fleet.ModelProfile:
    return next(p for p in fleet.profiles(spec) if p.labels)


def split(records: list[tuple[bytes, bytes]], model: str) -> tuple[list[bytes], list[InferenceEvent]]:
    """(raw records outside the incident's model and window, decoded records inside)."""
    outside, inside = [], []
    for (_, raw), event in zip(records, decoded(records)):
        if event.model == model and WINDOW[0] <= seconds(event) < WINDOW[1]:
            inside.append(event)
        else:
            outside.append(raw)
    return outside, inside


def by_role(events: list[InferenceEvent], role: str) -> dict[str, InferenceEvent]:
    return {e.request_id: e for e in events if e.role == role}


def test_same_seed_gives_identical_bytes_and_another_seed_does_not() -> None:
    assert run() == run()
    assert run() != run(replace(SPEC, seed=8))


def test_records_are_valid_keyed_by_model_and_in_event_time_order() -> None:
    records = run(duration_s=30.5)
    events = decoded(records)
    assert [k for k, _ in records] == [e.model.encode() for e in events]
    ts = [e.ts for e in events]
    assert ts == sorted(ts) and START <= ts[0] and ts[-1] < START + 30_500
    production = [e.request_id for e in events if e.role == "production"]
    assert len(production) == len(set(production))
    assert {e.model for e in events} == {f"model-{i:03d}" for i in range(SPEC.models)}


def test_rates_error_rate_and_latency_match_the_profiles() -> None:
    spec = replace(SPEC, seasonality=0.0, canary_fraction=0.0, models=4)
    duration = 300
    events = decoded(run(spec, duration_s=duration))
    for p in fleet.profiles(spec):
        mine = [e for e in events if e.model == p.model]
        expected = p.rate * duration
        assert abs(len(mine) - expected) < 4 * math.sqrt(expected)
        assert np.median([e.latency_ms for e in mine]) == pytest.approx(p.latency_ms, rel=0.05)
        assert all(e.version == p.stable_version for e in mine)
        assert all(isinstance(e.prediction, str if p.labels else float) for e in mine if e.ok)
    errors = sum(not e.ok for e in events)
    assert abs(errors - spec.error_rate * len(events)) < 4 * math.sqrt(spec.error_rate * len(events))
    assert all(e.prediction is None for e in events if not e.ok)


def test_daily_seasonality_moves_the_rate_by_time_of_day() -> None:
    spec = replace(SPEC, canary_fraction=0.0, seasonality=0.3)
    for hour in (0, 6, 12, 18):
        start = START + hour * 3_600_000
        count = sum(1 for _ in fleet.generate(spec, (), start, 100))
        expected = 100 * sum(
            p.rate * (1 + 0.3 * math.sin(2 * math.pi * hour / 24 + p.phase)) for p in fleet.profiles(spec)
        )
        assert abs(count - expected) < 4 * math.sqrt(expected)


def test_canary_mirrors_a_fraction_of_requests_with_the_previous_version() -> None:
    events = decoded(run(duration_s=120))
    profiles = {p.model: p for p in fleet.profiles(SPEC)}
    production = by_role(events, "production")
    canaries = [e for e in events if e.role == "canary"]
    assert len(canaries) == pytest.approx(SPEC.canary_fraction * len(production), rel=0.1)
    agree = 0
    for i, e in enumerate(events):
        if e.role != "canary":
            continue
        twin = events[i - 1]
        assert (twin.role, twin.request_id, twin.ts, twin.model) == ("production", e.request_id, e.ts, e.model)
        assert e.version == profiles[e.model].previous_version
        if twin.ok and e.ok:
            if profiles[e.model].labels:
                agree += twin.prediction == e.prediction
            else:
                assert abs(twin.prediction - e.prediction) < 0.35 * profiles[e.model].pred_sd  # type: ignore[operator]
                agree += 1
    assert agree > 0.9 * len(canaries)


@pytest.mark.parametrize("kind", ["latency_spike", "error_burst", "throughput_collapse", "bad_version", "overload"])
def test_an_incident_leaves_every_other_model_and_time_byte_identical(kind: str, spec: FleetSpec = SPEC) -> None:
    target = regressor(spec).model
    incident = Incident.parse(f"{kind}:{target}@{WINDOW[0]:g}+{WINDOW[1] - WINDOW[0]:g}")
    base_outside, base_inside = split(run(spec), target)
    outside, inside = split(run(spec, incidents=(incident,)), target)
    assert outside == base_outside
    assert inside != base_inside
    # The canary runs elsewhere: its mirrors of the base traffic are untouched.
    base_canary = by_role(base_inside, "canary")
    canary = by_role(inside, "canary")
    assert {rid: canary[rid] for rid in base_canary if rid in canary} == {
        rid: e for rid, e in base_canary.items() if rid in canary
    }


def paired(kind: str, magnitude: float | None = None, **hooks) -> tuple[fleet.ModelProfile, list[tuple[InferenceEvent, InferenceEvent]], list[InferenceEvent], list[InferenceEvent]]:
    """Run with and without one incident on the first regressor; pair production records by request id."""
    profile = regressor()
    text = f"{kind}:{profile.model}@{WINDOW[0]:g}+{WINDOW[1] - WINDOW[0]:g}" + (f"x{magnitude:g}" if magnitude else "")
    _, base = split(run(**hooks), profile.model)
    _, hit = split(run(incidents=(Incident.parse(text),), **hooks), profile.model)
    base_prod, hit_prod = by_role(base, "production"), by_role(hit, "production")
    pairs = [(base_prod[rid], hit_prod[rid]) for rid in base_prod if rid in hit_prod]
    return profile, pairs, list(base_prod.values()), list(hit_prod.values())


def test_latency_spike_multiplies_latency_only() -> None:
    _, pairs, base, hit = paired("latency_spike", 5)
    assert len(base) == len(hit) == len(pairs)
    for before, after in pairs:
        assert after.latency_ms == pytest.approx(5 * before.latency_ms, abs=0.06)
        assert (after.ok, after.prediction, after.version) == (before.ok, before.prediction, before.version)


def test_error_burst_sets_the_error_rate_only() -> None:
    _, pairs, base, hit = paired("error_burst", 0.4)
    assert len(base) == len(hit)
    assert sum(not after.ok for _, after in pairs) / len(pairs) == pytest.approx(0.4, abs=0.1)
    for before, after in pairs:
        assert after.latency_ms == before.latency_ms
        assert after.prediction == (before.prediction if after.ok else None)


def test_throughput_collapse_thins_requests_and_keeps_survivors_unchanged() -> None:
    _, pairs, base, hit = paired("throughput_collapse", 0.1)
    assert 0 < len(hit) < 0.25 * len(base)
    assert all(before == after for before, after in pairs) and len(pairs) == len(hit)


def test_bad_version_serves_the_next_version_slower_with_errors_and_shifted_predictions() -> None:
    profile, pairs, base, hit = paired("bad_version", 3)
    assert len(base) == len(hit)
    assert {after.version for _, after in pairs} == {profile.next_version}
    for before, after in pairs:
        assert after.latency_ms == pytest.approx(3 * before.latency_ms, abs=0.04)
        if before.ok and after.ok:
            assert after.prediction - before.prediction == pytest.approx(2 * profile.pred_sd, abs=1e-3)  # type: ignore[operator]
    assert sum(not a.ok for _, a in pairs) > sum(not b.ok for b, _ in pairs)


def test_bad_version_shifts_a_classifiers_labels_away_from_its_canary() -> None:
    model = classifier().model
    spec = replace(SPEC, canary_fraction=0.5)
    events = decoded(run(spec, (Incident.parse(f"bad_version:{model}@0+60x4"),), duration_s=60))
    healthy = decoded(run(spec, duration_s=60))

    def agreement(events: list[InferenceEvent]) -> float:
        pairs = [(a, b) for a, b in zip(events, events[1:]) if b.role == "canary" and a.model == model and a.ok and b.ok]
        return sum(a.prediction == b.prediction for a, b in pairs) / len(pairs)

    assert agreement(healthy) > 0.9
    assert agreement(events) < 0.75


def test_overload_multiplies_the_rate_and_slows_down_with_utilization() -> None:
    profile, pairs, base, hit = paired("overload", 3)
    assert len(hit) == pytest.approx(3 * len(base), rel=0.15)
    ratio = np.median([a.latency_ms for a in hit]) / np.median([b.latency_ms for b in base])
    utilization = 3 * len(base) / (WINDOW[1] - WINDOW[0]) / profile.capacity_per_replica
    assert ratio == pytest.approx(float(fleet.slowdown(np.array(utilization))), rel=0.15)
    assert ratio > 3


def test_scaling_out_through_the_capacity_hook_cures_an_overload() -> None:
    _, pairs, base, hit = paired("overload", 3, capacity=lambda model: 4)
    assert len(hit) == pytest.approx(3 * len(base), rel=0.15)
    assert all(after == before for before, after in pairs)


def test_the_version_hook_decides_what_is_served_so_a_rollback_cures_a_bad_version() -> None:
    profile = regressor()
    stable = {p.model: p.stable_version for p in fleet.profiles(SPEC)}
    incident = Incident.parse(f"bad_version:{profile.model}@0+60x3")
    assert run(incidents=(incident,), version=stable.__getitem__) == run()
    # Without an incident the next version is just another healthy version, served when deployed.
    upgraded = {**stable, profile.model: profile.next_version}
    healthy = decoded(run(version=upgraded.__getitem__))
    mine = [e for e in healthy if e.model == profile.model and e.role == "production"]
    assert {e.version for e in mine} == {profile.next_version}
    assert np.median([e.latency_ms for e in mine]) == pytest.approx(profile.latency_ms, rel=0.1)
    # With the incident, the bad version is slow whenever it is deployed, whatever the clock says.
    deployed = decoded(run(incidents=(Incident.parse(f"bad_version:{profile.model}@50+1x3"),), version=upgraded.__getitem__))
    slow = [e.latency_ms for e in deployed if e.model == profile.model and e.role == "production"]
    assert np.median(slow) == pytest.approx(3 * profile.latency_ms, rel=0.1)


def test_a_bad_version_is_bad_only_for_its_own_model() -> None:
    spec = replace(SPEC, models=20, canary_fraction=0.0)
    profiles = fleet.profiles(spec)
    # model `bad` deploys the very version string that model `other` serves healthily
    other, bad = next((a, b) for a in profiles for b in profiles if a.stable_version == b.next_version)
    healthy = decoded(run(spec, duration_s=10))
    broken = decoded(run(spec, (Incident.parse(f"bad_version:{bad.model}@0+10x3"),), duration_s=10))
    assert [e for e in broken if e.model == other.model] == [e for e in healthy if e.model == other.model]
    slow = [b.latency_ms / a.latency_ms for a, b in zip(healthy, broken) if b.model == bad.model]
    assert slow and np.allclose(slow, 3.0, rtol=0.01)


def test_incident_grammar_round_trips_and_defaults_the_magnitude() -> None:
    spike = Incident.parse("latency_spike:model-003@20+15x5")
    assert spike == Incident("latency_spike", "model-003", 20.0, 15.0, 5.0) and spike.end_s == 35.0
    assert Incident.parse(str(spike)) == spike
    assert Incident.parse("throughput_collapse:model-001@1.5+2").magnitude == fleet.DEFAULT_MAGNITUDE["throughput_collapse"]
    for bad in ("latency_spike:model-003@20", "meteor:model-003@1+2", "latency_spike:model-003@a+2"):
        with pytest.raises(ValueError, match="bad incident"):
            Incident.parse(bad)
    with pytest.raises(ValueError, match="not in the fleet"):
        fleet.Fleet(SPEC, [Incident.parse("overload:model-042@1+2")], START)


@pytest.mark.parametrize("incident, reason", [
    ("meteor:model-001@1+2", "kind must be one of"),
    ("latency_spike:model-020@1+2", "not in the fleet"),
])
def test_the_cli_rejects_a_bad_incident_before_touching_kafka(
    incident: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        fleet.main(["--bootstrap", "127.0.0.1:1", "--models", "20", "--incident", incident])
    assert exit_.value.code == 2 and reason in capsys.readouterr().err


class FakeProducer:
    """Collects what ``run_live`` sends (unit tests never open a socket)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.flushed = False

    async def send(self, topic: str, value: bytes, key: bytes) -> None:
        self.sent.append((topic, key, value))

    async def flush(self) -> None:
        self.flushed = True


async def test_run_live_sends_keyed_records_and_announces_each_incident_boundary_once() -> None:
    producer = FakeProducer()
    timeline: list[tuple[str, str]] = []
    incidents = (Incident.parse("latency_spike:model-001@2+3"), Incident.parse("overload:model-002@8+10"))
    sent = await fleet.run_live(
        producer, "t", replace(SPEC, rate=5.0), incidents, duration_s=10, speed=200,  # type: ignore[arg-type]
        on_incident=lambda inc, phase, wall: timeline.append((phase, inc.kind)),
    )
    assert sent == len(producer.sent) > 0 and producer.flushed
    assert timeline == [("start", "latency_spike"), ("end", "latency_spike"), ("start", "overload"), ("end", "overload")]
    events = decoded([(k, v) for _, k, v in producer.sent])
    assert all(k == e.model.encode() for (_, k, _), e in zip(producer.sent, events))
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    assert events[-1].ts - events[0].ts < 10_000


async def test_run_live_sends_each_due_label_to_the_labels_topic_after_its_request() -> None:
    producer = FakeProducer()
    spec = replace(SPEC, rate=2.0, label_fraction=0.3)
    sent = await fleet.run_live(producer, "inference", spec, (), duration_s=2400, speed=48_000,  # type: ignore[arg-type]
                                labels_topic="labels")
    assert sent == len(producer.sent)
    requests = {(e.model, e.request_id): e.ts for e in decoded([(k, v) for t, k, v in producer.sent if t == "inference"])}
    labels = [(k, decode_label(v)) for t, k, v in producer.sent if t == "labels"]
    # 30% of ~2 x 6 x 2400 answers, those due (5-30 min after their request) before the 40 minutes end
    assert 1000 < len(labels) < 0.3 * len(requests)
    for key, label in labels:
        assert key == label.model.encode()
        assert 300_000 <= label.ts - requests[label.model, label.request_id] <= 1_800_000
    assert [label.ts for _, label in labels] == sorted(label.ts for _, label in labels)


async def test_run_live_without_a_labels_topic_sends_no_label() -> None:
    producer = FakeProducer()
    await fleet.run_live(producer, "inference", replace(SPEC, rate=2.0, label_fraction=0.3), (),  # type: ignore[arg-type]
                         duration_s=2400, speed=48_000)
    assert {t for t, _, _ in producer.sent} == {"inference"}


# -- the realistic fleet (load/fleet.py realistic(), stream(), labels, the newer incident kinds) --

REAL = fleet.realistic(48, seed=3, rate_range=(0.05, 20.0))
MONDAY = 1_767_571_200_000  # 2026-01-05T00:00:00Z


def chunks(spec: FleetSpec, incidents: tuple[Incident, ...] = (), duration_s: float = 600, start: int = MONDAY,
           chunk_s: float = 60.0) -> list[fleet.Chunk]:
    return list(fleet.stream(spec, incidents, start, duration_s, chunk_s=chunk_s))


def test_the_realistic_shape_spans_its_ranges_and_mixes_roles_and_prediction_types() -> None:
    profiles = fleet.profiles(fleet.realistic(400, seed=5))
    rates = np.log10([p.rate for p in profiles])
    assert -2 <= rates.min() and rates.max() <= math.log10(5000)
    # log-uniform: each decade of the 5.7 between 0.01 and 5,000 req/s holds about its share
    assert np.mean(rates < 0) == pytest.approx(2 / math.log10(5e5), abs=0.08)
    assert all(5 <= p.latency_ms <= 500 and 0.001 <= p.error_rate <= 0.01 for p in profiles)
    assert {p.prediction for p in profiles} == {"number", "label", "probabilities"}
    assert [p.model for p in profiles if p.canary] == [fleet.model_id(i) for i in range(3, 400, 4)]
    assert [p.model for p in profiles if p.shadow] == [fleet.model_id(i) for i in range(1, 400, 6)]


def test_a_sparse_model_gets_poisson_arrivals_not_a_rounded_rate() -> None:
    spec = FleetSpec(models=1, rate_range=(0.02, 0.02), seasonality=0.0, seed=4)
    ts = np.array([decode_inference(v).ts for c in chunks(spec, duration_s=48 * 3600) for _, v in c.inference])
    expected = 0.02 * 48 * 3600
    assert abs(ts.size - expected) < 4 * math.sqrt(expected)
    gaps = np.diff(ts)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.1)  # exponential gaps
    busy_minutes = np.unique(ts // 60_000).size / (48 * 60)
    assert busy_minutes == pytest.approx(1 - math.exp(-1.2), abs=0.04)


def test_a_nightly_trough_at_a_quarter_of_the_peak_and_lighter_weekends_without_a_step() -> None:
    f = fleet.Fleet(REAL, (), MONDAY)
    day = np.array([f._seasonal_rate(MONDAY + h * 3_600_000) / f._rate for h in np.arange(0, 24, 0.25)])
    assert (day.min(axis=0) / day.max(axis=0)) == pytest.approx(0.25, abs=0.01)
    week = np.array([f.weekly_factor(MONDAY + m * 60_000) for m in range(0, 7 * 24 * 60, 10)])
    assert week.max() == 1.0 and week.min() == pytest.approx(REAL.weekend)
    assert np.abs(np.diff(week, axis=0)).max() < 0.02  # at most 2% per 10 minutes: no cliff at midnight
    assert (week[: 4 * 144] == 1.0).all()  # Monday to Thursday untouched


def test_a_business_day_ramps_at_opening_and_closing_with_the_sines_trough_and_mean() -> None:
    spec = replace(REAL, business_ramp_h=2.0)
    f = fleet.Fleet(spec, (), MONDAY)
    hours = np.arange(0, 24, 0.25)
    day = np.array([f._seasonal_rate(MONDAY + h * 3_600_000) / f._rate for h in hours])
    assert day.mean(axis=0) == pytest.approx(1.0, abs=0.01)  # the sine's daily mean: the same requests a day
    assert (day.min(axis=0) / day.max(axis=0)) == pytest.approx(0.25, abs=0.01)  # and its trough
    local = np.mod(hours[:, None] + f._phase / (2 * math.pi) * 24, 24)  # each model's own clock
    opened = day > day.min(axis=0)
    assert (opened == ((local > 8) & (local < 19))).all()  # open from 08:00, closed from 17:00 + 2 h
    assert np.diff(day, axis=0).max() < (day.max(axis=0) - day.min(axis=0)).max() / 4  # a ramp, not a step


def test_canaries_and_shadows_mirror_production_with_close_healthy_predictions() -> None:
    events = decoded([r for c in chunks(REAL, duration_s=120) for r in c.inference])
    profiles = {p.model: p for p in fleet.profiles(REAL)}
    production = {(e.model, e.request_id): e for e in events if e.role == "production"}
    for role, has, version in (("canary", "canary", "previous_version"), ("shadow", "shadow", "candidate_version")):
        mirrors = [e for e in events if e.role == role]
        assert mirrors and {e.model for e in mirrors} <= {m for m, p in profiles.items() if getattr(p, has)}
        differences = []
        for e in mirrors:
            p = profiles[e.model]
            twin = production[(e.model, e.request_id)]
            assert e.version == getattr(p, version) and e.ts == twin.ts
            if e.ok and twin.ok and p.prediction == "number":
                differences.append(abs(e.prediction - twin.prediction) / p.pred_sd)
        # slightly different (not equal), never far apart
        assert differences and np.mean(np.array(differences) > 0) > 0.95 and max(differences) < 0.35


def test_probability_models_answer_a_distribution_over_their_labels() -> None:
    profiles = {p.model: p for p in fleet.profiles(REAL) if p.prediction == "probabilities"}
    vectors = [(e.model, e.prediction) for e in decoded([r for c in chunks(REAL, duration_s=120) for r in c.inference])
               if e.model in profiles and e.ok]
    assert vectors
    for model, vector in vectors:
        assert len(vector) == len(profiles[model].labels) and sum(vector) == pytest.approx(1.0, abs=0.01)
        assert max(vector) > 1 / len(vector)


def test_delayed_labels_follow_the_label_contract_and_join_their_requests() -> None:
    spec = replace(fleet.realistic(12, seed=3, rate_range=(1.0, 4.0)), seasonality=0.0, weekend=1.0)
    got = chunks(spec, duration_s=50 * 60)
    requests = {(e.model, e.request_id): e for c in got for e in decoded(c.inference) if e.role == "production"}
    labels = [decode_label(v) for c in got for _, v in c.labels]
    assert all(not isinstance(label, Rejected) for label in labels)
    assert [label.ts for label in labels] == sorted(label.ts for label in labels)
    labelled = {(label.model, label.request_id): label for label in labels}
    early = [e for e in requests.values() if e.ok and e.ts < MONDAY + 15 * 60_000]  # all their labels are due
    share = sum((e.model, e.request_id) in labelled for e in early) / len(early)
    assert share == pytest.approx(spec.label_fraction, abs=0.02)
    profiles = {p.model: p for p in fleet.profiles(spec)}
    right = []
    for key, label in labelled.items():
        request = requests[key]
        assert 300_000 <= label.ts - request.ts <= 1_800_000
        kind = profiles[request.model].prediction
        if kind == "label":
            right.append(label.label == request.prediction)
        elif kind == "probabilities":
            right.append(label.label == int(np.argmax(request.prediction)))
    assert np.mean(right) == pytest.approx(fleet.LABEL_ACCURACY, abs=0.03)


@pytest.mark.parametrize("kind", ["flapping", "surge", "deploy"])
def test_the_newer_kinds_leave_every_other_model_and_time_byte_identical(kind: str) -> None:
    test_an_incident_leaves_every_other_model_and_time_byte_identical(kind)


@pytest.mark.parametrize("kind", ["throughput_collapse", "surge", "latency_spike"])
def test_on_rough_traffic_too_an_incident_leaves_every_other_model_and_time_byte_identical(kind: str) -> None:
    """A drop thins a model's requests and a surge adds some; neither may move another model's walk, batches or
    slow outliers (the rough harness fleets compare a quiet fleet with the same fleet and its incidents)."""
    test_an_incident_leaves_every_other_model_and_time_byte_identical(kind, fleet.rough(SPEC))


def test_creep_adds_its_magnitude_every_ten_minutes() -> None:
    spec = replace(SPEC, models=2, rate=5.0, canary_fraction=0.0)
    model = fleet.model_id(0)
    incident = Incident.parse(f"creep:{model}@600+3600x0.02")
    base = decoded(list(fleet.generate(spec, (), START, 4800, chunk_s=60)))
    hit = decoded(list(fleet.generate(spec, (incident,), START, 4800, chunk_s=60)))
    for before, after in zip(base, hit):
        step = (seconds(before) - 600) // 600
        expected = 1.02 ** step if before.model == model and 0 <= step < 6 else 1.0
        assert after.latency_ms == pytest.approx(before.latency_ms * expected, abs=0.011)


def test_flapping_is_slow_for_three_minutes_of_every_six() -> None:
    _, pairs, _, _ = paired("flapping", 3)
    for before, after in pairs:
        on = (seconds(before) - WINDOW[0]) // fleet.FLAP_HALF_PERIOD_S % 2 == 0
        assert after.latency_ms == pytest.approx(before.latency_ms * (3 if on else 1), abs=0.03)


def test_a_surge_multiplies_the_rate_with_capacity_to_spare() -> None:
    _, pairs, base, hit = paired("surge", 3)
    assert len(hit) == pytest.approx(3 * len(base), rel=0.15)
    assert all(after == before for before, after in pairs)


def test_poison_records_each_break_the_contract() -> None:
    model = regressor().model
    records = run(incidents=(Incident.parse(f"poison:{model}@0+60x0.2"),))
    healthy = run()
    broken = [raw for (_, raw), (_, good) in zip(records, healthy) if raw != good]
    served = sum(e.model == model and e.role == "production" for e in decoded(healthy))
    assert len(broken) == pytest.approx(0.2 * served, abs=4 * math.sqrt(0.2 * 0.8 * served))
    assert all(isinstance(decode_inference(raw), Rejected) for raw in broken)


def test_a_normal_deploy_serves_the_next_version_three_percent_slower() -> None:
    profile, pairs, _, _ = paired("deploy")
    assert {after.version for _, after in pairs} == {profile.next_version}
    assert all(after.latency_ms == pytest.approx(1.03 * before.latency_ms, abs=0.011) for before, after in pairs)


# -- the rough shape (load/fleet.py rough()): what real traffic has beyond a Poisson process on a sine --

def test_a_rough_fleet_batches_requests_wanders_and_has_slow_outliers() -> None:
    spec = fleet.rough(FleetSpec(models=1, rate_range=(20.0, 20.0), seasonality=0.0, canary_fraction=0.0,
                                 latency_sigma=0.01, seed=4))
    events = [e for c in chunks(spec, duration_s=6 * 3600, chunk_s=10.0) for e in decoded(c.inference)]
    ts = np.array([e.ts for e in events])
    # The batches keep the walked rate: the walk has a random stream of its own, so a fresh fleet replays it.
    walk = fleet.Fleet(spec, (), MONDAY)
    walked = sum(10.0 * float(walk._wandered(10_000.0)[0] * walk._seasonal_rate(MONDAY + i * 10_000 + 5_000)[0])
                 for i in range(6 * 360))  # (the seasonal rate: a second harmonic, even without a sine)
    assert abs(ts.size / walked - 1.0) < 0.02  # (batch counts: sd about 0.3% of this many requests)
    # batches of 2 on average: about half the requests share their millisecond with the one before
    assert np.mean(np.diff(ts) == 0) == pytest.approx(0.5, abs=0.05)
    # the rate wanders ~10% over half-hours: ten-minute counts vary far beyond Poisson's sqrt
    per_10min = np.bincount((ts - MONDAY) // 600_000)
    assert per_10min.std() / per_10min.mean() > 0.05 > 3 * math.sqrt(2.0 / per_10min.mean())
    latency = np.array([e.latency_ms for e in events])
    assert np.mean(latency > 2.0 * np.median(latency)) == pytest.approx(spec.latency_outliers, rel=0.15)  # 3-20x slow


"""A model's quality on the status API (``GET /api/v1/models/{model}/quality``) and its page: each decision's
state ("insufficient data" until it can judge), the label-free estimate against the labels, data quality and
the drifting features; and the service's view assembled from real monitors (issue 14, item 3)."""

from __future__ import annotations

import json

import numpy as np

from fake_status import FakeSource, bearer, client
from modelmedic.app import _quality_of
from modelmedic.config import QualitySettings
from modelmedic.detection.features import FeatureMonitor
from modelmedic.detection.plane import PartitionState
from modelmedic.detection.quality import QualityMonitor
from modelmedic.events import InferenceEvent, LabelEvent
from modelmedic.http.quality_api import public_quality


async def test_the_api_gives_each_versions_decisions_estimate_inputs_and_drifting_features() -> None:
    c = await client(FakeSource())
    try:
        answer = await c.get("/api/v1/models/fraud/quality", headers=bearer("bob"))
        body = await answer.json()
        other = await (await c.get("/api/v1/models/unknown/quality", headers=bearer("bob"))).json()
        anonymous = await c.get("/api/v1/models/fraud/quality")
    finally:
        await c.close()
    assert answer.status == 200 and [v["version"] for v in body["versions"]] == ["v1", "v2"]
    v1, v2 = body["versions"]
    assert v1["decisions"]["canary_divergence"]["state"] == "insufficient_data"
    assert v1["decisions"]["estimated_accuracy"] == {"state": "anomalous", "message": "estimated accuracy 0.81, usually 0.93"}
    assert v1["estimate"]["estimated_accuracy"] == 0.81 and v1["estimate"]["gap"] == -0.02  # realized 0.80 vs 0.82
    assert v1["data_quality"] == {"requests": 900, "violated": 3, "budget": 0.01, "violated_share": 0.003333}
    assert v1["drifting_features"] == [{"feature": "amount", "psi": 0.63, "p_value": 7e-18, "live": 975}]
    assert v2["estimate"] is None and v2["data_quality"] is None and v2["drifting_features"] == []
    assert v1["label_delay"]["p95_ms"] == 1_800_000 and v2["label_delay"] is None
    assert other == {"model": "unknown", "versions": []} and anonymous.status == 401


async def test_the_model_page_shows_the_same_and_how_late_the_labels_came() -> None:
    c = await client(FakeSource())
    try:
        page = " ".join((await (await c.get("/models/fraud", headers=bearer("bob"))).text()).split())
        empty = await (await c.get("/models/unknown", headers=bearer("bob"))).text()
    finally:
        await c.close()
    assert page.count('class="quality-version"') == 2
    assert '<td class="insufficient_data">insufficient data</td>' in page
    assert "label-free estimate: 0.810 (usually 0.930); realized 0.800 on 240 labels" in page and "gap -0.020" in page
    assert "3 of 900 sampled requests broke the input schema (budget 1.0%)" in page
    assert "features drifting: amount (PSI 0.63, 975 values)" in page
    assert ("labels came: 240 joined, half within 15 min 0 s, 95% within 30 min 0 s, 99% within 30 min 0 s, the "
            "latest after 29 min 50 s (predictions wait 6 h 0 min for theirs)") in page  # v1's label_delay
    assert page.count('class="label-delay"') == 1  # v2 has no joined label yet
    assert "no production version of this model in this replica's quality monitor" in empty


def test_the_service_view_comes_from_the_partitions_monitors() -> None:
    """A probability model with features, 30 minutes at 2 sampled requests a second, a third labelled: the
    estimate is reconciled with its labels (the last blocks of 200), its inputs are counted (60 a minute at
    most), the canary is not started."""
    rng = np.random.default_rng(3)
    w, t0 = 60_000, 1_700_000_040_000
    quality = QualityMonitor(w, QualitySettings(), clock=None)
    features = FeatureMonitor(w, QualitySettings())
    features.set_interface("fraud", "3.0.0", {"input": {"type": "object", "properties": {"amount": {"type": "number",
                                                                                                  "minimum": 0}}}})
    rows = []
    for i in range(3600):
        ts = t0 + 500 * i
        c = float(rng.uniform(0.6, 1.0))
        quality.observe_inference(InferenceEvent("fraud", "3.0.0", "production", f"r{i}", ts, 5.0, True, [c, 1 - c]))
        if i % 3 == 0:
            quality.observe_label(LabelEvent("fraud", f"r{i}", ts, 0 if rng.random() < c else 1))
        rows.append((i, 0, ts, json.dumps({"amount": float(rng.normal(10, 2)) if i % 100 else -1.0}).encode()))
    features.observe(rows, [("fraud", "3.0.0", "production")])
    part = PartitionState.__new__(PartitionState)
    part.quality, part.features = quality, features
    (view,) = _quality_of(part, "fraud")
    q = public_quality(view)
    assert q["decisions"]["canary_divergence"] == {"state": "insufficient_data", "message": "not started: nothing to judge yet"}
    assert q["decisions"]["estimated_accuracy"]["state"] == "ok" and q["decisions"]["data_quality"]["state"] == "ok"
    assert q["decisions"]["feature_drift"]["state"] in ("ok", "insufficient_data")
    assert q["estimate"]["realized_labels"] >= 200 and abs(q["estimate"]["gap"]) < 0.05
    assert q["data_quality"]["violated"] > 0 and q["data_quality"]["requests"] <= 3600
    assert q["label_delay"] == {"labels": 1200, "max_ms": 0, "horizon_ms": 6 * 3600 * 1000, "p50_ms": 0, "p95_ms": 0,
                                "p99_ms": 0}  # every third request labelled at once
    assert json.dumps(q, allow_nan=False)  # no NaN: valid JSON
    assert _quality_of(part, "other") == []

"""``GET /api/v1/models/{model}/quality``: what the quality and input monitors say of a model's versions.

One entry per production version this replica's monitors hold (a model lives on the replica that
owns its partition: another replica answers an empty list): each decision's state and sentence
(``insufficient_data`` until it can judge), the label-free estimate reconciled with the labels
(``gap``: realized minus estimated accuracy on the same labelled predictions), the data-quality
counts and the features drifting now, the most moved first, and how late its labels came (what
``quality.label_horizon_ms`` is sized from). The model page shows the same.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from modelmedic.http.answers import as_json
from modelmedic.http.auth import Operator
from modelmedic.http.source import QualityView, StatusSource


def public_quality(q: QualityView) -> dict[str, Any]:
    """One version's quality view as the API and the model page give it."""
    estimate = dict(q.estimate) if q.estimate is not None else None
    if estimate is not None:
        realized, estimated = estimate.get("realized_accuracy"), estimate.get("estimated_on_labelled")
        estimate["gap"] = None if realized is None or estimated is None else round(realized - estimated, 6)
    data_quality = dict(q.data_quality) if q.data_quality is not None else None
    if data_quality is not None:
        data_quality["violated_share"] = round(data_quality["violated"] / data_quality["requests"], 6) \
            if data_quality["requests"] else None
    return {
        "version": q.version,
        "decisions": {kind: {"state": state, "message": message} for kind, (state, message) in q.decisions.items()},
        "estimate": estimate,
        "data_quality": data_quality,
        "drifting_features": [{"feature": name, "psi": psi, "p_value": p, "live": live}
                              for name, psi, p, live in q.drifting_features],
        "label_delay": dict(q.label_delay) if q.label_delay is not None else None,
    }


def model_quality(source: StatusSource, model: str) -> list[dict[str, Any]]:
    """The model's production versions, by version, as the API and the model page give them."""
    return [public_quality(q) for q in sorted(source.quality(model), key=lambda q: q.version)]


class QualityApi:
    """The handler of ``/api/v1/models/{model}/quality``, called with the operator already authenticated."""

    def __init__(self, source: StatusSource) -> None:
        self.source = source

    async def get(self, request: web.Request, operator: Operator) -> web.Response:
        model = request.match_info["model"]
        return as_json({"model": model, "versions": model_quality(self.source, model)})

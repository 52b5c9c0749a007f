"""The input monitor: the features of the quality sample's requests, checked and compared.

    monitor = FeatureMonitor(window_size_ms, settings.quality)
    monitor.observe(columns.features, columns.names)   # each batch's sampled features (RecordDecoder's)
    anomalies = monitor.poll(now_ms)                   # at each window's end: data quality and drift

Only the requests of the quality sample carry their features this far: the native decoder
hands on their ``features`` as JSON text and skips everyone else's, so a request outside the
sample pays for skipping a few hundred bytes and nothing more. Here they are decoded with
msgspec and bounded (:func:`decode_features`); features that break the contract are dropped,
counted by reason, and the event itself stays (its latency, errors and prediction are as good
as ever: dead-lettering it for an optional field would blind the latency and error detectors
to a producer's bug in the one field they do not use).

Per production version (canary twins send the same requests): its features are checked
against the input schema of its interface in the registry (:meth:`set_interface`; violations
counted per model, version, feature and check in ``modelmedic_feature_violations_total``) and
a :class:`~modelmedic.detectors.data_quality.ViolationRate` decides when the share of requests
breaking it stays above the budget (kind ``data_quality``); each feature is compared with the
version's reference, certified (:meth:`set_reference`), else the references of the model's version
before it (the same traffic: :meth:`FeatureDrift.inherit`), else learned from its first values, by
:class:`~modelmedic.detectors.feature_drift.FeatureDrift` (kind ``feature_drift``). Both are of
class ``drift``: they warn, never page, and never remediate (docs/detection.md, "Inputs").
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from modelmedic import metrics
from modelmedic.config import QualitySettings
from modelmedic.detection.quality_evidence import display_version
from modelmedic.detectors.data_quality import InputSchema, ViolationRate
from modelmedic.detectors.feature_drift import FeatureDrift
from modelmedic.detectors.quality import Decision
from modelmedic.events import MAX_FEATURES, Anomaly, stable_id

log = logging.getLogger("modelmedic.detection.features")

DATA_QUALITY, FEATURE_DRIFT = "data_quality", "feature_drift"
"""The input monitor's anomaly kinds; both of class ``drift``."""
MAX_NAME = 128
"""Longest feature name accepted (characters): names become metric labels and alert text."""
_decoder = msgspec.json.Decoder(dict[str, bool | int | float | str | None])
_SETTINGS = ("features_per_minute", "features_reference", "features_reference_s", "features_window", "features_min_live", "features_bins", "features_psi",
             "false_alarms_per_day", "features_test_interval_s", "features_max_versions",
             "features_metric_series", "data_quality_budget", "data_quality_effect")
"""The ``quality`` settings the monitor uses, copied as plain numbers (a snapshot holds data only)."""
_REFERENCE_S = QualitySettings.model_fields["features_reference_s"].default


def decode_features(raw: bytes) -> dict[str, bool | int | float | str | None] | str:
    """The features of one sampled request (a JSON object: the decoders dead-letter anything else), or
    why they are dropped: ``value`` (a value that is not a number, string, boolean or null, or a number
    out of range), ``too_many`` (over :data:`~modelmedic.events.MAX_FEATURES`), ``name`` (empty or over
    :data:`MAX_NAME` characters).

    >>> decode_features(b'{"amount": 12.5, "country": "FR"}')
    {'amount': 12.5, 'country': 'FR'}
    >>> decode_features(b'{"a": [1]}'), decode_features(b'{"a": 1e999}'), decode_features(b'{"": 1}')
    ('value', 'value', 'name')
    """
    try:
        features = _decoder.decode(raw)
    except msgspec.ValidationError:
        return "value"
    if len(features) > MAX_FEATURES:
        return "too_many"
    if "" in features or max(map(len, features), default=0) > MAX_NAME:
        return "name"
    return features


@dataclass
class _Version:
    """One production version's input state."""

    drift: FeatureDrift
    violations: ViolationRate
    schema: InputSchema | None = None
    onset: dict[str, int] = field(default_factory=dict)
    """Kind -> event time (ms) its episode started, while it fires."""
    minute: int = -1
    """The minute of event time whose requests ``taken`` counts."""
    taken: int = 0
    """Requests of ``minute`` whose features were looked at (at most ``quality.features_per_minute``)."""


class FeatureMonitor:
    """Data quality and per-feature drift of the sampled requests' features, per production version.

    Bounded: at most ``quality.features_max_versions`` versions per partition, the least
    recently active forgotten first (O(1): an ordered dict); per version at most
    :data:`~modelmedic.events.MAX_FEATURES` features; per version and minute of event time at
    most ``quality.features_per_minute`` requests looked at (the rest cost a comparison), so a
    busy version costs what a version at that rate does.
    """

    def __init__(self, window_size_ms: int, settings: QualitySettings):
        self.window_size_ms = window_size_ms
        self.q = {name: getattr(settings, name) for name in _SETTINGS}
        self.versions: OrderedDict[tuple[str, str], _Version] = OrderedDict()
        self.created: list[tuple[str, str]] = []
        """Versions seen for the first time since the owner last looked (their interface and reference
        come from the registry: :meth:`set_interface`, :meth:`set_reference`)."""
        self.dropped: dict[str, int] = {}
        """Sampled requests whose features were dropped, by reason (:func:`decode_features`)."""
        self.skipped = 0
        """Sampled requests whose features were not looked at: their version's minute was full."""
        self._fresh: set[tuple[str, str]] = set()
        """Versions with features since their last drift test: only these are tested at a poll."""
        self._changes: list[tuple[str, str, str, Decision, int]] = []
        """(model, version, kind, decision, onset ms) of the changes since the last poll."""
        self._labelled: set[tuple[str, str, str, str]] = set()
        """Label sets of the violations metric made so far (bounded by ``features_metric_series``)."""
        self._dropped_warned = -60.0

    def observe(self, rows: Iterable[tuple[int, int, int, bytes]], names: Sequence[tuple[str, str, str] | None]) -> None:
        """Take a batch's sampled features: ``(index, series, ts, JSON text)`` rows, ``names[series] =
        (model, version, role)`` (:attr:`modelmedic.detection.columns.InferenceColumns.features`)."""
        cap = self.q["features_per_minute"]
        for _, series, ts, raw in rows:
            model, version, role = names[series]
            if role != "production":
                continue
            vs = self._version(model, version)
            minute = ts // 60_000
            if minute != vs.minute:
                vs.minute, vs.taken = minute, 0
            elif vs.taken >= cap:  # a busy version: its first requests of the minute tell as much
                self.skipped += 1
                continue
            vs.taken += 1
            features = decode_features(raw)
            if features.__class__ is str:
                self._drop(model, features, raw)
                continue
            vs.drift.observe(features, ts)
            self._fresh.add((model, version))
            if vs.schema is not None:
                wrong = vs.schema.violations(features)
                for name, check in wrong:
                    self._count(model, version, name, check)
                if vs.violations.observe(bool(wrong)) or (vs.violations.anomalous is not (DATA_QUALITY in vs.onset)):
                    self._change(model, version, vs, DATA_QUALITY, vs.violations.decision(), ts)

    def set_interface(self, model: str, version: str, interface: dict[str, Any]) -> None:
        """Check the version's features against its interface's input schema from now on."""
        schema = interface.get("input")
        if isinstance(schema, dict) and schema.get("type", "object") == "object":
            self._version(model, version).schema = InputSchema(schema)

    def set_reference(self, model: str, version: str, references: dict[str, list]) -> None:
        """Judge the version's features against certified values (feature -> the certification run's
        values) instead of learning a reference from its first live ones."""
        self._version(model, version).drift = self._drift(references)

    def poll(self, now_ms: int) -> list[Anomaly]:
        """The anomaly records of the changes since the last poll, after testing the drift of the
        versions that had features since their last test and are due one."""
        for key in [key for key in self._fresh if self.versions.get(key) is not None
                    and self.versions[key].drift.due(now_ms)]:
            self._fresh.discard(key)
            vs = self.versions[key]
            decision = vs.drift.test(now_ms)
            if decision is not None:
                self._change(*key, vs, FEATURE_DRIFT, decision, now_ms)
        self._fresh.intersection_update(self.versions)
        changes, self._changes = self._changes, []
        return [self._anomaly(*change, now_ms) for change in changes]

    def states(self) -> dict[tuple[str, str], dict[str, Decision]]:
        """Each version's data-quality and drift decisions now (the status page, tests)."""
        return {key: {DATA_QUALITY: vs.violations.decision(), FEATURE_DRIFT: vs.drift.decision()}
                for key, vs in self.versions.items()}

    def _version(self, model: str, version: str) -> _Version:
        key = (model, version)
        vs = self.versions.get(key)
        if vs is not None:
            self.versions.move_to_end(key)
            return vs
        q = self.q
        before = next((v for (m, _), v in reversed(self.versions.items()) if m == model), None)
        vs = self.versions[key] = _Version(self._drift(None), ViolationRate(
            q["data_quality_budget"], q["data_quality_effect"], q["false_alarms_per_day"],
            requests_per_day=q["features_per_minute"] * 1440.0))
        if before is not None:  # the model's latest version: the same traffic (a certified reference replaces it)
            vs.drift.inherit(before.drift)
        self.created.append(key)
        while len(self.versions) > q["features_max_versions"]:
            self.versions.popitem(last=False)
        return vs

    def _drift(self, references: dict[str, list] | None) -> FeatureDrift:
        q = self.q
        return FeatureDrift(q["features_reference"], q["features_window"], q["features_min_live"], q["features_bins"],
                            q["features_psi"], false_alarms_per_day=q["false_alarms_per_day"],
                            test_interval_s=q["features_test_interval_s"], max_features=MAX_FEATURES,
                            references=references,
                            reference_s=q.get("features_reference_s", _REFERENCE_S))  # absent: an older snapshot

    def _change(self, model: str, version: str, vs: _Version, kind: str, decision: Decision, ts: int) -> None:
        """Note a decision's start or end (one record each, at the next poll)."""
        onset = vs.onset.setdefault(kind, ts) if decision.anomalous else vs.onset.pop(kind, ts)
        self._changes.append((model, version, kind, decision, onset))

    def _anomaly(self, model: str, version: str, kind: str, decision: Decision, onset: int, now_ms: int) -> Anomaly:
        e, firing = decision.evidence, decision.anomalous
        if kind == FEATURE_DRIFT:
            observed, baseline, p = e["psi"], self.q["features_psi"], e["p_value"]
            score = 1.0 - p if firing and p == p else 0.0
        else:
            observed, baseline = e["violation_rate"], e["budget"]
            score = min(1.0, e["cusum"] / e["h"]) if firing else 0.0
        head = f"{model} {display_version(version)}"
        summary = f"{head}: production {decision.message}" if firing else f"{head}: back to normal: {decision.message}"
        size = self.window_size_ms
        onset_window = onset // size * size
        return Anomaly(id=stable_id(model, version, "production", kind, onset_window // size),
                       series=f"{model}/{version}/production", model=model, version=version, role="production",
                       kind=kind, anomaly_class="drift", window_start=now_ms - size, window_end=now_ms,
                       onset=onset_window, observed=float(observed), baseline=float(baseline), score=float(score),
                       state="firing" if firing else "recovered", summary=summary,
                       closed_at_ms=int(time.time() * 1000))

    def _count(self, model: str, version: str, feature: str, check: str) -> None:
        """Count one violation in the per-feature metric; past ``features_metric_series`` label sets,
        new features of new versions are counted under feature ``_other`` (Prometheus' memory)."""
        labels = (model, version, feature, check)
        if labels not in self._labelled:
            if len(self._labelled) >= self.q["features_metric_series"]:
                labels = (model, version, "_other", check)
            self._labelled.add(labels)
        metrics.FEATURE_VIOLATIONS.labels(*labels).inc()

    def _drop(self, model: str, reason: str, raw: bytes) -> None:
        """Count a sampled request's dropped features, with a warning a minute naming one."""
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        metrics.FEATURES_DROPPED.labels(reason).inc()
        now = time.monotonic()
        if now - self._dropped_warned >= 60:
            self._dropped_warned = now
            log.warning("model %r: features dropped (%s; the event itself is kept): %.200r; send an object of at most "
                        "%d names (1-%d characters) -> number, string, boolean or null", model, reason, raw,
                        MAX_FEATURES, MAX_NAME)

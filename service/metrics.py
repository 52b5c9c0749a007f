"""Every Prometheus metric modelmedic exports, in one place, so names stay consistent.

Names follow Prometheus conventions: ``modelmedic_`` prefix, ``_total`` for counters,
base units (seconds, bytes). Labels are low-cardinality on purpose: never a model id on
a hot-path metric (thousands of models would explode the series count). The per-model
series there are, are bounded: :data:`TOP_MODELS` (the ``MODEL_TOP_K`` models with the most
open incidents) and :data:`FEATURE_VIOLATIONS` (capped per partition); the rest of the
per-model detail lives in the anomaly records and the status page.
"""

from __future__ import annotations

import heapq
import platform
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

disable_created_metrics()
"""No ``*_created`` series: one extra series per counter and histogram child that no panel or rule reads
(a counter's reset shows in ``rate()`` already)."""

EVENTS = Counter("modelmedic_events_total", "Inference records consumed, by outcome", ["outcome"])
"""outcome: ``ok`` (aggregated), ``late`` (after its window closed), ``dead_letter`` (rejected),
``refused`` (a series over ``detection.max_series``), ``redelivered`` (below the offset expected next: skipped)."""
DEAD_LETTERS = Counter("modelmedic_dead_letters_total", "Records sent to the dead-letter topic", ["reason"])
"""reason: a short class of the rejection (``json``, ``schema``, ``value``, ``size``, ``empty``, ``future``,
``depth`` (nested past the decoder's recursion limit), ``undecodable`` (the decoder failed in another way))."""
UNREADABLE = Counter("modelmedic_response_dead_letters_total",
                     "Anomaly and incident records the response plane could not decode: dead-lettered and skipped",
                     ["topic"])
"""topic: ``anomalies`` or ``incidents``. Anything above 0 means someone other than modelmedic writes to
them, or a release of another contract does: read the records' ``reason`` header in the dead-letter topic."""
WINDOWS = Counter("modelmedic_windows_closed_total", "Series windows closed and judged")
SERIES = Gauge("modelmedic_series", "Series (model, version, role) currently tracked")
SERIES_CREATED = Counter("modelmedic_series_created_total",
                         "Series (model, version, role) the detection plane started tracking, new or back after expiry")
"""Its rate is the new-series rate: a flood of new names (a producer putting request ids in
the model field, say) shows here long before ``detection.max_series`` is reached."""
SERIES_REFUSED = Counter("modelmedic_series_refused_records_total",
                         "Records dropped because their series would exceed detection.max_series")
"""The cardinality guard: once ``detection.max_series`` series are tracked, records of any
further series are counted here and dropped (never tracked, never dead-lettered) until
series expire. Anything above 0 means series go unwatched: raise the cap or find the flood."""
SERIES_INSUFFICIENT = Gauge("modelmedic_series_insufficient_data",
                            "Series not judged at their last window: too little history yet", ["family"])
"""family: ``latency``, ``errors`` (per version) or ``throughput`` (per model and role)."""
ANOMALIES = Counter("modelmedic_anomalies_total", "Anomaly records published", ["anomaly_class", "state"])
ESTIMATE_ERROR = Histogram(
    "modelmedic_quality_estimate_abs_error",
    "Label-free accuracy estimates vs the labels: |estimated - realized| accuracy per block of 200 labels of a version",
    buckets=(0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5),
)
"""One observation per 200 labels of each version that answers probabilities, once its calibration is
learned (docs/detection.md, ``EstimatedAccuracy``): healthy estimates sit below 0.05 (the labels' own
noise on 200); a mass above 0.1 means calibrations no longer hold across the fleet. Per-version figures
are in the ``calibration_gap`` alerts and ``QualityMonitor.estimate``, not in labels here."""
READY = Gauge("modelmedic_ready", "1 while the replica is ready (/readyz answers 200), else 0")
"""Read at scrape time from the same check as /readyz: both planes joined their consumer groups and
loaded their state. A replica stuck at 0 is scraped but owns no work (ModelmedicReplicaNotReady)."""
BUILD_INFO = Info("modelmedic_build", "The running build: modelmedic's version and the Python that runs it")
BUILD_INFO.info({"version": metadata.version("modelmedic"), "python_version": platform.python_version()})
LOOP_LAG = Gauge("modelmedic_event_loop_lag_seconds",
                 "Longest delay of the event loop's 0.5 s timer over the last full 30 s window")
"""Set by ``modelmedic.app.watch_loop_lag``: work that holds the loop (a long batch, a full collection)
delays aiokafka's heartbeats and the HTTP endpoint by as much; near the consumer group's session
timeout the replica is thrown out of its group."""
CONSUMER_LAG = Gauge("modelmedic_consumer_lag_records", "Records behind the log end, summed over assigned partitions")
BATCH_SECONDS = Histogram(
    "modelmedic_batch_processing_seconds",
    "Time to decode, aggregate and judge one fetched batch",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
INCIDENTS = Counter("modelmedic_incidents_total", "Incident transitions", ["anomaly_class", "transition"])
OPEN_INCIDENTS = Gauge("modelmedic_open_incidents", "Incidents currently open")
ALERTS = Counter("modelmedic_alerts_total", "Alert deliveries by sink and result", ["sink", "result"])
ALERT_SECONDS = Histogram(
    "modelmedic_alert_delivery_seconds",
    "Time to deliver one alert to one sink, retries included",
    ["sink"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SNAPSHOTS = Counter("modelmedic_snapshots_total", "Detection-state checkpoints written")
STATE_UNSAVED = Gauge("modelmedic_state_unsaved_partitions",
                      "Assigned detection partitions whose state moved since their last snapshot")
"""Read at scrape time. The periodic checkpoint writes only these (an idle replica writes nothing), so 0
says everything consumed is saved; staying above 0 for longer than ``detection.snapshot_interval_s``
while the consumer is not behind says checkpoints are failing (while catching up a checkpoint also
waits for ``detection.snapshot_replay_records`` records)."""
QUALITY_JOINS = Gauge("modelmedic_quality_join_entries",
                      "Entries held by the quality monitors of this replica's partitions, by join", ["join"])
"""join: ``label`` (sampled production predictions awaiting their label), ``judged`` (ids of those that left it,
to tell a duplicate or missed label from an orphan), both at most ``quality.label_max_pending`` a partition;
``canary`` and ``twin`` (predictions awaiting their canary twin), at most ``quality.canary_max_pending``. Set at
each checkpoint. They fill for hours (a prediction without a label waits ``quality.label_horizon_ms``), and a
replica's memory grows with them until they are full: docs/benchmarks.md, "Soak"."""
SNAPSHOTS_REJECTED = Counter("modelmedic_snapshots_rejected_total",
                             "Detection-state snapshots not restored (the partition started afresh)", ["reason"])
"""reason: ``format`` (not a snapshot: a pickle, garbage), ``version`` (another release's layout),
``signature`` (MAC does not match detection.snapshot_key), ``body`` (undecodable or inconsistent contents)."""
PLAYBOOK_RUNS = Counter("modelmedic_playbook_runs_total", "Playbook runs by playbook and outcome", ["playbook", "status"])
"""status: ``done``, ``skipped``, ``dry_run``, ``failed`` or ``timeout``."""
PLAYBOOK_SECONDS = Histogram(
    "modelmedic_playbook_duration_seconds",
    "Time one playbook run took, Kubernetes retries included",
    ["playbook"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)
PLAYBOOK_LOAD_ERRORS = Counter(
    "modelmedic_playbook_load_errors_total", "Playbook plugins (entry points) that failed to load and were skipped",
    ["entry_point"],
)
COMMIT_FAILURES = Counter("modelmedic_commit_failures_total",
                          "Offset commits refused because the consumer group rebalanced (the plane rejoins and goes on)",
                          ["plane"])
"""plane: the plane whose commit was refused (``detection`` or ``response``). The uncommitted
records are read again by whoever owns their partition after the rebalance: the incident book
ignores a replay, and the detection plane resumes from its snapshot's offset."""
LABELS_MISSED = Counter("modelmedic_quality_labels_missed_total",
                        "Labels whose sampled prediction had been pushed out of the quality label join before they came")
"""The label join (``quality.label_max_pending`` predictions per partition, shared fairly between models) was
full: a label that came later than the join's span found nothing. Rising: raise ``quality.label_max_pending``
(~250 B of memory and ~61 B of snapshot per entry) or shorten ``quality.label_horizon_ms``."""
LABELS_UNJOINED_THINNED = Counter(
    "modelmedic_quality_labels_unjoined_thinned_total",
    "Labels that found no prediction because their model's share of the quality label join had left it out")
"""Sizing, not a producer problem: the model's predictions were thinned to its share of
``quality.label_max_pending`` (``QualityMonitor._admit``), and this label's was one left out. Labels of
requests the monitor never saw are ``labels_orphan``; a thinning model's are counted here up to the number
of predictions it left out within the last one or two ``quality.label_horizon_ms`` (ids are not kept)."""
LABEL_DELAY_BUCKETS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0, 7200.0,
                       14400.0, 21600.0, 43200.0, 86400.0)
"""Seconds from 1 s to a day: the label delays ``quality.label_horizon_ms`` (6 h by default) is sized from."""
LABEL_DELAY = Histogram("modelmedic_quality_label_delay_seconds",
                        "Event time from a sampled production prediction to its label, for labels that joined",
                        buckets=LABEL_DELAY_BUCKETS)
"""Only joined labels are observed, so the mass stops at ``quality.label_horizon_ms``: a mass in the buckets
just below it (with ``labels_expired`` rising) says labels come later than the horizon (docs/detection.md, "Sizing the label join")."""
MISROUTED = Counter("modelmedic_records_misrouted_total",
                    "Inference records whose Kafka key is not their model id (accepted, counted)")
"""Every record must be keyed by its model id, so one model's records share a partition; a
record keyed otherwise may put its model on two partitions, each with part of its state."""
FEATURES_DROPPED = Counter("modelmedic_features_dropped_total",
                           "Sampled requests whose features were dropped (the event kept), by reason", ["reason"])
"""reason: ``value`` (not a number, string, boolean or null; or out of range), ``too_many`` (over 64), ``name``
(empty or over 128 characters): a producer sends ``features`` outside the contract (one that is not an object
at all is dead-lettered with the event, as any other field of the wrong type)."""
FEATURE_VIOLATIONS = Counter("modelmedic_feature_violations_total",
                             "Sampled features breaking their version's input schema", ["model", "version", "feature", "check"])
"""Per model, by the request's feature: check is ``missing``, ``unknown``, ``null``, ``type``,
``range`` or ``unseen_category``. Only the quality sample is checked and only violations make series, at most
``quality.features_metric_series`` label sets per partition (then feature ``_other``)."""

MODEL_TOP_K = 20
"""Models with per-model series at most, whatever the fleet's size."""


class TopModels(Collector):
    """``modelmedic_model_open_incidents{model, anomaly_class}`` for the ``k`` models with the most
    open incidents now (ties: by name), read at scrape time from ``source``.

    Bounded by construction: a fleet of thousands of models exports at most ``k`` models'
    series, the ones in the most trouble, so the dashboard has a per-model view without one
    series per model. Built from the open incidents (a few per troubled model), never on the hot
    path. Each replica loads every incident at start, so replicas overlap: take ``max`` across
    them, not ``sum``.
    """

    NAME = "modelmedic_model_open_incidents"

    def __init__(self, k: int = MODEL_TOP_K) -> None:
        self.k = k
        self.source: Callable[[], Iterable[tuple[str, str]]] = lambda: ()
        """(model, anomaly_class) of every open incident; the service sets it (modelmedic.app)."""

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(self.NAME, f"Open incidents by model and class, for the {self.k} models with the most",
                                 labels=["model", "anomaly_class"])

    def collect(self) -> Iterator[Metric]:
        by_model: dict[str, Tally[str]] = {}
        for model, anomaly_class in self.source():
            by_model.setdefault(model, Tally())[anomaly_class] += 1
        family = self._family()
        for model in heapq.nsmallest(self.k, by_model, key=lambda m: (-by_model[m].total(), m)):
            for anomaly_class, n in sorted(by_model[model].items()):
                family.add_metric([model, anomaly_class], n)
        yield family


TOP_MODELS = TopModels()
REGISTRY.register(TOP_MODELS)

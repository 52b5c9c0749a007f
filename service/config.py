"""modelmedic's configuration: one typed model, loadable from YAML and the environment.

Precedence, highest first: environment variables (``MODELMEDIC_`` prefix, ``__`` between
nested sections, e.g. ``MODELMEDIC_KAFKA__BOOTSTRAP_SERVERS=broker:9092``), then the YAML
file passed with ``--config``, then the defaults documented on every field here.

A bad value fails at start with the field's path and what to do about it
(:class:`ConfigError`), never later in the hot path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from modelmedic.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class Topics(_Section):
    """Kafka topic names. Every record is keyed by model id, so one model stays on one partition."""

    inference: str = "modelmedic.inference"
    """Per-request inference events from model servers (input)."""
    labels: str = "modelmedic.labels"
    """Delayed ground-truth labels (input)."""
    anomalies: str = "modelmedic.anomalies"
    """Anomaly decisions with evidence (output of the detection plane)."""
    incidents: str = "modelmedic.response.incidents"
    """Compacted incident state, keyed by incident id: survives crashes and restarts."""
    silences: str = "modelmedic.response.silences"
    """Compacted silences, maintenance windows and remediation pauses, keyed by id (``modelmedic silence``)."""
    state: str = "modelmedic.state"
    """Compacted detection-plane snapshots (windows + detector baselines) keyed by partition."""
    dlq: str = "modelmedic.dlq"
    """Dead letters: records that failed to decode or validate, with the reason in a header."""
    audit: str = "modelmedic.audit"
    """Every decision and action of the response plane: who, what, why, inputs, outcome."""


class KafkaSettings(_Section):
    """How to reach Kafka. TLS and SASL options map one to one onto aiokafka's."""

    bootstrap_servers: str = "127.0.0.1:9092"
    """Comma-separated ``host:port`` list."""
    group_id: str = "modelmedic"
    """Consumer group; run N replicas with the same group to share partitions."""
    client_id: str = "modelmedic"
    topics: Topics = Field(default_factory=Topics)
    partitions: int = Field(6, ge=1, le=10_000)
    """Partition count used when modelmedic creates its own topics. An existing topic keeps its
    count (a warning says so), except that inference and labels must have the same one (they are
    co-partitioned: a model's labels meet its predictions in one process), or start fails."""
    replication_factor: int = Field(3, ge=1)
    """Replicas of every topic modelmedic creates, and the fewest it accepts at start on the topics it
    writes (anomalies, dead letters, audit, incidents, silences, state): 3 keeps every record through the
    loss of a broker. An existing topic it writes with fewer fails start; an input topic (inference,
    labels) with fewer is warned about. A single-broker development cluster holds one replica: set 1
    there explicitly (the local stack, ``deploy/local/kafka.py``, and the tests do)."""
    min_insync_replicas: int = Field(2, ge=1)
    """``min.insync.replicas`` of the topics modelmedic creates, and the least it accepts on the topics it
    writes. Its producers write with ``acks=all``, so a write is confirmed only once this many replicas
    hold it: with 2 of 3, a confirmed record survives one broker's loss and writes go on while one is
    down. Lower on a topic it writes fails start; at most ``replication_factor``."""
    retention_ms: int = Field(7 * 24 * 3600 * 1000, ge=-1)
    """``retention.ms`` of the (not compacted) inference, labels, anomalies and dead-letter topics modelmedic
    creates; -1 keeps records forever. Seven days covers a replay of last week. An existing topic with
    another value is used as it is, with a warning."""
    audit_retention_ms: int = Field(400 * 24 * 3600 * 1000, ge=-1)
    """``retention.ms`` of the audit topic when modelmedic creates it: over a year, so last year's
    incident review can still read who did what; -1 keeps it forever. Another value is warned about.
    The compacted topics (incidents, silences, state) keep their latest record per key forever."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: Path | None = None
    """CA bundle to verify the brokers; required for SSL/SASL_SSL unless the system store is enough."""
    ssl_certfile: Path | None = None
    """Client certificate for mutual TLS."""
    ssl_keyfile: Path | None = None
    max_poll_records: int = Field(20_000, ge=1)
    """Most records per ``getmany`` batch. Only a backlog fills a batch (live traffic
    arrives in small ones); then a larger batch spans more partitions, whose closed
    windows are judged together, and amortizes per-batch work: 20,000 drained a
    backlog 10-15% faster than 5,000 (docs/benchmarks.md), at ~80 ms per batch."""
    heartbeat_interval_ms: int = Field(300, ge=10)
    """How often a consumer tells the group coordinator it is alive, and learns that the group is
    rebalancing: a replica joining waits for every member to notice, so this bounds how long a new
    replica waits for partitions (aiokafka's default, 3,000 ms, made it wait 3-5 s). A heartbeat
    is one small request: 300 ms costs the detection plane's consumer ~3 requests a second. The
    response plane's group, whose handover is not about backlog, heartbeats at least every second
    (``HEARTBEAT_FLOOR_MS`` in ``modelmedic.response.plane``)."""
    fetch_timeout_ms: int = Field(200, ge=1)
    """How long the detection plane's fetch waits for records before the loop checks timers (the
    idle window close) while a partition carries live traffic; with none, it waits a second."""

    @model_validator(mode="after")
    def _sasl_complete(self) -> "KafkaSettings":
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_mechanism and self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                f"security_protocol={self.security_protocol} needs sasl_mechanism, sasl_username "
                "and sasl_password (MODELMEDIC_KAFKA__SASL_USERNAME ...)"
            )
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                f"min_insync_replicas={self.min_insync_replicas} exceeds replication_factor={self.replication_factor}: "
                "it cannot have more replicas in sync than it has; lower min_insync_replicas (1 on a single broker)"
            )
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name}={path} does not exist: point it at a readable PEM file")
        return self


class WindowSettings(_Section):
    """Per-series event-time tumbling windows."""

    size_ms: int = Field(1000, ge=10, le=3_600_000)
    """Window length. Every metric (throughput, error rate, latency quantiles) is per window."""
    allowed_lateness_ms: int = Field(2000, ge=0)
    """A window closes when the partition's event time passes its end by this much;
    records arriving after that are counted as late, not silently dropped."""
    idle_close_ms: int = Field(3000, ge=100)
    """If a live partition receives nothing for this long (wall clock), its event time is
    advanced by the wall clock so that a fleet-wide outage still closes windows (and is
    detected). A partition replaying history (records stamped more than ``max_future_ms``
    behind our clock) only closes the windows its records reached: its end is no outage."""
    series_ttl_s: float = Field(6 * 3600.0, gt=0)
    """A series silent for this long, in event time, is forgotten (a retired version, say) and
    starts afresh if it comes back. Hours, so a sparse model (0.01 req/s, minutes between
    requests) keeps its baselines between requests, and one that goes silent is declared a
    drop (about 15 min at 0.05 req/s, 70 at 0.01) before it is forgotten. Memory is bounded
    by ``detection.max_series``, not by this."""
    max_future_ms: int = Field(300_000, ge=0)
    """Records stamped further than this ahead of this service's clock go to the dead-letter
    topic: one record from a producer with a wrong clock (or ts in seconds-times-1000 of
    the wrong unit) would otherwise move its partition's event time ahead, and every
    honest record after it would be late until real time caught up."""

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "series_ttl_windows" in data:
            raise ValueError("series_ttl_windows was replaced by series_ttl_s (seconds of event time, default "
                             "21600): set windows.series_ttl_s instead")
        return data

    @property
    def series_ttl_windows(self) -> int:
        """``series_ttl_s`` in whole windows (rounded up)."""
        return max(1, -(-int(self.series_ttl_s * 1000) // self.size_ms))


SeriesBankName = Literal["calibrated", "ensemble", "ewma", "robust", "robust-diff", "cusum", "seasonal"]
"""Per-value detector banks (``modelmedic.detection.banks.SERIES_BANKS``)."""
BankName = Literal["sequential", "calibrated", "ensemble", "ewma", "robust", "robust-diff", "cusum", "seasonal"]
"""A family's detector bank: its sequential bank, or a per-value one."""


class DetectionSettings(_Section):
    """How windows become anomalies."""

    threshold: float = Field(0.9999, gt=0.0, lt=1.0)
    """Anomaly score at or above which a window counts as anomalous."""
    trigger_windows: int = Field(2, ge=1)
    """Consecutive anomalous windows before an anomaly fires: one noisy window is not an incident."""
    recover_windows: int = Field(5, ge=1)
    """Consecutive normal windows before a firing anomaly is declared recovered (for latency and errors, windows
    with requests: an empty window says nothing of them)."""
    grace_windows: int = Field(30, ge=1)
    """Windows a new series observes before it may fire: a baseline must mean something first."""
    latency_ratio: float = Field(1.5, gt=1.0)
    """Minimum effect: p95 latency must also be at least this many times its baseline.
    Statistics say *whether* something changed; this says whether it matters to a user."""
    throughput_drop_ratio: float = Field(0.5, gt=0.0, lt=1.0)
    """Minimum effect for a drop: request rate at most this fraction of its baseline."""
    throughput_surge_ratio: float = Field(2.0, gt=1.0)
    """Minimum effect for a surge: request rate at least this many times its baseline."""
    throughput_sustain_s: float = Field(120.0, ge=0.0)
    """Minimum duration of a throughput drop or surge, in event time: its CUSUM must have left 0
    this long ago before it fires (Prometheus' ``for:``). A busy model's CUSUM reaches ``h`` within
    seconds, so a minute's dip of its traffic read as a drop: with per-minute jitter of sd 0.1 on
    40 series at 30 and 100 req/s, 44 false drop episodes in two days at 0, 19 at 60 s, 1 at 120 s
    (``load/throughput_null.py``, docs/detection.md). A sparse series' CUSUM left 0 long before
    it fires, so this delays only the busy ones: -90% drops at 3-100 req/s found in 121 s instead
    of 2-14 s, within a third of the harness's deadline (300 s). 0: off. The ``sequential`` bank's
    only: a per-value bank has no CUSUM onset (``trigger_windows`` is its minimum)."""
    throughput_shallow_sustain_s: float = Field(300.0, ge=0.0)
    """Minimum duration of a shallow drop (the larger of this and ``throughput_sustain_s``): one
    whose rate since its onset kept more than the geometric mean of the two drop charts' designs
    (``throughput_drop_ratio`` and the small chart's 0.7x: about 0.59x). A busy model's traffic
    dips by a fifth for minutes at a time where it varies from minute to minute: with per-minute
    jitter of sd 0.1 at 30-3,000 req/s (10 series a rate, two days) 13 false drop episodes at
    120 s, 0 at 300 s (``load/throughput_null.py --rates 30 300 1000 3000``). The deep drops
    (-90%: a third of the harness's deadline is 300 s) keep ``throughput_sustain_s``; a -30%
    drop's third is 1,200 s. docs/detection.md, "Five minutes for a shallow drop"."""
    error_ratio: float = Field(3.0, gt=1.0)
    """Minimum effect for an error burst: error rate at least this many times its baseline."""
    latency_bank: BankName = "sequential"
    """Detector bank of the latency family (per version): ``sequential`` (a CUSUM of each
    window's median latency weighed by its requests, against a 6 h reference) or a per-value
    bank named as ``metric_bank`` scoring each served window's median
    (service/detection/banks.py). ``sequential`` is what the fleet tests measured: it judges a
    0.05 req/s model within a handful of requests, where a per-value bank sees one median
    in most windows and none in the others (docs/detection.md)."""
    errors_bank: BankName = "sequential"
    """Detector bank of the errors family (per version): ``sequential`` (a Bernoulli CUSUM
    per request) or a per-value bank scoring each served window's error rate."""
    throughput_bank: BankName = "sequential"
    """Detector bank of the throughput family (per model and role): ``sequential`` (Poisson
    CUSUMs against a seasonal rate that cannot collapse to 0) or a per-value bank scoring
    every window's request count."""
    metric_bank: SeriesBankName = "calibrated"
    """The per-value bank ``modelmedic replay FILE.csv`` scores a metric series with (and
    the default of its ``--detector``): ``calibrated`` scored 74.70 on the 24 shared NAB
    files and best leave-one-category-out (docs/detection.md)."""
    min_requests: int = Field(5, ge=1)
    """A version's latency is judged once it served 4x this many requests (in at least
    ``grace_windows`` windows), its error rate once it served 40x; until then the series
    counts as insufficient data (``modelmedic_series_insufficient_data``)."""
    quality: bool = True
    """Canary divergence, delayed-label accuracy and prediction drift (service/detection/quality.py):
    about 0.5 us of CPU per event with the default sample. The labels topic must be
    co-partitioned with inference."""
    quality_sample_every: int = Field(4, ge=1)
    """Canary agreement, label accuracy and drift are judged on one request in this many,
    chosen by a hash of the request id, so a sampled prediction always meets its canary twin
    and its label. 1 judges every request (measured offline: the plane's CPU per event goes
    from about 1.5 us to about 3 us)."""
    snapshot_interval_s: float = Field(5.0, gt=0)
    """How often detection state and offsets are checkpointed. At the live rate a crash replays
    at most this much traffic (plus the windows still open); while catching up, see
    ``snapshot_replay_records``."""
    snapshot_cpu_share: float = Field(0.05, gt=0, le=1)
    """The most of a core the periodic checkpoints' encoding may take: after a checkpoint whose
    snapshots took ``t`` seconds of CPU to encode, the next waits at least ``t / snapshot_cpu_share``
    (and ``snapshot_interval_s``). A checkpoint encodes the state of every partition that moved; at
    the live rate that state grows as the quality joins fill over the labels' horizon, and in a
    90-minute soak (load/soak.py, 100 models, ~740 req/s) 5-second checkpoints that re-encoded all
    of it had grown to 80% of the service's CPU (py-spy). The joins now re-encode only their changed
    chunks (a full label join: ~7 instead of ~42 ms, docs/benchmarks.md), so the share binds later.
    The price: a crash replays that much more traffic (plus the windows still open)."""
    snapshot_replay_records: int = Field(2_000_000, ge=1)
    """While the consumer catches up (a poll's worth of records or more behind), the periodic
    checkpoint also waits until this many records were consumed since the last one, so a
    crash then replays at most this many records (plus the windows still open), which a
    catching-up consumer reads back in ~10 s at ~200k records/s. A checkpoint encodes the
    state of every partition that moved, and a backlog's state is at its largest: every
    ``snapshot_interval_s`` of a drain it was 20% of the service's CPU
    (load/bench_service.py, docs/benchmarks.md). 1: checkpoint every interval, as at the
    live rate."""
    max_series: int = Field(100_000, ge=1)
    """Cardinality guard: the most series (model, version, role) one process tracks at once,
    over all its partitions. Records of a new series beyond it are counted
    (``modelmedic_series_refused_records_total``) and dropped until others expire
    (``windows.series_ttl_s``). Memory and the cost of closing a window grow with the
    series tracked, not with the names ever seen; watch ``modelmedic_series_created_total``
    for the new-series rate."""
    snapshot_key: SecretStr | None = None
    """Key of the HMAC-SHA256 every detection snapshot is signed with; with a key set, a
    snapshot without a valid signature is rejected (the partition starts afresh). Snapshots
    are data, never code, either way (service/detection/snapshots.py); the key also stops
    whoever can write the state topic from changing the detection state. Every replica of a
    group needs the same key; setting or changing it discards the snapshots written before."""
    judge_batch_ms: int = Field(20, ge=0)
    """How long closed windows may wait for the other partitions' windows, to be judged with
    them in one vectorized call (a call costs about the same for 1 or 100 series). Windows
    of every partition close within a few milliseconds of each other, so this adds at most
    that much to close-to-alert latency; 0 judges each batch's windows at once. While the
    consumer is behind (a poll's worth of records or more still waiting), they wait instead
    for up to one batch per partition: their alerts are late anyway, and judging them
    together is what lets the consumer catch up."""


class QualitySettings(_Section):
    """The model-quality monitor's detectors (service/detection/quality.py): canary divergence,
    delayed-label accuracy and prediction drift, per partition. Whether it runs and which
    requests it looks at are ``detection.quality`` and ``detection.quality_sample_every``.
    Every test is sequential (docs/detection.md, "Model-quality detectors")."""

    canary_expected_rate: float | None = Field(None, ge=0.0, lt=1.0)
    """Usual disagreement rate between production and its canary (the previous stable
    version) on shared requests (``canary_margin`` more is tolerated). Unset: ``canary_prior_rate`` until a healthy version of the
    model has ``canary_warmup`` pairs, then the rate learned on it (two versions never agree
    perfectly, and what is normal differs by model)."""
    canary_prior_rate: float = Field(0.1, gt=0.0, lt=1.0)
    """Usual disagreement rate assumed before one is learned."""
    canary_margin: float = Field(0.05, ge=0.0, lt=1.0)
    """Rise of the disagreement rate over the usual one that a healthy new version may bring (it is
    compared with its predecessor; the detection harness's normal deploy changes up to 2.9% of a
    classifier's answers). The tolerated rate is the usual one plus this."""
    canary_effect: float = Field(0.05, gt=0.0, lt=1.0)
    """Smallest rise of the disagreement rate above the tolerated one that is worth an alarm."""
    canary_large_effect: float = Field(0.2, gt=0.0, lt=1.0)
    """A rise of the disagreement rate a second test is tuned to find fastest (a bad release), at the same
    budget: a classifier release changing a quarter of its answers at 0.6 req/s sampled 1 in 4 is found
    after 28 minutes (the ``canary_effect`` test alone at the day budget: not within its 30; the old
    per-pair level: 27.5; docs/detection.md)."""
    canary_tolerance: float = Field(0.5, ge=0.0)
    """Numeric predictions of the two versions disagree when further apart than this many
    prediction spreads (standard deviations of production's predictions: certified, else learned)."""
    canary_probability_tolerance: float = Field(0.1, ge=0.0, le=1.0)
    """Probability vectors of the two versions disagree when their total variation distance exceeds this."""
    canary_bias_effect: float = Field(0.2, gt=0.0)
    """Smallest consistent bias between numeric predictions, in prediction spreads, worth an
    alarm (an effect size: half of it never alarms, however many pairs)."""
    canary_min_pairs: int = Field(10, ge=1)
    """Shared requests before the canary is judged (until then: insufficient data)."""
    canary_warmup: int = Field(200, ge=1)
    """Shared requests of a healthy version the tolerated disagreement rate is learned from."""
    canary_join_ms: int = Field(60_000, ge=1)
    """How long a canary prediction waits for its production twin (same request id), in event time."""
    canary_max_pending: int = Field(20_000, ge=1)
    """Canary predictions waiting for their twin, at most, per partition (the oldest are dropped)."""
    false_alarms_per_day: float = Field(1e-4, gt=0.0)
    """The false-alarm budget of every quality decision (canary divergence, delayed-label accuracy,
    prediction drift, the estimate's drop and gap, feature drift, data quality), per version and
    day, whatever the traffic (1e-4: the metric judge's): the sequential tests sum their evidence
    per minute of event time and take their level from it, the drift tests (at most one a
    ``drift_test_interval_s`` / ``features_test_interval_s``) their p-value threshold, the
    data-quality test its level for ``features_per_minute`` requests a minute (docs/detection.md,
    "One false-alarm budget")."""
    label_margin: float = Field(0.02, ge=0.0, lt=1.0)
    """Accuracy loss below the baseline tolerated before a version counts as under-performing."""
    label_effect: float = Field(0.1, gt=0.0, lt=1.0)
    """Accuracy loss beyond the margin that the sequential test is tuned to find fastest."""
    label_min_outcomes: int = Field(30, ge=1)
    """Labelled outcomes a version needs before its accuracy is judged (until then: insufficient data)."""
    label_tolerance: float = Field(0.0, ge=0.0)
    """A numeric prediction within this of its label counts as correct. 0: learned per model from
    its first ``label_warmup // 2`` labelled predictions (twice their mean absolute error; a
    regressor's answer is never exactly its label), or exact when a certified accuracy is used."""
    label_warmup: int = Field(200, ge=1)
    """Labelled requests a version's own accuracy baseline is learned from (its Wilson lower
    bound at 2 standard errors), when neither the registry's certification nor the model's
    previous version gives one."""
    label_horizon_ms: int = Field(6 * 3600 * 1000, ge=1)
    """How long a sampled prediction waits for its label, in event time (6 hours). Sized from the delays of the labels
    that joined (``modelmedic_quality_label_delay_seconds``; docs/detection.md, "Sizing the label join")."""
    label_max_pending: int = Field(50_000, ge=1)
    """Sampled predictions waiting for a label, at most, per partition: the label join's memory budget (~250 B
    each in memory, ~61 B in the partition snapshot; 50,000 is ~13 MB). Shared between models: once half full,
    a model keeps at most about this many / models of its predictions over ``label_horizon_ms`` (every
    2^j-th), so labels within the horizon find what was kept; the oldest are dropped beyond it
    (``modelmedic_quality_labels_missed_total`` counts their labels). To judge every sampled prediction, it
    needs the partition's sampled production rate x ``label_horizon_ms`` entries."""
    estimate_warmup: int = Field(200, ge=1)
    """Label-free accuracy estimate (classifiers that send probabilities; docs/detection.md):
    sampled predictions of a version whose confidences are its reference ("usually"), when the
    registry has no certified probability predictions. Its drop is judged from then on with
    ``label_margin`` / ``label_effect`` (an ``estimated_accuracy`` anomaly, class ``prediction``)."""
    estimate_bins: int = Field(10, ge=1)
    """Bins of the top-class confidence (between chance and 1) the estimate's calibration is learned in."""
    estimate_calibration_warmup: int = Field(200, ge=1)
    """Labels of a version before its calibration counts as learned and the estimate is checked against them."""
    estimate_gap: float = Field(0.1, gt=0.0, lt=1.0)
    """Distance between estimated and realized accuracy on the same labelled predictions that means the
    calibration no longer holds (a ``calibration_gap`` alert, class ``drift``: it warns, never pages)."""
    drift_reference: int = Field(200, ge=2)
    """Live predictions a version's drift reference is learned from when the registry has no
    certified one (the certification run's predictions)."""
    drift_reference_s: float = Field(86_400.0, ge=0.0)
    """Event time a learned drift reference goes on learning after its first ``drift_reference`` fixed its
    bins: each block of live predictions that began within it joins it when it leaves the window, unless it
    looked drifted, so it comes to hold a day of what the model is asked while drift is tested from the start.
    Against its first minutes alone, inputs with a daily cycle of +-0.25 standard deviations read as drift twice
    a day (docs/detection.md, "A learned drift reference learns for a day"). It also learns them by hour of the
    day (each value at the hour it came), and after the day a window is drift only if it is drifted from the
    whole reference and from the same hours (a +-0.5 sd cycle alarmed once a day on every version against the
    day's mixture alone). Within the day, an alarm is shown only if the live window also stepped away from the
    predictions just before it (a cycle moves slowly, a drift steps); else it is shown when the day ends, if it
    is still up.
    0: its first ``drift_reference`` alone. A certified reference does not learn."""
    drift_window: int = Field(1000, ge=2)
    """Live predictions per version counted against the reference (two blocks of half as many)."""
    drift_min_live: int = Field(100, ge=2)
    """Live predictions before drift is tested (until then: insufficient data). Below about 100
    the G-test's chi-square approximation gets optimistic (50: a false alarm per ~70,000
    healthy predictions tested every 10)."""
    drift_bins: int = Field(10, ge=2)
    """Quantile bins of numeric predictions."""
    drift_every: int = Field(25, ge=1)
    """Predictions counted into the drift bins at a time (bounds the cost per event)."""
    drift_test_interval_s: float = Field(60.0, gt=0.0)
    """Event time between two drift tests of a version's predictions: with ``false_alarms_per_day``,
    sets each test's p-value threshold (1e-4 / (2 x 1,440) = 3.5e-8 at the defaults)."""
    psi_threshold: float = Field(0.25, gt=0.0)
    """Population stability index at or above which predictions have drifted (0.25: the customary
    "major shift"), when the G-test's p-value is also below the budget's threshold."""
    max_models: int = Field(100_000, ge=1)
    """Models tracked per partition; the least recently active is forgotten beyond it (O(1))."""
    max_versions: int = Field(8, ge=1)
    """Versions tracked per model; the least recently seen is forgotten beyond it."""
    idle_recover_ms: int | None = Field(None, ge=1)
    """A firing version without production traffic for this long is recovered ("no longer
    serving") and forgotten. Unset: five windows (``windows.size_ms``), at least 15 minutes, so
    the quiet gaps of a low-traffic model are not taken for the end of a version."""
    series_ttl_ms: int | None = Field(None, ge=1)
    """A model or version without traffic for this long is forgotten. Unset: ``label_horizon_ms``."""
    features: bool = True
    """Watch the inputs: the ``features`` of the sampled requests (those of ``detection.quality_sample_every``),
    checked against the version's input schema and compared with its reference (docs/detection.md, "Inputs").
    Producers that send none cost nothing either way."""
    features_per_minute: int = Field(60, ge=1)
    """Sampled requests per version and minute of event time whose features are looked at (decoded, checked,
    counted); a busy version's further requests that minute are skipped, so its inputs cost what a version at
    1 sampled request a second costs (the data-quality test's level is set for this many a minute)."""
    features_reference: int = Field(200, ge=2)
    """Values of each feature a version's input reference is learned from when its certification has none
    (``reference_features``)."""
    features_reference_s: float = Field(86_400.0, ge=0.0)
    """Event time a feature's learned reference goes on learning from the blocks of live values that began
    within it, as they leave the window without looking drifted (as ``drift_reference_s``). 0: its first
    ``features_reference`` alone."""
    features_window: int = Field(1000, ge=2)
    """Live values per feature counted against the reference (two blocks of half as many)."""
    features_min_live: int = Field(100, ge=2)
    """Live values of a feature before it is tested (until then: insufficient data)."""
    features_bins: int = Field(10, ge=2)
    """Quantile bins of a numeric feature (a categorical one has a bin per reference category and one for the rest)."""
    features_psi: float = Field(0.25, gt=0.0)
    """Population stability index at or above which a feature has drifted, when its G-test also passes the budget."""
    features_test_interval_s: float = Field(60.0, gt=0.0)
    """Event time between two drift tests of a version's features: with the budget, sets each test's p-value threshold."""
    data_quality_budget: float = Field(0.01, gt=0.0, lt=1.0)
    """Share of a version's sampled requests whose features may break its input schema."""
    data_quality_effect: float = Field(3.0, gt=1.0)
    """The share, in budgets, the data-quality test is designed to catch (3: a 3% share against a 1% budget
    alarms after ~1,200 requests; every request broken after 15)."""
    features_max_versions: int = Field(10_000, ge=1)
    """Versions whose inputs are watched per partition; the least recently active is forgotten beyond it (O(1))."""
    features_metric_series: int = Field(10_000, ge=1)
    """Label sets of ``modelmedic_feature_violations_total`` per partition; beyond, new ones count as feature ``_other``."""

    @model_validator(mode="after")
    def _decidable(self) -> "QualitySettings":
        if self.drift_min_live > self.drift_window:
            raise ValueError(f"drift_min_live={self.drift_min_live} exceeds drift_window={self.drift_window}: drift "
                             "could never be tested; lower it or widen the window")
        if self.canary_min_pairs > self.canary_warmup:
            raise ValueError(f"canary_min_pairs={self.canary_min_pairs} exceeds canary_warmup={self.canary_warmup}: "
                             "the rate would be learned before the canary is judged; lower it or raise the warm-up")
        return self


class SinkSettings(_Section):
    """One alert destination."""

    type: Literal["webhook", "alertmanager", "pagerduty", "slack"]
    url: str
    """Webhook URL, Alertmanager base URL, PagerDuty Events API URL or Slack incoming-webhook URL."""
    routing_key: str | None = None
    """PagerDuty integration (routing) key; required for ``pagerduty``."""
    name: str | None = None
    """A label for logs and metrics; defaults to the type."""
    timeout_s: float = Field(5.0, gt=0)
    retries: int = Field(3, ge=0, le=10)
    webhook_secret: SecretStr | None = None
    """``pagerduty`` only: the signing secret of the PagerDuty v3 webhook subscription that reports
    acknowledgements and resolutions back (served at ``/api/v1/pagerduty/webhook``); unset: an
    acknowledgement at PagerDuty does not reach modelmedic. Set it through the environment."""

    @model_validator(mode="after")
    def _pagerduty_key(self) -> "SinkSettings":
        if self.type == "pagerduty" and not self.routing_key:
            raise ValueError("a pagerduty sink needs routing_key (the integration key of the service)")
        if self.webhook_secret is not None and self.type != "pagerduty":
            raise ValueError(f"webhook_secret is for pagerduty sinks (PagerDuty's webhook), not {self.type}")
        return self


def token_sha256(token: str) -> str:
    """The form a token is stored in (``http.operators[].token_sha256``): SHA-256, hex.

    A plain hash (no salt, no stretching) suffices because tokens are 256-bit random strings
    (``modelmedic operator token``), never passwords a person chose: nothing guessable to brute-force.
    """
    import hashlib

    return hashlib.sha256(token.encode()).hexdigest()


LEGACY_OPERATOR = "operator"
"""The name ``http.api_token`` acts under: one operate-role operator."""


class OperatorSettings(_Section):
    """One person (or automation) allowed at the status UI and the operator API, by a token of their own."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@+-]+$")
    """Who holds the token: the audit's actor for everything done with it (``alice``, ``alice@example.com``)."""
    role: Literal["read", "operate"] = "read"
    """``read``: the status UI and GET endpoints; ``operate``: also ack, resolve, silence and run a playbook."""
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    """SHA-256 of the token, lowercase hex; ``modelmedic operator token NAME`` makes a token and prints this.
    Only the hash is configured: the token itself is never stored by the service."""


class HttpSettings(_Section):
    """The service's own HTTP endpoint: /metrics, /healthz, /readyz (no credential), the status UI and the API."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    """0 picks a free port (tests)."""
    external_url: str | None = Field(None, pattern=r"^https?://")
    """Where people reach the status UI (``https://modelmedic.example.com``): every page links to its
    incident's page there (``<external_url>/incidents/<id>``). Unset: pages carry no such link."""
    operators: list[OperatorSettings] = Field(default_factory=list)
    """Who may read (status UI, GET /api/v1/...) and who may act (POST /api/v1/incidents/{id}/...). None
    configured (and no ``api_token``): every endpoint but /metrics, /healthz and /readyz answers 401.
    From the environment as JSON: ``MODELMEDIC_HTTP__OPERATORS='[{"name": "alice", "role": "operate",
    "token_sha256": "..."}]'``."""
    api_token: SecretStr | None = None
    """Deprecated: one shared token, kept working as a single operate-role operator named ``operator``
    (the audit then names no person). Prefer ``operators``. Set it through MODELMEDIC_HTTP__API_TOKEN."""

    @model_validator(mode="after")
    def _operators_unique(self) -> "HttpSettings":
        names = [o.name for o in self.operators] + ([LEGACY_OPERATOR] if self.api_token is not None else [])
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"http.operators: the name(s) {', '.join(twice)} appear more than once (the audit could "
                             f"not tell them apart; {LEGACY_OPERATOR!r} is taken when http.api_token is set)")
        hashes = [o.token_sha256 for o in self.operators]
        if len(set(hashes)) != len(hashes):
            raise ValueError("http.operators: two operators share one token_sha256: give each person a token of their own")
        return self


class KubernetesSettings(_Section):
    """How the response plane reaches Kubernetes to remediate."""

    kubeconfig: Path | None = None
    """A kubeconfig file; unset together with ``in_cluster=false`` disables remediation
    (incidents are still alerted and escalated)."""
    context: str | None = None
    in_cluster: bool = False
    """Use the pod's service account (the Helm chart sets this)."""
    cluster: str = ""
    """A name for the cluster the models run in (``prod-eu-1``), the ``cluster`` label of every page
    (Alertmanager can route or inhibit by it); empty: no such label."""

    @model_validator(mode="after")
    def _kubeconfig_exists(self) -> "KubernetesSettings":
        if self.kubeconfig is not None and not Path(self.kubeconfig).is_file():
            raise ValueError(f"kubeconfig={self.kubeconfig} does not exist: point it at a kubeconfig file")
        return self


class RegistryGitSettings(_Section):
    """The model registry read from a git remote (in a cluster, where there is no checkout to point
    ``registry`` at): cloned at start, fetched every ``refresh_s``, never pushed to."""

    url: str
    """The registry's clone URL: ``https://git.example/ml/registry.git``, ``ssh://git@host/registry.git``,
    ``git://`` or ``file://``. Credentials never go in it: see ``credentials_dir``."""
    ref: str = "main"
    """The branch (or any ref) the registry's files are read from; tags are fetched whatever it is."""
    refresh_s: float = Field(60.0, gt=0)
    """Seconds between fetches. A failed fetch is logged and the copy in use stays until the next one."""
    credentials_dir: Path | None = None
    """A mounted Secret with ``username`` and ``password`` (HTTPS) or ``ssh-privatekey`` and
    ``known_hosts`` (SSH); read on every fetch. Unset: an anonymous remote."""
    checkout_dir: Path = Path("/tmp/modelmedic-registry")
    """Where the mirror and its checkouts live (writable; the chart mounts an emptyDir here)."""
    push_stats: bool = False
    """Commit usage statistics to ``ref`` on the remote every ``usage_interval_s`` (needs a credential
    that may push to it); a push that loses a race with another replica is redone on the new tip."""


class Settings(BaseSettings):
    """Everything modelmedic reads at start."""

    model_config = SettingsConfigDict(
        env_prefix="MODELMEDIC_", env_nested_delimiter="__", extra="forbid", use_attribute_docstrings=True
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    windows: WindowSettings = Field(default_factory=WindowSettings)
    detection: DetectionSettings = Field(default_factory=DetectionSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    sinks: list[SinkSettings] = Field(default_factory=list)
    """Where alerts go. Each sink is independent: one failing never blocks the others."""
    http: HttpSettings = Field(default_factory=HttpSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    policy_file: Path | None = None
    """Routing policy (YAML, see docs/playbooks.md); unset uses the built-in defaults:
    latency/throughput auto-remediate, prediction pages, drift warns."""
    dry_run: bool = False
    """Decide and log every remediation, but change nothing in Kubernetes."""
    registry: Path | None = None
    """A checkout of the git model registry (docs/registry.md). Set: usage statistics are
    rolled up into it and rollback targets come from it. Unset: neither."""
    registry_git: RegistryGitSettings | None = None
    """The registry from a git remote instead of a checkout (docs/kubernetes.md): read-only unless
    ``push_stats``. Exclusive with ``registry``."""
    usage_interval_s: float = Field(300.0, gt=0)
    """How often usage statistics are committed to the registry (one commit per interval)."""
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _one_registry(self) -> "Settings":
        if self.registry is not None and self.registry_git is not None:
            raise ValueError("registry and registry_git are both set: use registry for a local checkout "
                             "or registry_git for a git remote, not both")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the YAML file (passed as init kwargs by load_settings).
        return env_settings, init_settings


_SECRETS = ("password", "routing_key", "token", "secret", "url")
"""Values of fields whose name contains one of these never appear in an error message
(a Slack webhook URL is a credential too): errors end up in logs."""


def _redact(value: Any, name: str = "") -> Any:
    if value is not None and any(s in name.lower() for s in _SECRETS):
        return "<redacted>"
    if isinstance(value, dict):
        return {k: _redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _explain(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "<root>"
        env = "MODELMEDIC_" + "__".join(str(p).upper() for p in err["loc"] if not isinstance(p, int))
        got = _redact(err.get("input"), str(err["loc"][-1]) if err["loc"] else "")
        lines.append(f"  {path}: {err['msg']} (got {got!r}; set it in the YAML file or {env})")
    return "\n".join(lines)


def _merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``, section by section (an override of one key keeps the others)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_yaml_mapping(path: str | os.PathLike[str], what: str, error: type[Exception], fix: str) -> dict[str, Any]:
    """The mapping a YAML file holds (an empty file is ``{}``); every failure raises ``error`` saying what to do.

    The one reader of the service's YAML files (settings, remediation policy, certification
    policy). A YAML error names the position, not the quoted line: that line may hold a password.
    """
    try:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise error(f"{what} {path} not found: {fix}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise error(f"{what} {path} is not valid YAML: {problem}{where}") from None
    except (OSError, UnicodeDecodeError) as exc:  # a directory, no permission, not text
        raise error(f"{what} {path} cannot be read ({exc}): {fix}") from None
    if not isinstance(loaded, dict):
        raise error(f"{what} {path} must hold a mapping at the top level, not {type(loaded).__name__}")
    return loaded


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Build the settings from an optional YAML file, the environment and explicit overrides."""
    data: dict[str, Any] = {}
    source = "environment and defaults"
    if path is not None:
        source = f"{path} and environment"
        loaded = read_yaml_mapping(path, "config file", ConfigError, "pass an existing YAML file to --config")
        data.update(loaded)
    data = _merged(data, overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source)) from None
    except SettingsError as exc:  # an environment variable holding malformed JSON (lists, sections)
        raise ConfigError(f"invalid configuration ({source}): {exc}: {exc.__cause__}; "
                          "a list or section set in the environment must be valid JSON") from None

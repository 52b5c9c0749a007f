"""Which detector bank judges each family: the one place banks are built from the settings.

The live judge (:class:`~modelmedic.detection.judge.WindowJudge`) and ``modelmedic replay``
both build their banks here, from ``detection.latency_bank``, ``errors_bank``,
``throughput_bank`` and ``metric_bank`` (service/config.py), so what replay measures is
what the service runs.

A family's bank is either ``sequential`` (its CUSUM bank of
:mod:`modelmedic.detectors.sequential`: evidence accumulated across windows, the
default) or the name of a per-value :class:`~modelmedic.detectors.SeriesBank`
(:data:`SERIES_BANKS`), which then scores one number per series and window through
:class:`WindowSeries`: the median latency, the error rate, or the request count.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from modelmedic.config import DetectionSettings
from modelmedic.detectors import (
    BernoulliCusumBank, CalibratedBank, CusumBank, EnsembleBank, EwmaBank, LatencyCusumBank, PoissonCusumBank,
    RobustBank, SeasonalBank, SeriesBank, TailCusumBank,
)
from modelmedic.detectors.base import SlotState
from modelmedic.detectors.sequential import CAP, Evidence
from modelmedic.errors import ConfigError

SERIES_BANKS: dict[str, Callable[[], SeriesBank]] = {
    "calibrated": CalibratedBank,
    "ensemble": EnsembleBank,
    "ewma": EwmaBank,
    "robust": RobustBank,
    "robust-diff": lambda: RobustBank(order=1),
    "cusum": CusumBank,
    "seasonal": SeasonalBank,
}
"""Per-value banks by the name the settings and ``modelmedic replay --detector`` use."""


def series_bank(name: str) -> SeriesBank:
    """A fresh per-value bank by name (``detection.metric_bank``, or a family's bank)."""
    make = SERIES_BANKS.get(name)
    if make is None:
        raise ConfigError(f"unknown detector bank {name!r}: choose one of {', '.join(sorted(SERIES_BANKS))}")
    return make()


class WindowSeries(SlotState):
    """A per-value :class:`SeriesBank` judging one number per series and window, as a family's bank.

    It speaks the sequential banks' language (:class:`Evidence`), so the judge's episodes,
    ids and summaries work unchanged: a window's evidence is ``h * score / alarm`` (capped at
    ``CAP * h``), ``alarm`` being the score the bank itself calls an anomaly (its
    ``threshold``, else 0.5: :class:`CalibratedBank`'s 5 digits of evidence). The bank
    decides alone, window by window: evidence is not accumulated and ``trigger_windows`` does
    not apply; an episode ends after ``recover_windows`` windows with a value under ``RESET``
    (three quarters) of what the bank flags (:class:`CalibratedBank` flags an incident's first
    window only, so its episodes are that short), or when the series stopped; windows without
    a value are inconclusive. ``sides``:
    ``up`` (latency, errors: only a rise is a problem) or ``both`` (throughput: drop or
    surge, ``kind`` 0 or 1). ``unit`` converts the value fed to the unit of ``observed`` and
    ``baseline`` (requests per window to requests/s). Warm after ``min_windows`` windows
    with a value. A series is *stopped* when silent for ``stop_gaps`` times its usual gap
    between windows with a value (a retired version), as :meth:`LatencyCusumBank.stopped`.
    """

    _COLUMNS = ("n", "s", "since", "since_x", "since_n", "last_t", "gap", "quiet", "base")
    _ACCUMULATORS = ("s", "since", "since_x", "since_n")

    def __init__(self, bank: SeriesBank, sides: str, min_windows: int, stop_gaps: float = 10.0) -> None:
        self.bank, self.sides, self.min_windows, self.stop_gaps = bank, sides, min_windows, stop_gaps
        self.alarm = float(getattr(bank, "threshold", 0.5))
        self._f = np.zeros((0, len(self._COLUMNS)))

    def _slot_capacity(self) -> int:
        return len(self._f)

    def ensure(self, n_slots: int) -> None:
        have = len(self._f)
        if n_slots > have:
            self._f = np.concatenate([self._f, np.zeros((max(n_slots, 2 * have, 64) - have, len(self._COLUMNS)))])
        self.bank.ensure(len(self._f))

    def forget(self, slots: np.ndarray) -> None:
        slots = np.asarray(slots, dtype=np.int64)
        self._f[slots[slots < len(self._f)]] = 0
        self.bank.forget(slots)

    def inherit(self, dst: np.ndarray, src: np.ndarray) -> None:
        """A new version starts from its predecessor's baseline, with no evidence of its own yet."""
        super().inherit(dst, src)
        dst = np.asarray(dst, dtype=np.int64)
        for name in self._ACCUMULATORS:
            self._f[dst, self._COLUMNS.index(name)] = 0

    def stopped(self, slots: np.ndarray, times: float = 1.0) -> np.ndarray:
        """Series silent for longer than ``times`` ``stop_gaps`` of their usual gaps (rolled back, scaled away)."""
        return self._f[np.asarray(slots, dtype=np.int64), self._COLUMNS.index("quiet")] > times * self.stop_gaps

    def usual_p95(self, slots: np.ndarray) -> np.ndarray:
        """Not tracked by a per-value bank (the summary leaves it out)."""
        return np.full(np.asarray(slots).size, np.nan)

    def judge(self, slots: np.ndarray, x: np.ndarray, fed: np.ndarray, t_ms: np.ndarray, window_s: float, h: float,
              unit: float = 1.0) -> Evidence:
        """Score and learn ``x`` where ``fed`` (the others have no value this window)."""
        slots = np.asarray(slots, dtype=np.int64)
        if slots.size:
            self.ensure(int(slots.max()) + 1)
        t_ms = np.asarray(t_ms, dtype=np.float64)
        n, s_prev, since, since_x, since_n, last_t, gap, _, base = self._f[slots].T
        scores, expected = np.zeros(slots.size), np.full(slots.size, np.nan)
        if fed.any():
            scores[fed], expected[fed] = self.bank.score_learn(slots[fed], x[fed], t_ms[fed] / 1000.0)
        value = x * unit
        base = np.where(fed & np.isfinite(expected), expected * unit, base)
        above = value > base
        level = np.minimum(scores / self.alarm, CAP) * h
        if self.sides == "up":
            level = level * above
        s = np.where(fed, level, s_prev)
        enter = fed & (s >= h) & (s_prev < h)
        since = np.where(enter, t_ms, since)
        since_x = np.where(enter, 0.0, since_x) + np.where(fed, value, 0.0)
        since_n = np.where(enter, 0.0, since_n) + fed
        elapsed = (t_ms - last_t) / 1000.0
        gap = np.where(fed, np.where(n > 0, gap + (elapsed - gap) / np.minimum(n + 1, 100.0), window_s), gap)
        last_t = np.where(fed, t_ms, last_t)
        quiet = np.where((n > 0) & ~fed, elapsed / np.maximum(gap, window_s), 0.0)  # the silence, in usual gaps
        warm = n >= self.min_windows
        self._f[slots] = np.stack([n + fed, s, since, since_x, since_n, last_t, gap, quiet, base], axis=1)
        observed = np.divide(since_x, since_n, out=np.full(slots.size, np.nan), where=since_n > 0)
        kind = (above & (self.sides == "both")).astype(np.int8)
        # A window without a value is inconclusive (``rising``: the judge neither starts nor ends an
        # episode on it); only a stopped series' silence ends one.
        return Evidence(s, kind, since.astype(np.int64), observed, base, warm, (s > s_prev) | ~fed)


class LatencySeries(WindowSeries):
    """The latency family on a per-value bank: each window's median latency (ms), where it served."""

    def score_learn(self, slots: np.ndarray, count: np.ndarray, p50: np.ndarray, p95: np.ndarray, t_ms: np.ndarray,
                    window_s: float, h: float, max_step: float = np.inf, log_ss: np.ndarray | None = None) -> Evidence:
        """The median alone (``log_ss`` is for :class:`LatencyCusumBank`'s creep chart)."""
        return self.judge(slots, p50, count > 0, t_ms, window_s, h)


class ErrorSeries(WindowSeries):
    """The errors family on a per-value bank: each window's error rate, where it served."""

    def score_learn(self, slots: np.ndarray, errors: np.ndarray, requests: np.ndarray, t_ms: np.ndarray,
                    window_s: float, h: float, max_step: float = np.inf) -> Evidence:
        served = requests > 0
        rate = np.divide(errors, requests, out=np.zeros(np.size(errors)), where=served)
        return self.judge(slots, rate, served, t_ms, window_s, h)


class ThroughputSeries(WindowSeries):
    """The throughput family on a per-value bank: every window's request count (0 included)."""

    def score_learn(self, slots: np.ndarray, x: np.ndarray, t_ms: np.ndarray, window_s: float, h: float,
                    max_step: float = np.inf) -> Evidence:
        x = np.asarray(x, dtype=np.float64)
        return self.judge(slots, x, np.ones(x.size, dtype=bool), t_ms, window_s, h, unit=1.0 / window_s)


FamilyBank = LatencyCusumBank | BernoulliCusumBank | PoissonCusumBank | TailCusumBank | WindowSeries


def family_banks(d: DetectionSettings) -> dict[str, FamilyBank]:
    """The bank of each family (``latency``, ``errors``, ``throughput``) the settings name, and
    ``latency_tail`` when the latency bank is ``sequential`` (its bound is that bank's reference p99;
    a per-value bank has no reference distribution)."""
    grace = d.grace_windows
    sequential = {
        "latency": lambda: LatencyCusumBank(ratio=d.latency_ratio, min_windows=grace, min_requests=4 * d.min_requests),
        "errors": lambda: BernoulliCusumBank(ratio=d.error_ratio, min_requests=40 * d.min_requests),
        "throughput": lambda: PoissonCusumBank(drop=d.throughput_drop_ratio, surge=d.throughput_surge_ratio,
                                               min_windows=grace),
    }
    per_value = {"latency": (LatencySeries, "up"), "errors": (ErrorSeries, "up"), "throughput": (ThroughputSeries, "both")}
    out: dict[str, FamilyBank] = {}
    for family, name in (("latency", d.latency_bank), ("errors", d.errors_bank), ("throughput", d.throughput_bank)):
        if name == "sequential":
            out[family] = sequential[family]()
        else:
            cls, sides = per_value[family]
            out[family] = cls(series_bank(name), sides, min_windows=grace)
    if isinstance(out["latency"], LatencyCusumBank):
        out["latency_tail"] = TailCusumBank(min_requests=40 * d.min_requests)
    return out

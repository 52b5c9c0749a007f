"""NAB (Numenta Anomaly Benchmark v1.1) scorer and runner for modelmedic's detectors.

Implements the scoring rules of ``../shared/nab/README.md``: a probationary period
(first 15% of a file, at most 750 rows), the scaled sigmoid inside and after each
labelled window, one threshold swept over the whole corpus per application profile,
and normalization between the null detector (-fn per window) and the perfect one
(tp per window).

Run a detector over the corpus (each row scored before it is learned, one parameter set
for every file: what ``modelmedic replay`` computes, through the detectors' batch replay
path) and print it next to the published detectors::

    python load/nab.py                       # the default detector
    python load/nab.py --detector ensemble   # a `modelmedic replay` name, or ensemble / calibrated
    python load/nab.py --published-only      # re-score the published per-row outputs only
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NAB_ROOT = Path(os.environ.get("MODELMEDIC_NAB", Path(__file__).resolve().parents[2] / "shared" / "nab"))
"""The NAB subset ships beside the repository (``../shared/nab``); MODELMEDIC_NAB overrides."""
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
PROBATION_PERCENT = 0.15


def scaled_sigmoid(x: np.ndarray) -> np.ndarray:
    """NAB's reward curve: ~1 at a window's start (-1), 0 at its end, -1 far after it."""
    x = np.asarray(x, dtype=float)
    return np.where(x > 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * np.minimum(x, 3.0))) - 1.0)


@dataclass
class DataFile:
    """One NAB series with its windows as inclusive row-index ranges."""

    name: str
    timestamps: list[str]
    values: np.ndarray
    windows: list[tuple[int, int]]

    @property
    def probation(self) -> int:
        n = len(self.timestamps)
        return int(min(math.floor(PROBATION_PERCENT * n), PROBATION_PERCENT * 5000))


def read_series(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["timestamp"] for r in rows], np.array([float(r["value"]) for r in rows])


def load_corpus(root: Path = NAB_ROOT, names: list[str] | None = None) -> list[DataFile]:
    """The labelled files (all, or the relative paths in ``names``), sorted by name."""
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    corpus = []
    for name in sorted(names or windows):
        stamps, values = read_series(root / "data" / name)
        index = {t: i for i, t in enumerate(stamps)}
        limits = sorted((index[a[:19]], index[b[:19]]) for a, b in windows[name])
        corpus.append(DataFile(name, stamps, values, limits))
    return corpus


def row_rewards(f: DataFile, cost: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per-row value of a detection and the row's window number (-1 outside, -2 probation).

    Window numbers are local to the file; :func:`corpus_curve` makes them unique.
    """
    n = len(f.timestamps)
    reward = np.full(n, -cost["fpWeight"])  # before the first window
    window = np.full(n, -1, dtype=np.int64)
    for k, (left, right) in enumerate(f.windows):
        width = right - left + 1
        rows = np.arange(left, right + 1)
        reward[rows] = scaled_sigmoid(-(right - rows + 1) / width) * cost["tpWeight"] / scaled_sigmoid(-1.0)
        window[rows] = k
        after = np.arange(right + 1, f.windows[k + 1][0] if k + 1 < len(f.windows) else n)
        reward[after] = scaled_sigmoid((after - right) / (width - 1)) * cost["fpWeight"]
    window[: f.probation] = -2
    return reward, window


def corpus_curve(
    corpus: list[DataFile], scores: list[np.ndarray], cost: dict[str, float]
) -> tuple[np.ndarray, np.ndarray, int]:
    """Raw corpus score at every candidate threshold (detection = score >= threshold).

    Returns ``(thresholds, totals, n_windows)``; thresholds descend from 1.1 (nothing
    detected), exactly as NAB's sweeper enumerates them.
    """
    rewards, windows, values, offset = [], [], [], 0
    for f, s in zip(corpus, scores):
        r, w = row_rewards(f, cost)
        keep = w != -2
        rewards.append(r[keep])
        windows.append(np.where(w[keep] >= 0, w[keep] + offset, -1))
        values.append(np.asarray(s, dtype=float)[keep])
        offset += len(f.windows)
    reward, window, score = map(np.concatenate, (rewards, windows, values))
    scored = np.unique(window[window >= 0])
    best = dict.fromkeys(scored.tolist(), -cost["fnWeight"])
    order = np.argsort(-score, kind="stable")
    total = -cost["fnWeight"] * len(scored)
    thresholds, totals = [1.1], [total]
    for k, i in enumerate(order):
        w = int(window[i])
        if w < 0:
            total += reward[i]
        elif reward[i] > best[w]:
            total += reward[i] - best[w]
            best[w] = reward[i]
        if k + 1 == len(order) or score[order[k + 1]] != score[i]:
            thresholds.append(float(score[i]))
            totals.append(total)
    return np.array(thresholds), np.array(totals), len(scored)


def normalized_score(corpus: list[DataFile], scores: list[np.ndarray], cost: dict[str, float]) -> tuple[float, float]:
    """``(100 * (S - S_null) / (S_perfect - S_null), best threshold)`` for one profile."""
    thresholds, totals, n_windows = corpus_curve(corpus, scores, cost)
    k = int(np.argmax(totals))
    null, perfect = -cost["fnWeight"] * n_windows, cost["tpWeight"] * n_windows
    return 100.0 * (totals[k] - null) / (perfect - null), float(thresholds[k])


def score_at(corpus: list[DataFile], scores: list[np.ndarray], cost: dict[str, float], threshold: float) -> float:
    """Normalized score at a given threshold (detection = score >= threshold); nan without windows."""
    thresholds, totals, n_windows = corpus_curve(corpus, scores, cost)
    k = int(np.flatnonzero(thresholds >= threshold)[-1])
    null, perfect = -cost["fnWeight"] * n_windows, cost["tpWeight"] * n_windows
    return 100.0 * (totals[k] - null) / (perfect - null) if n_windows else float("nan")


def category_scores(corpus: list[DataFile], scores: list[np.ndarray], root: Path = NAB_ROOT) -> dict[str, dict[str, float]]:
    """Per category and profile: the normalized score at the threshold chosen on the whole corpus."""
    out: dict[str, dict[str, float]] = {}
    for p, cost in load_profiles(root).items():
        threshold = normalized_score(corpus, scores, cost)[1]
        for category in sorted({f.name.split("/")[0] for f in corpus}):
            keep = [i for i, f in enumerate(corpus) if f.name.startswith(category + "/")]
            got = score_at([corpus[i] for i in keep], [scores[i] for i in keep], cost, threshold)
            out.setdefault(category, {})[p] = round(float(got), 2)
    return out


def load_profiles(root: Path = NAB_ROOT) -> dict[str, dict[str, float]]:
    profiles = json.loads((root / "profiles.json").read_text())
    return {p: profiles[p]["CostMatrix"] for p in PROFILES}


def published_scores(detector: str, corpus: list[DataFile], root: Path = NAB_ROOT) -> list[np.ndarray]:
    """A published detector's per-row anomaly scores, in corpus order."""
    out = []
    for f in corpus:
        category, base = f.name.split("/")
        with open(root / "results" / detector / category / f"{detector}_{base}", newline="") as fh:
            out.append(np.array([float(r["anomaly_score"]) for r in csv.DictReader(fh)]))
    return out


def score_all(corpus: list[DataFile], scores: list[np.ndarray], root: Path = NAB_ROOT) -> dict[str, float]:
    return {p: round(float(normalized_score(corpus, scores, c)[0]), 2) for p, c in load_profiles(root).items()}


def _replay_module():
    try:
        from modelmedic.detection import replay
    except ImportError:  # before the service reorganization
        from modelmedic import replay
    return replay


def event_times(corpus: list[DataFile]) -> list[np.ndarray]:
    """Epoch seconds of every row, as ``modelmedic replay`` reads them."""
    replay = _replay_module()
    return [np.array([replay.epoch_seconds(t) for t in f.timestamps]) for f in corpus]


def run_detector(detector: str, corpus: list[DataFile], times: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """Scores of ``detector`` (a ``modelmedic replay`` name) on every file, each row scored then learned.

    Banks with a scalar ``score_series`` (the default :class:`CalibratedBank`) replay each
    file through it (equal to one ``score_learn`` per row, a few us per row); the others
    replay all files together, one file per slot, one ``score_learn`` per time step
    (:func:`replay_lockstep`: the same scores as each file alone). One process.
    """
    from modelmedic.detectors import CalibratedBank, EnsembleBank, replay_lockstep, replay_series
    from modelmedic.detectors.context import ContextBank

    names = {**_replay_module().DETECTORS, "ensemble": EnsembleBank, "calibrated": CalibratedBank, "context": ContextBank}
    if detector not in names:
        raise SystemExit(f"unknown detector {detector!r}: choose one of {', '.join(sorted(names))}")
    make = names[detector]
    times = event_times(corpus) if times is None else times
    if hasattr(make(), "score_series"):
        return [replay_series(make(), f.values, t)[0] for f, t in zip(corpus, times)]
    return replay_lockstep(make(), [f.values for f in corpus], times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--detector", default="default", help="a `modelmedic replay` detector name, or ensemble / calibrated / context"
    )
    parser.add_argument("--root", type=Path, default=NAB_ROOT, help="NAB subset directory")
    parser.add_argument("--published-only", action="store_true", help="only re-score the published outputs")
    args = parser.parse_args(argv)

    corpus = load_corpus(args.root)
    expected = json.loads((args.root / "published_scores_on_this_subset.json").read_text())
    rows: list[tuple[str, dict[str, float], str]] = []
    if not args.published_only:
        times = event_times(corpus)
        start, cpu = time.perf_counter(), time.process_time()
        scores = run_detector(args.detector, corpus, times)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        n = sum(len(f.timestamps) for f in corpus)
        note = f"{n} rows replayed in {elapsed:.1f}s ({1e6 * elapsed / n:.1f} us/row wall, {1e6 * cpu / n:.1f} CPU)"
        rows.append((f"modelmedic:{args.detector}", score_all(corpus, scores, args.root), note))
        per_category = category_scores(corpus, scores, args.root)
    for name in sorted((args.root / "results").iterdir()):
        got = score_all(corpus, published_scores(name.name, corpus, args.root), args.root)
        ref = expected[name.name]
        rows.append((name.name, got, "published: " + " / ".join(f"{ref[p]:.2f}" for p in PROFILES)))
    others = [(k, v) for k, v in expected.items() if not (args.root / "results" / k).exists()]
    rows += [(k, v, "published score only") for k, v in others]
    rows.sort(key=lambda r: -r[1]["standard"])

    print(f"NAB v1.1 scoring, {len(corpus)} files, {sum(len(f.windows) for f in corpus)} windows")
    print(f"{'detector':<28}{'standard':>10}{'low_FP':>10}{'low_FN':>10}  note")
    for name, s, note in rows:
        print(f"{name:<28}" + "".join(f"{s[p]:>10.2f}" for p in PROFILES) + f"  {note}")
    if not args.published_only:
        print(f"\nmodelmedic:{args.detector} per category (threshold of the whole corpus; nan: no windows)")
        for category, s in per_category.items():
            print(f"{category:<28}" + "".join(f"{s[p]:>10.2f}" for p in PROFILES))
    return 0


if __name__ == "__main__":
    sys.exit(main())

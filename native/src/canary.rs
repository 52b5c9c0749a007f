//! A canary detector's per-pair recursion (`detectors/quality.py`, `CanaryDivergence.observe_pair`).
//!
//! Why native: at 100k models a pair cost ~6 us of Python (a step check, two Welford updates, four CUSUMs,
//! counters: some 200 bytecodes and a dozen float objects), a quarter of the quality monitor's time
//! (docs/benchmarks.md, "The quality monitor"). Here it is one call on a struct of numbers.
//!
//! Same values bit for bit as the Python it replaces (kept as the reference in
//! `tests/unit/test_canary_native.py`): the same operations in the same order (no fused multiply-add),
//! Python's `max`/`min` (the first of equal values; a NaN first stays), its float floor division, and `ln`
//! and `sqrt` from the C library, as `math.log` and `math.sqrt` call them.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::banks::floor_divide;

const VALUE: usize = 0;
const ALARM: usize = 1;
const LLR: usize = 2;
const X: usize = 3;
const N: usize = 4;
const RUN_N: usize = 5;
const RUN_X: usize = 6;

/// A flattened `WindowedCusum`: value, alarm, the open step's summed LLR, measure and count, the run's count
/// and measure (alarm and counts as f64: exact below 2^53).
type Cusum = [f64; 7];
/// (llr if disagreeing, llr if agreeing): at rest, and while raised.
type Llrs = ((f64, f64), (f64, f64));
/// Welford: n, mean, M2.
type Welford = (i64, f64, f64);
/// (learned, p0, llrs of the two rate tests, level, step), the CUSUMs as (value, alarm, llr, x, n, run_n,
/// run_x), (type, pairs, disagreeing, summed distance), production predictions' Welford, clipped
/// differences' Welford, recent (pairs, disagreeing: previous block, current block).
type State = (
    (bool, f64, (Llrs, Llrs), f64, f64),
    Vec<(f64, bool, f64, f64, i64, i64, f64)>,
    (u8, i64, i64, f64),
    Welford,
    Welford,
    (i64, i64, i64, i64),
);

pub const NUMBER: u8 = 1;

/// Python's `max(a, b)`: `a` unless `b` is greater.
#[inline]
fn pmax(a: f64, b: f64) -> f64 {
    if b > a {
        b
    } else {
        a
    }
}

/// Python's `min(a, b)`: `a` unless `b` is smaller.
#[inline]
fn pmin(a: f64, b: f64) -> f64 {
    if b < a {
        b
    } else {
        a
    }
}

/// `_bernoulli_llr`: log-likelihood ratios of `p1` vs `p0` for one success and one failure.
fn bernoulli_llr(p0: f64, p1: f64) -> (f64, f64) {
    ((p1 / p0).ln(), ((1.0 - p1) / (1.0 - p0)).ln())
}

/// `wilson(successes, n, 2.0)[1]`: the Wilson upper bound at 2 standard errors.
fn wilson_upper(successes: i64, n: i64) -> f64 {
    let z = 2.0f64;
    let nf = n as f64;
    let p = successes as f64 / nf;
    let centre = (p + z * z / ((2 * n) as f64)) / (1.0 + z * z / nf);
    let half = z * (p * (1.0 - p) / nf + z * z / ((4 * n * n) as f64)).sqrt() / (1.0 + z * z / nf);
    pmin(1.0, centre + half)
}

/// The numbers of one `CanaryDivergence`: its settings that a pair reads, and its state.
#[pyclass(module = "modelmedic._columns")]
pub struct CanaryCore {
    tolerance: f64,
    bias_effect: f64,
    scale: Option<f64>,
    min_pairs: i64,
    warmup: i64,
    block: i64,
    step_s: f64,
    min_rate: f64,
    margin: f64,
    effect: f64,
    large_effect: f64,
    level: f64,
    learned: bool,
    p0: f64,
    llrs: [Llrs; 2],
    step: f64,
    cusums: [Cusum; 4],
    kind: u8,
    pairs: i64,
    disagree: i64,
    distance: f64,
    prod: Welford,
    diff: Welford,
    recent: [i64; 4],
}

impl CanaryCore {
    fn anomalous(&self) -> bool {
        self.cusums.iter().any(|c| c[ALARM] != 0.0)
    }

    fn tolerated(&self) -> f64 {
        pmin(self.p0 + self.margin, 0.95)
    }

    /// `_set_p0`: the healthy rate, and the two rate tests' evidence at the rate it tolerates.
    fn set_p0(&mut self, p0: f64) {
        self.p0 = pmin(pmax(p0, 1e-6), 0.9);
        let tolerated = self.tolerated();
        for (i, e) in [self.effect, self.large_effect].into_iter().enumerate() {
            let p1 = pmin(tolerated + e, 0.999);
            self.llrs[i] = (bernoulli_llr(tolerated, p1), bernoulli_llr(tolerated, (tolerated + p1) / 2.0));
        }
    }

    fn healthy_rate(&self) -> Option<f64> {
        if self.anomalous() || self.pairs < self.min_pairs {
            return None;
        }
        Some(pmax(wilson_upper(self.disagree, self.pairs), self.min_rate))
    }

    /// `_close`: step each CUSUM with the closing step's evidence; whether any was raised before and after.
    fn close(&mut self) -> (bool, bool) {
        let (level, mut was, mut now) = (self.level, false, false);
        for c in self.cusums.iter_mut() {
            let alarm = c[ALARM] != 0.0;
            was = was || alarm;
            if c[N] != 0.0 {
                let mut value = c[VALUE] + c[LLR];
                let raised;
                if value <= 0.0 {
                    value = 0.0;
                    raised = false;
                } else {
                    if alarm {
                        value = pmin(value, level);
                    }
                    raised = if alarm { value > 0.0 } else { value >= level };
                }
                let run = if value > 0.0 { (c[RUN_N] + c[N], c[RUN_X] + c[X]) } else { (0.0, 0.0) };
                *c = [value, raised as u8 as f64, 0.0, 0.0, 0.0, run.0, run.1];
            }
            now = now || c[ALARM] != 0.0;
        }
        (was, now)
    }

    /// `_spread`: the scale of a numeric difference (the predictions' spread, at least 0.1% of their magnitude).
    fn spread(&mut self, prod: f64) -> f64 {
        let w = &mut self.prod;
        w.0 += 1;
        let delta = prod - w.1;
        w.1 += delta / w.0 as f64;
        w.2 += delta * (prod - w.1);
        let sd = match self.scale {
            Some(scale) => scale,
            None => (w.2 / w.0 as f64).sqrt(),
        };
        pmax(pmax(sd, 1e-3 * w.1.abs()), 1e-12)
    }

    /// `_bias`: the two-sided CUSUM of a mean shift of `bias_effect` in the standardized differences.
    fn bias(&mut self, y: f64) {
        let e = self.bias_effect;
        let clipped = pmin(pmax(y, -2.0 * e), 2.0 * e);
        let w = &mut self.diff;
        w.0 += 1;
        let delta = clipped - w.1;
        w.1 += delta / w.0 as f64;
        w.2 += delta * (clipped - w.1);
        let var = pmax(w.2 / w.0 as f64, e * e);
        for (i, sign) in [(2, 1.0f64), (3, -1.0f64)] {
            let c = &mut self.cusums[i];
            let shift = if c[ALARM] != 0.0 { e / 2.0 } else { e };
            c[LLR] += shift / var * (sign * clipped - shift / 2.0);
            c[X] += y;
            c[N] += 1.0;
        }
    }

    /// `observe_pair` after the comparison: `y` is the standardized difference of a numeric pair.
    fn observe(&mut self, kind: u8, disagree: bool, distance: f64, y: f64, was: Option<bool>, now: bool) -> bool {
        self.kind = kind;
        self.pairs += 1;
        self.disagree += disagree as i64;
        self.distance += distance;
        self.recent[2] += 1;
        self.recent[3] += disagree as i64;
        if self.recent[2] >= self.block {
            self.recent = [self.recent[2], self.recent[3], 0, 0];
        }
        if self.pairs < self.min_pairs {
            return false;
        }
        if !self.learned && self.pairs >= self.warmup && !was.unwrap_or_else(|| self.anomalous()) {
            if let Some(healthy) = self.healthy_rate() {
                self.learned = true;
                self.set_p0(healthy);
            }
        }
        for i in 0..2 {
            let c = &mut self.cusums[i];
            let (llr, hold) = self.llrs[i];
            let (yes, no) = if c[ALARM] != 0.0 { hold } else { llr };
            c[LLR] += if disagree { yes } else { no };
            c[X] += disagree as u8 as f64;
            c[N] += 1.0;
        }
        if kind == NUMBER {
            self.bias(y);
        }
        was == Some(false) && now
    }

    /// Close the step before event time `ts` if `ts` is in a later one: (alarm before, after) if one closed.
    fn advance(&mut self, ts: f64) -> (Option<bool>, bool) {
        let step = floor_divide(ts, self.step_s);
        if step > self.step {
            let (was, now) = self.close();
            self.step = step;
            return (Some(was), now);
        }
        (None, false)
    }
}

#[pymethods]
impl CanaryCore {
    /// The settings a pair reads (`CanaryDivergence`'s), at rest with the tolerated rate from `p0`.
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(tolerance: f64, bias_effect: f64, scale: Option<f64>, min_pairs: i64, warmup: i64, block: i64,
           step_s: f64, min_rate: f64, margin: f64, effect: f64, large_effect: f64, level: f64, learned: bool,
           p0: f64) -> Self {
        let mut core = CanaryCore {
            tolerance, bias_effect, scale, min_pairs, warmup, block, step_s, min_rate, margin, effect,
            large_effect, level, learned, p0: 0.0, llrs: [((0.0, 0.0), (0.0, 0.0)); 2], step: f64::NEG_INFINITY,
            cusums: [[0.0; 7]; 4], kind: 0, pairs: 0, disagree: 0, distance: 0.0, prod: (0, 0.0, 0.0),
            diff: (0, 0.0, 0.0), recent: [0; 4],
        };
        core.set_p0(p0);
        core
    }

    /// One numeric pair (`float(prod)`, `float(canary)`) at event time `ts`: whether it raised the alarm (at
    /// the first pair of a later step than the one whose evidence raised it).
    fn number(&mut self, prod: f64, canary: f64, ts: f64) -> bool {
        let (was, now) = self.advance(ts);
        let y = (canary - prod) / self.spread(prod);
        let distance = y.abs();
        self.observe(NUMBER, distance > self.tolerance, distance, y, was, now)
    }

    /// One pair of another `kind` (2: probability vectors, 3: classes), compared by the caller.
    fn compared(&mut self, kind: u8, disagree: bool, distance: f64, ts: f64) -> bool {
        let (was, now) = self.advance(ts);
        self.observe(kind, disagree, distance, 0.0, was, now)
    }

    #[getter]
    fn get_anomalous(&self) -> bool {
        self.anomalous()
    }

    /// `CanaryDivergence.expected`: the tolerated rate once given or learned.
    #[getter]
    fn get_expected(&self) -> Option<f64> {
        if self.learned {
            Some(self.p0)
        } else {
            None
        }
    }

    #[getter]
    fn get_pairs(&self) -> i64 {
        self.pairs
    }

    #[getter]
    fn get_healthy_rate(&self) -> Option<f64> {
        self.healthy_rate()
    }

    /// Everything that changes, as plain values (`State`): the snapshot's and `decision`'s.
    fn state(&self) -> State {
        let cusums = self.cusums.iter().map(|c| {
            (c[VALUE], c[ALARM] != 0.0, c[LLR], c[X], c[N] as i64, c[RUN_N] as i64, c[RUN_X])
        });
        (
            (self.learned, self.p0, (self.llrs[0], self.llrs[1]), self.level, self.step),
            cusums.collect(),
            (self.kind, self.pairs, self.disagree, self.distance),
            self.prod,
            self.diff,
            (self.recent[0], self.recent[1], self.recent[2], self.recent[3]),
        )
    }

    /// Take over `state`'s form (a snapshot's numbers, as they stood).
    fn restore(&mut self, state: State) -> PyResult<()> {
        let ((learned, p0, (rate, large), level, step), cusums, (kind, pairs, disagree, distance), prod, diff,
             recent) = state;
        if cusums.len() != 4 {
            return Err(PyValueError::new_err(format!("a canary detector has 4 CUSUMs, not {}", cusums.len())));
        }
        for (c, (value, alarm, llr, x, n, run_n, run_x)) in self.cusums.iter_mut().zip(cusums) {
            *c = [value, alarm as u8 as f64, llr, x, n as f64, run_n as f64, run_x];
        }
        (self.learned, self.p0, self.llrs, self.level, self.step) = (learned, p0, [rate, large], level, step);
        (self.kind, self.pairs, self.disagree, self.distance, self.prod, self.diff) =
            (kind, pairs, disagree, distance, prod, diff);
        self.recent = [recent.0, recent.1, recent.2, recent.3];
        Ok(())
    }
}

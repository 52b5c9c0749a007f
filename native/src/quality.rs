//! The quality monitor's per-row bookkeeping (`detection/quality.py`, `QualityMonitor.observe_sampled`).
//!
//! Why native: at 100k models every sampled row read its series' name, its model and version objects and
//! moved the model in an `OrderedDict`, each a cold object: ~0.85 us per request of look-ups alone, before
//! any join, drift or pair (docs/benchmarks.md, "The quality monitor"). Most rows need nothing else: a
//! production prediction (a number, or a class where the version's drift reference is not numeric) of a known
//! version, left out of a half-full label join by its model's share, that neither expires a join entry, finds its
//! canary twin waiting nor completes a drift count (one the join keeps is put there too, unless that pushes an
//! entry out or the join is empty: `label_put`). Here those rows are numbers in arrays keyed by the windows' slot;
//! `step` walks a batch and stops at the first row that needs Python.
//!
//! The table owns what such a row changes: per model its last event time, its label-join share (`label_n`,
//! `label_since`), its thinned counts, whether it is mirrored and its place in the least-recently-active
//! order; per version its last event time and the predictions its drift detector has not yet been given
//! (at most `room`: fewer than would complete its reference or a count). `_Model` and `_Version` read and
//! write these through the table; the arithmetic is `_admit`'s and `_roll_thinned`'s, the same integer and
//! float operations in the same order (`tests/unit/test_quality_table.py` compares it row by row with the
//! Python it replaces).

use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

const NIL: u32 = u32::MAX;

/// What a slot is bound to: a production version row, a canary's model row, a shadow series.
const PRODUCTION: u8 = 1;
const CANARY: u8 = 2;
const SHADOW: u8 = 3;

/// `step`'s verdict on the row it stopped at.
const END: u8 = 0;
/// Nothing of the row was done: Python does all of it.
const FULL: u8 = 1;
/// All of the row was done but the twin join's put (a mirrored model's thinned prediction).
const TWIN: u8 = 2;
/// A canary row: its model's last time and place were done, the rest (the joins, the pair) is Python's.
const PAIR: u8 = 3;
/// All of the row was done but the label join's put (its model's share keeps it, or the join is under half).
const PUT: u8 = 4;

/// A model's fields as `_Model` names them, in `model_field`'s numbering.
const LAST_MS: usize = 0;
const LABEL_N: usize = 1;
const LABEL_SINCE: usize = 2;
const THINNED: usize = 3;
const THINNED_BEFORE: usize = 4;
const THINNED_SINCE: usize = 5;
const MIRRORED: usize = 6;
const FIELDS: usize = 7;

/// A model row: its fields (mirrored as 0/1), its name, its neighbours in the order (least recently active
/// first).
struct ModelRow {
    fields: [i64; FIELDS],
    name: Option<Py<PyAny>>,
    prev: u32,
    next: u32,
    generation: u32,
}

/// A version row: its model row, last event time, the drift predictions not yet handed over and how many may
/// wait.
struct VersionRow {
    model: u32,
    last_ms: i64,
    room: i64,
    /// Its drift detector takes class predictions (str) as they come: its reference is not numeric (or not
    /// fitted yet). Else a class is a numeric model's odd answer, which Python skips.
    classes: bool,
    drift: Vec<Py<PyAny>>,
    generation: u32,
}

/// A slot's binding: the name tuple it was bound for (a reused slot has another), what it is, the row and
/// the row's generation when bound (a freed row's next use has another).
struct Slot {
    name: Py<PyAny>,
    kind: u8,
    row: u32,
    generation: u32,
}

/// The label join's globals a skipped row reads or moves (`_Pending.now`, `first_ts`, `ttl_ms`), and the
/// batch's constants of `_admit`.
struct Join {
    now: i64,
    first_ts: i64,
    ttl_ms: i64,
    full: bool,
    scale: f64,
}

/// The canary join while it holds entries (`_Pending.items`, `now`, `first_ts`, `ttl_ms`): a production row
/// pairs with one of them (Python's) or only moves its event time on.
struct Waiting<'py> {
    items: Bound<'py, PyDict>,
    now: i64,
    first_ts: i64,
    ttl_ms: i64,
}

impl Waiting<'_> {
    /// Whether a production row of `model` at `ts` expires a canary prediction or finds its twin waiting.
    fn stops(&self, model: &Bound<'_, PyAny>, request_id: &Bound<'_, PyAny>, ts: i64) -> PyResult<bool> {
        if self.first_ts < self.now.max(ts) - self.ttl_ms {
            return Ok(true);
        }
        self.items.contains(PyTuple::new(self.items.py(), [model, request_id])?)
    }
}

#[pyclass(module = "modelmedic._columns")]
pub struct QualityTable {
    horizon_ms: i64,
    window_ms: i64,
    models: Vec<ModelRow>,
    free_models: Vec<u32>,
    head: u32,
    tail: u32,
    live: usize,
    versions: Vec<VersionRow>,
    free_versions: Vec<u32>,
    slots: Vec<Option<Slot>>,
}

/// Python's `a // b` for integers (b > 0 here).
fn floor_div(a: i128, b: i128) -> i128 {
    a.div_euclid(b)
}

/// `_admit` on a model's (label_n already counted, label_since) at `ts`: (admitted, label_n, label_since).
fn admit(n: i64, since: i64, ts: i64, horizon: i64, window: i64, scale: f64) -> (bool, i64, i64) {
    let (mut n, mut since) = (n, since);
    let mut age = ts - since;
    if age > horizon {
        n = (floor_div(n as i128 * horizon as i128, 2 * age as i128) + 1) as i64;
        age = floor_div(horizon as i128, 2) as i64;
        since = ts - age;
    }
    let need = n as f64 * scale / (age.max(0) + window) as f64;
    if need <= 1.0 {
        return (true, n, since);
    }
    // `int(need).bit_length()`: need > 1, so its integer part is at least 1.
    let bits = if need >= 9.2e18 { 64 } else { 64 - (need as i64 as u64).leading_zeros() };
    let kept = bits < 63 && n.rem_euclid(1i64 << bits) == 0;
    (kept, n, since)
}

/// A row's tuple, series, event time and series name, if it has the form the decoder gives.
fn read<'py>(item: &Bound<'py, PyAny>, names: &Bound<'py, PyList>)
             -> Option<(Bound<'py, PyTuple>, usize, i64, Bound<'py, PyAny>)> {
    let row = item.cast::<PyTuple>().ok()?;
    if row.len() != 6 {
        return None;
    }
    let series: usize = row.get_item(1).ok()?.extract().ok()?;
    let ts: i64 = row.get_item(2).ok()?.extract().ok()?;
    let name = names.get_item(series).ok()?;
    Some((row.clone(), series, ts, name))
}

/// The label join's put of a production row it keeps (`QualityMonitor._put_label`: `(model, request_id)` ->
/// `(ts, version, prediction, False)`), where that pushes nothing out and the join holds entries (its `first_ts`,
/// set by the first put, is Python's): false, and nothing done, otherwise. `items` is the join's `OrderedDict`,
/// set through its own `__setitem__` (a dict's would leave its order behind). Most of a plane's sampled rows came
/// back to Python for this put alone (`load/bench_plane.py`: 65k of 75k).
fn label_put(items: &Bound<'_, PyAny>, cap: usize, name: &Bound<'_, PyAny>, row: &Bound<'_, PyTuple>)
             -> PyResult<bool> {
    let held = items.len()?;
    if held == 0 || held >= cap {
        return Ok(false);
    }
    let py = items.py();
    let key = PyTuple::new(py, [name.get_item(0)?, row.get_item(4)?])?;
    let no = PyBool::new(py, false).to_owned().into_any();
    let value = PyTuple::new(py, [row.get_item(2)?, name.get_item(1)?, row.get_item(5)?, no])?;
    items.set_item(key, value)?;
    Ok(true)
}

/// Whether the label join holds at least half its bound (`cap`): past it, a model over its share of the join is
/// thinned (`admit`).
fn half_full(items: &Bound<'_, PyAny>, cap: usize) -> PyResult<bool> {
    Ok(items.len()? >= cap / 2)
}

/// `_roll_thinned` on (thinned, thinned_before, thinned_since) at `ts`.
fn roll_thinned(fields: &mut [i64; FIELDS], ts: i64, horizon: i64) {
    let age = ts - fields[THINNED_SINCE];
    if age >= horizon {
        fields[THINNED_BEFORE] = if age < 2 * horizon { fields[THINNED] } else { 0 };
        fields[THINNED] = 0;
        fields[THINNED_SINCE] = ts;
    }
}

impl QualityTable {
    fn model(&self, row: u32) -> PyResult<&ModelRow> {
        match self.models.get(row as usize) {
            Some(m) if m.name.is_some() => Ok(m),
            _ => Err(PyIndexError::new_err(format!("no model row {row}"))),
        }
    }

    fn version(&self, row: u32) -> PyResult<&VersionRow> {
        match self.versions.get(row as usize) {
            Some(v) if v.generation & 1 == 1 => Ok(v),
            _ => Err(PyIndexError::new_err(format!("no version row {row}"))),
        }
    }

    fn unlink(&mut self, row: u32) {
        let (prev, next) = (self.models[row as usize].prev, self.models[row as usize].next);
        if prev == NIL { self.head = next } else { self.models[prev as usize].next = next }
        if next == NIL { self.tail = prev } else { self.models[next as usize].prev = prev }
    }

    fn push_back(&mut self, row: u32) {
        let tail = self.tail;
        {
            let m = &mut self.models[row as usize];
            m.prev = tail;
            m.next = NIL;
        }
        if tail == NIL { self.head = row } else { self.models[tail as usize].next = row }
        self.tail = row;
    }

    /// The model row to the back of the order (most recently active).
    fn to_back(&mut self, row: u32) {
        if self.tail != row {
            self.unlink(row);
            self.push_back(row);
        }
    }

    /// The slot's binding if `name` is still the tuple it was bound for and its row still the one bound.
    fn bound(&self, series: usize, name: &Bound<'_, PyAny>) -> Option<(u8, u32)> {
        let slot = self.slots.get(series)?.as_ref()?;
        if !slot.name.bind(name.py()).is(name) {
            return None;
        }
        let generation = match slot.kind {
            PRODUCTION => self.versions[slot.row as usize].generation,
            CANARY => self.models[slot.row as usize].generation,
            _ => slot.generation,
        };
        (generation == slot.generation).then_some((slot.kind, slot.row))
    }

    /// A production row of version `v` at `ts`, done whole if it can be (the verdict: END, or TWIN or PUT with a
    /// join's put left); FULL when any other of it needs Python (nothing is changed then).
    fn production(&mut self, v: u32, ts: i64, prediction: &Bound<'_, PyAny>, join: &mut Join) -> u8 {
        let number = prediction.is_exact_instance_of::<PyFloat>() || prediction.is_exact_instance_of::<PyInt>();
        if !number && !(self.versions[v as usize].classes && prediction.is_exact_instance_of::<PyString>()) {
            return FULL; // a vector, a numeric model's class, a bool or none: the estimate, a skip
        }
        let now = join.now.max(ts);
        if join.first_ts < now - join.ttl_ms {
            return FULL; // an expiry
        }
        let version = &self.versions[v as usize];
        if version.drift.len() as i64 >= version.room {
            return FULL; // the drift detector's reference or count is due
        }
        let m = version.model;
        let mut fields = self.models[m as usize].fields;
        let (admitted, n, since) = if join.full {
            admit(fields[LABEL_N] + 1, fields[LABEL_SINCE], ts, self.horizon_ms, self.window_ms, join.scale)
        } else {
            (true, fields[LABEL_N] + 1, fields[LABEL_SINCE])
        };
        (fields[LABEL_N], fields[LABEL_SINCE]) = (n, since);
        if !admitted {
            roll_thinned(&mut fields, ts, self.horizon_ms);
            fields[THINNED] += 1;
        }
        fields[LAST_MS] = ts;
        self.models[m as usize].fields = fields;
        self.to_back(m);
        let version = &mut self.versions[v as usize];
        version.last_ms = ts;
        version.drift.push(prediction.clone().unbind());
        join.now = now;
        if admitted { PUT } else if fields[MIRRORED] != 0 { TWIN } else { END }
    }
}

#[pymethods]
impl QualityTable {
    /// A table for a monitor with these settings (`label_horizon_ms`, `window_size_ms`).
    #[new]
    fn new(horizon_ms: i64, window_ms: i64) -> PyResult<Self> {
        if horizon_ms <= 0 || window_ms <= 0 {
            return Err(PyValueError::new_err("the label horizon and the window must be positive"));
        }
        Ok(QualityTable {
            horizon_ms, window_ms, models: Vec::new(), free_models: Vec::new(), head: NIL, tail: NIL, live: 0,
            versions: Vec::new(), free_versions: Vec::new(), slots: Vec::new(),
        })
    }

    /// A new model row at the back of the order, with `_Model`'s fields in `model_field`'s numbering.
    fn add_model(&mut self, name: Py<PyAny>, fields: [i64; FIELDS]) -> u32 {
        let row = match self.free_models.pop() {
            Some(row) => {
                let m = &mut self.models[row as usize];
                (m.fields, m.name) = (fields, Some(name));
                m.generation = m.generation.wrapping_add(1);
                row
            }
            None => {
                self.models.push(ModelRow { fields, name: Some(name), prev: NIL, next: NIL, generation: 0 });
                (self.models.len() - 1) as u32
            }
        };
        self.push_back(row);
        self.live += 1;
        row
    }

    /// Forget a model row (its versions are freed by the caller first).
    fn free_model(&mut self, row: u32) -> PyResult<()> {
        self.model(row)?;
        self.unlink(row);
        let m = &mut self.models[row as usize];
        m.name = None;
        m.generation = m.generation.wrapping_add(1);
        self.free_models.push(row);
        self.live -= 1;
        Ok(())
    }

    /// The least recently active model's name, None when there is none.
    fn front(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        (self.head != NIL).then(|| self.models[self.head as usize].name.as_ref().map(|n| n.clone_ref(py))).flatten()
    }

    /// The models' names, least recently active first.
    fn order(&self, py: Python<'_>) -> Vec<Py<PyAny>> {
        let mut out = Vec::with_capacity(self.live);
        let mut row = self.head;
        while row != NIL {
            let m = &self.models[row as usize];
            out.extend(m.name.as_ref().map(|n| n.clone_ref(py)));
            row = m.next;
        }
        out
    }

    /// A model row to the back of the order.
    fn touch(&mut self, row: u32) -> PyResult<()> {
        self.model(row)?;
        self.to_back(row);
        Ok(())
    }

    fn model_field(&self, row: u32, field: usize) -> PyResult<i64> {
        self.model(row)?.fields.get(field).copied().ok_or_else(|| PyIndexError::new_err("no such field"))
    }

    fn set_model_field(&mut self, row: u32, field: usize, value: i64) -> PyResult<()> {
        self.model(row)?;
        *self.models[row as usize].fields.get_mut(field).ok_or_else(|| PyIndexError::new_err("no such field"))? = value;
        Ok(())
    }

    /// A new version row of model row `model`: its last event time, no drift predictions held, none may wait.
    fn add_version(&mut self, model: u32, last_ms: i64) -> PyResult<u32> {
        self.model(model)?;
        Ok(match self.free_versions.pop() {
            Some(row) => {
                let v = &mut self.versions[row as usize];
                (v.model, v.last_ms, v.room, v.classes) = (model, last_ms, 0, false);
                v.generation = v.generation.wrapping_add(1); // odd: in use
                row
            }
            None => {
                self.versions.push(VersionRow { model, last_ms, room: 0, classes: false, drift: Vec::new(), generation: 1 });
                (self.versions.len() - 1) as u32
            }
        })
    }

    /// Forget a version row and the drift predictions it held.
    fn free_version(&mut self, row: u32) -> PyResult<()> {
        self.version(row)?;
        let v = &mut self.versions[row as usize];
        v.drift = Vec::new();
        v.generation = v.generation.wrapping_add(1); // even: free
        self.free_versions.push(row);
        Ok(())
    }

    fn version_last(&self, row: u32) -> PyResult<i64> {
        Ok(self.version(row)?.last_ms)
    }

    fn set_version_last(&mut self, row: u32, last_ms: i64) -> PyResult<()> {
        self.version(row)?;
        self.versions[row as usize].last_ms = last_ms;
        Ok(())
    }

    /// The drift predictions a version row holds, handed over (in order) and no longer held (None: it holds
    /// none): `room` shrinks by as many.
    fn take_drift(&mut self, py: Python<'_>, row: u32) -> PyResult<Option<Py<PyList>>> {
        self.version(row)?;
        let v = &mut self.versions[row as usize];
        if v.drift.is_empty() {
            return Ok(None);
        }
        let held = std::mem::take(&mut v.drift);
        v.room -= held.len() as i64;
        Ok(Some(PyList::new(py, held)?.unbind()))
    }

    /// How many predictions a version row may hold before its drift detector must see them, and whether it takes
    /// class predictions as they come (`classes`).
    fn set_room(&mut self, row: u32, room: i64, classes: bool) -> PyResult<()> {
        self.version(row)?;
        (self.versions[row as usize].room, self.versions[row as usize].classes) = (room, classes);
        Ok(())
    }

    /// Bytes the table holds apart from the Python objects it refers to (names, drift predictions): its rows,
    /// slots and drift buffers, by capacity (Rust's allocator: tracemalloc does not see them).
    fn nbytes(&self) -> usize {
        use std::mem::size_of;
        let buffers: usize = self.versions.iter().map(|v| v.drift.capacity() * size_of::<Py<PyAny>>()).sum();
        size_of::<Self>() + self.models.capacity() * size_of::<ModelRow>()
            + self.versions.capacity() * size_of::<VersionRow>() + self.slots.capacity() * size_of::<Option<Slot>>()
            + (self.free_models.capacity() + self.free_versions.capacity()) * size_of::<u32>() + buffers
    }

    /// Bind slot `series` (while `names[series]` is `name`) to a production version row, a canary's model row
    /// or a shadow series (`kind` 1, 2, 3).
    fn bind(&mut self, series: usize, name: Py<PyAny>, kind: u8, row: u32) -> PyResult<()> {
        let generation = match kind {
            PRODUCTION => self.version(row)?.generation,
            CANARY => self.model(row)?.generation,
            SHADOW => 0,
            _ => return Err(PyValueError::new_err(format!("no slot kind {kind}"))),
        };
        if self.slots.len() <= series {
            self.slots.resize_with(series + 1, || None);
        }
        self.slots[series] = Some(Slot { name, kind, row, generation });
        Ok(())
    }

    /// Do `rows[start:]` (`(index, series, ts, ok, request_id, prediction)`, `names[series]` their series) up
    /// to the first one that needs Python: (its index, what is left of it, the label join's event time,
    /// the canary join's, production predictions thinned). `join_now`, `join_first_ts`, `join_ttl_ms`, `join_items`
    /// and `join_cap`: the label join's (its entries and bound: whether it is half full, and the puts the table can
    /// do, `label_put`); `canary_items` (None while empty), `canary_now`, `canary_first_ts`, `canary_ttl_ms`: the
    /// canary join's; `scale`: `_admit`'s, the batch's. The verdicts: 0, the batch is done (the index is its length);
    /// 1, nothing of the row was done; 2, all of it but the twin join's put; 3, a canary row whose model's time and
    /// place were done; 4, all of it but the label join's put.
    #[allow(clippy::too_many_arguments)]
    fn step(&mut self, rows: &Bound<'_, PyList>, start: usize, names: &Bound<'_, PyList>, join_now: i64,
            join_first_ts: i64, join_ttl_ms: i64, join_items: &Bound<'_, PyAny>, join_cap: usize,
            canary_items: Option<Bound<'_, PyDict>>, canary_now: i64, canary_first_ts: i64, canary_ttl_ms: i64,
            scale: f64) -> PyResult<(usize, u8, i64, i64, i64)> {
        let py = rows.py();
        let yes = PyBool::new(py, true);
        let full = half_full(join_items, join_cap)?;
        let mut join = Join { now: join_now, first_ts: join_first_ts, ttl_ms: join_ttl_ms, full, scale };
        let mut waiting = canary_items.map(|items| Waiting {
            items, now: canary_now, first_ts: canary_first_ts, ttl_ms: canary_ttl_ms,
        });
        let mut thinned = 0i64;
        let n = rows.len();
        for i in start..n {
            let item = rows.get_item(i)?;
            let canary_now = waiting.as_ref().map_or(canary_now, |w| w.now);
            // Anything unusual (not a tuple, a series or time that is not an int, no such series) is Python's.
            let Some((row, series, ts, name)) = read(&item, names) else {
                return Ok((i, FULL, join.now, canary_now, thinned));
            };
            let Some((kind, bound)) = self.bound(series, &name) else {
                return Ok((i, FULL, join.now, canary_now, thinned));
            };
            let verdict = match kind {
                SHADOW => continue,
                CANARY => {
                    self.models[bound as usize].fields[LAST_MS] = ts;
                    self.to_back(bound);
                    PAIR
                }
                _ if !row.get_item(3)?.is(&yes) => FULL,
                _ => match &waiting {
                    Some(w) if w.stops(&name.get_item(0)?, &row.get_item(4)?, ts)? => FULL,
                    _ => self.production(bound, ts, &row.get_item(5)?, &mut join),
                },
            };
            if kind == PRODUCTION && verdict != FULL {
                if let Some(w) = waiting.as_mut() {
                    w.now = w.now.max(ts);
                }
            }
            let canary_now = waiting.as_ref().map_or(canary_now, |w| w.now);
            match verdict {
                END => thinned += 1,
                // Kept by the join and put there: it may now hold half its bound.
                PUT if label_put(join_items, join_cap, &name, &row)? => join.full = half_full(join_items, join_cap)?,
                TWIN => return Ok((i, TWIN, join.now, canary_now, thinned + 1)),
                _ => return Ok((i, verdict, join.now, canary_now, thinned)),
            }
        }
        Ok((n, END, join.now, waiting.as_ref().map_or(canary_now, |w| w.now), thinned))
    }
}

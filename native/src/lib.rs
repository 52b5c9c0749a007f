//! The detection plane's record decoder: a batch of inference records (JSON bytes) to
//! columns (numpy-ready buffers), in one pass, with no Python object per record.
//!
//! Why native: per record, the plane's Python work was a msgspec decode (one Python
//! object and four strings) and a window update in the interpreter; the fetch itself
//! costs about as much again. Decoding straight into columns lets everything after it
//! (windows, quantiles, the quality sample) run as a few numpy calls per batch.
//!
//! What it accepts is a strict subset of what `modelmedic.events.decode_inference`
//! accepts, with the same values. Anything it is not sure about (a record that is too
//! big, not UTF-8, not a valid event, or merely unusual, such as a duplicated field) is
//! returned as a fallback index: the Python side decodes those with msgspec, which
//! either accepts them (and says what they hold) or gives the dead-letter reason.
//! `tests/unit/test_columns.py` checks the subset property on valid, invalid and
//! randomly mutated records.
//!
//! The sequential banks' per-window recursion is the `banks` module (one call a bank a round); a canary
//! detector's per-pair recursion the `canary` module; the quality monitor's per-row bookkeeping the `quality`
//! module.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyList, PyString, PyTuple};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

mod banks;
mod canary;
mod quality;

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Role {
    Production,
    Canary,
    Shadow,
}

impl Role {
    fn name(&self) -> &'static str {
        match self {
            Role::Production => "production",
            Role::Canary => "canary",
            Role::Shadow => "shadow",
        }
    }
}

/// The prediction: a number (its mean and variance are window statistics), a label,
/// class probabilities, or absent. Labels and probabilities matter only to the quality
/// monitor, which gets them as Python objects for the requests in its sample.
#[derive(Default)]
enum Prediction<'a> {
    #[default]
    Absent,
    Number(f64),
    Label(Cow<'a, str>),
    Probabilities(Vec<f64>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Prediction<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PredictionVisitor(std::marker::PhantomData))
    }
}

struct PredictionVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for PredictionVisitor<'a> {
    type Value = Prediction<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, a string, a list of numbers or null")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Prediction::Number(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Prediction::Number(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Prediction::Number(v as f64))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Prediction::Label(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Prediction::Label(Cow::Owned(v.to_owned())))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Prediction::Absent)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut probabilities = Vec::new();
        while let Some(p) = seq.next_element::<f64>()? {
            probabilities.push(p);
        }
        Ok(Prediction::Probabilities(probabilities))
    }
}

impl Prediction<'_> {
    /// The prediction as msgspec decodes it (``InferenceEvent.prediction``).
    fn to_python<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        match self {
            Prediction::Absent => py.None().into_bound(py),
            Prediction::Number(v) => PyFloat::new(py, *v).into_any(),
            Prediction::Label(v) => PyString::new(py, v).into_any(),
            Prediction::Probabilities(v) => PyList::new(py, v).expect("a list of floats").into_any(),
        }
    }
}

/// Event contract v1, inference record (`modelmedic.events.InferenceEvent`).
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[serde(borrow)]
    version: Cow<'a, str>,
    role: Role,
    #[serde(borrow)]
    request_id: Cow<'a, str>,
    ts: i64,
    latency_ms: f64,
    ok: bool,
    #[serde(default, borrow)]
    prediction: Prediction<'a>,
    /// The model's inputs (optional): kept as their JSON text, a slice of the record, so a
    /// request outside the quality sample pays only for skipping them; an object (or null),
    /// its contents checked in Python for the sampled requests.
    #[serde(default, borrow)]
    features: Option<&'a RawValue>,
}

/// Decodes batches of inference records into columns; numbers each series
/// (model, version, role) the first time it sees it, until it is forgotten (`forget`:
/// the series expired), so the table holds the live series only. At most `max_series`
/// series are numbered at once: a record of one more is refused (the cardinality guard).
#[pyclass(module = "modelmedic._columns")]
struct ColumnDecoder {
    max_ts_ms: i64,
    max_record_bytes: usize,
    sample_every: u32,
    max_series: usize,
    ids: HashMap<Vec<u8>, u32>,
    /// Number -> its key in `ids` (empty while the number is free).
    keys: Vec<Vec<u8>>,
    /// Numbers of forgotten series, handed out again before new ones.
    free: Vec<u32>,
    key: Vec<u8>,
}

/// One column of a batch as the bytes of a native-endian array (numpy.frombuffer reads it).
fn column<'py, T: Copy>(py: Python<'py>, values: &[T]) -> Bound<'py, PyBytes> {
    // SAFETY: T is a plain number type (u8, u32, i64, f64): every byte is initialised.
    let bytes = unsafe { std::slice::from_raw_parts(values.as_ptr() as *const u8, std::mem::size_of_val(values)) };
    PyBytes::new(py, bytes)
}

type Columns<'py> = (
    Vec<Bound<'py, PyBytes>>,
    Vec<Bound<'py, PyTuple>>,
    Vec<usize>,
    Vec<NewSeries>,
    Vec<usize>,
    Bound<'py, PyBytes>,
    Vec<usize>,
    Vec<Bound<'py, PyTuple>>,
);

/// A series numbered in this call: (number, model, version, role).
type NewSeries = (u32, String, String, &'static str);

impl ColumnDecoder {
    /// The series number of (model, version, role), a new series appended to `new`; None
    /// if it is new and `max_series` series are numbered already.
    fn series(&mut self, model: &str, version: &str, role: &Role, new: &mut Vec<NewSeries>) -> Option<u32> {
        let key = &mut self.key;
        key.clear();
        // Length-prefixed, so no name can run into the next.
        key.extend_from_slice(&(model.len() as u32).to_le_bytes());
        key.extend_from_slice(model.as_bytes());
        key.extend_from_slice(&(version.len() as u32).to_le_bytes());
        key.extend_from_slice(version.as_bytes());
        key.push(*role as u8);
        if let Some(&id) = self.ids.get(key.as_slice()) {
            return Some(id);
        }
        if self.ids.len() >= self.max_series {
            return None;
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.keys[id as usize] = key.clone();
                id
            }
            None => {
                self.keys.push(key.clone());
                (self.keys.len() - 1) as u32
            }
        };
        self.ids.insert(key.clone(), id);
        new.push((id, model.to_owned(), version.to_owned(), role.name()));
        Some(id)
    }
}

#[pymethods]
impl ColumnDecoder {
    /// ``sample_every``: the quality monitor's sample, one request in that many by the
    /// CRC-32 of its id (``zlib.crc32(request_id.encode()) % sample_every == 0``); 0: none.
    /// ``max_series``: the most series numbered at once.
    #[new]
    fn new(max_ts_ms: i64, max_record_bytes: usize, sample_every: u32, max_series: usize) -> Self {
        ColumnDecoder {
            max_ts_ms,
            max_record_bytes,
            sample_every,
            max_series,
            ids: HashMap::new(),
            keys: Vec::new(),
            free: Vec::new(),
            key: Vec::with_capacity(128),
        }
    }

    /// How many series are numbered now.
    fn __len__(&self) -> usize {
        self.ids.len()
    }

    /// Forget the series of these numbers (expired): their numbers are handed out again.
    /// Unknown or already free numbers are ignored. The table shrinks when it is mostly empty.
    fn forget(&mut self, numbers: Vec<u32>) {
        for number in numbers {
            let Some(key) = self.keys.get_mut(number as usize) else { continue };
            if key.is_empty() {
                continue;
            }
            self.ids.remove(key.as_slice());
            *key = Vec::new();
            self.free.push(number);
        }
        if self.ids.capacity() > 4 * self.ids.len() + 1024 {
            self.ids.shrink_to_fit();
        }
    }

    /// Decode a batch of record values (bytes or None), with their Kafka keys if given.
    ///
    /// Returns ``(columns, sample, fallback, new_series, refused, refused_ts, misrouted, features)``. ``columns``
    /// are the bytes of six arrays with one entry per accepted record, in batch order: the record's index in
    /// ``values`` (uint32), its series number (uint32), ts (int64), latency_ms (float64),
    /// ok (uint8) and a numeric prediction or NaN (float64). ``sample`` holds, for the
    /// accepted production and canary records in the sample, ``(index, series, ts, ok,
    /// request_id, prediction)`` with the prediction as msgspec decodes it. ``fallback``
    /// lists the indices of the records left to msgspec; ``new_series`` the (number,
    /// model, version, role) of each series numbered in this call; ``refused`` the indices
    /// of valid records of a new series over ``max_series``, and ``refused_ts`` the bytes of
    /// their event times (int64): they still move the partition's event time on;
    /// ``misrouted`` the indices of valid records whose key (given) is not their model; ``features``
    /// holds, for the sampled records whose ``features`` is not null, ``(index, series, ts, text)``
    /// with the field's JSON text as bytes, unchecked.
    #[pyo3(signature = (values, keys=None))]
    fn decode<'py>(
        &mut self,
        py: Python<'py>,
        values: &Bound<'py, PyList>,
        keys: Option<&Bound<'py, PyList>>,
    ) -> PyResult<Columns<'py>> {
        let n = values.len();
        let mut index: Vec<u32> = Vec::with_capacity(n);
        let mut series: Vec<u32> = Vec::with_capacity(n);
        let mut ts: Vec<i64> = Vec::with_capacity(n);
        let mut latency: Vec<f64> = Vec::with_capacity(n);
        let mut ok: Vec<u8> = Vec::with_capacity(n);
        let mut prediction: Vec<f64> = Vec::with_capacity(n);
        let mut sample: Vec<Bound<'py, PyTuple>> = Vec::new();
        let mut fallback: Vec<usize> = Vec::new();
        let mut new: Vec<NewSeries> = Vec::new();
        let mut refused: Vec<usize> = Vec::new();
        let mut refused_ts: Vec<i64> = Vec::new();
        let mut misrouted: Vec<usize> = Vec::new();
        let mut features: Vec<Bound<'py, PyTuple>> = Vec::new();
        for (i, value) in values.iter().enumerate() {
            let Ok(bytes) = value.cast::<PyBytes>() else {
                fallback.push(i);
                continue;
            };
            let raw = bytes.as_bytes();
            let text = match std::str::from_utf8(raw) {
                Ok(text) if raw.len() <= self.max_record_bytes => text,
                _ => {
                    fallback.push(i);
                    continue;
                }
            };
            let event: Event = match serde_json::from_str(text) {
                Ok(event) => event,
                Err(_) => {
                    fallback.push(i);
                    continue;
                }
            };
            // The checks events._check_inference makes after msgspec's decode, and msgspec's
            // type of `features` (an object or null; what it holds is checked when sampled).
            if event.model.is_empty()
                || event.features.is_some_and(|raw| !raw.get().starts_with('{'))
                || event.version.is_empty()
                || event.ts <= 0
                || event.ts >= self.max_ts_ms
                || !(event.latency_ms >= 0.0)
            {
                fallback.push(i);
                continue;
            }
            if let Some(keys) = keys {
                let key = keys.get_item(i)?;
                if !matches!(key.cast::<PyBytes>(), Ok(key) if key.as_bytes() == event.model.as_bytes()) {
                    misrouted.push(i);
                }
            }
            let Some(number) = self.series(&event.model, &event.version, &event.role, &mut new) else {
                refused.push(i);
                refused_ts.push(event.ts);
                continue;
            };
            index.push(i as u32);
            series.push(number);
            ts.push(event.ts);
            latency.push(event.latency_ms);
            ok.push(event.ok as u8);
            prediction.push(match event.prediction {
                Prediction::Number(v) => v,
                _ => f64::NAN,
            });
            // The monitor ignores shadow traffic: none of it goes into the sample.
            if self.sample_every > 0
                && !matches!(event.role, Role::Shadow)
                && crc32fast::hash(event.request_id.as_bytes()) % self.sample_every == 0
            {
                let fields = (i, number, event.ts, event.ok, event.request_id.as_ref(), event.prediction.to_python(py));
                sample.push(fields.into_pyobject(py)?);
                if let Some(raw) = event.features {
                    let row = (i, number, event.ts, PyBytes::new(py, raw.get().as_bytes()));
                    features.push(row.into_pyobject(py)?);
                }
            }
        }
        let columns = vec![
            column(py, &index),
            column(py, &series),
            column(py, &ts),
            column(py, &latency),
            column(py, &ok),
            column(py, &prediction),
        ];
        Ok((columns, sample, fallback, new, refused, column(py, &refused_ts), misrouted, features))
    }

    /// The series number of (model, version, role), numbering it if new: for records
    /// msgspec decoded. Returns ``(number, is_new)``; ``(None, False)`` if it is refused.
    fn number(&mut self, model: &str, version: &str, role: &str) -> PyResult<(Option<u32>, bool)> {
        let role = match role {
            "production" => Role::Production,
            "canary" => Role::Canary,
            "shadow" => Role::Shadow,
            other => return Err(pyo3::exceptions::PyValueError::new_err(format!("unknown role {other:?}"))),
        };
        let mut new = Vec::new();
        let id = self.series(model, version, &role, &mut new);
        Ok((id, !new.is_empty()))
    }
}

#[pymodule]
fn _columns(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ColumnDecoder>()?;
    m.add_class::<canary::CanaryCore>()?;
    m.add_class::<quality::QualityTable>()?;
    m.add_function(wrap_pyfunction!(banks::bernoulli_args, m)?)?;
    m.add_function(wrap_pyfunction!(banks::bernoulli_step, m)?)?;
    m.add_function(wrap_pyfunction!(banks::poisson_args, m)?)?;
    m.add_function(wrap_pyfunction!(banks::poisson_step, m)?)?;
    m.add_function(wrap_pyfunction!(banks::latency_args, m)?)?;
    m.add_function(wrap_pyfunction!(banks::latency_step, m)?)?;
    Ok(())
}

"""The event contract: decoding, rejection reasons, ids, and the published JSON Schemas.

The schemas in ``service/schemas/`` are generated from the msgspec structs by
:func:`published_schema` (which adds what the struct types cannot say: ids, titles,
descriptions, and the semantic rules :mod:`modelmedic.events` checks after decoding).
Regenerate them after changing the contract with::

    .venv/bin/python tests/unit/test_events.py

The tests below fail when the checked-in files drift from the code, and check on a
table of good and bad records that the schema and the decoder accept the same ones
(with a tiny validator for the keywords the schemas use: no new dependency).
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from modelmedic import events
from modelmedic.events import (
    MAX_FEATURES,
    MAX_RECORD_BYTES,
    MAX_TS_MS,
    Anomaly,
    InferenceEvent,
    LabelEvent,
    Rejected,
    decode_anomaly,
    decode_inference,
    decode_label,
    encode,
    json_schema,
    stable_id,
)
from modelmedic.registry import check_json_schema

SCHEMA_DIR = Path(events.__file__).parent / "schemas"
SCHEMA_BASE_ID = "https://modelmedic.io/schemas/"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
TS = 1_700_000_000_000

# -- the published schemas ----------------------------------------------------------------

_TS_DOC = ("Event time in epoch milliseconds (UTC), written as an integer literal (no fraction "
           "or exponent: 1700000000000, not 1.7e12). Must be after 1970 and before 2100, which "
           "rejects timestamps in microseconds or nanoseconds.")
_TS_RULES = {"exclusiveMinimum": 0, "exclusiveMaximum": MAX_TS_MS}

PUBLISHED: dict[str, dict[str, Any]] = {
    "inference": {
        "struct": InferenceEvent,
        "title": "modelmedic inference event (contract v1)",
        "description": (
            "One request served by one model version, emitted by the model server to the "
            "Kafka topic modelmedic.inference, keyed by model (all versions and roles of a "
            f"model share a partition). JSON object, at most {MAX_RECORD_BYTES} bytes. Fields not listed "
            "here are ignored, so producers may add their own. Numbers must be finite."
        ),
        "fields": {
            "model": ("Model id, the Kafka record key. Non-empty.", {"minLength": 1}),
            "version": ("Model version serving the request. Non-empty.", {"minLength": 1}),
            "role": ("How this version serves: production traffic, a canary, or a shadow copy.", {}),
            "request_id": ("Id of the request; delayed labels are joined to predictions by it.", {}),
            "ts": (_TS_DOC, _TS_RULES),
            "latency_ms": ("Time to serve the request, in milliseconds; >= 0.", {"minimum": 0}),
            "ok": ("false if the request failed (an error response or an exception).", {}),
            "prediction": ("What the model answered: a number (score, regression value), a string "
                           "(class label), a small vector of numbers, or null/absent.", {}),
            "features": (
                f"Optional: the model's inputs for this request, feature name -> number, string (a category), "
                f"boolean or null, at most {MAX_FEATURES} of them. Only requests in the quality sample are "
                "looked at: their features are checked against the version's input schema in the registry "
                "and compared with its reference (docs/detection.md, 'Inputs'). Anything but an object or null "
                "rejects the event, as a field of the wrong type does; an object whose contents break these "
                "rules does not: its features are dropped and counted (modelmedic_features_dropped_total). "
                "Absent or null: no input monitoring.",
                {"anyOf": [{"type": "object", "maxProperties": MAX_FEATURES,
                            "additionalProperties": {"type": ["number", "string", "boolean", "null"]}},
                           {"type": "null"}]}),
        },
    },
    "label": {
        "struct": LabelEvent,
        "title": "modelmedic label event (contract v1)",
        "description": (
            "Delayed ground truth for one request, emitted by a label joiner to the Kafka "
            "topic modelmedic.labels, keyed by model, and joined to the prediction by "
            f"request_id. JSON object, at most {MAX_RECORD_BYTES} bytes. Fields not listed here are ignored."
        ),
        "fields": {
            "model": ("Model id, the Kafka record key. Non-empty.", {"minLength": 1}),
            "request_id": ("Id of the request whose prediction this label judges.", {}),
            "ts": (_TS_DOC, _TS_RULES),
            "label": ("The true outcome: a number or a class label.", {}),
        },
    },
    "anomaly": {
        "struct": Anomaly,
        "title": "modelmedic anomaly record (contract v1)",
        "description": (
            "A decision of modelmedic's detection plane about one closed window of one series, "
            "published to the Kafka topic modelmedic.anomalies, keyed by model. An episode is "
            "one 'firing' record and, later, one 'recovered' record with the same id."
        ),
        "fields": {
            "id": ("Deterministic id: a hash of series, kind and onset window, so a replay after "
                   "a crash gives the same id. Shared by the firing and the recovered record.", {}),
            "series": ("The series judged: model/version/role, or model/*/role for model-level "
                       "metrics such as throughput.", {}),
            "model": ("Model id.", {}),
            "version": ("Version of the series; for a model-level series, the version that served "
                        "most requests in the window.", {}),
            "role": ("production, canary or shadow.", {}),
            "kind": ("What went wrong: latency, throughput_drop, throughput_surge, errors, ...", {}),
            "anomaly_class": ("The response class: latency, throughput, prediction or drift.", {}),
            "window_start": ("Start of the judged window, epoch milliseconds (inclusive).", {}),
            "window_end": ("End of the judged window, epoch milliseconds (exclusive).", {}),
            "onset": ("Start of the first window of this episode, epoch milliseconds.", {}),
            "observed": ("The value observed in the window (p95 latency in ms, error rate, "
                         "requests per window); -1 if not defined.", {}),
            "baseline": ("The value the detector expected; -1 if not defined.", {}),
            "score": ("Anomaly score in [0, 1]; higher is more anomalous.", {}),
            "state": ("firing when the episode starts, recovered when it ends.", {}),
            "summary": ("One human sentence for the alert.", {}),
            "closed_at_ms": ("Wall-clock time the window was closed, epoch milliseconds.", {}),
            "seen_before": ("Start of the series' last window with data before `onset`, epoch milliseconds; 0: not "
                            "known. A sparse series' onset is its first request after the change: its problem "
                            "started between this and `onset`.", {}),
        },
    },
}


def published_schema(name: str) -> dict[str, Any]:
    """The schema file ``schemas/<name>.v1.json``: msgspec's schema of the struct, made readable."""
    spec = PUBLISHED[name]
    struct = spec["struct"]
    generated = json_schema(struct)
    assert generated["$ref"] == f"#/$defs/{struct.__name__}" and list(generated["$defs"]) == [struct.__name__], (
        "the contract structs are flat: a nested struct would need its $defs published too"
    )
    body = generated["$defs"][struct.__name__]
    properties = {}
    for field, subschema in body["properties"].items():
        doc, rules = spec["fields"][field]  # KeyError: a new field needs a description above
        properties[field] = {"description": doc, **subschema, **rules}
    return {
        "$schema": DRAFT,
        "$id": f"{SCHEMA_BASE_ID}{name}.v{events.CONTRACT_VERSION}.json",
        "title": spec["title"],
        "description": spec["description"],
        "type": "object",
        "properties": properties,
        "required": body["required"],
    }


def schema_text(name: str) -> str:
    return json.dumps(published_schema(name), indent=2, ensure_ascii=False) + "\n"


def write_schemas() -> None:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for name in PUBLISHED:
        (SCHEMA_DIR / f"{name}.v{events.CONTRACT_VERSION}.json").write_text(schema_text(name))


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_checked_in_schema_is_what_the_code_generates(name: str) -> None:
    path = SCHEMA_DIR / f"{name}.v{events.CONTRACT_VERSION}.json"
    assert path.is_file(), f"{path} is missing: run .venv/bin/python tests/unit/test_events.py"
    assert path.read_text() == schema_text(name), (
        f"{path} differs from the contract structs: run .venv/bin/python tests/unit/test_events.py "
        "and commit the result (a change that breaks producers needs a new contract version)"
    )


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_schema_is_complete_and_well_formed(name: str) -> None:
    schema = json.loads((SCHEMA_DIR / f"{name}.v1.json").read_text())
    check_json_schema(schema)
    struct = PUBLISHED[name]["struct"]
    fields = struct.__struct_fields__
    assert list(schema["properties"]) == list(fields)
    assert set(PUBLISHED[name]["fields"]) == set(fields), "descriptions for fields that do not exist"
    defaults = len(struct.__struct_defaults__)
    assert schema["required"] == list(fields[: len(fields) - defaults])
    for field, sub in schema["properties"].items():
        assert sub["description"].strip(), field
    assert schema["$id"].endswith(f"/{name}.v1.json")
    assert schema["title"] and schema["description"]


def test_packaging_ships_the_schema_files() -> None:
    """pyproject's package-data glob must match the files, or wheels ship without them."""
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"schemas/*.json"' in text
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.json")) == sorted(f"{n}.v1.json" for n in PUBLISHED)


# -- a tiny validator for the keywords the published schemas use ---------------------------

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    # Python's json parses 1e999 as inf; no JSON number is infinite, so it is no number here.
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v),
    # Strictly an integer literal: the decoder rejects 1.0 for an int field (see the ts doc).
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
_KNOWN = {"$schema", "$id", "title", "description", "default", "type", "properties", "required", "enum",
          "maxProperties", "additionalProperties",
          "anyOf", "items", "minLength", "minimum", "exclusiveMinimum", "exclusiveMaximum"}


def violations(schema: dict[str, Any], value: Any, at: str = "$") -> list[str]:
    """What is wrong with ``value`` under ``schema`` (empty: valid)."""
    unknown = set(schema) - _KNOWN
    assert not unknown, f"the test validator does not know {unknown}: teach it before publishing them"
    if "anyOf" in schema:
        if all(violations(sub, value, at) for sub in schema["anyOf"]):
            return [f"{at}: matches none of anyOf"]
        return []
    if "type" in schema:
        types = [schema["type"]] if isinstance(schema["type"], str) else schema["type"]
        if not any(_TYPES[t](value) for t in types):
            return [f"{at}: not {schema['type']}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{at}: not one of {schema['enum']}"]
    out = []
    if "minLength" in schema and len(value) < schema["minLength"]:
        out.append(f"{at}: shorter than {schema['minLength']}")
    if "minimum" in schema and not value >= schema["minimum"]:
        out.append(f"{at}: below {schema['minimum']}")
    if "exclusiveMinimum" in schema and not value > schema["exclusiveMinimum"]:
        out.append(f"{at}: not above {schema['exclusiveMinimum']}")
    if "exclusiveMaximum" in schema and not value < schema["exclusiveMaximum"]:
        out.append(f"{at}: not below {schema['exclusiveMaximum']}")
    if "items" in schema:
        for i, item in enumerate(value):
            out += violations(schema["items"], item, f"{at}[{i}]")
    if "required" in schema:
        out += [f"{at}: missing {name}" for name in schema["required"] if name not in value]
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        out.append(f"{at}: more than {schema['maxProperties']} properties")
    for name, sub in schema.get("properties", {}).items():
        if name in value:
            out += violations(sub, value[name], f"{at}.{name}")
    if "additionalProperties" in schema:
        for name in set(value) - set(schema.get("properties", {})):
            out += violations(schema["additionalProperties"], value[name], f"{at}.{name}")
    return out


def test_the_test_validator_can_fail() -> None:
    schema = published_schema("inference")
    assert violations(schema, GOOD_INFERENCE) == []
    assert violations(schema, {**GOOD_INFERENCE, "ok": "yes"}) == ["$.ok: not boolean"]
    assert violations(schema, {**GOOD_INFERENCE, "prediction": {"a": 1}}) == ["$.prediction: matches none of anyOf"]
    assert violations(schema, {"model": ""}) == [
        "$: missing version", "$: missing role", "$: missing request_id", "$: missing ts", "$: missing latency_ms",
        "$: missing ok", "$.model: shorter than 1"]


# -- records ------------------------------------------------------------------------------

GOOD_INFERENCE: dict[str, Any] = {
    "model": "fraud", "version": "1.4.0", "role": "production", "request_id": "r-1",
    "ts": TS, "latency_ms": 12.5, "ok": True, "prediction": 0.25,
}
GOOD_LABEL: dict[str, Any] = {"model": "fraud", "request_id": "r-1", "ts": TS, "label": 1}


def inference(**changes: Any) -> bytes:
    record = {**GOOD_INFERENCE, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not DROP}).encode()


def label(**changes: Any) -> bytes:
    record = {**GOOD_LABEL, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not DROP}).encode()


DROP = object()

# (raw record, reason fragment; None = valid). Shared by the decoder and the schema check.
INFERENCE_CASES: list[tuple[str, bytes, str | None]] = [
    ("good", inference(), None),
    ("int latency", inference(latency_ms=7), None),
    ("zero latency", inference(latency_ms=0), None),
    ("failed request", inference(ok=False), None),
    ("canary", inference(role="canary"), None),
    ("shadow", inference(role="shadow"), None),
    ("int prediction", inference(prediction=3), None),
    ("label prediction", inference(prediction="cat"), None),
    ("vector prediction", inference(prediction=[0.1, 0.9]), None),
    ("empty vector", inference(prediction=[]), None),
    ("null prediction", inference(prediction=None), None),
    ("no prediction", inference(prediction=DROP), None),
    ("unknown field ignored", inference(region="eu-west-1"), None),
    ("features", inference(features={"amount": 12.5, "country": "FR", "first": True, "age": None, "n": 3}), None),
    ("null features", inference(features=None), None),
    ("empty features", inference(features={}), None),
    ("features not an object", inference(features=[1.5]), "got `array` - at `$.features`"),
    ("features before the rest", json.dumps({"features": {"amount": 1}, **GOOD_INFERENCE}).encode(), None),
    ("empty request_id", inference(request_id=""), None),
    ("last ms before 2100", inference(ts=MAX_TS_MS - 1), None),
    ("latency as string", inference(latency_ms="12.5"), "Expected `float`, got `str` - at `$.latency_ms`"),
    ("ok as 'yes'", inference(ok="yes"), "Expected `bool`, got `str` - at `$.ok`"),
    ("ok as 1", inference(ok=1), "Expected `bool`, got `int` - at `$.ok`"),
    ("latency as bool", inference(latency_ms=True), "Expected `float`, got `bool` - at `$.latency_ms`"),
    ("ts with a fraction", inference(ts=TS + 0.5), "Expected `int`, got `float` - at `$.ts`"),
    ("ts as float literal", inference(ts=float(TS)), "Expected `int`, got `float` - at `$.ts`"),
    ("ts as string", inference(ts=str(TS)), "Expected `int`, got `str` - at `$.ts`"),
    ("missing ok", inference(ok=DROP), "Object missing required field `ok`"),
    ("missing model", inference(model=DROP), "Object missing required field `model`"),
    ("missing ts", inference(ts=DROP), "Object missing required field `ts`"),
    ("empty object", b"{}", "Object missing required field `model`"),
    ("role not in enum", inference(role="staging"), "Invalid enum value 'staging' - at `$.role`"),
    ("role in capitals", inference(role="Production"), "Invalid enum value 'Production' - at `$.role`"),
    ("empty model", inference(model=""), "model and version must be non-empty"),
    ("empty version", inference(version=""), "model and version must be non-empty"),
    ("model as number", inference(model=7), "Expected `str`, got `int` - at `$.model`"),
    ("negative latency", inference(latency_ms=-0.5), "latency_ms must be a finite number >= 0, got -0.5"),
    ("latency 1e999", inference().replace(b"12.5", b"1e999"), "Number out of range - at `$.latency_ms`"),
    ("prediction 1e999", inference().replace(b"0.25", b"1e999"), "Number out of range - at `$.prediction`"),
    ("vector with 1e999", inference(prediction=[0.5, 1.5]).replace(b"1.5", b"1e999"), "Number out of range"),
    ("prediction object", inference(prediction={"p": 1}), "got `object` - at `$.prediction`"),
    ("prediction bool", inference(prediction=True), "got `bool` - at `$.prediction`"),
    ("vector of strings", inference(prediction=["a"]), "Expected `float`, got `str` - at `$.prediction[0]`"),
    ("ts zero", inference(ts=0), "ts must be epoch milliseconds > 0"),
    ("ts negative", inference(ts=-1), "ts must be epoch milliseconds > 0"),
    ("ts in microseconds", inference(ts=TS * 1000), f"before 2100 (< {MAX_TS_MS}), got {TS * 1000}"),
    ("ts in nanoseconds", inference(ts=TS * 1_000_000), "before 2100"),
    ("ts 2100-01-01", inference(ts=MAX_TS_MS), "before 2100"),
    ("ts beyond int64", inference(ts=2**70), "before 2100"),
    ("JSON null", b"null", "Expected `object`, got `null`"),
    ("JSON array", b"[]", "Expected `object`, got `array`"),
    ("JSON string", b'"fraud"', "Expected `object`, got `str`"),
]

LABEL_CASES: list[tuple[str, bytes, str | None]] = [
    ("good", label(), None),
    ("float label", label(label=0.75), None),
    ("class label", label(label="fraud"), None),
    ("unknown field ignored", label(source="chargebacks"), None),
    ("null label", label(label=None), "got `null` - at `$.label`"),
    ("bool label", label(label=True), "got `bool` - at `$.label`"),
    ("vector label", label(label=[1.0]), "got `array` - at `$.label`"),
    ("missing label", label(label=DROP), "Object missing required field `label`"),
    ("missing request_id", label(request_id=DROP), "Object missing required field `request_id`"),
    ("empty model", label(model=""), "model must be non-empty"),
    ("ts zero", label(ts=0), "ts must be epoch milliseconds > 0"),
    ("ts in microseconds", label(ts=TS * 1000), "before 2100"),
    ("ts as float", label(ts=1.5), "Expected `int`, got `float` - at `$.ts`"),
    ("label 1e999", label().replace(b'"label": 1', b'"label": 1e999'), "Number out of range - at `$.label`"),
]

NOT_JSON: list[tuple[str, Any]] = [
    ("text", lambda good: b"not json"),
    ("NaN literal", lambda good: good.replace(b'"ts": ', b'"ts": NaN, "x": ')),
    ("Infinity literal", lambda good: good.replace(b'"ts": ', b'"ts": Infinity, "x": ')),
    ("-Infinity literal", lambda good: good.replace(b'"ts": ', b'"ts": -Infinity, "x": ')),
    ("truncated", lambda good: good[:-5]),
    ("trailing garbage", lambda good: good + b"}"),
    ("two records", lambda good: good + b"\n" + good),
    ("empty bytes", lambda good: b""),
    ("not UTF-8 outside strings", lambda good: b"\xff\xfe" + good),
    ("not UTF-8 inside a string", lambda good: good.replace(b'"fraud"', b'"fr\xdad"')),
    ("single quotes", lambda good: good.replace(b'"', b"'")),
]


def _parse_strict(raw: bytes) -> Any:
    """What a conforming JSON parser makes of ``raw``: NaN and Infinity are not JSON."""
    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")
    return json.loads(raw, parse_constant=no_constants)


@pytest.mark.parametrize(("name", "raw", "reason"), INFERENCE_CASES, ids=[c[0] for c in INFERENCE_CASES])
def test_inference_decoder(name: str, raw: bytes, reason: str | None) -> None:
    result = decode_inference(raw)
    if reason is None:
        assert isinstance(result, InferenceEvent), result
        expected = json.loads(raw)
        assert result.model == expected["model"] and result.ts == expected["ts"] and result.ok is expected["ok"]
        assert result.latency_ms == expected["latency_ms"]
    else:
        assert isinstance(result, Rejected), f"{name} was accepted: {result}"
        assert result.reason.startswith("invalid inference event: "), result.reason
        assert reason in result.reason
        assert result.raw == raw  # the dead-letter topic gets the record as it came


@pytest.mark.parametrize(("name", "raw", "reason"), LABEL_CASES, ids=[c[0] for c in LABEL_CASES])
def test_label_decoder(name: str, raw: bytes, reason: str | None) -> None:
    result = decode_label(raw)
    if reason is None:
        assert isinstance(result, LabelEvent), result
        assert result.label == json.loads(raw)["label"]
    else:
        assert isinstance(result, Rejected), f"{name} was accepted: {result}"
        assert result.reason.startswith("invalid label event: ") and reason in result.reason, result.reason
        assert result.raw == raw


@pytest.mark.parametrize(("name", "damage"), NOT_JSON, ids=[c[0] for c in NOT_JSON])
@pytest.mark.parametrize("decode", [decode_inference, decode_label])
def test_not_json_is_rejected_as_such(decode, name: str, damage) -> None:
    raw = damage(inference() if decode is decode_inference else label())
    result = decode(raw)
    assert isinstance(result, Rejected)
    assert result.reason.startswith("not JSON: "), result.reason
    with pytest.raises(ValueError):
        _parse_strict(raw)


@pytest.mark.parametrize(
    ("schema_name", "decode", "cases"),
    [("inference", decode_inference, INFERENCE_CASES), ("label", decode_label, LABEL_CASES)],
)
def test_schema_and_decoder_agree(schema_name: str, decode, cases) -> None:
    """A record valid under the published schema is exactly a record the decoder accepts."""
    schema = json.loads((SCHEMA_DIR / f"{schema_name}.v1.json").read_text())
    disagree = []
    for name, raw, reason in cases:
        by_schema = not violations(schema, _parse_strict(raw))
        by_decoder = not isinstance(decode(raw), Rejected)
        if by_schema != by_decoder or by_decoder != (reason is None):
            disagree.append(f"{name}: schema {'accepts' if by_schema else 'rejects'}, "
                            f"decoder {'accepts' if by_decoder else 'rejects'}")
    assert not disagree, disagree


def _anomaly(**changes: Any) -> Anomaly:
    fields = dict(
        id=stable_id("fraud", "1.4.0", "production", "latency", 28333333), series="fraud/1.4.0/production",
        model="fraud", version="1.4.0", role="production", kind="latency", anomaly_class="latency",
        window_start=TS, window_end=TS + 1000, onset=TS - 1000, observed=250.0, baseline=20.0, score=0.99999,
        state="firing", summary="fraud 1.4.0 (production): p95 latency 250.0ms, baseline 20.0ms", closed_at_ms=TS + 3100,
    )
    return Anomaly(**{**fields, **changes})


def test_anomaly_round_trip_and_schema() -> None:
    schema = json.loads((SCHEMA_DIR / "anomaly.v1.json").read_text())
    for record in (_anomaly(), _anomaly(state="recovered", version="", series="fraud/*/production")):
        raw = encode(record)
        assert decode_anomaly(raw) == record
        assert violations(schema, json.loads(raw)) == []
    bad = json.loads(encode(_anomaly()))
    for name, change in [("state", "pending"), ("score", "high"), ("onset", 1.5)]:
        broken = json.dumps({**bad, name: change}).encode()
        assert violations(schema, json.loads(broken))
        with pytest.raises(msgspec.ValidationError, match=f"`\\$.{name}`"):
            decode_anomaly(broken)
    missing = json.dumps({k: v for k, v in bad.items() if k != "summary"}).encode()
    assert violations(schema, json.loads(missing)) == ["$: missing summary"]
    with pytest.raises(msgspec.ValidationError, match="missing required field `summary`"):
        decode_anomaly(missing)


# -- the remaining rejections -------------------------------------------------------------


@pytest.mark.parametrize("decode", [decode_inference, decode_label])
def test_null_value_is_rejected(decode) -> None:
    """A Kafka tombstone (null value) is a dead letter, not a crash."""
    result = decode(None)
    assert result == Rejected("empty record (null value)", b"")


@pytest.mark.parametrize("decode", [decode_inference, decode_label])
def test_huge_record_is_rejected_before_parsing(decode) -> None:
    padding = "x" * MAX_RECORD_BYTES
    raw = inference(request_id=padding) if decode is decode_inference else label(request_id=padding)
    result = decode(raw)
    assert isinstance(result, Rejected)
    assert result.reason == f"record is {len(raw)} bytes, over the {MAX_RECORD_BYTES}-byte limit"
    assert result.raw == raw[:1024]  # the dead letter keeps a sample, not the whole thing


def test_record_of_exactly_the_limit_is_decoded() -> None:
    base = inference(request_id="")
    raw = inference(request_id="x" * (MAX_RECORD_BYTES - len(base)))
    assert len(raw) == MAX_RECORD_BYTES
    assert isinstance(decode_inference(raw), InferenceEvent)
    assert isinstance(decode_inference(inference(request_id="x" * (MAX_RECORD_BYTES - len(base) + 1))), Rejected)


@pytest.mark.parametrize("decode", [decode_inference, decode_label])
def test_lone_surrogate_escape_is_a_dead_letter(decode) -> None:
    """RFC 8259 leaves a lone surrogate's meaning open (Python accepts it); msgspec does not."""
    raw = (inference() if decode is decode_inference else label()).replace(b'"fraud"', b'"fr\\udc80d"')
    result = decode(raw)
    assert isinstance(result, Rejected) and result.reason.startswith("not JSON: "), result


def test_decoders_never_raise_on_random_bytes() -> None:
    import random

    rng = random.Random(1)
    good = inference()
    for _ in range(2000):
        raw = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        for decode in (decode_inference, decode_label):
            result = decode(bytes(raw))
            assert isinstance(result, InferenceEvent | LabelEvent | Rejected)


def test_decoded_event_is_immutable() -> None:
    event = decode_inference(inference())
    with pytest.raises(AttributeError):
        event.latency_ms = 0.0  # type: ignore[misc]


# -- ids ----------------------------------------------------------------------------------


def test_stable_id_is_deterministic_and_pinned() -> None:
    parts = ("fraud", "1.4.0", "production", "latency", 28333333)
    assert stable_id(*parts) == stable_id(*parts)
    expected = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=10).hexdigest()
    assert stable_id(*parts) == expected
    # Pinned: ids are stored in Kafka and in incidents; changing the hash orphans every one.
    assert stable_id("fraud", "*", "production", "throughput_drop", 1) == "66b71adf1400335dc0be"
    assert len(stable_id()) == 20


def test_stable_id_is_the_same_in_another_process() -> None:
    """No per-process salt (str hash randomization must not leak in)."""
    code = "from modelmedic.events import stable_id; print(stable_id('fraud', '*', 'production', 'errors', 7))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "12345"}).stdout.strip()
    assert out == stable_id("fraud", "*", "production", "errors", 7)


@pytest.mark.parametrize(
    "other",
    [("fraud", "1.4.1", "production", "latency", 5), ("fraud", "1.4.0", "canary", "latency", 5),
     ("fraud", "1.4.0", "production", "errors", 5), ("fraud", "1.4.0", "production", "latency", 6),
     ("fraud1.4.0", "", "production", "latency", 5), ("fraud", "1.4.0", "production", "latency")],
)
def test_stable_id_changes_with_any_part(other: tuple) -> None:
    assert stable_id(*other) != stable_id("fraud", "1.4.0", "production", "latency", 5)


if __name__ == "__main__":
    write_schemas()
    print(f"wrote {', '.join(sorted(PUBLISHED))} schemas to {SCHEMA_DIR}")

"""What the registry accepts: names, versions, artifacts, interfaces and certification reports.

Every check raises a :class:`~modelmedic.errors.RegistryValidationError` (or a subclass) whose
message names what is wrong and how to write it instead; nothing here touches git or files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from modelmedic.errors import InvalidVersionError, RegistryValidationError, SchemaError
from modelmedic.registry.records import CertifiedBaseline

_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
# semver.org's reference expression, with GTO's leading "v".
SEMVER_RE = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_IMAGE_RE = re.compile(r"^[a-z0-9][a-z0-9._:/-]*@sha256:[0-9a-f]{64}$")


def normalize_version(version: str) -> str:
    """Return the GTO spelling ``v<semver>`` of ``version``, or raise :class:`InvalidVersionError`.

    >>> normalize_version("1.2.0"), normalize_version("v2.0.0-rc.1")
    ('v1.2.0', 'v2.0.0-rc.1')
    """
    if not isinstance(version, str) or not SEMVER_RE.match(version):
        raise InvalidVersionError(
            f"{version!r} is not a semantic version: use MAJOR.MINOR.PATCH with an optional v prefix, "
            "pre-release and build, e.g. v1.4.0 or v2.0.0-rc.1 (https://semver.org)"
        )
    return version if version.startswith("v") else f"v{version}"


def semver_key(version: str) -> tuple[Any, ...]:
    """Sort key giving semver precedence: numeric parts, then pre-releases before the release.

    >>> sorted(["v1.10.0", "v1.2.0", "v1.2.0-rc.1", "v1.2.0-beta"], key=semver_key)
    ['v1.2.0-beta', 'v1.2.0-rc.1', 'v1.2.0', 'v1.10.0']
    """
    m = SEMVER_RE.match(version)
    if m is None:
        raise InvalidVersionError(f"{version!r} is not a semantic version")
    pre = m["pre"]
    pre_key = (1,) if pre is None else (0, tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")))
    return (int(m["major"]), int(m["minor"]), int(m["patch"]), pre_key)


def check_model_name(name: str) -> str:
    """Model names become directory and tag names; GTO accepts only this shape."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise RegistryValidationError(
            f"model name {name!r} is invalid: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (e.g. fraud-scorer)"
        )
    return name




_KEYWORD_HINTS = {
    "type": "use one of array, boolean, integer, null, number, object, string (or a list of them)",
    "required": "use a list of property names",
    "enum": "use a list of the allowed values",
    "items": "use one schema for every item (draft 2020-12; a tuple is prefixItems)",
    "properties": "map each property name to a schema",
}
"""What to write instead, by the keyword that failed: the validator says what is wrong, this says how to fix it."""


def check_json_schema(schema: object, where: str = "#") -> None:
    """Check that ``schema`` is a valid JSON Schema (draft 2020-12), so every model server can validate against it.

    The error names the JSON path that is wrong, below ``where``, and how to fix it.

    >>> check_json_schema({"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]})
    >>> check_json_schema({"type": "vector"})
    Traceback (most recent call last):
    ...
    modelmedic.errors.SchemaError: #/type: 'vector' is not valid under any of the given schemas; use one of ...
    """
    # Imported here: jsonschema costs ~60 ms to import, and only registering a model needs it
    # (every other registry command, and the service's stats, would pay it at start otherwise).
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError as JsonSchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except JsonSchemaError as exc:
        path = "".join(f"/{p}" for p in exc.absolute_path)
        hint = _KEYWORD_HINTS.get(str(exc.absolute_path[-1]) if exc.absolute_path else "",
                                  "a JSON Schema is an object (or true/false) of JSON Schema keywords")
        raise SchemaError(f"{where}{path}: {exc.message}; {hint}") from None


def check_interface(interface: object) -> dict[str, Any]:
    """A model's interface is an input and an output JSON Schema."""
    if not isinstance(interface, dict) or set(interface) != {"input", "output"}:
        raise SchemaError('interface must be {"input": <JSON Schema>, "output": <JSON Schema>}, '
                          f"got keys {sorted(interface) if isinstance(interface, dict) else type(interface).__name__}")
    for side in ("input", "output"):
        check_json_schema(interface[side], f"interface.{side}")
    return interface


def number_map(value: object, what: str) -> dict[str, float]:
    """``value`` as metric name -> float, or an error saying it must be such a map."""
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in value.items()
    ):
        raise RegistryValidationError(f'{what} must map metric names to numbers, e.g. {{"auc": 0.91}}')
    return {k: float(v) for k, v in value.items()}


def check_artifact(artifact_uri: str, digest: str) -> None:
    """An artifact is named by a URI with a scheme and pinned by a sha256 digest."""
    if not isinstance(artifact_uri, str) or not urlsplit(artifact_uri).scheme:
        raise RegistryValidationError(
            f"artifact URI {artifact_uri!r} has no scheme: give where the artifact lives, "
            "e.g. s3://models/fraud/1.2.0/model.onnx or file:///srv/models/model.onnx"
        )
    if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
        raise RegistryValidationError(
            f"digest {digest!r} is invalid: use sha256:<64 lowercase hex>, e.g. from `sha256sum model.onnx`"
        )


def check_image(image: str | None) -> None:
    """An image is pinned by its digest: a tag can be moved to other bytes, a digest cannot.

    >>> check_image("registry.local/models/fraud@sha256:" + "a" * 64)
    >>> check_image("registry.local/models/fraud:v2")
    Traceback (most recent call last):
    ...
    modelmedic.errors.RegistryValidationError: image 'registry.local/models/fraud:v2' is not pinned by digest: ...
    """
    if image is not None and (not isinstance(image, str) or not _IMAGE_RE.match(image)):
        raise RegistryValidationError(
            f"image {image!r} is not pinned by digest: give repository@sha256:<64 hex>, e.g. from "
            "`docker inspect --format '{{index .RepoDigests 0}}' IMAGE` (a tag can be moved to other bytes)"
        )


GATE_FIELDS = {
    "max_p99_ms": "p99 latency (ms) under load at most this",
    "max_error_rate": "errors over all certification requests at most this fraction",
    "min_throughput_rps": "saturation throughput (req/s) at least this",
    "min_quality": "metric -> floor for metrics where more is better, e.g. {accuracy: 0.9}",
    "max_quality": "metric -> ceiling for error metrics, e.g. {mae: 2.5}",
    "require_live_test": "true: a deploy needs a passing shadow verdict (modelmedic live-test)",
}
"""What ``gates`` in ``model.yaml`` may hold, and what each means."""


def check_gates(gates: object) -> dict[str, Any]:
    """A model's gates: known names only (a typo must never loosen a gate silently), numbers where numbers go.

    >>> check_gates({"min_quality": {"accuracy": 0.9}, "max_p99_ms": 120, "require_live_test": True})["max_p99_ms"]
    120.0
    >>> check_gates({"min_acuracy": 0.9})
    Traceback (most recent call last):
    ...
    modelmedic.errors.RegistryValidationError: unknown gate(s) ['min_acuracy']: use max_p99_ms, ...
    """
    if not isinstance(gates, Mapping):
        raise RegistryValidationError(f"gates must be a mapping of {', '.join(GATE_FIELDS)}")
    unknown = sorted(set(gates) - set(GATE_FIELDS))
    if unknown:
        raise RegistryValidationError(f"unknown gate(s) {unknown}: use {', '.join(GATE_FIELDS)}")
    checked: dict[str, Any] = {}
    for name, value in gates.items():
        if name == "require_live_test":
            if not isinstance(value, bool):
                raise RegistryValidationError(f"gates.require_live_test must be true or false, got {value!r}")
            checked[name] = value
        elif name in ("min_quality", "max_quality"):
            checked[name] = number_map(value, f"gates.{name}")
        else:
            checked[name] = number_map({name: value}, f"gates.{name}")[name]
    return checked


_LATENCY_FIELDS = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms")
_BASELINE_FIELDS = (*_LATENCY_FIELDS, "throughput_rps", "error_rate")


def check_certification(report: object) -> CertifiedBaseline:
    """A certification report must carry every number the monitor compares production against."""
    if not isinstance(report, dict):
        raise RegistryValidationError("a certification report is a JSON object")
    missing = [f for f in (*_BASELINE_FIELDS, "quality") if f not in report]
    if missing:
        raise RegistryValidationError(f"certification report lacks {missing}: give {[*_BASELINE_FIELDS, 'quality']}")
    # A failed report may lack a percentile (too few requests to report one): it is never a baseline.
    missing_ok = {f for f in _LATENCY_FIELDS if report[f] is None} if report.get("passed") is False else set()
    values: dict[str, float | None] = {f: None for f in missing_ok}
    values.update(number_map({f: report[f] for f in _BASELINE_FIELDS if f not in missing_ok}, "certification report fields"))
    if not 0.0 <= values["error_rate"] <= 1.0:  # type: ignore[operator]
        raise RegistryValidationError(f"certification error_rate {values['error_rate']} is not a fraction in [0, 1]")
    return CertifiedBaseline(**values, quality=number_map(report["quality"], "quality"), report=report)  # type: ignore[arg-type]

"""Does a version's interface break its predecessor's? JSON Schema compatibility, as callers feel it.

A caller keeps sending what the old input schema allowed and keeps reading what the old output
schema promised. So the new **input** schema must accept every old input (it may only loosen:
fewer required fields, wider types, more enum values), and every new **output** must satisfy the
old output schema (it may only tighten). Anything else is a break, which semantic versioning
allows only with a new major version (``v1.4.0`` -> ``v2.0.0``; in ``0.y.z`` a new minor, as Cargo
and npm read it).

The check covers what interfaces in a registry use: ``type``, ``properties`` (recursively),
``required``, ``additionalProperties: false``, ``enum`` and array ``items``. Keywords it does not
model (``oneOf``, ``$ref``, patterns, bounds) are compared as a whole: any change to one is
reported as a possible break, never silently passed.
"""

from __future__ import annotations

from typing import Any, Literal

from modelmedic.registry.schema import semver_key

Side = Literal["input", "output"]
_MODELLED = {"type", "properties", "required", "additionalProperties", "enum", "items",
             "title", "description", "examples", "default", "$schema", "$id", "$comment"}


def breaking_allowed(previous: str, new: str) -> bool:
    """Whether semver lets ``new`` break ``previous``'s interface: a new major (a new minor below 1.0.0)."""
    (old_major, old_minor, *_), (new_major, new_minor, *_) = semver_key(previous), semver_key(new)
    if old_major == 0 and new_major == 0:
        return new_minor != old_minor
    return new_major != old_major


def interface_breaks(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Every way ``new`` breaks callers of ``old`` (``{"input": schema, "output": schema}``), as JSON paths."""
    return [*_breaks(old["input"], new["input"], "input", "input"),
            *_breaks(old["output"], new["output"], "output", "output")]


def _types(schema: dict[str, Any]) -> set[str] | None:
    """The JSON types a schema allows (integer counts as a number), or None: any."""
    declared = schema.get("type")
    if declared is None:
        return None
    types = {declared} if isinstance(declared, str) else set(declared)
    return types | {"integer"} if "number" in types else types


def _narrower(a: set[str] | None, b: set[str] | None) -> bool:
    """Is ``b`` missing something ``a`` allows?"""
    return b is not None and (a is None or not a <= b)


def _breaks(old: Any, new: Any, side: Side, path: str) -> list[str]:
    if not isinstance(old, dict) or not isinstance(new, dict):
        return [] if old == new else [f"{path}: changed from {old!r} to {new!r}"]
    # input: the new schema must allow all the old one did; output: the old one must allow all the new one does
    wide, narrow = (old, new) if side == "input" else (new, old)
    found = []
    if _narrower(_types(wide), _types(narrow)):
        found.append(f"{path}: type {old.get('type', 'any')!r} became {new.get('type', 'any')!r}")
    if "enum" in narrow and not set(map(repr, wide.get("enum", [object()]))) <= set(map(repr, narrow["enum"])):
        found.append(f"{path}: enum {old.get('enum', 'any')} became {new.get('enum', 'any')}")
    newly_required = set(narrow.get("required", ())) - set(wide.get("required", ()))
    found += [f"{path}.{name}: " + ("now required" if side == "input" else "no longer always returned")
              for name in sorted(newly_required)]
    if narrow.get("additionalProperties") is False:
        found += [f"{path}.{name}: " + ("no longer accepted" if side == "input" else "new field the old schema forbids")
                  for name in sorted(set(wide.get("properties", {})) - set(narrow.get("properties", {})))]
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name in sorted(set(old_props) & set(new_props)):
        found += _breaks(old_props[name], new_props[name], side, f"{path}.{name}")
    if "items" in old or "items" in new:
        found += _breaks(old.get("items", {}), new.get("items", {}), side, f"{path}[]")
    for keyword in sorted((set(old) | set(new)) - _MODELLED):
        if old.get(keyword) != new.get(keyword):
            found.append(f"{path}: {keyword} changed (not checked in detail: treated as a break)")
    return found


def previous_version(versions: list[str], new: str) -> str | None:
    """The highest registered version below ``new``: the one whose callers ``new`` inherits."""
    below = [v for v in versions if semver_key(v) < semver_key(new)]
    return max(below, key=semver_key) if below else None

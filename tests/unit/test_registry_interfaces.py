"""Per-version release notes, descriptions and interfaces, and the semver rule on interface breaks."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelmedic.cli import main
from modelmedic.errors import InterfaceBreakError, SchemaError
from modelmedic.registry import Registry, breaking_allowed, interface_breaks

DIGEST = "sha256:" + "0" * 64
AMOUNT = {"type": "object", "properties": {"amount": {"type": "number"}}, "required": ["amount"]}
SCORE = {"type": "object", "properties": {"score": {"type": "number"}, "label": {"enum": ["ok", "fraud"]}},
         "required": ["score", "label"]}


def with_props(schema: dict, required: list[str] | None = None, **props: dict) -> dict:
    return {**schema, "properties": {**schema["properties"], **props},
            "required": schema["required"] if required is None else required}


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    registry = Registry.init(tmp_path / "registry")
    registry.register_model("fraud", description="Card fraud score", owners=["risk-team"],
                            interface={"input": AMOUNT, "output": SCORE})
    registry.add_version("fraud", "1.0.0", "First.\nTrained on May data.", "s3://m/1", DIGEST)
    return registry


@pytest.mark.parametrize("new_input, new_output, expected", [
    (with_props(AMOUNT, country={"type": "string"}), SCORE, []),  # an optional input field: compatible
    (with_props(AMOUNT, ["amount", "country"], country={"type": "string"}), SCORE, ["input.country: now required"]),
    (with_props(AMOUNT, amount={"type": "integer"}), SCORE, ["input.amount: type 'number' became 'integer'"]),
    (with_props(AMOUNT, amount={"type": ["number", "string"]}), SCORE, []),  # accepts more: compatible
    ({**AMOUNT, "additionalProperties": False, "properties": {}, "required": []}, SCORE,
     ["input.amount: no longer accepted"]),
    (AMOUNT, with_props(SCORE, ["score"]), ["output.label: no longer always returned"]),
    (AMOUNT, with_props(SCORE, label={"enum": ["ok", "fraud", "review"]}),
     ["output.label: enum ['ok', 'fraud'] became ['ok', 'fraud', 'review']"]),
    (AMOUNT, with_props(SCORE, label={"enum": ["ok"]}), []),  # returns fewer values: compatible
    (AMOUNT, with_props(SCORE, score={"type": "integer"}), []),  # integers are numbers
    (AMOUNT, {**SCORE, "type": ["object", "null"]}, ["output: type 'object' became ['object', 'null']"]),
    (with_props(AMOUNT, amount={"type": "number", "minimum": 0}), SCORE,
     ["input.amount: minimum changed (not checked in detail: treated as a break)"]),
])
def test_what_breaks_callers_of_the_old_interface(new_input, new_output, expected):
    assert interface_breaks({"input": AMOUNT, "output": SCORE}, {"input": new_input, "output": new_output}) == expected


@pytest.mark.parametrize("previous, new, allowed", [
    ("v1.4.0", "v1.5.0", False), ("v1.4.0", "v1.4.1", False), ("v1.4.0", "v2.0.0", True),
    ("v1.4.0", "v2.0.0-rc.1", True), ("v0.3.0", "v0.3.1", False), ("v0.3.0", "v0.4.0", True),
])
def test_semver_lets_only_a_new_major_break_the_interface(previous, new, allowed):
    assert breaking_allowed(previous, new) is allowed


def test_a_breaking_minor_version_is_refused_naming_the_break_and_the_major_to_use(reg):
    breaking = {"input": with_props(AMOUNT, ["amount", "country"], country={"type": "string"}), "output": SCORE}
    with pytest.raises(InterfaceBreakError) as refused:
        reg.add_version("fraud", "1.1.0", "needs country", "s3://m/2", DIGEST, interface=breaking)
    assert str(refused.value) == (
        "fraud@v1.1.0 breaks the interface of v1.0.0: input.country: now required. Callers of v1.0.0 would fail: "
        "keep the interface compatible, or register it as a new major version (semver: v2.0.0)")
    assert [v.version for v in reg.show("fraud").versions] == ["v1.0.0"], "nothing registered"
    assert reg.add_version("fraud", "2.0.0", "needs country", "s3://m/2", DIGEST, interface=breaking).interface == breaking


def test_the_previous_version_is_the_highest_below_even_when_registered_out_of_order(reg):
    v2 = {"input": with_props(AMOUNT, ["amount", "country"], country={"type": "string"}), "output": SCORE}
    reg.add_version("fraud", "2.0.0", "needs country", "s3://m/2", DIGEST, interface=v2)
    # a patch of the 1.x line is judged against v1.0.0 (the model's interface), not against v2.0.0
    reg.add_version("fraud", "1.0.1", "hotfix", "s3://m/3", DIGEST)
    with pytest.raises(InterfaceBreakError, match="breaks the interface of v2.0.0: input.country: no longer"):
        reg.add_version("fraud", "2.1.0", "drops country", "s3://m/4", DIGEST,
                        interface={"input": {**AMOUNT, "additionalProperties": False}, "output": SCORE})


def test_a_version_interface_must_be_valid_json_schema(reg):
    with pytest.raises(SchemaError, match="interface.input"):
        reg.add_version("fraud", "1.1.0", "x", "s3://m/2", DIGEST, interface={"input": {"type": "numbr"}, "output": SCORE})


def test_show_version_gives_full_notes_and_the_interface_it_has(reg, tmp_path, capsys):
    own = {"input": with_props(AMOUNT, country={"type": "string"}), "output": SCORE}
    reg.add_version("fraud", "1.1.0", "Adds an optional country.", "s3://m/2", DIGEST, description="with country",
                    interface=own)
    first, second = reg.show_version("fraud", "1.0.0"), reg.show_version("fraud", "v1.1.0")
    assert (first.inherited, first.interface, first.description) == (True, {"input": AMOUNT, "output": SCORE},
                                                                     "Card fraud score")
    assert (second.inherited, second.interface, second.description) == (False, own, "with country")
    assert reg.interface("fraud", "1.1.0") == own and reg.interface("fraud", "1.0.0")["input"] == AMOUNT

    assert main(["registry", "show", "fraud", "1.0.0", "--registry", str(reg.path)]) == 0
    out = capsys.readouterr().out
    assert "release notes:\n  First.\n  Trained on May data." in out and "interface: the model's" in out
    assert main(["registry", "show", "fraud", "--registry", str(reg.path)]) == 0
    table = capsys.readouterr().out
    assert "INTERFACE" in table and "own" in table.split("v1.1.0")[1].splitlines()[0]


def test_add_version_cli_takes_both_schemas_or_neither(reg, capsys):
    argv = ["registry", "add-version", "fraud", "1.2.0", "--registry", str(reg.path), "--artifact", "s3://m/5",
            "--digest", DIGEST, "--notes", "n"]
    assert main([*argv, "--input-schema", '{"type": "object"}']) == 3
    assert "give both --input-schema and --output-schema" in capsys.readouterr().err
    assert main([*argv, "--input-schema", '{"type": "object", "properties": {"amount": {"type": "string"}}}',
                 "--output-schema", '{"type": "number"}']) == 3
    err = capsys.readouterr().err
    assert "input.amount: type 'number' became 'string'" in err and "output: type 'object' became 'number'" in err

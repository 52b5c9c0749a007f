"""The playbook API: registration checks, params validation, entry-point discovery, run_playbook's containment."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from pydantic import BaseModel, ConfigDict, Field

from modelmedic.errors import KubeForbidden, PlaybookError, UnknownPlaybookError
from modelmedic.remediations import (
    Outcome,
    PlaybookContext,
    PlaybookRegistry,
    Target,
    api,
    idempotency_key,
    playbook,
    run_playbook,
)

TARGET = Target(model="fraud", version="v2", role="production", namespace="models", deployment="fraud")


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: int = Field(1, ge=1)


class LooseParams(BaseModel):
    step: int = 1


@pytest.fixture
def registry() -> PlaybookRegistry:
    return PlaybookRegistry()


@pytest.fixture
def ctx() -> PlaybookContext:
    return PlaybookContext(k8s=None, target=TARGET, incident_id="inc-1", anomaly_class="latency", kind="latency",  # type: ignore[arg-type]
                           idempotency_key=idempotency_key("inc-1", "x", 0))


def runs(playbook_name: str, status: str) -> float:
    return REGISTRY.get_sample_value("modelmedic_playbook_runs_total", {"playbook": playbook_name, "status": status}) or 0.0


# ---------------------------------------------------------------- registration

def test_the_decorator_registers_a_typed_record_and_returns_the_function_unchanged(registry: PlaybookRegistry) -> None:
    async def scale(ctx: PlaybookContext, params: Params) -> Outcome:
        """Scale a little.

        Longer explanation that is not the description.
        """
        return Outcome.done("ok")

    assert playbook(name="scale", timeout_s=5, registry=registry)(scale) is scale
    record = registry.get("scale")
    assert (record.fn, record.params_model, record.timeout_s, record.description) == (scale, Params, 5.0, "Scale a little.")
    assert "scale" not in api.default_registry.names()


def sync_fn(ctx: PlaybookContext, params: Params) -> Outcome:
    return Outcome.done("x")


async def three_args(ctx: PlaybookContext, params: Params, extra: int) -> Outcome:
    return Outcome.done("x")


async def untyped_ctx(ctx, params: Params) -> Outcome:  # noqa: ANN001
    return Outcome.done("x")


async def dict_params(ctx: PlaybookContext, params: dict) -> Outcome:
    return Outcome.done("x")


async def loose_params(ctx: PlaybookContext, params: LooseParams) -> Outcome:
    return Outcome.done("x")


async def no_return(ctx: PlaybookContext, params: Params):  # noqa: ANN201
    return Outcome.done("x")


async def unresolvable(ctx: PlaybookContext, params: NotImported) -> Outcome:  # noqa: F821
    return Outcome.done("x")


@pytest.mark.parametrize(("fn", "match"), [
    (sync_fn, "must be `async def`"),
    (three_args, r"exactly \(ctx: PlaybookContext, params: <Params>\)"),
    (untyped_ctx, "annotate its first parameter as `ctx: PlaybookContext`"),
    (dict_params, "annotate `params` with a pydantic BaseModel subclass"),
    (loose_params, r"LooseParams must set model_config = ConfigDict\(extra=\"forbid\"\)"),
    (no_return, "annotate its return as `-> Outcome`"),
    (unresolvable, "cannot resolve its annotations .*NotImported"),
])
def test_a_badly_declared_playbook_is_refused_at_registration(registry: PlaybookRegistry, fn, match: str) -> None:
    with pytest.raises(PlaybookError, match=match):
        playbook(name="bad", registry=registry)(fn)
    assert registry.names() == []


@pytest.mark.parametrize(("name", "timeout_s", "match"), [("", 30, "non-empty"), (" x", 30, "surrounding"), ("x", 0, "timeout_s must be > 0")])
def test_bad_decorator_arguments_are_refused(name: str, timeout_s: float, match: str) -> None:
    with pytest.raises(PlaybookError, match=match):
        playbook(name=name, timeout_s=timeout_s, registry=PlaybookRegistry())


def test_a_name_is_taken_once_but_the_same_function_may_register_again(registry: PlaybookRegistry) -> None:
    async def first(ctx: PlaybookContext, params: Params) -> Outcome:
        return Outcome.done("1")

    async def second(ctx: PlaybookContext, params: Params) -> Outcome:
        return Outcome.done("2")

    playbook(name="same", registry=registry)(first)
    playbook(name="same", registry=registry)(first)
    with pytest.raises(PlaybookError, match="playbook name 'same' is taken by .*first; rename .*second"):
        playbook(name="same", registry=registry)(second)
    assert registry.get("same").fn is first


def test_params_are_validated_by_name_and_unknown_names_list_the_known_ones(registry: PlaybookRegistry) -> None:
    playbook(name="scale", registry=registry)(_ok)
    assert registry.validate("scale", {"step": 3}) == Params(step=3)
    assert registry.validate("scale", None) == Params()
    with pytest.raises(PlaybookError, match=r"invalid params for playbook 'scale': step: Input should be greater than or equal to 1 \(its params are: step\)"):
        registry.validate("scale", {"step": 0})
    with pytest.raises(PlaybookError, match="steps: Extra inputs are not permitted"):
        registry.validate("scale", {"steps": 2})
    with pytest.raises(UnknownPlaybookError, match="no playbook named 'scael'; known: scale. Install the package"):
        registry.validate("scael", {})


async def _ok(ctx: PlaybookContext, params: Params) -> Outcome:
    """Does nothing, successfully."""
    return Outcome.done(f"step {params.step}", step=params.step)


# ---------------------------------------------------------------- entry points

PLUGIN = '''
from pydantic import BaseModel, ConfigDict
from modelmedic.remediations import Outcome, PlaybookContext, playbook

class NoteParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = "hello"

@playbook(name="note")
async def note(ctx: PlaybookContext, params: NoteParams) -> Outcome:
    """Leave a note."""
    return Outcome.done(params.text)

@playbook(name="scale-out")
async def impostor(ctx: PlaybookContext, params: NoteParams) -> Outcome:
    return Outcome.done("not the real one")

def helper():
    return 42
'''


def install_plugin(root: Path, monkeypatch: pytest.MonkeyPatch, entry_points: dict[str, str]) -> None:
    """A real installed distribution on sys.path: importlib.metadata discovers it like a pip-installed plugin."""
    (root / "unit_plugin.py").write_text(PLUGIN)
    (root / "unit_broken_plugin.py").write_text("raise RuntimeError('plugin bug at import')\n")
    info = root / "unit_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: unit-plugin\nVersion: 0.1\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[unit.playbooks]\n{lines}")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setattr(api, "default_registry", PlaybookRegistry())  # the plugin's decorators register here
    for module in ("unit_plugin", "unit_broken_plugin"):
        monkeypatch.delitem(sys.modules, module, raising=False)


def test_entry_points_load_and_every_broken_one_is_logged_counted_and_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: PlaybookRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    playbook(name="scale-out", registry=registry)(_ok)
    install_plugin(tmp_path, monkeypatch, {
        "note": "unit_plugin:note",
        "crashes": "unit_broken_plugin:anything",
        "plain": "unit_plugin:helper",
        "missing": "unit_plugin:nothing_here",
        "clash": "unit_plugin:impostor",
    })
    errors = lambda name: REGISTRY.get_sample_value("modelmedic_playbook_load_errors_total", {"entry_point": name}) or 0.0  # noqa: E731
    before = {name: errors(name) for name in ("crashes", "plain", "missing", "clash")}

    with caplog.at_level(logging.ERROR, logger="modelmedic.playbooks"):
        loaded = registry.load_entry_points("unit.playbooks")

    assert loaded == ["note"] and registry.names() == ["note", "scale-out"]
    assert registry.get("scale-out").fn is _ok, "a plugin cannot take over a registered name"
    assert registry.broken == {
        "crashes": "RuntimeError: plugin bug at import",
        "plain": "PlaybookError: entry point plain = unit_plugin:helper is not a playbook: point it at a function "
                 "decorated with @modelmedic.remediations.playbook",
        "missing": "AttributeError: module 'unit_plugin' has no attribute 'nothing_here'",
        "clash": registry.broken["clash"],
    }
    assert registry.broken["clash"].startswith("PlaybookError: playbook name 'scale-out' is taken")
    assert {name: errors(name) - before[name] for name in before} == dict.fromkeys(before, 1.0)
    assert sum("playbook plugin" in r.getMessage() and "skipped" in r.getMessage() for r in caplog.records) == 4
    with pytest.raises(UnknownPlaybookError, match="broken plugins: clash, crashes, missing, plain"):
        registry.get("crashes")


def test_the_projects_own_entry_points_provide_the_built_ins(registry: PlaybookRegistry) -> None:
    assert {"restart", "rollback", "scale-out"} <= set(registry.load_entry_points())
    assert registry.broken == {}
    assert registry.get("scale-out").params_model.__name__ == "ScaleOutParams"


# ---------------------------------------------------------------- run_playbook

async def test_a_run_validates_params_and_returns_the_outcome(registry: PlaybookRegistry, ctx: PlaybookContext) -> None:
    playbook(name="ok", registry=registry)(_ok)
    before = runs("ok", "done")
    outcome = await run_playbook(registry.get("ok"), ctx, {"step": 4})
    assert outcome == Outcome.done("step 4", step=4) and outcome.acted
    assert runs("ok", "done") == before + 1


async def test_a_hanging_playbook_times_out(registry: PlaybookRegistry, ctx: PlaybookContext) -> None:
    started = asyncio.Event()

    async def hangs(ctx: PlaybookContext, params: Params) -> Outcome:
        started.set()
        await asyncio.Event().wait()
        return Outcome.done("never")

    playbook(name="hangs", timeout_s=0.05, registry=registry)(hangs)
    outcome = await run_playbook(registry.get("hangs"), ctx)
    assert started.is_set()
    assert (outcome.status, outcome.message, outcome.acted) == ("timeout", "playbook hangs did not finish within 0.05s", False)


async def test_a_timeout_of_the_playbooks_own_is_a_failure_not_the_deadline(registry: PlaybookRegistry, ctx: PlaybookContext) -> None:
    async def slow_socket(ctx: PlaybookContext, params: Params) -> Outcome:
        raise TimeoutError("read timed out")

    playbook(name="slow-socket", timeout_s=30, registry=registry)(slow_socket)
    outcome = await run_playbook(registry.get("slow-socket"), ctx)
    assert (outcome.status, outcome.message) == ("failed", "TimeoutError: read timed out")


async def test_an_exception_is_contained_with_its_message(registry: PlaybookRegistry, ctx: PlaybookContext) -> None:
    async def forbidden(ctx: PlaybookContext, params: Params) -> Outcome:
        raise KubeForbidden("patch deployments/scale models/fraud is forbidden: check deploy/rbac/role.yaml")

    playbook(name="forbidden", registry=registry)(forbidden)
    before = runs("forbidden", "failed")
    outcome = await run_playbook(registry.get("forbidden"), ctx)
    assert outcome.status == "failed" and outcome.details == {"error": "KubeForbidden"}
    assert outcome.message == "KubeForbidden: patch deployments/scale models/fraud is forbidden: check deploy/rbac/role.yaml"
    assert runs("forbidden", "failed") == before + 1


async def test_bad_params_or_a_wrong_return_fail_the_run_not_the_caller(registry: PlaybookRegistry, ctx: PlaybookContext) -> None:
    async def returns_text(ctx: PlaybookContext, params: Params) -> Outcome:
        return "done"  # type: ignore[return-value]

    playbook(name="ok", registry=registry)(_ok)
    playbook(name="text", registry=registry)(returns_text)
    bad = await run_playbook(registry.get("ok"), ctx, {"step": -1})
    assert bad.status == "failed" and "invalid params for playbook 'ok': step" in bad.message
    text = await run_playbook(registry.get("text"), ctx)
    assert (text.status, text.message) == ("failed", "playbook text returned str, not an Outcome")


async def test_the_context_logger_carries_the_model_and_incident(
    registry: PlaybookRegistry, ctx: PlaybookContext, caplog: pytest.LogCaptureFixture
) -> None:
    async def talks(ctx: PlaybookContext, params: Params) -> Outcome:
        ctx.log.info("looking", extra={"step": params.step})
        return Outcome.skipped("nothing to do")

    playbook(name="talks", registry=registry)(talks)
    with caplog.at_level(logging.INFO, logger="modelmedic.playbooks"):
        await run_playbook(registry.get("talks"), ctx)
    looking, summary = (r for r in caplog.records if r.name == "modelmedic.playbooks")
    assert (looking.model, looking.version, looking.incident_id, looking.step) == ("fraud", "v2", "inc-1", 1)
    assert (summary.getMessage(), summary.playbook) == ("playbook talks: skipped: nothing to do", "talks")


def test_idempotency_keys_are_stable_per_incident_playbook_and_attempt() -> None:
    keys = {idempotency_key(i, p, a) for i in ("inc-1", "inc-2") for p in ("scale-out", "rollback") for a in (0, 1)}
    assert len(keys) == 8
    assert idempotency_key("inc-1", "scale-out", 0) == idempotency_key("inc-1", "scale-out", 0)
    assert all(len(key) <= 63 for key in keys)


def test_outcome_constructors_and_only_done_counts_as_acting() -> None:
    assert [o.acted for o in (Outcome.done("a"), Outcome.skipped("b"), Outcome.dry_run("c"), Outcome.failed("d"))] == [
        True, False, False, False]
    assert Outcome.dry_run("would scale 2 -> 3", before=2).details == {"before": 2}
    with pytest.raises(ValueError):
        Outcome(status="maybe", message="x")  # type: ignore[arg-type]


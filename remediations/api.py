"""The playbook plugin API: what a remediation author writes against, and how modelmedic runs it.

A playbook is an ``async`` function of ``(ctx, params)`` returning an :class:`Outcome`,
declared with :func:`playbook`. The decorator checks the annotations when the module is
imported (params must be a pydantic model that forbids unknown fields), records a
:class:`Playbook` in a :class:`PlaybookRegistry` and returns the function unchanged, so
it stays directly callable in the author's own tests. Installed packages expose their
playbooks through the ``modelmedic.playbooks`` entry-point group; each is loaded in its
own ``try``, and a broken one is logged, counted and skipped, never fatal.

Parameters are validated when the routing policy loads (:meth:`PlaybookRegistry.validate`),
not when the incident is already burning. :func:`run_playbook` contains everything a
playbook can do wrong (an exception, a hang) in its :class:`Outcome`.

>>> registry = PlaybookRegistry()
>>> class NoteParams(BaseModel):
...     model_config = ConfigDict(extra="forbid")
...     text: str = "looked at it"
>>> @playbook(name="note", registry=registry)
... async def note(ctx: PlaybookContext, params: NoteParams) -> Outcome:
...     '''Leave a note: proves a playbook is twenty lines or fewer.'''
...     return Outcome.done(params.text, chars=len(params.text))
>>> registry.names(), registry.get("note").description
(['note'], 'Leave a note: proves a playbook is twenty lines or fewer.')
>>> registry.validate("note", {"text": "hi"})
NoteParams(text='hi')
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelmedic.errors import PlaybookError, UnknownPlaybookError
from modelmedic.metrics import PLAYBOOK_LOAD_ERRORS, PLAYBOOK_RUNS, PLAYBOOK_SECONDS

if TYPE_CHECKING:
    from modelmedic.alerting import Alerter
    from modelmedic.kube import KubeClient
    from modelmedic.registry import Registry

log = logging.getLogger("modelmedic.playbooks")

ENTRY_POINT_GROUP = "modelmedic.playbooks"
"""Set on the model's Deployment by a built-in playbook that acted, to the run's idempotency key."""

Status = Literal["done", "skipped", "dry_run", "failed", "timeout"]
PlaybookFn = Callable[["PlaybookContext", Any], Awaitable["Outcome"]]
F = TypeVar("F", bound=PlaybookFn)


class Outcome(BaseModel):
    """What a playbook run did, as the incident records and reports it.

    >>> Outcome.done("scaled 2 -> 3", replicas=3).acted, Outcome.skipped("cooling down").acted
    (True, False)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: Status
    message: str
    """One human sentence: what happened or why nothing did."""
    details: dict[str, Any] = Field(default_factory=dict)
    """Machine-readable facts (replicas before/after, versions) for the incident's evidence."""

    @property
    def acted(self) -> bool:
        """True only when the playbook changed something: only then is there a recovery to verify."""
        return self.status == "done"

    @classmethod
    def done(cls, message: str, **details: Any) -> Outcome:
        return cls(status="done", message=message, details=details)

    @classmethod
    def skipped(cls, message: str, **details: Any) -> Outcome:
        return cls(status="skipped", message=message, details=details)

    @classmethod
    def dry_run(cls, message: str, **details: Any) -> Outcome:
        return cls(status="dry_run", message=message, details=details)

    @classmethod
    def failed(cls, message: str, **details: Any) -> Outcome:
        return cls(status="failed", message=message, details=details)


class Target(BaseModel):
    """The deployment facts of the model an incident is about: what a playbook acts on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    version: str
    """The anomalous version (it may no longer be the deployed one)."""
    role: str
    """``production``, ``canary`` or ``shadow``."""
    namespace: str
    deployment: str


class ContextLogger(logging.LoggerAdapter):
    """Merges the adapter's context (model, incident...) with per-call ``extra=`` (3.13's ``merge_extra``)."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


def idempotency_key(incident_id: str, playbook_name: str, attempt: int) -> str:
    """Deterministic per (incident, playbook, attempt): a replay after a crash gets the same key.

    Retry a *failed* run with ``attempt + 1``; re-run after a crash with the same attempt.

    >>> idempotency_key("inc-1", "scale-out", 0) == idempotency_key("inc-1", "scale-out", 0)
    True
    >>> len(idempotency_key("inc-1", "scale-out", 0)), idempotency_key("inc-1", "scale-out", 1)[:3]
    (24, 'mm-')
    """
    digest = hashlib.sha256(f"{incident_id}\x00{playbook_name}\x00{attempt}".encode()).hexdigest()
    return f"mm-{digest[:21]}"


@dataclass
class PlaybookContext:
    """Everything one playbook run may use. Built fresh for every run (see :func:`idempotency_key`)."""

    k8s: KubeClient
    target: Target
    incident_id: str
    anomaly_class: str
    """``latency``, ``throughput``, ``prediction`` or ``drift``."""
    kind: str
    """What exactly went wrong: ``latency``, ``throughput_drop``, ``errors``..."""
    idempotency_key: str
    evidence: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    """Say what would be done, change nothing."""
    registry: Registry | None = None
    """The model registry, when the service has one: rollback targets, certified baselines."""
    alerter: Alerter | None = None
    clock: Callable[[], float] = time.time
    """Epoch seconds; cooldowns and "deployed recently" read it, so tests pass a fake one."""
    log: logging.LoggerAdapter = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.log = ContextLogger(log, {
            "model": self.target.model, "version": self.target.version, "role": self.target.role,
            "incident_id": self.incident_id,
        })


@dataclass(frozen=True)
class Playbook:
    """A registered playbook: the function and what was checked about it at registration."""

    name: str
    fn: PlaybookFn
    params_model: type[BaseModel]
    timeout_s: float
    description: str

    def validate(self, params: BaseModel | Mapping[str, Any] | None) -> BaseModel:
        """Params as the playbook's model; raise PlaybookError naming each bad field."""
        if isinstance(params, self.params_model):
            return params
        data = params.model_dump() if isinstance(params, BaseModel) else dict(params or {})
        try:
            return self.params_model.model_validate(data)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<params>'}: {e['msg']}" for e in error.errors()
            )
            fields = ", ".join(self.params_model.model_fields) or "none"
            raise PlaybookError(
                f"invalid params for playbook {self.name!r}: {problems} (its params are: {fields})"
            ) from error


class PlaybookRegistry:
    """Playbooks by name. The service uses :data:`default_registry`; tests make their own."""

    def __init__(self) -> None:
        self._playbooks: dict[str, Playbook] = {}
        self.broken: dict[str, str] = {}
        """Entry points that failed to load: entry-point name -> why."""

    def add(self, record: Playbook) -> None:
        """Register ``record``; the same function again is a no-op, another one under a taken name is refused."""
        known = self._playbooks.get(record.name)
        if known is not None and known.fn is not record.fn:
            raise PlaybookError(
                f"playbook name {record.name!r} is taken by {_qualname(known.fn)}; "
                f"rename {_qualname(record.fn)} (names are global across installed plugins)"
            )
        self._playbooks[record.name] = record

    def get(self, name: str) -> Playbook:
        try:
            return self._playbooks[name]
        except KeyError:
            hint = f"; broken plugins: {', '.join(sorted(self.broken))}" if self.broken else ""
            raise UnknownPlaybookError(
                f"no playbook named {name!r}; known: {', '.join(self.names()) or 'none'}{hint}. "
                "Install the package providing it (entry-point group modelmedic.playbooks; in the container "
                "image, build one derived from it that pip-installs the package: docs/operations.md "
                "'Playbook plugins') or fix the name"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._playbooks)

    def validate(self, name: str, params: Mapping[str, Any] | None) -> BaseModel:
        """Check a policy's params for ``name`` now, so a typo fails at load rather than mid-incident."""
        return self.get(name).validate(params)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Register every installed plugin's playbooks; return the names loaded.

        Each entry point must name a function decorated with :func:`playbook`. One that
        fails to import, is not a playbook or clashes with a taken name is logged,
        counted in ``modelmedic_playbook_load_errors_total`` and listed in :attr:`broken`.
        """
        loaded = []
        for point in entry_points(group=group):
            try:
                record = _record_of(point)
                self.add(record)
            except Exception as error:  # a broken plugin must not take the others (or the service) down
                reason = f"{type(error).__name__}: {error}"
                self.broken[point.name] = reason
                PLAYBOOK_LOAD_ERRORS.labels(entry_point=point.name).inc()
                log.error("playbook plugin %s (%s) skipped: %s", point.name, point.value, reason)
                continue
            loaded.append(record.name)
        return loaded


default_registry = PlaybookRegistry()
"""Where :func:`playbook` registers unless given ``registry=``; the service loads entry points into it."""
_RECORD_ATTRIBUTE = "__modelmedic_playbook__"


def _qualname(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _record_of(point: EntryPoint) -> Playbook:
    target = point.load()
    record = getattr(target, _RECORD_ATTRIBUTE, None)
    if not isinstance(record, Playbook):
        raise PlaybookError(
            f"entry point {point.name} = {point.value} is not a playbook: point it at a function decorated with "
            "@modelmedic.remediations.playbook"
        )
    return record


def _params_model(fn: Callable[..., Any]) -> type[BaseModel]:
    """Check ``fn`` is ``async def fn(ctx: PlaybookContext, params: <BaseModel, extra=forbid>) -> Outcome``."""
    where = _qualname(fn)
    if not inspect.iscoroutinefunction(fn):
        raise PlaybookError(f"playbook {where} must be `async def` (playbooks run on the service's event loop)")
    parameters = list(inspect.signature(fn).parameters)
    if len(parameters) != 2:
        raise PlaybookError(f"playbook {where} must take exactly (ctx: PlaybookContext, params: <Params>), got {parameters}")
    try:
        hints = get_type_hints(fn, fn.__globals__ | {"PlaybookContext": PlaybookContext, "Outcome": Outcome})
    except NameError as error:
        raise PlaybookError(f"playbook {where}: cannot resolve its annotations ({error}); import the names it uses") from error
    ctx_name, params_name = parameters
    if hints.get(ctx_name) is not PlaybookContext:
        raise PlaybookError(f"playbook {where}: annotate its first parameter as `{ctx_name}: PlaybookContext`")
    if hints.get("return") is not Outcome:
        raise PlaybookError(f"playbook {where}: annotate its return as `-> Outcome`")
    model = hints.get(params_name)
    if not (inspect.isclass(model) and issubclass(model, BaseModel)):
        raise PlaybookError(
            f"playbook {where}: annotate `{params_name}` with a pydantic BaseModel subclass (got {model!r}), "
            "so the policy's params are validated when it loads"
        )
    if model.model_config.get("extra") != "forbid":
        raise PlaybookError(
            f"playbook {where}: {model.__name__} must set model_config = ConfigDict(extra=\"forbid\"), "
            "so a misspelt policy param fails at load instead of being ignored"
        )
    return model


def playbook(*, name: str, timeout_s: float = 30.0, registry: PlaybookRegistry | None = None) -> Callable[[F], F]:
    """Declare a playbook: check its signature now, register it, return the function unchanged.

    The first line of the docstring becomes the playbook's description.
    """
    if not name or name != name.strip():
        raise PlaybookError(f"playbook name {name!r} must be a non-empty name without surrounding spaces")
    if timeout_s <= 0:
        raise PlaybookError(f"playbook {name!r}: timeout_s must be > 0, got {timeout_s}")

    def register(fn: F) -> F:
        doc = inspect.getdoc(fn) or ""
        record = Playbook(name, fn, _params_model(fn), float(timeout_s), doc.split("\n\n")[0].replace("\n", " "))
        (registry if registry is not None else default_registry).add(record)
        setattr(fn, _RECORD_ATTRIBUTE, record)  # how an entry point finds its record, whichever registry holds it
        return fn

    return register


async def run_playbook(pb: Playbook, ctx: PlaybookContext, params: BaseModel | Mapping[str, Any] | None = None) -> Outcome:
    """Run ``pb`` under its timeout; never raises for the playbook's sake.

    A hang becomes ``timeout``, any exception ``failed`` with its message (KubeForbidden's
    names the missing RBAC rule), anything but an Outcome returned ``failed``. Counted in
    ``modelmedic_playbook_runs_total{playbook,status}`` and timed.
    """
    started = time.perf_counter()
    extra = {"playbook": pb.name}
    deadline = asyncio.timeout(pb.timeout_s)
    try:
        async with deadline:
            outcome = await pb.fn(ctx, pb.validate(params))
        if not isinstance(outcome, Outcome):
            outcome = Outcome.failed(f"playbook {pb.name} returned {type(outcome).__name__}, not an Outcome")
    except Exception as error:  # contained: the incident must go on to verification and escalation
        if isinstance(error, TimeoutError) and deadline.expired():
            outcome = Outcome(status="timeout", message=f"playbook {pb.name} did not finish within {pb.timeout_s:g}s")
        else:  # including a TimeoutError of its own (a socket read): that is a failure, not our deadline
            ctx.log.exception("playbook %s failed", pb.name, extra=extra)
            outcome = Outcome.failed(f"{type(error).__name__}: {error}", error=type(error).__name__)
    PLAYBOOK_RUNS.labels(playbook=pb.name, status=outcome.status).inc()
    PLAYBOOK_SECONDS.labels(playbook=pb.name).observe(time.perf_counter() - started)
    ctx.log.info("playbook %s: %s: %s", pb.name, outcome.status, outcome.message, extra=extra)
    return outcome

"""A model's lifecycle as GTO's git tags say it: parse ``<model>@v<semver>`` and ``<model>#<stage>#<n>`` tags.

The repository (:mod:`modelmedic.registry.repository`) reads refs with one scoped git call; this module
turns those records into the state of each model: its versions and its stage assignments.
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass

from modelmedic.registry.records import EXCLUSIVE_STAGES, Assignment, ModelSummary
from modelmedic.registry.schema import SEMVER_RE, semver_key

_VERSION_TAG_RE = re.compile(r"^(?P<model>[a-z0-9-]+)@(?P<version>v\S+)$")
_STAGE_TAG_RE = re.compile(r"^(?P<model>[a-z0-9-]+)#(?P<stage>[a-z0-9-]+)#(?P<n>\d+)$")

# for-each-ref output: fields split by US (0x1f), records ended by RS (0x1e); notes may span lines.
_REF_FIELDS = "%(refname:strip=2)%1f%(objectname)%1f%(*objectname)%1f%(creatordate:unix)%1f%(taggername) %(taggeremail)"
REF_FORMAT_WITH_MESSAGE = _REF_FIELDS + "%1f%(contents)%1e"
REF_FORMAT = _REF_FIELDS + "%1f%1e"


@dataclass(frozen=True)
class VersionTag:
    """One registration tag ``<model>@v<semver>``: the release notes are its message."""

    version: str
    commit: str
    created_at: int
    author: str
    notes: str


@dataclass(frozen=True)
class ModelTags:
    """The parsed tags of one model: the whole lifecycle state, read with one scoped git call."""

    versions: dict[str, VersionTag]
    assignments: tuple[Assignment, ...]
    """Ascending ``n``."""

    @functools.cached_property
    def _latest(self) -> dict[str | None, Assignment]:
        return {a.version: a for a in self.assignments}

    def holder(self, stage: str) -> str | None:
        """The version of the latest assignment of ``stage``, unless that version has moved on since.

        Stages are a lifecycle here: a version assigned another stage leaves this one (a canary
        promoted to stable is no longer the canary). Otherwise this is GTO's one-version-per-stage view.
        """
        latest = next((a for a in reversed(self.assignments) if a.stage == stage), None)
        return latest.version if latest is not None and self._latest.get(latest.version) is latest else None

    def stage_of(self, version: str) -> str | None:
        """The newest stage ``version`` still holds: an exclusive stage counts only while it holds it.

        So the old stable version falls back to ``certified`` when a new one becomes stable.
        """
        for a in reversed(self.assignments):
            if a.version == version and (a.stage not in EXCLUSIVE_STAGES or self.holder(a.stage) == version):
                return a.stage
        return None

    def ever_assigned(self, version: str, stage: str) -> bool:
        return any(a.version == version and a.stage == stage for a in self.assignments)

    def previous_stable(self) -> str | None:
        """The most recent other version that was stable and has not been retired since."""
        current = self.holder("stable")
        for a in reversed(self.assignments):
            if a.stage == "stable" and a.version not in (None, current) and self.stage_of(a.version) != "retired":
                return a.version
        return None

    def next_n(self) -> int:
        return max((a.n for a in self.assignments), default=0) + 1

    def next_assignment_time(self) -> int:
        """Now, or one second after the model's latest assignment if that is not earlier.

        GTO orders assignments by tag time (whole seconds), not by ``n``: two promotions in one
        second (a pipeline certifying then promoting) would be ambiguous to it. Strictly
        increasing times make GTO's order and ours the same.
        """
        return max(int(time.time()), max((a.created_at for a in self.assignments), default=0) + 1)


def group_tags(refs: list[list[str]]) -> dict[str, ModelTags]:
    """Parse for-each-ref records into per-model lifecycle state; foreign tags are ignored."""
    versions: dict[str, dict[str, VersionTag]] = {}
    stage_refs: list[tuple[str, re.Match[str], list[str]]] = []
    for fields in refs:
        name, obj, peeled, date, author, message = fields
        commit = peeled or obj
        if (m := _VERSION_TAG_RE.match(name)) and SEMVER_RE.match(m["version"]):
            versions.setdefault(m["model"], {})[m["version"]] = VersionTag(
                m["version"], commit, int(date or 0), author.strip(), message.strip())
        elif m := _STAGE_TAG_RE.match(name):
            stage_refs.append((commit, m, fields))
    by_commit = {(model, vt.commit): vt.version for model, vs in versions.items() for vt in vs.values()}
    assignments: dict[str, list[Assignment]] = {}
    for commit, m, (name, _, _, date, author, message) in stage_refs:
        assignments.setdefault(m["model"], []).append(Assignment(
            model=m["model"], version=by_commit.get((m["model"], commit)), stage=m["stage"], n=int(m["n"]),
            created_at=int(date or 0), author=author.strip(), message=message.strip(), tag=name))
    return {model: ModelTags(versions.get(model, {}), tuple(sorted(assignments.get(model, []), key=lambda a: a.n)))
            for model in {*versions, *assignments}}


NO_TAGS = ModelTags({}, ())
"""A model nobody tagged yet."""


def summary(name: str, tags: ModelTags) -> ModelSummary:
    """The model's row in :meth:`Registry.list_models`."""
    versions = sorted(tags.versions, key=semver_key)
    return ModelSummary(name=name, versions=len(versions), latest=versions[-1] if versions else None,
                        stable=tags.holder("stable"))


def parse_show_ref(out: str) -> list[list[str]]:
    """``git show-ref -d`` lines into for-each-ref-shaped records (no dates or messages)."""
    objects: dict[str, str] = {}
    peeled: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, ref = line.partition(" ")
        name = ref.removeprefix("refs/tags/")
        if name.endswith("^{}"):
            peeled[name[:-3]] = sha
        else:
            objects[name] = sha
    return [[name, sha, peeled.get(name, ""), "", "", ""] for name, sha in objects.items()]

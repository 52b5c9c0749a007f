"""``modelmedic playbooks list``: the installed playbooks, their params and where they come from.

Loads the ``modelmedic.playbooks`` entry points the way the service does at start
(:meth:`~modelmedic.remediations.api.PlaybookRegistry.load_entry_points`), so what is
listed is what a policy may name; plugins that failed to load are listed with the reason.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelmedic.remediations.api import Playbook, PlaybookRegistry


def loaded_registry() -> PlaybookRegistry:
    """The default registry with every installed plugin loaded (idempotent: the same functions again are no-ops)."""
    from modelmedic.remediations.api import default_registry

    default_registry.load_entry_points()
    return default_registry


def _source(record: Playbook) -> str:
    """The distribution whose entry point names the playbook's function (``-``: registered in-process, not installed)."""
    from modelmedic.remediations.api import ENTRY_POINT_GROUP

    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if (point.module, point.attr) == (record.fn.__module__, record.fn.__qualname__) and point.dist is not None:
            return point.dist.name
    return "-"


def _params(record: Playbook) -> dict[str, str]:
    """Field name -> its annotation and default, as a policy author writes them."""
    out = {}
    for name, field in record.params_model.model_fields.items():
        kind = getattr(field.annotation, "__name__", str(field.annotation))
        out[name] = kind if field.is_required() else f"{kind}={field.get_default(call_default_factory=True)!r}"
    return out


def describe(registry: PlaybookRegistry) -> dict[str, Any]:
    """What ``list`` prints: loaded playbooks by name and broken entry points with why."""
    playbooks = []
    for name in registry.names():
        record = registry.get(name)
        playbooks.append({"name": name, "params": _params(record), "source": _source(record),
                          "timeout_s": record.timeout_s, "description": record.description})
    return {"playbooks": playbooks, "broken": [{"entry_point": k, "reason": v} for k, v in sorted(registry.broken.items())]}


def _list(args: argparse.Namespace) -> int:
    listing = describe(loaded_registry())
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for pb in listing["playbooks"]:
        params = ", ".join(f"{k}: {v}" for k, v in pb["params"].items()) or "-"
        print(f"{pb['name']:<20} {pb['source']:<20} {params}")
    for bad in listing["broken"]:
        print(f"{bad['entry_point']:<20} BROKEN               {bad['reason']}")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("playbooks", help="installed remediation playbooks")
    actions = parser.add_subparsers(metavar="ACTION", required=True)
    lister = actions.add_parser("list", help="name, params and source package of each playbook; broken plugins with why")
    lister.set_defaults(func=_list)

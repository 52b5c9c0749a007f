"""The contracts of the real alert destinations, checked as strictly as they check them.

PagerDuty's Events API v2, Slack's Block Kit (incoming webhooks) and Alertmanager's
``POST /api/v2/alerts``: each validator raises :class:`Invalid` with the destination's own
wording of what is wrong, so a payload the real service would refuse fails in tests
(:class:`modelmedic.testing.AlertReceiver` answers with it) instead of at 3 a.m.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any


class Invalid(ValueError):
    """A payload breaks the destination's contract; the message says where."""


# --- PagerDuty Events API v2 ----------------------------------------------------------------

_PD_ACTIONS = {"trigger", "acknowledge", "resolve"}
_PD_SEVERITIES = {"critical", "error", "warning", "info"}
_PD_TOP_KEYS = {"routing_key", "event_action", "dedup_key", "payload", "images", "links", "client", "client_url"}
_PD_PAYLOAD_KEYS = {"summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"}


def _string(obj: dict, key: str, where: str, *, required: bool, max_len: int | None = None) -> None:
    if key not in obj:
        if required:
            raise Invalid(f"{where}{key} is required")
        return
    value = obj[key]
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{where}{key} must be a non-empty string")
    if max_len is not None and len(value) > max_len:
        raise Invalid(f"{where}{key} is {len(value)} characters, over the {max_len} allowed")


def json_object(value: Any, where: str) -> dict:
    """``value`` if it is a JSON object; :class:`Invalid` naming ``where`` otherwise."""
    if not isinstance(value, dict):
        raise Invalid(f"{where} must be a JSON object")
    return value


def _no_unknown_keys(obj: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise Invalid(f"{where} has unknown fields {unknown}; allowed: {sorted(allowed)}")


def _pd_payload(payload: Any) -> None:
    payload = json_object(payload, "payload")
    _no_unknown_keys(payload, _PD_PAYLOAD_KEYS, "payload")
    _string(payload, "summary", "payload.", required=True, max_len=1024)
    _string(payload, "source", "payload.", required=True)
    if payload.get("severity") not in _PD_SEVERITIES:
        raise Invalid(f"payload.severity must be one of {sorted(_PD_SEVERITIES)}, got {payload.get('severity')!r}")
    for key in ("component", "group", "class"):
        _string(payload, key, "payload.", required=False)
    if "timestamp" in payload:
        try:
            datetime.fromisoformat(payload["timestamp"])
        except (TypeError, ValueError):
            raise Invalid(f"payload.timestamp must be an ISO 8601 date-time, got {payload['timestamp']!r}") from None
    if "custom_details" in payload:
        json_object(payload["custom_details"], "payload.custom_details")


def _pd_list(event: dict, key: str, required_key: str, allowed: set[str]) -> None:
    if key not in event:
        return
    if not isinstance(event[key], list):
        raise Invalid(f"{key} must be a list")
    for i, item in enumerate(event[key]):
        item = json_object(item, f"{key}[{i}]")
        _no_unknown_keys(item, allowed, f"{key}[{i}]")
        _string(item, required_key, f"{key}[{i}].", required=True)


def validate_pagerduty(event: Any) -> None:
    """Raise :class:`Invalid` unless ``event`` follows the PagerDuty Events API v2 contract."""
    event = json_object(event, "the event")
    _no_unknown_keys(event, _PD_TOP_KEYS, "the event")
    routing_key = event.get("routing_key")
    if not isinstance(routing_key, str) or len(routing_key) != 32:
        raise Invalid("routing_key must be the 32-character integration key of an Events API v2 integration")
    action = event.get("event_action")
    if action not in _PD_ACTIONS:
        raise Invalid(f"event_action must be one of {sorted(_PD_ACTIONS)}, got {action!r}")
    _string(event, "dedup_key", "", required=action != "trigger", max_len=255)
    if action == "trigger":
        if "payload" not in event:
            raise Invalid("payload is required for a trigger event")
        _pd_payload(event["payload"])
    _pd_list(event, "links", "href", {"href", "text"})
    _pd_list(event, "images", "src", {"src", "href", "alt"})
    for key in ("client", "client_url"):
        _string(event, key, "", required=False)


# --- Slack incoming webhooks (Block Kit) ----------------------------------------------------


def _text_object(obj: Any, where: str, *, max_len: int, plain_only: bool = False) -> None:
    obj = json_object(obj, where)
    kinds = {"plain_text"} if plain_only else {"plain_text", "mrkdwn"}
    if obj.get("type") not in kinds:
        raise Invalid(f"{where}.type must be one of {sorted(kinds)}, got {obj.get('type')!r}")
    _no_unknown_keys(obj, {"type", "text", "emoji"} if obj["type"] == "plain_text" else {"type", "text", "verbatim"}, where)
    _string(obj, "text", f"{where}.", required=True, max_len=max_len)


def _elements(block: dict, where: str, max_items: int) -> list:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= max_items:
        raise Invalid(f"{where}.elements must be a list of 1 to {max_items} elements")
    return elements


def _slack_section(block: dict, where: str) -> None:
    _no_unknown_keys(block, {"type", "block_id", "text", "fields", "accessory"}, where)
    if "text" not in block and "fields" not in block:
        raise Invalid(f"{where} needs text or fields")
    if "text" in block:
        _text_object(block["text"], f"{where}.text", max_len=3000)
    if "fields" in block:
        fields = block["fields"]
        if not isinstance(fields, list) or not 1 <= len(fields) <= 10:
            raise Invalid(f"{where}.fields must be a list of 1 to 10 text objects")
        for i, item in enumerate(fields):
            _text_object(item, f"{where}.fields[{i}]", max_len=2000)


def _slack_context(block: dict, where: str) -> None:
    _no_unknown_keys(block, {"type", "block_id", "elements"}, where)
    for i, element in enumerate(_elements(block, where, 10)):
        if isinstance(element, dict) and element.get("type") == "image":
            _string(element, "image_url", f"{where}.elements[{i}].", required=True)
            _string(element, "alt_text", f"{where}.elements[{i}].", required=True)
        else:
            _text_object(element, f"{where}.elements[{i}]", max_len=3000)


def _slack_actions(block: dict, where: str) -> None:
    _no_unknown_keys(block, {"type", "block_id", "elements"}, where)
    for i, element in enumerate(_elements(block, where, 25)):
        here = f"{where}.elements[{i}]"
        element = json_object(element, here)
        if element.get("type") != "button":
            raise Invalid(f"{here}.type must be 'button' (the only element this receiver knows)")
        _no_unknown_keys(element, {"type", "text", "url", "action_id", "value", "style"}, here)
        _text_object(element.get("text"), f"{here}.text", max_len=75, plain_only=True)
        _string(element, "url", f"{here}.", required=False, max_len=3000)
        _string(element, "action_id", f"{here}.", required=False, max_len=255)
        _string(element, "value", f"{here}.", required=False, max_len=2000)
        if element.get("style", "primary") not in ("primary", "danger"):
            raise Invalid(f"{here}.style must be 'primary' or 'danger'")


def _slack_header(block: dict, where: str) -> None:
    _no_unknown_keys(block, {"type", "block_id", "text"}, where)
    _text_object(block.get("text"), f"{where}.text", max_len=150, plain_only=True)


def _slack_divider(block: dict, where: str) -> None:
    _no_unknown_keys(block, {"type", "block_id"}, where)


_SLACK_BLOCKS: dict[str, Callable[[dict, str], None]] = {
    "section": _slack_section, "context": _slack_context, "actions": _slack_actions,
    "header": _slack_header, "divider": _slack_divider,
}


def validate_slack(message: Any) -> None:
    """Raise :class:`Invalid` (message starting with Slack's error code) unless ``message`` is a valid post."""
    message = json_object(message, "invalid_payload: the message")
    text, blocks = message.get("text"), message.get("blocks")
    if not (isinstance(text, str) and text.strip()) and not blocks:
        raise Invalid("no_text: a message needs text or blocks")
    if blocks is None:
        return
    try:
        if not isinstance(blocks, list) or len(blocks) > 50:
            raise Invalid("blocks must be a list of at most 50 blocks")
        for i, block in enumerate(blocks):
            where = f"blocks[{i}]"
            block = json_object(block, where)
            check = _SLACK_BLOCKS.get(block.get("type"))
            if check is None:
                raise Invalid(f"{where}.type {block.get('type')!r} is not one of {sorted(_SLACK_BLOCKS)}")
            _string(block, "block_id", f"{where}.", required=False, max_len=255)
            check(block, where)
    except Invalid as exc:
        raise Invalid(f"invalid_blocks: {exc}") from None


# --- Alertmanager API v2 --------------------------------------------------------------------

_AM_ALERT_KEYS = {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
_AM_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _am_time(alert: dict, key: str, where: str) -> datetime | None:
    if key not in alert:
        return None
    try:
        return datetime.fromisoformat(alert[key])
    except (TypeError, ValueError):
        raise Invalid(f"{where}.{key} must be an RFC 3339 date-time, got {alert[key]!r}") from None


def validate_alertmanager(body: Any) -> None:
    """Raise :class:`Invalid` unless ``body`` is a valid ``POST /api/v2/alerts`` body (a list of alerts)."""
    if not isinstance(body, list):
        raise Invalid("the body must be a JSON list of alerts")
    for i, alert in enumerate(body):
        where = f"alerts[{i}]"
        alert = json_object(alert, where)
        _no_unknown_keys(alert, _AM_ALERT_KEYS, where)
        for key in ("labels", "annotations"):
            pairs = json_object(alert.get(key, {}), f"{where}.{key}")
            for name, value in pairs.items():
                if not _AM_LABEL_NAME.match(name) or not isinstance(value, str):
                    raise Invalid(f"{where}.{key}: invalid pair {name!r}: {value!r}")
        if not alert.get("labels"):
            raise Invalid(f"{where}: at least one label pair required")
        starts, ends = _am_time(alert, "startsAt", where), _am_time(alert, "endsAt", where)
        if starts is not None and ends is not None and ends < starts:
            raise Invalid(f"{where}: start time must be before end time")

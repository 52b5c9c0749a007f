"""Logging: the standard library, with model/version/incident context and optional JSON lines.

Call sites pass context as ``extra={"model": ..., "incident_id": ...}``; the JSON formatter
puts those keys on the line so a log pipeline can filter by model without parsing text.

Both formatters pass every message through :func:`redact`, the one function that masks
the secrets URLs carry (Slack webhook paths, tokens and keys in query strings, userinfo);
sink errors, the audit trail and incident records use it too. The text formatter also
escapes control characters, so a model name holding a newline cannot forge a log line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from urllib.parse import urlsplit, urlunsplit

CONTEXT_KEYS = ("model", "version", "role", "incident_id", "anomaly_id", "playbook")

MASK = "***"
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>`]+[^\s'\"<>`.,;:!?)\]]")
_SECRET_PARAM = re.compile(
    r"(?i)(^|&)([^=&]*(?:token|key|secret|sig|password|passwd|pwd|auth|credential|session|code)[^=&]*)=[^&]*")
_SECRET_PATHS = (
    ("hooks.slack.com", ""),  # https://hooks.slack.com/services/T../B../<secret>, /workflows/..., /triggers/...
    ("discord.com", "/api/webhooks/"),
    ("discordapp.com", "/api/webhooks/"),
)
"""(host, path prefix) of webhook URLs whose path is the credential."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def redact_url(url: str, *, secret_path: bool = False) -> str:
    """``url`` with its secrets masked: userinfo, secret-looking query values, and the path of
    webhook URLs that are credentials (always for Slack's; for any URL with ``secret_path``).

    >>> redact_url("https://hooks.slack.com/services/T0/B0/XyZ")
    'https://hooks.slack.com/services/***'
    >>> redact_url("https://bob:pw@example.com/hook?token=abc&team=x")
    'https://***@example.com/hook?token=***&team=x'
    >>> redact_url("http://127.0.0.1:9/slack/T0/B0/XyZ", secret_path=True)
    'http://127.0.0.1:9/slack/***'
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return MASK  # not parseable as a URL: show nothing of it
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    path = parts.path
    if secret_path or any(host.endswith(h) and path.startswith(prefix) for h, prefix in _SECRET_PATHS):
        first = path.lstrip("/").split("/", 1)[0]
        path = f"/{first}/{MASK}" if first and path.strip("/") != first else f"/{MASK}"
    query = _SECRET_PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}={MASK}", parts.query)
    return urlunsplit((parts.scheme, netloc, path, query, parts.fragment))


_registered: set[str] = set()


def register_secret(value: str) -> None:
    """Mask ``value`` wherever :func:`redact` meets it (a sink's secret URL on a host the
    patterns do not know, a routing key). Values shorter than 8 characters are ignored:
    masking them would garble ordinary text."""
    if len(value) >= 8:
        _registered.add(value)


def redact(text: str) -> str:
    """``text`` with every URL's secrets and every registered secret masked.

    >>> redact("post to https://hooks.slack.com/services/T0/B0/XyZ failed: HTTP 500")
    'post to https://hooks.slack.com/services/*** failed: HTTP 500'
    """
    text = _URL.sub(lambda m: redact_url(m.group()), text)
    for secret in _registered:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def escape_controls(text: str) -> str:
    r"""Control characters as escapes, so one log record is one line.

    >>> escape_controls("fraud\nERROR forged line\x1b[31m")
    'fraud\\nERROR forged line\\x1b[31m'
    """
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


class TextFormatter(logging.Formatter):
    """The standard text line, its message redacted and its control characters escaped
    (a traceback keeps its own lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's naming)
        record.message = escape_controls(redact(record.message))
        return super().formatMessage(record)

    def formatException(self, ei) -> str:  # noqa: N802
        return redact(super().formatException(ei))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any context keys, redacted."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        line.update({k: getattr(record, k) for k in CONTEXT_KEYS if hasattr(record, k)})
        if record.exc_info:
            line["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


def setup(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once, at start."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "kafka", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

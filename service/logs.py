"""Logging: the standard library, with model/version/incident context and optional JSON lines.

Call sites pass context as ``extra={"model": ..., "incident_id": ...}``; the JSON formatter
puts those keys on the line so a log pipeline can filter by model without parsing text.
"""

from __future__ import annotations

import json
import logging
import sys
import time

CONTEXT_KEYS = ("model", "version", "role", "incident_id", "anomaly_id", "playbook")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any context keys."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update({k: getattr(record, k) for k in CONTEXT_KEYS if hasattr(record, k)})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def setup(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once, at start."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "kafka", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

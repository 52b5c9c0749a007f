"""modelmedic's exception tree. Every message says what to do next."""

from __future__ import annotations


class ModelmedicError(Exception):
    """Base of every error modelmedic raises on purpose."""


class ConfigError(ModelmedicError):
    """The configuration is invalid; the message names the field and the fix."""


class KafkaUnavailable(ModelmedicError):
    """Kafka could not be reached or a topic could not be created."""


class SinkError(ModelmedicError):
    """An alert sink rejected or could not receive an alert after its retries."""


class StackError(ModelmedicError):
    """A component of the local stack failed to install or start."""

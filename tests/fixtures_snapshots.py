"""What an attacker writes to the detection plane's state topic: a pickle that runs a command when loaded.

Snapshots are data, never code (:mod:`modelmedic.detection.snapshots`); the tests hand the
plane and the decoder this payload and check that the command never ran.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path


class _Command:
    """Unpickling this runs a shell command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def code_running_pickle(marker: Path) -> bytes:
    """A pickle that, if anything ever loads it, creates the file ``marker``: its absence is the proof."""
    return pickle.dumps(_Command(f"touch {marker}"))

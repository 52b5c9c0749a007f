"""The local stack's process plumbing (deploy/local/procs.py)."""

from __future__ import annotations

import socket

from deploy.local import procs


def test_a_free_port_is_below_the_ephemeral_range_and_bindable() -> None:
    """A port handed out for later binding (a sink that is down at first) is never an outgoing connection's own
    port meanwhile: the kernel takes those from the ephemeral range only."""
    low = procs._ephemeral_low()
    ports = {procs.free_port() for _ in range(20)}
    assert all(1024 <= port < low for port in ports) and len(ports) > 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports.pop()))

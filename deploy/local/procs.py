"""Process plumbing shared by the local-stack scripts (stdlib only).

Every component of the local stack is a child process bound to 127.0.0.1 on a free
port, with its log in a file and its pid in a pid file, so that whatever started it
can stop it, and a second ``start`` finds it running instead of starting another.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

CACHE = Path(os.environ.get("MODELMEDIC_CACHE", Path.home() / ".cache" / "modelmedic"))


class StackError(RuntimeError):
    """A local-stack component failed to install or start; the message says what to do."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing uses right now, below the kernel's ephemeral range.

    Below it, because a caller may leave the port unbound for a while before something binds
    it (a test's sink that is down at first): a port from the ephemeral range (``bind`` to
    port 0) can meanwhile become the local port of any outgoing connection, a Kafka client's,
    and the later bind fails with "Address already in use" (seen in a CI trial on a loaded
    machine). The kernel never hands out a port below the range on its own."""
    high = _ephemeral_low()
    ports = range(max(1024, high - 16384), high)
    # (not a test's randomness: parallel callers must not collide)
    for port in random.SystemRandom().sample(ports, min(200, len(ports))):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise StackError(f"no free TCP port on 127.0.0.1 in {ports.start}-{ports.stop - 1} after 200 tries: "
                     "free some ports, or widen the range below net.ipv4.ip_local_port_range")


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux's default, 32768, where it cannot be read)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def spawn(cmd: list[str], log: Path, pidfile: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``cmd`` in its own session with output to ``log`` and its pid in ``pidfile``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env={**os.environ, **(env or {})},
        )
    pidfile.write_text(str(proc.pid))
    return proc


def read_pid(pidfile: Path) -> int | None:
    """The pid in ``pidfile`` if that process is still alive."""
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return pid


def stop_pid(pidfile: Path, grace_s: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after ``grace_s``; removes the pid file. True if it was running."""
    pid = read_pid(pidfile)
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if _reaped_or_gone(pid):
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        while not _reaped_or_gone(pid):
            time.sleep(0.05)
    pidfile.unlink(missing_ok=True)
    return True


def _reaped_or_gone(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return True
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def report_status(workdir: Path, state_name: str, pid_name: str, address_key: str) -> int:
    """The ``status`` command of a component: print its address (exit 0) or "not running" (exit 1)."""
    state = workdir / state_name
    running = state.exists() and read_pid(workdir / pid_name) is not None
    print(json.loads(state.read_text())[address_key] if running else "not running")
    return 0 if running else 1


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, log: Path | None = None) -> None:
    """Poll ``check`` until true; on timeout raise with the tail of the component's log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    tail = ""
    if log is not None and log.exists():
        tail = "\n--- last lines of " + str(log) + " ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    raise StackError(f"{what} not ready after {timeout_s:.0f}s{tail}")


def progress(msg: str, t0: float | None = None) -> None:
    """One progress line on stderr, with elapsed seconds when ``t0`` is given."""
    suffix = f" ({time.monotonic() - t0:.1f}s)" if t0 is not None else ""
    print(f"[modelmedic] {msg}{suffix}", file=sys.stderr, flush=True)

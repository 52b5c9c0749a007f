"""A real single-node Kafka (KRaft) on loopback: install from Maven Central, start, stop.

    python deploy/local/kafka.py install          # jars into ~/.cache/modelmedic/kafka-libs
    python deploy/local/kafka.py start --dir D    # prints the bootstrap address
    python deploy/local/kafka.py stop --dir D

Importable too (the test fixtures and the demo use :func:`start` / :func:`stop`).
Stdlib only, so it runs before the project's virtual environment exists.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import CACHE, StackError, free_port, port_open, progress, read_pid, report_status, spawn, stop_pid, wait_until  # noqa: E402

KAFKA_VERSION = "3.9.1"
LIBS = CACHE / "kafka-libs"
POM = Path(__file__).resolve().parent / "pom.xml"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies"
SINGLE_BROKER = {"replication_factor": 1, "min_insync_replicas": 1}
"""The ``kafka`` settings this one broker needs: one replica of each topic. modelmedic's defaults
(3 replicas, 2 in sync) are for production clusters and fail start here; every configuration
pointing at the local stack (tests, demo, benchmarks) says so explicitly with these."""


@dataclass
class Broker:
    """A running broker: where to reach it and where its files are."""

    bootstrap: str
    port: int
    controller_port: int
    workdir: str
    pid: int

    @property
    def pidfile(self) -> Path:
        return Path(self.workdir) / "kafka.pid"


def install() -> Path:
    """Resolve the broker's jars once into the cache; a no-op when they are there."""
    stamp = LIBS / f".kafka-{KAFKA_VERSION}"
    if stamp.exists():
        return LIBS
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            raise StackError(f"{tool} not found: install Java 17 and Maven (apt-get install -y openjdk-17-jre-headless maven)")
    t0 = time.monotonic()
    progress(f"fetching Kafka {KAFKA_VERSION} jars from Maven Central (about 46 MB, once)")
    tmp = LIBS.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    result = subprocess.run(
        ["mvn", "-B", "-q", "-f", str(POM), DEPENDENCY_PLUGIN, "-DincludeScope=runtime", f"-DoutputDirectory={tmp}"],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise StackError(f"Maven could not resolve Kafka {KAFKA_VERSION}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    shutil.rmtree(LIBS, ignore_errors=True)
    tmp.rename(LIBS)
    stamp.touch()
    progress(f"Kafka jars cached in {LIBS}", t0)
    return LIBS


_LOG4J = """log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={log}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=WARN
"""


def _write_config(workdir: Path, port: int, controller_port: int, partitions: int) -> Path:
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(workdir / "data"),
        "num.partitions": str(partitions),
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "6",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
        "delete.topic.enable": "true",
        "log.cleaner.backoff.ms": "1000",
    }
    path = workdir / "server.properties"
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    (workdir / "log4j.properties").write_text(_LOG4J.format(log=workdir / "kafka.log"))
    return path


def _java(workdir: Path, *args: str, heap: str = "512m") -> list[str]:
    return [
        "java", f"-Xmx{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{workdir / 'log4j.properties'}",
        "-cp", f"{LIBS}/*", *args,
    ]


def start(workdir: str | Path, partitions: int = 6, timeout_s: float = 60.0) -> Broker:
    """Start (or find running) a broker whose files live in ``workdir``.

    Restarting on an existing ``workdir`` keeps the data (the crash-recovery tests rely
    on it) and reuses the ports recorded there.
    """
    install()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    state_file = workdir / "broker.json"
    if state_file.exists():
        known = Broker(**json.loads(state_file.read_text()))
        if read_pid(known.pidfile) is not None and port_open(known.port):
            return known
        port, controller_port = known.port, known.controller_port
        if port_open(port) or port_open(controller_port):
            port, controller_port = free_port(), free_port()
    else:
        port, controller_port = free_port(), free_port()
    config = _write_config(workdir, port, controller_port, partitions)
    if not (workdir / "data" / "meta.properties").exists():
        cluster_id = subprocess.run(
            _java(workdir, "kafka.tools.StorageTool", "random-uuid", heap="128m"), capture_output=True, text=True
        ).stdout.strip() or uuid.uuid4().hex[:22]
        fmt = subprocess.run(
            _java(workdir, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config), heap="256m"),
            capture_output=True, text=True,
        )
        if fmt.returncode != 0:
            raise StackError(f"kafka storage format failed:\n{fmt.stdout[-1500:]}{fmt.stderr[-1500:]}")
    pidfile = workdir / "kafka.pid"
    log = workdir / "kafka.log"
    proc = spawn(_java(workdir, "kafka.Kafka", str(config), heap="1g"), workdir / "kafka.out", pidfile)
    wait_until(
        lambda: proc.poll() is None and port_open(port) and log.exists() and "started (kafka.server" in log.read_text(errors="replace"),
        timeout_s, f"Kafka on 127.0.0.1:{port}", log if log.exists() else workdir / "kafka.out",
    )
    broker = Broker(f"127.0.0.1:{port}", port, controller_port, str(workdir), proc.pid)
    state_file.write_text(json.dumps(asdict(broker)))
    return broker


def stop(workdir: str | Path) -> bool:
    """Stop the broker of ``workdir`` (TERM, then KILL). True if one was running."""
    return stop_pid(Path(workdir) / "kafka.pid", grace_s=15.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["install", "start", "stop", "status"])
    parser.add_argument("--dir", default=str(CACHE / "run" / "kafka"), help="broker data, logs and pid file")
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args(argv)
    try:
        if args.action == "install":
            install()
        elif args.action == "start":
            t0 = time.monotonic()
            broker = start(args.dir, args.partitions)
            progress(f"Kafka ready at {broker.bootstrap} (logs in {args.dir})", t0)
            print(broker.bootstrap)
        elif args.action == "stop":
            print("stopped" if stop(args.dir) else "not running")
        else:
            return report_status(Path(args.dir), "broker.json", "kafka.pid", "bootstrap")
    except StackError as exc:
        print(f"[modelmedic] error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

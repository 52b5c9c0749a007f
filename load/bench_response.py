"""Response-plane latency under load: anomaly record -> page delivered, and -> Kubernetes call.

    .venv/bin/python load/bench_response.py [--anomalies 40] [--models 20] [--rate 50]

Starts a real Kafka, the real local Kubernetes API server and a local PagerDuty receiver,
runs the whole service in-process (both planes) while a simulated fleet keeps the
inference topic busy, then publishes anomaly records one by one for models that have a
Deployment. For each it measures, from the moment the record was handed to Kafka:

- **page**: until the receiver accepted the PagerDuty trigger (target p99 < 1 s);
- **kube**: until scale-out's patch reached the API server, read back from the
  ``modelmedic.io/last-scale-at`` annotation the same patch writes (target p99 < 2 s).

Both clocks are this machine's wall clock. Prints p50/p99/max of each.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deploy.local import kafka as kafka_stack  # noqa: E402
from deploy.local import kube as kube_stack  # noqa: E402
from load.cluster import create_models  # noqa: E402
from load.fleet import FleetSpec, producer_for, run_live  # noqa: E402
from modelmedic.testing import AlertReceiver  # noqa: E402
from modelmedic.config import load_settings  # noqa: E402
from modelmedic.events import Anomaly, encode, stable_id  # noqa: E402
from modelmedic.kafka import ensure_topics, producer  # noqa: E402
from modelmedic.kube import KubeClient  # noqa: E402
from modelmedic.response.policy import parse_policy  # noqa: E402
from modelmedic.kube import LAST_SCALE_AT  # noqa: E402
from modelmedic.app import Service  # noqa: E402

NAMESPACE = "bench"


def anomaly(model: str, onset_ms: int) -> Anomaly:
    return Anomaly(
        id=stable_id(model, "v1", "production", "latency", onset_ms), series=f"{model}/v1/production", model=model,
        version="v1", role="production", kind="latency", anomaly_class="latency", window_start=onset_ms,
        window_end=onset_ms + 1000, onset=onset_ms, observed=400.0, baseline=40.0, score=1.0, state="firing",
        summary=f"{model} v1 (production): p95 latency 400.0ms, baseline 40.0ms",
    )


def quantiles(name: str, seconds: list[float]) -> str:
    ms = np.array(seconds) * 1000
    return f"{name:<28} n={len(ms):3d}  p50 {np.percentile(ms, 50):7.1f} ms   p99 {np.percentile(ms, 99):7.1f} ms   max {ms.max():7.1f} ms"


async def bench(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="modelmedic-bench-response-"))
    broker = kafka_stack.start(work / "kafka")
    kube = kube_stack.start(work / "kube")
    kube_stack.grant(kube, NAMESPACE)
    receiver = AlertReceiver().start()
    admin = KubeClient.from_kubeconfig(kube.admin_kubeconfig)
    targets = [f"bench-{i:03d}" for i in range(args.anomalies)]
    await create_models(admin, NAMESPACE, {m: "v1" for m in targets}, replicas=1)
    policy = parse_policy({
        "targets": {"namespace": NAMESPACE},
        "guard_rails": {"cooldown_s": 0, "storm_models": 10_000, "max_concurrent": 1000},
        "rules": [{"match": {"anomaly_class": ["latency"]}, "verify_s": 3600,
                   "playbooks": [{"name": "scale-out", "params": {"stabilization_s": 0}}]}],
    })
    (work / "policy.yaml").write_text(yaml.safe_dump(policy.model_dump(mode="json")))
    settings = load_settings(
        kafka={"bootstrap_servers": broker.bootstrap, **kafka_stack.SINGLE_BROKER}, http={"port": 0}, policy_file=str(work / "policy.yaml"),
        kubernetes={"kubeconfig": kube.service_kubeconfig},
        sinks=[{"type": "pagerduty", "url": receiver.pagerduty_url, "routing_key": "B" * 32}],
    )
    await ensure_topics(settings.kafka)
    service = Service(settings)
    service_task = asyncio.create_task(service.run())
    fleet_producer = producer_for(broker.bootstrap)
    await fleet_producer.start()
    spec = FleetSpec(models=args.models, rate=args.rate, seed=3)
    duration = 40.0 + args.anomalies * args.spacing
    background = asyncio.create_task(run_live(fleet_producer, settings.kafka.topics.inference, spec, [], duration))
    p = producer(settings.kafka)
    await p.start()
    sent: dict[str, float] = {}
    try:
        await asyncio.wait_for(service.response.ready.wait(), 60)
        await asyncio.wait_for(service.detection.ready.wait(), 60)
        await asyncio.sleep(5)  # the fleet's traffic is flowing through the detection plane
        print(f"[bench] background: {spec.models} models x {spec.rate:g} req/s; "
              f"publishing {args.anomalies} anomalies {args.spacing:g}s apart", flush=True)
        for model in targets:
            record = anomaly(model, int(time.time() * 1000))
            sent[model] = time.time()
            await p.send_and_wait(settings.kafka.topics.anomalies, encode(record), key=model.encode())
            await asyncio.sleep(args.spacing)
        await receiver.wait_for(kind="pagerduty", count=len(targets), timeout=60)
        page = {}
        for r in receiver.accepted:
            model = r.json["payload"]["group"]
            page.setdefault(model, r.received_at - sent[model])
        kube_s = []
        deadline = time.monotonic() + 60
        for model in targets:
            while True:
                state = await admin.get_deployment(NAMESPACE, model)
                stamp = state.annotations.get(LAST_SCALE_AT)
                if stamp or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            kube_s.append(datetime.fromisoformat(stamp).timestamp() - sent[model])
        print(quantiles("anomaly -> page delivered", list(page.values())))
        print(quantiles("anomaly -> kube API call", kube_s))
        print(f"[bench] events processed by the detection plane meanwhile: {service.detection.processed}")
        return 0
    finally:
        background.cancel()
        await asyncio.gather(background, return_exceptions=True)
        await p.stop()
        await fleet_producer.stop()
        service.stop.set()
        await asyncio.wait_for(service_task, 60)
        admin.close()
        receiver.stop()
        kube_stack.stop(work / "kube")
        kafka_stack.stop(work / "kafka")


def main() -> int:
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("modelmedic").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--anomalies", type=int, default=40)
    parser.add_argument("--spacing", type=float, default=0.25, help="seconds between anomaly records")
    parser.add_argument("--models", type=int, default=20, help="background fleet models")
    parser.add_argument("--rate", type=float, default=50.0, help="background requests per second per model")
    return asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())

"""Run modelmedic's strict PagerDuty / Slack / webhook receiver and print every request it gets.

    python load/receiver.py [--port 0]

The receiver itself is :class:`modelmedic.testing.AlertReceiver` (what the tests and the demo
page); this script is for pointing a hand-run service's sinks at it.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading

from modelmedic.testing.receiver import AlertReceiver, Received


class _PrintingReceiver(AlertReceiver):
    """The script's receiver: prints each request as it is recorded."""

    def _record(self, received: Received) -> None:
        super()._record(received)
        verdict = "accepted" if received.accepted else f"refused ({received.reason})"
        print(f"{received.status} {received.kind} {received.path} {verdict}: {json.dumps(received.json)[:500]}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    receiver = _PrintingReceiver(port=args.port).start()
    print(f"pagerduty: {receiver.pagerduty_url}\nslack:     {receiver.slack_url}\nwebhook:   {receiver.webhook_url}", flush=True)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        stopping.wait()
    finally:
        receiver.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The always-on service: detection plane, response plane and HTTP endpoint in one process.

SIGTERM/SIGINT set one stop event; each plane stops taking new batches, checkpoints
(detection) or finishes its current anomaly (response) and returns, well inside a pod's
termination grace period.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from modelmedic import logs
from modelmedic.alerting import Alerter, build_sinks
from modelmedic.config import Settings
from modelmedic.detection import DetectionPlane
from modelmedic.http import HttpServer
from modelmedic.incidents import ResponsePlane

log = logging.getLogger("modelmedic")


class Service:
    """Both planes and the HTTP endpoint, started and stopped together."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop = asyncio.Event()
        self.alerter = Alerter(build_sinks(settings.sinks))
        self.detection = DetectionPlane(settings)
        self.response = ResponsePlane(settings, self.alerter)
        self.http = HttpServer(settings.http, self)

    async def run(self) -> None:
        await self.http.start()
        tasks = [asyncio.create_task(self.detection.run(self.stop), name="detection"),
                 asyncio.create_task(self.response.run(self.stop), name="response")]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    log.error("%s plane failed: %r; stopping", task.get_name(), task.exception())
                    self.stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            for task in tasks:
                if task.exception() is not None:
                    raise task.exception()
        finally:
            self.stop.set()
            await self.alerter.aclose()
            await self.http.stop()


async def serve(settings: Settings) -> int:
    """``modelmedic run``: run until SIGTERM or SIGINT."""
    logs.setup(settings.log_level, settings.log_format)
    service = Service(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.stop.set)
    log.info("modelmedic starting: kafka %s, %d sink(s), http %s:%d", settings.kafka.bootstrap_servers,
             len(settings.sinks), settings.http.host, settings.http.port)
    await service.run()
    log.info("modelmedic stopped")
    return 0

"""The status UI in a real headless Chromium (Debian's package, driven by Playwright) against a running
Service on real Kafka (issue 15 item 7).

The browser logs in as a person would (a Basic challenge answered with an operator's name and token),
and every request it makes must go to the service itself: no CDN, font or script from elsewhere.
Screenshots of the four pages are saved (``MODELMEDIC_SCREENSHOTS``, default the test's tmp dir) and
the key elements asserted: the open and the acknowledged incident rows with their states, the incident
page's timeline, its SVG plot (the flagged windows and the action) and the maintenance window holding it,
that window on the silences page (what it holds back, who made it, why), the model page's versions serving.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path

import httpx
import pytest
from playwright.async_api import async_playwright

from modelmedic.app import Service
from modelmedic.config import OperatorSettings, token_sha256
from modelmedic.events import Anomaly, stable_id
from modelmedic.kafka import producer
from test_response import publish, until

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
TOKEN = "alice-token-for-the-status-ui-test"


def latency(model: str, onset: int, observed: float, window_end: int) -> Anomaly:
    """A firing latency decision about ``model``'s v1 production series."""
    return Anomaly(id=stable_id(model, "v1", "production", "latency", onset), series=f"{model}/v1/production",
                   model=model, version="v1", role="production", kind="latency", anomaly_class="latency",
                   window_start=window_end - 10_000, window_end=window_end, onset=onset, observed=observed,
                   baseline=40.0, score=1.0, state="firing",
                   summary=f"median latency {observed:.0f} ms vs usual 40 ms ({observed / 40:.1f}x)")


async def serve_inference(settings, model: str, n: int) -> None:
    """``n`` requests of ``model`` v1 (production) and v2 (canary), stamped now."""
    p = producer(settings.kafka)
    await p.start()
    try:
        now = int(time.time() * 1000)
        for k in range(n):
            for version, role in (("v1", "production"), ("v2", "canary")):
                record = {"model": model, "version": version, "role": role, "request_id": f"{version}-{k}",
                          "ts": now + k, "latency_ms": 40.0, "ok": True}
                await p.send(settings.kafka.topics.inference, json.dumps(record).encode(), key=model.encode())
        await p.flush()
    finally:
        await p.stop()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("MODELMEDIC_SCREENSHOTS", tmp_path / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def test_on_call_reads_the_incident_in_a_real_browser(settings, tmp_path, screenshots):
    assert shutil.which(CHROMIUM), "Debian's chromium is needed: apt-get install -y chromium (deploy/local/setup.sh)"
    settings = settings.model_copy(update={"http": settings.http.model_copy(update={
        "operators": [OperatorSettings(name="alice", role="operate", token_sha256=token_sha256(TOKEN))]})})
    service = Service(settings)
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(asyncio.gather(service.response.ready.wait(), service.detection.ready.wait()), 60)
        base = f"http://127.0.0.1:{service.http.port}"
        # Three decided windows of one series (one incident), and a second model's incident to acknowledge.
        minute = 60_000
        onset = (int(time.time() * 1000) // minute - 4) * minute  # live: decisions minutes before the action
        burning = [latency("fraud-scorer", onset + k * minute, obs, onset + (k + 1) * minute)
                   for k, obs in enumerate((180.0, 260.0, 310.0))]
        other = latency("search-ranker", onset, 120.0, onset + minute)
        await publish(settings, *burning, other)
        await serve_inference(settings, "fraud-scorer", 20)
        await until(lambda: (i := service.incident(burning[0].id)) is not None and len(i.anomaly_ids) == 3
                    and service.incident(other.id) is not None and service.detection.processed >= 40, 60)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as api:
            assert (await api.post(f"/api/v1/incidents/{other.id}/ack")).status_code == 200
            ran = await api.post(f"/api/v1/incidents/{burning[0].id}/run", json={"playbook": "scale-out"})
            assert ran.status_code == 200, ran.text
            made = await api.post("/api/v1/silences", json={"kind": "maintenance", "models": ["fraud-*"], "minutes": 90,
                                                            "comment": "node pool upgrade"})
            assert made.status_code == 201, made.text
            window = made.json()["id"]
        await until(lambda: len(service.serving("fraud-scorer")) == 2, 30)

        async with async_playwright() as pw:
            # (Playwright passes --user-data-dir itself for a persistent context, --headless by headless=True.)
            context = await pw.chromium.launch_persistent_context(
                tmp_path / "chromium", executable_path=CHROMIUM, headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
                http_credentials={"username": "alice", "password": TOKEN}, viewport={"width": 1400, "height": 1000})
            try:
                page = await context.new_page()
                requested: list[str] = []
                errors: list[str] = []
                page.on("request", lambda r: requested.append(r.url))
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(str(e)))

                # The front page: the open incident and the acknowledged one, told apart.
                assert (await page.goto(base + "/")).status == 200
                row = page.locator(f'#open-incidents tr.incident[data-id="{burning[0].id}"]')
                await row.wait_for(state="visible")
                assert await row.locator(".state").inner_text() == "open"
                assert "scale-out" in await row.inner_text()  # what was tried
                acked = page.locator(f'#open-incidents tr.incident[data-id="{other.id}"]')
                assert await acked.locator(".state").inner_text() == "acknowledged by alice"
                assert await page.locator('meta[http-equiv="refresh"]').get_attribute("content") == "15"
                await page.screenshot(path=screenshots / "front.png", full_page=True)

                # The incident's page: timeline and the plot of its judged series.
                await row.locator("a", has_text=burning[0].id).click()
                await page.wait_for_url(f"{base}/incidents/{burning[0].id}")
                timeline = page.locator("#timeline tr.event")
                texts = await timeline.all_inner_texts()
                assert any("opened" in t for t in texts) and any("playbook scale-out (run by hand)" in t
                                                                  and "alice" in t for t in texts), texts
                plot = page.locator("svg#series-plot")
                await plot.wait_for(state="visible")
                box = await plot.bounding_box()
                assert box is not None and box["width"] > 500 and box["height"] > 200
                assert await plot.locator("circle.window.firing").count() == 3
                assert await plot.locator("line.action").count() == 1
                assert await plot.locator("text.action-label").text_content() == "scale-out"
                assert await plot.locator("polyline.baseline").count() == 1
                assert "alice" in await page.locator(f'#held-by tr.held-by[data-id="{window}"]').inner_text()
                await plot.screenshot(path=screenshots / "plot.png")
                await page.screenshot(path=screenshots / "incident.png", full_page=True)

                # The window holding it, on the silences page: what it holds back, who made it and why.
                await page.locator("#held-by a", has_text=window).click()
                await page.wait_for_url(f"{base}/silences#{window}")
                listed = page.locator(f'#silences tr.silence[data-id="{window}"]')
                assert await listed.get_attribute("data-state") == "active"
                assert await listed.locator(".holds").inner_text() == "pages and automatic remediation"
                assert await listed.locator(".created-by").inner_text() == "alice"
                assert await listed.locator(".comment").inner_text() == "node pool upgrade"
                await page.screenshot(path=screenshots / "silences.png", full_page=True)
                await page.go_back()

                # The model's page: the versions serving it.
                await page.locator("#facts a", has_text="fraud-scorer").click()
                await page.wait_for_url(f"{base}/models/fraud-scorer")
                serving = await page.locator("#serving tr.serving").all_inner_texts()
                assert [s.split()[:2] for s in serving] == [["v2", "canary"], ["v1", "production"]]
                await page.screenshot(path=screenshots / "model.png", full_page=True)

                assert errors == []
                assert requested and all(url.startswith(base) for url in requested), requested
            finally:
                await context.close()
        for name in ("front", "plot", "incident", "silences", "model"):
            assert (screenshots / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        service.stop.set()
        await asyncio.wait_for(task, 30)

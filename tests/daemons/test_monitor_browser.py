"""The monitor page in a real browser (headless Chromium, Debian's package) against the running
pipeline: acquire on the simulated signer, infer with the shipped student, sink, monitor; all on
random loopback ports. The page must draw the traces, show the recognised signs as they arrive, and
report stream-sink gone once it is killed.

``SIGNSTREAM_SCREENSHOT=docs/monitor.png`` saves the screenshot there (the one in the README);
otherwise it goes to the test's temporary directory.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from stream.tools.browser import Chromium, chromium_path
from daemon_helpers import subscriber, wait_for_status
from test_monitor import monitor_config, start_monitor

pytest.importorskip("aiohttp", reason="stream-monitor's optional extra: pip install -e '.[monitor]'")

PYTHON_MODULE = "-m"
CHROMIUM = chromium_path()

# Pixels of a canvas that are not its background: something was drawn.
DRAWN_PIXELS = """(() => {
  const canvas = document.getElementById(%r);
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let drawn = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i + 3] > 0) drawn += 1;
  return drawn;
})()"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: apt-get install -y chromium (Debian's "
                                              "package; .ci/run installs it when it can)")
@pytest.mark.timeout(180)
def test_the_page_shows_traces_signs_and_a_killed_daemon(processes, zmq_context, tmp_path):
    config, endpoints = monitor_config(tmp_path)
    infer_status = subscriber(zmq_context, endpoints["predictions"], b"status")
    started = {}
    for name in ("sink", "infer"):
        started[name] = processes.start_python([PYTHON_MODULE, f"stream.daemons.{name}", "--config", str(config)])
    _, url = start_monitor(processes, config)
    wait_for_status(infer_status, lambda status: status["daemon"] == "stream-infer", timeout_s=60)
    started["acquire"] = processes.start_python([PYTHON_MODULE, "stream.daemons.acquire", "--config", str(config)])
    screenshot = Path(os.environ.get("SIGNSTREAM_SCREENSHOT") or tmp_path / "monitor.png")
    events_wanted = 4 if os.environ.get("SIGNSTREAM_SCREENSHOT") else 1

    async def scenario():
        async with Chromium(CHROMIUM) as browser:
            await browser.navigate(url)
            await browser.wait_for("window.monitorStats && monitorStats.drawn.emg > 300 && monitorStats.drawn.imu > 300 "
                                   "&& monitorStats.drawn.segmentation > 100", 40, "traces drawn")
            for canvas in ("emg", "imu", "segmentation"):
                assert await browser.evaluate(DRAWN_PIXELS % canvas) > 2000, f"the {canvas} canvas is blank"
            caption = await browser.wait_for(
                f"monitorStats.events >= {events_wanted} && document.getElementById('caption').textContent",
                60, "a recognised sign in the caption")
            assert caption == (await browser.evaluate("monitorStats.lastCaption")).replace("_", " ")
            assert await browser.evaluate("monitorStats.predictions") >= 1
            assert await browser.evaluate("document.querySelectorAll('#probabilities .bar').length") >= 2
            health = await browser.wait_for(
                "Object.values(monitorStats.health).every(state => state === 'running') && monitorStats.health",
                10, "every daemon running")
            assert set(health) == {"stream-acquire", "stream-infer", "stream-sink", "stream-monitor"}
            assert await browser.evaluate("document.getElementById('connection').textContent") == "live"
            await browser.screenshot(screenshot)

            os.killpg(started["sink"].pid, signal.SIGKILL)  # no goodbye status: only its silence tells
            await browser.wait_for("monitorStats.health['stream-sink'] === 'gone'", 10, "stream-sink reported gone")
            banner = await browser.wait_for("document.getElementById('banner').textContent", 5, "a banner")
            assert "stream-sink is gone" in banner
            assert await browser.evaluate("document.querySelector('.card.gone').dataset.daemon") == "stream-sink"
            # The rest goes on: traces still arrive after the kill.
            drawn = await browser.evaluate("monitorStats.framesReceived")
            await browser.wait_for(f"monitorStats.framesReceived > {drawn + 50}", 10, "traces after the kill")

    asyncio.run(scenario())
    assert screenshot.stat().st_size > 20_000

"""A headless Chromium driven over the Chrome DevTools Protocol: the monitor page's tests and its soak (``stream.tools.monitor_soak``).

Debian's ``chromium`` package (browser downloads from elsewhere do not work on these machines), no
driver: the protocol's WebSocket is spoken with aiohttp's client (stream-monitor's own dependency).
Every call has a timeout; ``close`` kills the browser and removes its profile, so nothing is left.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")


def chromium_path() -> str | None:
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class BrowserError(RuntimeError):
    pass


class Chromium:
    """One headless browser with one page; use ``async with Chromium(...) as browser``."""

    def __init__(self, executable: str, width: int = 1400, height: int = 1120, call_timeout_s: float = 20.0):
        self.executable = executable
        self.width, self.height = width, height
        self.call_timeout_s = call_timeout_s
        self.profile = Path(tempfile.mkdtemp(prefix="signstream-chromium-"))
        self.process: subprocess.Popen | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> "Chromium":
        import aiohttp

        arguments = [self.executable, "--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                     "--disable-extensions", "--disable-background-networking", "--disable-sync",
                     "--hide-scrollbars", "--mute-audio", f"--window-size={self.width},{self.height}",
                     "--remote-debugging-port=0", f"--user-data-dir={self.profile}", "about:blank"]
        if os.geteuid() == 0:
            arguments.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        self.process = subprocess.Popen(arguments, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                await self.close()
                raise BrowserError("chromium did not open its DevTools port within 30 s")
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.call_timeout_s))
        async with self.session.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json()
        page = next(target for target in targets if target.get("type") == "page")
        self.socket = await self.session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        await self.call("Page.enable")
        await self.call("Runtime.enable")
        # The whole page in the screenshot, at this size, whatever the headless window's decorations.
        await self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                        deviceScaleFactor=1, mobile=False)
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def call(self, method: str, **params) -> dict:
        identifier = next(self._ids)
        await self.socket.send_str(json.dumps({"id": identifier, "method": method, "params": params}))
        deadline = time.monotonic() + self.call_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError(f"{method}: no answer from chromium within {self.call_timeout_s} s")
            message = await self.socket.receive(timeout=remaining)
            if message.type.name != "TEXT":
                raise BrowserError(f"{method}: the DevTools connection closed ({message.type.name})")
            reply = json.loads(message.data)
            if reply.get("id") == identifier:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    async def navigate(self, url: str) -> None:
        await self.call("Page.navigate", url=url)

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"page error in {expression!r}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float, what: str):
        """Evaluate ``expression`` until it is truthy; fails naming ``what`` and the last value."""
        deadline = time.monotonic() + timeout_s
        value = None
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.2)
        raise BrowserError(f"{what} not seen within {timeout_s} s (last value {value!r})")

    async def screenshot(self, path: Path) -> None:
        result = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(result["data"]))

    async def close(self) -> None:
        if getattr(self, "session", None) is not None:
            await self.session.close()
            self.session = None
        if self.process is not None:
            try:  # the browser and its renderer processes: the group it was started in
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)

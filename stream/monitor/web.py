"""stream-monitor's web side: one page, its assets and one push channel, served with aiohttp.

aiohttp (docs/MONITOR.md says why): a well-kept asyncio HTTP server with streaming responses,
wheels for the Pi (cp311 aarch64), and nothing else to install. It runs in its own thread with its own
event loop; the ZeroMQ loop (stream.daemons.monitor) hands it ready-made JSON texts with
``MonitorServer.publish``, which only schedules a call on that loop.

The push channel is server-sent events (``GET /events``): one-way is all the page needs, and the
browser's EventSource reconnects by itself after a restart. Every text is encoded once and shared by
all browsers. Each browser has a bounded queue (``[monitor] client_queue``): a browser that does not
keep up (a stalled tab, a slow link) never makes anything wait or grow; when its queue is full the
queue is dropped (counted in ``updates_dropped``), and it is skipped ahead: it gets the current
snapshot (the last ``history_s`` of traces, recent signs and health) and goes on live from there.
A connection whose writes stay blocked for ``WRITE_TIMEOUT_S`` is closed. The kernel's send buffer of
each connection is made small, so that a stalled browser holds little memory there either.

Access (house rule: a person's muscle signals are private): bound to loopback, the page is for this
host's users, and requests must name a loopback host (``Host`` header), which defeats a web page
elsewhere reaching it by DNS rebinding. Bound to any other address, every request (page, assets,
events) needs the random token printed at start: as ``?token=`` once (the page then sets an HttpOnly
cookie and drops it from the address bar) or as that cookie. Responses carry a Content-Security-Policy
that allows this origin alone: the page loads nothing from elsewhere.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import ipaddress
import logging
import secrets
import socket
import threading
from pathlib import Path

from aiohttp import web

logger = logging.getLogger("stream-monitor")

STATIC_DIR = Path(__file__).resolve().parent / "static"
ASSETS = {
    "/": ("index.html", "text/html"),
    "/monitor.js": ("monitor.js", "text/javascript"),
    "/monitor.css": ("monitor.css", "text/css"),
}
TOKEN_COOKIE = "signstream_monitor"
WRITE_TIMEOUT_S = 30.0
SEND_BUFFER_BYTES = 64 * 1024
RECENT_SIGNS = 100  # predictions and events replayed to a browser that connects
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
HUB_COUNTERS = ("clients", "connections", "requests_refused", "updates", "updates_dropped", "clients_skipped",
                "clients_stalled")


class MonitorServerError(RuntimeError):
    """The web server cannot start (the port is taken, the address is not this host's)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """``Host`` header without its port: 'localhost:8080' -> 'localhost', '[::1]:80' -> '::1'."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Access:
    """Who may load the page: loopback callers naming a loopback host, or anyone with the token."""

    def __init__(self, host: str, token: str | None):
        self.token = token
        self.allowed_hosts = {"127.0.0.1", "localhost", "::1", host}

    def refusal(self, request: web.Request) -> str | None:
        """Why ``request`` is refused, or None."""
        if self.token is None:
            if _host_name(request.host or "") not in self.allowed_hosts:
                return (f"stream-monitor: Host {request.host!r} is not this monitor's loopback address; "
                        "open http://127.0.0.1:PORT/ on this machine")
            return None
        given = request.query.get("token") or request.cookies.get(TOKEN_COOKIE) or ""
        if hmac.compare_digest(given.encode(), self.token.encode()):
            return None
        return ("stream-monitor: this page needs its access token (it is bound beyond loopback): open the URL "
                "with ?token=... that stream-monitor printed when it started")


class Client:
    """One browser's push queue: bounded; on overflow it is skipped ahead to a fresh snapshot."""

    def __init__(self, limit: int):
        self.limit = limit
        self.queue: collections.deque[bytes] = collections.deque()
        self.live = 0  # live messages queued since the browser last took (a snapshot does not count)
        self.wake = asyncio.Event()
        self.closed = False

    def take(self) -> bytes | None:
        if not self.queue:
            return None
        data = b"".join(self.queue)
        self.queue.clear()
        self.live = 0
        return data


class Hub:
    """Everything the browsers get; lives on the web thread's loop (``publish`` is called there)."""

    def __init__(self, history_updates: int, client_queue: int, max_clients: int):
        self.client_queue = client_queue
        self.max_clients = max_clients
        self.clients: set[Client] = set()
        self.hello: bytes | None = None
        self.health: bytes | None = None
        self.recent: collections.deque[bytes] = collections.deque(maxlen=RECENT_SIGNS)
        self.history: collections.deque[bytes] = collections.deque(maxlen=history_updates)
        self.counters = {name: 0 for name in HUB_COUNTERS}

    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount

    def snapshot(self) -> list[bytes]:
        parts = [self.hello, self.health, *self.recent, *self.history]
        return [part for part in parts if part is not None]

    def publish(self, kind: str, data: bytes | None) -> None:
        if kind == "reset":  # a new acquisition run: the old traces are of another clock
            self.history.clear()
            return
        if kind == "hello":
            self.hello = data
        elif kind == "health":
            self.health = data
        elif kind in ("prediction", "event"):
            self.recent.append(data)
        else:
            self.history.append(data)
            self.counters["updates"] += 1
        for client in self.clients:
            self._offer(client, data)

    def _offer(self, client: Client, data: bytes) -> None:
        if client.live >= client.limit:
            # Too slow for the stream: drop what it has not taken and skip it ahead to now.
            self.counters["updates_dropped"] += client.live + 1
            self.counters["clients_skipped"] += 1
            client.queue.clear()
            client.queue.extend(self.snapshot())
            client.live = 0
        else:
            client.queue.append(data)
            client.live += 1
        client.wake.set()

    def connect(self) -> Client:
        client = Client(self.client_queue)
        client.queue.extend(self.snapshot())
        self.clients.add(client)
        self.counters["connections"] += 1
        self.counters["clients"] = len(self.clients)
        return client

    def disconnect(self, client: Client) -> None:
        self.clients.discard(client)
        self.counters["clients"] = len(self.clients)

    def close(self) -> None:
        for client in self.clients:
            client.closed = True
            client.wake.set()


def build_app(hub: Hub, access: Access) -> web.Application:
    assets = {path: ((STATIC_DIR / name).read_bytes(), content_type) for path, (name, content_type) in ASSETS.items()}

    @web.middleware
    async def guard(request: web.Request, handler):
        refusal = access.refusal(request)
        if refusal is not None:
            hub.count("requests_refused")
            return web.Response(status=403, text=refusal + "\n")
        if access.token is not None and request.query.get("token") and request.path == "/":
            # Keep the token out of the address bar (and of bookmarks and screenshots): a cookie holds it.
            redirect = web.HTTPFound("/")
            redirect.set_cookie(TOKEN_COOKIE, access.token, httponly=True, samesite="Strict", path="/")
            raise redirect
        return await handler(request)

    async def asset(request: web.Request) -> web.Response:
        body, content_type = assets[request.path]
        return web.Response(body=body, content_type=content_type, charset="utf-8")

    async def events(request: web.Request) -> web.StreamResponse:
        if len(hub.clients) >= hub.max_clients:
            hub.count("requests_refused")
            return web.Response(status=503, text=f"stream-monitor: {hub.max_clients} browsers are connected already "
                                                 "([monitor] max_clients)\n")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"})
        await response.prepare(request)
        raw = request.transport.get_extra_info("socket") if request.transport else None
        if raw is not None:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        client = hub.connect()
        try:
            while not client.closed:
                data = client.take()
                if data is None:
                    client.wake.clear()
                    await client.wake.wait()
                    continue
                try:
                    await asyncio.wait_for(response.write(data), WRITE_TIMEOUT_S)
                except asyncio.TimeoutError:
                    hub.count("clients_stalled")
                    break
        except (ConnectionError, RuntimeError):  # the browser went away (aiohttp: closing transport)
            pass
        finally:
            hub.disconnect(client)
        return response

    async def headers(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(SECURITY_HEADERS)

    app = web.Application(middlewares=[guard])
    app.on_response_prepare.append(headers)
    for path in ASSETS:
        app.router.add_get(path, asset)
    app.router.add_get("/events", events)
    return app


class MonitorServer:
    """The web server in its own thread; ``publish`` may be called from any thread."""

    def __init__(self, monitor_config, history_updates: int):
        self.config = monitor_config
        self.loopback = is_loopback(monitor_config.host)
        self.token = None if self.loopback else secrets.token_urlsafe(24)
        self.hub = Hub(history_updates, monitor_config.client_queue, monitor_config.max_clients)
        self.port: int | None = None
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: Exception | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The page's address, without the token."""
        host = self.config.host
        shown = "127.0.0.1" if host == "localhost" else (f"[{host}]" if ":" in host else host)
        return f"http://{shown}:{self.port}/"

    @property
    def url_with_token(self) -> str:
        return self.url if self.token is None else f"{self.url}?token={self.token}"

    def start(self, timeout_s: float = 30.0) -> None:
        self._thread = threading.Thread(target=self._run, name="stream-monitor-web", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise MonitorServerError(f"the web server did not start within {timeout_s:g} s")
        if self._error is not None:
            raise MonitorServerError(f"cannot serve on {self.config.host}:{self.config.port}: {self._error}; "
                                     "set [monitor] port (0: any free port) or host") from None

    async def _serve(self) -> None:
        app = build_app(self.hub, Access(self.config.host, self.token))
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except OSError as error:  # the port is taken, or the address is not this host's
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

    def publish(self, kind: str, text: str | None) -> None:
        """Hand one message (a JSON text) to every browser; never blocks."""
        data = None if text is None else f"data: {text}\n\n".encode()
        try:
            self._loop.call_soon_threadsafe(self.hub.publish, kind, data)
        except RuntimeError:  # the loop is closed: the monitor is stopping
            pass

    def counters(self) -> dict[str, int]:
        return dict(self.hub.counters)

    def stop(self, timeout_s: float = 3.0) -> None:
        if self._thread is None or not self._thread.is_alive():
            return
        self._loop.call_soon_threadsafe(self.hub.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout_s)

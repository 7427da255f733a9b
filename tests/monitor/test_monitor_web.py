"""The monitor's web side in process: the bounded per-browser queues, access (loopback Host check,
the token beyond loopback), the assets served from the package alone, and the push channel."""

from __future__ import annotations

import asyncio
import re
import socket
import time
import urllib.error
import urllib.request

import pytest

pytest.importorskip("aiohttp", reason="stream-monitor's optional extra: pip install -e '.[monitor]'")

from stream.config.sections import MonitorConfig  # noqa: E402
from stream.monitor.web import STATIC_DIR, TOKEN_COOKIE, Hub, MonitorServer  # noqa: E402


def data(text: str) -> bytes:
    return f"data: {text}\n\n".encode()


def test_a_slow_browser_is_skipped_ahead_to_a_snapshot_and_never_holds_more_than_its_queue():
    async def scenario():
        hub = Hub(history_updates=5, client_queue=3, max_clients=2)
        hub.publish("hello", data("hello"))
        hub.publish("health", data("health"))
        client = hub.connect()
        assert client.take() == data("hello") + data("health")
        for number in range(3):
            hub.publish("traces", data(f"t{number}"))
        assert hub.counters["updates_dropped"] == 0 and client.live == 3
        hub.publish("traces", data("t3"))  # the fourth live message: over the queue
        assert hub.counters["updates_dropped"] == 4 and hub.counters["clients_skipped"] == 1
        # Skipped ahead: hello, health, then the history (the last five updates at most).
        assert client.take() == data("hello") + data("health") + b"".join(data(f"t{n}") for n in range(4))
        for number in range(4, 200):
            hub.publish("traces", data(f"t{number}"))
            assert len(client.queue) <= 2 + 5 + 3  # snapshot + queue: bounded whatever the browser does
        assert len(hub.history) == 5
        hub.publish("reset", None)
        assert len(hub.history) == 0
        hub.disconnect(client)
        assert hub.counters["clients"] == 0 and hub.counters["connections"] == 1

    asyncio.run(scenario())


@pytest.fixture
def server_factory():
    started = []

    def start(**settings) -> MonitorServer:
        server = MonitorServer(MonitorConfig(port=0, **settings), history_updates=10)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def fetch(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_loopback_page_and_assets_come_from_the_package_with_a_strict_policy(server_factory):
    server = server_factory()
    assert server.token is None and server.url_with_token == server.url
    status, headers, body = fetch(server.url)
    assert status == 200 and body == (STATIC_DIR / "index.html").read_bytes()
    assert headers["Content-Security-Policy"].startswith("default-src 'self'")
    for name in ("monitor.js", "monitor.css"):
        status, headers, body = fetch(server.url + name)
        assert status == 200 and body == (STATIC_DIR / name).read_bytes()
    # Nothing is loaded from elsewhere: no absolute URL in the page or its assets.
    for path in STATIC_DIR.iterdir():
        assert not re.search(r"(https?:)?//[a-z0-9]", path.read_text()), f"{path.name} names another origin"
    assert fetch(server.url + "nothing")[0] == 404


def test_loopback_refuses_a_host_header_from_elsewhere(server_factory):
    server = server_factory()
    status, _, body = fetch(server.url, {"Host": f"attacker.example:{server.port}"})
    assert status == 403 and b"not this monitor's loopback address" in body
    assert server.counters()["requests_refused"] == 1
    assert fetch(server.url, {"Host": f"localhost:{server.port}"})[0] == 200


def test_beyond_loopback_every_request_needs_the_token(server_factory):
    server = server_factory(host="0.0.0.0")
    assert server.token and len(server.token) >= 24
    base = f"http://127.0.0.1:{server.port}/"
    for path in ("", "monitor.js", "monitor.css", "events"):
        status, _, body = fetch(base + path)
        assert status == 403 and b"access token" in body, path
        assert fetch(base + path + "?token=wrong")[0] == 403
    # The token once in the URL: a cookie holds it and the address bar loses it.
    status, headers, _ = fetch(f"{base}?token={server.token}")
    assert status == 302 and headers["Location"] == "/"
    assert f"{TOKEN_COOKIE}={server.token}" in headers["Set-Cookie"] and "HttpOnly" in headers["Set-Cookie"]
    cookie = {"Cookie": f"{TOKEN_COOKIE}={server.token}"}
    assert fetch(base, cookie)[0] == 200 and fetch(base + "monitor.js", cookie)[0] == 200
    assert server.counters()["requests_refused"] == 8


class EventReader:
    """The push channel read as a browser would, over HTTP/1.0 (no chunking: the body is the stream)."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(f"GET /events HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        self.buffer = b""
        self.head = None

    def read(self, count: int, timeout_s: float = 5.0) -> list[bytes]:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.head is None and b"\r\n\r\n" in self.buffer:
                self.head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
                assert b"text/event-stream" in self.head
            if self.head is not None and self.buffer.count(b"\n\n") >= count:
                break
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{count} events not received within {timeout_s} s: {self.buffer[:200]!r}"
            self.sock.settimeout(remaining)
            self.buffer += self.sock.recv(65536)
        events = self.buffer.split(b"\n\n")
        self.buffer = b"\n\n".join(events[count:])
        return [event.removeprefix(b"data: ") for event in events[:count]]

    def close(self) -> None:
        self.sock.close()


def test_push_channel_snapshot_then_live_and_max_clients(server_factory):
    server = server_factory(max_clients=2)
    server.publish("hello", '{"kind":"hello"}')
    server.publish("traces", '{"kind":"traces","n":1}')
    time.sleep(0.1)
    first = EventReader(server.port)
    try:
        assert first.read(2) == [b'{"kind":"hello"}', b'{"kind":"traces","n":1}']
        server.publish("event", '{"kind":"event"}')
        assert first.read(1) == [b'{"kind":"event"}']
        second = EventReader(server.port)
        second.read(1)
        status, _, body = fetch(server.url + "events")
        assert status == 503 and b"max_clients" in body
        second.close()
    finally:
        first.close()

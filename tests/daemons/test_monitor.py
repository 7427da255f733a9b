"""stream-monitor as a real process on loopback with random ports: it subscribes to what the pipeline
publishes, pushes it to the page, counts bad input, publishes its status, and refuses a page bound
beyond loopback without its token."""

from __future__ import annotations

import json
import re
import select
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import zmq

from stream.config import Config
from stream.daemons.monitor import MONITOR_COUNTERS
from stream.daemons.skeleton import DAEMON_COUNTERS
from stream.wire.protocol import FrameEncoder, FrameSpec, encode_event, encode_prediction, encode_status

from conftest import free_endpoint
from daemon_helpers import subscriber, synthetic_frames, wait_for_status, write_config
from test_daemons import prediction

pytest.importorskip("aiohttp", reason="stream-monitor's optional extra: pip install -e '.[monitor]'")

PYTHON_MODULE = "-m"


def monitor_config(tmp_path, extra: str = ""):
    monitor_endpoint = free_endpoint()
    path, endpoints = write_config(tmp_path, f'[monitor]\nport = 0\nstatus_endpoint = "{monitor_endpoint}"\n{extra}')
    return path, {**endpoints, "monitor": monitor_endpoint}


def start_monitor(processes, config, *arguments) -> tuple[subprocess.Popen, str]:
    """Start stream-monitor; returns the process and the URL it printed."""
    process = processes.start_python([PYTHON_MODULE, "stream.daemons.monitor", "--config", str(config), *arguments])
    ready, _, _ = select.select([process.stdout], [], [], 60)
    line = process.stdout.readline().decode() if ready else ""
    match = re.fullmatch(r"stream-monitor: open (http://\S+)\n", line)
    assert match, f"stream-monitor printed {line!r}; stderr: {process.stderr.read1(4000) if process.poll() is not None else ''}"
    return process, match.group(1)


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def read_pushes(url: str, until, timeout_s: float = 20.0) -> list[dict]:
    """Read the push channel (server-sent events) until ``until(messages)`` holds."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    connection.request("GET", "/events" + (f"?{parts.query}" if parts.query else ""))
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
    messages, buffer, deadline = [], b"", time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            buffer += response.read1(65536)
            *complete, buffer = buffer.split(b"\n\n")
            messages += [json.loads(part.removeprefix(b"data: ")) for part in complete if part]
            if until(messages):
                return messages
    finally:
        connection.close()
    pytest.fail(f"condition not met within {timeout_s} s; kinds received: {sorted({m['kind'] for m in messages})}")


def test_monitor_pushes_traces_signs_and_health_and_counts_what_it_hears(processes, zmq_context, tmp_path):
    config, endpoints = monitor_config(tmp_path)
    publishers = {}
    for name in ("frames", "predictions", "events"):
        publishers[name] = zmq_context.socket(zmq.PUB)
        publishers[name].bind(endpoints[name])
    status_socket = subscriber(zmq_context, endpoints["monitor"], b"status")
    monitor, url = start_monitor(processes, config)
    assert url.startswith("http://127.0.0.1:") and "token" not in url
    first = wait_for_status(status_socket, lambda status: status["daemon"] == "stream-monitor", timeout_s=20)
    # Every counter from the first status on (docs/protocol.md lists them).
    assert set(first["counters"]) == set(DAEMON_COUNTERS) | set(MONITOR_COUNTERS)
    assert first["info"] == {"url": url, "access": "loopback"}
    assert fetch(url)[0] == 200
    time.sleep(0.5)  # the monitor's subscriptions reach our publishers (slow joiner)

    encoder = FrameEncoder(FrameSpec.from_config(Config()))
    frames = synthetic_frames(3.0, [(1.0, 1.8)])
    for frame in frames[:150]:
        publishers["frames"].send_multipart(encoder.encode(frame))
    publishers["frames"].send_multipart([b"frame", b"\xc1 not msgpack", b""])  # bad: counted, dropped
    publishers["frames"].send_multipart([b"description", b"{}"])  # a topic it did not subscribe to
    for frame in frames[160:]:  # ten frames lost on the way: a gap
        publishers["frames"].send_multipart(encoder.encode(frame))
    sink_status = {"seq": 0, "session": "sink-a", "t_wall": time.time(), "daemon": "stream-sink", "state": "running",
                   "pid": 1, "host": "h", "uptime_s": 2.0, "counters": {"events": 1}, "info": {}}
    publishers["events"].send_multipart(encode_status(sink_status))
    publishers["predictions"].send_multipart(encode_prediction({**prediction(0, label="thanks"), "forced": False,
                                                                "decided_index": 140}))
    publishers["events"].send_multipart(encode_event({**prediction(0, label="thanks"), "prediction_seq": 0}))

    def complete(messages):
        frames_pushed = sum(len(m["t"]) for m in messages if m["kind"] == "traces")
        sink = [d for m in messages if m["kind"] == "health" for d in m["daemons"] if d["daemon"] == "stream-sink"]
        return (frames_pushed >= len(frames) - 10 and any(m["kind"] == "event" for m in messages)
                and any(m["kind"] == "prediction" for m in messages) and sink and sink[-1]["state"] == "running")

    messages = read_pushes(url, complete)
    assert messages[0]["kind"] == "hello" and len(messages[0]["emg_channels"]) == 6
    traces = [m for m in messages if m["kind"] == "traces"]
    assert [gap for m in traces for gap in m["gaps"]] == [[round(2250 * 0.0009, 4), round(2400 * 0.0009, 4)]]
    assert any(segment for m in traces for segment in m["segments"])  # the burst, found by the monitor's segmenter
    event = next(m for m in messages if m["kind"] == "event")
    assert event["label"] == "thanks" and event["prediction_seq"] == 0
    assert next(m for m in messages if m["kind"] == "prediction")["probabilities"] == [0.0, 0.9, 0.0, 0.0]
    status = wait_for_status(status_socket, lambda s: s["daemon"] == "stream-monitor" and s["counters"]["frames"] == len(frames) - 10
                             and s["counters"]["events"] == 1, timeout_s=10, fresh=True)
    counters = status["counters"]
    assert counters["bad_messages"] == 1 and counters["frames_missed"] == 10 and counters["frame_gaps"] == 1
    assert counters["predictions"] == 1 and counters["statuses"] >= 1 and counters["connections"] >= 1
    assert monitor.poll() is None


def test_bound_beyond_loopback_the_page_is_refused_without_the_printed_token(processes, tmp_path):
    config, _ = monitor_config(tmp_path)
    _, url = start_monitor(processes, config, "--host", "0.0.0.0")
    token = re.search(r"\?token=([\w-]+)$", url).group(1)
    base = url.split("?")[0].replace("0.0.0.0", "127.0.0.1")
    for path in ("", "monitor.js", "events"):
        status, body = fetch(base + path)
        assert status == 403 and b"needs its access token" in body, path
    # As a browser: the token once in the URL, then a cookie (the redirect drops it from the address).
    import http.cookiejar

    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with browser.open(f"{base}?token={token}", timeout=5) as response:
        assert response.status == 200 and response.url == base and b"signstream monitor" in response.read()
    with browser.open(base + "monitor.js", timeout=5) as response:
        assert response.status == 200


def test_without_aiohttp_it_says_what_to_install(tmp_path):
    config, _ = monitor_config(tmp_path)
    code = ("import sys; sys.modules['aiohttp'] = None; from stream.daemons.monitor import main; "
            f"raise SystemExit(main(['--config', {str(config)!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "pip install -e '.[monitor]'" in result.stderr


def test_a_bad_port_is_a_config_error(tmp_path):
    config, _ = monitor_config(tmp_path)
    result = subprocess.run([sys.executable, PYTHON_MODULE, "stream.daemons.monitor", "--config", str(config),
                             "--port", "70000"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "port = 70000" in result.stderr and "1-65535" in result.stderr

"""Monitor benchmark (part of ``python -m stream.tools.bench``): stream-monitor never slows the pipeline.

The real pipeline at real time on the simulated signer (stream-acquire, -infer, -sink with the shipped
config and model, ``SIGNSTREAM_BENCH_CONFIG`` names another) and stream-monitor, in one run, three
phases of ``SIGNSTREAM_BENCH_MONITOR_S`` seconds each (default 20), side by side:

- ``0_clients``: the monitor running, no browser;
- ``3_clients``: three browsers' push channels read as fast as they come;
- ``stalled_client``: one browser that connected and never reads (its receive buffer made tiny).

A fresh stream-infer is started for each phase, so that its timing counters (over its last 4096
frames) cover that phase alone. Per phase: ``acquire_frames_per_s`` and ``frame_interval_ms_p99``
(frames as a subscriber receives them), ``infer_frame_processing_ms_p50/p99`` and
``infer_frame_delay_ms_p50/p99`` (stream-infer's own status), ``monitor_cpu_fraction`` (CPU seconds
per wall second, 1.0 = one core), ``monitor_rss_mb`` at the phase's end, and the monitor's
``updates_dropped`` in the phase. ``load_average_1min`` says how busy the host was.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import zmq

from stream.tools.pipeline_bench import _cpu_seconds, _memory_mb
from stream.wire.protocol import TOPIC_FRAME, TOPIC_STATUS, decode_map_message

DEFAULT_SECONDS = 20.0
PHASES = ("0_clients", "3_clients", "stalled_client")


class PushReader(threading.Thread):
    """A browser's push channel read as fast as it comes (HTTP/1.0: the body is the stream)."""

    def __init__(self, port: int, stall: bool = False):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if stall:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(f"GET /events HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        self.stall = stall
        self.received = 0
        self.stopped = False

    def run(self) -> None:
        self.sock.settimeout(0.5)
        while not self.stopped and not self.stall:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            self.received += len(data)

    def close(self) -> None:
        self.stopped = True
        self.sock.close()


def _status(socket_: zmq.Socket, daemon: str, timeout_s: float) -> dict:
    """The next status of ``daemon`` on ``socket_`` (RuntimeError after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if socket_.poll(100):
            parts = socket_.recv_multipart()
            if parts[0] == TOPIC_STATUS:
                _, status = decode_map_message(parts)
                if status["daemon"] == daemon:
                    return status
    raise RuntimeError(f"no status from {daemon} within {timeout_s} s")


def _latest_status(socket_: zmq.Socket, daemon: str, timeout_s: float = 5.0) -> dict:
    while socket_.poll(0):  # drop old heartbeats
        socket_.recv_multipart()
    return _status(socket_, daemon, timeout_s)


def run() -> dict:
    import importlib.util

    if importlib.util.find_spec("aiohttp") is None:
        return {"monitor_bench": "skipped: stream-monitor needs aiohttp (pip install -e '.[monitor]')"}
    from stream.config import load_config
    from stream.tools.demo import write_demo_config

    seconds = float(os.environ.get("SIGNSTREAM_BENCH_MONITOR_S", DEFAULT_SECONDS))
    base = load_config(os.environ.get("SIGNSTREAM_BENCH_CONFIG"))
    context = zmq.Context()
    context.setsockopt(zmq.LINGER, 0)
    started: list[subprocess.Popen] = []
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="signstream-monitor-bench-") as scratch:
        directory = Path(scratch)
        config_file = write_demo_config(base, directory, {"monitor": {"port": 0}})
        config = load_config(config_file)

        def start(module: str, **kwargs) -> subprocess.Popen:
            process = subprocess.Popen([sys.executable, "-m", module, "--config", str(config_file)],
                                       stdout=kwargs.get("stdout", subprocess.DEVNULL), stderr=subprocess.DEVNULL,
                                       start_new_session=True)
            started.append(process)
            return process

        def subscribe(endpoint: str, *topics: bytes) -> zmq.Socket:
            socket_ = context.socket(zmq.SUB)
            for topic in topics:
                socket_.setsockopt(zmq.SUBSCRIBE, topic)
            socket_.connect(endpoint)
            return socket_

        try:
            frames = subscribe(config.endpoints.frames, TOPIC_FRAME, TOPIC_STATUS)
            infer_status = subscribe(config.endpoints.predictions, TOPIC_STATUS)
            monitor_status = subscribe(config.monitor.status_endpoint, TOPIC_STATUS)
            start("stream.daemons.sink")
            monitor = start("stream.daemons.monitor", stdout=subprocess.PIPE)
            line = monitor.stdout.readline().decode()
            port = int(line.rsplit(":", 1)[1].strip("/\n"))
            start("stream.daemons.acquire")
            _status(frames, "stream-acquire", 60)
            for phase in PHASES:
                infer = start("stream.daemons.infer")
                _status(infer_status, "stream-infer", 60)
                readers = [PushReader(port) for _ in range(3)] if phase == "3_clients" else (
                    [PushReader(port, stall=True)] if phase == "stalled_client" else [])
                for reader in readers:
                    reader.start()
                time.sleep(2.0)  # infer's first frames and the browsers' snapshots are not the steady state
                dropped_before = _latest_status(monitor_status, "stream-monitor")["counters"]["updates_dropped"]
                while frames.poll(0):  # frames queued while infer started: not this phase's arrivals
                    frames.recv_multipart()
                arrivals = []
                cpu_before, wall_before = _cpu_seconds(monitor.pid), time.monotonic()
                deadline = wall_before + seconds
                while time.monotonic() < deadline:
                    if frames.poll(100):
                        parts = frames.recv_multipart()
                        if parts[0] == TOPIC_FRAME:
                            arrivals.append(time.monotonic())
                wall = time.monotonic() - wall_before
                cpu = _cpu_seconds(monitor.pid) - cpu_before
                counters = _latest_status(infer_status, "stream-infer")["counters"]
                monitor_counters = _latest_status(monitor_status, "stream-monitor")["counters"]
                intervals = np.diff(arrivals) * 1000 if len(arrivals) > 1 else np.array([np.nan])
                figures[f"monitor_{phase}"] = {
                    "acquire_frames_per_s": round(len(arrivals) / wall, 2),
                    "frame_interval_ms_p99": round(float(np.percentile(intervals, 99)), 2),
                    "infer_frame_processing_ms_p50": round(counters["frame_processing_ms_p50"], 3),
                    "infer_frame_processing_ms_p99": round(counters["frame_processing_ms_p99"], 3),
                    "infer_frame_delay_ms_p50": round(counters["frame_delay_ms_p50"], 3),
                    "infer_frame_delay_ms_p99": round(counters["frame_delay_ms_p99"], 3),
                    "monitor_cpu_fraction": round(cpu / wall, 4),
                    "monitor_rss_mb": round(_memory_mb(monitor.pid, "VmRSS"), 1),
                    "monitor_updates_dropped": monitor_counters["updates_dropped"] - dropped_before,
                    "clients_bytes_per_s": round(sum(reader.received for reader in readers) / wall / max(1, len(readers))),
                }
                for reader in readers:
                    reader.close()
                infer.terminate()
                infer.wait(timeout=10)
            figures["monitor_peak_rss_mb"] = round(_memory_mb(monitor.pid, "VmHWM"), 1)
            figures["monitor_phase_s"] = seconds
            figures["load_average_1min"] = round(os.getloadavg()[0], 2)
        finally:
            for process in started:
                if process.poll() is None:
                    process.terminate()
            for process in started:
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
            context.destroy(linger=0)
    return figures


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=1))

"""Helpers shared by the daemon tests: config files with random endpoints, status readers."""

from __future__ import annotations

import time
from pathlib import Path

import msgpack
import zmq

from conftest import REPO_ROOT, free_endpoint


def write_config(directory: Path, extra: str = "", **endpoints: str) -> tuple[Path, dict]:
    """A config file with fresh loopback endpoints (any given ones kept); returns (path, endpoints)."""
    chosen = {name: endpoints.get(name) or free_endpoint() for name in ("frames", "predictions", "events")}
    card = REPO_ROOT / "models" / "student" / "model_card.json"
    text = (
        "[endpoints]\n" + "".join(f'{name} = "{value}"\n' for name, value in chosen.items())
        + "heartbeat_interval_s = 0.2\n"
        + f'[model]\ncard = "{card}"\n'
        + "[logging]\nlevel = \"INFO\"\nstatus_interval_s = 1.0\n"
        + extra
    )
    path = directory / f"config-{len(list(directory.glob('config-*.toml')))}.toml"
    path.write_text(text)
    return path, chosen


def subscriber(context: zmq.Context, endpoint: str, *topics: bytes) -> zmq.Socket:
    socket = context.socket(zmq.SUB)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.RECONNECT_IVL, 20)
    for topic in topics:
        socket.setsockopt(zmq.SUBSCRIBE, topic)
    socket.connect(endpoint)
    return socket


def receive_until(socket: zmq.Socket, predicate, timeout_s: float = 10.0) -> list[list[bytes]]:
    """Receive messages until ``predicate(parts)`` is true; returns everything received. Fails on timeout."""
    import pytest

    received = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if socket.poll(50, zmq.POLLIN):
            parts = socket.recv_multipart()
            received.append(parts)
            if predicate(parts):
                return received
    pytest.fail(f"condition not met within {timeout_s} s; got {len(received)} messages, topics "
                f"{sorted({bytes(parts[0]) for parts in received})}")


def status_of(parts: list[bytes]) -> dict | None:
    if parts[0] != b"status":
        return None
    return msgpack.unpackb(parts[1])


def wait_for_status(socket: zmq.Socket, condition, timeout_s: float = 10.0) -> dict:
    """The first status message for which ``condition(status)`` holds."""
    found = {}

    def predicate(parts):
        status = status_of(parts)
        if status is not None and condition(status):
            found["status"] = status
            return True
        return False

    receive_until(socket, predicate, timeout_s)
    return found["status"]


def stop_and_time(process, timeout_s: float = 5.0) -> float:
    """SIGTERM the process; returns how long it took to exit (fails if it does not)."""
    import signal

    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=timeout_s)
    return time.monotonic() - started

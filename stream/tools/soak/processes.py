"""The soak's daemons as processes: fresh loopback endpoints, the config and the replayed session
they run on, starting each one (its output in a log of its own), waiting for them, stopping them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from stream.config import load_config


def free_endpoint() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def write_session(path: Path, seed: int) -> Path:
    from stream.recording import write_recording
    from stream.synth.session import session_recording
    from stream.synth.signer import make_signer

    return write_recording(path, session_recording(seed, make_signer(seed, 0), 0))


def write_config(work: Path, recording: Path, card: Path, speed: float, threshold: float | None) -> tuple[Path, dict]:
    endpoints = {name: free_endpoint() for name in ("frames", "predictions", "events")}
    text = ("[endpoints]\n" + "".join(f'{name} = "{value}"\n' for name, value in endpoints.items())
            + "heartbeat_interval_s = 1.0\n"
            + f'[model]\ncard = "{card}"\n'
            + f'[acquire]\nsource = "replay"\n[acquire.replay]\npath = "{recording}"\nspeed = {float(speed)}\nloop = true\n'
            + f'[record]\nout_dir = "{work / "recordings"}"\n'
            + "[logging]\nstatus_interval_s = 60.0\n"
            + (f"[sink]\nconfidence_threshold = {float(threshold)}\n" if threshold is not None else ""))
    path = work / "soak.toml"
    path.write_text(text)
    load_config(path)  # refuse a bad card path or speed now, with the config loader's message
    return path, endpoints


def start_daemon(name: str, config: Path, work: Path) -> subprocess.Popen:
    arguments = [sys.executable, "-m", f"stream.daemons.{name}", "--config", str(config)]
    if name == "record":
        arguments += ["--out", str(work / "recordings" / "soak.h5")]
    log = open(work / f"{name}.log", "ab")
    try:
        return subprocess.Popen(arguments, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    finally:
        log.close()


def wait_for(predicate, timeout_s: float, what: str, processes: dict, work: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name, process in processes.items():
            if process.poll() is not None:  # a daemon that cannot start says why in its last log line
                lines = (work / f"{name}.log").read_text(errors="replace").strip().splitlines() or ["(no output)"]
                raise RuntimeError(f"stream-{name} exited with status {process.returncode}: {lines[-1]}")
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} not within {timeout_s} s")


def stop_all(processes: dict[str, subprocess.Popen], pump) -> dict:
    """acquire first; the others once what it published has drained through them."""
    exits = {}
    for name in ("acquire", "record", "infer", "sink"):
        process = processes[name]
        began = time.monotonic()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        while process.poll() is None and time.monotonic() - began < 10:
            pump(50)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
        exits[name] = {"status": process.returncode, "seconds": round(time.monotonic() - began, 2)}
        if name == "acquire":
            drain_until = time.monotonic() + 3.0
            while time.monotonic() < drain_until:
                pump(50)
    return exits

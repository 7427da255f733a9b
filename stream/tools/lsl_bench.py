"""stream-lsl benchmark (part of ``python -m stream.tools.bench``): the latency the LSL bridge adds.

stream-lsl runs as a real process on random loopback ports; this process publishes frames of the
default layout on its frames socket as stream-acquire would (real time, one per 13.5 ms,
``SIGNSTREAM_BENCH_LSL_FRAMES``, default 600 = 8.1 s), each frame's samples carrying its sequence
number, and reads them back twice: with a ZeroMQ subscriber of its own (the hop every subscriber
pays) and with a pylsl inlet on stream-lsl's sEMG outlet (``pull_sample`` on a thread). Measured, on
``pylsl.local_clock()`` in this process:

- ``lsl_bridge_latency_ms_p50/p99``: from a frame's publication to its last sEMG sample available on
  the LSL inlet: the ZeroMQ hop, decoding, the clock map and the LSL push and transport;
- ``lsl_zmq_hop_latency_ms_p50/p99``: the same frames to the ZeroMQ subscriber alone, side by side;
  the difference is what the bridge adds beyond the hop;
- ``lsl_frames_measured`` (frames seen by both), ``lsl_host_load_1min``.

Without pylsl/liblsl the figures are absent and ``lsl_skipped`` says why.
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

from stream.config import Config
from stream.lsl.library import unavailable_reason
from stream.wire.frames import silent_frame
from stream.wire.protocol import FrameEncoder, FrameSpec, decode_status


def _free_endpoint() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def _percentiles(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def run() -> dict:
    reason = unavailable_reason()
    if reason is not None:
        return {"lsl_skipped": reason}
    from stream.lsl.library import load_pylsl

    pylsl = load_pylsl()
    frames_total = int(os.environ.get("SIGNSTREAM_BENCH_LSL_FRAMES", "600"))
    prefix = f"bench-{os.getpid()}-{int(time.time())}"
    endpoints = {name: _free_endpoint() for name in ("frames", "predictions", "events", "status")}
    config = Config()
    encoder = FrameEncoder(FrameSpec.from_config(config))
    context = zmq.Context()
    context.setsockopt(zmq.LINGER, 0)
    publisher = context.socket(zmq.PUB)
    publisher.bind(endpoints["frames"])
    direct = context.socket(zmq.SUB)
    direct.setsockopt(zmq.SUBSCRIBE, b"frame")
    direct.connect(endpoints["frames"])
    status = context.socket(zmq.SUB)
    status.setsockopt(zmq.SUBSCRIBE, b"status")
    status.connect(endpoints["status"])
    with tempfile.TemporaryDirectory(prefix="lsl-bench-") as directory:
        path = Path(directory) / "config.toml"
        path.write_text(f'[endpoints]\nframes = "{endpoints["frames"]}"\npredictions = "{endpoints["predictions"]}"\n'
                        f'events = "{endpoints["events"]}"\n[lsl]\nstream_prefix = "{prefix}"\n'
                        f'source_id = "{prefix}"\nstatus_endpoint = "{endpoints["status"]}"\n')
        daemon = subprocess.Popen([sys.executable, "-m", "stream.daemons.lsl", "--config", str(path)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not status.poll(100):
                if daemon.poll() is not None:
                    raise RuntimeError(f"stream-lsl exited with {daemon.returncode} at start")
            decode_status(status.recv_multipart())
            found = pylsl.resolve_byprop("name", f"{prefix}-emg", 1, 10.0)
            if not found:
                raise RuntimeError(f"stream-lsl's outlet {prefix}-emg not found within 10 s")
            inlet = pylsl.StreamInlet(found[0], max_buflen=60)
            inlet.open_stream(10.0)
            arrived: dict[int, float] = {}
            stop = threading.Event()

            def pull() -> None:
                while not stop.is_set():
                    sample, _ = inlet.pull_sample(timeout=0.2)
                    if sample is not None and int(round(sample[1])) == 14:  # a frame's last sEMG row
                        arrived[int(round(sample[0]))] = pylsl.local_clock()

            direct_arrived: dict[int, float] = {}

            def receive() -> None:  # the direct subscriber, on its own thread as the inlet is
                while not stop.is_set():
                    if direct.poll(200):
                        parts = direct.recv_multipart()
                        direct_arrived[int(np.frombuffer(parts[2], "<f4", 1)[0])] = pylsl.local_clock()

            puller = threading.Thread(target=pull, daemon=True)
            receiver = threading.Thread(target=receive, daemon=True)
            puller.start()
            receiver.start()
            time.sleep(1.0)  # stream-lsl's subscriber is connected (slow joiner)
            publisher.send_multipart(encoder.encode_description())
            sent = {}
            frame = silent_frame(config.layout, 0)
            frame.emg[:, 1] = np.arange(frame.emg.shape[0])
            started = time.monotonic()
            for number in range(frames_total):
                time.sleep(max(0.0, started + (number + 1) * float(config.layout.frame_period_s) - time.monotonic()))
                frame.sequence, frame.emg_first_index, frame.imu_first_index = number, 15 * number, 2 * number
                frame.emg[:, 0] = number
                message = encoder.encode(frame)
                sent[number] = pylsl.local_clock()
                publisher.send_multipart(message)
            time.sleep(0.5)
            stop.set()
            puller.join(timeout=2)
            receiver.join(timeout=2)
        finally:
            daemon.terminate()
            try:
                daemon.wait(timeout=5)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(timeout=5)
            context.destroy(linger=0)
    both = sorted(set(arrived) & set(direct_arrived))
    if len(both) < frames_total // 2:
        raise RuntimeError(f"only {len(both)} of {frames_total} frames came back through LSL and ZeroMQ")
    bridge = [1000 * (arrived[number] - sent[number]) for number in both]
    hop = [1000 * (direct_arrived[number] - sent[number]) for number in both]
    bridge_p50, bridge_p99 = _percentiles(bridge)
    hop_p50, hop_p99 = _percentiles(hop)
    return {"lsl_bridge_latency_ms_p50": round(bridge_p50, 3), "lsl_bridge_latency_ms_p99": round(bridge_p99, 3),
            "lsl_zmq_hop_latency_ms_p50": round(hop_p50, 3), "lsl_zmq_hop_latency_ms_p99": round(hop_p99, 3),
            "lsl_frames_measured": len(both), "lsl_host_load_1min": round(os.getloadavg()[0], 2)}


if __name__ == "__main__":
    import json

    json.dump(run(), sys.stdout)
    sys.stdout.write("\n")

"""Pipeline benchmark (part of ``python -m stream.tools.bench``): the three daemons as real processes.

The shipped config and model are used (``SIGNSTREAM_BENCH_CONFIG`` names another config file).

- ``infer_startup_s``: stream-infer from process start to its first status message (model loaded,
  sockets up), with a warm numba cache (a first start warms it and is not counted);
- at real-time rate on the simulated signer for ``SIGNSTREAM_BENCH_PIPELINE_S`` seconds (default 30):
  - ``e2e_latency_ms_p50/p99``: from stream-acquire publishing the frame that completed a sign's
    window to the sign event arriving at a subscriber (every segmented sign becomes an event here:
    confidence threshold 0, so the path is exercised once per sign), and its breakdown
    ``e2e_ipc_ms_*`` (three hops), ``e2e_dsp_ms_*`` (that frame's processing in stream-infer, without
    the model) and ``e2e_inference_ms_*``; ``ipc_dsp_inference_ms_p99`` is their sum per event;
  - per frame (thousands of samples, from stream-infer's status): ``frame_ipc_ms_p99`` (publication to
    receipt) and ``frame_dsp_ms_p99`` (processing);
  - ``pipeline_cpu_fraction``: CPU seconds of the three daemons per wall second (1.0 = one core),
    and each daemon's (``infer_cpu_fraction``, ...);
  - ``infer_rss_mb`` (resident now), ``infer_peak_rss_mb``, ``acquire_rss_mb``, ``sink_rss_mb`` and
    ``pipeline_rss_mb`` (the three together);
- the same with stream-pipeline (the three as threads of one process, inproc between them), run
  after the daemons for as long: ``pipeline_single_process_cpu_fraction``,
  ``pipeline_single_process_rss_mb`` (and ``_peak_rss_mb``), ``single_process_e2e_latency_ms_p50/p99``
  and ``single_process_e2e_events``;
- ``host_inference_hot_ms`` / ``host_inference_after_1s_idle_ms``: one model invoke in this process,
  back to back and after sleeping 1 s. They agree on a quiet computer; where they do not, the host
  makes memory left untouched for a while slow to touch again, and every figure above that follows
  a pause (each sign's classification, each frame's processing) pays it (docs/PERFORMANCE.md).
- ``host_ipc_hot_ms_p50/p99`` / ``host_ipc_paced_ms_p50/p99``: the IPC anchor, nothing of ours on the
  path: a frame-sized message through two ZeroMQ hops (tcp, a relay process between) and back to this
  process, sent back to back, then once per 13.5 ms frame period as the pipeline sends. On a quiet
  computer the two agree; where paced is far above hot, the host wakes idle processes slowly and the
  e2e IPC figures above measure that.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zmq

from stream.wire.protocol import TOPIC_EVENT, TOPIC_STATUS, decode_map_message
from stream.wire.rates import FRAME_PERIOD_S

DEFAULT_SECONDS = 30.0
WARMUP_S = 3.0
ANCHOR_MESSAGES = 300  # each way of sending; paced, 4 s
ANCHOR_PAYLOAD_BYTES = 600  # about one sEMG frame message (15 x 6 float32 and its header)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _memory_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _percentiles(values: list[float], prefix: str) -> dict:
    if not values:
        return {f"{prefix}_p50": None, f"{prefix}_p99": None}
    array = np.asarray(values)
    return {f"{prefix}_p50": round(float(np.percentile(array, 50)), 3),
            f"{prefix}_p99": round(float(np.percentile(array, 99)), 3)}


class _Pipeline:
    def __init__(self, directory: Path, config_path: Path):
        self.directory = directory
        self.config_path = config_path
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str) -> subprocess.Popen:
        log = open(self.directory / f"{name}.log", "ab")
        process = subprocess.Popen([sys.executable, "-m", f"stream.daemons.{name}", "--config", str(self.config_path)],
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        self.processes[name] = process
        return process

    def stop(self, name: str) -> None:
        process = self.processes.pop(name)
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)


def _wait_status(socket: zmq.Socket, daemon: str, timeout_s: float, pid: int | None = None) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if socket.poll(5, zmq.POLLIN):
            topic, message = decode_map_message(socket.recv_multipart())
            if topic == TOPIC_STATUS and message["daemon"] == daemon and pid in (None, message["pid"]):
                return message
    raise TimeoutError(f"no status from {daemon} within {timeout_s} s")


def _events(events: zmq.Socket, seconds: float) -> tuple[list, list, list, list]:
    """For ``seconds``: per sign event, the end-to-end latency and its IPC, DSP and model parts (ms)."""
    e2e, ipc, dsp, inference = [], [], [], []
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if not events.poll(100, zmq.POLLIN):
            continue
        parts = events.recv_multipart()
        received = time.time()
        _, event = decode_map_message(parts)
        timing = event.get("timing", {})
        if "frame_published_wall" not in timing:
            continue
        hops = ((timing["frame_received_wall"] - timing["frame_published_wall"])
                + (timing["prediction_received_wall"] - timing["prediction_published_wall"])
                + (received - event["t_wall"]))
        e2e.append((received - timing["frame_published_wall"]) * 1000)
        ipc.append(hops * 1000)
        dsp.append(timing["dsp_ms"])
        inference.append(timing["inference_ms"])
    return e2e, ipc, dsp, inference


def run() -> dict:
    from stream.config import load_config
    from stream.tools.demo import write_demo_config

    seconds = float(os.environ.get("SIGNSTREAM_BENCH_PIPELINE_S", DEFAULT_SECONDS))
    base = load_config(os.environ.get("SIGNSTREAM_BENCH_CONFIG"))  # default: the shipped config and model
    if not base.resolve_path(base.model.card).exists():
        return {"pipeline_error": f"no model card at {base.resolve_path(base.model.card)}"}
    context = zmq.Context()
    context.setsockopt(zmq.LINGER, 0)
    with tempfile.TemporaryDirectory(prefix="signstream-bench-") as scratch:
        directory = Path(scratch)
        # Every segmented sign becomes an event: the measured path once per sign, whatever the model says.
        config_path = write_demo_config(base, directory, {"sink": {"confidence_threshold": 0.0}})
        config = load_config(config_path)
        pipeline = _Pipeline(directory, config_path)
        predictions = context.socket(zmq.SUB)
        predictions.setsockopt(zmq.RECONNECT_IVL, 10)
        predictions.setsockopt(zmq.SUBSCRIBE, TOPIC_STATUS)
        predictions.connect(config.endpoints.predictions)
        events = context.socket(zmq.SUB)
        events.setsockopt(zmq.SUBSCRIBE, TOPIC_EVENT)
        events.connect(config.endpoints.events)
        figures: dict = {}
        try:
            # Start-up: the first start warms the numba cache; the second is measured.
            pipeline.start("infer")
            _wait_status(predictions, "stream-infer", 120)
            pipeline.stop("infer")
            started = time.monotonic()
            process = pipeline.start("infer")
            _wait_status(predictions, "stream-infer", 60, pid=process.pid)
            figures["infer_startup_s"] = round(time.monotonic() - started, 3)

            pipeline.start("sink")
            time.sleep(1.0)
            pipeline.start("acquire")
            time.sleep(WARMUP_S)
            pids = {name: process.pid for name, process in pipeline.processes.items()}
            cpu_before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
            wall_before = time.monotonic()
            e2e, ipc, dsp, inference = _events(events, seconds)
            wall = time.monotonic() - wall_before
            cpu = {name: _cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
            for name, pid in pids.items():
                figures[f"{name}_rss_mb"] = round(_memory_mb(pid, "VmRSS"), 1)
            figures["infer_peak_rss_mb"] = round(_memory_mb(pids["infer"], "VmHWM"), 1)
            figures["pipeline_rss_mb"] = round(sum(figures[f"{name}_rss_mb"] for name in pids), 1)
            while predictions.poll(0, zmq.POLLIN):  # older heartbeats: keep only what comes next
                predictions.recv_multipart()
            status = _wait_status(predictions, "stream-infer", 5)
            pipeline.stop_all()

            # The same, as one process.
            single = pipeline.start("pipeline")
            _wait_status(predictions, "stream-infer", 60, pid=single.pid)
            time.sleep(WARMUP_S + 1.0)
            cpu_before_single, wall_before = _cpu_seconds(single.pid), time.monotonic()
            single_e2e = _events(events, seconds)[0]
            single_wall = time.monotonic() - wall_before
            figures["pipeline_single_process_cpu_fraction"] = round((_cpu_seconds(single.pid) - cpu_before_single) / single_wall, 4)
            figures["pipeline_single_process_rss_mb"] = round(_memory_mb(single.pid, "VmRSS"), 1)
            figures["pipeline_single_process_peak_rss_mb"] = round(_memory_mb(single.pid, "VmHWM"), 1)
            figures.update(_percentiles(single_e2e, "single_process_e2e_latency_ms"))
            figures["single_process_e2e_events"] = len(single_e2e)
        finally:
            pipeline.stop_all()
            predictions.close()
            events.close()
            context.term()
    figures.update(_percentiles(e2e, "e2e_latency_ms"))
    figures.update(_percentiles(ipc, "e2e_ipc_ms"))
    figures.update(_percentiles(dsp, "e2e_dsp_ms"))
    figures.update(_percentiles(inference, "e2e_inference_ms"))
    combined = [a + b + c for a, b, c in zip(ipc, dsp, inference)]
    figures["ipc_dsp_inference_ms_p99"] = _percentiles(combined, "x")["x_p99"]
    figures["e2e_events"] = len(e2e)
    counters = status["counters"]
    figures["frame_ipc_ms_p99"] = round(counters.get("frame_delay_ms_p99", float("nan")), 3)
    figures["frame_dsp_ms_p99"] = round(counters.get("frame_processing_ms_p99", float("nan")), 3)
    figures["pipeline_cpu_fraction"] = round(sum(cpu.values()) / wall, 4)
    figures.update({f"{name}_cpu_fraction": round(value / wall, 4) for name, value in cpu.items()})
    figures["pipeline_bench_s"] = round(wall, 1)
    figures.update(_idle_penalty(base))
    figures.update(_ipc_anchor())
    # Other work on the host inflates every figure above (scheduling delays, cold caches): say how much.
    figures["host_load_average_1min"] = round(os.getloadavg()[0], 2)
    figures["host_cpus"] = os.cpu_count()
    return figures


def _idle_penalty(config) -> dict:
    from stream.stages.classifier import Classifier

    model = Classifier.from_config(config).model
    inputs = {name: np.zeros(tuple(detail["shape"][1:]), dtype=np.float32) for name, detail in model.inputs.items()}

    def timed_ms() -> float:
        started = time.perf_counter()
        model.run(inputs)
        return (time.perf_counter() - started) * 1000

    for _ in range(5):
        timed_ms()
    hot = [timed_ms() for _ in range(20)]
    after_idle = []
    for _ in range(3):
        time.sleep(1.0)
        after_idle.append(timed_ms())
    return {"host_inference_hot_ms": round(float(np.median(hot)), 3),
            "host_inference_after_1s_idle_ms": round(float(np.median(after_idle)), 3)}


def relay(source: str, destination: str) -> None:
    """The anchor's middle process: every message from ``source`` (SUB) on to ``destination`` (PUB),
    until terminated."""
    context = zmq.Context()
    context.setsockopt(zmq.LINGER, 0)
    inbound = context.socket(zmq.SUB)
    inbound.setsockopt(zmq.SUBSCRIBE, b"")
    inbound.connect(source)
    outbound = context.socket(zmq.PUB)
    outbound.connect(destination)
    while True:
        outbound.send_multipart(inbound.recv_multipart())


def _ipc_anchor(messages: int = ANCHOR_MESSAGES, timeout_s: float = 30.0) -> dict:
    context = zmq.Context()
    context.setsockopt(zmq.LINGER, 0)
    outbound = context.socket(zmq.PUB)
    inbound = context.socket(zmq.SUB)
    inbound.setsockopt(zmq.SUBSCRIBE, b"")
    out_port = outbound.bind_to_random_port("tcp://127.0.0.1")
    in_port = inbound.bind_to_random_port("tcp://127.0.0.1")
    process = subprocess.Popen([sys.executable, "-m", "stream.tools.pipeline_bench", "relay", f"tcp://127.0.0.1:{out_port}",
                                f"tcp://127.0.0.1:{in_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    payload = bytes(ANCHOR_PAYLOAD_BYTES)
    try:
        deadline = time.monotonic() + timeout_s
        while not (outbound.send(payload) or inbound.poll(100, zmq.POLLIN)):  # PUB drops until the relay is joined
            if time.monotonic() > deadline or process.poll() is not None:
                return {"host_ipc_error": f"the relay process did not forward within {timeout_s} s"}
        while inbound.poll(200, zmq.POLLIN):
            inbound.recv()

        def trip_ms() -> float:
            started = time.perf_counter()
            outbound.send(payload)
            if not inbound.poll(int(timeout_s * 1000), zmq.POLLIN):
                raise TimeoutError(f"a message did not come back through the relay within {timeout_s} s")
            inbound.recv()
            return (time.perf_counter() - started) * 1000

        hot = [trip_ms() for _ in range(messages)]
        paced = []
        for _ in range(messages):
            time.sleep(float(FRAME_PERIOD_S))
            paced.append(trip_ms())
    finally:
        process.terminate()
        process.wait(timeout=5)
        outbound.close()
        inbound.close()
        context.term()
    return {**_percentiles(hot, "host_ipc_hot_ms"), **_percentiles(paced, "host_ipc_paced_ms")}


if __name__ == "__main__":
    import json

    if sys.argv[1:2] == ["relay"]:
        relay(*sys.argv[2:4])
    else:
        print(json.dumps(run()))

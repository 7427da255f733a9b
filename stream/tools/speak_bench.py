"""stream-speak benchmark (part of ``python -m stream.tools.bench``): the daemon as a real process.

stream-speak runs with ``--wav-dir`` (no audio device needed) on random loopback ports; this process
publishes sign events on its events socket as stream-sink would, ``SIGNSTREAM_BENCH_SPEAK_EVENTS``
(default 40) paced 0.25 s apart (a phrase is done before the next sign, so nothing queues), then a
burst of 20 at once. Measured, from the ``utterances.jsonl`` stream-speak writes:

- ``speak_audio_start_ms_p50/p95``: from an event's publication (its ``t_wall``, taken just before
  the send) to the start of its audio, which for WAV output is the moment espeak-ng's first samples
  arrived in stream-speak (``Audio.first_audio_wall``): receipt, queueing, starting espeak-ng and
  synthesising the first chunk. Playing through a device adds starting the player (``aplay``) and
  the device's own buffer, not measured here;
- ``speak_synthesis_first_audio_ms_p50``: the part of it from starting espeak-ng to its first samples;
- ``speak_wav_write_ms_p50``: writing the finished WAV and its index line (after the audio start);
- ``speak_burst_utterances``, ``speak_burst_signs_spoken``, ``speak_burst_queue_dropped``: the burst
  said as few joined phrases, the oldest signs beyond ``[speak] max_queue`` dropped;
- ``speak_cpu_s_per_sign`` and ``speak_rss_mb``; ``speak_host_load_1min`` (the figures are only as
  quiet as the host).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zmq

from stream.wire.protocol import TOPIC_STATUS, decode_status, encode_event

PACED_INTERVAL_S = 0.25
BURST = 20
LABELS = ("hello", "thank_you", "water", "home", "friend", "doctor", "tomorrow", "beautiful")


def _free_endpoint() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def _event(seq: int, label: str) -> dict:
    return {"seq": seq, "session": "speak-bench", "t_wall": time.time(), "label": label, "class_index": 0,
            "confidence": 0.9, "model_id": "bench", "start_index": 74 * seq, "end_index": 74 * seq + 60,
            "rate": "2000/27", "start_time_s": float(seq), "end_time_s": seq + 0.8, "start_wall": 0.0,
            "end_wall": 0.0, "source_session": "bench", "prediction_seq": seq, "timing": {}}


def _wait_status(socket_: zmq.Socket, condition, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if socket_.poll(100, zmq.POLLIN):
            parts = socket_.recv_multipart()
            if parts[0] == TOPIC_STATUS:
                status = decode_status(parts)
                if status["daemon"] == "stream-speak" and condition(status["counters"]):
                    return status
    raise RuntimeError(f"stream-speak did not reach the expected state within {timeout_s} s")


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.asarray(values), q)), 2) if values else None


def run() -> dict:
    if shutil.which("espeak-ng") is None:
        return {"speak_skipped": "espeak-ng not installed (apt-get install espeak-ng)"}
    events_count = int(os.environ.get("SIGNSTREAM_BENCH_SPEAK_EVENTS", "40"))
    with tempfile.TemporaryDirectory(prefix="signstream-speak-bench-") as directory:
        directory = Path(directory)
        events, status_endpoint = _free_endpoint(), _free_endpoint()
        config = directory / "speak.toml"
        config.write_text(f'[endpoints]\nevents = "{events}"\nheartbeat_interval_s = 0.2\n'
                          f'[speak]\nstatus_endpoint = "{status_endpoint}"\n[logging]\nlevel = "WARNING"\n')
        wav_dir = directory / "speech"
        context = zmq.Context()
        context.setsockopt(zmq.LINGER, 0)
        publisher = context.socket(zmq.PUB)
        publisher.bind(events)
        status = context.socket(zmq.SUB)
        status.setsockopt(zmq.SUBSCRIBE, TOPIC_STATUS)
        status.connect(status_endpoint)
        process = subprocess.Popen([sys.executable, "-m", "stream.daemons.speak", "--config", str(config),
                                    "--wav-dir", str(wav_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        try:
            _wait_status(status, lambda counters: True, 30)
            time.sleep(0.5)  # the subscription reaches our PUB socket
            cpu_before = _cpu_seconds(process.pid)
            for seq in range(events_count):
                publisher.send_multipart(encode_event(_event(seq, LABELS[seq % len(LABELS)])))
                time.sleep(PACED_INTERVAL_S)
            _wait_status(status, lambda counters: counters["signs_spoken"] >= events_count, 30)
            cpu_per_sign = (_cpu_seconds(process.pid) - cpu_before) / max(events_count, 1)
            paced = [json.loads(line) for line in (wav_dir / "utterances.jsonl").read_text().splitlines()]
            for seq in range(events_count, events_count + BURST):
                publisher.send_multipart(encode_event(_event(seq, LABELS[seq % len(LABELS)])))
            final = _wait_status(status, lambda counters: counters["signs_spoken"] + counters["queue_dropped"]
                                 >= events_count + BURST and counters["queue_length"] == 0, 30)["counters"]
            rss_mb = _rss_mb(process.pid)
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            context.destroy(linger=0)
        latencies, first_audio = [], []
        for line in paced:
            first_audio.append((line["audio_start_wall"] - line["synthesis_started_wall"]) * 1000)
            latencies.extend((line["audio_start_wall"] - published) * 1000 for published in line["published_wall"])
        write_ms = [(path.stat().st_mtime - entry["audio_start_wall"]) * 1000
                    for entry in paced if (path := wav_dir / entry["file"]).exists()]
    return {
        "speak_events": events_count,
        "speak_utterances_paced": len(paced),
        "speak_audio_start_ms_p50": _percentile(latencies, 50),
        "speak_audio_start_ms_p95": _percentile(latencies, 95),
        "speak_synthesis_first_audio_ms_p50": _percentile(first_audio, 50),
        "speak_wav_write_ms_p50": _percentile(write_ms, 50),
        "speak_burst_utterances": final["utterances"] - len(paced),
        "speak_burst_signs_spoken": final["signs_spoken"] - events_count,
        "speak_burst_queue_dropped": final["queue_dropped"],
        "speak_cpu_s_per_sign": round(cpu_per_sign, 4),
        "speak_rss_mb": round(rss_mb, 1),
        "speak_host_load_1min": round(os.getloadavg()[0], 2),
    }


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime + stime, and the same of its finished children (each espeak-ng it ran and waited for).
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")

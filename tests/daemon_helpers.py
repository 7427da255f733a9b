"""Helpers shared by the daemon tests: config files with random endpoints, status readers."""

from __future__ import annotations

import time
from pathlib import Path

import msgpack
import zmq

from conftest import REPO_ROOT, free_endpoint


def write_config(directory: Path, extra: str = "", card: Path | None = None, **endpoints: str) -> tuple[Path, dict]:
    """A config file with fresh loopback endpoints (any given ones kept); returns (path, endpoints)."""
    chosen = {name: endpoints.get(name) or free_endpoint() for name in ("frames", "predictions", "events")}
    card = card or REPO_ROOT / "models" / "student" / "model_card.json"
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


def drain(socket: zmq.Socket) -> int:
    """Drop every message already queued (old heartbeats); returns how many."""
    dropped = 0
    while True:
        try:
            socket.recv_multipart(zmq.NOBLOCK)
            dropped += 1
        except zmq.Again:
            return dropped


def wait_for_status(socket: zmq.Socket, condition, timeout_s: float = 10.0, fresh: bool = False) -> dict:
    """The first status message for which ``condition(status)`` holds (``fresh``: sent from now on)."""
    if fresh:
        drain(socket)
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


_TINY_MODEL_CACHE: dict[str, Path] = {}


def tiny_model_card(directory: Path, labels: tuple[str, ...] = ("hello", "thanks", "water", "home"),
                    config=None, features: bool = False) -> Path:
    """A real (tiny, untrained but deterministic) TFLite model with its card, for daemon tests.

    Built with tf_keras and converted with tf.lite like the shipped student, with the inputs named
    as the runtime expects (one per modality of ``config``'s layout, default Trigno's) and that
    config's preprocessing hash. Built once per run and configuration. ``features``: a second output
    named ``features`` (the layer before the head), as the shipped student has for adaptation.
    """
    from stream.config import Config
    from stream.dsp.preprocess import preprocessing_hash, preprocessing_spec
    from stream.dsp.windows import window_length_samples
    from stream.wire.rates import rate_to_string

    config = config or Config()
    key = ",".join(labels) + ":" + preprocessing_hash(config) + (":features" if features else "")
    if key in _TINY_MODEL_CACHE:
        return _TINY_MODEL_CACHE[key]
    import hashlib
    import json
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    import tf_keras as keras

    window = window_length_samples(config)
    channels = {name: config.layout.channel_count(name) for name in config.layout.modalities}
    keras.utils.set_random_seed(0)
    inputs = {name: keras.Input(shape=(window, count), batch_size=1, name=name) for name, count in channels.items()}
    pooled = [keras.layers.GlobalAveragePooling1D()(keras.layers.Conv1D(2, 3, activation="sigmoid")(tensor))
              for tensor in inputs.values()]
    merged = keras.layers.Concatenate(name="features")(pooled) if len(pooled) > 1 else pooled[0]
    if features and len(pooled) == 1:
        merged = keras.layers.Activation("linear", name="features")(merged)
    outputs = keras.layers.Dense(len(labels), activation="softmax", name="probabilities")(merged)
    model = keras.Model(inputs=list(inputs.values()), outputs=[outputs, merged] if features else outputs)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    model_bytes = converter.convert()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tiny.tflite").write_bytes(model_bytes)
    digest = hashlib.sha256(model_bytes).hexdigest()
    card = {
        "schema_version": 1,
        "model_id": f"tiny-{digest[:12]}",
        "labels": list(labels),
        "input": {"modalities": list(channels),
                  "shapes": {name: [window, count] for name, count in channels.items()},
                  "dtype": "float32", "model_rate_hz": rate_to_string(config.preprocess.model_rate_hz),
                  "window_samples": window, "window_s": config.window.length_s, "batch_size": 1},
        "preprocessing": {"hash": preprocessing_hash(config), "spec": preprocessing_spec(config)},
        "files": {"dynamic_range": {"path": "tiny.tflite", "sha256": digest, "bytes": len(model_bytes)}},
    }
    if features:  # what an adaptation needs: made-up training statistics of every input channel
        card["input_statistics"] = {name: {"mean": [0.1] * count, "std": [0.05] * count} for name, count in channels.items()}
    path = directory / "model_card.json"
    path.write_text(json.dumps(card, indent=1))
    _TINY_MODEL_CACHE[key] = path
    return path


def synthetic_frames(duration_s: float, signs: list[tuple[float, float]], seed: int = 0, first_frame: int = 0):
    """Frames of a still arm at rest with muscle bursts and arm movement at the given (start_s, end_s).

    A test signal with physiological levels (sEMG in mV, acc in g, gyro in deg/s), simpler than the
    synthetic signer on purpose: the tests that use it check plumbing, not recognition.
    """
    import numpy as np

    from stream.wire.frames import Frame

    generator = np.random.default_rng(seed)
    frames = []
    for number in range(first_frame, first_frame + int(round(duration_s / 0.0135))):
        emg_time = (15 * number + np.arange(15)) * 0.0009
        imu_time = (2 * number + np.arange(2)) * 0.00675
        emg_amplitude = np.full(15, 0.004)
        gyro = generator.normal(0, 1.5, size=(2, 18))
        acc = np.tile([0.0, 0.0, 1.0], (2, 6)) + generator.normal(0, 0.003, size=(2, 18))
        for start, end in signs:
            emg_amplitude[(emg_time >= start) & (emg_time < end)] = 0.3
            inside = (imu_time >= start) & (imu_time < end)
            phase = np.sin(2 * np.pi * (imu_time[inside] - start) / (end - start))
            gyro[inside] += 80 * phase[:, None]
            acc[inside] += 0.3 * phase[:, None]
        emg = generator.normal(0, 1, size=(15, 6)) * emg_amplitude[:, None]
        frames.append(Frame(number, 15 * number, 2 * number, emg.astype(np.float32), acc.astype(np.float32),
                            gyro.astype(np.float32)))
    return frames


def layout_signals(layout, seconds: float, bursts: list[tuple[float, float]], seed: int = 0):
    """Rest with muscle bursts and arm movement at ``bursts`` (start_s, end_s), in any layout: (emg, acc,
    gyro) arrays, absent modalities with no columns."""
    import numpy as np

    generator = np.random.default_rng(seed)
    emg_times = np.arange(round(seconds * layout.emg_rate_hz)) / float(layout.emg_rate_hz)
    scale = 2.0 if layout.emg_unit == "counts" else 0.004
    amplitude = np.full(emg_times.shape, scale)
    imu_times = np.arange(round(seconds * layout.imu_rate_hz)) / float(layout.imu_rate_hz) if layout.has_imu else np.zeros(0)
    motion = np.zeros(imu_times.shape)
    for start, end in bursts:
        amplitude[(emg_times >= start) & (emg_times < end)] = 80 * scale
        motion[(imu_times >= start) & (imu_times < end)] = 120.0
    emg = (generator.standard_normal((emg_times.size, layout.channel_count("emg"))) * amplitude[:, None]).astype(np.float32)
    arrays = {}
    for name in ("acc", "gyro"):
        columns = layout.channel_count(name)
        rows = imu_times.size if columns else (imu_times.size if layout.has_imu else 0)
        base = np.tile([0.0, 0.0, 1.0], columns // 3) if name == "acc" else np.zeros(columns)
        noise = 0.003 if name == "acc" else 1.5
        values = base + generator.normal(0, noise, (rows, columns))
        if name == "gyro" and columns:
            values[:, 0::3] += motion[:, None]
        arrays[name] = values.astype(np.float32)
    return emg, arrays["acc"], arrays["gyro"]

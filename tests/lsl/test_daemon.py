"""stream-lsl and stream-acquire's LSL source as real processes through real sockets and real LSL on
loopback: our frames and events read by plain pylsl inlets, and LSL outlets feeding the whole
pipeline to sign events. Skipped, with the reason, where pylsl or liblsl cannot be loaded."""

from __future__ import annotations

import json
import time

import msgpack
import numpy as np
import pytest

from conftest import free_endpoint, wait_until
from stream.config import Config
from stream.wire.protocol import FrameEncoder, FrameSpec, decode_event, decode_frame, encode_event

from daemon_helpers import subscriber, synthetic_frames, tiny_model_card, wait_for_status, write_config
from lsl_helpers import LSL_CONFIG, inlet_for, lsl_source_toml, pull_samples, require_pylsl, unique_prefix

PYTHON_MODULE = "-m"
FRAME_S = 0.0135
LSL_ENV = {"LSLAPICFG": str(LSL_CONFIG)}


def lsl_status(socket, condition=lambda status: True, timeout_s: float = 15.0) -> dict:
    return wait_for_status(socket, lambda status: status["daemon"] == "stream-lsl" and condition(status), timeout_s)


def test_stream_lsl_republishes_frames_and_events_for_any_lsl_inlet(processes, zmq_context, tmp_path):
    pylsl = require_pylsl()
    prefix = unique_prefix()
    import zmq

    status_endpoint = free_endpoint()
    config, endpoints = write_config(tmp_path, f'[lsl]\nstream_prefix = "{prefix}"\nsource_id = "{prefix}"\n'
                                                f'status_endpoint = "{status_endpoint}"\n')
    frames_out = zmq_context.socket(zmq.PUB)
    frames_out.bind(endpoints["frames"])
    events_out = zmq_context.socket(zmq.PUB)
    events_out.bind(endpoints["events"])
    status = subscriber(zmq_context, status_endpoint, b"status")
    processes.start_python([PYTHON_MODULE, "stream.daemons.lsl", "--config", str(config)], env=LSL_ENV)
    first = lsl_status(status)
    assert first["counters"]["frames"] == 0 and first["counters"]["markers"] == 0
    assert first["info"]["streams"] == [f"{prefix}-{name}" for name in ("emg", "acc", "gyro", "markers")]
    inlets = {name: inlet_for(pylsl, f"{prefix}-{name}") for name in ("emg", "acc", "gyro", "markers")}
    lsl_status(status, lambda status: status["counters"]["consumers"] == 4, timeout_s=5.0)
    encoder = FrameEncoder(FrameSpec.from_config(Config()))
    frames = synthetic_frames(1.0, [(0.3, 0.6)])
    frames[3].acc[1, 4] = np.nan
    frames_out.send_multipart(encoder.encode_description())
    started = time.monotonic()
    for frame in frames:  # in real time, as stream-acquire does
        time.sleep(max(0.0, started + (frame.sequence + 1) * FRAME_S - time.monotonic()))
        frames_out.send_multipart(encoder.encode(frame))
    event = {"seq": 0, "session": "sink-1", "t_wall": time.time(), "label": "hello", "class_index": 0,
             "confidence": 0.8, "model_id": "tiny-1", "start_index": 22, "end_index": 44, "rate": "2000/27",
             "start_time_s": 22 * 0.0135, "end_time_s": 44 * 0.0135, "start_wall": 1e9, "end_wall": 1e9 + 0.3,
             "source_session": encoder.session, "prediction_seq": 0, "timing": {}}
    events_out.send_multipart(encode_event(event))
    stamps = {}
    for name, rows in (("emg", 15), ("acc", 2), ("gyro", 2)):
        values, stamps[name] = pull_samples(inlets[name], rows * len(frames))
        assert np.array_equal(values, np.concatenate([getattr(frame, name) for frame in frames]), equal_nan=True)
        assert np.all(np.diff(stamps[name]) > 0)
    # Both clocks of one frame on one map: the IMU sample at the time of a sEMG sample has its timestamp.
    assert stamps["acc"][20] == pytest.approx(stamps["emg"][150], abs=2e-4)
    markers, marker_stamps = pull_samples(inlets["markers"], 1, strings=True)
    marker = json.loads(markers[0][0])
    assert marker["label"] == "hello" and marker["clock"] == "frames" and marker_stamps[0] == pytest.approx(marker["end"])
    # The marker is on the frames' own sample clock: its start is the timestamp of the sEMG sample there.
    assert marker["start"] == pytest.approx(stamps["emg"][round(event["start_time_s"] * 10000 / 9)], abs=1e-3)
    assert marker["end"] - marker["start"] == pytest.approx(22 * 0.0135, abs=1e-9)
    last = lsl_status(status, lambda status: status["counters"]["markers"] == 1, timeout_s=5.0)
    assert last["counters"]["frames"] == len(frames) and last["counters"]["frame_gaps"] == 0
    assert last["counters"]["samples_pushed"] == 19 * len(frames) and last["counters"]["markers_wall_clock"] == 0


def test_an_lsl_outlet_feeds_stream_acquire_through_the_pipeline_to_sign_events(processes, zmq_context, tmp_path):
    pylsl = require_pylsl()
    prefix = unique_prefix()
    from stream.lsl.streams import outlet_info

    layout = Config().layout
    sending = {name: pylsl.StreamOutlet(outlet_info(pylsl, layout, name, prefix, prefix))
               for name in ("emg", "acc", "gyro")}
    config, endpoints = write_config(tmp_path, '[acquire]\nsource = "lsl"\n' + lsl_source_toml(prefix)
                                     + "[sink]\nconfidence_threshold = 0.0\n", card=tiny_model_card(tmp_path / "model"))
    frames_in = subscriber(zmq_context, endpoints["frames"], b"frame", b"status")
    predictions = subscriber(zmq_context, endpoints["predictions"], b"status")
    events = subscriber(zmq_context, endpoints["events"], b"event")
    for name in ("sink", "infer", "acquire"):
        processes.start_python([PYTHON_MODULE, f"stream.daemons.{name}", "--config", str(config)], env=LSL_ENV)
    wait_for_status(predictions, lambda status: status["daemon"] == "stream-infer" and status["state"] == "running", 60)
    # stream-acquire is reading once its inlets are on our outlets (it sends nothing before the first frame).
    wait_until(lambda: all(outlet.have_consumers() for outlet in sending.values()), 20, message="stream-acquire's inlets")
    frames = synthetic_frames(6.0, [(2.0, 2.8), (4.0, 4.8)])
    base = pylsl.local_clock()
    received, signs, sessions, acquire_status = [], [], set(), None
    for frame in frames:  # in real time, timestamps from the senders' sample clock
        due = base + (frame.sequence + 1) * FRAME_S
        time.sleep(max(0.0, due - pylsl.local_clock()))
        for name, outlet in sending.items():
            last_sample = due - (9 / 10000 if name == "emg" else 27 / 4000)  # one period before the frame's end
            outlet.push_chunk(np.ascontiguousarray(getattr(frame, name)), last_sample, True)
        while frames_in.poll(0):
            parts = frames_in.recv_multipart()
            if parts[0] == b"frame":
                header, frame = decode_frame(parts, FrameSpec.from_config(Config()))
                received.append(frame)
                sessions.add(header.session)
            elif parts[0] == b"status":
                acquire_status = msgpack.unpackb(parts[1])
        while events.poll(0):
            signs.append(decode_event(events.recv_multipart()))
    deadline = time.monotonic() + 10
    while not signs and time.monotonic() < deadline:
        if events.poll(100):
            signs.append(decode_event(events.recv_multipart()))
    assert signs, "no sign event from the pipeline fed by LSL within 10 s of the last sample"
    assert all(0.0 <= sign["start_time_s"] < sign["end_time_s"] <= 7.0 for sign in signs)
    assert {sign["source_session"] for sign in signs} == {sessions.pop()} and not sessions
    # stream-acquire's frames are the LSL samples, counted from its first one.
    assert len(received) > 300
    first = received[0].sequence
    for frame in received[:50]:
        assert np.array_equal(frame.emg, frames[frame.sequence].emg)
        assert frame.emg_first_index == 15 * frame.sequence and frame.sequence >= first
    assert acquire_status["info"]["source"] == "lsl" and acquire_status["counters"]["bad_messages"] == 0

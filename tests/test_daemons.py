"""The daemons as real processes on loopback with random ports: messages, bad input, gaps, restarts,
shutdown. Every receive has a timeout; the ``processes`` fixture kills whatever a test started."""

from __future__ import annotations

import json
import math
import time

import msgpack
import pytest
import zmq

from daemon_helpers import receive_until, stop_and_time, subscriber, wait_for_status, write_config
from stream.protocol import decode_event, encode_prediction

PYTHON_MODULE = "-m"


def prediction(seq, label="hello", start=1.0, end=1.8, confidence=0.9, session="infer-a"):
    probabilities = [0.0] * 4
    probabilities[1] = confidence
    return {"seq": seq, "session": session, "t_wall": time.time(), "model_id": "m", "class_index": 1,
            "label": label, "confidence": confidence, "probabilities": probabilities,
            "start_index": int(start * 74), "end_index": int(end * 74) + 1, "rate": "2000/27",
            "start_time_s": start, "end_time_s": end, "start_wall": 1e9 + start, "end_wall": 1e9 + end,
            "timing": {"frame_published_wall": time.time()}}


def test_sink_events_bad_messages_gaps_restart_and_sigterm(processes, zmq_context, tmp_path):
    log_path = tmp_path / "events.jsonl"
    config, endpoints = write_config(tmp_path, f'[sink]\njsonl_log = "{log_path}"\n')
    predictions = zmq_context.socket(zmq.PUB)
    predictions.bind(endpoints["predictions"])
    events = subscriber(zmq_context, endpoints["events"], b"event", b"status")
    sink = processes.start_python([PYTHON_MODULE, "stream.sink", "--config", str(config)])
    subscribe = processes.start_python([PYTHON_MODULE, "stream.subscribe", "--config", str(config),
                                        "--count", "2", "--timeout", "20"])
    wait_for_status(events, lambda status: status["daemon"] == "stream-sink")
    time.sleep(0.3)  # the sink's subscription reaches our PUB (slow joiner)

    bad_messages = [
        [b"prediction", b"\xc1\xff garbage"],
        [b"prediction", msgpack.packb({**prediction(0), "v": 99})],
        [b"prediction", msgpack.packb({**prediction(0), "v": 1, "confidence": math.nan})],
        [b"prediction"],
    ]
    for message in bad_messages:
        predictions.send_multipart(message)
    predictions.send_multipart(encode_prediction(prediction(0, start=1.0, end=1.8)))
    predictions.send_multipart(encode_prediction(prediction(1, start=1.85, end=2.0)))  # same sign: no event
    predictions.send_multipart(encode_prediction(prediction(5, label="thanks", start=3.0, end=3.6)))  # gap 2..4
    received = receive_until(events, lambda parts: parts[0] == b"event" and decode_event(parts)["label"] == "thanks")
    labels = [decode_event(parts)["label"] for parts in received if parts[0] == b"event"]
    assert labels == ["hello", "thanks"]
    status = wait_for_status(events, lambda s: s["daemon"] == "stream-sink" and s["counters"].get("events") == 2)
    counters = status["counters"]
    assert counters["bad_messages"] == len(bad_messages)
    assert counters["duplicates_suppressed"] == 1
    assert counters["prediction_gaps"] == 1 and counters["predictions_missed"] == 3

    # stream-infer restarted: a new session starting again at seq 0 is followed, not refused.
    predictions.send_multipart(encode_prediction(prediction(0, label="water", start=0.5, end=1.0, session="infer-b")))
    receive_until(events, lambda parts: parts[0] == b"event" and decode_event(parts)["label"] == "water")
    assert wait_for_status(events, lambda s: s["counters"].get("infer_restarts") == 1)

    # The reference subscriber printed the first two events as JSON lines and exited by itself.
    out, _ = subscribe.communicate(timeout=10)
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert [line["label"] for line in lines] == ["hello", "thanks"] and subscribe.returncode == 0
    assert lines[0]["received_wall"] >= lines[0]["t_wall"]

    assert stop_and_time(sink) < 2.0 and sink.returncode == 0
    logged = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [event["label"] for event in logged] == ["hello", "thanks", "water"]


def test_daemon_with_an_endpoint_in_use_exits_1_with_one_line(processes, zmq_context, tmp_path):
    config, endpoints = write_config(tmp_path)
    blocker = zmq_context.socket(zmq.PUB)
    blocker.bind(endpoints["events"])
    sink = processes.start_python([PYTHON_MODULE, "stream.sink", "--config", str(config)])
    _, err = sink.communicate(timeout=10)
    assert sink.returncode == 1
    assert "Address already in use" in err.decode()

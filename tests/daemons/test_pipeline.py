"""stream-pipeline: the three daemons as threads of one process, through real sockets.

The same replayed recording through stream-pipeline gives the events of the same stages run
offline; the public endpoints carry what the separate daemons publish (frames with their
description, statuses of all three); signals stop it in time; a daemon that cannot start stops
the others and names the problem.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import zmq

from daemon_helpers import stop_and_time, subscriber, synthetic_frames, tiny_model_card, write_config
from stream.wire.protocol import decode_description, decode_event, decode_map_message

SIGNS = [(2.0, 2.8), (4.5, 5.3), (7.0, 7.7), (9.5, 10.4)]


def replay_config(tmp_path, loop: bool):
    from stream.config import Config
    from stream.recording import RecordingWriter

    recording = tmp_path / "replay.h5"
    if not recording.exists():
        with RecordingWriter(recording, Config().sensors.names) as writer:
            for frame in synthetic_frames(12.0, SIGNS, seed=4):
                writer.append_frame(frame)
    return write_config(tmp_path, f"[sink]\nconfidence_threshold = 0.0\n[acquire]\nsource = \"replay\"\n"
                                  f"[acquire.replay]\npath = \"{recording}\"\nspeed = 4\nloop = {str(loop).lower()}\n",
                        card=tiny_model_card(tmp_path / "model"))


def collect(socket, process, timeout_s: float, until=None) -> list[list[bytes]]:
    """Messages until ``until(messages)`` or the process has exited and the socket is quiet."""
    messages, deadline, quiet_since = [], time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        if socket.poll(100, zmq.POLLIN):
            messages.append(socket.recv_multipart())
            quiet_since = None
            if until is not None and until(messages):
                return messages
        elif process.poll() is not None:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 0.5:
                return messages
    raise AssertionError(f"not done within {timeout_s} s ({len(messages)} messages)")


def spans(messages) -> list[tuple]:
    events = [decode_event(parts) for parts in messages if parts[0] == b"event"]
    return [(event["label"], event["start_index"], event["end_index"]) for event in events]


def offline_events(config_path) -> list[tuple]:
    """The same recording through the same stages without sockets (InferenceStage, EventBuilder),
    every frame from the first: what the process must publish."""
    from stream.config import load_config
    from stream.sources.replay import ReplaySource
    from stream.stages.classifier import Classifier
    from stream.stages.events import EventBuilder
    from stream.stages.inference import InferenceStage
    from stream.wire.protocol import FrameEncoder, FrameSpec

    config = load_config(config_path)
    stage = InferenceStage(config, Classifier.from_config(config), "offline")
    builder, encoder, found = EventBuilder(config.sink), FrameEncoder(FrameSpec.from_config(config)), []
    for frame in ReplaySource(config, realtime=False):
        for prediction in stage.process_frame_message(encoder.encode(frame)):
            event = builder.process(prediction)
            if event is not None:
                found.append((event["label"], event["start_index"], event["end_index"]))
    return found


def test_one_process_publishes_the_events_of_the_stages_run_offline(processes, zmq_context, tmp_path):
    """Every frame reaches infer over inproc (subscribers start first), so the events are exactly the
    stages' over the whole recording. (The separate daemons can lose the first frames to TCP's
    slow joiner: stream-acquire publishes as soon as it has bound.)"""
    config, endpoints = replay_config(tmp_path, loop=False)
    expected = offline_events(config)
    assert len(expected) >= len(SIGNS) - 1, expected  # (the first is within the segmenter's warm-up)
    events = subscriber(zmq_context, endpoints["events"], b"event")
    pipeline = processes.start_python(["-m", "stream.daemons.pipeline", "--config", str(config)])
    by_pipeline = spans(collect(events, pipeline, 60))
    assert pipeline.wait(timeout=10) == 0  # the recording ended: it drained and stopped by itself
    assert by_pipeline == expected


def test_its_public_endpoints_carry_frames_descriptions_and_every_daemons_status(processes, zmq_context, tmp_path):
    config, endpoints = replay_config(tmp_path, loop=True)
    frames = subscriber(zmq_context, endpoints["frames"], b"frame", b"description", b"status")
    predictions = subscriber(zmq_context, endpoints["predictions"], b"status")
    events = subscriber(zmq_context, endpoints["events"], b"status", b"event")
    pipeline = processes.start_python(["-m", "stream.daemons.pipeline", "--config", str(config)])
    statuses = {}
    heard = {b"frame": 0, b"description": 0, b"event": 0}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (len(statuses) == 3 and all(heard.values())):
        for socket in zmq.select([frames, predictions, events], [], [], 0.1)[0]:
            parts = socket.recv_multipart()
            if parts[0] in heard:
                heard[parts[0]] += 1
            if parts[0] == b"description":
                decode_description(parts)
            if parts[0] == b"status":
                status = decode_map_message(parts)[1]
                statuses[status["daemon"]] = status
    assert all(heard.values()) and set(statuses) == {"stream-acquire", "stream-infer", "stream-sink"}, (heard, statuses)
    assert {status["pid"] for status in statuses.values()} == {pipeline.pid}
    assert statuses["stream-infer"]["counters"]["bad_messages"] == 0
    assert stop_and_time(pipeline) < 2.0 and pipeline.returncode == 0


def test_a_daemon_that_cannot_start_stops_the_others_and_is_named(tmp_path):
    config, _ = write_config(tmp_path, card=tmp_path / "missing" / "model_card.json")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "stream.daemons.pipeline", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and time.monotonic() - started < 30
    assert "stream-pipeline: stream-infer: [model] card" in result.stderr and "missing" in result.stderr


def test_sigint_stops_it_while_it_runs(processes, zmq_context, tmp_path):
    config, endpoints = replay_config(tmp_path, loop=True)
    events = subscriber(zmq_context, endpoints["events"], b"event")
    pipeline = processes.start_python(["-m", "stream.daemons.pipeline", "--config", str(config)])
    collect(events, pipeline, 60, until=lambda messages: len(messages) >= 1)
    started = time.monotonic()
    pipeline.send_signal(signal.SIGINT)
    assert pipeline.wait(timeout=5) == 0 and time.monotonic() - started < 2.0

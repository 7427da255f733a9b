"""The daemons as real processes on loopback with random ports: messages, bad input, gaps, restarts,
shutdown. Every receive has a timeout; the ``processes`` fixture kills whatever a test started."""

from __future__ import annotations

import json
import math
import time

import msgpack
import pytest
import zmq

from stream.wire.protocol import decode_event, encode_prediction

from daemon_helpers import receive_until, stop_and_time, subscriber, wait_for_status, write_config

PYTHON_MODULE = "-m"


def prediction(seq, label="hello", start=1.0, end=1.8, confidence=0.9, session="infer-a", source="acquire-a"):
    probabilities = [0.0] * 4
    probabilities[1] = confidence
    return {"seq": seq, "session": session, "source_session": source, "t_wall": time.time(), "model_id": "m", "class_index": 1,
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
    sink = processes.start_python([PYTHON_MODULE, "stream.daemons.sink", "--config", str(config)])
    subscribe = processes.start_python([PYTHON_MODULE, "stream.daemons.subscribe", "--config", str(config),
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

    # stream-infer restarted (a new session starting again at seq 0 is followed, not refused), on a
    # new acquisition run whose clock starts again: its early span is a new sign, not a repeat.
    predictions.send_multipart(encode_prediction(prediction(0, label="water", start=0.5, end=1.0, session="infer-b",
                                                            source="acquire-b")))
    water = receive_until(events, lambda parts: parts[0] == b"event" and decode_event(parts)["label"] == "water")
    assert decode_event(water[-1])["source_session"] == "acquire-b"
    assert wait_for_status(events, lambda s: s["counters"].get("infer_restarts") == 1
                           and s["counters"]["source_restarts"] == 1)

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
    sink = processes.start_python([PYTHON_MODULE, "stream.daemons.sink", "--config", str(config)])
    _, err = sink.communicate(timeout=10)
    assert sink.returncode == 1
    assert "Address already in use" in err.decode()


def test_infer_predicts_signs_and_survives_bad_frames_gaps_and_a_restarted_acquire(processes, zmq_context, tmp_path):
    import numpy as np

    from stream.config import Config
    from stream.wire.protocol import FrameEncoder, FrameSpec, decode_prediction

    from daemon_helpers import synthetic_frames, tiny_model_card

    card = tiny_model_card(tmp_path / "model")
    config, endpoints = write_config(tmp_path, card=card)
    frames_out = zmq_context.socket(zmq.PUB)
    frames_out.bind(endpoints["frames"])
    predictions = subscriber(zmq_context, endpoints["predictions"], b"prediction", b"status")
    infer = processes.start_python([PYTHON_MODULE, "stream.daemons.infer", "--config", str(config)])
    status = wait_for_status(predictions, lambda s: s["daemon"] == "stream-infer", timeout_s=30)
    assert status["info"]["labels"] == ["hello", "thanks", "water", "home"]
    time.sleep(0.3)

    from stream.wire.layout import Layout

    spec = FrameSpec.from_config(Config())
    encoder = FrameEncoder(spec)
    good = encoder.encode(synthetic_frames(0.0135, [])[0])
    nan_frame = synthetic_frames(0.0135, [])[0]
    nan_frame.acc[0, 0] = np.inf
    header = msgpack.unpackb(good[1])
    other_layout = FrameSpec(Layout(("a", "b"), ("a", "b"), ("emg", "acc", "gyro"), spec.emg_rate_hz, spec.imu_rate_hz))
    bad_frames = [
        [b"frame", b"not msgpack", good[2]],
        [b"frame", msgpack.packb({**header, "v": 7}), good[2]],
        [b"frame", msgpack.packb({**header, "description": "0123456789abcdef"}), good[2]],
        [b"frame", msgpack.packb({**header, "emg_first_index": -15}), good[2]],
        [b"frame", good[1], good[2][:-8]],
        FrameEncoder(spec).encode(nan_frame),
        FrameEncoder(other_layout).encode_description(),  # frames of other sensors are coming: said at once
        [b"frame"],
    ]
    frames_out.send_multipart(encoder.encode_description())  # the right one is no bad message
    for message in bad_frames:
        frames_out.send_multipart(message)

    # 9 s with three signs; frames 300-309 (4.05-4.19 s) are lost, inside the second sign.
    frames = synthetic_frames(9.0, [(2.0, 2.8), (3.8, 4.6), (6.5, 7.3)], seed=2)
    for frame in frames:
        if not 300 <= frame.sequence < 310:
            frames_out.send_multipart(encoder.encode(frame))
        if frame.sequence % 50 == 0:
            time.sleep(0.02)
    received = receive_until(predictions, lambda parts: parts[0] == b"prediction"
                             and decode_prediction(parts)["start_time_s"] > 6.0)
    spans = [(decode_prediction(parts)["start_time_s"], decode_prediction(parts)["end_time_s"])
             for parts in received if parts[0] == b"prediction"]
    # The sign across the gap is never classified: no window spans missing samples.
    assert len(spans) == 2 and abs(spans[0][0] - 2.0) < 0.1 and abs(spans[1][0] - 6.5) < 0.1
    status = wait_for_status(predictions, lambda s: s["counters"].get("frames", 0) >= len(frames) - 10)
    counters = status["counters"]
    assert counters["bad_messages"] == len(bad_frames) - 1 + 1  # the 1-part message too
    assert counters["frame_gaps"] == 1 and counters["frames_missed"] == 10
    assert counters["classifications"] == 2 and counters["inference_ms_mean"] > 0

    # stream-acquire restarted: new session, indices from zero again. Infer follows it.
    restarted = FrameEncoder(spec)
    for frame in synthetic_frames(5.0, [(2.0, 2.7)], seed=3):
        frames_out.send_multipart(restarted.encode(frame))
        if frame.sequence % 50 == 0:
            time.sleep(0.02)
    receive_until(predictions, lambda parts: parts[0] == b"prediction"
                  and decode_prediction(parts)["start_time_s"] < 3.0)
    wait_for_status(predictions, lambda s: s["counters"].get("acquire_restarts") == 1)
    assert stop_and_time(infer) < 2.0 and infer.returncode == 0


def test_acquire_publishes_frames_truth_and_heartbeats_and_a_stalled_reader_never_slows_it(processes, zmq_context, tmp_path):
    import signal

    from stream.config import Config
    from stream.wire.protocol import FrameSpec, decode_description, decode_frame, decode_truth

    config, endpoints = write_config(tmp_path)
    reader = subscriber(zmq_context, endpoints["frames"], b"frame", b"truth", b"status", b"description")
    stalled = zmq_context.socket(zmq.SUB)  # subscribes and never reads: its queue fills up
    stalled.setsockopt(zmq.LINGER, 0)
    stalled.setsockopt(zmq.RCVHWM, 5)
    stalled.setsockopt(zmq.SUBSCRIBE, b"")
    stalled.connect(endpoints["frames"])
    acquire = processes.start_python([PYTHON_MODULE, "stream.daemons.acquire", "--config", str(config)])
    first = wait_for_status(reader, lambda s: s["daemon"] == "stream-acquire", timeout_s=20)
    spec = FrameSpec.from_config(Config())
    sequences, truths, descriptions = [], [], []
    started = time.monotonic()
    deadline = started + 20
    while time.monotonic() < deadline and (len(truths) < 1 or len(sequences) < 300 or len(descriptions) < 3):
        if reader.poll(100, zmq.POLLIN):
            parts = reader.recv_multipart()
            if parts[0] == b"frame":
                header, frame = decode_frame(parts, spec)
                sequences.append(header.sequence)
                assert frame.emg_first_index == 15 * header.sequence
            elif parts[0] == b"truth":
                truths.append(decode_truth(parts))
            elif parts[0] == b"description":
                descriptions.append(decode_description(parts))
    assert len(sequences) >= 300 and sequences == list(range(sequences[0], sequences[0] + len(sequences)))
    # The stream description comes with every heartbeat: ids of the frames' layout, its own sequence.
    assert {description["id"] for description in descriptions} == {spec.description_id}
    assert [description["seq"] for description in descriptions] == list(range(descriptions[0]["seq"], descriptions[0]["seq"] + len(descriptions)))
    assert truths and truths[0]["end_index"] > truths[0]["start_index"] and truths[0]["rate"] == "10000/9"
    # Real time: about 74 frames per second were published although one subscriber never read.
    late = wait_for_status(reader, lambda s: s["daemon"] == "stream-acquire" and s["uptime_s"] > first["uptime_s"] + 4)
    rate = (late["counters"]["frames"] - first["counters"].get("frames", 0)) / (late["uptime_s"] - first["uptime_s"])
    assert 60 < rate < 90
    started = time.monotonic()
    acquire.send_signal(signal.SIGINT)
    acquire.wait(timeout=5)
    assert time.monotonic() - started < 2.0 and acquire.returncode == 0


def test_pipeline_resumes_after_each_daemon_is_killed_and_restarted(processes, zmq_context, tmp_path):
    import signal

    from daemon_helpers import tiny_model_card

    card = tiny_model_card(tmp_path / "model")
    # Threshold 0: every segmented sign of the simulated signer becomes an event (the model is tiny).
    config, endpoints = write_config(tmp_path, "[sink]\nconfidence_threshold = 0.0\n", card=card)
    arguments = {name: [PYTHON_MODULE, f"stream.daemons.{name}", "--config", str(config)] for name in ("acquire", "infer", "sink")}
    frames = subscriber(zmq_context, endpoints["frames"], b"status")
    predictions = subscriber(zmq_context, endpoints["predictions"], b"status")
    events = subscriber(zmq_context, endpoints["events"], b"event", b"status")
    running = {name: processes.start_python(arguments[name]) for name in ("sink", "infer", "acquire")}
    receive_until(events, lambda parts: parts[0] == b"event", timeout_s=30)

    def infer_frames(timeout_s=10.0) -> int:
        return wait_for_status(predictions, lambda s: s["daemon"] == "stream-infer", timeout_s,
                               fresh=True)["counters"].get("frames", 0)

    # stream-acquire killed: infer and sink keep running; a new acquire is followed within 2 s.
    running["acquire"].send_signal(signal.SIGKILL)
    running["acquire"].wait(timeout=5)
    time.sleep(0.5)
    stalled = infer_frames()
    assert infer_frames() == stalled  # no frames while acquisition is down, and infer still answers
    running["acquire"] = processes.start_python(arguments["acquire"])
    wait_for_status(frames, lambda s: s["daemon"] == "stream-acquire", timeout_s=20, fresh=True)
    back = time.monotonic()
    wait_for_status(predictions, lambda s: s["counters"].get("acquire_restarts") == 1
                    and s["counters"]["frames"] > stalled, timeout_s=5)
    assert time.monotonic() - back < 2.0

    # stream-infer killed: acquisition goes on; a new infer processes frames within 2 s of its start.
    running["infer"].send_signal(signal.SIGKILL)
    running["infer"].wait(timeout=5)
    before = wait_for_status(frames, lambda s: s["daemon"] == "stream-acquire", fresh=True)["counters"]["frames"]
    assert wait_for_status(frames, lambda s: s["counters"]["frames"] > before + 20)
    running["infer"] = processes.start_python(arguments["infer"])
    wait_for_status(predictions, lambda s: s["daemon"] == "stream-infer", timeout_s=30, fresh=True)
    back = time.monotonic()
    wait_for_status(predictions, lambda s: s["counters"].get("frames", 0) > 0, timeout_s=5)
    assert time.monotonic() - back < 2.0

    # stream-sink killed and restarted: events come again, from the new sink.
    old_session = wait_for_status(events, lambda s: s["daemon"] == "stream-sink", fresh=True)["session"]
    running["sink"].send_signal(signal.SIGKILL)
    running["sink"].wait(timeout=5)
    running["sink"] = processes.start_python(arguments["sink"])
    receive_until(events, lambda parts: parts[0] == b"event" and decode_event(parts)["session"] != old_session,
                  timeout_s=30)
    for name in ("acquire", "infer", "sink"):
        assert stop_and_time(running[name]) < 2.0 and running[name].returncode == 0


@pytest.mark.parametrize("profile", ["trigno-emg1926", "trigno-emg-acc"])
def test_other_sensor_layouts_run_through_the_three_daemons(profile, processes, zmq_context, tmp_path):
    """A Trigno sensor mode with 26 sEMG + 1 IMU samples per frame, and sensors without a gyroscope:
    stream-acquire replays a recording of that layout, stream-infer (a model of that layout) and
    stream-sink turn its bursts into events, over real sockets."""
    from daemon_helpers import layout_signals, tiny_model_card
    from stream.config import config_from_dict
    from stream.recording import Recording, write_recording

    layout_config = config_from_dict({"sensors": {"profile": profile}})
    layout = layout_config.layout
    card = tiny_model_card(tmp_path / "model", config=layout_config)
    config, endpoints = write_config(tmp_path, f'[sensors]\nprofile = "{profile}"\n[sink]\nconfidence_threshold = 0.0\n'
                                     f'[acquire]\nsource = "replay"\n[acquire.replay]\npath = "{tmp_path / "r.h5"}"\n'
                                     "speed = 3.0\n", card=card)
    bursts = [(3.0, 3.8), (6.0, 6.9), (9.0, 9.6)]
    emg, acc, gyro = layout_signals(layout, 12.0, bursts)
    write_recording(tmp_path / "r.h5", Recording(emg, acc, gyro, layout.emg_rate_hz, layout.imu_rate_hz,
                                                 layout.sensor_names))
    events = subscriber(zmq_context, endpoints["events"], b"event", b"status")
    predictions = subscriber(zmq_context, endpoints["predictions"], b"status")
    running = [processes.start_python([PYTHON_MODULE, f"stream.daemons.{name}", "--config", str(config)])
               for name in ("sink", "infer")]
    # Both running before the short replay starts (a fixed sleep lost the first burst on a loaded host).
    wait_for_status(predictions, lambda status: status["daemon"] == "stream-infer", timeout_s=30)
    wait_for_status(events, lambda status: status["daemon"] == "stream-sink", timeout_s=30)
    time.sleep(0.5)  # their subscriptions reach stream-acquire's socket as soon as it binds
    running.append(processes.start_python([PYTHON_MODULE, "stream.daemons.acquire", "--config", str(config)]))
    received = receive_until(events, lambda parts: parts[0] == b"event" and decode_event(parts)["start_time_s"] > 8.5,
                             timeout_s=40)
    starts = sorted(decode_event(parts)["start_time_s"] for parts in received if parts[0] == b"event")
    assert len(starts) == len(bursts) and all(start - 0.3 < found < end for (start, end), found in zip(bursts, starts))

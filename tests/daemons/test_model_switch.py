"""stream-infer switches models on SIGHUP without a restart, with every check of a start; a refused
model leaves the running one in place; predictions go on across a switch (real process, real sockets)."""

from __future__ import annotations

import shutil
import signal
import time

import zmq

from daemon_helpers import (
    receive_until,
    stop_and_time,
    subscriber,
    synthetic_frames,
    tiny_model_card,
    wait_for_status,
    write_config,
)

PYTHON_MODULE = "-m"


def point_at(config_path, card) -> None:
    """Rewrite the config's [model] card (as a user edits the file before ``systemctl reload``)."""
    lines = [f'card = "{card}"' if line.startswith("card = ") else line for line in config_path.read_text().splitlines()]
    config_path.write_text("\n".join(lines) + "\n")


def test_sighup_switches_the_model_and_refuses_a_bad_one_keeping_the_running_one(processes, zmq_context, tmp_path):
    from stream.config import Config
    from stream.wire.protocol import FrameEncoder, FrameSpec, decode_prediction

    first_card = tiny_model_card(tmp_path / "first")
    second_card = tiny_model_card(tmp_path / "second", labels=("yes", "no", "help", "stop", "go"))
    config_path, endpoints = write_config(tmp_path, card=first_card)
    frames_out = zmq_context.socket(zmq.PUB)
    frames_out.bind(endpoints["frames"])
    predictions = subscriber(zmq_context, endpoints["predictions"], b"prediction", b"status")
    infer = processes.start_python([PYTHON_MODULE, "stream.daemons.infer", "--config", str(config_path)])
    status = wait_for_status(predictions, lambda s: s["daemon"] == "stream-infer", timeout_s=30)
    first_id = status["info"]["model_id"]
    assert status["info"]["model_card"] == str(first_card)
    assert status["counters"]["model_switches"] == 0 and status["counters"]["model_switches_refused"] == 0
    time.sleep(0.3)

    # A sign, the switch while frames flow, a second sign: both classified, by the model running then.
    encoder = FrameEncoder(FrameSpec.from_config(Config()))
    frames = synthetic_frames(9.0, [(2.0, 2.8), (6.5, 7.3)], seed=2)
    switched = False
    for frame in frames:
        frames_out.send_multipart(encoder.encode(frame))
        if frame.sequence % 50 == 0:
            time.sleep(0.02)
        if frame.sequence == 370 and not switched:  # 5.0 s: after the first sign's prediction
            receive_until(predictions, lambda parts: parts[0] == b"prediction")
            point_at(config_path, second_card)
            infer.send_signal(signal.SIGHUP)
            wait_for_status(predictions, lambda s: s["counters"].get("model_switches") == 1, timeout_s=20)
            switched = True
    received = receive_until(predictions, lambda parts: parts[0] == b"prediction"
                             and decode_prediction(parts)["start_time_s"] > 6.0)
    second = [decode_prediction(parts) for parts in received if parts[0] == b"prediction"][-1]
    assert second["model_id"] != first_id and second["label"] in ("yes", "no", "help", "stop", "go")
    status = wait_for_status(predictions, lambda s: s["counters"].get("frames", 0) >= len(frames) - 5)
    assert status["info"]["model_switch"]["outcome"] == "switched"
    assert status["info"]["model_switch"]["from"] == first_id and status["info"]["model_id"] == second["model_id"]
    assert status["info"]["labels"] == ["yes", "no", "help", "stop", "go"]
    # No frame was lost or reset by the switch.
    assert status["counters"]["frame_gaps"] == 0 and status["counters"]["stream_restarts"] == 0

    # A model whose .tflite no longer matches its card's sha256: refused, the running model stays.
    broken = tmp_path / "broken"
    shutil.copytree(second_card.parent, broken)
    for model in broken.glob("*.tflite"):
        model.write_bytes(model.read_bytes()[:-16] + b"\0" * 16)
    point_at(config_path, broken / second_card.name)
    infer.send_signal(signal.SIGHUP)
    status = wait_for_status(predictions, lambda s: s["counters"].get("model_switches_refused") == 1, timeout_s=20)
    assert status["info"]["model_switch"]["outcome"] == "refused"
    assert "sha256" in status["info"]["model_switch"]["reason"]
    assert status["info"]["model_id"] == second["model_id"] and status["counters"]["model_switches"] == 1

    # A config that no longer parses: refused the same way, in one reason.
    config_path.write_text(config_path.read_text() + "\n[model]\nthreads = 0\n")
    infer.send_signal(signal.SIGHUP)
    status = wait_for_status(predictions, lambda s: s["counters"].get("model_switches_refused") == 2, timeout_s=20)
    assert status["info"]["model_id"] == second["model_id"]
    assert stop_and_time(infer) < 2.0 and infer.returncode == 0


def test_sighup_to_a_daemon_with_nothing_to_reload_changes_nothing(processes, zmq_context, tmp_path):
    config_path, endpoints = write_config(tmp_path)
    events = subscriber(zmq_context, endpoints["events"], b"status")
    sink = processes.start_python([PYTHON_MODULE, "stream.daemons.sink", "--config", str(config_path)])
    first = wait_for_status(events, lambda s: s["daemon"] == "stream-sink", timeout_s=20)
    sink.send_signal(signal.SIGHUP)
    later = wait_for_status(events, lambda s: s["uptime_s"] > first["uptime_s"] + 1.0, timeout_s=20)
    assert later["session"] == first["session"] and sink.poll() is None
    assert stop_and_time(sink) < 2.0 and sink.returncode == 0

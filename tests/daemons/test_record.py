"""stream-record through a real process: frames to the dataset format, gaps, restarts, guided mode."""

from __future__ import annotations

import time

import numpy as np
import zmq

from stream.config import Config
from stream.recording import read_recording
from stream.wire.protocol import FrameEncoder, FrameSpec, encode_truth

from daemon_helpers import synthetic_frames, write_config


def wait_for_line(process, text: str, timeout_s: float = 15.0) -> list[str]:
    import selectors

    lines = []
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if selector.select(timeout=0.1):
            line = process.stdout.readline().decode()
            if not line:
                break
            lines.append(line.strip())
            if text in line:
                return lines
    raise AssertionError(f"{text!r} not printed within {timeout_s} s; got {lines}")


def publish(socket, encoder, frames, skip=()):
    for frame in frames:
        if frame.sequence not in skip:
            socket.send_multipart(encoder.encode(frame))
        if frame.sequence % 40 == 0:
            time.sleep(0.01)


def test_record_writes_frames_gaps_truth_and_a_new_part_after_a_restart(processes, zmq_context, tmp_path):
    config, endpoints = write_config(tmp_path)
    frames_out = zmq_context.socket(zmq.PUB)
    frames_out.bind(endpoints["frames"])
    out = tmp_path / "session.h5"
    record = processes.start_python(["-m", "stream.daemons.record", "--config", str(config), "--out", str(out),
                                     "--signer", "tester"])
    wait_for_line(record, "listening")
    time.sleep(0.5)  # the subscription reaches our PUB
    spec = FrameSpec.from_config(Config())
    encoder = FrameEncoder(spec)
    frames = synthetic_frames(2.0, [(0.5, 1.0)])
    publish(frames_out, encoder, frames, skip=range(50, 54))
    frames_out.send_multipart(encode_truth({"seq": 0, "session": encoder.session, "t_wall": time.time(),
                                            "label": "hello", "start_index": 555, "end_index": 1111,
                                            "rate": "10000/9", "start_time_s": 0.4995, "end_time_s": 0.9999}))
    time.sleep(0.3)
    publish(frames_out, FrameEncoder(spec), synthetic_frames(1.0, [], seed=4))  # acquire restarted
    wait_for_line(record, "recording to")  # the second part
    time.sleep(0.5)
    record.terminate()
    record.wait(timeout=5)
    assert record.returncode == 0

    first = read_recording(out)
    assert first.complete and first.metadata["signer"] == "tester"
    assert first.emg.shape == (len(frames) * 15, 6) and first.acc.shape == (len(frames) * 2, 18)
    np.testing.assert_array_equal(first.emg[:15], frames[0].emg)
    assert np.isnan(first.emg[50 * 15:54 * 15]).all() and not np.isnan(first.emg[54 * 15:]).any()
    assert len(first.gaps) == 1 and (first.gaps[0].emg_start, first.gaps[0].emg_end) == (750, 810)
    assert [(a.label, a.start_index, a.end_index) for a in first.annotations] == [("hello", 555, 1111)]
    second = read_recording(tmp_path / "session-part2.h5")
    assert second.complete and second.emg.shape[0] == round(1.0 / 0.0135) * 15


def test_guided_mode_prompts_and_labels_by_the_sample_clock(processes, zmq_context, tmp_path):
    config, endpoints = write_config(tmp_path)
    frames_out = zmq_context.socket(zmq.PUB)
    frames_out.bind(endpoints["frames"])
    out = tmp_path / "guided.h5"
    record = processes.start_python(["-m", "stream.daemons.record", "--config", str(config), "--out", str(out),
                                     "--signs", "hello,water", "--repetitions", "1", "--rest-s", "0.5",
                                     "--sign-s", "1.0"])
    wait_for_line(record, "listening")
    time.sleep(0.5)
    publish(frames_out, FrameEncoder(FrameSpec.from_config(Config())), synthetic_frames(4.0, []))
    record.wait(timeout=10)
    lines = record.stdout.read().decode().splitlines()
    assert record.returncode == 0
    assert any(line.startswith("perform sign") for line in lines) and "guided session complete" in lines
    recording = read_recording(out)
    spans = sorted((a.start_index, a.end_index, a.label) for a in recording.annotations)
    assert [label for *_, label in spans] in (["hello", "water"], ["water", "hello"])
    # rest 0.5 s, sign 1.0 s, rest 0.5 s, sign 1.0 s at 10000/9 Hz, from the first frame's index.
    assert [(start, end) for start, end, _ in spans] == [(556, 1667), (2223, 3334)]
    assert recording.duration_s >= 3.5

"""The monitor's traces from frames (no sockets): decimation, the derived traces from the project's own
stages, gaps, dropouts and restarts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stream.config import Config
from stream.daemons.monitor import _json
from stream.dsp.preprocess import Preprocessor
from stream.monitor.health import HealthBoard
from stream.monitor.traces import TraceBuilder
from stream.stages.segmenter import Segmenter

from daemon_helpers import synthetic_frames

SIGNS = [(2.0, 2.8), (4.0, 4.9)]


@pytest.fixture(scope="module")
def frames():
    return synthetic_frames(6.0, SIGNS, seed=3)


def feed(builder: TraceBuilder, frames, session: str = "run-a") -> list[dict]:
    updates = []
    for number, frame in enumerate(frames):
        builder.add_frame(session, frame)
        if number % 3 == 2:
            update = builder.flush()
            if update is not None:
                updates.append(update)
    last = builder.flush()
    return updates + ([last] if last else [])


def joined(updates: list[dict], key: str) -> list:
    return [value for update in updates for value in update[key]]


def test_one_min_max_column_per_frame_and_channel_and_one_imu_value(frames):
    config = Config()
    updates = feed(TraceBuilder(config), frames)
    channels = config.layout.channel_count("emg")
    times = joined(updates, "t")
    assert len(times) == len(frames) and times == sorted(times)
    assert times[10] == pytest.approx(frames[10].emg_first_index / float(config.layout.emg_rate_hz), abs=1e-4)
    emg_min = np.array(joined(updates, "emg_min")).reshape(len(frames), channels)
    emg_max = np.array(joined(updates, "emg_max")).reshape(len(frames), channels)
    assert np.allclose(emg_min[10], frames[10].emg.min(axis=0), atol=1e-5)
    assert np.allclose(emg_max[10], frames[10].emg.max(axis=0), atol=1e-5)
    acc = np.array(joined(updates, "acc")).reshape(len(frames), 18)
    assert np.allclose(acc[7], frames[7].acc.mean(axis=0), atol=1e-4)
    gyro = np.array(joined(updates, "gyro")).reshape(len(frames), 6)
    expected = np.sqrt((frames[7].gyro.reshape(2, 6, 3) ** 2).sum(axis=2)).mean(axis=0)
    assert np.allclose(gyro[7], expected, atol=0.01)


def test_envelope_energy_and_motion_are_the_projects_stages_on_the_same_frames(frames):
    config = Config()
    updates = feed(TraceBuilder(config), frames)
    # The same stages run beside it, read the same way: the monitor adds no DSP of its own.
    preprocessor, segmenter = Preprocessor(config), Segmenter(config)
    envelope, energy, segments = [], [], []
    for frame in frames:
        block = preprocessor.process_frame(frame)
        if block is None:
            continue
        segments += segmenter.process(block)
        envelope.append(block.emg[-1] / config.preprocess.emg_scale)
        state = segmenter.state
        energy.append(state.emg_level / max(state.emg_baseline, config.segmentation.emg_floor))
    assert np.allclose(np.array(joined(updates, "envelope")).reshape(-1, 6), envelope, atol=1e-5)
    assert np.allclose(joined(updates, "energy"), energy, rtol=1e-3, atol=1e-3)
    found = joined(updates, "segments")
    rate = float(config.preprocess.model_rate_hz)
    assert found == [[round(s.start_index / rate, 4), round(s.end_index / rate, 4), s.forced] for s in segments]
    # ... and they find the two bursts, with the energy above the on threshold inside them.
    assert len(found) == 2
    for (start, end, _), (true_start, true_end) in zip(found, SIGNS):
        assert abs(start - true_start) < 0.2 and abs(end - true_end) < 0.3
    model_times = np.array(joined(updates, "model_t"))
    inside = (model_times > 2.3) & (model_times < 2.6)
    assert (np.array(joined(updates, "energy"))[inside] > np.array(joined(updates, "emg_on"))[inside]).all()
    assert any(joined(updates, "active")) and not all(joined(updates, "active"))


def test_a_gap_a_dropout_and_a_restart(frames):
    builder = TraceBuilder(Config())
    kept = frames[:100] + frames[110:200]
    dropout = frames[200]
    dropout.emg = dropout.emg.copy()
    dropout.emg[3, 2] = np.nan
    updates = feed(builder, kept + [dropout])
    assert joined(updates, "gaps") == [[round(1500 * 0.0009, 4), round(1650 * 0.0009, 4)]]
    # The dropout's column is NaN, and null on the wire (JSON has no NaN): the page draws a break.
    last = json.loads(_json(updates[-1]))
    assert last["emg_min"][-6 + 2] is None and last["emg_min"][-6 + 1] is not None
    epoch = builder.epoch
    restarted = feed(builder, frames[:10], session="run-b")
    assert builder.epoch == epoch + 1 and restarted[0]["session"] == "run-b" and restarted[0]["t"][0] == 0.0
    again = feed(builder, frames[:5], session="run-b")  # indices went back within a session: a restart too
    assert builder.epoch == epoch + 2 and again[0]["t"][0] == 0.0


def test_flush_without_frames_sends_nothing():
    assert TraceBuilder(Config()).flush() is None


def test_health_states_alive_gone_stopped_restarted_and_the_stream():
    now = [100.0]
    board = HealthBoard(gone_after_s=3.0, stale_after_s=0.5, clock=lambda: now[0])

    def status(daemon, seq, state="running", session="s1", **counters):
        return {"daemon": daemon, "seq": seq, "session": session, "state": state, "pid": 7, "host": "h",
                "uptime_s": 1.0, "counters": {"bad_messages": 0, **counters}, "info": {"model_id": "m", "labels": ["a"]}}

    states = {entry["daemon"]: entry["state"] for entry in board.summary()["daemons"]}
    assert states == {"stream-acquire": "not heard", "stream-infer": "not heard", "stream-sink": "not heard",
                      "stream-monitor": "not heard"}
    board.observe_status(status("stream-sink", 0))
    board.observe_status(status("stream-infer", 0, bad_messages=2))
    board.observe_status(status("stream-acquire", 0))
    summary = {entry["daemon"]: entry for entry in board.summary()["daemons"]}
    assert summary["stream-sink"]["state"] == "running" and summary["stream-infer"]["problems"] == ["bad_messages"]
    assert "labels" not in summary["stream-infer"]["info"] and board.labels == {"m": ["a"]}
    now[0] += 3.5
    board.observe_status(status("stream-infer", 1))
    board.observe_status(status("stream-acquire", 1, state="stopping"))
    summary = {entry["daemon"]: entry for entry in board.summary()["daemons"]}
    assert summary["stream-sink"]["state"] == "gone" and summary["stream-sink"]["age_s"] == 3.5
    assert summary["stream-infer"]["state"] == "running"
    assert summary["stream-acquire"]["state"] == "stopped"
    board.observe_status(status("stream-infer", 0, session="s2"))
    board.observe_status(status("stream-infer", 3, session="s2"))
    infer = {entry["daemon"]: entry for entry in board.summary()["daemons"]}["stream-infer"]
    assert infer["restarts"] == 1 and infer["status_missed"] == 2
    assert board.summary()["stream"]["state"] == "waiting"
    board.observe_frame("f", 0)
    board.observe_frame("f", 4)
    stream = board.summary()["stream"]
    assert stream["state"] == "flowing" and stream["frames_missed"] == 3 and stream["frame_gaps"] == 1
    now[0] += 0.6
    assert board.summary()["stream"]["state"] == "no frames"

"""Real recordings through the real daemons: the lis-myo test samples (a Myo armband, 20 ms frames)
replayed by stream-acquire with the shipped lis-myo student (models/lis-myo/replay.toml), recognised by
stream-infer, published as events by stream-sink, on random loopback ports."""

from __future__ import annotations

import time

import msgpack

from conftest import REPO_ROOT
from daemon_helpers import subscriber
from real_data import LIS_MYO_ARCHIVE, needs_lis_myo
from stream.wire.protocol import decode_event, decode_truth

MODEL_DIR = REPO_ROOT / "models" / "lis-myo"


@needs_lis_myo
def test_lis_myo_recordings_replay_through_the_daemons_with_the_shipped_student(processes, zmq_context, tmp_path):
    from conftest import free_endpoint
    from stream.config import load_config
    from stream.stages.model_card import load_model_card
    from train.datasets.__main__ import main as import_dataset

    assert import_dataset(["lis-myo", str(LIS_MYO_ARCHIVE), "--out", str(tmp_path / "lis-myo")]) == 0
    shipped = (MODEL_DIR / "replay.toml").read_text()
    endpoints = {name: free_endpoint() for name in ("frames", "predictions", "events")}
    config = tmp_path / "replay.toml"
    config.write_text(shipped.replace('card = "model_card.json"', f'card = "{MODEL_DIR / "model_card.json"}"')
                      .replace('path = "../../data/lis-myo/recordings/test-session.h5"',
                               f'path = "{tmp_path / "lis-myo" / "recordings" / "test-session.h5"}"\nspeed = 4.0')
                      + "[endpoints]\n" + "".join(f'{name} = "{value}"\n' for name, value in endpoints.items())
                      + "heartbeat_interval_s = 0.5\n")
    assert load_config(config).layout.describe().startswith("myo: emg 8 x 200 Hz (counts)")
    model_id = load_model_card(MODEL_DIR / "model_card.json").model_id
    frames = subscriber(zmq_context, endpoints["frames"], b"truth", b"status")
    events = subscriber(zmq_context, endpoints["events"], b"event")
    for name in ("sink", "infer", "acquire"):
        processes.start_python(["-m", f"stream.daemons.{name}", "--config", str(config)])
    truths, published, infer_counters = [], [], {}
    predictions = subscriber(zmq_context, endpoints["predictions"], b"status")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(truths) < 40:
        for socket in (frames, events, predictions):
            while socket.poll(10):
                parts = socket.recv_multipart()
                if parts[0] == b"truth":
                    truths.append(decode_truth(parts))
                elif parts[0] == b"event":
                    published.append(decode_event(parts))
                elif parts[0] == b"status":
                    status = msgpack.unpackb(parts[1])
                    if status["daemon"] == "stream-infer":
                        infer_counters = status["counters"]
    assert len(truths) >= 40, "the replayed letters were not announced"
    assert infer_counters.get("bad_messages") == 0 and infer_counters["frames"] > 0, infer_counters
    assert published, f"no event for {len(truths)} letters; infer counters {infer_counters}"
    assert {event["model_id"] for event in published} == {model_id}
    assert {event["label"] for event in published} <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")

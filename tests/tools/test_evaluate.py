"""Offline evaluation: scoring rules, the batch path equal to frame-by-frame streaming, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from stream.config import config_from_dict
from stream.tools.evaluate import SessionResult, score


def event(label, start, end, decided):
    return {"label": label, "start_time_s": start, "end_time_s": end, "decision_time_s": decided}


def test_scoring_counts_right_wrong_duplicate_and_rest_events():
    annotations = [("hello", 1.0, 2.0), ("water", 4.0, 5.0), ("home", 7.0, 8.0)]
    result = SessionResult("s", 10.0, annotations, events=[
        event("hello", 1.1, 2.05, 2.2),   # correct, 200 ms after the sign's end
        event("hello", 1.5, 1.9, 2.3),    # a second event for the same sign: false
        event("thanks", 4.1, 5.0, 5.3),   # wrong label: false (and "water" is missed)
        event("home", 6.9, 8.1, 8.4),     # correct, 400 ms
        event("home", 9.0, 9.5, 9.7),     # in rest: false, and counted per minute of rest
    ])
    summary = score([result])
    assert summary["correct_events"] == 2 and summary["events"] == 5 and summary["signs"] == 3
    assert summary["event_precision"] == 0.4 and summary["event_recall"] == round(2 / 3, 4)
    assert summary["event_f1"] == round(2 * 0.4 * (2 / 3) / (0.4 + 2 / 3), 4)
    assert summary["false_events_per_min_rest"] == round(1 / (7.0 / 60), 4)
    assert summary["latency_after_sign_end_ms_median"] == 300.0

    assert "recall_by_lead_in" not in summary  # the recording did not say what came before each sign


def test_recall_is_also_reported_per_lead_in_when_the_sessions_say_it():
    annotations = [("hello", 1.0, 2.0), ("water", 4.0, 5.0), ("home", 7.0, 8.0)]
    result = SessionResult("s", 10.0, annotations, lead_ins=["rest", "held", "rest"], events=[
        event("hello", 1.1, 2.05, 2.2), event("thanks", 4.1, 5.0, 5.3), event("home", 6.9, 8.1, 8.4)])
    assert score([result])["recall_by_lead_in"] == {"held": {"recall": 0.0, "signs": 1},
                                                    "rest": {"recall": 1.0, "signs": 2}}


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    from train.synth.build import generate_dataset

    directory = tmp_path_factory.mktemp("synth")
    generate_dataset(directory, signers=1, repetitions=3, sessions=1, workers=1, progress=False)
    return directory


def test_batch_preprocessing_gives_the_same_events_as_frame_by_frame_streaming(small_dataset, tmp_path):
    from stream.recording.dataset import open_dataset
    from stream.stages.classifier import Classifier
    from stream.stages.events import EventBuilder
    from stream.stages.recognizer import Recognizer
    from stream.tools.evaluate import run_session

    from daemon_helpers import tiny_model_card

    card = tiny_model_card(tmp_path / "model")
    # Every prediction becomes an event (the tiny model is untrained): this compares the plumbing.
    config = config_from_dict({"model": {"card": str(card)}, "sink": {"confidence_threshold": 0.0}})
    dataset = open_dataset(small_dataset)
    recording = dataset.load(dataset.sessions()[0])
    recognizer = Recognizer(config, Classifier.from_config(config))
    batch = run_session(recognizer, EventBuilder(config.sink), recording, "s", streaming=False)
    streaming = run_session(recognizer, EventBuilder(config.sink), recording, "s", streaming=True)
    assert len(batch.events) >= 10
    keys = ("label", "start_index", "end_index", "decision_time_s")
    assert [tuple(e[key] for key in keys) for e in batch.events] == [tuple(e[key] for key in keys) for e in streaming.events]
    for a, b in zip(batch.events, streaming.events):
        assert a["confidence"] == pytest.approx(b["confidence"], abs=1e-6)


def test_cli_prints_one_json_object_and_refuses_a_directory_without_a_dataset(small_dataset, tmp_path):
    from daemon_helpers import tiny_model_card

    card = tiny_model_card(tmp_path / "model")
    config = tmp_path / "config.toml"
    config.write_text(f'[model]\ncard = "{card}"\n')
    done = subprocess.run([sys.executable, "-m", "stream.tools.evaluate", "--data", str(small_dataset), "--config",
                           str(config)], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    summary = json.loads(done.stdout)
    for key in ("event_precision", "event_recall", "event_f1", "false_events_per_min_rest",
                "latency_after_sign_end_ms_median", "latency_after_sign_end_ms_p95", "realtime_factor"):
        assert key in summary
    assert summary["sessions"] == 1 and summary["realtime_factor"] > 1
    # The tiny model knows 4 labels, the dataset 50: said, not hidden.
    assert len(summary["labels_unknown_to_model"]) >= 20

    empty = subprocess.run([sys.executable, "-m", "stream.tools.evaluate", "--data", str(tmp_path / "nothing")],
                           capture_output=True, timeout=60)
    assert empty.returncode == 2 and len(empty.stderr.decode().strip().splitlines()) == 1


def test_a_sign_right_after_the_stream_starts_is_classified_on_a_padded_window(tmp_path):
    from stream.stages.classifier import Classifier
    from stream.stages.recognizer import Recognizer

    from daemon_helpers import synthetic_frames, tiny_model_card

    card = tiny_model_card(tmp_path / "model")
    config = config_from_dict({"model": {"card": str(card)}, "segmentation": {"warmup_s": 0.5}})
    recognizer = Recognizer(config, Classifier.from_config(config))
    recognitions = []
    for frame in synthetic_frames(4.0, [(0.8, 1.4)]):
        recognitions += recognizer.process_frame(frame)
    assert len(recognitions) == 1 and recognitions[0].segment.decided_index < 148
    assert recognizer.counters["windows_padded"] == 1 and recognizer.counters["windows_unavailable"] == 0
    assert abs(float(recognitions[0].probabilities.sum()) - 1.0) < 1e-4

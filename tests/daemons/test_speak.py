"""stream-speak as a real process on loopback with random ports: the real pipeline on the simulated
signer spoken into WAV files, a burst joined and bounded, bad labels, a failing or stalled audio
device, and the start-up errors. Skipped (with the reason) where espeak-ng is absent."""

from __future__ import annotations

import json
import shutil
import sys
import time
import wave

import msgpack
import numpy as np
import pytest
import zmq

from conftest import free_endpoint
from stream.config.sections import unspeakable_characters
from stream.stages.speech import speakable_text
from stream.wire.protocol import decode_event, decode_truth, encode_event

from daemon_helpers import stop_and_time, subscriber, wait_for_status, write_config

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng not installed (apt-get install espeak-ng)")
PYTHON_MODULE = "-m"


def speak_config(tmp_path, speak: str = "", extra: str = "", **kwargs):
    """A config with random endpoints, [speak] status_endpoint included; returns (path, endpoints)."""
    status = free_endpoint()
    path, endpoints = write_config(tmp_path, f'[speak]\nstatus_endpoint = "{status}"\n{speak}{extra}', **kwargs)
    return path, {**endpoints, "speak": status}


def event(seq, label="hello", confidence=0.9, session="sink-a"):
    return {"seq": seq, "session": session, "t_wall": time.time(), "label": label, "class_index": 1,
            "confidence": confidence, "model_id": "m", "start_index": 74 * seq, "end_index": 74 * seq + 50,
            "rate": "2000/27", "start_time_s": seq, "end_time_s": seq + 0.7, "start_wall": 1e9, "end_wall": 1e9,
            "source_session": "run-a", "prediction_seq": seq, "timing": {}}


def read_wav(path):
    with wave.open(str(path), "rb") as reader:
        assert reader.getsampwidth() == 2 and reader.getnchannels() == 1 and reader.getframerate() == 22050
        samples = np.frombuffer(reader.readframes(reader.getnframes()), "<i2").astype(np.float64)
    return samples.size / 22050, float(np.sqrt(np.mean(samples ** 2)))


def utterances(directory):
    index = directory / "utterances.jsonl"
    return [json.loads(line) for line in index.read_text().splitlines()] if index.exists() else []


def start_speak(processes, config, *arguments):
    return processes.start_python([PYTHON_MODULE, "stream.daemons.speak", "--config", str(config), *arguments])


def speak_status(socket, condition=lambda status: True, timeout_s=15.0):
    return wait_for_status(socket, lambda status: status["daemon"] == "stream-speak" and condition(status), timeout_s)


@needs_espeak
def test_the_real_pipeline_on_the_simulated_signer_is_spoken_into_wav_files(processes, zmq_context, tmp_path):
    """stream-acquire (simulated signer) -> stream-infer (the shipped student) -> stream-sink ->
    stream-speak --wav-dir: one WAV per sign event, in order, each real speech of a plausible length."""
    wav_dir = tmp_path / "speech"
    config, endpoints = speak_config(tmp_path, extra='[acquire.synthetic]\nsigns = ["hello", "thank_you", "water", "home"]\n'
                                     "rest_s = [1.0, 1.5]\n")
    events = subscriber(zmq_context, endpoints["events"], b"event")
    truth = subscriber(zmq_context, endpoints["frames"], b"truth")
    status = subscriber(zmq_context, endpoints["speak"], b"status")
    speak = start_speak(processes, config, "--wav-dir", str(wav_dir))
    first = speak_status(status)
    assert first["info"]["output"] == f"wav: {wav_dir}" and first["info"]["synthesizer"].startswith("espeak-ng")
    assert first["counters"]["utterances"] == 0 and "audio_start_ms_p95" in first["counters"]
    for name in ("sink", "infer", "acquire"):
        processes.start_python([PYTHON_MODULE, f"stream.daemons.{name}", "--config", str(config)])
    received = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(received) < 4:
        if events.poll(100, zmq.POLLIN):
            received.append(decode_event(events.recv_multipart()))
    assert len(received) >= 4, f"only {len(received)} events from the pipeline within 60 s"
    spoken = speak_status(status, lambda s: s["counters"]["events"] >= len(received)
                          and s["counters"]["queue_length"] == 0
                          and s["counters"]["signs_spoken"] + s["counters"]["labels_skipped"]
                          + s["counters"]["low_confidence_skipped"] >= s["counters"]["events"])["counters"]
    performed = []
    while truth.poll(0, zmq.POLLIN):
        performed.append(decode_truth(truth.recv_multipart())["label"])
    assert performed, "the simulated signer's ground truth never arrived"
    assert stop_and_time(speak) < 2.0 and speak.returncode == 0

    lines = utterances(wav_dir)
    said = [label for line in lines for label in line["labels"]]
    # Every event this test heard was said, in order (stream-speak may have heard one more since).
    assert said[:len(received)] == [event["label"] for event in received], (said, performed)
    assert [line["event_seqs"] for line in lines] == sorted(line["event_seqs"] for line in lines)
    files = sorted(wav_dir.glob("*.wav"))
    assert [path.name for path in files] == [line["file"] for line in lines] and len(files) == spoken["utterances"]
    assert len(files) >= 1 and files[0].name.startswith("000001-")
    for path, line in zip(files, lines):
        duration, rms = read_wav(path)
        assert rms > 500, f"{path.name} is silent"
        assert 0.3 * len(line["labels"]) < duration < 0.3 + 1.6 * len(line["labels"]), (path.name, duration)
        assert duration == pytest.approx(line["duration_s"], abs=1e-3)
        assert "thank_you" not in line["text"]  # the lexicon's words, not the label
    # Latency from each event's publication to its audio's start: measured, and well under a second here.
    assert 0 < spoken["audio_start_ms_p50"] <= spoken["audio_start_ms_p95"] < 1000
    assert spoken["bad_messages"] == spoken["synthesis_errors"] == spoken["audio_errors"] == 0


@needs_espeak
def test_a_burst_is_joined_into_few_phrases_and_the_queue_keeps_the_newest(processes, zmq_context, tmp_path):
    wav_dir = tmp_path / "speech"
    config, endpoints = speak_config(tmp_path, "max_queue = 5\n")
    publisher = zmq_context.socket(zmq.PUB)
    publisher.bind(endpoints["events"])
    status = subscriber(zmq_context, endpoints["speak"], b"status")
    start_speak(processes, config, "--wav-dir", str(wav_dir))
    speak_status(status)
    time.sleep(0.3)  # its subscription reaches our PUB (slow joiner)
    labels = [f"sign_{number:02d}" for number in range(20)]
    for seq, label in enumerate(labels):
        publisher.send_multipart(encode_event(event(seq, label)))
    counters = speak_status(status, lambda s: s["counters"]["events"] == 20 and s["counters"]["queue_length"] == 0
                            and s["counters"]["signs_spoken"] + s["counters"]["queue_dropped"] == 20)["counters"]
    lines = utterances(wav_dir)
    said = [label for line in lines for label in line["labels"]]
    # All 20 arrived while the first phrase was being made: a few phrases of joined signs, the oldest
    # dropped beyond 5 waiting, the newest always said, the order kept.
    assert counters["queue_dropped"] >= 20 - 3 * 5 and counters["utterances"] == len(lines) <= 4
    assert counters["signs_joined"] == len(said) - len(lines) > 0
    assert said == sorted(said) and said[-1] == "sign_19" and len(said) == counters["signs_spoken"]
    assert any(len(line["labels"]) > 1 and ", " in line["text"] for line in lines)
    for path in wav_dir.glob("*.wav"):
        duration, rms = read_wav(path)
        assert rms > 500 and duration > 0.3


@needs_espeak
def test_bad_labels_and_bad_messages_are_handled_safely(processes, zmq_context, tmp_path):
    wav_dir = tmp_path / "speech"
    config, endpoints = speak_config(tmp_path, "min_confidence = 0.5\nlow_confidence = \"skip\"\n")
    publisher = zmq_context.socket(zmq.PUB)
    publisher.bind(endpoints["events"])
    status = subscriber(zmq_context, endpoints["speak"], b"status")
    start_speak(processes, config, "--wav-dir", str(wav_dir))
    speak_status(status)
    time.sleep(0.3)
    injected = tmp_path / "injected.wav"
    bad_labels = ["[[h@l'oU]]", "\x015S\x01 stop", f"-w {injected}", "<speak>hi</speak>", "[[]]", "z" * 4000,
                  "good_morning"]
    publisher.send_multipart([b"event", b"\xc1 not msgpack"])
    publisher.send_multipart([b"event", msgpack.packb({**event(0), "v": 1, "confidence": 2.0})])
    publisher.send_multipart(encode_event(event(0, "hello", confidence=0.2)))  # below min_confidence
    for seq, label in enumerate(bad_labels, start=1):
        publisher.send_multipart(encode_event(event(seq, label)))
        time.sleep(0.15)  # one phrase each: the texts can be compared one by one
    counters = speak_status(status, lambda s: s["counters"]["events"] == len(bad_labels) + 1
                            and s["counters"]["queue_length"] == 0
                            and s["counters"]["signs_spoken"] == len(bad_labels) - 1)["counters"]
    assert counters["bad_messages"] == 2 and counters["low_confidence_skipped"] == 1
    assert counters["labels_skipped"] == 1 and counters["labels_not_in_lexicon"] == len(bad_labels)
    texts = [line["text"] for line in utterances(wav_dir)]
    # Phrases may join signs that came while one was said: compare the words of every sign in order.
    words = ", ".join(texts).split(", ")
    assert words == ["h l'oU", "5S stop", speakable_text(f"-w {injected}"), "speak hi speak", "z" * 80, "good morning"]
    assert words[2].startswith("-w tmp ") and words[2].endswith(" injected.wav")
    assert all(unspeakable_characters(text) == "" for text in texts) and not injected.exists()
    assert sorted(path.name for path in wav_dir.iterdir()) == sorted([*(line["file"] for line in utterances(wav_dir)),
                                                                     "utterances.jsonl"])


@needs_espeak
def test_a_failing_or_stalled_audio_device_is_counted_and_never_stops_the_daemon(processes, zmq_context, tmp_path):
    stalled = 'player = ["sleep", "30"]\ndevice_timeout_s = 0.3\n'
    config, endpoints = speak_config(tmp_path, stalled)
    publisher = zmq_context.socket(zmq.PUB)
    publisher.bind(endpoints["events"])
    status = subscriber(zmq_context, endpoints["speak"], b"status")
    speak = start_speak(processes, config)
    assert speak_status(status)["info"]["output"] == "device: sleep 30"
    time.sleep(0.3)
    publisher.send_multipart(encode_event(event(0, "hello")))
    speak_status(status, lambda s: s["counters"]["signs_queued"] == 1 and s["counters"]["queue_length"] == 0)
    for seq in (1, 2):  # while the first is stuck in the device
        publisher.send_multipart(encode_event(event(seq, "hello")))
    # The first phrase stalls the device; the next two wait meanwhile and become one phrase, which
    # stalls too: two timeouts, and the loop answered with heartbeats throughout.
    counters = speak_status(status, lambda s: s["counters"]["audio_timeouts"] == 2 and s["counters"]["queue_length"] == 0,
                            timeout_s=15)["counters"]
    assert counters["events"] == 3 and counters["utterances"] == 0 and counters["signs_joined"] == 1
    publisher.send_multipart(encode_event(event(3, "water")))
    time.sleep(0.2)  # mid-playback of a stalled device: it still stops within 2 s
    assert stop_and_time(speak) < 2.0 and speak.returncode == 0

    failing = f'player = ["{sys.executable}", "-c", "import sys; sys.stdin.buffer.read(); sys.exit(1)"]\n'
    config, endpoints = speak_config(tmp_path, failing)
    publisher.close()
    publisher = zmq_context.socket(zmq.PUB)
    publisher.bind(endpoints["events"])
    status = subscriber(zmq_context, endpoints["speak"], b"status")
    speak = start_speak(processes, config)
    speak_status(status)
    time.sleep(0.3)
    for seq in range(2):
        publisher.send_multipart(encode_event(event(seq, "hello")))
        speak_status(status, lambda s: s["counters"]["audio_errors"] == seq + 1)
    counters = speak_status(status, lambda s: s["counters"]["audio_errors"] == 2)["counters"]
    assert counters["utterances"] == 0
    assert stop_and_time(speak) < 2.0 and speak.returncode == 0


@pytest.mark.parametrize(
    "speak, fragment",
    [
        ('synthesizer = "/nonexistent/espeak-ng"\n', "apt-get install espeak-ng"),
        ('player = ["no-such-player"]\n', "apt-get install alsa-utils"),
        ('language = "xx"\n', "English: "),
    ],
)
def test_start_up_problems_exit_1_with_one_line_naming_the_fix(processes, tmp_path, speak, fragment):
    if "language" in speak or "player" in speak:
        if shutil.which("espeak-ng") is None:
            pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    config, _ = speak_config(tmp_path, speak)
    process = start_speak(processes, config)
    _, err = process.communicate(timeout=20)
    assert process.returncode == 1, err
    errors = [line for line in err.decode().splitlines() if "ERROR" in line]
    assert len(errors) == 1 and fragment in errors[0], err.decode()


def test_a_bad_speak_config_exits_2_with_one_line(processes, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[speak]\nlexicon = [["hello", "hi <break time=\\"3s\\"/>"]]\n')
    process = start_speak(processes, config)
    _, err = process.communicate(timeout=20)
    lines = err.decode().strip().splitlines()
    assert process.returncode == 2 and len(lines) == 1 and "speak.lexicon[0]" in lines[0] and "markup" in lines[0]

"""The synthesiser and the outputs for real: espeak-ng writes WAVs that are read back (format,
plausible duration, non-silent), Hindi is spoken, text cannot inject commands, and a failing,
stalled or missing player is a clear error. Skipped (with the reason) where espeak-ng is absent."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from stream.config import config_from_dict
from stream.speak.espeak import Espeak, SynthesisError, SynthesizerMissing, VoiceError
from stream.speak.output import AudioDevice, AudioError, AudioTimeout, PlayerMissing, WavDirectory
from stream.speak.worker import SpeechWorker
from stream.stages.speech import Phrase, QueuedSign, SpeechQueue, speakable_text

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng not installed (apt-get install espeak-ng)")


def speak_config(**speak):
    return config_from_dict({"speak": speak}).speak


def read_wav(path):
    with wave.open(str(path), "rb") as reader:
        assert reader.getsampwidth() == 2 and reader.getnchannels() == 1
        samples = np.frombuffer(reader.readframes(reader.getnframes()), "<i2").astype(np.float64)
        return reader.getframerate(), samples


def phrase(text, labels=("hello",)):
    signs = tuple(QueuedSign(label, text, 0.9, number, time.time(), time.time()) for number, label in enumerate(labels))
    return Phrase(text, signs)


def test_a_missing_synthesiser_is_an_error_naming_the_package():
    with pytest.raises(SynthesizerMissing, match=r"apt-get install espeak-ng"):
        Espeak(speak_config(synthesizer="/nonexistent/espeak-ng"))


def test_a_program_that_is_not_espeak_is_refused(tmp_path):
    with pytest.raises(SynthesizerMissing, match="did not answer as espeak-ng"):
        Espeak(speak_config(synthesizer=shutil.which("true")))


@needs_espeak
def test_english_speech_is_a_real_wav_of_plausible_length_and_loudness(tmp_path):
    synthesizer = Espeak(speak_config())
    short, long = synthesizer.synthesize("hello"), synthesizer.synthesize("hello, thank you, water, good morning")
    output = WavDirectory(tmp_path)
    output.play(1, phrase("hello"), short)
    output.play(2, phrase("hello, thank you, water, good morning", ("hello", "thank_you", "water", "good_morning")), long)
    files = sorted(tmp_path.glob("*.wav"))
    assert [path.name for path in files] == ["000001-hello.wav", "000002-hello+thank_you+water+good_morning.wav"]
    durations = []
    for path in files:
        rate, samples = read_wav(path)
        assert rate == 22050
        assert np.sqrt(np.mean(samples ** 2)) > 500  # speech, not silence (16-bit full scale is 32767)
        durations.append(samples.size / rate)
    assert 0.25 < durations[0] < 1.5 and durations[0] * 2.5 < durations[1] < 6.0
    assert 0 <= short.first_audio_wall - short.started_wall < synthesizer.timeout_s
    lines = [json.loads(line) for line in (tmp_path / "utterances.jsonl").read_text().splitlines()]
    assert [line["labels"] for line in lines] == [["hello"], ["hello", "thank_you", "water", "good_morning"]]
    assert lines[1]["duration_s"] == pytest.approx(durations[1], abs=1e-3)


@needs_espeak
def test_hindi_has_a_voice_and_speaks_devanagari(tmp_path):
    synthesizer = Espeak(speak_config(language="hi", rate_wpm=140))
    assert synthesizer.voice == "hi"
    audio = synthesizer.synthesize("धन्यवाद, नमस्ते")
    samples = np.frombuffer(audio.pcm, "<i2").astype(np.float64)
    assert audio.duration_s > 0.5 and np.sqrt(np.mean(samples ** 2)) > 500
    Espeak(speak_config(language="en-gb", voice="f3")).synthesize("thank you")


@needs_espeak
def test_unknown_languages_and_variants_are_refused_with_what_exists():
    with pytest.raises(VoiceError, match=r"language = 'xx'.*English: .*en-gb.*Hindi: hi"):
        Espeak(speak_config(language="xx"))
    with pytest.raises(VoiceError, match=r"voice = 'zz'.*f3"):
        Espeak(speak_config(voice="zz"))


@needs_espeak
def test_what_espeak_would_interpret_never_reaches_it():
    """espeak-ng reads "[[...]]" as phonemes and \\x01 as an embedded command even without -m: the
    raw label would say "hello" (and change the speed); made safe, it is only letters."""

    def phonemes(text):
        return subprocess.run(["espeak-ng", "-q", "-x", "--stdin"], input=text.encode(), capture_output=True,
                              timeout=10).stdout.decode().strip()

    assert phonemes("[[h@l'oU]]") == phonemes("hello")              # the danger is real
    assert phonemes(speakable_text("[[h@l'oU]]")) != phonemes("hello")
    assert "5" not in phonemes("\x015S go") and speakable_text("\x015S go") == "5S go"
    synthesizer = Espeak(speak_config())
    for text in ("[[h@loU]]", "hi\x01", "<speak>hi</speak>", ""):
        with pytest.raises(ValueError, match="refusing to synthesise"):
            synthesizer.synthesize(text)
    # A label that looks like options is read from standard input: words, no file written.
    synthesizer.synthesize(speakable_text("-w /tmp/signstream-injected.wav"))
    assert not Path("/tmp/signstream-injected.wav").exists()


@needs_espeak
def test_a_failing_a_stalled_and_a_missing_player(tmp_path):
    audio = Espeak(speak_config()).synthesize("hello")
    with pytest.raises(AudioError, match="exited with status 3"):
        AudioDevice((sys.executable, "-c", "import sys; sys.stdin.buffer.read(); sys.exit(3)"), 1.0).play(1, phrase("hello"), audio)
    started = time.monotonic()
    with pytest.raises(AudioTimeout, match="slow or stalled audio device"):
        AudioDevice(("sleep", "30"), 0.2).play(1, phrase("hello"), audio)
    assert time.monotonic() - started < audio.duration_s + 2.0
    with pytest.raises(PlayerMissing, match="apt-get install alsa-utils"):
        AudioDevice(("no-such-player",), 1.0)
    if shutil.which("aplay") and not list(Path("/dev").glob("snd/pcm*")):
        with pytest.raises(AudioError, match="aplay exited with status"):  # no sound card here
            AudioDevice(("aplay", "-q"), 2.0).play(1, phrase("hello"), audio)


@needs_espeak
def test_the_worker_joins_signs_that_arrive_while_it_speaks_and_counts_failures(tmp_path):
    """A player that takes 0.6 s per phrase: the signs pushed meanwhile become one phrase."""
    player = (sys.executable, "-c", f"import shutil, sys, time; shutil.copyfileobj(sys.stdin.buffer, "
              f"open('{tmp_path}/played-' + str(time.monotonic_ns()), 'wb')); time.sleep(0.6)")
    worker = SpeechWorker(SpeechQueue(speak_config()), Espeak(speak_config()), AudioDevice(player, 5.0))
    worker.start()
    try:
        worker.push({"seq": 0, "t_wall": time.time(), "label": "hello", "confidence": 0.9}, time.time())
        deadline = time.monotonic() + 10
        while worker.snapshot()["queue_length"] and time.monotonic() < deadline:  # until "hello" is being said
            time.sleep(0.01)
        for seq, label in enumerate(["water", "thank_you", "home"], start=1):
            worker.push({"seq": seq, "t_wall": time.time(), "label": label, "confidence": 0.9}, time.time())
        while not worker.idle() and time.monotonic() < deadline + 10:
            time.sleep(0.02)
        counters = worker.snapshot()
    finally:
        worker.stop()
    assert counters["utterances"] == 2 and counters["signs_spoken"] == 4 and counters["signs_joined"] == 2
    assert counters["audio_start_ms_p95"] >= counters["audio_start_ms_p50"] > 0
    assert len(list(tmp_path.glob("played-*"))) == 2
    # A player that fails: counted, and the worker goes on.
    failing = SpeechWorker(SpeechQueue(speak_config()), Espeak(speak_config()), AudioDevice(("false",), 1.0))
    failing.start()
    try:
        for seq in range(2):
            failing.push({"seq": seq, "t_wall": time.time(), "label": "hello", "confidence": 0.9}, time.time())
            deadline = time.monotonic() + 10
            while failing.snapshot()["audio_errors"] < seq + 1 and time.monotonic() < deadline:
                time.sleep(0.02)
        assert failing.snapshot()["audio_errors"] == 2 and failing.snapshot()["utterances"] == 0
    finally:
        failing.stop()


@needs_espeak
def test_a_synthesis_that_runs_past_its_timeout_is_an_error(tmp_path):
    slow = tmp_path / "espeak-ng"
    slow.write_text(f"#!/bin/sh\nif [ \"$1\" = --version ] || [ \"${{1#--voices}}\" != \"$1\" ]; then exec espeak-ng \"$@\"; fi\nsleep 30\n")
    slow.chmod(0o755)
    synthesizer = Espeak(speak_config(synthesizer=str(slow), synthesis_timeout_s=0.3))
    started = time.monotonic()
    with pytest.raises(SynthesisError, match="synthesis_timeout_s = 0.3"):
        synthesizer.synthesize("hello")
    assert time.monotonic() - started < 2.0

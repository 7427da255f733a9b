"""The stream-speak benchmark runs end to end (a few events) and its figures hang together."""

from __future__ import annotations

import shutil

import pytest

from stream.tools import bench, speak_bench


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)")
def test_speak_bench_measures_audio_start_and_the_burst(monkeypatch):
    monkeypatch.setenv("SIGNSTREAM_BENCH_SPEAK_EVENTS", "5")
    figures = speak_bench.run()
    assert figures["speak_events"] == figures["speak_utterances_paced"] == 5
    assert 0 < figures["speak_synthesis_first_audio_ms_p50"] <= figures["speak_audio_start_ms_p50"]
    assert figures["speak_audio_start_ms_p50"] <= figures["speak_audio_start_ms_p95"] < 2000
    assert figures["speak_burst_signs_spoken"] + figures["speak_burst_queue_dropped"] == speak_bench.BURST
    assert 1 <= figures["speak_burst_utterances"] < figures["speak_burst_signs_spoken"]
    assert "stream.tools.speak_bench" in bench.BENCH_MODULES

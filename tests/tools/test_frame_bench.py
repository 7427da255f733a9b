"""The per-frame bench (``python -m stream.tools.bench --only frame_bench``) on a few seconds of
frames: every figure present, the parts measured beside the whole, and the paced controls timed
over the right number of frames."""

from __future__ import annotations

import time

import pytest

from stream.tools import frame_bench


@pytest.mark.timeout(240)
def test_the_frame_bench_reports_hot_paced_and_the_host_anchor(monkeypatch):
    monkeypatch.setattr(frame_bench, "SECONDS", 4.0)
    monkeypatch.setattr(frame_bench, "ROUNDS", 1)
    monkeypatch.setattr(frame_bench, "PACED_S", 0.5)
    figures = frame_bench.run()
    assert "infer_frame_error" not in figures, figures
    timings = ("infer_frame_us", "infer_frame_decode_us", "infer_frame_dsp_us", "infer_frame_paced_us",
               "infer_frame_spin_paced_us", "host_numpy_call_hot_us", "host_numpy_call_paced_us")
    assert all(0 < figures[name] < 100_000 for name in timings), figures
    # The whole path includes its decoding and its DSP (each timed alone here, in the same round).
    assert figures["infer_frame_us"] > max(figures["infer_frame_decode_us"], figures["infer_frame_dsp_us"])
    assert figures["infer_frame_frames"] == int(4.0 / 0.0135)
    assert figures["host_numpy_call_paced_over_hot"] == pytest.approx(
        figures["host_numpy_call_paced_us"] / figures["host_numpy_call_hot_us"], rel=0.05, abs=0.1)


def test_the_busy_wait_waits_without_sleeping(monkeypatch):
    def no_sleep(seconds):
        raise AssertionError("the spin control must not sleep")

    monkeypatch.setattr(time, "sleep", no_sleep)
    started = time.perf_counter()
    frame_bench._busy_wait(0.02)
    assert time.perf_counter() - started >= 0.02

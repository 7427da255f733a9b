"""The pipeline bench's IPC anchor: two real ZeroMQ hops through a relay process, measured back to
back and paced, and the relay process gone afterwards."""

from __future__ import annotations

import subprocess

import pytest

from stream.tools import pipeline_bench


@pytest.mark.timeout(60)
def test_ipc_anchor_measures_both_ways_and_stops_its_relay(monkeypatch):
    started = []
    real_popen = subprocess.Popen

    def recording_popen(*arguments, **options):
        process = real_popen(*arguments, **options)
        started.append(process)
        return process

    monkeypatch.setattr(pipeline_bench.subprocess, "Popen", recording_popen)
    figures = pipeline_bench._ipc_anchor(messages=30, timeout_s=10.0)
    assert set(figures) == {"host_ipc_hot_ms_p50", "host_ipc_hot_ms_p99", "host_ipc_paced_ms_p50",
                            "host_ipc_paced_ms_p99"}
    assert all(0 < value < 10_000 for value in figures.values())
    assert figures["host_ipc_hot_ms_p50"] <= figures["host_ipc_hot_ms_p99"]
    assert len(started) == 1 and started[0].poll() is not None  # the relay was stopped

"""pytest-benchmark of the DSP kernels (``pytest tests/dsp/test_bench_dsp.py --benchmark-enable``).

By default the suite runs with --benchmark-disable: each benchmark then runs once, as a test
(outputs are still checked). Figures that matter are ratios against scipy.signal measured side by
side: ``python -m stream.tools.bench --only dsp`` (docs/DSP.md).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from stream.config import Config
from stream.dsp.bench import ScipyFrameChain, frames_of, synthetic_recording
from stream.dsp.preprocess import Preprocessor
from stream.dsp.sosfilt import sosfilt_chunk, steady_state

CONFIG = Config()


@pytest.fixture(scope="module")
def recording():
    return synthetic_recording(2.0, seed=4)


@pytest.fixture(scope="module")
def frames(recording):
    return frames_of(*recording)


def test_frame_chain_ours(benchmark, frames):
    preprocessor = Preprocessor(CONFIG)
    for frame in frames[:10]:
        preprocessor.process_frame(frame)
    remaining = iter(frames[10:])
    block = benchmark.pedantic(lambda: preprocessor.process_frame(next(remaining)), rounds=100, iterations=1)
    assert block is not None and block.emg.shape == (1, 6) and block.acc.shape == (1, 18)


def test_frame_chain_scipy(benchmark, frames):
    chain = ScipyFrameChain(Preprocessor(CONFIG), frames[0])
    for frame in frames[:10]:
        chain.process_frame(frame)
    remaining = iter(frames[10:])
    outputs = benchmark.pedantic(lambda: chain.process_frame(next(remaining)), rounds=100, iterations=1)
    assert [output.shape for output in outputs] == [(1, 6), (1, 18), (1, 18)]


def test_recording_ours(benchmark, recording):
    preprocessor = Preprocessor(CONFIG)
    block = benchmark(preprocessor.process_recording, *recording)
    assert len(block) == 148 - 4 and block.valid.all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sos_filter_ours(benchmark, recording, dtype):
    emg = recording[0].astype(dtype)
    sos = Preprocessor(CONFIG).designs["emg"].sos
    zi = steady_state(sos, emg[0])
    filtered, _ = benchmark(sosfilt_chunk, sos, emg, zi)
    reference = signal.sosfilt(sos, emg.astype(np.float64), axis=0, zi=zi)[0]
    np.testing.assert_allclose(filtered, reference, rtol=0, atol=1e-6 * np.abs(reference).max())


def test_sos_filter_scipy(benchmark, recording):
    emg = recording[0].astype(np.float64)
    sos = Preprocessor(CONFIG).designs["emg"].sos
    zi = steady_state(sos, emg[0])
    benchmark(lambda: signal.sosfilt(sos, emg, axis=0, zi=zi))


def test_bench_figures_are_measured_side_by_side():
    from stream.dsp import bench

    frames = bench.time_frames(seconds=3.0)
    batch = bench.time_batch(seconds=3.0)
    assert set(frames) == {"dsp_frame_us", "dsp_frame_scipy_us", "dsp_frame_speedup_vs_scipy"}
    assert set(batch) == {"dsp_batch_60s_ms", "dsp_batch_60s_scipy_ms", "dsp_batch_speedup_vs_scipy"}
    assert frames["dsp_frame_us"] > 0 and batch["dsp_batch_speedup_vs_scipy"] > 0


def test_bench_entry_point_refuses_an_unknown_module(capsys):
    from stream.tools.bench import main

    with pytest.raises(SystemExit) as raised:
        main(["--only", "no-such-part"])
    assert raised.value.code == 2
    assert "matches none of" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_entry_point_prints_one_json_object():
    import json
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "stream.tools.bench", "--only", "dsp"], capture_output=True, text=True,
                            check=True, timeout=600)
    figures = json.loads(result.stdout)
    for key in ("dsp_frame_speedup_vs_scipy", "dsp_batch_speedup_vs_scipy", "dsp_frame_us", "numba_warm_start_s",
                "numba_cold_start_s"):
        assert figures[key] > 0

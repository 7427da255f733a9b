"""DSP benchmarks, side by side with scipy.signal in one run (``python -m stream.tools.bench --only dsp``).

- ``dsp_frame_us``: our whole chain per 13.5 ms frame (6 sEMG + 36 IMU channels), median us.
- ``dsp_frame_speedup_vs_scipy``: the same chain built from scipy.signal calls per frame with
  carried state (``sosfilt`` with ``zi``, ``upfirdn`` over the FIR span of the new outputs), median
  over median, measured interleaved.
- ``dsp_batch_speedup_vs_scipy``: a 60 s recording at once, ours (``process_recording``) vs
  ``sosfilt`` + ``resample_poly`` on the whole arrays.
- ``dsp_window_push_us`` / ``dsp_window_ending_at_us``: the WindowAssembler per frame, median us.
- ``numba_warm_start_s`` / ``numba_cold_start_s``: a fresh interpreter importing the Preprocessor and
  running its first frame, with a warm cache / an empty temporary NUMBA_CACHE_DIR.
The scipy chains' outputs are checked against ours before anything is timed.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy import signal

from stream.config import Config
from stream.dsp.preprocess import AlignedBlock, Preprocessor
from stream.dsp.windows import WindowAssembler
from stream.wire.frames import Frame

FRAMES_PER_SECOND = 2000 / 27
ROUNDS = 7


def synthetic_recording(seconds: float, seed: int = 0):
    """Levels like real Trigno exports: sEMG tens of uV..mV, acc ~1 g, gyro tens of deg/s."""
    frames = int(seconds * FRAMES_PER_SECOND)
    rng = np.random.default_rng(seed)
    emg = (rng.standard_normal((15 * frames, 6)) * 0.05).astype(np.float32)
    acc = (rng.standard_normal((2 * frames, 18)) * 0.05 + 1.0).astype(np.float32)
    gyro = (rng.standard_normal((2 * frames, 18)) * 20.0).astype(np.float32)
    return emg, acc, gyro


def frames_of(emg, acc, gyro):
    return [Frame(k, 15 * k, 2 * k, emg[15 * k:15 * k + 15], acc[2 * k:2 * k + 2], gyro[2 * k:2 * k + 2])
            for k in range(emg.shape[0] // 15)]


class ScipyFrameChain:
    """The reference streaming chain from scipy.signal calls, one call per step per frame."""

    def __init__(self, preprocessor: Preprocessor, first_frame: Frame):
        self.modalities = []
        for name in ("emg", "acc", "gyro"):
            design = preprocessor.designs[name]
            resampler = design.resampler
            assert resampler.up == 1, "the scipy reference chain handles integer decimation only"
            x0 = getattr(first_frame, name)[0].astype(np.float64)
            self.modalities.append({
                "name": name, "sos": np.array(design.sos), "zi": signal.sosfilt_zi(design.sos)[:, :, None] * x0,
                "rectify": design.rectify, "scale": design.scale, "h": np.array(resampler.coefficients),
                "down": resampler.down, "half": resampler.half_len, "next": 0, "history": None, "history_first": 0,
            })

    def process_frame(self, frame: Frame) -> list[np.ndarray]:
        outputs = []
        for modality in self.modalities:
            x = getattr(frame, modality["name"])
            first = frame.emg_first_index if modality["name"] == "emg" else frame.imu_first_index
            y, modality["zi"] = signal.sosfilt(modality["sos"], x, axis=0, zi=modality["zi"])
            if modality["rectify"]:
                y = np.abs(y)
            if modality["history"] is None:  # the past before the first sample: a hold (edge padding)
                modality["history"] = np.repeat(y[:1], modality["half"], axis=0)
                modality["history_first"] = first - modality["half"]
            history = np.concatenate([modality["history"], y])
            last = first + x.shape[0] - 1
            down, half = modality["down"], modality["half"]
            k0, k1 = modality["next"], (last - half) // down
            if k1 >= k0:
                lo = k0 * down - half - modality["history_first"]
                segment = history[lo:k1 * down + half + 1 - modality["history_first"]]
                full = signal.upfirdn(modality["h"], segment, 1, down, axis=0)
                offset = 2 * half // down
                outputs.append(full[offset:offset + k1 - k0 + 1] * modality["scale"])
                modality["next"] = k1 + 1
            else:
                outputs.append(np.empty((0, x.shape[1])))
            keep = 2 * half + down
            modality["history"] = history[-keep:]
            modality["history_first"] = last + 1 - min(keep, history.shape[0])
        return outputs


def scipy_recording(preprocessor: Preprocessor, emg, acc, gyro) -> list[np.ndarray]:
    outputs = []
    for name, x in (("emg", emg), ("acc", acc), ("gyro", gyro)):
        design = preprocessor.designs[name]
        resampler = design.resampler
        y, _ = signal.sosfilt(design.sos, x, axis=0, zi=signal.sosfilt_zi(design.sos)[:, :, None] * x[0])
        if design.rectify:
            y = np.abs(y)
        outputs.append(signal.resample_poly(y, resampler.up, resampler.down, window=resampler.coefficients / resampler.up,
                                            padtype="edge", axis=0) * design.scale)
    return outputs


def _check_same(ours: list[np.ndarray], theirs: list[np.ndarray], what: str) -> None:
    for mine, reference in zip(ours, theirs):
        rows = min(len(mine), len(reference))
        error = np.abs(mine[:rows] - reference[:rows]).max() / max(np.abs(reference[:rows]).max(), 1e-12)
        if rows == 0 or error > 1e-5:
            raise AssertionError(f"{what}: our chain and the scipy chain differ (relative error {error:.2e})")


def time_frames(seconds: float = 20.0) -> dict:
    config = Config()
    frames = frames_of(*synthetic_recording(seconds, seed=1))
    ours, reference = Preprocessor(config), ScipyFrameChain(Preprocessor(config), frames[0])
    our_blocks = [ours.process_frame(frame) for frame in frames[:200]]  # compiles / warms up
    their_blocks = [reference.process_frame(frame) for frame in frames[:200]]
    _check_same([np.concatenate([getattr(b, name) for b in our_blocks if b is not None]) for name in ("emg", "acc", "gyro")],
                [np.concatenate([b[column] for b in their_blocks]) for column in range(3)], "per-frame")
    ours_us, theirs_us = [], []
    for _ in range(ROUNDS):  # alternating, so both see the same machine load
        ours_chain = Preprocessor(config)
        theirs_chain = ScipyFrameChain(ours_chain, frames[0])
        start = time.perf_counter()
        for frame in frames:
            ours_chain.process_frame(frame)
        ours_us.append((time.perf_counter() - start) / len(frames) * 1e6)
        start = time.perf_counter()
        for frame in frames:
            theirs_chain.process_frame(frame)
        theirs_us.append((time.perf_counter() - start) / len(frames) * 1e6)
    ours_median, theirs_median = statistics.median(ours_us), statistics.median(theirs_us)
    return {"dsp_frame_us": round(ours_median, 2), "dsp_frame_scipy_us": round(theirs_median, 2),
            "dsp_frame_speedup_vs_scipy": round(theirs_median / ours_median, 2)}


def time_batch(seconds: float = 60.0) -> dict:
    config = Config()
    emg, acc, gyro = synthetic_recording(seconds, seed=2)
    preprocessor = Preprocessor(config)
    block = preprocessor.process_recording(emg, acc, gyro)
    _check_same([block.emg, block.acc, block.gyro], scipy_recording(preprocessor, emg, acc, gyro), "batch")
    ours_s, theirs_s = [], []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        preprocessor.process_recording(emg, acc, gyro)
        ours_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        scipy_recording(preprocessor, emg, acc, gyro)
        theirs_s.append(time.perf_counter() - start)
    ours_median, theirs_median = statistics.median(ours_s), statistics.median(theirs_s)
    return {"dsp_batch_60s_ms": round(ours_median * 1e3, 2), "dsp_batch_60s_scipy_ms": round(theirs_median * 1e3, 2),
            "dsp_batch_speedup_vs_scipy": round(theirs_median / ours_median, 2)}


def time_windows(pushes: int = 3000) -> dict:
    """WindowAssembler per frame: push one model sample (hop 1 cuts one window) and read one back."""
    config = Config()
    assembler = WindowAssembler(config)
    rows = np.ones((1, 6), np.float32), np.ones((1, 18), np.float32), np.ones((1, 18), np.float32)
    blocks = [AlignedBlock(index, *rows, np.ones(1, bool)) for index in range(pushes + 200)]
    for block in blocks[:200]:
        assembler.push(block)
    push_us, read_us = [], []
    for block in blocks[200:]:
        start = time.perf_counter()
        assembler.push(block)
        middle = time.perf_counter()
        assembler.window_ending_at(block.first_index - 10)
        push_us.append((middle - start) * 1e6)
        read_us.append((time.perf_counter() - middle) * 1e6)
    return {"dsp_window_push_us": round(statistics.median(push_us), 2),
            "dsp_window_ending_at_us": round(statistics.median(read_us), 2)}


START_SCRIPT = """
import json, time
start = time.perf_counter()
import numpy as np
from stream.config import Config
from stream.dsp.preprocess import Preprocessor
from stream.wire.frames import Frame
imported = time.perf_counter()
preprocessor = Preprocessor(Config())
designed = time.perf_counter()
for k in range(6):
    preprocessor.process_frame(Frame(k, 15 * k, 2 * k, np.zeros((15, 6), np.float32), np.ones((2, 18), np.float32),
                                     np.zeros((2, 18), np.float32)))
done = time.perf_counter()
print(json.dumps({"total": done - start, "import": imported - start, "design": designed - imported,
                  "first_frames": done - designed}))
"""


def time_start(cache_dir: str | None = None) -> dict:
    """Seconds from a fresh interpreter's first import to its first frames processed: total and
    its parts (imports, filter design, first frames = loading or compiling the kernels)."""
    environment = dict(os.environ)
    if cache_dir is not None:
        environment["NUMBA_CACHE_DIR"] = cache_dir
    result = subprocess.run([sys.executable, "-c", START_SCRIPT], env=environment, capture_output=True, text=True,
                            check=True, timeout=600)
    return json.loads(result.stdout.strip().splitlines()[-1])


def time_starts() -> dict:
    with tempfile.TemporaryDirectory(prefix="signstream-numba-") as cache_dir:
        cold = time_start(cache_dir)  # empty cache: compiles every kernel
    time_start()  # make sure the project's own cache is populated
    warm_runs = [time_start() for _ in range(3)]
    warm = sorted(warm_runs, key=lambda run: run["total"])[1]  # the median run
    return {"numba_cold_start_s": round(cold["total"], 3), "numba_cold_first_frames_s": round(cold["first_frames"], 3),
            "numba_warm_start_s": round(warm["total"], 3), "numba_warm_first_frames_s": round(warm["first_frames"], 3),
            "dsp_import_s": round(warm["import"], 3), "dsp_design_s": round(warm["design"], 3)}


def run() -> dict:
    return {**time_frames(), **time_batch(), **time_windows(), **time_starts()}

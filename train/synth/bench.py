"""Benchmarks of the data part (``python -m stream.tools.bench --only synth``), a few seconds in all.

- generating isolated recordings (one core) and writing/reading them in the HDF5 format, and what that
  projects for the full 5,000-recording set on 2 worker processes (the measured full run is in
  docs/DATA.md);
- the synthetic source: cost per 13.5 ms frame and its real-time factor (the demo runs it on a Pi).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from stream.config import config_from_dict
from stream.recording import RecordingFile, write_recordings
from stream.sources.synthetic import SyntheticSource
from stream.synth.signer import make_signer
from train.synth.generate import isolated_recording

FULL_SET = 5000
FRAME_MS = 13.5


def run(recordings: int = 100, frames: int = 2000) -> dict:
    signer = make_signer(0, 0)
    started = time.perf_counter()
    items = [(f"r{k:03d}", isolated_recording(0, signer, k % 50, k // 50)) for k in range(recordings)]
    generate_ms = (time.perf_counter() - started) * 1000 / recordings
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.h5"
        started = time.perf_counter()
        write_recordings(path, items)
        write_ms = (time.perf_counter() - started) * 1000 / recordings
        started = time.perf_counter()
        with RecordingFile(path) as handle:
            for key, _ in items:
                handle.read(key)
        read_ms = (time.perf_counter() - started) * 1000 / recordings
    source = SyntheticSource(config_from_dict({}), realtime=False)
    next(source)
    started = time.perf_counter()
    for _ in range(frames):
        next(source)
    frame_us = (time.perf_counter() - started) * 1e6 / frames
    return {
        "synth_generate_ms_per_recording": round(generate_ms, 2),
        "synth_hdf5_write_ms_per_recording": round(write_ms, 2),
        "synth_hdf5_read_ms_per_recording": round(read_ms, 2),
        "synth_projected_full_set_s_2_workers": round(FULL_SET * (generate_ms / 2 + write_ms) / 1000, 1),
        "synthetic_source_us_per_frame": round(frame_us, 1),
        "synthetic_source_realtime_factor": round(FRAME_MS * 1000 / frame_us, 1),
    }

"""What the monitor page draws, from the frames: decimated raw traces and the segmenter's view.

A stage with no sockets (``add_frame`` in, ``flush`` out), so tests feed it frames directly.

Per frame (13.5 ms for Trigno) it keeps one column per sEMG channel: the minimum and maximum of the
frame's raw samples (15 at 1111 Hz), which is what a pixel column of a 10 s plot can show anyway; a
NaN (a sensor dropout) makes the column NaN, so a dropout is a visible break. The IMU is one value
per frame: the accelerometer axes averaged over the frame's samples, and each IMU sensor's gyroscope
magnitude (the same quantity the segmenter's motion is made of).

The derived traces come from the project's own stages, on the monitor's own copies (nothing new is
computed, and they cannot drift from what stream-infer does): ``stream.dsp.preprocess.Preprocessor``
gives the sEMG envelope the model sees (model rate, divided by ``[preprocess] emg_scale`` back to the
sensors' unit), and ``stream.stages.segmenter.Segmenter`` the sEMG energy and IMU motion as ratios to
their rest baselines, its thresholds in force (the adaptive sEMG ones move) and the signs it finds.
Its state is read after each block, one point per model-rate block (one per frame by default).

``flush`` returns everything gathered since the last call as one JSON-ready dict of flat, rounded
lists (the page reshapes them by the channel counts ``describe`` gives).
"""

from __future__ import annotations

import math

import numpy as np

from stream.dsp.preprocess import Preprocessor
from stream.stages.segmenter import Segmenter
from stream.wire.frames import Frame

# Decimals kept on the wire: far below what a plot can show, and short JSON.
_DECIMALS = {"emg": 5, "acc": 4, "gyro": 2, "ratio": 3, "time": 4}


def _rounded(values, decimals: int) -> list:
    """float64 before rounding: a float32's repr would bring back its binary noise."""
    return np.round(np.asarray(values, dtype=np.float64), decimals).ravel().tolist()


class TraceBuilder:
    """Frames of one acquisition run in, decimated traces out; ``reset`` starts a new run."""

    def __init__(self, config):
        layout = config.layout
        self.config = config
        self.layout = layout
        self.emg_rate_hz = float(layout.emg_rate_hz)
        self.model_rate_hz = float(config.preprocess.model_rate_hz)
        self.emg_scale = float(config.preprocess.emg_scale)
        self.emg_channels = layout.channel_count("emg")
        self.acc_channels = layout.channel_count("acc")
        self.gyro_sensors = layout.channel_count("gyro") // 3
        self.preprocessor = Preprocessor(config)
        self.segmenter = Segmenter(config)
        self.epoch = 0  # counts resets: the page clears its buffers when it changes
        self.session: str | None = None
        self._next_emg_index: int | None = None
        self._clear_pending()

    def describe(self) -> dict:
        """The static facts the page needs to read the updates."""
        layout, segmentation = self.layout, self.config.segmentation
        return {
            "emg_channels": list(layout.channels("emg")),
            "acc_channels": list(layout.channels("acc")),
            "gyro_sensors": list(layout.imu_names) if self.gyro_sensors else [],
            "emg_unit": layout.emg_unit,
            "emg_rate_hz": self.emg_rate_hz,
            "frame_period_s": float(layout.frame_period_s),
            "model_rate_hz": self.model_rate_hz,
            "motion_on": segmentation.motion_on_threshold,
            "motion_off": segmentation.motion_off_threshold,
            "envelope": bool(self.config.preprocess.emg_envelope),
        }

    def _clear_pending(self) -> None:
        self._times: list[float] = []
        self._emg_min: list[np.ndarray] = []
        self._emg_max: list[np.ndarray] = []
        self._acc: list[np.ndarray] = []
        self._gyro: list[np.ndarray] = []
        self._model_times: list[float] = []
        self._envelope: list[np.ndarray] = []
        self._ratios: list[tuple[float, float, float, float, bool]] = []
        self._segments: list[list] = []
        self._gaps: list[list[float]] = []

    def reset(self, session: str | None = None) -> None:
        """A new acquisition run (or indices that went back): forget every stage's state."""
        self.preprocessor.reset()
        self.segmenter.reset()
        self.epoch += 1
        self.session = session
        self._next_emg_index = None
        self._clear_pending()

    def add_frame(self, session: str, frame: Frame) -> None:
        if session != self.session or (self._next_emg_index is not None and frame.emg_first_index < self._next_emg_index):
            self.reset(session)
        elif self._next_emg_index is not None and frame.emg_first_index > self._next_emg_index:
            # Frames lost in delivery or samples lost at the sensor: the page draws the span as a gap.
            self._gaps.append([round(self._next_emg_index / self.emg_rate_hz, 4),
                               round(frame.emg_first_index / self.emg_rate_hz, 4)])
        self._next_emg_index = frame.emg_first_index + frame.emg.shape[0]
        emg = frame.emg
        self._times.append(frame.emg_first_index / self.emg_rate_hz)
        self._emg_min.append(emg.min(axis=0))
        self._emg_max.append(emg.max(axis=0))
        if self.acc_channels:
            self._acc.append(frame.acc.mean(axis=0))
        if self.gyro_sensors:
            gyro = frame.gyro.reshape(frame.gyro.shape[0], self.gyro_sensors, 3)
            self._gyro.append(np.sqrt((gyro * gyro).sum(axis=2)).mean(axis=0))
        block = self.preprocessor.process_frame(frame)
        if block is None or len(block) == 0:
            return
        segmenter = self.segmenter
        for segment in segmenter.process(block):
            self._segments.append([round(segment.start_index / self.model_rate_hz, 4),
                                   round(segment.end_index / self.model_rate_hz, 4), segment.forced])
        state, floors = segmenter.state, segmenter.config
        emg_on, emg_off = segmenter.emg_thresholds()
        if state.samples_seen == 0 or not math.isfinite(state.emg_level):
            return  # nothing valid seen yet (a dropout at the start): no ratio to show
        self._model_times.append((block.end_index - 1) / self.model_rate_hz)
        self._envelope.append(block.emg[-1] / self.emg_scale)
        self._ratios.append((state.emg_level / max(state.emg_baseline, floors.emg_floor),
                             state.motion_level / max(state.motion_baseline, floors.motion_floor),
                             emg_on, emg_off, segmenter.active))

    def flush(self) -> dict | None:
        """Everything since the last flush as one update (None when no frame came)."""
        if not self._times:
            return None
        ratios = np.array([row[:4] for row in self._ratios], dtype=np.float64).reshape(-1, 4)
        update = {
            "kind": "traces",
            "session": self.session,
            "epoch": self.epoch,
            "t": _rounded(self._times, _DECIMALS["time"]),
            "emg_min": _rounded(self._emg_min, _DECIMALS["emg"]),
            "emg_max": _rounded(self._emg_max, _DECIMALS["emg"]),
            "acc": _rounded(self._acc, _DECIMALS["acc"]),
            "gyro": _rounded(self._gyro, _DECIMALS["gyro"]),
            "model_t": _rounded(self._model_times, _DECIMALS["time"]),
            "envelope": _rounded(self._envelope, _DECIMALS["emg"]),
            "energy": _rounded(ratios[:, 0], _DECIMALS["ratio"]),
            "motion": _rounded(ratios[:, 1], _DECIMALS["ratio"]),
            "emg_on": _rounded(ratios[:, 2], _DECIMALS["ratio"]),
            "emg_off": _rounded(ratios[:, 3], _DECIMALS["ratio"]),
            "active": [bool(row[4]) for row in self._ratios],
            "segments": self._segments,
            "gaps": self._gaps,
        }
        self._clear_pending()
        return update

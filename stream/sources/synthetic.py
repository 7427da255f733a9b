"""SyntheticSource: the simulated signer (stream.synth) performing signs forever, frame by frame.

The stream is rendered in pieces, each a rest (with a possible fidget) followed by one sign; every
event lies inside its piece and all time-dependent nuisances use absolute sample time, so the pieces
join seamlessly. ``annotations`` lists the signs whose last sample has been emitted (ground truth
for the demo and streaming evaluation), in sEMG sample indices.

With ``realtime=True`` frame ``k`` is returned at ``start + (k + 1) * 13.5 ms`` (when its last sample
would have been acquired); ``realtime=False`` returns frames as fast as they are rendered. The
simulator needs numpy only (no scipy, no TensorFlow).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque

import numpy as np

from stream.recording import Annotation, Gap
from stream.synth.performance import plan_fidget, plan_sign
from stream.synth.render import StreamState, render
from stream.synth.session import SENSOR_NAMES, session_annotations
from stream.synth.signer import donning_gain, make_signer
from stream.synth.vocabulary import LABELS
from stream.wire.frames import Frame
from stream.wire.rates import EMG_RATE_HZ, EMG_SAMPLES_PER_FRAME, FRAME_PERIOD_S, IMU_RATE_HZ, IMU_SAMPLES_PER_FRAME

log = logging.getLogger("stream.sources.synthetic")
FRAME_S = float(FRAME_PERIOD_S)
TAIL_S = 0.05  # a piece ends this long after its sign, so the sign's last samples are in it
LATE_RESET_S = 0.5
LIVE_DONNING = 1000  # the live signer's sitting: none of a data set's (stream.synth.session)  # further behind than this (machine suspended?): restart the clock, do not burst


class SyntheticSource:
    """Iterator of Frames from the simulated signer; ``annotations`` grows as signs complete."""

    def __init__(self, config, realtime: bool = True, clock=time.monotonic, sleep=time.sleep) -> None:
        sensors = config.sensors
        if len(sensors.names) != len(SENSOR_NAMES):
            raise ValueError(f"the synthetic signer wears {len(SENSOR_NAMES)} sensors ({', '.join(SENSOR_NAMES)}) "
                             f"but [sensors] names lists {len(sensors.names)}")
        if (sensors.emg_rate_hz, sensors.imu_rate_hz) != (EMG_RATE_HZ, IMU_RATE_HZ):
            raise ValueError(f"the synthetic signer produces sEMG at {EMG_RATE_HZ} Hz and IMU at {IMU_RATE_HZ} Hz; "
                             f"[sensors] has {sensors.emg_rate_hz} and {sensors.imu_rate_hz}")
        settings = config.acquire.synthetic
        unknown = [name for name in settings.signs if name not in LABELS]
        if unknown:
            raise ValueError(f"[acquire.synthetic] signs: unknown sign(s) {', '.join(map(repr, unknown))}; "
                             f"known: {', '.join(LABELS)}")
        self.sign_indices = tuple(LABELS.index(name) for name in settings.signs) or tuple(range(len(LABELS)))
        self.settings = settings
        self.signer = make_signer(settings.seed, settings.signer, settings.generator_version)
        self.rng = np.random.default_rng(np.random.SeedSequence([settings.seed, 3, settings.signer]))
        self.state = StreamState.draw(self.rng, self.signer.version, donning_gain(self.signer, LIVE_DONNING))
        self.realtime, self.clock, self.sleep = realtime, clock, sleep
        self.annotations: list[Annotation] = []
        self.gaps: list[Gap] = []
        self._pending: deque[Annotation] = deque()
        self._frames: deque[Frame] = deque()
        self._order: list[int] = []
        self._rendered_frames = 0
        self._previous_sign_end_s = 0.0
        self._next_frame = 0
        self._start: float | None = None
        self.late_resets = 0
        self.closed = False

    def __iter__(self) -> SyntheticSource:
        return self

    def _next_sign(self) -> int:
        if not self._order:
            self._order = list(self.rng.permutation(self.sign_indices))
        return int(self._order.pop())

    def _render_piece(self) -> None:
        piece_start_s = self._rendered_frames * FRAME_S
        rest_s = float(self.rng.uniform(*self.settings.rest_s))
        onset = max(self._previous_sign_end_s + rest_s, piece_start_s + 0.05)
        sign = plan_sign(self._next_sign(), onset, self.signer, self.rng)
        events: list = [sign]
        if self.rng.random() < self.settings.fidget_probability and onset - piece_start_s > 1.0:
            fidget = plan_fidget(piece_start_s + 0.2, self.rng)
            if fidget.end_s < onset - 0.2:
                events.insert(0, fidget)
        frames = math.ceil((sign.end_s + TAIL_S) / FRAME_S) - self._rendered_frames
        first_frame = self._rendered_frames
        emg, acc, gyro, gaps = render(events, self.signer, self.state, self.rng, first_frame, frames,
                                      dropout_scale=1.0 if self.settings.dropouts else 0.0)
        for offset in range(frames):
            number = first_frame + offset
            self._frames.append(Frame(
                number, number * EMG_SAMPLES_PER_FRAME, number * IMU_SAMPLES_PER_FRAME,
                np.ascontiguousarray(emg[offset * EMG_SAMPLES_PER_FRAME:(offset + 1) * EMG_SAMPLES_PER_FRAME]),
                np.ascontiguousarray(acc[offset * IMU_SAMPLES_PER_FRAME:(offset + 1) * IMU_SAMPLES_PER_FRAME]),
                np.ascontiguousarray(gyro[offset * IMU_SAMPLES_PER_FRAME:(offset + 1) * IMU_SAMPLES_PER_FRAME])))
        self._pending.extend(session_annotations([sign]))
        self.gaps.extend(gaps)
        self._rendered_frames += frames
        self._previous_sign_end_s = sign.end_s

    def __next__(self) -> Frame:
        if self.closed:
            raise StopIteration
        if not self._frames:
            self._render_piece()
        if self.realtime:
            now = self.clock()
            if self._start is None:
                self._start = now - self._next_frame * FRAME_S
            due = self._start + (self._next_frame + 1) * FRAME_S
            if now < due:
                self.sleep(due - now)
            elif now - due > LATE_RESET_S:
                self.late_resets += 1
                log.warning("synthetic source %.2f s behind real time; restarting its clock", now - due)
                self._start = now - (self._next_frame + 1) * FRAME_S
        frame = self._frames.popleft()
        self._next_frame += 1
        emitted_end = frame.emg_first_index + EMG_SAMPLES_PER_FRAME
        while self._pending and self._pending[0].end_index <= emitted_end:
            self.annotations.append(self._pending.popleft())
        return frame

    def close(self) -> None:
        self.closed = True

"""ReplaySource: frames from a recording file, paced at ``speed`` x real time, optionally looping.

The recording must match ``[sensors]`` (same sensor names and rates: a replay never resamples). Frames
are cut at whole-frame boundaries of the recording's own sample indices; a trailing partial frame is
dropped. NaN (dropouts, lost frames filled by the recorder) passes through unchanged: data loss stays
visible. When looping, sample indices keep counting up (pass ``k`` is shifted by ``k`` times the
recording's length) so downstream sees one continuous stream, and annotations are shifted the same way.
``annotations`` lists the annotated spans whose last sample has been emitted.
"""

from __future__ import annotations

import time

from stream.recording import Annotation, Recording, read_recording
from stream.wire.frames import Frame

LATE_RESET_S = 0.5


class ReplaySource:
    """Iterator of Frames from one recording; ``close()`` stops it."""

    def __init__(self, config, recording: Recording | None = None, realtime: bool = True,
                 clock=time.monotonic, sleep=time.sleep) -> None:
        settings = config.acquire.replay
        if recording is None:
            if not settings.path:
                raise ValueError("[acquire.replay] path is empty: give a recording file")
            path = config.resolve_path(settings.path)
            recording = read_recording(path, settings.key or None)
            where = f"{path}{':' + settings.key if settings.key else ''}"
        else:
            where = "recording"
        sensors = config.sensors
        if tuple(recording.sensor_names) != tuple(sensors.names):
            raise ValueError(f"{where}: sensors {list(recording.sensor_names)} differ from [sensors] names "
                             f"{list(sensors.names)}; replay needs the same sensors in the same order")
        if (recording.emg_rate_hz, recording.imu_rate_hz) != (sensors.emg_rate_hz, sensors.imu_rate_hz):
            raise ValueError(f"{where}: rates {recording.emg_rate_hz}/{recording.imu_rate_hz} Hz differ from "
                             f"[sensors] {sensors.emg_rate_hz}/{sensors.imu_rate_hz} Hz (mismatched rates)")
        layout = config.layout
        if recording.layout.signature() != layout.signature():
            raise ValueError(f"{where}: its layout ({recording.layout.describe()}) is not the config's "
                             f"({layout.describe()}); replay it with a config of its layout ([sensors] profile)")
        self.layout = layout
        self.frame_s = float(layout.frame_period_s)
        self.emg_per_frame = layout.emg_samples_per_frame
        self.imu_per_frame = layout.imu_samples_per_frame
        if (recording.emg_first_index * self.imu_per_frame != recording.imu_first_index * self.emg_per_frame
                or recording.emg_first_index % self.emg_per_frame):
            raise ValueError(f"{where}: first sample indices {recording.emg_first_index} (sEMG) / "
                             f"{recording.imu_first_index} (IMU) do not start the same whole frame")
        self.recording = recording
        self.frames_per_pass = recording.whole_frames
        if self.frames_per_pass == 0:
            raise ValueError(f"{where}: holds less than one whole frame of samples")
        self.first_frame = recording.emg_first_index // self.emg_per_frame
        self.speed, self.loop = settings.speed, settings.loop
        self.realtime, self.clock, self.sleep = realtime, clock, sleep
        self.annotations: list[Annotation] = []
        self._pending: list[Annotation] = []
        self._pass = -1
        self._position = self.frames_per_pass  # forces the first pass to start
        self._emitted = 0
        self._start: float | None = None
        self.closed = False

    def __iter__(self) -> ReplaySource:
        return self

    def _begin_pass(self) -> None:
        self._pass += 1
        self._position = 0
        shift = self._pass * self.frames_per_pass * self.emg_per_frame
        self._pending = sorted((Annotation(a.label, a.start_index + shift, a.end_index + shift)
                                for a in self.recording.annotations), key=lambda a: a.end_index, reverse=True)

    def __next__(self) -> Frame:
        if self.closed:
            raise StopIteration
        if self._position >= self.frames_per_pass:
            if self._pass >= 0 and not self.loop:
                raise StopIteration
            self._begin_pass()
        if self.realtime:
            period = self.frame_s / self.speed
            now = self.clock()
            if self._start is None:
                self._start = now
            due = self._start + (self._emitted + 1) * period
            if now < due:
                self.sleep(due - now)
            elif now - due > LATE_RESET_S:
                self._start = now - (self._emitted + 1) * period
        row = self._position
        number = self.first_frame + self._pass * self.frames_per_pass + row
        frame = self.recording.frame(row, self._emitted, self.layout)
        # Sample indices keep counting up over passes (a loop is one continuous stream).
        frame.emg_first_index, frame.imu_first_index = number * self.emg_per_frame, number * self.imu_per_frame
        self._position += 1
        self._emitted += 1
        emitted_end = frame.emg_first_index + self.emg_per_frame
        while self._pending and self._pending[-1].end_index <= emitted_end:
            self.annotations.append(self._pending.pop())
        return frame

    def close(self) -> None:
        self.closed = True

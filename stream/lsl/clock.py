"""Our sample clock on LSL's clock (``pylsl.local_clock()``).

Sample ``i`` of a stream is at ``i / rate`` seconds after acquisition started, on the sensors' clock.
stream-lsl maps that to LSL time with one offset per acquisition run, estimated as
``stream.stages.recognizer.WallClockMap`` estimates wall time: the smallest (LSL time at which a frame
was received - its last sample's time) over the last ``window_s`` seconds. Every delay only adds to
that difference, so the earliest-arriving frame bounds the offset best; the window lets the map follow
drift between the sensors' and the host's clocks. The LSL time of a sample is then
``offset + i / rate``: late frames keep their true spacing, and the samples carry the instant they
were acquired (up to the transport delay of the fastest frame), not when they got through.

(The same algorithm as ``WallClockMap``, written again here because ``stream.stages`` brings the DSP
and numba with it, which stream-lsl does not need.)
"""

from __future__ import annotations

import collections


class SampleClockMap:
    """Sensor time (seconds since acquisition start) -> LSL time, for one acquisition run."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self._candidates: collections.deque = collections.deque()  # (sample time, offset), offsets increasing

    @property
    def offset_s(self) -> float | None:
        return self._candidates[0][1] if self._candidates else None

    def observe(self, sample_time_end_s: float, received_lsl_s: float) -> None:
        offset = received_lsl_s - sample_time_end_s
        candidates = self._candidates
        while candidates and candidates[-1][1] >= offset:
            candidates.pop()
        candidates.append((sample_time_end_s, offset))
        while candidates[0][0] < sample_time_end_s - self.window_s:
            candidates.popleft()

    def to_lsl(self, sample_time_s: float) -> float:
        if not self._candidates:
            raise ValueError("no frame seen yet: the sample clock has no LSL offset")
        return self._candidates[0][1] + sample_time_s

    def reset(self) -> None:
        self._candidates.clear()

"""The sensors' sample clock on a host clock: wall time for stream-infer's predictions, LSL's
``local_clock()`` for stream-lsl's samples.

Time in signstream is sample counting (docs/protocol.md); a host clock is only ever attached to it
by this map: the smallest (host time at which a frame arrived - its last sample's time) over the
last ``window_s`` seconds of samples. The earliest-arriving frame bounds the offset best (every
delay only adds to it); a sliding window rather than the minimum since start lets the map follow the
host clock when it is stepped (NTP) or drifts against the sensors' clock. Reset it when the source
restarts, since its sample clock starts again at zero. Pure Python: stream-lsl uses it without the
DSP.
"""

from __future__ import annotations

import collections


class SampleClockMap:
    """Sensor time (seconds since acquisition start) -> a host clock, for one acquisition run."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self._candidates: collections.deque = collections.deque()  # (sample time, offset), offsets increasing

    @property
    def offset_s(self) -> float | None:
        """Host time minus sample time; None before the first frame."""
        return self._candidates[0][1] if self._candidates else None

    def observe(self, sample_time_end_s: float, host_time_s: float) -> None:
        """A frame whose last sample is at ``sample_time_end_s`` arrived at ``host_time_s``."""
        offset = host_time_s - sample_time_end_s
        candidates = self._candidates
        while candidates and candidates[-1][1] >= offset:
            candidates.pop()
        candidates.append((sample_time_end_s, offset))
        while candidates[0][0] < sample_time_end_s - self.window_s:
            candidates.popleft()

    def to_host(self, sample_time_s: float) -> float:
        if not self._candidates:
            raise ValueError("no frame seen yet: the sample clock has no host offset")
        return self._candidates[0][1] + sample_time_s

    def reset(self) -> None:
        self._candidates.clear()

"""Sample counting on LSL timestamps: where each received sample belongs on our sample clock.

Used live by ``stream.sources.lsl`` and offline by ``train.datasets.xdf``, so a recording imported
from XDF follows the rules stream-acquire follows. Every sample received is the next index of its
stream; the timestamps only check that counting. A sample off its counted position by more than one
frame period is judged on the samples of the next two frames (held until they come): a device app
that stamps chunks when it pushes them, late under load, delays one chunk and not the next, while
lost samples or a stepped clock shift every later one. The smallest deviation over that window is the
shift (delays only add to it): beyond a frame ahead, that many samples were lost (NaN rows and an
``LslGap``); beyond a frame back, the sender's clock jumped (an ``LslClockJump``; counting goes on);
otherwise it was jitter, and nothing is reported. Smaller deviations are jitter and drift, which the
expected position follows slowly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DRIFT_FOLLOW = 0.01  # weight of each sample's deviation in the expected position (jitter and drift)


@dataclass(frozen=True)
class LslGap:
    """Samples of one stream lost (NaN rows in its frames), in its own sample indices (end exclusive)."""

    modality: str
    start_index: int
    end_index: int
    reason: str


@dataclass(frozen=True)
class LslClockJump:
    """The sender's timestamps went back by ``seconds`` at sample ``index`` of a stream."""

    modality: str
    index: int
    seconds: float  # how far the timestamps went back


class SampleBuffer:
    """Samples of one stream waiting to be framed: arrays, and counts of lost samples (NaN when taken)."""

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self.segments: deque = deque()
        self.available = 0

    def append(self, samples: np.ndarray) -> None:
        if len(samples):
            self.segments.append(samples)
            self.available += len(samples)

    def fill(self, count: int) -> None:
        if count > 0:
            if self.segments and isinstance(self.segments[-1], int):
                self.segments[-1] += count
            else:
                self.segments.append(count)
            self.available += count

    def head_fill(self) -> int:
        return self.segments[0] if self.segments and isinstance(self.segments[0], int) else 0

    def take(self, rows: int) -> np.ndarray:
        out = np.empty((rows, self.channels), np.float32)
        filled = 0
        while filled < rows:
            head = self.segments[0]
            count = min(rows - filled, head if isinstance(head, int) else len(head))
            if isinstance(head, int):
                out[filled:filled + count] = np.nan
                rest = head - count
                if rest:
                    self.segments[0] = rest
                else:
                    self.segments.popleft()
            else:
                out[filled:filled + count] = head[:count]
                if count < len(head):
                    self.segments[0] = head[count:]
                else:
                    self.segments.popleft()
            filled += count
        self.available -= rows
        return out


class SampleCounter:
    """One stream's samples placed on our sample clock (see the module docstring); ``buffer`` holds
    them, ``gaps`` and ``clock_jumps`` what was found (``on_gap``/``on_clock_jump``: also told)."""

    def __init__(self, modality: str, rate, rows_per_frame: int, frame_s: float, channels: int,
                 on_gap: Callable[[LslGap, float], None] | None = None,
                 on_clock_jump: Callable[[LslClockJump], None] | None = None) -> None:
        self.modality = modality
        self.rate = float(rate)
        self.rows_per_frame = rows_per_frame
        self.frame_s = frame_s
        self.buffer = SampleBuffer(channels)
        self.counted = 0  # samples (and lost samples) placed so far
        self.expected_offset: float | None = None  # timestamp - counted / rate, followed slowly
        self.held: tuple[np.ndarray, np.ndarray] | None = None  # samples awaiting a judgement
        self.gaps: list[LslGap] = []
        self.clock_jumps: list[LslClockJump] = []
        self.on_gap, self.on_clock_jump = on_gap, on_clock_jump

    def _gap(self, lost: int, seconds: float) -> None:
        gap = LslGap(self.modality, self.counted, self.counted + lost,
                     f"timestamps jumped {seconds * 1000:.1f} ms ahead of the samples counted")
        self.gaps.append(gap)
        if self.on_gap is not None:
            self.on_gap(gap, seconds)

    def _clock_jump(self, seconds: float) -> None:
        jump = LslClockJump(self.modality, self.counted, seconds)
        self.clock_jumps.append(jump)
        if self.on_clock_jump is not None:
            self.on_clock_jump(jump)

    def place(self, samples: np.ndarray, stamps: np.ndarray, final: bool = False) -> None:
        """Count ``samples`` into the buffer, checking their timestamps against the counted positions.

        A sample off its counted position by more than a frame is judged on the samples of the next two
        frames (held until they come): a device app that stamps chunks when it pushes them, late
        under load, delays one chunk and not the next, while lost samples or a stepped clock shift
        every later one. The smallest deviation over that window is the shift (delays only add to
        it): beyond a frame ahead, that many samples were lost; beyond a frame back, the clock
        jumped; otherwise it was jitter, and nothing is reported. ``final``: no more samples will come
        (an XDF file's end): held samples are judged on what there is.
        """
        if self.held is not None:
            samples, stamps = np.concatenate([self.held[0], samples]), np.concatenate([self.held[1], stamps])
            self.held = None
        window = max(2 * self.rows_per_frame, 2)
        while len(stamps):
            if self.expected_offset is None:
                self.expected_offset = stamps[0] - self.counted / self.rate
            deviation = stamps - (self.expected_offset + (self.counted + np.arange(len(stamps))) / self.rate)
            outside = np.flatnonzero(np.abs(deviation) > self.frame_s)
            good = int(outside[0]) if len(outside) else len(stamps)
            if good:
                self.buffer.append(samples[:good])
                self.counted += good
                # Follow jitter and drift slowly: about DRIFT_FOLLOW of the mean deviation per sample.
                self.expected_offset += min(1.0, DRIFT_FOLLOW * good) * float(np.mean(deviation[:good]))
                samples, stamps, deviation = samples[good:], stamps[good:], deviation[good:]
            if not len(stamps):
                return
            if len(stamps) < window and not final:
                self.held = (samples, stamps)
                return
            span = min(window, len(stamps))  # final: judged on what is left
            lowest = int(np.argmin(deviation[:span]))
            shift = float(deviation[lowest])
            if shift > self.frame_s:
                lost = int(round(shift * self.rate))
                self._gap(lost, shift)
                self.buffer.fill(lost)
                self.counted += lost
            elif shift < -self.frame_s:
                self._clock_jump(-shift)
            else:  # a late chunk: counted as it came, the expected position left as it was
                self.buffer.append(samples[:span])
                self.counted += span
                samples, stamps = samples[span:], stamps[span:]
                continue
            self.expected_offset = stamps[lowest] - (self.counted + lowest) / self.rate

    def finish(self) -> None:
        """No more samples: judge and place the samples still held."""
        if self.held is not None:
            samples, stamps = self.held
            self.held = None
            self.place(samples, stamps, final=True)


"""Aligned model-input windows from AlignedBlocks.

A window is identified by its exclusive ``end_index`` at the model rate and covers model samples
``end_index - length .. end_index - 1`` of every modality: the same time span for all of them by
construction (the Preprocessor aligned them). Windows are emitted on a global grid (``end_index``
a multiple of the hop), so they do not depend on how the stream was cut into blocks.

A gap (model samples never received, or received with ``valid = False``) is never closed up: a
window overlapping one is dropped (``[window] gap_policy = "drop"``) or returned with
``flagged = True`` ("flag"; the missing samples are zeros).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from stream.config import Config
from stream.frames import MODALITIES

DEFAULT_HISTORY_S = 5.0


@dataclass
class Window:
    """Model input: ``length`` model-rate samples of every modality, ending at ``end_index``.
    Arrays from ``WindowAssembler.push`` are read-only views (copy before modifying)."""

    end_index: int  # exclusive, model rate
    emg: np.ndarray  # (length, S) float32
    acc: np.ndarray  # (length, 3S)
    gyro: np.ndarray  # (length, 3S)
    flagged: bool  # overlaps a gap or an invalid sample

    @property
    def length(self) -> int:
        return self.emg.shape[0]

    @property
    def start_index(self) -> int:
        return self.end_index - self.length


def _samples(seconds: float, rate_hz: Fraction, key: str) -> int:
    # Decimal text of the float, so 0.0135 s is 27/2000 s exactly, not the nearest binary fraction.
    count = round(Fraction(repr(float(seconds))) * rate_hz)
    if count < 1:
        raise ValueError(f"[window] {key} = {seconds} s is less than one model-rate sample ({float(1 / rate_hz):.4f} s "
                         f"at {rate_hz} Hz); make it longer")
    return count


def window_length_samples(config: Config) -> int:
    """``[window] length_s`` in whole model-rate samples (2.0 s -> 148 at 2000/27 Hz)."""
    return _samples(config.window.length_s, config.preprocess.model_rate_hz, "length_s")


def window_hop_samples(config: Config) -> int:
    return _samples(config.window.hop_s, config.preprocess.model_rate_hz, "hop_s")


def extract_window(block, end_index: int, length: int) -> Window | None:
    """The window ending at ``end_index`` from one AlignedBlock (None if the block does not cover
    it); ``flagged`` if any of its samples is invalid. For offline use (training windows)."""
    lo = int(end_index) - length - block.first_index
    hi = int(end_index) - block.first_index
    if lo < 0 or hi > len(block.valid):
        return None
    return Window(int(end_index), block.emg[lo:hi].copy(), block.acc[lo:hi].copy(), block.gyro[lo:hi].copy(),
                  not bool(block.valid[lo:hi].all()))


class WindowAssembler:
    """Stage: AlignedBlocks in, windows out at the hop; a ring buffer of recent samples answers
    ``window_ending_at`` for ends up to ``history_s`` in the past."""

    def __init__(self, config: Config, history_s: float = DEFAULT_HISTORY_S):
        self.length = window_length_samples(config)
        self.hop = window_hop_samples(config)
        self.gap_policy = config.window.gap_policy
        sensors = len(config.sensors.names)
        self.channels = {name: (0 if name not in config.sensors.modalities else sensors if name == "emg"
                                else 3 * sensors) for name in MODALITIES}
        if history_s < 0:
            raise ValueError(f"history_s {history_s} must be >= 0")
        self.capacity = self.length + int(round(history_s * float(config.preprocess.model_rate_hz)))
        self.dropped = 0  # windows not emitted because they overlapped a gap (policy "drop")
        self.reset()

    def reset(self) -> None:
        self._ring = {name: np.zeros((self.capacity, channels), dtype=np.float32)
                      for name, channels in self.channels.items()}
        self._ring_valid = np.zeros(self.capacity, dtype=np.bool_)
        self._start: int | None = None  # first index held since the last reset
        self._next: int | None = None  # index expected next

    @property
    def next_index(self) -> int | None:
        return self._next

    def _check_block(self, block) -> None:
        rows = len(block.valid)
        for name, channels in self.channels.items():
            array = getattr(block, name)
            if array.ndim != 2 or array.shape != (rows, channels):
                raise ValueError(f"block {name} has shape {array.shape}; expected ({rows}, {channels}) for this config")
        if isinstance(block.first_index, bool) or not isinstance(block.first_index, (int, np.integer)):
            raise ValueError(f"block first_index {block.first_index!r} must be an integer model-rate index")

    def _read(self, start: int, end: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        slots = np.arange(start, end) % self.capacity
        return {name: ring[slots] for name, ring in self._ring.items()}, self._ring_valid[slots]

    def push(self, block) -> list[Window]:
        """Add a block; return the windows (ends on the hop grid) that it completed."""
        self._check_block(block)
        rows = len(block.valid)
        if rows == 0:
            return []
        first = int(block.first_index)
        if self._next is not None and first < self._next:
            raise ValueError(f"block starts at model sample {first} but {self._next} was expected: indices went "
                             "backwards; call reset() for a new stream")
        if self._next is not None and first - self._next >= self.capacity:
            self.reset()  # the gap is longer than the ring: nothing before it can be in a window any more
        if self._start is None:
            self._start, self._next = first, first
        # Everything from the oldest sample a new window can use, through the gap (zeros, invalid),
        # to the end of the block, as one contiguous array.
        missing = first - self._next
        prefix_start = max(self._start, self._next - (self.length - 1))
        prefix, prefix_valid = self._read(prefix_start, self._next)
        data = {name: np.concatenate([prefix[name], np.zeros((missing, channels), dtype=np.float32),
                                      np.asarray(getattr(block, name), dtype=np.float32)])
                for name, channels in self.channels.items()}
        for array in data.values():
            # Windows are read-only views of this push's own array: one copy of the samples however
            # many overlapping windows (hop 1 over a long recording would otherwise copy 148x).
            array.flags.writeable = False
        valid = np.concatenate([prefix_valid, np.zeros(missing, dtype=np.bool_), np.asarray(block.valid, bool)])
        invalid_before = np.concatenate([[0], np.cumsum(~valid)])
        end = first + rows
        # Window ends in (previous next, end], on the hop grid, with a full window of samples held.
        lowest = max(self._next + 1, self._start + self.length)
        first_end = -((-lowest) // self.hop) * self.hop
        windows = []
        for end_index in range(first_end, end + 1, self.hop):
            lo, hi = end_index - self.length - prefix_start, end_index - prefix_start
            flagged = bool(invalid_before[hi] - invalid_before[lo])
            if flagged and self.gap_policy == "drop":
                self.dropped += 1
                continue
            windows.append(Window(end_index, *(data[name][lo:hi] for name in MODALITIES), flagged))
        # Keep the newest samples in the ring.
        keep = min(self.capacity, end - prefix_start)
        slots = np.arange(end - keep, end) % self.capacity
        for name in self.channels:
            self._ring[name][slots] = data[name][-keep:]
        self._ring_valid[slots] = valid[-keep:]
        self._next = end
        return windows

    def window_ending_at(self, end_index: int) -> Window | None:
        """The window ending at ``end_index`` (exclusive) from the ring, or None when its samples are
        not (or no longer) held, or it overlaps a gap and the policy is "drop"."""
        if isinstance(end_index, bool) or not isinstance(end_index, (int, np.integer)):
            raise ValueError(f"end_index {end_index!r} must be an integer model-rate index")
        if self._next is None:
            return None
        start = int(end_index) - self.length
        if start < max(self._start, self._next - self.capacity) or end_index > self._next:
            return None
        arrays, valid = self._read(start, int(end_index))
        flagged = not bool(valid.all())
        if flagged and self.gap_policy == "drop":
            return None
        return Window(int(end_index), *(arrays[name] for name in MODALITIES), flagged)

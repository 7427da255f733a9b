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
from stream.wire.frames import MODALITIES

DEFAULT_HISTORY_S = 5.0
# Rows the buffer holds beyond ``capacity``: appends until a compaction (one copy of ``capacity``
# rows); blocks at least this long take the view path.
BUFFER_SLACK = 2048


@dataclass
class Window:
    """Model input: ``length`` model-rate samples of every modality, ending at ``end_index``.
    Arrays cut by ``WindowAssembler.push`` from a long block are read-only views: copy before
    modifying."""

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
    """Stage: AlignedBlocks in, windows out at the hop; a buffer of the recent samples answers
    ``window_ending_at`` for ends up to ``history_s`` in the past.

    The buffer is linear (any window is one contiguous slice) and compacted now and then; a block
    longer than the buffer (a whole recording) is cut into windows that are read-only views of one
    array, so hop 1 over a long recording does not copy every sample 148 times.
    """

    def __init__(self, config: Config, history_s: float = DEFAULT_HISTORY_S):
        self.length = window_length_samples(config)
        self.hop = window_hop_samples(config)
        self.gap_policy = config.window.gap_policy
        self.channels = {name: config.layout.channel_count(name) for name in MODALITIES}
        if history_s < 0:
            raise ValueError(f"history_s {history_s} must be >= 0")
        self.capacity = self.length + int(round(history_s * float(config.preprocess.model_rate_hz)))
        self._allocated = self.capacity + BUFFER_SLACK
        self.dropped = 0  # windows not emitted because they overlapped a gap (policy "drop")
        self.reset()

    def reset(self) -> None:
        """Forget everything held: the next block starts a new stream (at any index)."""
        self._buffer = {name: np.zeros((self._allocated, channels), dtype=np.float32)
                        for name, channels in self.channels.items()}
        self._buffer_valid = np.zeros(self._allocated, dtype=np.bool_)
        self._buffer_first = 0  # model index of buffer row 0
        self._rows = 0  # rows in use: indices _buffer_first .. _next - 1
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

    def _oldest_usable(self) -> int:
        """The first index a window may start at: held, and at most ``capacity`` samples back."""
        return max(self._start, self._next - self.capacity)

    def _make_room(self, count: int) -> None:
        """Compact so that ``count`` (<= BUFFER_SLACK) more rows fit. Done once per push, before
        anything is appended: the last ``capacity`` rows kept include every sample a window that
        this push completes can reach back to."""
        if self._rows + count > self._allocated:
            keep = min(self._rows, self.capacity)
            for buffer in self._buffer.values():
                buffer[:keep] = buffer[self._rows - keep:self._rows]
            self._buffer_valid[:keep] = self._buffer_valid[self._rows - keep:self._rows]
            self._buffer_first += self._rows - keep
            self._rows = keep

    def _append(self, arrays: dict[str, np.ndarray], valid: np.ndarray) -> None:
        """Append rows at index _next (``_make_room`` has made the space)."""
        count = valid.shape[0]
        for name, buffer in self._buffer.items():
            buffer[self._rows:self._rows + count] = arrays[name]
        self._buffer_valid[self._rows:self._rows + count] = valid
        self._rows += count
        self._next += count

    def _replace(self, data: dict[str, np.ndarray], valid: np.ndarray, first_index: int) -> None:
        """Hold the last ``capacity`` rows of ``data`` (which starts at ``first_index``)."""
        keep = min(valid.shape[0], self.capacity)
        for name, buffer in self._buffer.items():
            buffer[:keep] = data[name][valid.shape[0] - keep:]
        self._buffer_valid[:keep] = valid[valid.shape[0] - keep:]
        self._next = first_index + valid.shape[0]
        self._buffer_first, self._rows = self._next - keep, keep

    def _ends(self, previous_next: int) -> range:
        """Window ends completed since ``previous_next``: on the hop grid, with a full window held."""
        lowest = max(previous_next + 1, self._start + self.length)
        return range(-((-lowest) // self.hop) * self.hop, self._next + 1, self.hop)

    def push(self, block) -> list[Window]:
        """Add a block; return the windows (ends on the hop grid) that it completed. Window arrays
        may be read-only views: copy before modifying them."""
        return self._push(block, cut=True)

    def hold(self, block) -> None:
        """Add a block without cutting the hop grid's windows: for a reader that only asks
        ``window_ending_at`` (stream-infer classifies the window at each sign's end; cutting one
        window per model sample that nobody reads was most of a frame's cost)."""
        self._push(block, cut=False)

    def _push(self, block, cut: bool) -> list[Window]:
        self._check_block(block)
        rows = len(block.valid)
        if rows == 0:
            return []
        first = int(block.first_index)
        if self._next is not None and first < self._next:
            raise ValueError(f"block starts at model sample {first} but {self._next} was expected: indices went "
                             "backwards; call reset() for a new stream")
        if self._next is not None and first - self._next >= self.capacity:
            self.reset()  # the gap is longer than the buffer: nothing before it can be in a window any more
        if self._start is None:
            self._start, self._next = first, first
            self._buffer_first = first
        previous_next, missing = self._next, first - self._next
        arrays = {name: getattr(block, name) for name in self.channels}
        valid = np.asarray(block.valid, dtype=np.bool_)
        if missing + rows <= BUFFER_SLACK:
            # Streaming: append to the buffer (the gap as zeros, invalid), cut windows from it.
            self._make_room(missing + rows)
            if missing:
                self._append({name: np.zeros((missing, channels), np.float32)
                              for name, channels in self.channels.items()}, np.zeros(missing, np.bool_))
            self._append(arrays, valid)
            if not cut:
                return []
            windows = []
            for end_index in self._ends(previous_next):
                window = self._from_buffer(end_index)
                if window is not None:
                    windows.append(window)
            return windows
        # A long block: one contiguous read-only array from the oldest sample a new window can use,
        # through the gap, to the end of the block; windows are views of it.
        prefix_start = max(self._start, previous_next - (self.length - 1))
        lo = prefix_start - self._buffer_first
        data = {name: np.concatenate([self._buffer[name][lo:self._rows], np.zeros((missing, channels), np.float32),
                                      np.asarray(arrays[name], dtype=np.float32)])
                for name, channels in self.channels.items()}
        for array in data.values():
            array.flags.writeable = False
        all_valid = np.concatenate([self._buffer_valid[lo:self._rows], np.zeros(missing, np.bool_), valid])
        invalid_before = np.concatenate([[0], np.cumsum(~all_valid)])
        self._replace(data, all_valid, prefix_start)
        if not cut:
            return []
        windows = []
        for end_index in self._ends(previous_next):
            low, high = end_index - self.length - prefix_start, end_index - prefix_start
            flagged = bool(invalid_before[high] - invalid_before[low])
            if flagged and self.gap_policy == "drop":
                self.dropped += 1
                continue
            windows.append(Window(end_index, *(data[name][low:high] for name in MODALITIES), flagged))
        return windows

    def _from_buffer(self, end_index: int, count_dropped: bool = True) -> Window | None:
        low, high = end_index - self.length - self._buffer_first, end_index - self._buffer_first
        flagged = not self._buffer_valid[low:high].all()
        if flagged and self.gap_policy == "drop":
            self.dropped += count_dropped
            return None
        return Window(end_index, *(self._buffer[name][low:high].copy() for name in MODALITIES), bool(flagged))

    def window_ending_at(self, end_index: int) -> Window | None:
        """The window ending at ``end_index`` (exclusive) from the buffer, or None when its samples
        are not (or no longer) held, or it overlaps a gap and the policy is "drop"."""
        if isinstance(end_index, bool) or not isinstance(end_index, (int, np.integer)):
            raise ValueError(f"end_index {end_index!r} must be an integer model-rate index")
        if self._next is None:
            return None
        end_index = int(end_index)
        if end_index - self.length < self._oldest_usable() or end_index > self._next:
            return None
        return self._from_buffer(end_index, count_dropped=False)

"""Streaming rational resampler: ``scipy.signal.resample_poly`` with state, chunk by chunk.

``Resampler(design, channels)`` is the stage; ``design_resampler`` (stream.dsp.design) builds the
FIR exactly as resample_poly does for a given half-length and Kaiser beta. Output ``k`` is at input
position ``k * down / up`` exactly (integer arithmetic). Away from the edges the output equals
``resample_poly(x, up, down, window=design.coefficients / up)``; at the start it equals
``padtype='edge'`` ("steady", default) or ``padtype='constant'`` ("zeros"); see stream.dsp.chain
for why there is no flush at the end.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from stream.dsp.chain import ChainBank, ChainOutput, ChainSpec
from stream.dsp.design import ResamplerDesign
from stream.dsp.sosfilt import check_signal

IDENTITY_SOS = np.array([[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]])


class Resampler:
    """One stream's resampler state. ``process(chunk, first_index)`` returns the outputs that all of
    their inputs have arrived for, identified by their model-rate index."""

    def __init__(self, design: ResamplerDesign, channels: int, edge: Literal["steady", "zeros"] = "steady"):
        if edge not in ("steady", "zeros"):
            raise ValueError(f"edge {edge!r}: expected 'steady' (hold the first sample) or 'zeros'")
        self.design = design
        self._bank = ChainBank([ChainSpec(IDENTITY_SOS, np.zeros((1, 2)), design, channels, steady=edge == "steady")],
                               out_dtype=np.float64)
        self.channels = channels

    @property
    def next_input_index(self) -> int | None:
        return self._bank.next_input_index(0)

    def reset(self) -> None:
        self._bank.reset()

    def process(self, chunk: np.ndarray, first_index: int | None = None) -> ChainOutput:
        chunk = check_signal(chunk, self.channels, name="chunk")
        expected = self._bank.next_input_index(0)
        if first_index is None:
            first_index = 0 if expected is None else expected
        check_continues(first_index, expected, "chunk")
        output = self._bank.process(0, chunk, int(first_index))
        output.values = output.values.astype(chunk.dtype, copy=False)
        return output


def check_continues(first_index: int, expected: int | None, name: str) -> None:
    """Refuse indices that are negative or that do not continue the stream exactly."""
    if isinstance(first_index, bool) or not isinstance(first_index, (int, np.integer)):
        raise ValueError(f"{name} first index {first_index!r} must be an integer sample index")
    if first_index < 0:
        raise ValueError(f"{name} first index {first_index} is negative; sample indices count from 0 at START")
    if expected is not None and first_index != expected:
        direction = "goes backwards (repeated or reordered data)" if first_index < expected else "skips samples"
        raise ValueError(f"{name} starts at sample {first_index} but the stream expects {expected}: it {direction}; "
                         "call reset() to start a new stream")

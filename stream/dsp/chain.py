"""One modality's streaming chain: dropout hold -> SOS filter -> rectify -> resample -> scale.

``ModalityChain`` is the stage (no sockets, explicit state) that the Preprocessor runs once per
modality and that ``Resampler`` runs with an identity filter. Inputs are identified by the absolute
index of their first sample; outputs by the absolute model-rate index of theirs: output ``k`` sits
exactly at input position ``k * down / up`` (integers only, exact after any number of samples).

Edge at the start: the past before the first sample is a hold of the first filtered sample
("steady", with the SOS filter started in its steady state for the first input sample: what
``resample_poly(..., padtype='edge')`` does) or zeros ("zeros": ``padtype='constant'``, with the
filter started at rest). The first output is the first model index at or after the first sample.
There is no flush at the end: an output is produced once every input in its FIR span has arrived,
so the last ``half_len / up`` input samples of a recording give no output yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream.dsp._kernels import COUNTER_SLOTS, LAST_INVALID, NEXT_INPUT, NEXT_OUTPUT, NO_INVALID, STARTED, \
    _chain_kernel
from stream.dsp.design import ModalityDesign, ResamplerDesign


@dataclass
class ChainOutput:
    """Outputs of one chunk: model-rate samples ``first_index .. first_index + len(values) - 1``."""

    first_index: int
    values: np.ndarray  # (n, channels)
    valid: np.ndarray  # (n,) bool


class ModalityChain:
    """Filter + resampler state of one modality of one stream."""

    def __init__(self, sos: np.ndarray, steady_state_unit: np.ndarray, resampler: ResamplerDesign, channels: int,
                 *, rectify: bool = False, scale: float = 1.0, settle_samples: int = 0, steady: bool = True,
                 out_dtype: np.dtype = np.float32):
        if channels < 1:
            raise ValueError(f"channels {channels} must be >= 1")
        self.sos = np.ascontiguousarray(sos, dtype=np.float64)
        self.steady_state_unit = np.ascontiguousarray(steady_state_unit, dtype=np.float64)
        self.resampler = resampler
        self.channels = channels
        self.rectify = bool(rectify)
        self.scale = float(scale)
        self.settle_samples = int(settle_samples)
        self.steady = bool(steady)
        self.out_dtype = np.dtype(out_dtype)
        # Ring of past filtered inputs: enough for the widest FIR span (2 * half_len / up + 1).
        self.ring_size = 2 * resampler.half_len // resampler.up + 2
        self.reset()

    @classmethod
    def from_design(cls, design: ModalityDesign, channels: int, steady: bool) -> ModalityChain:
        return cls(design.sos, design.steady_state_unit, design.resampler, channels, rectify=design.rectify,
                   scale=design.scale, settle_samples=design.settle_samples, steady=steady)

    def reset(self) -> None:
        """Forget everything: the next chunk starts a new stream (at any index)."""
        self.state = np.zeros((self.sos.shape[0], 2, self.channels))
        self.hold = np.zeros(self.channels)
        self.ring = np.zeros((self.ring_size, self.channels))
        self.counters = np.zeros(COUNTER_SLOTS, dtype=np.int64)
        self.counters[LAST_INVALID] = NO_INVALID

    @property
    def started(self) -> bool:
        return bool(self.counters[STARTED])

    @property
    def next_input_index(self) -> int | None:
        """Index the next chunk must start at (None before the first chunk)."""
        return int(self.counters[NEXT_INPUT]) if self.started else None

    @property
    def next_output_index(self) -> int | None:
        return int(self.counters[NEXT_OUTPUT]) if self.started else None

    def max_outputs(self, samples: int) -> int:
        return samples * self.resampler.up // self.resampler.down + 2

    def process(self, chunk: np.ndarray, first_index: int) -> ChainOutput:
        """Run a (samples, channels) chunk that starts at input index ``first_index``; the caller has
        checked dtype, shape and that ``first_index`` continues the stream. NaN/inf are allowed:
        they are held at the channel's last finite value and mark the outputs they reach invalid."""
        samples = chunk.shape[0]
        out = np.empty((self.max_outputs(samples), self.channels), dtype=self.out_dtype)
        valid = np.empty(out.shape[0], dtype=np.bool_)
        design = self.resampler
        start = int(self.counters[NEXT_OUTPUT]) if self.started else -((-first_index * design.up) // design.down)
        written = _chain_kernel(chunk, np.int64(first_index), self.sos, self.steady_state_unit, self.state, self.hold,
                                self.ring, self.counters, design.coefficients, np.int64(design.up),
                                np.int64(design.down), np.int64(design.half_len), np.int64(self.settle_samples),
                                self.rectify, self.steady, self.scale, out, valid)
        return ChainOutput(start, out[:written], valid[:written])

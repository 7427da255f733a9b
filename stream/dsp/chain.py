"""Streaming chains: dropout hold -> SOS filter -> rectify -> resample -> scale, one per modality.

``ChainBank`` is the stage (no sockets, explicit state) holding the state of one or more chains,
stacked so that one jitted call can run a whole frame (``process_frame``) or one chain runs a chunk
(``process``); both go through the same kernel, so they give bitwise the same output. Inputs are
identified by the absolute index of their first sample, outputs by the absolute model-rate index of
theirs: output ``k`` sits exactly at input position ``k * down / up`` (integers only, exact after
any number of samples).

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

from stream.dsp import _kernels as kernels
from stream.dsp.design import ModalityDesign, ResamplerDesign


@dataclass
class ChainOutput:
    """Outputs of one chunk: model-rate samples ``first_index .. first_index + len(values) - 1``."""

    first_index: int
    values: np.ndarray  # (n, channels)
    valid: np.ndarray  # (n,) bool


@dataclass(frozen=True)
class ChainSpec:
    """What one chain computes: filter, resampler, rectification, scale, start behaviour."""

    sos: np.ndarray
    steady_state_unit: np.ndarray
    resampler: ResamplerDesign
    channels: int
    rectify: bool = False
    scale: float = 1.0
    settle_samples: int = 0
    steady: bool = True

    @classmethod
    def from_design(cls, design: ModalityDesign, channels: int, steady: bool) -> ChainSpec:
        return cls(design.sos, design.steady_state_unit, design.resampler, channels, design.rectify, design.scale,
                   design.settle_samples, steady)

    @property
    def ring_size(self) -> int:
        """Past inputs kept: enough for the widest FIR span (2 * half_len / up + 1)."""
        return 2 * self.resampler.half_len // self.resampler.up + 2


class ChainBank:
    """The state of ``len(specs)`` chains of one stream."""

    def __init__(self, specs: list[ChainSpec], out_dtype: np.dtype = np.float32):
        if not specs:
            raise ValueError("a chain bank needs at least one chain")
        self.specs = list(specs)
        self.out_dtype = np.dtype(out_dtype)
        count = len(specs)
        sections = max(spec.sos.shape[0] for spec in specs)
        taps = max(spec.resampler.coefficients.size for spec in specs)
        channels = max(spec.channels for spec in specs)
        ring = max(spec.ring_size for spec in specs)
        self.sos = np.zeros((count, sections, 6))
        self.zi_unit = np.zeros((count, sections, 2))
        self.fir = np.zeros((count, taps))
        self.params = np.zeros((count, kernels.PARAM_SLOTS), dtype=np.int64)
        self.scales = np.zeros(count)
        for row, spec in enumerate(specs):
            if spec.channels < 1:
                raise ValueError(f"channels {spec.channels} must be >= 1")
            design = spec.resampler
            self.sos[row, :spec.sos.shape[0]] = spec.sos
            self.zi_unit[row, :spec.sos.shape[0]] = spec.steady_state_unit
            self.fir[row, :design.coefficients.size] = design.coefficients
            self.params[row] = (spec.sos.shape[0], design.coefficients.size, design.up, design.down, design.half_len,
                                spec.settle_samples, spec.rectify, spec.steady, spec.channels, spec.ring_size)
            self.scales[row] = spec.scale
        self._shapes = (count, sections, channels, ring)
        # Output buffers of process_frame, reused (callers copy what they keep).
        self._frame_rows: tuple | None = None
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next chunk of each chain starts a new stream (at any index)."""
        count, sections, channels, ring = self._shapes
        self.zi = np.zeros((count, sections, 2, channels))
        self.hold = np.zeros((count, channels))
        self.ring = np.zeros((count, 2 * ring, channels))
        self.counters = np.zeros((count, kernels.COUNTER_SLOTS), dtype=np.int64)
        self.counters[:, kernels.LAST_INVALID] = kernels.NO_INVALID

    def started(self, chain: int) -> bool:
        return bool(self.counters[chain, kernels.STARTED])

    def next_input_index(self, chain: int) -> int | None:
        """Index the next chunk of ``chain`` must start at (None before its first chunk)."""
        return int(self.counters[chain, kernels.NEXT_INPUT]) if self.started(chain) else None

    def _first_output(self, chain: int, first_index: int) -> int:
        if self.started(chain):
            return int(self.counters[chain, kernels.NEXT_OUTPUT])
        design = self.specs[chain].resampler
        return -((-first_index * design.up) // design.down)

    def _max_outputs(self, chain: int, samples: int) -> int:
        design = self.specs[chain].resampler
        return samples * design.up // design.down + 2

    def process(self, chain: int, chunk: np.ndarray, first_index: int) -> ChainOutput:
        """Run a C-contiguous (samples, channels) chunk starting at input index ``first_index``; the
        caller has checked dtype, shape and continuity. NaN/inf are allowed: they are held at the
        channel's last finite value and mark the outputs they reach invalid."""
        spec = self.specs[chain]
        out = np.empty((self._max_outputs(chain, chunk.shape[0]), self._shapes[2]), dtype=self.out_dtype)
        valid = np.empty(out.shape[0], dtype=np.bool_)
        start = self._first_output(chain, first_index)
        written = kernels._chain_kernel(chunk, np.int64(first_index), chain, self.sos, self.zi_unit, self.fir,
                                        self.params, self.scales, self.zi, self.hold, self.ring, self.counters, out,
                                        valid)
        if written < 0:
            raise ValueError(f"chunk starts at sample {first_index} but chain {chain} expects "
                             f"{self.next_input_index(chain)}; indices must continue the stream")
        return ChainOutput(start, out[:written, :spec.channels], valid[:written])

    def process_frame(self, emg: np.ndarray, acc: np.ndarray, gyro: np.ndarray, emg_first_index: int,
                      imu_first_index: int) -> tuple[list[int], list[int]]:
        """Chains 0, 1, 2 (sEMG, acc, gyro) on one frame each, in one jitted call. Returns each
        chain's first output index and output count; the outputs are in ``frame_out[chain, :count,
        :channels]`` and ``frame_valid[chain, :count]``, buffers the next call overwrites."""
        counters = self.counters
        if counters[0, kernels.STARTED] and counters[1, kernels.STARTED] and counters[2, kernels.STARTED]:
            starts = counters[:, kernels.NEXT_OUTPUT].tolist()
        else:
            starts = [self._first_output(0, emg_first_index), self._first_output(1, imu_first_index),
                      self._first_output(2, imu_first_index)]
        if self._frame_rows is None or self._frame_rows[0] != (emg.shape[0], acc.shape[0], gyro.shape[0]):
            rows = max(self._max_outputs(0, emg.shape[0]), self._max_outputs(1, acc.shape[0]),
                       self._max_outputs(2, gyro.shape[0]))
            self._frame_rows = ((emg.shape[0], acc.shape[0], gyro.shape[0]), rows)
            self.frame_out = np.empty((3, rows, self._shapes[2]), dtype=self.out_dtype)
            self.frame_valid = np.empty((3, rows), dtype=np.bool_)
            self._frame_written = np.zeros(3, dtype=np.int64)
        kernels._frame_kernel(emg, acc, gyro, emg_first_index, imu_first_index, self.sos, self.zi_unit, self.fir,
                              self.params, self.scales, self.zi, self.hold, self.ring, counters, self.frame_out,
                              self.frame_valid, self._frame_written)
        written = self._frame_written.tolist()
        if written[0] < 0:
            raise ValueError(f"frame at sEMG sample {emg_first_index} / IMU sample {imu_first_index} does not continue "
                             f"the stream (expected {self.next_input_index(0)} / {self.next_input_index(1)})")
        return starts, written

    def frame_outputs(self, starts: list[int], written: list[int]) -> list[ChainOutput]:
        """process_frame's outputs as ChainOutputs (views of the reused buffers)."""
        return [ChainOutput(starts[chain], self.frame_out[chain, :count, :self.specs[chain].channels],
                            self.frame_valid[chain, :count])
                for chain, count in enumerate(written)]

"""The one preprocessing chain, used on whole recordings (training) and frame by frame (streaming).

Per modality (stream.dsp.chain): non-finite samples held -> SOS filter (sEMG band-pass + notch,
IMU low-pass) -> full-wave rectification (sEMG, if ``emg_envelope``) -> polyphase resampling to
``[preprocess] model_rate_hz`` -> fixed scaling. The modalities are then aligned on model-rate
indices: model sample ``k`` is at time ``k / model_rate_hz`` on the sensors' clock; the filters'
delay is not in the index, it only delays emission (by ``emission_delay_s``).

``process_recording`` runs the same kernels as ``process_frame`` on the whole arrays at once, from a
fresh state: its output equals the concatenated streaming output bitwise, for any framing.

Dropouts and gaps (docs/DSP.md): a NaN, inf or absurd (|x| > 1e6) sample is replaced by its
channel's last good value before filtering (so the state never turns NaN or inf) and every model
sample whose filter settling span or FIR span reaches it has ``valid = False``. A forward jump in frame indices is a gap: up to
``[preprocess] max_gap_fill_s`` it is filled with such invalid samples (the same output as a recording
with NaN there); a longer one restarts the chain at the new frame. Gaps are counted in ``gaps``.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from stream.config import Config, config_hash, to_dict
from stream.dsp import _kernels as kernels
from stream.dsp.chain import ChainBank, ChainOutput, ChainSpec
from stream.dsp.design import ModalityDesign
from stream.dsp.design_cache import cached_design_modality
from stream.dsp.resample import check_continues
from stream.wire.frames import MODALITIES, Frame

logger = logging.getLogger(__name__)

# Bump when the algorithm changes in a way the config does not show: it is part of the hash.
PREPROCESSING_VERSION = 1
SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_FLOAT32 = np.dtype(np.float32)
GAP_HISTORY = 1000


@dataclass
class AlignedBlock:
    """Model-rate samples ``first_index .. first_index + n - 1`` of every modality, float32."""

    first_index: int
    emg: np.ndarray  # (n, S)
    acc: np.ndarray  # (n, 3S)
    gyro: np.ndarray  # (n, 3S)
    valid: np.ndarray  # (n,) bool: False where a NaN, inf or gap contributed

    def __len__(self) -> int:
        return self.valid.shape[0]

    @property
    def end_index(self) -> int:
        """One past the last sample (exclusive)."""
        return self.first_index + len(self)


@dataclass(frozen=True)
class Gap:
    """A forward jump in one modality's input indices."""

    modality: str
    first_missing_index: int
    missing_samples: int
    action: str  # "filled" (marked invalid) or "restarted" (too long to fill)


def _sensors_spec(config: Config) -> dict:
    """The layout as the card's spec records it. ``profile`` only fills in the other keys, so it is
    left out; ``imu_names`` and ``emg_unit`` only when they say what a layout without them meant
    (the IMU sensors are the sEMG sensors, millivolts), so cards written before layouts existed keep
    their hash."""
    spec = to_dict(config.sensors)
    spec.pop("profile")
    if not spec["imu_names"]:
        spec.pop("imu_names")
    if spec["emg_unit"] == "mV":
        spec.pop("emg_unit")
    return spec


def preprocessing_spec(config: Config) -> dict:
    """Everything that decides what the model sees: recorded in a model card."""
    return {
        "version": PREPROCESSING_VERSION,
        "sensors": _sensors_spec(config),
        "filters": to_dict(config.filters),
        "preprocess": to_dict(config.preprocess),
        "window": to_dict(config.window),
    }


def preprocessing_hash(config: Config) -> str:
    """sha256 of the canonical JSON of ``preprocessing_spec``: equal preprocessing, equal hash."""
    return config_hash(preprocessing_spec(config))


class Preprocessor:
    """One object per stream; owns every filter and resampler state of that stream."""

    def __init__(self, config: Config):
        self.config = config
        sensors = config.sensors
        self.layout = layout = config.layout
        self.sensor_count = len(sensors.names)
        self.modalities = layout.modalities
        self.model_rate_hz = Fraction(config.preprocess.model_rate_hz)
        self.input_rate_hz = {name: layout.rate(name) for name in MODALITIES}
        self.samples_per_frame = {name: layout.samples_per_frame(name) for name in MODALITIES}
        self.channel_counts = {name: layout.channel_count(name) for name in MODALITIES}
        self.designs: dict[str, ModalityDesign] = {
            name: cached_design_modality(name, config.filters, config.preprocess, sensors.emg_rate_hz, sensors.imu_rate_hz)
            for name in self.modalities
        }
        self._steady = config.filters.initial_state == "steady"
        self._fused = self.modalities == MODALITIES  # one jitted call per frame needs all three
        self._channels = [self.channel_counts[name] for name in self.modalities]
        self._frame_shapes = [(self.samples_per_frame[name], self.channel_counts[name]) for name in self.modalities]
        self.max_gap_fill = {name: int(config.preprocess.max_gap_fill_s * rate)
                             for name, rate in self.input_rate_hz.items()}
        self.gaps: collections.deque[Gap] = collections.deque(maxlen=GAP_HISTORY)
        self.gap_count = 0
        self.reset()

    # -- state ---------------------------------------------------------------------------------

    def _specs(self) -> list[ChainSpec]:
        return [ChainSpec.from_design(self.designs[name], self.channel_counts[name], self._steady)
                for name in self.modalities]

    def reset(self) -> None:
        """Forget the stream: the next frame may start at any index (e.g. after acquisition restarts)."""
        self._bank = ChainBank(self._specs())
        self._pending: list[ChainOutput | None] = [None] * len(self.modalities)
        self._no_pending = True
        # (sEMG, IMU) index the next frame continues the stream at, once all three chains run.
        self._next_inputs: tuple[int, int] | None = None

    @property
    def emission_delay_s(self) -> Fraction:
        """How long after model sample k's time its last input arrives (the resampler FIR half-span)."""
        return max(self.designs[name].resampler.delay_s for name in self.modalities)

    # -- validation ----------------------------------------------------------------------------

    def _check_array(self, name: str, array: object, rows: int | None) -> np.ndarray:
        channels = self.channel_counts[name]
        if not isinstance(array, np.ndarray):
            raise ValueError(f"{name} is a {type(array).__name__}; pass a numpy array of shape (samples, {channels})")
        if array.dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"{name} has dtype {array.dtype}; expected float32 (or float64): convert with "
                             ".astype(np.float32)")
        if array.ndim != 2 or array.shape[1] != channels:
            raise ValueError(f"{name} has shape {array.shape}; expected (samples, {channels}) for the layout "
                             f"{self.layout.describe()}")
        if array.shape[0] == 0:
            raise ValueError(f"{name} has no samples; pass at least one sample (skip empty chunks)")
        if rows is not None and array.shape[0] != rows:
            raise ValueError(f"frame {name} has {array.shape[0]} samples; a "
                             f"{float(self.layout.frame_period_s) * 1000:g} ms frame at {self.input_rate_hz[name]} Hz holds {rows}")
        return np.ascontiguousarray(array)

    def _check_rate(self, key: str, given: object, configured: Fraction) -> None:
        if given is not None and Fraction(given) != configured:
            raise ValueError(f"{key} {given} Hz disagrees with [sensors] {key} = '{configured}' in the config; "
                             "resample the recording or use a config with its rates")

    # -- streaming -----------------------------------------------------------------------------

    def process_frame(self, frame: Frame) -> AlignedBlock | None:
        """One frame in; the model-rate samples that became complete out (None if none yet)."""
        if type(frame) is not Frame and not isinstance(frame, Frame):
            raise ValueError(f"process_frame takes a stream.wire.frames.Frame, not {type(frame).__name__}")
        emg, acc, gyro = frame.emg, frame.acc, frame.gyro
        if (self._next_inputs is not None and (frame.emg_first_index, frame.imu_first_index) == self._next_inputs
                and self._plain(emg, 0) and self._plain(acc, 1) and self._plain(gyro, 2)):
            # The usual case: a float32 frame that continues the stream. One jitted call for everything.
            emg_first, imu_first = self._next_inputs
            bank = self._bank
            starts, written = bank.process_frame(emg, acc, gyro, emg_first, imu_first)
            self._next_inputs = (emg_first + emg.shape[0], imu_first + acc.shape[0])
            count = written[0]
            if self._no_pending and starts[0] == starts[1] == starts[2] and count == written[1] == written[2]:
                if count == 0:
                    return None
                out, valid = bank.frame_out, bank.frame_valid  # modalities in lockstep: no buffering
                return AlignedBlock(starts[0], out[0, :count, :self._channels[0]].copy(),
                                    out[1, :count, :self._channels[1]].copy(),
                                    out[2, :count, :self._channels[2]].copy(),
                                    valid[0, :count] & valid[1, :count] & valid[2, :count])
            return self._align(bank.frame_outputs(starts, written))
        arrays = [self._frame_array(name, getattr(frame, name)) for name in self.modalities]
        emg_first, imu_first = frame.emg_first_index, frame.imu_first_index
        if isinstance(emg_first, np.integer) and isinstance(imu_first, np.integer):
            emg_first, imu_first = int(emg_first), int(imu_first)  # numpy indices from a decoder are fine
        first_index = [emg_first if name == "emg" else imu_first for name in self.modalities]
        bank = self._bank
        counters = bank.counters
        if (self._fused and type(emg_first) is int and type(imu_first) is int and counters[0, kernels.STARTED]
                and counters[0, kernels.NEXT_INPUT] == emg_first and counters[1, kernels.NEXT_INPUT] == imu_first
                and counters[2, kernels.NEXT_INPUT] == imu_first):
            # Continues the stream, in float64 or as views: still one jitted call.
            starts, written = bank.process_frame(arrays[0], arrays[1], arrays[2], emg_first, imu_first)
            outputs = bank.frame_outputs(starts, written)
        else:
            outputs = self._process_irregular(frame.sequence, arrays, first_index)
        bank = self._bank  # a long gap restarts the chains in a new bank
        if self._fused and all(bank.started(chain) for chain in range(3)):
            self._next_inputs = (bank.next_input_index(0), bank.next_input_index(1))
        return self._align(outputs)

    def _plain(self, array: object, chain: int) -> bool:
        """A C-contiguous float32 array of the frame's shape (what the fused kernel takes as is)."""
        return (type(array) is np.ndarray and array.dtype is _FLOAT32 and array.shape == self._frame_shapes[chain]
                and array.flags.c_contiguous)

    def _frame_array(self, name: str, array: object) -> np.ndarray:
        rows, channels = self.samples_per_frame[name], self.channel_counts[name]
        if type(array) is not np.ndarray or array.dtype not in SUPPORTED_DTYPES or array.shape != (rows, channels):
            return self._check_array(name, array, rows)  # raises with the precise problem
        return array if array.flags.c_contiguous else np.ascontiguousarray(array)

    def _process_irregular(self, sequence: int, arrays: list[np.ndarray], first_index: list[int]) -> list[ChainOutput]:
        """First frame, gaps, and refusals: chain by chain."""
        expected = [self._bank.next_input_index(chain) for chain in range(len(self.modalities))]
        for chain, name in enumerate(self.modalities):
            check_continues(first_index[chain], None, f"frame {sequence} {name}")
            if expected[chain] is not None and first_index[chain] < expected[chain]:
                check_continues(first_index[chain], expected[chain], f"frame {sequence} {name}")
        # Gaps: fill short ones with invalid samples, restart the whole chain after a long one.
        missing = [0 if expected[chain] is None else first_index[chain] - expected[chain]
                   for chain in range(len(self.modalities))]
        if any(count > self.max_gap_fill[name] for count, name in zip(missing, self.modalities)):
            for chain, name in enumerate(self.modalities):
                if missing[chain]:
                    self._report_gap(Gap(name, first_index[chain] - missing[chain], missing[chain], "restarted"))
            self.reset()
            missing = [0] * len(self.modalities)
        outputs = []
        for chain, name in enumerate(self.modalities):
            pieces = []
            if missing[chain]:
                start = first_index[chain] - missing[chain]
                self._report_gap(Gap(name, start, missing[chain], "filled"))
                gap = np.full((missing[chain], arrays[chain].shape[1]), np.nan, dtype=arrays[chain].dtype)
                pieces.append(self._bank.process(chain, gap, start))
            pieces.append(self._bank.process(chain, arrays[chain], int(first_index[chain])))
            outputs.append(_concatenate(pieces))
        return outputs

    def _report_gap(self, gap: Gap) -> None:
        self.gaps.append(gap)
        self.gap_count += 1
        logger.warning("gap in %s: %d samples missing from index %d (%s)", gap.modality, gap.missing_samples,
                       gap.first_missing_index, gap.action)

    def _align(self, outputs: list[ChainOutput]) -> AlignedBlock | None:
        """Keep per-modality outputs until every modality has them; emit the common index range.
        ``outputs`` may be views of reused buffers: everything kept or returned is a copy."""
        for chain, output in enumerate(outputs):
            pending = self._pending[chain]
            if pending is None or len(pending.valid) == 0:
                self._pending[chain] = ChainOutput(output.first_index, output.values.copy(), output.valid.copy())
            else:
                self._pending[chain] = _concatenate([pending, output])
        self._no_pending = False
        start = max(pending.first_index for pending in self._pending)
        end = min(pending.first_index + len(pending.valid) for pending in self._pending)
        if end <= start:
            for chain, pending in enumerate(self._pending):  # what precedes the common start can never be aligned
                skip = max(0, min(start, pending.first_index + len(pending.valid)) - pending.first_index)
                if skip:
                    self._pending[chain] = ChainOutput(pending.first_index + skip, pending.values[skip:],
                                                       pending.valid[skip:])
            return None
        block = {}
        valid = np.ones(end - start, dtype=np.bool_)
        for chain, name in enumerate(self.modalities):
            pending = self._pending[chain]
            lo, hi = start - pending.first_index, end - pending.first_index
            block[name] = pending.values[lo:hi]
            valid &= pending.valid[lo:hi]
            rest = ChainOutput(end, pending.values[hi:], pending.valid[hi:])
            self._pending[chain] = rest if len(rest.valid) else None
        self._no_pending = all(pending is None for pending in self._pending)
        return self._block(start, block, valid)

    def _block(self, start: int, arrays: dict[str, np.ndarray], valid: np.ndarray) -> AlignedBlock:
        rows = valid.shape[0]
        empty = {name: np.zeros((rows, 0), dtype=np.float32) for name in MODALITIES}
        return AlignedBlock(first_index=start, valid=valid, **{**empty, **arrays})

    # -- batch ---------------------------------------------------------------------------------

    def process_recording(self, emg: np.ndarray, acc: np.ndarray, gyro: np.ndarray, emg_first_index: int = 0,
                          imu_first_index: int = 0, *, emg_rate_hz: Fraction | str | None = None,
                          imu_rate_hz: Fraction | str | None = None) -> AlignedBlock:
        """A whole recording at once, from a fresh state (this object's streaming state is untouched).

        NaN/inf mark the model samples they reach invalid (as in streaming). The last
        ``emission_delay_s`` of the recording gives no output (streaming would emit it later).
        """
        self._check_rate("emg_rate_hz", emg_rate_hz, self.input_rate_hz["emg"])
        self._check_rate("imu_rate_hz", imu_rate_hz, self.input_rate_hz["acc"])
        arrays = {"emg": emg, "acc": acc, "gyro": gyro}
        first_index = {"emg": emg_first_index, "acc": imu_first_index, "gyro": imu_first_index}
        checked = {name: self._check_array(name, arrays[name], None) for name in self.modalities}
        if "acc" in checked and "gyro" in checked and checked["acc"].shape[0] != checked["gyro"].shape[0]:
            raise ValueError(f"acc has {checked['acc'].shape[0]} samples but gyro {checked['gyro'].shape[0]}; "
                             "they share the IMU clock and must have the same length")
        for name in self.modalities:
            check_continues(first_index[name], None, f"{name} first index")
        # One bank per modality: contiguous outputs; the same kernel and arithmetic as streaming.
        outputs = {name: ChainBank([spec]).process(0, checked[name], int(first_index[name]))
                   for name, spec in zip(self.modalities, self._specs())}
        starts = [output.first_index for output in outputs.values()]
        start = max(starts)
        end = max(start, min(output.first_index + len(output.valid) for output in outputs.values()))
        valid = np.ones(end - start, dtype=np.bool_)
        block = {}
        for name, output in outputs.items():
            lo, hi = start - output.first_index, end - output.first_index
            block[name] = output.values[lo:hi]
            valid &= output.valid[lo:hi]
        return self._block(start, block, valid)


def _concatenate(pieces: list[ChainOutput]) -> ChainOutput:
    if len(pieces) == 1:
        return pieces[0]
    return ChainOutput(pieces[0].first_index, np.concatenate([piece.values for piece in pieces]),
                       np.concatenate([piece.valid for piece in pieces]))

"""Finding signs in the stream: activity detection on sEMG energy and IMU motion, with hysteresis.

A stage with no sockets: ``Segmenter.process(block)`` takes the Preprocessor's aligned model-rate
blocks and returns the segments that ended in them. stream-infer and ``stream.tools.evaluate`` call the
same object.

Per model-rate sample (13.5 ms at the default 2000/27 Hz; 20 ms for the myo and plux profiles):

- sEMG energy: the mean over sensors of the normalised envelope; IMU motion: the mean over sensors of
  the gyroscope magnitude. Both are smoothed by a one-pole low-pass (``smoothing_s``).
- Each is divided by its rest baseline: a level tracked only while no sign is under way, falling
  quickly (1 s) and rising slowly (``baseline_time_constant_s``), so that a sign never raises it but
  a quieter rest is followed at once (during the first ``warmup_s`` it follows both ways quickly,
  and no sign is detected). A floor keeps the ratio finite on a perfectly still signal.
- Thresholds that follow the signer (``adaptive_thresholds``, the default): how far a sign rises over
  rest differs by person, muscle and electrode (real arm recordings 10-40x, our synthetic signer
  25-90x: docs/DATA.md "Realism"), so the sEMG thresholds are placed on a log scale between rest and
  this signer's activity: on = contrast ** ``on_exponent``, off = contrast ** ``off_exponent``,
  each kept within [``emg_on_min``, ``emg_on_threshold``] and [``emg_off_min``, ``emg_off_threshold``].
  The contrast starts at ``initial_contrast`` (a calibration can set it) and moves towards the peak
  ratio of every sign whose sEMG crossed the on threshold (an exponential average of logarithms,
  weight ``contrast_learning``). Without it the fixed thresholds apply.
- Hysteresis: a sign starts when the sEMG ratio reaches its *on* threshold while the level is also
  ``local_rise`` times its minimum over the last ``local_floor_s`` (so a posture held between signs
  does not count), or when the motion ratio reaches its *on* threshold. It ends when both have
  stayed below their *off* thresholds (or sEMG below ``release_fraction`` of the sign's peak: two
  signs joined by a held transition) for ``hold_off_s``; the sign's end is the first quiet sample.
  Only true rest (both ratios below ``baseline_update_ratio``, no sign under way) updates the
  baselines: a held posture between signs must not become the new rest.
  Shorter than ``min_sign_s``: dropped (a twitch). Longer than ``max_sign_s``: cut there and
  reported, then no new sign starts until the activity has fallen below the off thresholds.
- A sample marked invalid (a gap or NaN upstream) or a jump in the indices abandons the sign under
  way (a segment never spans a gap) but keeps the baselines; no sign starts until rest is seen again.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field

import numpy as np

from stream.common.jit import njit

_IDLE, _ACTIVE, _REFRACTORY = 0, 1, 2
_BASELINE_FALL_TIME_CONSTANT_S = 1.0


@njit
def _features_kernel(emg, gyro, energy, motion):
    # Per sample: mean sEMG envelope over sensors; mean gyroscope magnitude over IMU sensors (0 for a
    # layout without a gyroscope: signs are then found on sEMG energy alone).
    sensors = gyro.shape[1] // 3
    for row in range(emg.shape[0]):
        total = 0.0
        for column in range(emg.shape[1]):
            total += emg[row, column]
        energy[row] = total / emg.shape[1]
        total = 0.0
        for sensor in range(sensors):
            x = gyro[row, 3 * sensor]
            y = gyro[row, 3 * sensor + 1]
            z = gyro[row, 3 * sensor + 2]
            total += math.sqrt(x * x + y * y + z * z)
        motion[row] = total / sensors if sensors > 0 else 0.0


@dataclass(frozen=True)
class Segment:
    """A sign found in the stream, in model-rate sample indices (end exclusive).

    ``decided_index`` is the index of the sample after the one on which the decision was taken: the
    window ending there is the first that holds the whole sign and the hold-off after it.
    """

    start_index: int
    end_index: int
    decided_index: int
    forced: bool = False  # cut at max_sign_s rather than ended by rest


@dataclass
class SegmenterState:
    """Everything carried between blocks (explicit, so reset and inspection are trivial)."""

    next_index: int | None = None
    emg_level: float = math.nan
    motion_level: float = math.nan
    emg_baseline: float = math.nan
    motion_baseline: float = math.nan
    mode: int = _IDLE
    start_index: int = 0
    peak_emg: float = 0.0
    floor_window: collections.deque = field(default_factory=collections.deque)  # (index, level), increasing
    quiet_samples: int = 0
    samples_seen: int = 0
    log_contrast: float = math.nan  # the learned activity-over-rest of this signer (adaptive thresholds)


class Segmenter:
    """Activity detection with hysteresis over aligned model-rate blocks."""

    def __init__(self, config):
        segmentation = config.segmentation
        rate = float(config.preprocess.model_rate_hz)
        self.config = segmentation
        self.rate_hz = rate
        self.smoothing = 1.0 - math.exp(-1.0 / (segmentation.smoothing_s * rate)) if segmentation.smoothing_s > 0 else 1.0
        self.baseline_rise = 1.0 - math.exp(-1.0 / (segmentation.baseline_time_constant_s * rate))
        self.baseline_fall = 1.0 - math.exp(-1.0 / (_BASELINE_FALL_TIME_CONSTANT_S * rate))
        self.warmup_samples = max(1, round(segmentation.warmup_s * rate))
        self.hold_off_samples = max(1, round(segmentation.hold_off_s * rate))
        self.local_floor_samples = max(1, round(segmentation.local_floor_s * rate))
        self.min_samples = max(1, round(segmentation.min_sign_s * rate))
        self.max_samples = max(self.min_samples + 1, round(segmentation.max_sign_s * rate))
        self.counters = {"segments": 0, "segments_too_short": 0, "segments_forced": 0, "segments_dropped_invalid": 0}
        self.state = self._fresh_state()

    def _fresh_state(self) -> SegmenterState:
        return SegmenterState(log_contrast=math.log(self.config.initial_contrast))

    def reset(self) -> None:
        """Forget everything (after a gap or a restarted source); baselines are learned again."""
        if self.state.mode == _ACTIVE:
            self.counters["segments_dropped_invalid"] += 1
        self.state = self._fresh_state()

    def emg_thresholds(self) -> tuple[float, float]:
        """The sEMG (on, off) ratios to the rest baseline in force now."""
        configuration = self.config
        if not configuration.adaptive_thresholds:
            return configuration.emg_on_threshold, configuration.emg_off_threshold
        on = min(configuration.emg_on_threshold,
                 max(configuration.emg_on_min, math.exp(configuration.on_exponent * self.state.log_contrast)))
        off = min(configuration.emg_off_threshold, on,
                  max(configuration.emg_off_min, math.exp(configuration.off_exponent * self.state.log_contrast)))
        return on, off

    @property
    def contrast(self) -> float:
        """The signer's activity over rest as learned so far (``initial_contrast`` until a sign is seen)."""
        return math.exp(self.state.log_contrast)

    def _learn_contrast(self, emg_on: float) -> None:
        """After a sign: move the contrast towards its peak ratio, if its sEMG crossed the on threshold
        (a sign found on motion alone says nothing about the sEMG's range)."""
        state, configuration = self.state, self.config
        peak_ratio = state.peak_emg / max(state.emg_baseline, configuration.emg_floor)
        if configuration.adaptive_thresholds and peak_ratio >= emg_on:
            state.log_contrast += configuration.contrast_learning * (math.log(peak_ratio) - state.log_contrast)

    @property
    def active(self) -> bool:
        return self.state.mode == _ACTIVE

    def features(self, emg: np.ndarray, gyro: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw (unsmoothed) sEMG energy and IMU motion per sample.

        Motion is the gyroscope's magnitude alone: the accelerometer mixes gravity with movement, and
        after a sign that ends in a new arm posture its gravity component stays changed, which would
        hold the segment open long after the movement stopped. Without a gyroscope in the layout
        motion is 0 and signs are found on sEMG energy alone.
        """
        rows = len(emg)
        energy = np.empty(rows)
        motion = np.empty(rows)
        _features_kernel(np.ascontiguousarray(emg, dtype=np.float32), np.ascontiguousarray(gyro, dtype=np.float32),
                         energy, motion)
        return energy, motion

    def process(self, block) -> list[Segment]:
        """Feed one AlignedBlock; returns the segments that ended in it."""
        emg, gyro, valid = block.emg, block.gyro, block.valid
        count = len(emg)
        if count == 0:
            return []
        state = self.state
        if state.next_index is not None and block.first_index != state.next_index:
            # Upstream jumped: never bridge it (the rest baselines stay: same signer, same sensors).
            self._abandon()
        energy, motion = self.features(emg, gyro)
        segments: list[Segment] = []
        configuration = self.config
        emg_on, emg_off = self.emg_thresholds()
        for offset in range(count):
            index = block.first_index + offset
            if not valid[offset] or not (math.isfinite(energy[offset]) and math.isfinite(motion[offset])):
                self._abandon()
                state.next_index = index + 1
                continue
            if state.samples_seen == 0:
                state.emg_level = state.emg_baseline = float(energy[offset])
                state.motion_level = state.motion_baseline = float(motion[offset])
            else:
                state.emg_level += self.smoothing * (energy[offset] - state.emg_level)
                state.motion_level += self.smoothing * (motion[offset] - state.motion_level)
            state.samples_seen += 1
            emg_ratio = state.emg_level / max(state.emg_baseline, configuration.emg_floor)
            motion_ratio = state.motion_level / max(state.motion_baseline, configuration.motion_floor)
            local_floor = self._local_floor(index, state.emg_level)
            # On: sEMG well above rest *and* rising well above its recent floor (a held posture
            # between signs keeps sEMG up without being a sign), or strong motion.
            loud = ((emg_ratio >= emg_on
                     and state.emg_level >= configuration.local_rise * max(local_floor, configuration.emg_floor))
                    or motion_ratio >= configuration.motion_on_threshold)
            # Off: below the off threshold, or (sEMG) fallen well below this sign's own peak, which
            # separates two signs joined by a held transition (arm not lowered between them).
            emg_quiet = (emg_ratio < emg_off
                         or (state.mode != _IDLE and state.emg_level < configuration.release_fraction * state.peak_emg))
            motion_quiet = motion_ratio < configuration.motion_off_threshold
            quiet = emg_quiet and motion_quiet
            warming_up = state.samples_seen <= self.warmup_samples

            if state.mode == _IDLE:
                if loud and not warming_up:
                    state.mode, state.start_index, state.quiet_samples = _ACTIVE, index, 0
                    state.peak_emg = state.emg_level
                elif warming_up or (emg_ratio < configuration.baseline_update_ratio
                                    and motion_ratio < configuration.baseline_update_ratio):
                    # Only true rest teaches the baseline: not a held posture, not a fidget.
                    self._track_baselines(state, warming_up)
            elif state.mode == _ACTIVE:
                state.peak_emg = max(state.peak_emg, state.emg_level)
                state.quiet_samples = state.quiet_samples + 1 if quiet else 0
                if state.quiet_samples >= self.hold_off_samples:
                    end = index + 1 - state.quiet_samples
                    state.mode = _IDLE
                    # The next sign must rise local_rise times over what came after this one: a
                    # posture held after a sign (the arm not lowered) is not a new sign.
                    state.floor_window.clear()
                    if end - state.start_index >= self.min_samples:
                        segments.append(Segment(state.start_index, end, index + 1))
                        self.counters["segments"] += 1
                        self._learn_contrast(emg_on)
                        emg_on, emg_off = self.emg_thresholds()
                    else:
                        self.counters["segments_too_short"] += 1
                elif index + 1 - state.start_index >= self.max_samples:
                    segments.append(Segment(state.start_index, index + 1, index + 1, forced=True))
                    self.counters["segments"] += 1
                    self.counters["segments_forced"] += 1
                    state.mode = _REFRACTORY
                    self._learn_contrast(emg_on)
                    emg_on, emg_off = self.emg_thresholds()
            else:  # refractory after a forced cut: wait for rest before a new sign may start
                if quiet:
                    state.mode = _IDLE
            state.next_index = index + 1
        return segments

    def _local_floor(self, index: int, level: float) -> float:
        """Minimum of the smoothed sEMG level over the last ``local_floor_s`` (sliding minimum)."""
        window = self.state.floor_window
        while window and window[-1][1] >= level:
            window.pop()
        window.append((index, level))
        while window[0][0] <= index - self.local_floor_samples:
            window.popleft()
        return window[0][1]

    def _abandon(self) -> None:
        """Drop the sign under way (a gap or invalid samples inside it); keep the baselines."""
        state = self.state
        if state.mode == _ACTIVE:
            self.counters["segments_dropped_invalid"] += 1
        # After a forced cut or an abandoned sign, wait for rest before a new sign may start.
        state.mode = _REFRACTORY if state.mode != _IDLE else _IDLE
        state.quiet_samples = 0

    def _track_baselines(self, state: SegmenterState, warming_up: bool) -> None:
        for level_name, baseline_name in (("emg_level", "emg_baseline"), ("motion_level", "motion_baseline")):
            level, baseline = getattr(state, level_name), getattr(state, baseline_name)
            # While warming up, follow the level both ways quickly: the first samples (filters
            # settling) say little about the rest level.
            rate = self.baseline_fall if (level < baseline or warming_up) else self.baseline_rise
            setattr(state, baseline_name, baseline + rate * (level - baseline))

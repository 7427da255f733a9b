"""Per-user input alignment: each model input channel of the new user scaled and shifted so that its
mean and spread over the calibration windows equal those of the training windows.

Electrodes placed on another arm, another skin, another day change each sEMG channel's gain and the
IMU's mounting: the features the student learned are the same signs seen through other amplitudes.
Matching the first two moments per channel (a feature-distribution alignment in the model's input
space) needs no gradient and no TensorFlow: ``x' = x * scale + offset`` per channel, with
``scale = training_std / user_std`` and ``offset = training_mean - user_mean * scale``, from the
training statistics in the model card (``input_statistics``, written by ``train.distill``) and the
user's calibration windows. Over signs in proportion, the user's windows and the training windows
hold the same mix of classes, so the match removes what differs in the person, not in the signs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream.adapt.head import AdaptationError

MIN_STD = 1e-6
MAX_SCALE = 10.0  # a channel the user barely moved must not be blown up into noise


@dataclass(frozen=True)
class InputAlignment:
    """modality -> (scale, offset), each (channels,) float32."""

    scales: dict
    offsets: dict

    def apply(self, name: str, window: np.ndarray) -> np.ndarray:
        """One modality's (samples, channels) or (n, samples, channels) array, aligned."""
        if name not in self.scales:
            return window
        return (window * self.scales[name] + self.offsets[name]).astype(np.float32)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.scales)


def channel_statistics(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per channel over (n, samples, channels) windows."""
    values = np.asarray(windows, dtype=np.float64).reshape(-1, windows.shape[-1])
    return values.mean(axis=0), values.std(axis=0)


def fit_alignment(user_windows: dict, training_statistics: dict) -> InputAlignment:
    """``user_windows``: modality -> (n, samples, channels) calibration windows; ``training_statistics``:
    modality -> {"mean": [...], "std": [...]} (the card's ``input_statistics``)."""
    scales, offsets = {}, {}
    for name, windows in user_windows.items():
        if name not in training_statistics:
            raise AdaptationError(f"the model card has no input statistics for {name!r}; retrain it with "
                                  "python -m train.distill (cards from before Dec 2026 lack them)")
        windows = np.asarray(windows)
        if windows.ndim != 3 or not np.isfinite(windows).all():
            raise AdaptationError(f"{name}: calibration windows must be finite (n, samples, channels) arrays")
        training_mean = np.asarray(training_statistics[name]["mean"], dtype=np.float64)
        training_std = np.asarray(training_statistics[name]["std"], dtype=np.float64)
        if training_mean.shape != (windows.shape[-1],) or training_std.shape != training_mean.shape:
            raise AdaptationError(f"{name}: the card's statistics have {training_mean.shape[0]} channels, the "
                                  f"calibration windows {windows.shape[-1]}")
        user_mean, user_std = channel_statistics(windows)
        scale = np.clip(training_std / np.maximum(user_std, MIN_STD), 1.0 / MAX_SCALE, MAX_SCALE)
        scales[name] = scale.astype(np.float32)
        offsets[name] = (training_mean - user_mean * scale).astype(np.float32)
    return InputAlignment(scales, offsets)

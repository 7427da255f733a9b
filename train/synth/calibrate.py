"""A fast proxy classifier for calibrating the synthetic signer's difficulty (numpy only).

Features of the annotated sign, cut in 8 equal time segments: log RMS of each sEMG channel, mean of
each accelerometer and gyroscope channel. Classifier: ridge regression onto one-hot labels of
standardised features (a linear discriminant), argmax. It is NOT the project's model: it says whether
the data are in a sensible regime (neither trivial nor impossible; within-signer well above
leave-one-signer-out) in seconds, before the teachers are trained.

    python -m train.synth.calibrate DIR                  # on a generated dataset's saved splits
    python -m train.synth.calibrate DIR --model-inputs   # on the model's preprocessed 2 s windows
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

import numpy as np

from stream.recording import Recording

SEGMENTS = 8
MODALITY_COLUMNS = {"emg": 6, "acc": 18, "gyro": 18}


def proxy_features(recording: Recording) -> dict[str, np.ndarray]:
    """Per modality, a (SEGMENTS * channels,) feature vector of the first annotation's span."""
    annotation = recording.annotations[0]
    emg_start = annotation.start_index - recording.emg_first_index
    emg_end = annotation.end_index - recording.emg_first_index
    ratio = float(recording.imu_rate_hz / recording.emg_rate_hz)
    imu_start, imu_end = int(emg_start * ratio), max(int(emg_end * ratio), int(emg_start * ratio) + SEGMENTS)
    emg_edges = np.linspace(emg_start, emg_end, SEGMENTS + 1).astype(int)
    imu_edges = np.linspace(imu_start, imu_end, SEGMENTS + 1).astype(int)
    features = {"emg": [], "acc": [], "gyro": []}
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN segment of a dropped-out sensor
        for segment in range(SEGMENTS):
            emg = recording.emg[emg_edges[segment]:emg_edges[segment + 1]]
            emg = emg - np.nanmean(emg, axis=0)
            features["emg"].append(np.log(np.sqrt(np.nanmean(emg ** 2, axis=0)) + 1e-3))
            for name in ("acc", "gyro"):
                features[name].append(np.nanmean(getattr(recording, name)[imu_edges[segment]:imu_edges[segment + 1]], axis=0))
    return {name: np.nan_to_num(np.concatenate(values)) for name, values in features.items()}


def model_input_features(recording: Recording, config, segments: int = 16,
                         hold_off_s: float | None = None) -> dict[str, np.ndarray]:
    """Per modality, means over ``segments`` time segments of the window the model would classify:
    the preprocessed (stream.dsp) 2 s window ending ``hold_off_s`` after the annotated sign end, its
    missing start filled with the recording's own lead rest mirrored (as train.distill does)."""
    from stream.dsp.preprocess import Preprocessor
    from stream.dsp.windows import window_length_samples
    from stream.wire.rates import sample_index_at

    model_rate = config.preprocess.model_rate_hz
    hold_off_s = config.segmentation.hold_off_s if hold_off_s is None else hold_off_s
    block = Preprocessor(config).process_recording(recording.emg, recording.acc, recording.gyro,
                                                   recording.emg_first_index, recording.imu_first_index)
    length = window_length_samples(config)
    annotation = recording.annotations[0]
    end = sample_index_at(annotation.end_index / recording.emg_rate_hz, model_rate) + round(hold_off_s * float(model_rate))
    end = min(end - block.first_index, block.emg.shape[0])
    start = end - length
    features = {}
    for name in ("emg", "acc", "gyro"):
        values = np.nan_to_num(getattr(block, name)[max(start, 0):end])
        if start < 0:
            values = np.pad(values, ((-start, 0), (0, 0)), mode="symmetric")
        features[name] = np.concatenate([part.mean(axis=0) for part in np.array_split(values, segments)])
    return features


def ridge_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                   classes: int, penalty: float = 1.0) -> float:
    mean, scale = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
    train_z, test_z = (train_x - mean) / scale, (test_x - mean) / scale
    train_z = np.hstack([train_z, np.ones((len(train_z), 1))])
    test_z = np.hstack([test_z, np.ones((len(test_z), 1))])
    targets = np.eye(classes)[train_y]
    gram = train_z.T @ train_z + penalty * len(train_z) / 100.0 * np.eye(train_z.shape[1])
    weights = np.linalg.solve(gram, train_z.T @ targets)
    return float(np.mean(np.argmax(test_z @ weights, axis=1) == test_y))


def evaluate(features: dict[str, dict[str, np.ndarray]], labels: dict[str, int], splits: dict, classes: int) -> dict:
    """Proxy accuracies: within-signer test, per LOSO fold, and per modality (within)."""

    def matrix(ids: list[str], modalities: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        return (np.stack([np.concatenate([features[i][m] for m in modalities]) for i in ids]),
                np.array([labels[i] for i in ids]))

    all_modalities = ("emg", "acc", "gyro")
    within = splits["within"]
    result = {"within_test": ridge_accuracy(*matrix(within["train"] + within["val"], all_modalities),
                                            *matrix(within["test"], all_modalities), classes)}
    for modalities in (("emg",), ("acc", "gyro")):
        result[f"within_test_{'+'.join(modalities)}"] = ridge_accuracy(
            *matrix(within["train"] + within["val"], modalities), *matrix(within["test"], modalities), classes)
    folds = {}
    for fold in splits["loso"]:
        folds[fold["held_out_signer"]] = ridge_accuracy(*matrix(fold["train"] + fold["val"], all_modalities),
                                                        *matrix(fold["test"], all_modalities), classes)
    if folds:
        result["loso_mean"] = float(np.mean(list(folds.values())))
        result["loso_folds"] = folds
    return {key: (round(value, 4) if isinstance(value, float) else value) for key, value in result.items()}


def evaluate_dataset(directory: str, model_inputs: bool = False) -> dict:
    from stream.recording.dataset import open_dataset

    if model_inputs:
        from stream.config import load_config

        config = load_config()
    with open_dataset(directory) as dataset:
        features, labels = {}, {}
        for entry in dataset.isolated():
            recording = dataset.load(entry)
            features[entry.id] = model_input_features(recording, config) if model_inputs else proxy_features(recording)
            labels[entry.id] = dataset.label_index(entry.label)
        return evaluate(features, labels, dataset.splits, len(dataset.labels))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.synth.calibrate", description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--model-inputs", action="store_true",
                        help="features from the model's own preprocessed 2 s window (stream.dsp, default config) "
                             "instead of the annotated span")
    arguments = parser.parse_args(argv)
    try:
        print(json.dumps(evaluate_dataset(arguments.directory, arguments.model_inputs), indent=1))
    except ValueError as error:
        print(f"train.synth.calibrate: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

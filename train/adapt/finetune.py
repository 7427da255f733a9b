"""The workstation option: fine-tuning the student's last layers with TensorFlow on a user's
calibration windows, to compare with what the device does without TensorFlow (stream.adapt).

The student is rebuilt from its card (input spec, branch, standardisation) and its Keras weights
(``student.weights.h5``, written by train.distill beside the card, checked against the card's
sha256). Fine-tuned: the second LSTM of every branch and the output layer; the convolutions, the
first LSTMs and the BatchNormalization (kept in inference mode, its statistics those of training)
stay as trained. Plain cross-entropy, Adam, a fixed number of epochs: with two repetitions per sign
there is nothing to hold out for early stopping.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FINETUNED_LAYERS = ("_lstm2", "logits")  # name endings


class FinetuneError(ValueError):
    """A card whose student cannot be rebuilt for fine-tuning; the message says why."""


def load_student(card_path: Path, document: dict):
    """The card's student as a trainable Keras model with its trained weights."""
    from models.architectures import BranchSpec, InputSpec, build_student
    from stream.stages.model_card import sha256_file

    training = document.get("training", {})
    weights = training.get("keras_weights")
    if not weights:
        raise FinetuneError(f"{card_path}: no Keras weights recorded (cards from train.distill before Dec 2026 "
                            "have none); retrain with python -m train.distill")
    path = Path(card_path).parent / weights["file"]
    if not path.exists():
        raise FinetuneError(f"{path}: the student's Keras weights named by the card are missing")
    if sha256_file(path) != weights["sha256"]:
        raise FinetuneError(f"{path}: sha256 differs from the card's; the weights are not the card's student")
    shapes = document["input"]["shapes"]
    spec = InputSpec(window_samples=int(document["input"]["window_samples"]),
                     channels={name: int(shapes[name][1]) for name in document["input"]["modalities"]},
                     classes=len(document["labels"]))
    branch = dict(training["student_branch"])
    branch["filters"] = tuple(branch["filters"])
    normalization = training.get("standardisation")
    student = build_student(spec, BranchSpec(**branch), normalization=normalization)
    student.load_weights(str(path))
    return student


def finetune(student, windows: dict, labels: np.ndarray, epochs: int = 40, learning_rate: float = 1e-3,
             batch_size: int = 32, seed: int = 0):
    """A copy of ``student`` with its last layers fitted to ``windows`` (modality -> (n, samples,
    channels)) and ``labels`` (class indices). ``student`` itself is not changed."""
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    copy = keras.models.clone_model(student)
    copy.set_weights(student.get_weights())
    for layer in copy.layers:
        layer.trainable = layer.name.endswith(FINETUNED_LAYERS)
    copy.compile(optimizer=keras.optimizers.Adam(learning_rate),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    inputs = {name: np.asarray(windows[name], np.float32) for name in copy.input_names}
    copy.fit(inputs, np.asarray(labels), epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
    return copy


def probabilities(model, windows: dict) -> np.ndarray:
    from train.distill.training import predict_probabilities

    return predict_probabilities(model, {name: windows[name] for name in model.input_names})

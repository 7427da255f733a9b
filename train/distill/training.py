"""Fitting teachers and students, and measuring them.

Training windows are re-jittered every epoch (``JitteredWindows``); the model kept is the epoch with
the best validation accuracy (``KeepBest``), so a longer run never returns a worse model.
When more than one GPU is visible, models are built under ``tf.distribute.MirroredStrategy``
(batches split across GPUs, gradients all-reduced) with no change to the calling code; on a CPU or
one GPU the default strategy runs as is.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tf_keras as keras

from train.distill.distiller import Distiller, call_model

log = logging.getLogger(__name__)


def distribution_strategy():
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        log.info("%d GPUs visible: training with MirroredStrategy", len(gpus))
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


@dataclass(frozen=True)
class FitOptions:
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 3e-3
    patience: int = 12  # epochs without a better validation accuracy before stopping
    # Equal validation accuracy: keep the epoch with the lower validation loss. A small validation set
    # (lis-myo: 78 windows) saturates early, and the first epoch at 100 % is then kept though later
    # ones fit better (docs/RESULTS.md "Real recordings").
    tie_break_loss: bool = False


class JitteredWindows(keras.utils.Sequence):
    """Training batches: each epoch a fresh random window end per recording, shuffled."""

    def __init__(self, window_set, batch_size: int, seed: int):
        super().__init__()
        self.window_set = window_set
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self) -> int:
        return math.ceil(len(self.window_set) / self.batch_size)

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.window_set))
        self.ends = self.window_set.jittered_ends(self.order, self.rng)

    def __getitem__(self, batch: int):
        part = slice(batch * self.batch_size, (batch + 1) * self.batch_size)
        rows = self.order[part]
        return self.window_set.windows(rows, self.ends[part]), self.window_set.labels[rows]


class RecalibrateBatchNorm(keras.callbacks.Callback):
    """Before every validation pass, set the BatchNormalization layers' moving mean and variance of
    ``target`` to the exact statistics of a fixed sample of un-jittered training windows under the
    current weights.

    Why: the LSTM outputs that the head's BatchNormalization sees move faster between updates than
    its moving averages can follow (0.3-2.2 feature standard deviations behind, measured on the
    accelerometer teacher of synth-v5; their spread is small, so BN scales them 15-25x), and inference
    (validation, the copy KeepBest keeps, the exported model) used those stale statistics: validation
    accuracy swung by up to 13 points between epochs while training accuracy rose smoothly, and early
    stopping once killed a teacher that was learning. With exact statistics validation tracks the
    model (docs/RESULTS.md). Training itself uses batch statistics, so it is unchanged.
    """

    def __init__(self, target, train_set, seed: int, rows: int = 1024, batch_size: int = 256):
        super().__init__()
        take = np.sort(np.random.default_rng(seed).permutation(len(train_set))[:rows])
        windows = train_set.windows(take)
        self.inputs = {name: windows[name] for name in target.input_names}
        self.layers = [layer for layer in target.layers if isinstance(layer, keras.layers.BatchNormalization)]
        # Graph functions: traced once per fit, then 10-20x faster than eager calls every epoch (the
        # features are bitwise the same).
        self.probes = [tf.function(functools.partial(call_model, keras.Model(target.inputs, layer.input), training=False),
                                   reduce_retracing=True)
                       for layer in self.layers]
        self.batch_size = batch_size

    def on_test_begin(self, logs=None):
        rows = len(next(iter(self.inputs.values())))
        for layer, probe in zip(self.layers, self.probes):  # in order: a later BN sees the recalibrated earlier one
            features = np.concatenate([
                probe({name: array[first:first + self.batch_size] for name, array in self.inputs.items()}).numpy()
                for first in range(0, rows, self.batch_size)])
            axes = tuple(range(features.ndim - 1))
            layer.moving_mean.assign(features.mean(axis=axes))
            layer.moving_variance.assign(features.var(axis=axes))


class KeepBest(keras.callbacks.Callback):
    """Remembers the weights of the epoch with the best val_accuracy; restores them at the end;
    stops after ``patience`` epochs without improvement; logs one progress line per epoch."""

    def __init__(self, target, patience: int, name: str, tie_break_loss: bool = False):
        super().__init__()
        self.target, self.patience, self.name = target, patience, name
        self.tie_break_loss = tie_break_loss
        self.best, self.best_loss, self.best_epoch, self.best_weights = -1.0, math.inf, -1, None
        self.started = time.monotonic()

    def _better(self, accuracy: float, loss: float) -> bool:
        if accuracy > self.best:
            return True
        return self.tie_break_loss and accuracy == self.best and loss < self.best_loss

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        accuracy = float(logs.get("val_accuracy", 0.0))
        loss = float(logs.get("val_loss", math.inf))
        if self._better(accuracy, loss):
            self.best, self.best_loss, self.best_epoch = accuracy, loss, epoch
            self.best_weights = self.target.get_weights()
        log.info("%s epoch %d: loss %.3f acc %.3f val_acc %.3f (best %.3f @%d) %.0f s", self.name, epoch + 1,
                 logs.get("loss", math.nan), logs.get("accuracy", math.nan), accuracy, self.best, self.best_epoch + 1,
                 time.monotonic() - self.started)
        if epoch - self.best_epoch >= self.patience:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.target.set_weights(self.best_weights)


def _history(fit_history, keep_best: KeepBest, seconds: float) -> dict:
    return {"epochs_run": len(fit_history.history.get("loss", [])), "best_epoch": keep_best.best_epoch + 1,
            "best_val_accuracy": round(keep_best.best, 4), "seconds": round(seconds, 1),
            "curves": {key: [round(float(value), 4) for value in values] for key, values in fit_history.history.items()}}


def _validation(window_set):
    return window_set.windows(), window_set.labels


def fit_teacher(teacher, train_set, val_set, options: FitOptions, seed: int) -> dict:
    """Plain supervised training of one modality expert (inputs are filtered by name)."""
    teacher.compile(optimizer=keras.optimizers.Adam(options.learning_rate),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return _fit(teacher, teacher, train_set, val_set, options, seed)


def fit_student(student, train_set, val_set, options: FitOptions, seed: int, teachers=(), aggregation: str = "mean",
                alpha: float = 0.9, temperature: float = 4.0) -> dict:
    """Student from scratch (no teachers) or distilled from ``teachers``."""
    if not teachers:
        return fit_teacher(student, train_set, val_set, options, seed)
    distiller = Distiller(student, list(teachers), aggregation=aggregation, alpha=alpha, temperature=temperature)
    distiller.compile(optimizer=keras.optimizers.Adam(options.learning_rate))
    return _fit(distiller, student, train_set, val_set, options, seed)


def _fit(trainer, target, train_set, val_set, options: FitOptions, seed: int) -> dict:
    name = target.name
    keep_best = KeepBest(target, options.patience, name, options.tie_break_loss)
    started = time.monotonic()
    sequence = JitteredWindows(train_set, options.batch_size, seed)
    validation = _validation(val_set)
    if trainer is target and len(target.input_names) == 1:
        only = target.input_names[0]
        sequence = _SingleInput(sequence, only)
        validation = (validation[0][only], validation[1])
    # The recalibration must run before KeepBest copies the weights (BN statistics included).
    recalibrate = RecalibrateBatchNorm(target, train_set, seed)
    history = trainer.fit(sequence, validation_data=validation, epochs=options.epochs, verbose=0,
                          callbacks=[recalibrate, keep_best], shuffle=False)
    return _history(history, keep_best, time.monotonic() - started)


class _SingleInput(keras.utils.Sequence):
    """Keras' fit on a one-input model wants that input's array, not the dict of all modalities."""

    def __init__(self, sequence: JitteredWindows, name: str):
        super().__init__()
        self.sequence, self.name = sequence, name

    def __len__(self) -> int:
        return len(self.sequence)

    def on_epoch_end(self) -> None:
        self.sequence.on_epoch_end()

    def __getitem__(self, batch: int):
        inputs, labels = self.sequence[batch]
        return inputs[self.name], labels


def predict_batched(model, inputs: dict, batch_size: int = 256) -> np.ndarray:
    """A model's outputs (inference mode) on windows given by name, ``batch_size`` at a time."""
    outputs = []
    count = len(next(iter(inputs.values())))
    for first in range(0, count, batch_size):
        part = {name: array[first:first + batch_size] for name, array in inputs.items()}
        outputs.append(call_model(model, part, training=False).numpy())
    return np.concatenate(outputs)


def predict_probabilities(model, inputs: dict, batch_size: int = 256) -> np.ndarray:
    """Softmax of a logits model on windows given by name."""
    return tf.nn.softmax(predict_batched(model, inputs, batch_size), axis=-1).numpy()


def classification_metrics(probabilities: np.ndarray, labels: np.ndarray, classes: int) -> dict:
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    true_positive = np.diag(confusion).astype(float)
    precision = np.divide(true_positive, confusion.sum(axis=0), out=np.zeros(classes), where=confusion.sum(axis=0) > 0)
    recall = np.divide(true_positive, confusion.sum(axis=1), out=np.zeros(classes), where=confusion.sum(axis=1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(classes), where=(precision + recall) > 0)
    present = confusion.sum(axis=1) > 0
    return {"accuracy": round(float(np.mean(predicted == labels)), 4),
            "macro_f1": round(float(f1[present].mean()), 4), "count": int(len(labels)),
            "confusion": confusion.tolist()}

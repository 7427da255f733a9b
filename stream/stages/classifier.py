"""The classifier stage: a window of aligned sensor data in, class probabilities out.

A plain object with no sockets (stream-infer wraps it). It loads a model only through its card:
the card's preprocessing hash must equal the running config's (a model trained on differently
filtered data would answer confidently and wrongly), and the .tflite bytes must match the card's
sha256 before the interpreter sees them (the verified bytes are what is loaded, not the file again).
Runs under LiteRT, single-threaded by default: on a Pi the other daemons need the other cores.
Runtime dependencies only: never TensorFlow.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from stream.stages.model_card import ModelCard, ModelCardError, load_model_card, read_verified_model

log = logging.getLogger(__name__)


class ModelError(ValueError):
    """A model file or input that cannot be used; the message says what and how to fix it."""


def tensor_name(detail_name: str) -> str:
    """The Keras input name inside a converted model's tensor name ('serving_default_emg:0' -> 'emg')."""
    name = detail_name.split(":", 1)[0]
    return name.removeprefix("serving_default_")


class TFLiteModel:
    """One .tflite model under LiteRT, inputs mapped by name (the converter may reorder them)."""

    def __init__(self, model_bytes: bytes, threads: int = 1, source: str = "model"):
        from ai_edge_litert.interpreter import Interpreter

        try:
            self.interpreter = Interpreter(model_content=model_bytes, num_threads=threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ModelError(f"{source} is not a usable TFLite model ({str(error).strip()[:200]}); "
                             "re-export it with python -m train.distill") from None
        self.inputs = {tensor_name(detail["name"]): detail for detail in self.interpreter.get_input_details()}
        outputs = self.interpreter.get_output_details()
        if len(outputs) != 1:
            raise ModelError(f"{source} has {len(outputs)} outputs; expected one (class probabilities)")
        self.output = outputs[0]
        self.classes = int(self.output["shape"][-1])
        self.source = source

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(self.inputs)

    def _set_input(self, name: str, array: np.ndarray) -> None:
        detail = self.inputs[name]
        shape = tuple(detail["shape"][1:])
        if array.shape != shape:
            raise ModelError(f"input {name!r} has shape {array.shape}; {self.source} expects {shape}")
        if detail["dtype"] == np.float32:
            value = array.astype(np.float32, copy=False)
        else:
            # A fully integer model: quantize with the tensor's own scale and zero point.
            scale, zero_point = detail["quantization"]
            limits = np.iinfo(detail["dtype"])
            value = np.clip(np.round(array / scale + zero_point), limits.min, limits.max).astype(detail["dtype"])
        self.interpreter.set_tensor(detail["index"], value[np.newaxis])

    def run(self, inputs: dict) -> np.ndarray:
        """One window: ``inputs`` maps each input name to its (samples, channels) array."""
        missing = set(self.inputs) - set(inputs)
        if missing:
            raise ModelError(f"missing inputs {sorted(missing)}; {self.source} takes {', '.join(self.inputs)}")
        for name in self.inputs:
            self._set_input(name, inputs[name])
        # The fused LSTM op keeps its hidden and cell state in variable tensors that persist across
        # invocations: without this reset each window would start from the previous window's state
        # (measured: 7.5% agreement with Keras instead of 100%). It costs about 0.3 us.
        self.interpreter.reset_all_variables()
        self.interpreter.invoke()
        output = self.interpreter.get_tensor(self.output["index"])[0]
        if self.output["dtype"] != np.float32:
            scale, zero_point = self.output["quantization"]
            output = (output.astype(np.float32) - zero_point) * scale
        return output.astype(np.float32, copy=False)

    def run_batch(self, inputs: dict) -> np.ndarray:
        """Many windows one after another (the model has batch size 1): (n, classes)."""
        count = len(next(iter(inputs.values())))
        outputs = np.empty((count, self.classes), dtype=np.float32)
        for row in range(count):
            outputs[row] = self.run({name: inputs[name][row] for name in self.inputs})
        return outputs


class Classifier:
    """Window -> class probabilities with the model a card names."""

    def __init__(self, card: ModelCard, variant: str = "dynamic_range", threads: int = 1,
                 expected_preprocessing_hash: str | None = None, expected_layout=None):
        trained_layout = card.layout
        if (expected_layout is not None and trained_layout is not None
                and trained_layout.signature() != expected_layout.signature()):
            raise ModelCardError(
                f"{card.path}: the model was trained for the layout {trained_layout.describe()} "
                f"(sensors {', '.join(trained_layout.sensor_names)}) but the config's layout is "
                f"{expected_layout.describe()} (sensors {', '.join(expected_layout.sensor_names)}); set [sensors] "
                "to the model's layout, or use a model trained for this one")
        if expected_preprocessing_hash is not None and card.preprocessing_hash != expected_preprocessing_hash:
            raise ModelCardError(
                f"{card.path}: the model was trained with preprocessing {card.preprocessing_hash[:12]}..., the config "
                f"gives {expected_preprocessing_hash[:12]}...; the [sensors], [filters], [preprocess] and [window] "
                "settings must be the ones the model was trained with (see the card's 'preprocessing' section), "
                "or retrain the model"
            )
        model_file = card.file(variant)
        self.model = TFLiteModel(read_verified_model(model_file), threads=threads, source=str(model_file.path))
        if set(self.model.input_names) != set(card.modalities):
            raise ModelCardError(f"{card.path}: the card lists inputs {sorted(card.modalities)}, the model file "
                                 f"takes {sorted(self.model.input_names)}")
        if self.model.classes != len(card.labels):
            raise ModelCardError(f"{card.path}: the card has {len(card.labels)} labels, the model outputs "
                                 f"{self.model.classes} classes")
        for name, shape in card.input_shapes.items():
            model_shape = tuple(int(size) for size in self.model.inputs[name]["shape"][1:])
            if model_shape != shape:
                raise ModelCardError(f"{card.path}: input {name} is {shape} in the card and {model_shape} in the model")
        self.card = card
        self.variant = variant
        self.labels = card.labels
        self.model_id = card.model_id

    @classmethod
    def from_config(cls, config) -> Classifier:
        """The classifier ``[model]`` names, checked against this config's preprocessing."""
        from stream.dsp.preprocess import preprocessing_hash

        card = load_model_card(config.resolve_path(config.model.card))
        classifier = cls(card, variant=config.model.variant, threads=config.model.threads,
                         expected_preprocessing_hash=preprocessing_hash(config), expected_layout=config.layout)
        log.info("loaded model %s (%s, %d labels) from %s", classifier.model_id, classifier.variant,
                 len(classifier.labels), Path(card.path).parent)
        return classifier

    def predict(self, window) -> np.ndarray:
        """Class probabilities (float32, one per label) for one window with .emg, .acc, .gyro arrays."""
        return self.model.run({name: getattr(window, name) for name in self.card.modalities})

    def predict_batch(self, emg: np.ndarray, acc: np.ndarray, gyro: np.ndarray) -> np.ndarray:
        """(n, labels) probabilities for n windows given as (n, samples, channels) arrays."""
        arrays = {"emg": emg, "acc": acc, "gyro": gyro}
        counts = {len(arrays[name]) for name in self.card.modalities}
        if len(counts) != 1:
            raise ModelError(f"predict_batch: the arrays hold different numbers of windows ({sorted(counts)})")
        return self.model.run_batch({name: arrays[name] for name in self.card.modalities})

"""The classifier stage: a window of aligned sensor data in, class probabilities out.

A plain object with no sockets (stream-infer wraps it). It loads a model only through its card:
the card's preprocessing hash must equal the running config's (a model trained on differently
filtered data would answer confidently and wrongly), and the .tflite bytes must match the card's
sha256 before the interpreter sees them (the verified bytes are what is loaded, not the file again).
Runs under LiteRT, single-threaded by default: on a Pi the other daemons need the other cores.
Runtime dependencies only: never TensorFlow.
"""

from __future__ import annotations

import gc
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


OUTPUT_NAMES = ("probabilities", "features")


class TFLiteModel:
    """One .tflite model under LiteRT, inputs mapped by name (the converter may reorder them).

    One output (class probabilities), or two named by the model's signature: ``probabilities`` and
    ``features`` (the penultimate layer, which a per-user adaptation refits: stream.adapt).
    """

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
        self.features_output = None
        if len(outputs) == 1:
            self.output = outputs[0]
        else:
            named = self._named_outputs(source)
            self.output, self.features_output = named["probabilities"], named.get("features")
        self.classes = int(self.output["shape"][-1])
        self.feature_count = int(self.features_output["shape"][-1]) if self.features_output else 0
        self.source = source

    def _named_outputs(self, source: str) -> dict:
        """Output details by signature name. The signature runner holds views into the interpreter, so
        it is dropped before the interpreter is used (LiteRT refuses to invoke while they live)."""
        try:
            runner = self.interpreter.get_signature_runner()
            details = dict(runner.get_output_details())
        except (ValueError, RuntimeError) as error:
            raise ModelError(f"{source} has several outputs but no signature naming them ({error}); "
                             "re-export it with python -m train.distill") from None
        del runner
        gc.collect()
        by_index = {detail["index"]: detail for detail in self.interpreter.get_output_details()}
        named = {name: by_index[int(detail["index"])] for name, detail in details.items()}
        if "probabilities" not in named or set(named) - set(OUTPUT_NAMES):
            raise ModelError(f"{source} has outputs {sorted(named)}; expected probabilities (and optionally "
                             "features)")
        return named

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
        return self._read(self.output)

    def features(self) -> np.ndarray:
        """The penultimate features of the window ``run`` was last called on."""
        if self.features_output is None:
            raise ModelError(f"{self.source} has no features output; adaptation needs a model exported with it "
                             "(python -m train.distill, Dec 2026 on)")
        return self._read(self.features_output)

    def _read(self, detail: dict) -> np.ndarray:
        output = self.interpreter.get_tensor(detail["index"])[0]
        if detail["dtype"] != np.float32:
            scale, zero_point = detail["quantization"]
            output = (output.astype(np.float32) - zero_point) * scale
        return output.astype(np.float32, copy=False)

    def run_batch(self, inputs: dict, with_features: bool = False):
        """Many windows one after another (the model has batch size 1): (n, classes), and with
        ``with_features`` also (n, features)."""
        count = len(next(iter(inputs.values())))
        outputs = np.empty((count, self.classes), dtype=np.float32)
        features = np.empty((count, self.feature_count), dtype=np.float32) if with_features else None
        for row in range(count):
            outputs[row] = self.run({name: inputs[name][row] for name in self.inputs})
            if with_features:
                features[row] = self.features()
        return (outputs, features) if with_features else outputs


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
        from stream.adapt.card import load_adaptation

        self.adaptation = load_adaptation(card)
        if self.adaptation is not None and self.adaptation.head is not None:
            if self.model.features_output is None:
                raise ModelCardError(f"{card.path}: an adapted head needs the model's features output, which "
                                     f"{model_file.path.name} lacks")
            if self.adaptation.head.weights.shape != (self.model.feature_count, self.model.classes):
                raise ModelCardError(f"{card.path}: the adaptation's head is {self.adaptation.head.weights.shape}, "
                                     f"the model gives {self.model.feature_count} features and "
                                     f"{self.model.classes} classes")
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
        """Class probabilities (float32, one per label) for one window with .emg, .acc, .gyro arrays
        (through the card's per-user adaptation, if it has one)."""
        inputs = {name: getattr(window, name) for name in self.card.modalities}
        adaptation = self.adaptation
        if adaptation is None:
            return self.model.run(inputs)
        probabilities = self.model.run(adaptation.align(inputs))
        if adaptation.head is None:
            return probabilities
        return adaptation.head.apply(probabilities[np.newaxis], self.model.features()[np.newaxis])[0]

    def predict_batch(self, emg: np.ndarray, acc: np.ndarray, gyro: np.ndarray) -> np.ndarray:
        """(n, labels) probabilities for n windows given as (n, samples, channels) arrays."""
        inputs = self._batch_inputs(emg, acc, gyro)
        adaptation = self.adaptation
        if adaptation is None:
            return self.model.run_batch(inputs)
        if adaptation.head is None:
            return self.model.run_batch(adaptation.align(inputs))
        probabilities, features = self.model.run_batch(adaptation.align(inputs), with_features=True)
        return adaptation.head.apply(probabilities, features)

    def base_outputs(self, emg: np.ndarray, acc: np.ndarray, gyro: np.ndarray, alignment=None):
        """The model's own (n, labels) probabilities and (n, features) features, without the card's
        adaptation (optionally through ``alignment``): what a calibration fits on."""
        inputs = self._batch_inputs(emg, acc, gyro)
        if alignment is not None:
            inputs = {name: alignment.apply(name, array) for name, array in inputs.items()}
        if self.model.features_output is None:
            return self.model.run_batch(inputs), None
        return self.model.run_batch(inputs, with_features=True)

    def _batch_inputs(self, emg, acc, gyro) -> dict:
        arrays = {"emg": emg, "acc": acc, "gyro": gyro}
        counts = {len(arrays[name]) for name in self.card.modalities}
        if len(counts) != 1:
            raise ModelError(f"predict_batch: the arrays hold different numbers of windows ({sorted(counts)})")
        return {name: arrays[name] for name in self.card.modalities}

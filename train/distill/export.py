"""TFLite export of trained models, and the checks of each exported file.

Three variants of the student:
- ``float32``: weights and arithmetic as trained.
- ``dynamic_range``: weights stored as int8, dequantized on load / computed in float; about 2-4x
  smaller, no calibration data.
- ``int8``: full integer arithmetic inside (weights and activations int8, calibrated on a
  representative set of training windows); inputs and outputs stay float32 so the runtime code is
  the same for every variant. On x86 and for LSTMs this is *slower* than float (see TRAINING.md).

The student's files have two outputs, ``probabilities`` and ``features`` (the input of its head: what
an on-device adaptation refits, stream.adapt); the teachers' ensemble has one.

Each exported model is run under LiteRT on the test windows: agreement with the Keras model (same
top class, in %), its own accuracy, and its single-thread latency.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from stream.stages.classifier import TFLiteModel

log = logging.getLogger(__name__)

VARIANTS = ("float32", "dynamic_range", "int8")


class Exporter:
    """Converts one fixed-batch inference model (see models.architectures.inference_model) to TFLite.

    The model is traced once into a concrete function whose inputs carry the Keras input names; each
    variant is converted from that function. Converting ``from_keras_model`` instead re-saves the
    Keras model as a SavedModel every time, tracing every layer: 3-5x slower here (measured 15-25 s
    vs 3-6 s per student variant), which dominated ``--quick``.
    """

    def __init__(self, inference_model, with_features: bool = True):
        import tensorflow as tf

        self.name = inference_model.name
        self.input_names = list(inference_model.input_names)
        specs = [tf.TensorSpec(tensor.shape, tf.float32, name=name)
                 for tensor, name in zip(inference_model.inputs, self.input_names)]
        traced = self._with_features(inference_model) if with_features else None
        self.has_features = traced is not None

        if traced is None:
            @tf.function(input_signature=specs)
            def serve(*inputs):
                return {"probabilities": inference_model(list(inputs), training=False)}
        else:
            @tf.function(input_signature=specs)
            def serve(*inputs):
                probabilities, features = traced(list(inputs), training=False)
                return {"probabilities": probabilities, "features": features}

        self.function = serve.get_concrete_function()
        # Only the variables need tracking; handing the converter the Keras model would make it trace
        # every layer again to save it.
        self.holder = tf.Module()
        self.holder.model_variables = list(inference_model.variables)

    @staticmethod
    def _with_features(inference_model):
        """The same model with a second output: the input of the student's head (its ``batch_norm``
        layer), i.e. the concatenated branch outputs that a per-user head correction works on
        (stream.adapt). None for a model without that head (the teachers' ensemble)."""
        import tf_keras as keras

        try:
            head_input = inference_model.get_layer("batch_norm").input
        except ValueError:
            return None
        return keras.Model(inference_model.inputs, [inference_model.output, head_input],
                           name=f"{inference_model.name}_with_features")

    def convert(self, variant: str, representative: dict | None = None, calibration_windows: int = 200) -> bytes:
        """TFLite bytes. ``representative``: modality -> (n, samples, channels) training windows, needed
        for int8; calibration samples are yielded as dicts keyed by input name, so the converter's own
        input order (not the Keras order) cannot be mixed up."""
        import tensorflow as tf

        if variant not in VARIANTS:
            raise ValueError(f"variant = {variant!r}: must be one of {', '.join(VARIANTS)}")
        converter = tf.lite.TFLiteConverter.from_concrete_functions([self.function], self.holder)
        if variant in ("dynamic_range", "int8"):
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if variant == "int8":
            if representative is None:
                raise ValueError("int8 export needs representative training windows")
            names = self.input_names
            count = min(calibration_windows, len(representative[names[0]]))

            def calibration():
                for row in range(count):
                    yield {name: representative[name][row:row + 1].astype(np.float32) for name in names}

            converter.representative_dataset = calibration
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        started = time.monotonic()
        model_bytes = converter.convert()
        log.info("converted %s (%s): %d bytes in %.1f s", self.name, variant, len(model_bytes), time.monotonic() - started)
        return model_bytes


def convert(inference_model, variant: str, representative: dict | None = None) -> bytes:
    """One variant of one model (``Exporter`` when converting several variants of the same model)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant = {variant!r}: must be one of {', '.join(VARIANTS)}")
    return Exporter(inference_model).convert(variant, representative)


def fused_lstm_count(model: TFLiteModel) -> dict:
    """How the LSTMs were converted: fused ops vs WHILE loops (the slow path)."""
    operators = [detail["op_name"] for detail in model.interpreter._get_ops_details()]
    return {"UNIDIRECTIONAL_SEQUENCE_LSTM": operators.count("UNIDIRECTIONAL_SEQUENCE_LSTM"),
            "WHILE": operators.count("WHILE")}


def latency_ms(model: TFLiteModel, inputs: dict, repeats: int = 300, warmup: int = 30) -> dict:
    """Single-invocation latency on one window, median and 90th percentile in milliseconds."""
    sample = {name: inputs[name][0] for name in model.input_names}
    for _ in range(warmup):
        model.run(sample)
    timings = np.empty(repeats)
    for repeat in range(repeats):
        started = time.perf_counter()
        model.run(sample)
        timings[repeat] = time.perf_counter() - started
    return {"median_ms": round(float(np.median(timings)) * 1e3, 4),
            "p90_ms": round(float(np.percentile(timings, 90)) * 1e3, 4), "repeats": repeats}


def check_exported(model_bytes: bytes, keras_probabilities: np.ndarray, inputs: dict, labels: np.ndarray,
                   latency_repeats: int = 300, name: str = "model") -> dict:
    """Run an exported model on the test windows; compare with Keras; time it (one thread)."""
    model = TFLiteModel(model_bytes, threads=1, source=name)
    probabilities = model.run_batch(inputs)
    predicted = probabilities.argmax(axis=1)
    return {
        "bytes": len(model_bytes),
        "agreement_with_keras_pct": round(100.0 * float(np.mean(predicted == keras_probabilities.argmax(axis=1))), 2),
        "max_abs_probability_difference": round(float(np.max(np.abs(probabilities - keras_probabilities))), 5),
        "test_accuracy": round(float(np.mean(predicted == labels)), 4),
        "latency_single_thread": latency_ms(model, inputs, repeats=latency_repeats),
        "lstm_ops": fused_lstm_count(model),
        "probabilities": probabilities,
    }

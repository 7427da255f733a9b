"""The runtime classifier: loads only through a verified card, matches Keras, refuses bad models."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from stream.config import config_from_dict
from stream.stages.classifier import Classifier, ModelError
from stream.stages.model_card import ModelCardError, load_model_card

TINY_CHANNELS = {"emg": 2, "acc": 3, "gyro": 5}
LABELS = ["good", "bad", "water", "drink"]


@pytest.fixture(scope="module")
def model_directory(tmp_path_factory):
    """A tiny real student, converted to TFLite and written with its card by train.distill.card."""
    pytest.importorskip("tf_keras")
    import tf_keras

    from models.architectures import BranchSpec, InputSpec, build_student, inference_model
    from stream.dsp.preprocess import preprocessing_hash, preprocessing_spec
    from train.distill.card import build_card, write_model
    from train.distill.export import convert

    spec, branch = InputSpec(window_samples=18, channels=TINY_CHANNELS, classes=4), BranchSpec(filters=(2, 3), lstm_units=4)
    tf_keras.utils.set_random_seed(3)
    student = build_student(spec, branch)
    rng = np.random.default_rng(0)
    student.set_weights([rng.normal(scale=0.8, size=w.shape).astype(np.float32) if w.ndim > 1 else w
                         for w in student.get_weights()])
    fixed = inference_model(student, functools.partial(build_student, spec, branch))
    inputs = {name: rng.normal(size=(6, 18, channels)).astype(np.float32) for name, channels in TINY_CHANNELS.items()}
    expected = fixed.predict([inputs[name] for name in fixed.input_names], batch_size=1, verbose=0)
    config = config_from_dict({})
    model_bytes = convert(fixed, "float32")
    card = build_card(labels=LABELS, input_spec=spec, model_rate_hz=config.preprocess.model_rate_hz, window_s=0.25,
                      preprocessing_spec=preprocessing_spec(config), preprocessing_hash=preprocessing_hash(config),
                      model_files={"float32": model_bytes}, metrics={}, training={}, parameters={},
                      description="test")
    directory = tmp_path_factory.mktemp("student")
    write_model(directory, {"float32": model_bytes}, card)
    return SimpleNamespace(path=directory, inputs=inputs, expected=expected)


def copy_model(model_directory, destination):
    for source in model_directory.path.iterdir():
        (destination / source.name).write_bytes(source.read_bytes())
    return destination / "model_card.json"


def configured(card_path, **model):
    return config_from_dict({"model": {"card": str(card_path), "variant": "float32", **model}})


def test_predictions_match_keras_window_by_window_and_in_batch(model_directory):
    classifier = Classifier.from_config(configured(model_directory.path / "model_card.json"))
    assert classifier.labels == tuple(LABELS) and classifier.model_id.startswith("student-")
    inputs = model_directory.inputs
    for row in range(6):
        window = SimpleNamespace(**{name: inputs[name][row] for name in inputs})
        probabilities = classifier.predict(window)
        assert probabilities.dtype == np.float32 and probabilities.shape == (4,)
        np.testing.assert_allclose(probabilities, model_directory.expected[row], atol=1e-5)
    batch = classifier.predict_batch(inputs["emg"], inputs["acc"], inputs["gyro"])
    np.testing.assert_allclose(batch, model_directory.expected, atol=1e-5)
    # The same window twice gives the same answer: no LSTM state leaks from one window to the next.
    window = SimpleNamespace(**{name: inputs[name][0] for name in inputs})
    np.testing.assert_array_equal(classifier.predict(window), classifier.predict(window))


def test_other_preprocessing_is_refused(model_directory):
    config = config_from_dict({"model": {"card": str(model_directory.path / "model_card.json"), "variant": "float32"},
                               "filters": {"notch_hz": 60.0}})
    with pytest.raises(ModelCardError, match="trained with preprocessing"):
        Classifier.from_config(config)


def test_a_model_file_that_does_not_match_its_card_is_not_loaded(model_directory, tmp_path):
    card_path = copy_model(model_directory, tmp_path)
    model_path = tmp_path / "student_float32.tflite"
    data = bytearray(model_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_path.write_bytes(bytes(data))
    with pytest.raises(ModelCardError, match="does not match its card"):
        Classifier.from_config(configured(card_path))


def test_a_corrupt_model_with_a_matching_card_gives_a_clear_error(model_directory, tmp_path):
    card_path = copy_model(model_directory, tmp_path)
    garbage = b"this is not a flatbuffer" * 10
    (tmp_path / "student_float32.tflite").write_bytes(garbage)
    document = json.loads(card_path.read_text())
    from stream.stages.model_card import sha256_of
    document["files"]["float32"].update(sha256=sha256_of(garbage), bytes=len(garbage))
    card_path.write_text(json.dumps(document))
    with pytest.raises(ModelError, match="not a usable TFLite model"):
        Classifier.from_config(configured(card_path))


def test_labels_that_do_not_match_the_model_are_refused(model_directory, tmp_path):
    card_path = copy_model(model_directory, tmp_path)
    document = json.loads(card_path.read_text())
    document["labels"] = LABELS + ["extra"]
    card_path.write_text(json.dumps(document))
    with pytest.raises(ModelCardError, match="5 labels, the model outputs 4"):
        Classifier.from_config(configured(card_path))


def test_missing_variant_and_wrong_window_shape(model_directory):
    with pytest.raises(ModelCardError, match="no 'int8' model"):
        Classifier.from_config(configured(model_directory.path / "model_card.json", variant="int8"))
    classifier = Classifier(load_model_card(model_directory.path / "model_card.json"), variant="float32")
    inputs = model_directory.inputs
    window = SimpleNamespace(emg=inputs["emg"][0][:10], acc=inputs["acc"][0], gyro=inputs["gyro"][0])
    with pytest.raises(ModelError, match="shape"):
        classifier.predict(window)


def test_the_runtime_never_imports_tensorflow():
    code = ("import sys, stream.stages.classifier, stream.stages.model_card; "
            "sys.exit(1 if any(name.split('.')[0] in ('tensorflow', 'tf_keras', 'keras') for name in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0

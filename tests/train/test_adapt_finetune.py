"""The workstation option of calibration: the student rebuilt from its card and Keras weights, and
its last layers fine-tuned (real Keras models, small)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stream.stages.model_card import sha256_file
from train.adapt.finetune import FinetuneError, finetune, load_student, probabilities
from train.distill.__main__ import save_student_weights

WINDOW, CLASSES = 27, 3
CHANNELS = {"emg": 2, "acc": 3, "gyro": 3}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from models.architectures import BranchSpec, InputSpec, build_student

    import tf_keras as keras

    keras.utils.set_random_seed(3)
    branch = BranchSpec(filters=(2, 2), lstm_units=4)
    student = build_student(InputSpec(WINDOW, dict(CHANNELS), CLASSES), branch)
    directory = tmp_path_factory.mktemp("student")
    path = save_student_weights(student, directory)
    document = {"labels": ["a", "b", "c"],
                "input": {"modalities": list(CHANNELS), "window_samples": WINDOW,
                          "shapes": {name: [WINDOW, count] for name, count in CHANNELS.items()}},
                "training": {"student_branch": {**branch.__dict__, "filters": list(branch.filters)},
                             "keras_weights": {"file": path.name, "sha256": sha256_file(path)}}}
    (directory / "model_card.json").write_text(json.dumps(document))
    rng = np.random.default_rng(0)
    level = (np.arange(12) % CLASSES)[:, None, None] * 2.0  # each class its own level: separable
    windows = {name: (level + rng.normal(0, 0.3, size=(12, WINDOW, count))).astype(np.float32)
               for name, count in CHANNELS.items()}
    return student, directory / "model_card.json", document, windows


def test_the_card_rebuilds_the_same_student(saved):
    student, card_path, document, windows = saved
    assert not list(card_path.parent.glob("*.partial*"))
    rebuilt = load_student(card_path, document)
    np.testing.assert_allclose(probabilities(rebuilt, windows), probabilities(student, windows), atol=1e-6)


def test_fine_tuning_fits_the_last_layers_only_and_leaves_the_base_alone(saved):
    student, _, _, windows = saved
    labels = np.arange(12) % CLASSES
    before = {layer.name: [weight.copy() for weight in layer.get_weights()] for layer in student.layers}
    tuned = finetune(student, windows, labels, epochs=60, learning_rate=1e-2)
    for layer in tuned.layers:
        changed = any(not np.array_equal(new, old) for new, old in zip(layer.get_weights(), before[layer.name]))
        assert changed == layer.name.endswith(("_lstm2", "logits")), layer.name
    for layer in student.layers:  # the base model is untouched
        assert all(np.array_equal(now, old) for now, old in zip(layer.get_weights(), before[layer.name]))
    def cross_entropy(model):
        return -np.mean(np.log(probabilities(model, windows)[np.arange(len(labels)), labels]))

    assert cross_entropy(tuned) < cross_entropy(student) - 0.01


def test_missing_or_altered_weights_are_refused(saved, tmp_path):
    _, card_path, document, _ = saved
    with pytest.raises(FinetuneError, match="no Keras weights"):
        load_student(card_path, {**document, "training": {"student_branch": document["training"]["student_branch"]}})
    altered = json.loads(json.dumps(document))
    altered["training"]["keras_weights"]["sha256"] = "0" * 64
    with pytest.raises(FinetuneError, match="sha256"):
        load_student(card_path, altered)
    with pytest.raises(FinetuneError, match="missing"):
        load_student(tmp_path / "model_card.json", document)

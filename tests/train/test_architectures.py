"""Teacher and student architectures: layer order, parameter counts by formula, inference copies."""

from __future__ import annotations

import numpy as np
import pytest

tf_keras = pytest.importorskip("tf_keras")

from models.architectures import (  # noqa: E402
    STUDENT_BRANCH,
    TEACHER_BRANCH,
    BranchSpec,
    InputSpec,
    build_student,
    build_teacher,
    ensemble_inference_model,
    inference_model,
    parameter_table,
    trainable_parameters,
)

TINY = InputSpec(window_samples=18, channels={"emg": 2, "acc": 3, "gyro": 3}, classes=4)


def branch_parameters(channels: int, spec: BranchSpec) -> int:
    first, second = spec.filters
    units = spec.lstm_units
    conv = spec.kernel_size * channels * first + first + spec.kernel_size * first * second + second
    lstm = 4 * (units * (second + units) + units) + 4 * (units * (2 * units) + units)
    return conv + lstm


def head_parameters(features: int, classes: int) -> int:
    return 2 * features + features * classes + classes  # BatchNorm gamma/beta + Dense


def test_teacher_layers_follow_the_reference_order():
    model = build_teacher("emg", TINY, BranchSpec(filters=(3, 4), lstm_units=5))
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["InputLayer", "Conv1D", "AveragePooling1D", "Conv1D", "AveragePooling1D", "LSTM", "LSTM",
                     "BatchNormalization", "Dropout", "Dense"]
    convolutions = [layer for layer in model.layers if type(layer).__name__ == "Conv1D"]
    assert all(layer.activation.__name__ == "sigmoid" for layer in convolutions)
    assert [layer.pool_size[0] for layer in model.layers if "Pooling" in type(layer).__name__] == [3, 3]
    assert model.get_layer("emg_dropout").rate == pytest.approx(0.2)
    assert model.input_names == ["emg"] and model.output_shape == (None, 4)


def test_parameter_counts_match_the_formula():
    spec = BranchSpec(filters=(3, 4), lstm_units=5)
    for modality, channels in TINY.channels.items():
        expected = branch_parameters(channels, spec) + head_parameters(5, TINY.classes)
        assert trainable_parameters(build_teacher(modality, TINY, spec)) == expected
    student = build_student(TINY, spec)
    expected = sum(branch_parameters(channels, spec) for channels in TINY.channels.values()) + head_parameters(15, 4)
    assert trainable_parameters(student) == expected
    assert sorted(student.input_names) == ["acc", "emg", "gyro"]


def test_default_sizes_are_the_issue_s():
    assert TEACHER_BRANCH.filters == (12, 24) and TEACHER_BRANCH.lstm_units == 100
    assert STUDENT_BRANCH.filters == (2, 4) and STUDENT_BRANCH.lstm_units == 50
    counts = parameter_table()
    assert counts["teacher_emg"] == branch_parameters(6, TEACHER_BRANCH) + head_parameters(100, 50)
    assert counts["student"] == sum(branch_parameters(c, STUDENT_BRANCH) for c in (6, 18, 18)) + head_parameters(150, 50)
    assert counts["teacher_ensemble"] > 3 * counts["student"]


def test_inference_model_has_batch_one_and_the_trained_weights():
    spec = BranchSpec(filters=(3, 4), lstm_units=5)
    trained = build_student(TINY, spec)
    rng = np.random.default_rng(0)
    trained.set_weights([rng.normal(size=weight.shape).astype(np.float32) for weight in trained.get_weights()])
    fixed = inference_model(trained, lambda batch_size: build_student(TINY, spec, batch_size=batch_size))
    assert all(tensor.shape[0] == 1 for tensor in fixed.inputs)
    inputs = {name: rng.normal(size=(1, 18, channels)).astype(np.float32) for name, channels in TINY.channels.items()}
    logits = trained([inputs[name] for name in trained.input_names], training=False).numpy()
    probabilities = fixed([inputs[name] for name in fixed.input_names], training=False).numpy()
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arguments, message", [
    ({"filters": (0, 4)}, "filters"),
    ({"filters": (3,)}, "filters"),
    ({"dropout": 1.0}, "dropout"),
])
def test_bad_branch_specs_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        BranchSpec(**arguments)


def test_unknown_modality_is_refused():
    with pytest.raises(ValueError, match="modality"):
        build_teacher("magnetometer", TINY)
    with pytest.raises(ValueError, match="unknown modalities"):
        InputSpec(channels={"mag": 3})


def test_ensemble_model_averages_the_teachers_probabilities():
    spec = BranchSpec(filters=(3, 4), lstm_units=5)
    teachers = [build_teacher(name, TINY, spec) for name in TINY.channels]
    rng = np.random.default_rng(1)
    for teacher in teachers:
        teacher.set_weights([rng.normal(size=weight.shape).astype(np.float32) for weight in teacher.get_weights()])
    ensemble = ensemble_inference_model(teachers, TINY, spec)
    inputs = {name: rng.normal(size=(1, 18, channels)).astype(np.float32) for name, channels in TINY.channels.items()}
    expected = np.mean([tf_keras.activations.softmax(teacher(inputs[teacher.input_names[0]], training=False)).numpy()
                        for teacher in teachers], axis=0)
    got = ensemble([inputs[name] for name in ensemble.input_names], training=False).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)

"""The distiller: teachers frozen, the loss as written in the paper, the aggregation rules, wiring."""

from __future__ import annotations

import numpy as np
import pytest

tf_keras = pytest.importorskip("tf_keras")
import tensorflow as tf  # noqa: E402

from models.architectures import BranchSpec, InputSpec, build_student, build_teacher  # noqa: E402
from train.distill.distiller import (  # noqa: E402
    Distiller,
    distillation_loss,
    soft_targets,
    teacher_weights,
)

TINY = InputSpec(window_samples=18, channels={"emg": 2, "acc": 3}, classes=4)
SMALL = BranchSpec(filters=(2, 2), lstm_units=4)


def softmax(logits, axis=-1):
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def tiny_data(count=24, seed=0):
    rng = np.random.default_rng(seed)
    inputs = {name: rng.normal(size=(count, 18, channels)).astype(np.float32) for name, channels in TINY.channels.items()}
    return inputs, rng.integers(0, 4, size=count)


def compiled_distiller(teachers, **options):
    tf_keras.utils.set_random_seed(1)
    distiller = Distiller(build_student(TINY, SMALL), teachers, **options)
    distiller.compile(optimizer=tf_keras.optimizers.Adam(0.05))
    return distiller


def test_teachers_do_not_move_and_the_student_does():
    teachers = [build_teacher(name, TINY, SMALL) for name in TINY.channels]
    before = [[weight.copy() for weight in teacher.get_weights()] for teacher in teachers]  # includes BN statistics
    distiller = compiled_distiller(teachers, aggregation="weighted")
    student_before = [weight.copy() for weight in distiller.student.get_weights()]
    inputs, labels = tiny_data()
    distiller.fit(inputs, labels, epochs=2, batch_size=8, verbose=0)
    for teacher, weights in zip(teachers, before):
        assert not teacher.trainable
        for now, then in zip(teacher.get_weights(), weights):
            np.testing.assert_array_equal(now, then)
    assert any(not np.array_equal(now, then) for now, then in zip(distiller.student.get_weights(), student_before))
    assert len(distiller.trainable_variables) == len(distiller.student.trainable_variables)


def test_loss_is_alpha_ce_plus_t_squared_kl():
    rng = np.random.default_rng(3)
    student_logits = rng.normal(size=(5, 4)).astype(np.float32)
    teacher_probabilities = softmax(rng.normal(size=(5, 4))).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 0])
    alpha, temperature = 0.3, 2.5
    hard = -np.log(softmax(student_logits)[np.arange(5), labels])
    student_t = softmax(student_logits / temperature)
    kl = (teacher_probabilities * np.log(teacher_probabilities / student_t)).sum(axis=1)
    expected = alpha * hard + (1 - alpha) * temperature**2 * kl
    got = distillation_loss(labels, teacher_probabilities, student_logits, alpha, temperature).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Matching the teacher exactly costs nothing in the soft term.
    same = distillation_loss(labels, softmax(student_logits / temperature), student_logits, 0.0, temperature).numpy()
    np.testing.assert_allclose(same, 0.0, atol=1e-5)


def test_t_squared_keeps_the_soft_gradient_scale_independent_of_t():
    rng = np.random.default_rng(4)
    teacher_logits = rng.normal(size=(64, 10)).astype(np.float32)
    student_logits = tf.Variable(rng.normal(size=(64, 10)).astype(np.float32))
    norms = []
    for temperature in (4.0, 16.0):
        targets = softmax(teacher_logits / temperature).astype(np.float32)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(distillation_loss(np.zeros(64), targets, student_logits, 0.0, temperature))
        norms.append(float(tf.norm(tape.gradient(loss, student_logits))))
    # d KL / d z_s = (softmax(z_s/T) - softmax(z_t/T)) / T, which for large T tends to
    # (z_s - z_t) / (N T^2) (centred logits): multiplied by T^2 it no longer depends on T. Without
    # the factor, going from T = 4 to T = 16 would shrink the gradient 16x.
    assert 0.5 < norms[0] / norms[1] < 2.0


def test_mean_aggregation_averages_softened_probabilities():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(3, 6, 4)).astype(np.float32)
    got = soft_targets(logits, np.zeros(6), 2.0, "mean").numpy()
    np.testing.assert_allclose(got, softmax(logits / 2.0).mean(axis=0), rtol=1e-5)


def test_weighted_aggregation_is_the_ca_mkd_rule():
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(3, 6, 4)).astype(np.float32)
    labels = rng.integers(0, 4, size=6)
    cross_entropy = -np.log(softmax(logits)[:, np.arange(6), labels]).T  # (batch, K)
    expected = (1 - softmax(cross_entropy, axis=1)) / 2
    weights = teacher_weights(logits, labels).numpy()
    np.testing.assert_allclose(weights, expected, rtol=1e-5)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    targets = soft_targets(logits, labels, 3.0, "weighted").numpy()
    np.testing.assert_allclose(targets, np.einsum("bk,kbc->bc", expected, softmax(logits / 3.0)), rtol=1e-5)


def test_weighted_aggregation_trusts_the_teacher_that_is_right():
    right = np.array([[[5.0, 0, 0, 0]]], dtype=np.float32)
    wrong = np.array([[[0, 5.0, 0, 0]]], dtype=np.float32)
    weights = teacher_weights(np.concatenate([right, wrong]), np.array([0])).numpy()[0]
    assert weights[0] > 0.99 and weights[1] < 0.01
    assert teacher_weights(right, np.array([0])).numpy().tolist() == [[1.0]]


def test_student_learns_the_teacher_not_the_label_when_alpha_is_zero():
    # The wiring check (an early keras-io example swapped teacher and student): a teacher that
    # always says class 2 must pull the student to class 2 even though every label is 0.
    teacher = build_teacher("emg", TINY, SMALL)
    weights = teacher.get_layer("emg_logits").get_weights()
    teacher.get_layer("emg_logits").set_weights([np.zeros_like(weights[0]), np.array([0, 0, 6.0, 0], np.float32)])
    distiller = compiled_distiller([teacher], alpha=0.0, temperature=1.0)
    inputs, _ = tiny_data(seed=7)
    distiller.fit(inputs, np.zeros(24, dtype=np.int64), epochs=25, batch_size=8, verbose=0)
    predicted = distiller.predict(inputs, verbose=0).argmax(axis=1)
    assert (predicted == 2).mean() > 0.9


@pytest.mark.parametrize("options, message", [
    ({"aggregation": "median"}, "aggregation"),
    ({"alpha": 1.5}, "alpha"),
    ({"temperature": 0.0}, "temperature"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        Distiller(build_student(TINY, SMALL), [build_teacher("emg", TINY, SMALL)], **options)


def test_teacher_with_other_classes_is_refused():
    other = InputSpec(window_samples=18, channels={"emg": 2}, classes=5)
    with pytest.raises(ValueError, match="classes"):
        Distiller(build_student(TINY, SMALL), [build_teacher("emg", other, SMALL)])
    with pytest.raises(ValueError, match="at least one teacher"):
        Distiller(build_student(TINY, SMALL), [])

"""Knowledge distillation from several frozen teachers into one student (Hinton et al. 2015).

    loss = alpha * CE(y, student) + (1 - alpha) * T^2 * KL(teacher_T || student_T)

``teacher_T`` and ``student_T`` are the softmax of the logits divided by the temperature T. The
gradient of the soft term with respect to the student's logits scales as 1/T^2 (each softmax(z/T)
carries a 1/T, and so does its derivative), so multiplying by T^2 keeps the soft and hard terms on
the same scale whatever T is: changing T changes what is matched, not the effective learning rate.

Several teachers are combined into one soft target per sample:
- ``mean``: the average of the teachers' softened probabilities;
- ``product``: the product of experts, as a normalised geometric mean of the teachers' softened
  distributions (= softmax of the mean of their logits over T): a class must be likely for every
  teacher, not for one alone;
- ``weighted``: the CA-MKD rule (Zhang, Chen & Wang, ICASSP 2022): teacher k gets the weight
  w_k = (1 - exp(CE_k) / sum_j exp(CE_j)) / (K - 1), CE_k its cross-entropy on the true label, so
  the teachers that are right about *this* sample dominate its target. With one teacher, w = 1.

Teachers are frozen when the Distiller is built (``trainable = False``) and always run in inference
mode (BatchNormalization uses its moving statistics, Dropout is off); only the student's variables
are given to the optimizer.
"""

from __future__ import annotations

import tf_keras as keras
import tensorflow as tf

AGGREGATIONS = ("mean", "weighted", "product")


def call_model(model, inputs: dict, training: bool):
    """Call a functional model with the entries of ``inputs`` it takes, by input name."""
    names = model.input_names
    if len(names) == 1:
        return model(inputs[names[0]], training=training)
    return model([inputs[name] for name in names], training=training)


def teacher_weights(teacher_logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """CA-MKD per-sample teacher weights, shape (batch, K), rows summing to 1.

    ``teacher_logits``: (K, batch, classes); ``labels``: (batch,) integer classes.
    """
    teacher_count = teacher_logits.shape[0]
    if teacher_count == 1:
        return tf.ones((tf.shape(labels)[0], 1), dtype=teacher_logits.dtype)
    labels = tf.cast(labels, tf.int32)
    cross_entropy = tf.stack(
        [tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits) for logits in tf.unstack(teacher_logits)],
        axis=1,
    )
    return (1.0 - tf.nn.softmax(cross_entropy, axis=1)) / (teacher_count - 1)


def soft_targets(teacher_logits: tf.Tensor, labels: tf.Tensor, temperature: float, aggregation: str) -> tf.Tensor:
    """The aggregated softened teacher distribution, shape (batch, classes)."""
    if aggregation == "product":
        # (prod_k softmax(z_k / T))^(1/K), normalised, = softmax(mean_k z_k / T).
        return tf.nn.softmax(tf.reduce_mean(teacher_logits, axis=0) / temperature, axis=-1)
    probabilities = tf.nn.softmax(teacher_logits / temperature, axis=-1)  # (K, batch, classes)
    if aggregation == "mean":
        return tf.reduce_mean(probabilities, axis=0)
    if aggregation == "weighted":
        weights = teacher_weights(teacher_logits, labels)  # (batch, K)
        return tf.einsum("bk,kbc->bc", weights, probabilities)
    raise ValueError(f"aggregation = {aggregation!r}: must be one of {', '.join(AGGREGATIONS)}")


def distillation_loss(labels, targets, student_logits, alpha: float, temperature: float):
    """Per-sample loss: alpha * CE(y, student) + (1 - alpha) * T^2 * KL(targets || student_T)."""
    hard = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int32), logits=student_logits)
    student_log_probabilities = tf.nn.log_softmax(student_logits / temperature, axis=-1)
    # KL(p || q) = sum p (log p - log q); the clip only guards log(0) where p is exactly 0.
    kl = tf.reduce_sum(targets * (tf.math.log(tf.clip_by_value(targets, 1e-12, 1.0)) - student_log_probabilities), axis=-1)
    return alpha * hard + (1.0 - alpha) * temperature**2 * kl


class Distiller(keras.Model):
    """Trains ``student`` on the aggregated soft targets of frozen ``teachers`` and the true labels.

    Inputs are a dict of modality arrays; each teacher reads the inputs it names, the student all of
    its own. ``evaluate``/``predict`` measure the student alone.
    """

    def __init__(self, student, teachers, aggregation: str = "mean", alpha: float = 0.1, temperature: float = 4.0):
        super().__init__(name="distiller")
        if not teachers:
            raise ValueError("a Distiller needs at least one teacher")
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation = {aggregation!r}: must be one of {', '.join(AGGREGATIONS)}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha = {alpha!r}: must be in [0, 1]")
        if temperature <= 0:
            raise ValueError(f"temperature = {temperature!r}: must be > 0")
        classes = student.output_shape[-1]
        for teacher in teachers:
            if teacher.output_shape[-1] != classes:
                raise ValueError(f"teacher {teacher.name} has {teacher.output_shape[-1]} classes, the student {classes}")
            teacher.trainable = False
        self.student = student
        self.teachers = list(teachers)
        self.aggregation = aggregation
        self.alpha = float(alpha)
        self.temperature = float(temperature)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker]

    def call(self, inputs, training=False):
        return call_model(self.student, inputs, training=training)

    def train_step(self, data):
        inputs, labels = data
        teacher_logits = tf.stack([call_model(teacher, inputs, training=False) for teacher in self.teachers])
        targets = tf.stop_gradient(soft_targets(teacher_logits, labels, self.temperature, self.aggregation))
        with tf.GradientTape() as tape:
            student_logits = call_model(self.student, inputs, training=True)
            loss = tf.reduce_mean(distillation_loss(labels, targets, student_logits, self.alpha, self.temperature))
            # Under MirroredStrategy each replica's gradients are summed: scale as Keras' own loss does.
            scaled = loss / tf.distribute.get_strategy().num_replicas_in_sync
        variables = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        self.loss_tracker.update_state(loss)
        self.accuracy_tracker.update_state(labels, student_logits)
        return {metric.name: metric.result() for metric in self.metrics}

    def test_step(self, data):
        inputs, labels = data
        student_logits = call_model(self.student, inputs, training=False)
        hard = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int32), logits=student_logits)
        self.loss_tracker.update_state(tf.reduce_mean(hard))
        self.accuracy_tracker.update_state(labels, student_logits)
        return {metric.name: metric.result() for metric in self.metrics}

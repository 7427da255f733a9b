"""Teacher and student networks: one convolutional-recurrent branch per sensor modality.

A branch is Conv1D (sigmoid) -> AveragePooling1D(3) -> Conv1D (sigmoid) -> AveragePooling1D(3) ->
LSTM -> LSTM; the head is BatchNormalization -> Dropout(0.2) -> Dense(classes, softmax).

- A *teacher* is an expert on one modality: a single branch on its own input (``emg``, ``acc`` or
  ``gyro``), then the head. The teacher *ensemble* is the mean of the experts' probabilities.
- The *student* takes all modalities: one small branch each, concatenated, then one head.

Built with ``tf_keras`` (Keras 2) because its LSTM converts to TFLite's fused
UNIDIRECTIONAL_SEQUENCE_LSTM op (Keras 3's becomes a WHILE loop, twice as slow under LiteRT; see
docs/TRAINING.md). TensorFlow is imported inside the functions, so importing this module is cheap.
Training models output logits (the distillation temperature divides logits); the exported inference
model appends a softmax so the runtime receives class probabilities.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

MODALITIES = ("emg", "acc", "gyro")

# What the reference publication reports (issue 5), printed beside ours.
REFERENCE_PARAMETERS = {"teacher_ensemble": 693_170, "student": 168_432}
REFERENCE_TFLITE_BYTES = {"teacher_ensemble": 2_579_392, "student": 633_673}


@dataclass(frozen=True)
class BranchSpec:
    """Sizes of one modality branch."""

    filters: tuple[int, int] = (12, 24)
    kernel_size: int = 3
    lstm_units: int = 100
    pool_size: int = 3
    dropout: float = 0.2
    # The convolutions' activation. Sigmoid is what the reference architecture and the shipped
    # synthetic-signer student use; on real Myo sEMG (lis-myo) relu lifted the sEMG teacher from
    # 92.6 to 95.6 % test over 3 seeds (docs/RESULTS.md).
    activation: str = "sigmoid"

    def __post_init__(self) -> None:
        if len(self.filters) != 2 or min(self.filters) < 1:
            raise ValueError(f"filters = {self.filters!r}: must be two positive integers, e.g. (12, 24)")
        if self.kernel_size < 1 or self.lstm_units < 1 or self.pool_size < 1:
            raise ValueError("kernel_size, lstm_units and pool_size must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout = {self.dropout!r}: must be in [0, 1)")
        if self.activation not in ("sigmoid", "relu"):
            raise ValueError(f"activation = {self.activation!r}: must be 'sigmoid' or 'relu'")


TEACHER_BRANCH = BranchSpec(filters=(12, 24), lstm_units=100)
STUDENT_BRANCH = BranchSpec(filters=(2, 4), lstm_units=50)


@dataclass(frozen=True)
class InputSpec:
    """Window length (model-rate samples) and channel count of each modality, plus class count."""

    window_samples: int = 148
    channels: dict = field(default_factory=lambda: {"emg": 6, "acc": 18, "gyro": 18})
    classes: int = 50

    def __post_init__(self) -> None:
        if self.window_samples < 9:
            raise ValueError(f"window_samples = {self.window_samples}: must be >= 9 (two pooling stages of 3)")
        if self.classes < 2:
            raise ValueError(f"classes = {self.classes}: must be >= 2")
        unknown = set(self.channels) - set(MODALITIES)
        if unknown:
            raise ValueError(f"unknown modalities {sorted(unknown)}; expected some of {MODALITIES}")

    def to_dict(self) -> dict:
        return asdict(self)


def _keras():
    import tf_keras

    return tf_keras


def _branch(keras, tensor, spec: BranchSpec, prefix: str):
    layers = keras.layers
    for stage, filters in enumerate(spec.filters, start=1):
        tensor = layers.Conv1D(filters, spec.kernel_size, padding="same", activation=spec.activation,
                               name=f"{prefix}_conv{stage}")(tensor)
        tensor = layers.AveragePooling1D(spec.pool_size, name=f"{prefix}_pool{stage}")(tensor)
    tensor = layers.LSTM(spec.lstm_units, return_sequences=True, name=f"{prefix}_lstm1")(tensor)
    return layers.LSTM(spec.lstm_units, name=f"{prefix}_lstm2")(tensor)


def _head(keras, tensor, classes: int, dropout: float, prefix: str = ""):
    # Teachers prefix their head layers with the modality, so all three fit in one ensemble model.
    layers = keras.layers
    # momentum 0.9 (Keras' default is 0.99) was a first answer to validation accuracy swinging from
    # epoch to epoch; the cause was moving statistics trailing the LSTM's changing outputs at any
    # momentum, and train.distill.training.RecalibrateBatchNorm now sets them exactly before every
    # validation. Kept at 0.9 so that the architecture (and shipped models) stay as they are.
    tensor = layers.BatchNormalization(momentum=0.9, name=f"{prefix}batch_norm")(tensor)
    tensor = layers.Dropout(dropout, name=f"{prefix}dropout")(tensor)
    return layers.Dense(classes, name=f"{prefix}logits")(tensor)


def _inputs(keras, names, input_spec: InputSpec, batch_size: int | None):
    return [keras.Input(shape=(input_spec.window_samples, input_spec.channels[name]), batch_size=batch_size,
                        name=name, dtype="float32") for name in names]


def _standardise(keras, tensor, name: str, normalization: dict | None):
    """``(x - mean) / std`` per channel with fixed statistics (``normalization[name] = (mean, std)``,
    fitted on the training windows), inside the model: the runtime's input and the preprocessing stay as
    they are. No statistics for ``name``: the input unchanged (and the model the same as without)."""
    if not normalization or name not in normalization:
        return tensor
    import numpy as np

    mean, std = (np.asarray(value, dtype=np.float64).reshape(-1) for value in normalization[name])
    if mean.shape != std.shape or mean.shape[0] != tensor.shape[-1] or not np.all(std > 0):
        raise ValueError(f"normalization[{name!r}]: need a mean and a positive std per channel ({tensor.shape[-1]})")
    return keras.layers.Normalization(mean=mean.tolist(), variance=(std**2).tolist(), name=f"{name}_standardise")(tensor)


def fit_standardisation(inputs: dict, floor: float = 1e-3) -> dict:
    """Per-channel mean and std of each modality over windows and time: modality -> (mean, std) lists
    (std at least ``floor``, so a flat channel is left centred but unscaled)."""
    import numpy as np

    statistics = {}
    for name, array in inputs.items():
        flat = np.asarray(array, dtype=np.float64).reshape(-1, array.shape[-1])
        statistics[name] = (flat.mean(axis=0).tolist(), np.maximum(flat.std(axis=0), floor).tolist())
    return statistics


def build_teacher(modality: str, input_spec: InputSpec = InputSpec(), spec: BranchSpec = TEACHER_BRANCH,
                  batch_size: int | None = None, normalization: dict | None = None):
    """A one-modality expert: input ``modality`` -> branch -> head -> logits (``normalization``: see
    ``_standardise``)."""
    if modality not in input_spec.channels:
        raise ValueError(f"modality {modality!r} not in the input spec ({', '.join(input_spec.channels)})")
    keras = _keras()
    (model_input,) = _inputs(keras, [modality], input_spec, batch_size)
    features = _branch(keras, _standardise(keras, model_input, modality, normalization), spec, modality)
    logits = _head(keras, features, input_spec.classes, spec.dropout, prefix=f"{modality}_")
    return keras.Model(model_input, logits, name=f"teacher_{modality}")


def build_student(input_spec: InputSpec = InputSpec(), spec: BranchSpec = STUDENT_BRANCH,
                  batch_size: int | None = None, normalization: dict | None = None):
    """All modalities, one small branch each, concatenated -> head -> logits."""
    keras = _keras()
    names = [name for name in MODALITIES if name in input_spec.channels]
    model_inputs = _inputs(keras, names, input_spec, batch_size)
    branches = [_branch(keras, _standardise(keras, tensor, name, normalization), spec, name)
                for tensor, name in zip(model_inputs, names)]
    features = branches[0] if len(branches) == 1 else keras.layers.Concatenate(name="concat")(branches)
    logits = _head(keras, features, input_spec.classes, spec.dropout)
    return keras.Model(model_inputs, logits, name="student")


def inference_model(trained, rebuild, batch_size: int = 1, output_name: str = "probabilities"):
    """A copy of ``trained`` with a fixed batch size and a softmax output, for TFLite export.

    ``rebuild(batch_size=...)`` must build the same architecture; the weights are copied over. A fixed
    batch lets the converter emit the fused LSTM op with static shapes.
    """
    keras = _keras()
    fixed = rebuild(batch_size=batch_size)
    fixed.set_weights(trained.get_weights())
    probabilities = keras.layers.Softmax(name=output_name)(fixed.output)
    return keras.Model(fixed.inputs, probabilities, name=f"{trained.name}_inference")


ENSEMBLE_RULES = ("mean", "product")


def ensemble_inference_model(teachers, input_spec: InputSpec = InputSpec(), spec: BranchSpec = TEACHER_BRANCH,
                             batch_size: int = 1, combine: str = "mean", normalization: dict | None = None):
    """All teachers in one model, each on its modality. ``combine``: ``mean`` averages the experts'
    probabilities (the ensemble); ``product`` is the normalised product of experts (softmax of the
    mean of their logits, the same top class as the sum of their log-probabilities)."""
    if combine not in ENSEMBLE_RULES:
        raise ValueError(f"combine = {combine!r}: must be one of {', '.join(ENSEMBLE_RULES)}")
    keras = _keras()

    def rebuild(batch_size, name):
        return build_teacher(name, input_spec, spec, batch_size=batch_size, normalization=normalization)

    if combine == "product":
        fixed = []
        for teacher in teachers:
            model = rebuild(batch_size, teacher.input_names[0])
            model.set_weights(teacher.get_weights())
            fixed.append(model)
        logits = [model.output for model in fixed]
        mean = logits[0] if len(logits) == 1 else keras.layers.Average(name="ensemble_logits")(logits)
        return keras.Model([model.inputs[0] for model in fixed], keras.layers.Softmax(name="ensemble")(mean),
                           name="teacher_ensemble_inference")
    fixed = [inference_model(teacher, lambda batch_size, name=teacher.input_names[0]: rebuild(batch_size, name),
                             batch_size, f"{teacher.input_names[0]}_probabilities")
             for teacher in teachers]
    inputs = [model.inputs[0] for model in fixed]
    outputs = [model.output for model in fixed]
    average = outputs[0] if len(outputs) == 1 else keras.layers.Average(name="ensemble")(outputs)
    return keras.Model(inputs, average, name="teacher_ensemble_inference")


def trainable_parameters(model) -> int:
    import numpy as np

    return int(sum(np.prod(weight.shape) for weight in model.trainable_weights))


def parameter_table(input_spec: InputSpec = InputSpec(), teacher: BranchSpec = TEACHER_BRANCH,
                    student: BranchSpec = STUDENT_BRANCH) -> dict:
    """Trainable parameter counts of each teacher, the ensemble and the student."""
    counts = {f"teacher_{name}": trainable_parameters(build_teacher(name, input_spec, teacher))
              for name in input_spec.channels}
    counts["teacher_ensemble"] = sum(counts.values())
    counts["student"] = trainable_parameters(build_student(input_spec, student))
    return counts


def main() -> None:
    counts = parameter_table()
    print(f"{'model':<20} {'ours':>10} {'reference':>10}")
    for name, count in counts.items():
        reference = REFERENCE_PARAMETERS.get(name)
        print(f"{name:<20} {count:>10,} {'' if reference is None else f'{reference:,}':>10}")


if __name__ == "__main__":
    main()

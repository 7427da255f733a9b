"""train.distill's command line: the patience and student-branch options (defaults unchanged)."""

from __future__ import annotations

import pytest

from train.distill.__main__ import build_parser


def test_defaults_keep_the_synthetic_signers_settings():
    arguments = build_parser().parse_args(["--data", "d", "--out", "o"])
    assert (arguments.teacher_patience, arguments.student_patience, arguments.student_branch) == (10, 10, None)


def test_a_wider_student_branch_and_longer_patience_parse():
    from models.architectures import BranchSpec

    arguments = build_parser().parse_args(["--data", "d", "--out", "o", "--student-branch", "8,16,47",
                                           "--teacher-patience", "25", "--student-patience", "20"])
    assert arguments.student_branch == BranchSpec(filters=(8, 16), lstm_units=47)
    assert (arguments.teacher_patience, arguments.student_patience) == (25, 20)


@pytest.mark.parametrize("text", ["8,16", "8,x,47", "0,16,47"])
def test_a_bad_branch_is_refused_by_the_parser(text, capsys):
    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args(["--data", "d", "--out", "o", "--student-branch", text])
    assert raised.value.code == 2 and "--student-branch" in capsys.readouterr().err


def test_the_activation_option_reaches_every_convolution():
    from models.architectures import TEACHER_BRANCH, BranchSpec, InputSpec, build_teacher

    assert build_parser().parse_args(["--data", "d", "--out", "o", "--activation", "relu"]).activation == "relu"
    assert TEACHER_BRANCH.activation == "sigmoid"  # the default architecture is unchanged
    teacher = build_teacher("emg", InputSpec(), BranchSpec(activation="relu"))
    convolutions = [layer for layer in teacher.layers if "conv" in layer.name]
    assert convolutions and all(layer.activation.__name__ == "relu" for layer in convolutions)
    with pytest.raises(ValueError, match="activation"):
        BranchSpec(activation="tanh")


def test_equal_validation_accuracy_keeps_the_lower_loss_only_when_asked():
    """KeepBest on a saturated validation set: by default the first epoch at the best accuracy stays;
    with ``--tie-break loss`` a later epoch of equal accuracy and lower loss replaces it."""
    import tf_keras as keras

    from train.distill.training import KeepBest

    assert build_parser().parse_args(["--data", "d", "--out", "o"]).tie_break == "earlier"
    assert build_parser().parse_args(["--data", "d", "--out", "o", "--tie-break", "loss"]).tie_break == "loss"
    epochs = [(0.90, 0.50), (1.00, 0.40), (1.00, 0.20), (1.00, 0.30), (0.95, 0.10)]
    kept = {}
    for tie_break in (False, True):
        model = keras.Sequential([keras.layers.Input((1,)), keras.layers.Dense(1)])
        keep = KeepBest(model, patience=100, name="m", tie_break_loss=tie_break)
        keep.set_model(model)
        for epoch, (accuracy, loss) in enumerate(epochs):
            model.layers[0].kernel.assign([[float(epoch)]])
            keep.on_epoch_end(epoch, {"val_accuracy": accuracy, "val_loss": loss})
        keep.on_train_end()
        kept[tie_break] = (keep.best_epoch, float(model.layers[0].kernel.numpy()[0, 0]))
    assert kept[False] == (1, 1.0)  # the first epoch at 100 %
    assert kept[True] == (2, 2.0)  # the 100 % epoch of lowest loss, its weights restored

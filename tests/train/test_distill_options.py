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

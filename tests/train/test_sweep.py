"""The alpha/temperature sweep: refused arguments (fast) and, marked slow, a tiny grid end to end."""

from __future__ import annotations

import json

import pytest

from train.distill import sweep


@pytest.mark.parametrize("arguments, message", [
    (["--aggregations", "median"], "choose from mean, weighted"),
    (["--alphas", "1.5"], "must lie in [0, 1]"),
    (["--temperatures", "0"], "must be above 0"),
])
def test_bad_grids_are_refused_before_any_training(tmp_path, capsys, arguments, message):
    code = sweep.main(["--data", str(tmp_path), "--out", str(tmp_path / "sweep.json"), *arguments])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "sweep.json").exists()


def test_a_list_that_is_not_numbers_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as raised:
        sweep.main(["--data", str(tmp_path), "--out", str(tmp_path / "x.json"), "--alphas", "0.1,high"])
    assert raised.value.code == 2 and "comma-separated numbers" in capsys.readouterr().err


@pytest.mark.slow
def test_a_tiny_grid_trains_every_point_from_one_set_of_teachers(tmp_path, capsys):
    from train.synth.build import generate_dataset

    generate_dataset(tmp_path / "data", signers=2, repetitions=4, seed=1, sessions=0, workers=1, progress=False)
    out = tmp_path / "sweep.json"
    code = sweep.main(["--data", str(tmp_path / "data"), "--out", str(out), "--quick", "--alphas", "0.2,0.8",
                       "--temperatures", "3", "--aggregations", "mean,weighted", "--teacher-epochs", "2",
                       "--student-epochs", "2"])
    assert code == 0
    result = json.loads(out.read_text())
    models = [(row["model"], row.get("alpha"), row.get("temperature")) for row in result["rows"]]
    assert models == [("teacher_ensemble", None, None), ("student_scratch", None, None),
                      ("student_kd_mean", 0.2, 3.0), ("student_kd_mean", 0.8, 3.0),
                      ("student_kd_weighted", 0.2, 3.0), ("student_kd_weighted", 0.8, 3.0)]
    assert all(0.0 <= row[part] <= 1.0 for row in result["rows"] for part in ("val", "test"))
    assert "| student_kd_weighted | 0.8 | 3 |" in capsys.readouterr().out

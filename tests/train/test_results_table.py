"""``python -m train.distill.report RUN...``: the results table over runs, with the alpha each run kept."""

from __future__ import annotations

import json

from train.distill.report import ABLATION, results_table

VARIANTS = ("float32", "dynamic_range", "int8", "teacher_ensemble_float32")


def write_run(directory, protocol, seed, accuracy, training_extra):
    directory.mkdir()
    summary = {name: {"val": {"accuracy": accuracy, "macro_f1": accuracy},
                      "test": {"accuracy": accuracy, "macro_f1": accuracy}} for name in ABLATION}
    check = {"bytes": 1000, "test_accuracy": accuracy, "agreement_with_keras_pct": 100.0,
             "latency_single_thread": {"median_ms": 0.25}}
    training = {"seed": seed, "quick": False,
                "data": {"protocol": protocol, "held_out_signer": "signer-01" if protocol == "loso" else None},
                **training_extra}
    (directory / "results.json").write_text(json.dumps({"summary": summary, "training": training,
                                                        "exported": {variant: check for variant in VARIANTS}}))
    return directory


def test_the_table_averages_runs_and_lists_the_alpha_each_kept(tmp_path):
    chosen = {"student_scratch": None, "student_kd_single": 0.9, "student_kd_mean": 0.3, "student_kd_weighted": 0.9}
    runs = [write_run(tmp_path / "a", "within", 0, 0.90, {"alpha_chosen": chosen}),
            write_run(tmp_path / "b", "within", 1, 0.80, {"alpha": 0.9}),  # before per-run alpha: one for all
            write_run(tmp_path / "c", "loso", 0, 0.50, {"alpha_chosen": chosen}),
            write_run(tmp_path / "d", "within", 2, 0.10, {"alpha": 0.9, "quick": True})]
    table = results_table(runs)
    assert "### within (2 runs; seeds 0, 1)" in table  # the quick run is left out
    assert "| student_kd_mean | 85.0 ± 7.1 | 85.0 | 2 | 0.3, 0.9 |" in table
    assert "| student_scratch | 85.0 ± 7.1 | 85.0 | 2 |  |" in table
    assert "### loso (1 runs; seeds 0; held-out signers signer-01)" in table
    assert "| student_kd_weighted | 50.0 ± 0.0 | 50.0 | 1 | 0.9 |" in table

"""A study's results from its run directories: the docs/RESULTS.md tables (markdown) and JSON.

train.distill runs: per protocol the mean ± sd table of ``train.distill.report`` (which, as there,
leaves ``--quick`` runs out) and one row per run with each model's test accuracy; train.distill.sweep
runs: the sweep's table; train.adapt.evaluate runs: accuracy against k per method (mean over the
run's signers), per run and per group (mean over the group's runs, e.g. the five LOSO folds).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

PER_RUN_MODELS = ("teacher_emg", "teacher_acc", "teacher_gyro", "teacher_ensemble", "student_scratch",
                  "student_kd_single", "student_kd_mean", "student_kd_weighted")


def _distill(entries: list[dict]) -> tuple[list[str], dict]:
    from train.distill.report import results_table

    lines = ["| run | emg | acc | gyro | ensemble | scratch | KD single | KD mean | KD weighted | shipped by val |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    found = {}
    for entry in entries:
        results = json.loads((Path(entry["directory"]) / "results.json").read_text())
        summary, training = results["summary"], results["training"]
        test = {name: summary[name]["test"]["accuracy"] for name in PER_RUN_MODELS if name in summary}
        found[entry["name"]] = {"test_accuracy": test,
                                "val_accuracy": {name: summary[name]["val"]["accuracy"] for name in test},
                                "protocol": training["data"]["protocol"], "seed": training["seed"],
                                "quick": training["quick"], "shipped": training["shipped_variant"],
                                "held_out_signer": training["data"]["held_out_signer"]}
        cells = [f"{100 * test[name]:.1f}" if name in test else "" for name in PER_RUN_MODELS]
        label = f"{entry['name']} ({training['data']['protocol']} s{training['seed']}{', quick' if training['quick'] else ''})"
        lines.append(f"| {label} | {' | '.join(cells)} | {training['shipped_variant'].removeprefix('student_')} |")
    aggregate = results_table([entry["directory"] for entry in entries])
    return ([aggregate, "", "Per run (test accuracy, %):", "", *lines] if aggregate.strip()
            else ["Per run (test accuracy, %; quick runs are not averaged, as in train.distill.report):", "", *lines]), found


def _sweep(entries: list[dict]) -> tuple[list[str], dict]:
    from train.distill.sweep import table

    lines, found = [], {}
    for entry in entries:
        result = json.loads((Path(entry["directory"]) / "sweep.json").read_text())
        found[entry["name"]] = {"rows": result["rows"], "protocol": result["protocol"], "seed": result["seed"]}
        lines += [f"{entry['name']} ({result['protocol']}, seed {result['seed']}):", "", table(result), ""]
    return lines, found


def _calibration(entries: list[dict]) -> tuple[list[str], dict]:
    found, by_group = {}, {}
    for entry in entries:
        report = json.loads((Path(entry["directory"]) / "calibration.json").read_text())
        found[entry["name"]] = {"mean": report["mean"], "signers": sorted(report["signers"]), "model": report["model"]}
        by_group.setdefault(entry["group"], []).append((entry["name"], report))
    lines = []
    for group, reports in by_group.items():
        ks = [str(k) for k in reports[0][1]["k"]]
        methods = list(reports[0][1]["methods"])
        lines += [f"{group} ({len(reports)} runs: mean over the runs of each run's mean over signers, %):", "",
                  "| run | method | " + " | ".join(f"k = {k}" for k in ks) + " |",
                  "| --- | --- | " + " | ".join("---:" for _ in ks) + " |"]
        rows = [(name, report) for name, report in reports] + ([("mean", None)] if len(reports) > 1 else [])
        for name, report in rows:
            for method in methods:
                cells = []
                for k in ks:
                    key = "none" if k == "0" else method
                    values = ([report["mean"][k][key]] if report is not None
                              else [other["mean"][k][key] for _, other in reports if k in other["mean"]])
                    cells.append(f"{100 * np.mean(values):.1f}")
                lines.append(f"| {name} | {method} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines, found


def _files(entries: list[dict]) -> tuple[list[str], dict]:
    lines = ["| run | artefact |", "| --- | --- |"]
    found = {}
    for entry in entries:
        path = Path(entry["directory"]) / entry["artefact"]
        lines.append(f"| {entry['name']} | {path} |")
        found[entry["name"]] = {"artefact": str(path)}
    return lines, found


BUILDERS = {"distill": ("train.distill runs", _distill), "sweep": ("train.distill.sweep runs", _sweep),
            "calibration": ("calibration curves (train.adapt.evaluate)", _calibration), "files": ("other runs", _files)}


def build_tables(study_name: str, entries: list[dict]) -> tuple[str, dict]:
    """(markdown, JSON) over the finished runs: ``entries`` of name, group, table, directory, artefact."""
    sections = [f"# Study {study_name}", ""]
    document = {"study": study_name, "tables": {}}
    for kind, (title, builder) in BUILDERS.items():
        chosen = [entry for entry in entries if entry["table"] == kind]
        if not chosen:
            continue
        lines, found = builder(chosen)
        sections += [f"## {title}", "", *lines, ""]
        document["tables"][kind] = found
    return "\n".join(sections).rstrip() + "\n", document

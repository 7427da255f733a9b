"""The human report of one training run: report.md + PNG plots (learning curves, the shipped
student's confusion matrix, the ablation chart); and the results table over several runs.

``python -m train.distill.report RUN_DIR [RUN_DIR ...]`` prints the markdown results table (mean and
standard deviation over the runs of each protocol) that docs/RESULTS.md holds.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np

from stream.common.atomic import atomic_write_bytes, atomic_write_text

ABLATION = ("teacher_emg", "teacher_acc", "teacher_gyro", "teacher_ensemble", "student_scratch", "student_kd_single",
            "student_kd_mean", "student_kd_weighted")


def _figure_bytes(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def _plots(out: Path, card: dict, histories: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12, 4))
    for name, history in histories.items():
        curves = history["curves"]
        axes[0].plot(curves.get("loss", []), label=name)
        axes[1].plot(curves.get("val_accuracy", []), label=name)
    axes[0].set(title="training loss", xlabel="epoch")
    axes[1].set(title="validation accuracy", xlabel="epoch", ylim=(0, 1))
    axes[1].legend(fontsize=7)
    atomic_write_bytes(out / "learning_curves.png", _figure_bytes(figure))
    plt.close(figure)

    shipped = card["training"]["shipped_variant"]
    confusion = np.array(card["metrics"]["confusion"][shipped]["test"], dtype=float)
    rows = confusion.sum(axis=1, keepdims=True)
    figure, axis = plt.subplots(figsize=(9, 8))
    image = axis.imshow(np.divide(confusion, rows, out=np.zeros_like(confusion), where=rows > 0), cmap="Blues", vmin=0, vmax=1)
    labels = card["labels"]
    axis.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
    axis.set_yticks(range(len(labels)), labels, fontsize=6)
    axis.set(title=f"{shipped}: test confusion (row-normalised)", xlabel="predicted", ylabel="true")
    figure.colorbar(image, ax=axis, fraction=0.04)
    atomic_write_bytes(out / "confusion_matrix.png", _figure_bytes(figure))
    plt.close(figure)

    summary = card["metrics"]["summary"]
    names = [name for name in ABLATION if name in summary]
    figure, axis = plt.subplots(figsize=(10, 4))
    positions = np.arange(len(names))
    for offset, part in ((-0.2, "val"), (0.2, "test")):
        axis.bar(positions + offset, [summary[name][part]["accuracy"] for name in names], width=0.4, label=part)
    axis.set_xticks(positions, names, rotation=25, fontsize=8)
    axis.set(ylabel="accuracy", ylim=(0, 1), title="ablation: teachers, ensemble and students")
    axis.legend()
    atomic_write_bytes(out / "ablation.png", _figure_bytes(figure))
    plt.close(figure)


def _kb(size: int) -> str:
    return f"{size / 1024:.0f} KiB"


def write_report(out: Path, card: dict, histories: dict) -> None:
    out = Path(out)
    _plots(out, card, histories)
    summary = card["metrics"]["summary"]
    exported = card["metrics"]["exported"]
    sizes = card["metrics"]["sizes_bytes"]
    training = card["training"]
    lines = [f"# Training report: {card['model_id']}", "",
             f"Command: `{training['command']}`  ", f"Protocol: {training['data']['protocol']}"
             + (f" (held-out signer {training['data']['held_out_signer']})" if training['data']['held_out_signer'] else "")
             + f", seed {training['seed']}{', QUICK (subset, few epochs)' if training['quick'] else ''}; "
             f"total {training['total_seconds']:.0f} s. Shipped: **{training['shipped_variant']}**.", "",
             "| model | parameters | val acc | test acc | test macro-F1 | train s |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    parameters = card["parameters"]
    for name in ABLATION:
        if name not in summary:
            continue
        count = parameters.get(name, parameters["student"] if name.startswith("student") else None)
        lines.append(f"| {name} | {count:,} | {summary[name]['val']['accuracy']:.3f} | {summary[name]['test']['accuracy']:.3f} "
                     f"| {summary[name]['test']['macro_f1']:.3f} | {training['seconds_per_model'].get(name, 0):.0f} |")
    candidates = training.get("alpha_candidates", {})
    if candidates:
        lines += ["", "## Alpha, chosen on validation (each candidate from the same initial weights and seed)", "",
                  "| model | alpha | val acc | test acc | best epoch | kept |", "| --- | ---: | ---: | ---: | ---: | --- |"]
        for name, rows in candidates.items():
            for row in rows:
                kept = "yes" if row["alpha"] == training["alpha_chosen"][name] else ""
                lines.append(f"| {name} | {row['alpha']:g} | {row['val']:.3f} | {row['test']:.3f} | {row['best_epoch']} "
                             f"| {kept} |")
    lines += ["", "## Exported models (LiteRT, one thread, test windows)", "",
              "| file | bytes | agreement with Keras | test acc | latency median / p90 | LSTM ops |",
              "| --- | ---: | ---: | ---: | ---: | --- |"]
    for name, check in exported.items():
        latency = check["latency_single_thread"]
        lines.append(f"| {name} | {check['bytes']:,} ({_kb(check['bytes'])}) | {check['agreement_with_keras_pct']:.2f}% "
                     f"| {check['test_accuracy']:.3f} | {latency['median_ms']:.3f} / {latency['p90_ms']:.3f} ms "
                     f"| {check['lstm_ops']['UNIDIRECTIONAL_SEQUENCE_LSTM']} fused, {check['lstm_ops']['WHILE']} WHILE |")
    lines += ["", f"Teachers / student size: {sizes['compression_float32']}x (float32), "
              f"{sizes['compression_dynamic_range']}x (dynamic range), {sizes['compression_int8']}x (int8).", "",
              f"Data: {json.dumps(training['data']['parts'])}", "",
              "![learning curves](learning_curves.png)", "", "![ablation](ablation.png)", "",
              "![confusion matrix](confusion_matrix.png)", ""]
    atomic_write_text(out / "report.md", "\n".join(lines))


def _alpha_kept(training: dict, name: str):
    """The alpha a run kept for a distilled student (runs before 2026-11-29 had one alpha for all)."""
    if not name.startswith("student_kd"):
        return None
    return training["alpha_chosen"][name] if "alpha_chosen" in training else training.get("alpha")


def results_table(run_directories) -> str:
    """Markdown: per protocol, mean +- std of test accuracy over runs, and the sizes."""
    runs = [json.loads((Path(directory) / "results.json").read_text()) for directory in run_directories]
    lines = []
    for protocol in ("within", "loso"):
        chosen = [run for run in runs if run["training"]["data"]["protocol"] == protocol and not run["training"]["quick"]]
        if not chosen:
            continue
        seeds = ", ".join(str(run["training"]["seed"]) for run in chosen)
        held_out = sorted({run["training"]["data"]["held_out_signer"] for run in chosen if run["training"]["data"]["held_out_signer"]})
        lines += [f"### {protocol} ({len(chosen)} runs; seeds {seeds}{'; held-out signers ' + ', '.join(held_out) if held_out else ''})", "",
                  "| model | test accuracy (mean ± sd) | test macro-F1 | runs | alpha kept, per run |",
                  "| --- | ---: | ---: | ---: | --- |"]
        for name in ABLATION:
            accuracy = np.array([run["summary"][name]["test"]["accuracy"] for run in chosen])
            f1 = np.array([run["summary"][name]["test"]["macro_f1"] for run in chosen])
            alphas = ", ".join(f"{alpha:g}" for alpha in (_alpha_kept(run["training"], name) for run in chosen)
                               if alpha is not None)
            lines.append(f"| {name} | {100 * accuracy.mean():.1f} ± {100 * accuracy.std(ddof=1 if len(chosen) > 1 else 0):.1f}"
                         f" | {100 * f1.mean():.1f} | {len(chosen)} | {alphas} |")
        lines += ["", "| file | bytes (mean) | test acc (mean) | agreement with Keras | latency median (ms) |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for variant in ("float32", "dynamic_range", "int8", "teacher_ensemble_float32"):
            checks = [run["exported"][variant] for run in chosen]
            lines.append(f"| {variant} | {np.mean([c['bytes'] for c in checks]):,.0f} | "
                         f"{100 * np.mean([c['test_accuracy'] for c in checks]):.1f} | "
                         f"{np.mean([c['agreement_with_keras_pct'] for c in checks]):.1f}% | "
                         f"{np.mean([c['latency_single_thread']['median_ms'] for c in checks]):.3f} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(results_table(sys.argv[1:]))

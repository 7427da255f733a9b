"""Accuracy against k from train.adapt.evaluate reports: one panel per report, a line per method.

    python -m train.adapt.plot REPORT.json[+REPORT.json ...] ... --out docs/adaptation.png [--titles A,B]

One panel per argument: the mean over its signers (``a.json+b.json``: over the signers of both, as
for the folds of leave-one-signer-out, each run on its own model); a dashed line marks 90 %, the
target at k = 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

STYLE = {"none": ("k = 0 model as it is", "grey"), "alignment": ("alignment", "tab:blue"),
         "head": ("head", "tab:orange"), "alignment+head": ("alignment + head", "tab:green"),
         "finetune": ("fine-tuning (TensorFlow)", "tab:red")}


def curves(report: dict) -> dict:
    """method -> (ks, mean accuracy %) over the report's signers; k = 0 is every method's start."""
    ks = sorted(int(k) for k in report["mean"])
    methods = [method for method in report["methods"] if method in STYLE]
    result = {}
    for method in methods:
        points = [(k, 100 * report["mean"][str(k)]["none" if k == 0 else method]) for k in ks
                  if (k == 0 or method in report["mean"][str(k)])]
        result[method] = ([k for k, _ in points], [value for _, value in points])
    return result


def merge(reports: list[dict]) -> dict:
    """One report holding every signer of ``reports``; its mean is over all of them (the methods and
    ks those all have)."""
    if len(reports) == 1:
        return reports[0]
    signers = {name: result for report in reports for name, result in report["signers"].items()}
    ks = [k for k in reports[0]["mean"] if all(k in report["mean"] for report in reports)]
    methods = [method for method in reports[0]["methods"] if all(method in report["methods"] for report in reports)]
    mean = {}
    for k in ks:
        names = ("none",) + (tuple(methods) if k != "0" else ())
        mean[k] = {method: sum(result["by_k"][k]["accuracy"][method] for result in signers.values()) / len(signers)
                   for method in names}
    return {"signers": signers, "methods": methods, "mean": mean}


def table(reports: list[dict], titles: list[str]) -> str:
    """The same curves as a markdown table: a row per panel and method, a column per k (%)."""
    ks = sorted({int(k) for report in reports for k in report["mean"]})
    lines = ["| model, people | method | " + " | ".join(f"k = {k}" for k in ks) + " |",
             "| --- | --- | " + " | ".join("---:" for _ in ks) + " |"]
    for report, title in zip(reports, titles):
        for method, (method_ks, values) in curves(report).items():
            by_k = dict(zip(method_ks, values))
            cells = [f"{by_k[k]:.1f}" if k in by_k else "-" for k in ks]
            lines.append(f"| {title} | {STYLE[method][0]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(reports: list[dict], titles: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(reports), figsize=(4.2 * len(reports), 3.8), sharey=True, squeeze=False)
    for axis, report, title in zip(axes[0], reports, titles):
        for method, (ks, values) in curves(report).items():
            label, colour = STYLE[method]
            axis.plot(ks, values, marker="o", label=label, color=colour)
        axis.axhline(90, color="black", linestyle="--", linewidth=0.8)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("k (calibration repetitions per sign)")
        axis.set_xticks(sorted(int(k) for k in report["mean"]))
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy on the other repetitions (%)")
    axes[0][-1].legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.adapt.plot", description=__doc__.split("\n")[0])
    parser.add_argument("reports", nargs="+", help="report files; a+b+c: one panel over their signers")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--titles", default=None, help="comma-separated, one per report (default: its signers)")
    parser.add_argument("--table", action="store_true", help="also print the curves as a markdown table")
    arguments = parser.parse_args(argv)
    try:
        reports = [merge([json.loads(Path(part).read_text()) for part in str(group).split("+")])
                   for group in arguments.reports]
    except (OSError, json.JSONDecodeError, KeyError) as error:
        print(f"train.adapt.plot: {error}", file=sys.stderr)
        return 2
    titles = arguments.titles.split(",") if arguments.titles else [", ".join(report["signers"]) for report in reports]
    if len(titles) != len(reports):
        print(f"train.adapt.plot: {len(titles)} titles for {len(reports)} reports", file=sys.stderr)
        return 2
    plot(reports, titles, arguments.out)
    if arguments.table:
        print(table(reports, titles))
    print(arguments.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

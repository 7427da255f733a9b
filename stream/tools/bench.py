"""``python -m stream.tools.bench``: every part's benchmarks in one run, printed as ONE JSON object.

Each part adds its module to ``BENCH_MODULES``; the module exposes ``run() -> dict`` of figures
(ratios measured side by side in the same run, medians). ``--only NAME`` runs the modules whose
name contains NAME (e.g. ``--only dsp``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys

BENCH_MODULES = [
    "stream.dsp.bench",
    "stream.tools.frame_bench",
    "stream.trigno.bench",
    "train.synth.bench",
    "stream.tools.pipeline_bench",
    "stream.tools.monitor_bench",
    "stream.tools.speak_bench",
    "stream.tools.lsl_bench",
    "train.distill.bench",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.tools.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", metavar="NAME", help="run only the benchmark modules whose name contains NAME")
    arguments = parser.parse_args(argv)
    modules = [name for name in BENCH_MODULES if arguments.only is None or arguments.only in name]
    if not modules:
        parser.error(f"--only {arguments.only!r} matches none of: {', '.join(BENCH_MODULES)}")
    figures: dict[str, object] = {"python": platform.python_version(), "machine": platform.machine()}
    for name in modules:
        figures.update(importlib.import_module(name).run())
    json.dump(figures, sys.stdout, sort_keys=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

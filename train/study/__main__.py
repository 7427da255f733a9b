"""python -m train.study SPEC.toml [--workers N] [--threads-per-run T] [--ray ADDRESS [--ray-shared]]
                                   [--only NAME-PATTERN ...] [--list]

Runs a study's grid (studies/*.toml; format in train.study.spec) as independent runs, skipping those
finished before (same key), going on past a failed one (its log named), then prints and writes the
results table: OUT/results.md and OUT/results.json, with OUT/study.json (every run's status).
Exit status: 0 all finished, 1 some run failed or was blocked, 2 bad study file or data, 130 stopped.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train.study", description=__doc__.split("\n")[3])
    parser.add_argument("spec", type=Path, help="the study file (TOML), e.g. studies/synth-v6.toml")
    parser.add_argument("--workers", type=int, default=None,
                        help="runs at a time (local default 1; with Ray: at most this many in flight, default all)")
    parser.add_argument("--threads-per-run", type=int, default=None,
                        help="threads (and Ray CPUs) per run (default: this machine's cores // workers)")
    parser.add_argument("--ray", metavar="ADDRESS", default=None,
                        help="run each run as a Ray task: auto, HOST:6379, ray://HOST:10001, or local (a Ray "
                             "started here); needs pip install 'signstream[cluster]'")
    parser.add_argument("--ray-shared", action="store_true",
                        help="the study's output directory is on storage every Ray node sees: workers write "
                             "in place (default: each returns its run directory, written here)")
    parser.add_argument("--only", nargs="+", default=[], metavar="PATTERN",
                        help="only the runs whose names match (shell patterns, e.g. 'loso-*')")
    parser.add_argument("--list", action="store_true",
                        help="print the runs, their keys and whether each is finished; run nothing")
    return parser


def list_runs(study, only) -> dict:
    from train.study.keys import input_files, run_key
    from train.study.runner import hash_data, select
    from train.study.task import is_complete

    runs = select(study, only)
    hashes = hash_data(runs)
    listed = []
    for run in runs:
        key = run_key(run, hashes.get(run.data.name) if run.data else None, input_files(run, study.root), study.out)
        listed.append({"name": run.name, "group": run.group, "key": key,
                       "finished": is_complete(study.directory(run), key, run.artefact),
                       "command": " ".join(["python -m", run.module, *run.argv(study.directory(run))])})
    return {"study": study.name, "out": str(study.out), "runs": listed}


def _terminate(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    from train.study.executors import LocalExecutor, RayExecutor, threads_per_run
    from train.study.keys import DataSetMissing
    from train.study.runner import StudyError, run_study
    from train.study.spec import SpecError, load_study

    parser = build_parser()
    arguments = parser.parse_args(argv)
    if arguments.workers is not None and arguments.workers < 1:
        parser.error(f"--workers {arguments.workers}: at least 1")
    if arguments.threads_per_run is not None and arguments.threads_per_run < 1:
        parser.error(f"--threads-per-run {arguments.threads_per_run}: at least 1")
    if arguments.ray_shared and not arguments.ray:
        parser.error("--ray-shared goes with --ray ADDRESS")
    try:
        study = load_study(arguments.spec)
        if arguments.list:
            print(json.dumps(list_runs(study, arguments.only), indent=1))
            return 0
        workers = arguments.workers or 1
        threads = arguments.threads_per_run or threads_per_run(workers)
        if arguments.ray:
            executor = RayExecutor(arguments.ray, shared=arguments.ray_shared, workers=arguments.workers)
            executor.check(threads, max(run.gpus for run in study.runs))
        else:
            executor = LocalExecutor(workers)
        signal.signal(signal.SIGTERM, _terminate)
        summary = run_study(study, executor, threads, arguments.only)
    except (SpecError, StudyError, DataSetMissing, ImportError, ValueError) as error:
        print(f"train.study: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("train.study: stopped; finished runs are kept and skipped on the next start", file=sys.stderr)
        return 130
    if "table" in summary:
        print(summary["table"])
    counts = summary["counts"]
    print(f"train.study: {', '.join(f'{count} {status}' for status, count in counts.items())} in "
          f"{summary['seconds']:.0f} s; {Path(summary['out']) / 'study.json'}", file=sys.stderr)
    return 0 if set(counts) <= {"done", "skipped"} else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""A study from start to table: data sets hashed, runs keyed, finished ones skipped, the rest handed
to the executor group by group (a group waits for the groups in its ``after``), markers written, the
summary (OUT/study.json) and the tables (OUT/results.md, OUT/results.json) at the end."""

from __future__ import annotations

import fnmatch
import sys
import time
from pathlib import Path

from stream.common.atomic import atomic_write_json, atomic_write_text
from train.study.keys import DataSetMissing, dataset_hash, input_files, run_key
from train.study.spec import Study
from train.study.table import build_tables
from train.study.task import Task, is_complete, read_marker, write_marker

SUMMARY = "study.json"
FINISHED = ("done", "skipped")


class StudyError(ValueError):
    """The study cannot start (a data set missing, nothing selected); the message says what to do."""


def waves(study: Study) -> list[list[str]]:
    """The groups in order of their ``after``: each wave's groups wait only for earlier waves."""
    level = {}
    for group in study.groups:
        after = next(run.after for run in study.runs if run.group == group)
        level[group] = 1 + max((level[name] for name in after), default=-1)
    return [[group for group in study.groups if level[group] == wave] for wave in range(max(level.values()) + 1)]


def select(study: Study, patterns: list[str]) -> list:
    if not patterns:
        return list(study.runs)
    chosen = [run for run in study.runs if any(fnmatch.fnmatchcase(run.name, pattern) for pattern in patterns)]
    if not chosen:
        raise StudyError(f"--only {' '.join(patterns)}: no run of {study.source.name} matches "
                         f"(runs: {', '.join(run.name for run in study.runs[:12])}{' ...' if len(study.runs) > 12 else ''})")
    return chosen


def hash_data(runs) -> dict[str, str]:
    hashes, missing = {}, []
    for run in runs:
        if run.data is not None and run.data.name not in hashes:
            try:
                hashes[run.data.name] = dataset_hash(run.data.path, run.data.build)
            except DataSetMissing as error:
                missing.append(str(error))
                hashes[run.data.name] = None
    if missing:
        raise StudyError("data set(s) missing, nothing was run:\n  " + "\n  ".join(dict.fromkeys(missing)))
    return hashes


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_study(study: Study, executor, threads: int, only: list[str] | None = None, say=_say) -> dict:
    """Run what is not finished; returns the summary (also written to OUT/study.json)."""
    runs = select(study, only or [])
    data_hashes = hash_data(runs)
    started = time.monotonic()
    entries = {run.name: {"name": run.name, "group": run.group, "table": run.table, "artefact": run.artefact,
                          "directory": str(study.directory(run)), "status": "not run", "key": None}
               for run in runs}

    def on_result(task: Task, result: dict) -> None:
        entry = entries[task.name]
        if result["status"] == "done":
            write_marker(Path(task.directory), task, result, executor.name)
            say(f"done    {task.name} in {result['seconds']:.0f} s ({result['host']})")
        else:
            say(f"{result['status'].upper():8}{task.name}: {result.get('reason', '')}; log: {result.get('log')}"
                + (f"\n    " + "\n    ".join(result["log_tail"].splitlines()) if result.get("log_tail") else ""))
        entry.update({key: result.get(key) for key in ("status", "returncode", "seconds", "log", "reason", "host")})

    summary = {"study": study.name, "source": str(study.source), "out": str(study.out), "executor": executor.name,
               "threads_per_run": threads, "runs": list(entries.values())}
    try:
        for wave in waves(study):
            tasks = []
            for run in (run for run in runs if run.group in wave):
                entry = entries[run.name]
                blocked = sorted({other["name"] for other in entries.values()
                                  if other["group"] in run.after and other["status"] not in FINISHED})
                if blocked:
                    entry.update(status="blocked", reason=f"waits for {', '.join(blocked)} (not finished)")
                    say(f"BLOCKED {run.name}: {entry['reason']}")
                    continue
                directory = study.directory(run)
                data_hash = data_hashes.get(run.data.name) if run.data else None
                key = run_key(run, data_hash, input_files(run, study.root), study.out)
                entry["key"] = key
                if is_complete(directory, key, run.artefact):
                    entry.update(status="skipped", reason="finished before (same key)")
                    say(f"skip    {run.name}: finished before")
                    continue
                previous = read_marker(directory)
                if previous is not None and previous.get("key") != key:
                    say(f"redo    {run.name}: its settings, data or inputs changed since it was run")
                tasks.append(Task(name=run.name, module=run.module, arguments=run.arguments, key=key,
                                  artefact=run.artefact, stdout=run.stdout, root=str(study.root),
                                  directory=str(directory), threads=threads, gpus=run.gpus,
                                  data=str(run.data.path) if run.data else None, data_hash=data_hash))
            if tasks:
                say(f"running {len(tasks)} run(s) of {', '.join(wave)} on {executor.name} "
                    f"({threads} thread(s) each)")
                executor.run(tasks, on_result)
    except BaseException:
        for entry in entries.values():
            if entry["status"] == "not run":
                entry["status"] = "interrupted"
        summary["seconds"] = round(time.monotonic() - started, 1)
        summary["interrupted"] = True
        atomic_write_json(study.out / SUMMARY, summary)
        raise
    summary["seconds"] = round(time.monotonic() - started, 1)
    counts = {}
    for entry in entries.values():
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
    summary["counts"] = counts
    atomic_write_json(study.out / SUMMARY, summary)
    finished = [entry for entry in entries.values() if entry["status"] in FINISHED]
    if finished:
        markdown, document = build_tables(study.name, finished)
        document["runs"] = summary["runs"]
        atomic_write_text(study.out / "results.md", markdown)
        atomic_write_json(study.out / "results.json", document)
        summary["table"] = markdown
    return summary

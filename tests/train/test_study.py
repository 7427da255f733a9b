"""python -m train.study: spec files and their errors, run keys, and real (fast) commands run as a
study on the local executor: skipping what finished, reporting a failure with its log, resuming
after an interruption. The Ray executor and the training grid are in test_study_ray.py / slow."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from train.study.executors import LocalExecutor, threads_per_run
from train.study.keys import dataset_hash, file_sha256, input_files, run_key
from train.study.runner import StudyError, run_study
from train.study.spec import SpecError, load_study
from train.study.task import MARKER, THREAD_VARIABLES, Processes
from study_helpers import write_spec

REPO_ROOT = Path(__file__).resolve().parents[2]


DISTILL_SPEC = """
    [study]
    name = "example"
    out = "out"

    [data]
    a = "data/a"
    b = {{ path = "data/b", build = "python -m train.synth --out data/b --seed 3" }}

    [[group]]
    name = "loso"
    command = "train.distill"
    data = ["a", "b"]
    runs = "{{data_name}}-loso-s{{seed}}-{{alpha}}"
    options = {{ protocol = "loso", cache = "runs/cache", quick = true, allow-unbalanced = false }}
    grid = {{ seed = [0, 1], alpha = {alphas} }}

    [[group]]
    name = "calibration"
    command = "train.adapt.evaluate"
    data = "a"
    after = "loso"
    runs = "calibration-s{{seed}}"
    options = {{ k = [0, 1, 2], draws = 3 }}
    zip = {{ seed = [0, 1], signer = ["signer-01", "signer-02"], model = ["{{out}}/a-loso-s0-0.9/model_card.json", "{{out}}/a-loso-s1-0.9/model_card.json"] }}
"""


def test_a_grid_expands_into_runs_with_their_exact_command_lines(tmp_path):
    study = load_study(write_spec(tmp_path, DISTILL_SPEC.format(alphas="[0.9, 0.3]")), root=tmp_path)
    names = [run.name for run in study.runs]
    assert names == ["a-loso-s0-0.9", "a-loso-s0-0.3", "a-loso-s1-0.9", "a-loso-s1-0.3",
                     "b-loso-s0-0.9", "b-loso-s0-0.3", "b-loso-s1-0.9", "b-loso-s1-0.3",
                     "calibration-s0", "calibration-s1"]
    first = study.runs[0]
    out = tmp_path / "out"
    assert first.argv(out / first.name) == [
        "--out", str(out / first.name), "--data", str(tmp_path / "data" / "a"), "--protocol", "loso",
        "--cache", "runs/cache", "--quick", "--seed", "0", "--alpha", "0.9"]
    calibration = [run for run in study.runs if run.group == "calibration"]
    assert [run.after for run in calibration] == [("loso",), ("loso",)]
    assert calibration[1].argv(Path("X")) == [
        "--out", "X/calibration.json", "--data", str(tmp_path / "data" / "a"), "--k", "0,1,2", "--draws", "3",
        "--seed", "1", "--signer", "signer-02", "--model", str(out / "a-loso-s1-0.9" / "model_card.json")]
    assert study.data["b"].build.startswith("python -m train.synth")


def test_run_names_must_be_directory_names(tmp_path):
    # A list value (--alpha 0.9,0.3) in a name gives a comma: refused, and the message says which name.
    with pytest.raises(SpecError, match=r"runs = .* gives 'a-loso-s0-\[0.9, 0.3\]'"):
        load_study(write_spec(tmp_path, DISTILL_SPEC.format(alphas="[0.9, [0.9, 0.3]]")), root=tmp_path)


GOOD_GROUP = """
[study]
name = "x"
out = "out"
[data]
d = "data"
[[group]]
name = "g"
command = "train.distill"
data = "d"
"""


@pytest.mark.parametrize("addition, message", [
    ("seeds = [0, 1]\n", "unknown key 'seeds'"),
    ("grid = { seed = [0, 1], teacher-epoch = [1] }\n", "refuses these options.*unrecognized arguments: --teacher-epoch"),
    ("options = { protocol = \"sideways\" }\n", "argument --protocol: invalid choice: 'sideways'"),
    ("options = { seed = \"first\" }\n", "argument --seed: invalid int value: 'first'"),
    ("options = { out = \"elsewhere\" }\n", "option 'out' is set by the study"),
    ("zip = { seed = [0, 1], held-out-signer = [\"signer-01\"] }\n", "zip axes must have equal lengths"),
    ("grid = { seed = [] }\n", "grid.seed must be a non-empty list"),
    ("options = { config = \"{nothing}/train.toml\" }\n", r"\{nothing\} is not an axis or field here"),
    ("options = { seed = 1 }\ngrid = { seed = [0, 1] }\n", "both fixed"),
    ("runs = \"same\"\ngrid = { seed = [0, 1] }\n", "run name 'same' is also a run"),
    ("after = \"later\"\n", "after = 'later': not a group before this one"),
    ("gpus = -1\n", "gpus must be a number >= 0"),
    ("options = { alpha = { heavy = 1 } }\n", "option 'alpha' = .*give a string, a number"),
])
def test_bad_groups_are_refused_with_what_to_fix(tmp_path, addition, message):
    with pytest.raises(SpecError, match=message):
        load_study(write_spec(tmp_path, GOOD_GROUP + addition), root=tmp_path)


@pytest.mark.parametrize("text, message", [
    ("[study]\nname = \"x\"\nout = \"o\"\n", "a study needs at least one"),
    ("[study]\nname = \"x\"\n", "out must be a non-empty string"),
    ("[studdy]\nname = \"x\"\n", "unknown key 'studdy' \\(did you mean 'study'\\?\\)"),
    ("[study]\nname = \"x\"\nout = \"o\"\n[[group]]\nname = \"g\"\ncommand = \"train.nothing_here\"\n",
     "no such module"),
    ("[study]\nname = \"x\"\nout = \"o\"\n[[group]]\nname = \"g\"\ncommand = \"train.synth.calibrate\"\n",
     "say which file in the run directory it writes last"),
    ("[study]\nname = \"x\"\nout = \"o\"\n[[group]]\nname = \"g\"\ncommand = \"train.distill\"\ndata = \"nope\"\n",
     "data 'nope' is not in \\[data\\]"),
    ("[study]\nname = \"x\"\nout = \"o\"\n[[group]]\nname = \"g\"\ncommand = \"train.distill\"\n",
     "train.distill needs data = NAME"),
    ("[study\n", "not valid TOML"),
])
def test_bad_study_files_are_refused(tmp_path, text, message):
    with pytest.raises(SpecError, match=message):
        load_study(write_spec(tmp_path, text), root=tmp_path)


def test_a_missing_data_set_stops_the_study_before_anything_runs_and_says_how_to_build_it(tmp_path, capsys,
                                                                                          monkeypatch):
    from train.study.__main__ import main

    spec = write_spec(tmp_path, DISTILL_SPEC.format(alphas="[0.9, 0.3]"))
    monkeypatch.chdir(tmp_path)
    assert main([str(spec)]) == 2
    error = capsys.readouterr().err
    assert "data set(s) missing, nothing was run" in error and "build it first: python -m train.synth --out data/b" in error
    assert not (tmp_path / "out").exists()


def test_keys_follow_settings_data_and_input_files_but_not_the_order_or_the_place(tmp_path, tiny_dataset):
    shutil.copytree(tiny_dataset, tmp_path / "data")
    (tmp_path / "train.toml").write_text("[window]\nlength_s = 2.0\n")
    spec = GOOD_GROUP + "options = { protocol = \"within\", config = \"train.toml\" }\ngrid = { seed = [0, 1] }\n"

    def keys(text: str, root: Path = tmp_path) -> list[str]:
        study = load_study(write_spec(root, text), root=root)
        data_hash = dataset_hash(study.data["d"].path)
        return [run_key(run, data_hash, input_files(run, study.root), study.out) for run in study.runs]

    first = keys(spec)
    assert len(set(first)) == 2
    assert keys(spec) == first
    assert keys(spec.replace('protocol = "within", config = "train.toml"', 'config = "train.toml", protocol = "within"')) == first
    assert keys(spec.replace("seed = [0, 1]", "seed = [1, 0]")) == first[::-1]
    assert keys(spec.replace("within", "loso")) != first
    # The same study in another place, with a copy of the same data set: the same keys.
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copytree(tmp_path / "data", moved / "data")
    shutil.copy(tmp_path / "train.toml", moved / "train.toml")
    assert keys(spec, moved) == first
    # Another config file content, or another data set: other keys.
    (moved / "train.toml").write_text("[window]\nlength_s = 1.5\n")
    assert keys(spec, moved) != first
    (moved / "train.toml").write_text("[window]\nlength_s = 2.0\n")
    index = json.loads((moved / "data" / "index.json").read_text())
    index["entries"] = index["entries"][:-1]
    (moved / "data" / "index.json").write_text(json.dumps(index))
    assert keys(spec, moved) != first


def test_threads_per_run_share_the_cores():
    assert threads_per_run(1, cores=2) == 2 and threads_per_run(2, cores=2) == 1 and threads_per_run(4, cores=2) == 1
    assert threads_per_run(3, cores=16) == 5


PROXY_SPEC = """
[study]
name = "proxy"
out = "out"
[data]
a = "{data}"
b = "{copy}"
[[group]]
name = "proxy"
command = "train.synth.calibrate"
data = ["a", "b"]
runs = "proxy-{{data_name}}"
args = ["{{data}}"]
stdout = "proxy.json"
[[group]]
name = "broken"
command = "train.synth.calibrate"
args = ["{{out}}/not-a-data-set"]
stdout = "proxy.json"
[[group]]
name = "after-broken"
command = "train.synth.calibrate"
after = ["broken"]
data = "a"
args = ["{{data}}"]
stdout = "proxy.json"
"""


def proxy_spec(directory: Path, dataset: Path) -> Path:
    shutil.copytree(dataset, directory / "copy")
    return write_spec(directory, PROXY_SPEC.format(data=dataset, copy=directory / "copy"))


def test_finished_runs_are_skipped_and_a_failed_one_is_reported_with_its_log(tmp_path, tiny_dataset):
    study = load_study(proxy_spec(tmp_path, tiny_dataset), root=tmp_path)
    said = []
    summary = run_study(study, LocalExecutor(2), threads=1, say=said.append)
    status = {entry["name"]: entry for entry in summary["runs"]}
    assert {name: entry["status"] for name, entry in status.items()} == {
        "proxy-a": "done", "proxy-b": "done", "broken": "failed", "after-broken": "blocked"}
    assert status["broken"]["returncode"] == 2 and status["broken"]["reason"] == "exit status 2"
    log = Path(status["broken"]["log"])
    assert "not-a-data-set: no such directory" in log.read_text()
    assert any("FAILED" in line and str(log) in line and "no such directory" in line for line in said)
    assert "waits for broken" in status["after-broken"]["reason"]
    # The artefact is the command's own output, the same as running it by hand.
    by_hand = subprocess.run([sys.executable, "-m", "train.synth.calibrate", str(tiny_dataset)], capture_output=True,
                             text=True, timeout=120, check=True).stdout
    assert json.loads((tmp_path / "out" / "proxy-a" / "proxy.json").read_text()) == json.loads(by_hand)
    assert "# threads 1" in (tmp_path / "out" / "proxy-a" / "log.txt").read_text()
    marker = json.loads((tmp_path / "out" / "proxy-a" / MARKER).read_text())
    assert marker["key"] == status["proxy-a"]["key"] and marker["executor"] == "local"
    on_disk = json.loads((tmp_path / "out" / "study.json").read_text())
    assert on_disk["counts"] == {"done": 2, "failed": 1, "blocked": 1}
    assert (tmp_path / "out" / "results.md").read_text().count("proxy.json") == 2

    # Again: the two finished runs are not run (their files untouched), the failed one is tried again.
    before = (tmp_path / "out" / "proxy-a" / "proxy.json").stat().st_mtime_ns
    summary = run_study(study, LocalExecutor(2), threads=1, say=said.append)
    assert [entry["status"] for entry in summary["runs"]] == ["skipped", "skipped", "failed", "blocked"]
    assert (tmp_path / "out" / "proxy-a" / "proxy.json").stat().st_mtime_ns == before
    # A changed artefact is not a finished run any more.
    (tmp_path / "out" / "proxy-b" / "proxy.json").write_text("{}")
    summary = run_study(study, LocalExecutor(1), threads=1, only=["proxy-*"], say=said.append)
    assert [entry["status"] for entry in summary["runs"]] == ["skipped", "done"]
    with pytest.raises(StudyError, match="no run of study.toml matches"):
        run_study(study, LocalExecutor(1), threads=1, only=["nothing*"], say=said.append)


RESUME_SPEC = """
[study]
name = "resume"
out = "out"
[[group]]
name = "build"
command = "train.synth"
runs = "build-{{seed}}"
args = ["--out", "{{run_dir}}/data", "--signers", "1", "--repetitions", "3", "--sessions", "0", "--workers", "1",
        "--quiet"]
artefact = "data/index.json"
grid = {{ seed = [1, 2] }}
"""


def interrupt_when(process: subprocess.Popen, ready, settle_s: float, stop_timeout_s: float,
                   ready_timeout_s: float = 120) -> str:
    """SIGINT to ``process``'s group ``settle_s`` after ``ready()`` holds; its stderr once it ended
    (subprocess.TimeoutExpired, after a SIGKILL, if it did not within ``stop_timeout_s``)."""
    try:
        deadline = time.monotonic() + ready_timeout_s
        while not ready() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        time.sleep(settle_s)
        if process.poll() is None:  # ended already: the caller's check of its exit status says so
            os.killpg(process.pid, signal.SIGINT)
        return process.communicate(timeout=stop_timeout_s)[1]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_an_interrupted_study_resumes_without_redoing_finished_runs(tmp_path):
    spec = write_spec(tmp_path, RESUME_SPEC.format())
    command = [sys.executable, "-m", "train.study", str(spec), "--workers", "1"]
    # SIGINT at its default, as in a terminal: a test run started in the background (CI from a
    # non-interactive shell) inherits SIGINT ignored, and Ctrl-C would then never reach the study.
    process = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    out = tmp_path / "out"
    # Ctrl-C in a terminal (the study and its command) once the second run's command is running.
    error = interrupt_when(process, lambda: (out / "build-1" / MARKER).exists() and (out / "build-2" / "log.txt").exists(),
                           settle_s=0.5, stop_timeout_s=60)
    assert (out / "build-1" / MARKER).exists(), "the first run did not finish in 120 s"
    assert process.returncode == 130, error
    assert "finished runs are kept" in error
    summary = json.loads((out / "study.json").read_text())
    assert {entry["name"]: entry["status"] for entry in summary["runs"]} == {"build-1": "done", "build-2": "interrupted"}
    assert not (out / "build-2" / MARKER).exists()
    finished = (out / "build-1" / "data" / "index.json").stat().st_mtime_ns

    rerun = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "skip    build-1: finished before" in rerun.stderr
    summary = json.loads((out / "study.json").read_text())
    assert [entry["status"] for entry in summary["runs"]] == ["skipped", "done"]
    assert (out / "build-1" / "data" / "index.json").stat().st_mtime_ns == finished
    assert json.loads((out / "build-2" / "data" / "index.json").read_text())["provenance"]["seed"] == 2


def test_a_command_that_does_not_stop_on_sigint_is_killed_after_the_grace_period():
    processes = Processes()
    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                                 "print('ready', flush=True); time.sleep(60)"],
                                stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert stubborn.stdout.readline() == "ready\n"
        processes.add(stubborn)
        started = time.monotonic()
        processes.stop_all(grace_s=0.5)
        assert stubborn.wait(10) == -signal.SIGKILL
        assert time.monotonic() - started < 10
        assert processes.stopping
    finally:
        if stubborn.poll() is None:
            stubborn.kill()
            stubborn.wait()


def test_the_synthetic_data_builder_stops_on_sigint_with_its_pool(tmp_path):
    # Ctrl-C reaches the builder and its workers; the workers leave it to the parent, which lets the
    # batches in flight finish (multiprocessing.Pool's terminate, used before, hung in 2 of 253 such
    # runs: a worker killed mid-way through sending its result left the result thread waiting).
    command = [sys.executable, "-m", "train.synth", "--out", str(tmp_path / "data"), "--signers", "5",
               "--repetitions", "20", "--sessions", "0", "--workers", "2", "--quiet"]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    error = interrupt_when(process, lambda: any((tmp_path / "data" / "recordings").glob("*")), settle_s=1.0,
                           stop_timeout_s=30)
    assert process.returncode == 130, error
    assert "has no index.json yet" in error
    assert not (tmp_path / "data" / "index.json").exists()


def test_the_command_line_refuses_bad_numbers_and_lists_runs(tmp_path, tiny_dataset, capsys, monkeypatch):
    from train.study.__main__ import main

    spec = proxy_spec(tmp_path, tiny_dataset)
    with pytest.raises(SystemExit):
        main([str(spec), "--workers", "0"])
    assert "--workers 0: at least 1" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.toml")]) == 2
    assert "no such study file" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    assert main([str(spec), "--list", "--only", "proxy-*"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(run["name"], run["finished"]) for run in listed["runs"]] == [("proxy-a", False), ("proxy-b", False)]
    assert listed["runs"][0]["command"] == f"python -m train.synth.calibrate {tiny_dataset}"


def test_every_study_of_the_docs_parses_and_names_its_data(tmp_path):
    studies = sorted((REPO_ROOT / "studies").glob("*.toml"))
    assert len(studies) >= 5
    for path in studies:
        study = load_study(path, root=REPO_ROOT)
        assert study.runs, path
        assert all(run.data is None or run.data.build for run in study.runs), f"{path}: say how to build each data set"
    assert set(THREAD_VARIABLES) >= {"OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"}


CALIBRATION_SPEC = """
[study]
name = "calibration"
out = "out"
[data]
tiny = "{data}"
[[group]]
name = "shipped"
command = "train.adapt.evaluate"
data = "tiny"
runs = "calibrate-{{signer}}"
options = {{ model = "{card}", k = [0, 1], draws = 1, methods = "head" }}
grid = {{ signer = ["signer-01", "signer-02"] }}
"""


def test_calibration_runs_give_the_accuracy_against_k_table(tmp_path, tiny_dataset):
    card = REPO_ROOT / "models" / "student" / "model_card.json"
    study = load_study(write_spec(tmp_path, CALIBRATION_SPEC.format(data=tiny_dataset, card=card)), root=tmp_path)
    summary = run_study(study, LocalExecutor(2), threads=1, say=lambda line: None)
    assert [entry["status"] for entry in summary["runs"]] == ["done", "done"], summary["runs"]
    # The card is an input: its sha256 is in the key.
    assert input_files(study.runs[0], study.root) == {str(card): file_sha256(card)}
    reports = [json.loads((tmp_path / "out" / run / "calibration.json").read_text())
               for run in ("calibrate-signer-01", "calibrate-signer-02")]
    assert [list(report["signers"]) for report in reports] == [["signer-01"], ["signer-02"]]
    document = json.loads((tmp_path / "out" / "results.json").read_text())["tables"]["calibration"]
    assert document["calibrate-signer-02"]["mean"] == reports[1]["mean"]
    mean_k1 = (reports[0]["mean"]["1"]["head"] + reports[1]["mean"]["1"]["head"]) / 2
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| mean | head | " in table and f"{100 * mean_k1:.1f} |" in table

"""The Ray executor (Ray started here: ``ray.init`` with 2 CPUs) against the local one: the same
runs give the same results; and, marked slow, a tiny training grid (``--quick``, one epoch per
model) through both executors, equal to the digit and then skipped on a rerun."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'signstream[cluster]' to test --ray")

from train.study.executors import LocalExecutor, RayExecutor  # noqa: E402
from train.study.runner import run_study  # noqa: E402
from train.study.spec import load_study  # noqa: E402
from train.study.task import MARKER  # noqa: E402
from study_helpers import write_spec  # noqa: E402


@pytest.fixture(scope="module")
def ray_here():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


PROXY = """
[study]
name = "proxy"
out = "{out}"
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
"""


def test_ray_tasks_give_the_local_runs_results_and_report_failures(ray_here, tiny_dataset, tmp_path):
    shutil.copytree(tiny_dataset, tmp_path / "copy")
    studies = {}
    for name, executor in (("local", LocalExecutor(2)), ("returned", RayExecutor(workers=2)),
                           ("shared", RayExecutor(shared=True))):
        spec = write_spec(tmp_path, PROXY.format(out=f"out-{name}", data=tiny_dataset, copy=tmp_path / "copy"))
        study = load_study(spec, root=tmp_path)
        studies[name] = (study, run_study(study, executor, threads=1, say=lambda line: None))
    local = studies["local"][1]
    for name in ("returned", "shared"):
        remote = studies[name][1]
        assert [entry["status"] for entry in remote["runs"]] == ["done", "done", "failed"]
        assert [entry["key"] for entry in remote["runs"]] == [entry["key"] for entry in local["runs"]]
        for run in ("proxy-a", "proxy-b"):
            assert ((tmp_path / f"out-{name}" / run / "proxy.json").read_bytes()
                    == (tmp_path / "out-local" / run / "proxy.json").read_bytes())
            marker = json.loads((tmp_path / f"out-{name}" / run / MARKER).read_text())
            assert marker["executor"] == "ray" and marker["threads"] == 1
        broken = remote["runs"][2]
        assert broken["returncode"] == 2 and "not-a-data-set: no such directory" in Path(broken["log"]).read_text()
        assert Path(broken["log"]).parent == tmp_path / f"out-{name}" / "broken"
    # A rerun through Ray skips what was finished: the marker, not the executor, decides.
    study, _ = studies["returned"]
    again = run_study(study, RayExecutor(), threads=1, say=lambda line: None)
    assert [entry["status"] for entry in again["runs"]] == ["skipped", "skipped", "failed"]


def test_a_worker_refuses_a_data_set_other_than_the_one_the_study_hashed(ray_here, tiny_dataset, tmp_path):
    from train.study.task import Task, execute_elsewhere

    task = Task(name="x", module="train.synth.calibrate", arguments=(str(tiny_dataset),), key="k",
                artefact="proxy.json", stdout="proxy.json", root=str(tmp_path), directory=str(tmp_path / "x"),
                threads=1, gpus=0.0, data=str(tiny_dataset), data_hash="0" * 64)
    result = ray.get(ray.remote(execute_elsewhere).remote(task, False))
    assert result["status"] == "failed" and "is not the data set the study hashed" in result["reason"]


TRAINING = """
[study]
name = "tiny"
out = "{out}"
[data]
tiny = "{data}"
[[group]]
name = "within"
command = "train.distill"
data = "tiny"
runs = "within-s{{seed}}"
options = {{ protocol = "within", quick = true, teacher-epochs = 1, student-epochs = 1 }}
grid = {{ seed = [0, 1] }}
"""


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_tiny_training_grid_gives_the_same_models_locally_and_on_ray(ray_here, tiny_dataset, tmp_path):
    results = {}
    for name, executor in (("local", LocalExecutor(2)), ("ray", RayExecutor(workers=2))):
        study = load_study(write_spec(tmp_path, TRAINING.format(out=f"out-{name}", data=tiny_dataset)), root=tmp_path)
        summary = run_study(study, executor, threads=1, say=lambda line: None)
        assert [entry["status"] for entry in summary["runs"]] == ["done", "done"], summary
        results[name] = (study, summary)
    for run in ("within-s0", "within-s1"):
        cards = [json.loads((tmp_path / f"out-{name}" / run / "model_card.json").read_text()) for name in results]
        summaries = [json.loads((tmp_path / f"out-{name}" / run / "results.json").read_text())["summary"]
                     for name in results]
        assert summaries[0] == summaries[1]  # every model's val and test accuracy and macro-F1
        assert cards[0]["files"] == cards[1]["files"]  # the exported models, byte for byte (sha256)
    seeds = [json.loads((tmp_path / "out-local" / run / "results.json").read_text())["training"]["seed"]
             for run in ("within-s0", "within-s1")]
    assert seeds == [0, 1]
    # The results table of docs/RESULTS.md's per-run form, from the run directories.
    table = (tmp_path / "out-ray" / "results.md").read_text()
    assert "| within-s0 (within s0, quick) |" in table and "| within-s1 (within s1, quick) |" in table
    # Rerun: nothing is trained again.
    study, _ = results["local"]
    again = run_study(study, LocalExecutor(2), threads=1, say=lambda line: None)
    assert [entry["status"] for entry in again["runs"]] == ["skipped", "skipped"]

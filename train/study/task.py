"""One run of a study: the command in a subprocess, its log, and the marker that says it finished.

A run is complete when its directory holds ``study-run.json`` with the run's key (written
atomically by the study after the command exited 0 and its artefact exists) and the artefact whose
sha256 the marker records. The command's own files are written as the command writes them
(train.distill: every file atomically, the card last); the marker is the study's commit point, so a
run killed at any moment is redone on the next start, and a finished one never is.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from stream.common.atomic import atomic_write_bytes, atomic_write_json

MARKER = "study-run.json"
LOG = "log.txt"
# What the training stack reads for its thread pools: TensorFlow's two pools (train.distill has no
# option of its own), OpenMP (oneDNN), OpenBLAS / MKL (numpy, scipy). N runs sharing the cores each
# get cores // N, so they do not oversubscribe them.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                    "TF_NUM_INTEROP_THREADS")
LOG_TAIL_LINES = 15
STOP_GRACE_S = 15.0  # after SIGINT (train.distill stops cleanly, exit 130) before SIGKILL


@dataclasses.dataclass(frozen=True)
class Task:
    """Everything an executor needs for one run (plain data: it travels to Ray workers)."""

    name: str
    module: str
    arguments: tuple[str, ...]  # with {run_dir} for the directory where it runs
    key: str
    artefact: str
    stdout: str | None
    root: str  # working directory of the command
    directory: str  # the run directory on the machine that started the study
    threads: int
    gpus: float
    data: str | None  # data set directory
    data_hash: str | None

    def argv(self, directory: Path) -> list[str]:
        return [sys.executable, "-m", self.module,
                *(part.replace("{run_dir}", str(directory)) for part in self.arguments)]


def thread_environment(threads: int) -> dict[str, str]:
    return {name: str(threads) for name in THREAD_VARIABLES}


class Processes:
    """The commands running now, so that an interrupted study stops them (and starts no more)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen] = set()
        self.stopping = False

    def add(self, process: subprocess.Popen) -> None:
        with self._lock:
            self._running.add(process)

    def discard(self, process: subprocess.Popen) -> None:
        with self._lock:
            self._running.discard(process)

    def stop_all(self, grace_s: float = STOP_GRACE_S) -> None:
        """Every running command stopped (``stop``); no new one starts."""
        self.stopping = True
        with self._lock:
            running = list(self._running)
        stop(running, grace_s)


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)  # its own session: the group id is its pid
    except ProcessLookupError:
        pass


def stop(processes: list[subprocess.Popen], grace_s: float = STOP_GRACE_S) -> None:
    """SIGINT to each command's process group; SIGKILL to those still there after the grace period,
    or at once on a second Ctrl-C. A command that does not stop on SIGINT (one that ignores it, or a
    multiprocessing pool stuck in its own shutdown) must not hold the study."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        _signal_group(process, signal.SIGINT)
    deadline = time.monotonic() + grace_s
    try:
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
    except BaseException:
        for process in running:
            _signal_group(process, signal.SIGKILL)
        raise


def is_complete(directory: Path, key: str, artefact: str) -> bool:
    marker = read_marker(directory)
    if marker is None or marker.get("key") != key:
        return False
    path = directory / artefact
    if not path.is_file():
        return False
    from train.study.keys import file_sha256

    return file_sha256(path) == marker.get("artefact_sha256")


def read_marker(directory: Path) -> dict | None:
    try:
        return json.loads((Path(directory) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_bytes()[-20000:].decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def execute(task: Task, directory: Path, processes: Processes | None = None) -> dict:
    """Run the command into ``directory``; a result dict (status done / failed / interrupted)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).unlink(missing_ok=True)  # whatever was there is not a finished run of this key
    log_path = directory / LOG
    argv = task.argv(directory)
    environment = {**os.environ, **thread_environment(task.threads), "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    result = {"name": task.name, "key": task.key, "host": socket.gethostname(), "log": str(log_path),
              "command": " ".join(["python", *argv[1:]])}
    if processes is not None and processes.stopping:
        return {**result, "status": "not started", "returncode": None, "seconds": 0.0}
    captured = None
    with open(log_path, "wb") as log:
        log.write(f"# {result['command']}\n# threads {task.threads}, cwd {task.root}, host {result['host']}\n".encode())
        log.flush()
        if task.stdout:
            captured = open(directory / f".{task.stdout}.partial", "wb")
        process = subprocess.Popen(argv, cwd=task.root, env=environment, stdin=subprocess.DEVNULL,
                                   stdout=captured or log, stderr=log, start_new_session=True)
        if processes is not None:
            processes.add(process)
        try:
            returncode = process.wait()
        except BaseException:  # KeyboardInterrupt in the main thread, or a Ray task cancelled
            stop([process])
            raise
        finally:
            if processes is not None:
                processes.discard(process)
            if captured is not None:
                captured.close()
    if captured is not None:
        partial = directory / f".{task.stdout}.partial"
        if returncode == 0:
            os.replace(partial, directory / task.stdout)
        else:
            partial.unlink(missing_ok=True)
    seconds = round(time.monotonic() - started, 1)
    if returncode == 0 and (directory / task.artefact).is_file():
        return {**result, "status": "done", "returncode": 0, "seconds": seconds}
    interrupted = returncode in (130, -signal.SIGINT, -signal.SIGKILL) and processes is not None and processes.stopping
    reason = (f"exited 0 but wrote no {task.artefact}" if returncode == 0 else f"exit status {returncode}")
    return {**result, "status": "interrupted" if interrupted else "failed", "returncode": returncode,
            "seconds": seconds, "reason": reason, "log_tail": _tail(log_path)}


def write_marker(directory: Path, task: Task, result: dict, executor: str) -> None:
    """The commit point of a finished run (after its files are in ``directory``)."""
    from train.study.keys import file_sha256

    atomic_write_json(Path(directory) / MARKER, {
        "key": task.key, "name": task.name, "command": result["command"], "artefact": task.artefact,
        "artefact_sha256": file_sha256(Path(directory) / task.artefact), "data": task.data,
        "data_hash": task.data_hash, "threads": task.threads, "seconds": result["seconds"], "host": result["host"],
        "executor": executor, "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })


# Returned from a Ray worker without shared storage: the whole run directory (a train.distill run is
# 1.3-2.5 MB: models, card, results, report, plots, log). Larger is refused, not truncated.
RETURN_LIMIT_BYTES = 256 * 1024 * 1024


def execute_elsewhere(task: Task, shared: bool) -> dict:
    """What a Ray worker does: check the checkout and the data set are the ones the study saw, run
    the command, and (without shared storage) return the run directory's files."""
    from train.study.keys import DataSetMissing, dataset_hash

    base = {"name": task.name, "key": task.key, "host": socket.gethostname(), "log": None,
            "command": " ".join(["python -m", task.module, *task.arguments]), "seconds": 0.0, "returncode": None}
    if not Path(task.root).is_dir():
        return {**base, "status": "failed", "reason": f"{task.root}: no such directory on {base['host']}; every "
                                                       "node needs the project checked out at the same path"}
    if task.data is not None:
        try:
            found = dataset_hash(Path(task.data))
        except DataSetMissing as error:
            return {**base, "status": "failed", "reason": f"on {base['host']}: {error}"}
        if found != task.data_hash:
            return {**base, "status": "failed", "reason": f"on {base['host']}: {task.data} is not the data set the "
                                                           "study hashed (copy the same one, or use shared storage)"}
    if shared:
        return execute(task, Path(task.directory))
    scratch = Path(tempfile.mkdtemp(prefix=f"study-{task.name}-"))
    try:
        result = execute(task, scratch / task.name)
        files, total = {}, 0
        for path in sorted((scratch / task.name).rglob("*")):
            if path.is_file():
                total += path.stat().st_size
                if total > RETURN_LIMIT_BYTES:
                    return {**result, "status": "failed", "files": None,
                            "reason": f"the run directory is over {RETURN_LIMIT_BYTES >> 20} MiB: run with shared "
                                      "storage (--ray-shared) instead of returning it"}
                files[str(path.relative_to(scratch / task.name))] = path.read_bytes()
        result["files"] = files
        result["log_tail"] = result.get("log_tail")
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def receive_files(directory: Path, files: dict[str, bytes]) -> None:
    """A returned run directory written into place, each file atomically."""
    directory = Path(directory)
    for relative, data in files.items():
        target = (directory / relative).resolve()
        if directory.resolve() not in target.parents:
            raise ValueError(f"{relative}: outside the run directory")
        atomic_write_bytes(target, data)

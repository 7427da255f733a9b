"""Where a study's runs execute: local processes (the default: nothing to start) or Ray tasks.

Both take a batch of ``task.Task`` and call ``on_result(task, result)`` as each run ends, in the
order they end; the study writes the markers and the summary. Neither schedules by itself beyond
that: local runs are a thread pool of N subprocesses, Ray runs are Ray tasks with a CPU (and GPU)
request that Ray places on the cluster's nodes.
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Callable
from pathlib import Path

from train.study.task import Processes, Task, execute, execute_elsewhere, receive_files

Callback = Callable[[Task, dict], None]


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_run(workers: int, cores: int | None = None) -> int:
    """N runs sharing the cores: each gets cores // N threads (at least one)."""
    return max(1, (cores or available_cores()) // max(1, workers))


class LocalExecutor:
    """Up to ``workers`` runs at a time, each a subprocess of this machine."""

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"--workers {workers}: at least 1")
        self.workers = workers
        self.processes = Processes()

    def run(self, tasks: list[Task], on_result: Callback) -> None:
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="study-run")
        futures = {pool.submit(execute, task, Path(task.directory), self.processes): task for task in tasks}
        reported = set()
        try:
            for future in concurrent.futures.as_completed(futures):
                reported.add(future)
                on_result(futures[future], future.result())
        except BaseException:
            # Ctrl-C / SIGTERM: no new run starts, the running ones get SIGINT (then SIGKILL), and every
            # result not yet reported still is (a run that finished meanwhile gets its marker).
            self.processes.stop_all()
            pool.shutdown(wait=True, cancel_futures=True)
            for future, task in futures.items():
                if future not in reported and future.done() and not future.cancelled() and future.exception() is None:
                    on_result(task, future.result())
            raise
        pool.shutdown(wait=True)


class RayExecutor:
    """Each run a Ray task requesting its threads as CPUs (and the group's GPUs). ``address``: a
    cluster (``auto``, ``HOST:6379``, ``ray://HOST:10001``) or None for the Ray already initialised
    in this process (a test's ``ray.init(num_cpus=2)``); ``local`` starts one here.
    ``shared``: the run directories are on storage every node sees (each worker writes in place);
    otherwise each worker runs in a scratch directory and returns its files, which are written here."""

    name = "ray"

    def __init__(self, address: str | None = None, shared: bool = False, workers: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ImportError("--ray needs Ray: pip install 'signstream[cluster]' (or pip install ray)") from None
        self.ray = ray
        self.shared = shared
        self.workers = workers
        if not ray.is_initialized():
            if address is None:
                raise ValueError("no Ray address and Ray is not initialised: give --ray ADDRESS (or local)")
            ray.init(address=None if address == "local" else address, include_dashboard=False,
                     log_to_driver=False)
        self._remote = ray.remote(execute_elsewhere)

    def check(self, threads: int, gpus: float) -> None:
        """Refuse a request no node can meet (Ray would wait for such a task for ever)."""
        nodes = [node["Resources"] for node in self.ray.nodes() if node.get("Alive")]
        cpus = max((node.get("CPU", 0) for node in nodes), default=0)
        if threads > cpus:
            raise ValueError(f"--threads-per-run {threads}: the largest Ray node has {cpus:g} CPUs; ask for at most that")
        most_gpus = max((node.get("GPU", 0) for node in nodes), default=0)
        if gpus > most_gpus:
            raise ValueError(f"a group asks for {gpus:g} GPUs per run; the largest Ray node has {most_gpus:g}")

    def run(self, tasks: list[Task], on_result: Callback) -> None:
        ray = self.ray
        pending: dict = {}
        queue = list(tasks)
        limit = self.workers or len(tasks)
        try:
            while queue or pending:
                while queue and len(pending) < limit:
                    task = queue.pop(0)
                    reference = self._remote.options(num_cpus=task.threads, num_gpus=task.gpus,
                                                     name=f"study:{task.name}").remote(task, self.shared)
                    pending[reference] = task
                done, _ = ray.wait(list(pending), num_returns=1)
                for reference in done:
                    task = pending.pop(reference)
                    try:
                        result = ray.get(reference)
                    except Exception as error:  # the worker died, the task raised: a failed run, not a failed study
                        result = {"name": task.name, "key": task.key, "status": "failed", "returncode": None,
                                  "seconds": 0.0, "log": None, "command": f"python -m {task.module}",
                                  "reason": f"Ray task failed: {type(error).__name__}: {str(error)[:2000]}"}
                    files = result.pop("files", None)
                    if files is not None:
                        receive_files(Path(task.directory), files)
                        result["log"] = str(Path(task.directory) / "log.txt")
                    on_result(task, result)
        except BaseException:
            for reference in pending:
                ray.cancel(reference)  # KeyboardInterrupt in the task: it stops its command, then ends
            raise

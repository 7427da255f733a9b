"""Shared test conventions (pyzmq's tests/conftest.py is the model).

- ``free_tcp_port()`` / ``free_endpoint()``: random loopback ports, never fixed ones.
- ``receive_multipart(socket, timeout_s)``: a receive that fails instead of hanging.
- ``processes`` fixture: starts real subprocesses in their own process group and kills every one
  at teardown, even when the test fails: no orphans.
- ``zmq_context`` fixture: a context with LINGER 0, destroyed at teardown.
- ``@pytest.mark.slow``: skipped unless ``--run-slow`` (``make test-slow``; CI runs it).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    # Every test and every daemon it starts shares one fresh design cache (stream.dsp.design_cache),
    # never the user's ~/.cache: the first Preprocessor designs with scipy, the rest read the files.
    if "SIGNSTREAM_CACHE_DIR" not in os.environ:
        import tempfile

        config.signstream_cache_dir = tempfile.mkdtemp(prefix="signstream-test-cache-")
        os.environ["SIGNSTREAM_CACHE_DIR"] = config.signstream_cache_dir


def pytest_unconfigure(config):
    created = getattr(config, "signstream_cache_dir", None)
    if created:
        import shutil

        shutil.rmtree(created, ignore_errors=True)
        os.environ.pop("SIGNSTREAM_CACHE_DIR", None)


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with --run-slow (make test-slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


def free_tcp_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_endpoint() -> str:
    return f"tcp://127.0.0.1:{free_tcp_port()}"


def receive_multipart(zmq_socket, timeout_s: float = 5.0) -> list[bytes]:
    """Receive one multipart message or fail the test after ``timeout_s``."""
    import zmq

    if not zmq_socket.poll(int(timeout_s * 1000), zmq.POLLIN):
        pytest.fail(f"no message within {timeout_s} s")
    return zmq_socket.recv_multipart()


def wait_until(predicate, timeout_s: float = 5.0, interval_s: float = 0.02, message: str = "condition"):
    """Poll ``predicate`` until true, or fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    pytest.fail(f"{message} not met within {timeout_s} s")


class ProcessManager:
    """Starts subprocesses in new sessions and guarantees they are gone at teardown."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []

    def start(self, arguments: list[str], **kwargs) -> subprocess.Popen:
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **kwargs.pop("env", {})}
        process = subprocess.Popen(
            arguments,
            start_new_session=True,
            env=environment,
            stdout=kwargs.pop("stdout", subprocess.PIPE),
            stderr=kwargs.pop("stderr", subprocess.PIPE),
            **kwargs,
        )
        self.started.append(process)
        return process

    def start_python(self, module_arguments: list[str], **kwargs) -> subprocess.Popen:
        return self.start([sys.executable, *module_arguments], **kwargs)

    def stop_all(self, grace_s: float = 3.0) -> None:
        for process in self.started:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace_s
        for process in self.started:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            process.wait(timeout=5)
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def processes():
    manager = ProcessManager()
    try:
        yield manager
    finally:
        manager.stop_all()


@pytest.fixture
def zmq_context():
    import zmq

    context = zmq.Context()
    context.setsockopt(zmq.LINGER, 0)
    try:
        yield context
    finally:
        context.destroy(linger=0)


@pytest.fixture(scope="session")
def real_samples():
    """The lis-myo samples of ../shared/data (tests/real_data.py), read once per run; skips when absent."""
    from real_data import LIS_MYO_ARCHIVE

    if not LIS_MYO_ARCHIVE.is_file():
        pytest.skip(f"real data absent: {LIS_MYO_ARCHIVE} not found")
    from train.datasets.lis_myo import read_lis_myo

    return read_lis_myo(LIS_MYO_ARCHIVE)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """A tiny synthetic data set (2 signers x 3 repetitions, no sessions) for the train.study tests."""
    from train.synth.build import generate_dataset

    directory = tmp_path_factory.mktemp("study-data") / "tiny"
    generate_dataset(directory, signers=2, repetitions=3, seed=5, sessions=0, workers=1, progress=False)
    return directory

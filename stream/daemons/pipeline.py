"""stream-pipeline: stream-acquire, stream-infer and stream-sink in one process, for small devices.

The same three daemons (the same setup functions, the same skeleton, the same config), each on
its own thread, with one ZeroMQ context between them: frames and predictions go from thread to
thread over ``inproc://`` (no TCP, no copies through the kernel, one Python interpreter and one set
of libraries in memory instead of three). Every public endpoint is bound as usual, so subscribers,
stream-record and the monitor see exactly what the separate daemons publish, status messages
included (one per daemon, all with this process's pid).

When to use which (docs/PERFORMANCE.md): the separate daemons are the default for isolation (a
crash, a model switch or a restart touches one of them; systemd restarts each on its own); the
single process is for a Pi Zero 2 W or a Pi 3 with 512 MB-1 GB, where the memory of three
interpreters and the CPU of the TCP hops matter more. SIGTERM/SIGINT stop all three (acquisition
first is not needed: each drains what it has); SIGHUP reloads stream-infer's model as it does alone.
If one of them cannot start, the others are stopped and the process exits 1 naming the problem.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time

import zmq

from stream.config.cli import build_parser, load_config_or_exit
from stream.daemons.skeleton import CurveKeyError, Daemon, DaemonError, exit_now

FRAMES_INPROC = "inproc://signstream-frames"
PREDICTIONS_INPROC = "inproc://signstream-predictions"
START_TIMEOUT_S = 120.0  # stream-infer's start: the model loaded and warmed up, numba's cache read
DRAIN_S = 1.0  # after the source ends: inproc hands everything over within milliseconds

log = logging.getLogger("stream-pipeline")


class _Thread(threading.Thread):
    """One daemon's loop (run_daemon's, on a thread): set up, run until stopped, close."""

    def __init__(self, daemon: Daemon, setup):
        super().__init__(name=daemon.name, daemon=True)
        self.daemon_object = daemon
        self.setup = setup
        self.ready = threading.Event()  # set up (subscribed and bound), or failed
        self.error: str | None = None

    def run(self) -> None:
        daemon = self.daemon_object
        try:
            tick = self.setup(daemon)
            self.ready.set()
            daemon.run(tick)
        except (zmq.ZMQError, CurveKeyError, DaemonError) as error:
            self.error = str(error)
            daemon.log.error("cannot run: %s", error)
        except Exception as error:  # a bug: the other daemons must not go on as if nothing happened
            self.error = f"{type(error).__name__}: {error}"
            daemon.log.exception("stopped by an error")
        finally:
            self.ready.set()
            daemon.stop_requested = True
            daemon.close()


def build_threads(config, context: zmq.Context, config_path=None, max_frames: int = 0) -> list[_Thread]:
    """The three daemons on one context, in start order: sink, infer (subscribers first), acquire."""
    from stream.daemons.acquire import acquire, open_source
    from stream.daemons.infer import setup_infer
    from stream.daemons.sink import setup_sink

    def setup_acquire(daemon: Daemon):
        source = open_source(config)
        daemon.on_close(getattr(source, "close", lambda: None))
        if hasattr(source, "request_stop"):
            daemon.on_stop_request(source.request_stop)
        acquire(daemon, source, max_frames, also_bind=(FRAMES_INPROC,))

    return [
        _Thread(Daemon("stream-sink", config, context), lambda daemon: setup_sink(daemon, PREDICTIONS_INPROC)),
        _Thread(Daemon("stream-infer", config, context),
                lambda daemon: setup_infer(daemon, config_path, FRAMES_INPROC, (PREDICTIONS_INPROC,))),
        _Thread(Daemon("stream-acquire", config, context), setup_acquire),
    ]


def run_pipeline(config, config_path=None, max_frames: int = 0) -> int:
    context = zmq.Context()
    context.setsockopt(zmq.LINGER, 0)
    threads = build_threads(config, context, config_path, max_frames)
    daemons = [thread.daemon_object for thread in threads]

    signalled = threading.Event()

    def request_stop(signal_number, _frame):
        if signal_number is not None:
            signalled.set()
        for daemon in daemons:  # only flags and the sources' own stop hooks, as a daemon's handler does
            daemon.stop_requested = True
            for hook in daemon._stop_hooks:
                hook()

    def request_reload(signal_number, _frame):
        for daemon in daemons:
            if daemon.name == "stream-infer":
                daemon.reload_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGHUP, request_reload)
    status = 0
    try:
        for thread in threads:
            thread.start()
            if thread.daemon_object.name != "stream-acquire":
                # Subscribers first: nothing acquisition publishes is sent before they listen.
                thread.ready.wait(START_TIMEOUT_S)
                if thread.error is not None or not thread.ready.is_set():
                    thread.error = thread.error or f"not running after {START_TIMEOUT_S:.0f} s"
                    break
        while all(thread.is_alive() for thread in threads):
            threads[-1].join(0.1)
        if (threads[-1].ident is not None and not threads[-1].is_alive() and threads[-1].error is None
                and not signalled.is_set()):
            # The source ended (a replay without loop): let infer and sink finish what they hold.
            time.sleep(DRAIN_S)
    finally:
        request_stop(None, None)
        for thread in threads:
            if thread.ident is not None:
                thread.join(10.0)
        errors = [f"{thread.daemon_object.name}: {thread.error}" for thread in threads if thread.error]
        if errors:
            print(f"stream-pipeline: {'; '.join(errors)}", file=sys.stderr)
            status = 1
        context.term()
    return status


def main(argv=None) -> int:
    parser = build_parser("stream-pipeline", "signstream acquisition, inference and events in one process")
    parser.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0: never)")
    arguments = parser.parse_args(argv)
    config = load_config_or_exit(arguments)
    status = run_pipeline(config, arguments.config, arguments.max_frames)
    if argv is None:
        exit_now(status)  # as the daemons do: no slow interpreter finalisation after a clean close
    return status


if __name__ == "__main__":
    raise SystemExit(main())

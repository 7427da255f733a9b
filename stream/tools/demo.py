"""`make demo`: the live pipeline on the simulated signer, signs performed beside signs recognised.

Starts stream-sink, stream-infer and stream-acquire (source: synthetic) as real processes on free
loopback ports, listens to the ground truth the simulated signer publishes (``truth``) and to the
sign events, prints one line per sign, and after ``--duration`` seconds stops every process
(SIGTERM, then SIGKILL for anything still there after a few seconds) and prints a summary.
Exit status 0 when the pipeline ran; 1 when a daemon could not start or died.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket as host_socket
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import zmq

from stream.wire.protocol import TOPIC_EVENT, TOPIC_STATUS, TOPIC_TRUTH, ProtocolError, decode_map_message

MATCH_GRACE_S = 1.5  # how long after a performed sign ends its event may still arrive


def free_port() -> int:
    with host_socket.socket(host_socket.AF_INET, host_socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Fraction):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def config_to_toml(table: dict, prefix: str = "") -> str:
    """A config dict (``stream.config.to_dict``) back to TOML: scalars first, then sub-tables."""
    lines, tables = [], []
    for key, value in table.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    text = "\n".join(lines) + ("\n" if lines else "")
    for key, value in tables:
        name = f"{prefix}{key}"
        text += f"\n[{name}]\n" + config_to_toml(value, f"{name}.")
    return text


def write_demo_config(base_config, directory: Path, overrides: dict | None = None) -> Path:
    """The user's config with fresh loopback endpoints, the synthetic source and absolute paths
    (``overrides``: section -> {key: value} applied last)."""
    from stream.config import to_dict

    table = to_dict(base_config)
    table.pop("base_dir", None)
    table["endpoints"].update(frames=f"tcp://127.0.0.1:{free_port()}",
                              predictions=f"tcp://127.0.0.1:{free_port()}",
                              events=f"tcp://127.0.0.1:{free_port()}")
    table["monitor"]["status_endpoint"] = f"tcp://127.0.0.1:{free_port()}"
    table["acquire"]["source"] = "synthetic"
    table["model"]["card"] = str(base_config.resolve_path(base_config.model.card))
    if base_config.sink.jsonl_log:
        table["sink"]["jsonl_log"] = str(base_config.resolve_path(base_config.sink.jsonl_log))
    for section, values in (overrides or {}).items():
        table[section].update(values)
    path = directory / "demo.toml"
    path.write_text(config_to_toml(table))
    return path


class SideBySide:
    """Pairs performed signs (truth) with recognised ones (events) by time, and prints them."""

    def __init__(self, out=sys.stdout, truth_available: bool = True):
        self.out = out
        # Through the Trigno protocol no ground truth arrives: every event is shown as recognised only.
        self.truth_available = truth_available
        self.truths: list[dict] = []
        self.events: list[dict] = []
        self.performed = self.correct = self.wrong = self.missed = self.extra = 0
        print(f"{'time':>8}  {'performed':<16} {'recognised':<16} {'confidence':>10} {'after sign end':>15}", file=out)

    def add_truth(self, truth: dict) -> None:
        self.truths.append(truth)

    def add_event(self, event: dict) -> None:
        event["received_wall"] = time.time()
        self.events.append(event)

    def flush(self, now_sample_s: float | None, final: bool = False) -> None:
        """Print every performed sign whose grace period is over, with its event if one came."""
        while self.truths and (final or (now_sample_s is not None
                                         and now_sample_s > self.truths[0]["end_time_s"] + MATCH_GRACE_S)):
            truth = self.truths.pop(0)
            # Events that ended before this sign started are extras (nothing was performed then).
            while self.events and 0.5 * (self.events[0]["start_time_s"] + self.events[0]["end_time_s"]) < truth["start_time_s"]:
                self._print_extra(self.events.pop(0))
            match = None
            for event in self.events:
                middle = 0.5 * (event["start_time_s"] + event["end_time_s"])
                if truth["start_time_s"] <= middle <= truth["end_time_s"]:
                    match = event
                    break
            self.performed += 1
            if match is None:
                self.missed += 1
                self._row(truth["start_time_s"], truth["label"], "-", "", "")
                continue
            self.events.remove(match)
            self.correct += match["label"] == truth["label"]
            self.wrong += match["label"] != truth["label"]
            mark = "" if match["label"] == truth["label"] else "  (wrong)"
            self._row(truth["start_time_s"], truth["label"], match["label"] + mark, f"{match['confidence']:.2f}",
                      f"{(match['t_wall'] - (match['end_wall'] - match['end_time_s'] + truth['end_time_s'])) * 1000:.0f} ms")
        if final:
            for event in self.events:
                self._print_extra(event)
            self.events.clear()

    def _print_extra(self, event: dict) -> None:
        self.extra += 1
        performed = "(rest)" if self.truth_available else "?"
        self._row(event["start_time_s"], performed, event["label"], f"{event['confidence']:.2f}", "")

    def _row(self, time_s: float, performed: str, recognised: str, confidence: str, latency: str) -> None:
        print(f"{time_s:7.1f}s  {performed:<16} {recognised:<16} {confidence:>10} {latency:>15}", file=self.out, flush=True)

    def summary(self) -> str:
        if not self.truth_available:
            return f"recognised {self.extra} signs (the Trigno protocol carries no ground truth to compare with)"
        return (f"performed {self.performed} signs: {self.correct} recognised, {self.wrong} wrong, {self.missed} missed; "
                f"{self.extra} events during rest")


def stop_processes(processes: dict[str, subprocess.Popen], grace_s: float = 3.0,
                   last: tuple[str, ...] = ("stream-trigno-emulator",)) -> dict[str, int]:
    """SIGTERM everything, wait, SIGKILL what is left; returns each exit status. The processes named
    in ``last`` are stopped after the others: the emulated base station outlives the pipeline, as a
    real one does, so stream-acquire's STOP finds it there."""
    first = {name: process for name, process in processes.items() if name not in last}
    then = {name: process for name, process in processes.items() if name in last}
    codes = {**_stop_together(first, grace_s), **_stop_together(then, grace_s)}
    return {name: codes[name] for name in processes}


def _stop_together(processes: dict[str, subprocess.Popen], grace_s: float) -> dict[str, int]:
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for name, process in processes.items():
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop within {grace_s} s: killing it", file=sys.stderr)
            process.kill()
            process.wait(timeout=5)
    return {name: process.returncode for name, process in processes.items()}


def start_trigno_emulator(config_path: str | None, directory: Path) -> tuple[subprocess.Popen, dict | None]:
    """stream-trigno-emulator on free loopback ports, streaming the synthetic signer; returns the
    process and the ports it printed (None if it printed none within 60 s)."""
    import json
    import select

    log = open(directory / "stream-trigno-emulator.log", "wb")
    command = [sys.executable, "-m", "stream.trigno.emulator", "--source", "synthetic", "--ports", "0,0,0,0,0"]
    if config_path:
        command += ["--config", str(config_path)]
    emulator = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    log.close()  # the child holds its own descriptor
    ready, _, _ = select.select([emulator.stdout], [], [], 60.0)
    line = emulator.stdout.readline() if ready else b""
    try:
        return emulator, json.loads(line)["listening"]
    except (ValueError, KeyError, TypeError):
        return emulator, None


def start_monitor(config_file: Path, directory: Path, environment: dict) -> tuple[subprocess.Popen, str | None]:
    """stream-monitor beside the demo; returns the process and the URL it printed (None if it printed
    none within 60 s: it failed, its log says why)."""
    import select

    log = open(directory / "stream-monitor.log", "wb")
    monitor = subprocess.Popen([sys.executable, "-m", "stream.daemons.monitor", "--config", str(config_file)],
                               stdout=subprocess.PIPE, stderr=log, env=environment, start_new_session=True)
    log.close()  # the child holds its own descriptor
    ready, _, _ = select.select([monitor.stdout], [], [], 60.0)
    line = monitor.stdout.readline().decode(errors="replace") if ready else ""
    return monitor, line.removeprefix("stream-monitor: open ").strip() or None


def run_demo(config_path: str | None, duration_s: float, out=sys.stdout, source: str = "synthetic",
             monitor: bool = False) -> int:
    from stream.config import ConfigError, load_config

    if monitor:
        try:
            import aiohttp  # noqa: F401  (stream-monitor's optional extra)
        except ImportError:
            from stream.daemons.monitor import INSTALL_HINT

            print(f"demo --monitor: {INSTALL_HINT}", file=sys.stderr)
            return 1

    try:
        base = load_config(config_path)
    except ConfigError as error:
        print(str(error), file=sys.stderr)
        return 2
    card = base.resolve_path(base.model.card)
    if not card.exists():
        print(f"demo: no model card at {card}; train one with python -m train.distill (see README) or set "
              "[model] card", file=sys.stderr)
        return 1
    stop = {"requested": False}

    def request_stop(_signal, _frame):
        stop["requested"] = True

    previous_handlers = {number: signal.signal(number, request_stop) for number in (signal.SIGINT, signal.SIGTERM)}
    context = zmq.Context()
    context.setsockopt(zmq.LINGER, 0)
    processes: dict[str, subprocess.Popen] = {}
    with tempfile.TemporaryDirectory(prefix="signstream-demo-") as scratch:
        directory = Path(scratch)
        overrides = None
        if source == "trigno":
            # The signer reaches stream-acquire through the Trigno SDK protocol, as from a base station.
            from stream.config import to_dict

            emulator, ports = start_trigno_emulator(config_path, directory)
            processes["stream-trigno-emulator"] = emulator
            if ports is None:
                stop_processes(processes)
                tail = (directory / "stream-trigno-emulator.log").read_text(errors="replace").strip().splitlines()[-8:]
                print("demo: stream-trigno-emulator did not start; its last log lines:", *tail, sep="\n  ", file=sys.stderr)
                context.term()
                for number, handler in previous_handlers.items():
                    signal.signal(number, handler)
                return 1
            trigno = {**to_dict(base.acquire.trigno), "host": "127.0.0.1", "command_port": ports["command"],
                      "emg_port": ports["emg"], "aux_port": ports["aux"]}
            overrides = {"acquire": {"source": "trigno", "trigno": trigno}}
        config = load_config(write_demo_config(base, directory, overrides))
        config_file = directory / "demo.toml"
        logs = {name: open(directory / f"{name}.log", "wb") for name in ("stream-sink", "stream-infer", "stream-acquire")}
        if source == "trigno":
            logs["stream-trigno-emulator"] = open(directory / "stream-trigno-emulator.log", "ab")
        environment = {**os.environ, "PYTHONUNBUFFERED": "1"}

        def start(name: str) -> None:
            module = "stream.daemons." + name.removeprefix("stream-")
            processes[name] = subprocess.Popen([sys.executable, "-m", module, "--config", str(config_file)],
                                               stdout=logs[name], stderr=subprocess.STDOUT, env=environment,
                                               start_new_session=True)

        def failed(name: str, why: str) -> int:
            codes = stop_processes(processes)
            for log in logs.values():
                log.close()
            tail = (directory / f"{name}.log").read_text(errors="replace").strip().splitlines()[-8:]
            print(f"demo: {name} {why} (exit statuses {codes}); its last log lines:", file=sys.stderr)
            for line in tail:
                print(f"  {line}", file=sys.stderr)
            return 1

        truth_socket = context.socket(zmq.SUB)
        events_socket = context.socket(zmq.SUB)
        status_socket = context.socket(zmq.SUB)
        try:
            truth_socket.setsockopt(zmq.SUBSCRIBE, TOPIC_TRUTH)
            truth_socket.connect(config.endpoints.frames)
            events_socket.setsockopt(zmq.SUBSCRIBE, TOPIC_EVENT)
            events_socket.connect(config.endpoints.events)
            status_socket.setsockopt(zmq.SUBSCRIBE, TOPIC_STATUS)
            status_socket.connect(config.endpoints.predictions)

            through = " -> Trigno emulator (SDK TCP protocol)" if source == "trigno" else ""
            print(f"signstream demo: simulated signer{through} -> stream-acquire -> stream-infer -> stream-sink, "
                  f"{duration_s:.0f} s (model {card.parent.name}/{card.name})", file=out, flush=True)
            start("stream-sink")
            start("stream-infer")
            if monitor:
                processes["stream-monitor"], url = start_monitor(config_file, directory, environment)
                logs["stream-monitor"] = open(directory / "stream-monitor.log", "ab")
                if url is None:
                    return failed("stream-monitor", "did not start")
                print(f"live monitor: open {url} in a browser", file=out, flush=True)
            # Start acquisition once stream-infer has loaded its model and subscribed.
            deadline = time.monotonic() + 60
            while not status_socket.poll(100, zmq.POLLIN):
                for name, process in processes.items():
                    if process.poll() is not None:
                        return failed(name, "exited during start-up")
                if time.monotonic() > deadline or stop["requested"]:
                    return failed("stream-infer", "did not report ready within 60 s")
            time.sleep(0.2)
            start("stream-acquire")
            table = SideBySide(out, truth_available=source != "trigno")
            poller = zmq.Poller()
            poller.register(truth_socket, zmq.POLLIN)
            poller.register(events_socket, zmq.POLLIN)
            started = time.monotonic()
            sample_clock_offset = None  # wall time - sample time, from the truth messages
            while not stop["requested"] and time.monotonic() - started < duration_s:
                ready = dict(poller.poll(100))
                for socket in (truth_socket, events_socket):
                    while socket in ready:
                        try:
                            parts = socket.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        try:
                            topic, message = decode_map_message(parts)
                        except ProtocolError as error:
                            print(f"demo: dropped a bad message: {error}", file=sys.stderr)
                            continue
                        if topic == TOPIC_TRUTH:
                            table.add_truth(message)
                            offset = message["t_wall"] - message["end_time_s"]
                            sample_clock_offset = min(offset, sample_clock_offset or offset)
                        else:
                            table.add_event(message)
                for name, process in processes.items():
                    if process.poll() is not None:
                        return failed(name, f"died with exit status {process.returncode}")
                table.flush(None if sample_clock_offset is None else time.time() - sample_clock_offset)
            codes = stop_processes(processes)
            table.flush(None, final=True)
            print(table.summary(), file=out)
            for log in logs.values():
                log.close()
            crashed = {name: code for name, code in codes.items() if code not in (0, -signal.SIGTERM)}
            if crashed:
                print(f"demo: daemons exited with {crashed}; logs were in {directory}", file=sys.stderr)
                return 1
            print("every process stopped cleanly", file=out)
            return 0
        finally:
            stop_processes(processes)
            for socket in (truth_socket, events_socket, status_socket):
                socket.close(linger=0)
            context.term()
            for log in logs.values():
                if not log.closed:
                    log.close()
            for number, handler in previous_handlers.items():
                signal.signal(number, handler)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.tools.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="TOML config (default: the shipped defaults)")
    parser.add_argument("--duration", type=float, default=40.0, help="seconds of live signing (default 40)")
    parser.add_argument("--source", choices=("synthetic", "trigno"), default="synthetic",
                        help="synthetic: the signer inside stream-acquire (signs performed shown beside signs "
                             "recognised); trigno: the signer behind stream-trigno-emulator, read through the "
                             "Trigno SDK protocol (recognised signs only: the protocol carries no ground truth)")
    parser.add_argument("--monitor", action="store_true",
                        help="also start stream-monitor, the live web page of the signals, segmentation, signs and "
                             "health ([monitor] host and port, 127.0.0.1:8080 by default), and print its URL")
    arguments = parser.parse_args(argv)
    return run_demo(arguments.config, arguments.duration, source=arguments.source, monitor=arguments.monitor)


if __name__ == "__main__":
    raise SystemExit(main())

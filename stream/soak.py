"""Soak run: the real daemons for N minutes on a replayed session at a high speed-up, with figures.

``python -m stream.soak --minutes 30 --speed 10`` generates a continuous session of the synthetic
signer (or replays ``--recording``), starts stream-sink, stream-infer, stream-record and
stream-acquire (replay, looping, ``--speed`` x real time) as separate processes on fresh loopback
ports, and for N minutes samples each daemon's RSS, open file descriptors and CPU time from /proc,
and collects every status, ground-truth and event message. At the end it stops them (acquire
first, so everything in flight drains) and checks:

- frames in/out: published by acquire, received and missed by infer, predictions and events through
  the sink, events at a subscriber, every drop counter;
- the recorder lost nothing: its file holds every frame published from the one it joined at, equal
  sample for sample to the replayed recording, except frames it filled as reported gaps;
- no growth: the least-squares slope of RSS (MB/hour) and open descriptors (per hour) of each
  daemon after a warm-up;
- events against ground truth: events inside an annotated sign (right label or not) and in rest.

It prints one JSON object on stdout and a human summary on stderr; exit status 1 when a check fails.
Linux only (/proc). Needs the training package for the generated session (train.synth).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgpack
import numpy as np
import zmq

from stream.config import DEFAULT_CONFIG_PATH, load_config
from stream.protocol import SequenceTracker, decode_event, decode_status, decode_truth

DAEMONS = ("sink", "infer", "record", "acquire")  # start order: consumers first, the source last
WARM_UP_FRACTION = 0.2  # resource slopes are fitted after this share of the run (imports, caches, JIT)
PAGE_TICKS = os.sysconf("SC_CLK_TCK")
JOIN_ALLOWANCE_S = 2.0  # frames a subscriber may miss before its connection is up (signal seconds / speed)
RSS_GROWTH_LIMIT_MB = 10.0  # after the warm-up; allocator noise is about 1-2 MB


def free_endpoint() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def write_session(path: Path, seed: int) -> Path:
    from stream.recording import write_recording
    from train.synth.generate import session_recording
    from train.synth.signer import make_signer

    return write_recording(path, session_recording(seed, make_signer(seed, 0), 0))


def write_config(work: Path, recording: Path, card: Path, speed: float, threshold: float | None) -> tuple[Path, dict]:
    endpoints = {name: free_endpoint() for name in ("frames", "predictions", "events")}
    text = ("[endpoints]\n" + "".join(f'{name} = "{value}"\n' for name, value in endpoints.items())
            + "heartbeat_interval_s = 1.0\n"
            + f'[model]\ncard = "{card}"\n'
            + f'[acquire]\nsource = "replay"\n[acquire.replay]\npath = "{recording}"\nspeed = {float(speed)}\nloop = true\n'
            + f'[record]\nout_dir = "{work / "recordings"}"\n'
            + "[logging]\nstatus_interval_s = 60.0\n"
            + (f"[sink]\nconfidence_threshold = {float(threshold)}\n" if threshold is not None else ""))
    path = work / "soak.toml"
    path.write_text(text)
    load_config(path)  # refuse a bad card path or speed now, with the config loader's message
    return path, endpoints


# ------------------------------------------------------------------------------ /proc sampling


def sample_process(pid: int) -> dict | None:
    """RSS (MB), open descriptors and CPU seconds of one process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            rss_kb = next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))
        descriptors = len(os.listdir(f"/proc/{pid}/fd"))
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        cpu_s = (int(fields[11]) + int(fields[12])) / PAGE_TICKS  # utime + stime
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return {"rss_mb": rss_kb / 1024, "fds": descriptors, "cpu_s": cpu_s}


def slope_per_hour(times_s: list[float], values: list[float]) -> float | None:
    """Least-squares slope after the warm-up, per hour (None with too few samples)."""
    if len(times_s) < 4:
        return None
    times, data = np.asarray(times_s), np.asarray(values, dtype=float)
    keep = times >= times[0] + WARM_UP_FRACTION * (times[-1] - times[0])
    if keep.sum() < 3 or np.ptp(times[keep]) == 0:
        return None
    return float(np.polyfit(times[keep], data[keep], 1)[0] * 3600)


def resources(samples: dict[str, list[tuple[float, dict]]], wall_s: float) -> dict:
    report = {}
    for name, series in samples.items():
        if not series:
            continue
        times = [time_s for time_s, _ in series]
        rss = [sample["rss_mb"] for _, sample in series]
        fds = [sample["fds"] for _, sample in series]
        cpu = series[-1][1]["cpu_s"] - series[0][1]["cpu_s"]
        span = times[-1] - times[0]
        warm = [time_s >= times[0] + WARM_UP_FRACTION * span for time_s in times]
        after = [value for value, keep in zip(fds, warm) if keep]
        rss_after = [value for value, keep in zip(rss, warm) if keep]
        report[name] = {
            "samples": len(series),
            "rss_mb_first": round(rss[0], 1), "rss_mb_last": round(rss[-1], 1), "rss_mb_max": round(max(rss), 1),
            "rss_mb_per_hour": _round(slope_per_hour(times, rss), 2),
            "rss_mb_growth_after_warm_up": round(rss_after[-1] - min(rss_after), 2) if rss_after else None,
            "fds_first": fds[0], "fds_last": fds[-1], "fds_max": max(fds),
            "fds_growth_after_warm_up": (after[-1] - min(after)) if after else None,
            "fds_per_hour": _round(slope_per_hour(times, fds), 2),
            "cpu_fraction_of_one_core": round(cpu / span, 4) if span > 0 else None,
        }
    return report


def _round(value, digits):
    return None if value is None else round(value, digits)


# ------------------------------------------------------------------------------ the recording check


def check_recording(directory: Path, source: Path, frames_published: int) -> dict:
    """Every frame published from the recorder's first one on is in its file, sample for sample equal
    to the replayed recording, except frames filled (NaN) as reported gaps."""
    import h5py

    from stream.recording import read_recording

    files = sorted(directory.glob("*.h5")) + sorted(directory.glob("*.partial"))
    if len(files) != 1:
        return {"files": [path.name for path in files], "ok": False, "why": "expected exactly one recording file"}
    replayed = read_recording(source).emg
    emg_per_frame = 15
    period = (replayed.shape[0] // emg_per_frame) * emg_per_frame  # replay drops a trailing partial frame
    with h5py.File(files[0], "r") as handle:
        group = next(iter(handle["recordings"].values()))
        first_index = int(group.attrs["emg_first_index"])
        complete = bool(group.attrs.get("complete", False))
        emg = group["emg"]
        rows = emg.shape[0]
        filled = sum(int(gap["emg_end"] - gap["emg_start"]) for gap in group["gaps"][:] if gap["sensor"] == -1)
        differing_rows = 0
        for start in range(0, rows, 200_000):
            block = emg[start:start + 200_000]
            indices = (first_index + start + np.arange(block.shape[0])) % period
            expected = replayed[indices]
            same = (block == expected) | (np.isnan(block) & np.isnan(expected))
            differing_rows += int((~same.all(axis=1)).sum())
    first_frame = first_index // emg_per_frame
    in_file = rows // emg_per_frame
    missing_at_end = frames_published - first_frame - in_file
    return {
        "file": files[0].name, "complete": complete, "first_frame": first_frame, "frames_in_file": in_file,
        "frames_published_since_first": frames_published - first_frame, "frames_missing": missing_at_end,
        "frames_filled_as_reported_gaps": filled // emg_per_frame,
        "frames_differing_from_source": -(-differing_rows // emg_per_frame),
        "ok": bool(complete and missing_at_end == 0 and differing_rows <= filled),
    }


# ------------------------------------------------------------------------------ ground truth


def score_events(truths: list[dict], events: list[dict]) -> dict:
    spans = [(truth["start_time_s"], truth["end_time_s"], truth["label"]) for truth in truths]
    inside = correct = in_rest = 0
    found: set[int] = set()
    last_truth_end = max((end for _, end, _ in spans), default=0.0)
    for event in events:
        if event["end_time_s"] > last_truth_end:
            continue  # past the last completed annotation: cannot be judged yet
        middle = 0.5 * (event["start_time_s"] + event["end_time_s"])
        hits = [number for number, (start, end, _) in enumerate(spans) if start <= middle <= end]
        if not hits:
            in_rest += 1
            continue
        inside += 1
        if event["label"] == spans[hits[0]][2]:
            correct += 1
            found.add(hits[0])
    judged = inside + in_rest
    return {"true_signs": len(spans), "events_judged": judged, "events_inside_a_sign": inside,
            "events_right_label": correct, "events_in_rest": in_rest,
            "signs_found_with_right_label": len(found),
            "recall": round(len(found) / len(spans), 4) if spans else None,
            "precision": round(correct / judged, 4) if judged else None}


# ------------------------------------------------------------------------------ the run


def start_daemon(name: str, config: Path, work: Path) -> subprocess.Popen:
    arguments = [sys.executable, "-m", f"stream.{name}", "--config", str(config)]
    if name == "record":
        arguments += ["--out", str(work / "recordings" / "soak.h5")]
    log = open(work / f"{name}.log", "ab")
    try:
        return subprocess.Popen(arguments, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    finally:
        log.close()


def wait_for(predicate, timeout_s: float, what: str, processes: dict, work: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name, process in processes.items():
            if process.poll() is not None:  # a daemon that cannot start says why in its last log line
                lines = (work / f"{name}.log").read_text(errors="replace").strip().splitlines() or ["(no output)"]
                raise RuntimeError(f"stream-{name} exited with status {process.returncode}: {lines[-1]}")
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} not within {timeout_s} s")


def run(arguments) -> dict:
    work = Path(arguments.work_dir or tempfile.mkdtemp(prefix="signstream-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    recording = Path(arguments.recording) if arguments.recording else write_session(work / "session.h5", arguments.seed)
    card = Path(arguments.card) if arguments.card else load_config(DEFAULT_CONFIG_PATH).resolve_path(
        load_config(DEFAULT_CONFIG_PATH).model.card)
    config, endpoints = write_config(work, recording.resolve(), card.resolve(), arguments.speed, arguments.sink_threshold)
    context = zmq.Context()
    context.setsockopt(zmq.LINGER, 0)
    listener = context.socket(zmq.SUB)
    for topic in (b"status", b"truth", b"event"):
        listener.setsockopt(zmq.SUBSCRIBE, topic)
    for endpoint in endpoints.values():
        listener.connect(endpoint)
    processes: dict[str, subprocess.Popen] = {}
    statuses: dict[str, dict] = {}
    truths, events = [], []
    event_tracker = SequenceTracker()
    samples: dict[str, list] = {name: [] for name in DAEMONS}
    bad_messages = 0

    def pump(timeout_ms: int) -> None:
        nonlocal bad_messages
        if not listener.poll(timeout_ms, zmq.POLLIN):
            return
        while True:
            try:
                parts = listener.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                if parts[0] == b"status":
                    status = decode_status(parts)
                    statuses[status["daemon"]] = status
                elif parts[0] == b"truth":
                    truths.append(decode_truth(parts))
                elif parts[0] == b"event":
                    event = decode_event(parts)
                    event_tracker.observe(event["session"], event["seq"])
                    events.append(event)
            except ValueError:
                bad_messages += 1

    try:
        for name in DAEMONS:
            if name == "acquire":
                wait_for(lambda: {"stream-infer", "stream-sink"} <= set(statuses) or pump(100), 120,
                         "stream-infer and stream-sink running", processes, work)
                wait_for(lambda: "listening" in (work / "record.log").read_text(), 60, "stream-record listening",
                         processes, work)
                time.sleep(1.0)  # subscriptions reach the publishers (ZeroMQ's slow joiner)
            processes[name] = start_daemon(name, config, work)
        wait_for(lambda: "stream-acquire" in statuses or pump(100), 60, "stream-acquire running", processes, work)
        started = time.monotonic()
        deadline = started + arguments.minutes * 60
        next_sample = started
        crashed = []
        while time.monotonic() < deadline:
            pump(100)
            now = time.monotonic()
            if now >= next_sample:
                next_sample = now + arguments.sample_interval_s
                for name, process in processes.items():
                    sample = sample_process(process.pid) if process.poll() is None else None
                    if sample is not None:
                        samples[name].append((now - started, sample))
                crashed = [name for name, process in processes.items() if process.poll() is not None]
                if crashed:
                    break
        wall_s = time.monotonic() - started
        exits = stop_all(processes, pump)
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        listener.close(linger=0)
        context.term()
    return summarise(arguments, work, recording, wall_s, statuses, truths, events, event_tracker, samples, exits,
                     crashed, bad_messages)


def stop_all(processes: dict[str, subprocess.Popen], pump) -> dict:
    """acquire first; the others once what it published has drained through them."""
    exits = {}
    for name in ("acquire", "record", "infer", "sink"):
        process = processes[name]
        began = time.monotonic()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        while process.poll() is None and time.monotonic() - began < 10:
            pump(50)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
        exits[name] = {"status": process.returncode, "seconds": round(time.monotonic() - began, 2)}
        if name == "acquire":
            drain_until = time.monotonic() + 3.0
            while time.monotonic() < drain_until:
                pump(50)
    return exits


def summarise(arguments, work, recording, wall_s, statuses, truths, events, event_tracker, samples, exits, crashed,
              bad_messages) -> dict:
    counters = {name: statuses.get(f"stream-{name}", {}).get("counters", {}) for name in ("acquire", "infer", "sink")}
    acquire, infer, sink = counters["acquire"], counters["infer"], counters["sink"]
    flow = {
        "frames_published": acquire.get("frames", 0), "frames_dropped_by_acquire": acquire.get("frames_dropped", 0),
        "frames_received_by_infer": infer.get("frames", 0), "frames_missed_by_infer": infer.get("frames_missed", 0),
        "frames_before_infer_joined": acquire.get("frames", 0) - infer.get("frames", 0) - infer.get("frames_missed", 0),
        "frame_gaps_seen_by_infer": infer.get("frame_gaps", 0), "bad_messages": {name: counters[name].get(
            "bad_messages", 0) for name in counters}, "handler_errors": {name: counters[name].get("handler_errors", 0)
                                                                          for name in counters},
        "predictions_published": infer.get("predictions", 0), "predictions_dropped": infer.get("predictions_dropped", 0),
        "predictions_received_by_sink": sink.get("predictions", 0), "predictions_missed_by_sink": sink.get(
            "predictions_missed", 0),
        "events_published": sink.get("events", 0), "events_dropped": sink.get("events_dropped", 0),
        "events_received_by_subscriber": len(events), "events_missed_by_subscriber": event_tracker.missed,
        "truth_messages": len(truths), "undecodable_messages_at_subscriber": bad_messages,
    }
    recorder = check_recording(work / "recordings", recording, flow["frames_published"])
    usage = resources(samples, wall_s)
    checks = {
        "no_daemon_crashed": not crashed and all(item["status"] == 0 for item in exits.values()),
        # Infer subscribes before acquire starts, but ZeroMQ connects within its reconnect interval of
        # the bind: frames before that are never seen (the slow joiner). After the first, none missed.
        "every_frame_after_infer_joined_reached_it": flow["frames_missed_by_infer"] == 0
        and flow["frames_before_infer_joined"] <= JOIN_ALLOWANCE_S * arguments.speed * 2000 / 27,
        "every_prediction_reached_the_sink": flow["predictions_received_by_sink"] == flow["predictions_published"],
        "every_event_reached_the_subscriber": flow["events_received_by_subscriber"] == flow["events_published"],
        "recorder_lost_nothing": recorder["ok"],
        "no_bad_messages_or_handler_errors": not any(flow["bad_messages"].values())
        and not any(flow["handler_errors"].values()),
        "no_descriptor_growth": all((item["fds_growth_after_warm_up"] or 0) <= 2 for item in usage.values()),
        "no_memory_growth": all((item["rss_mb_growth_after_warm_up"] or 0) <= RSS_GROWTH_LIMIT_MB
                                for item in usage.values()),
    }
    return {
        "command": f"python -m stream.soak --minutes {arguments.minutes} --speed {arguments.speed}",
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "host": os.uname().nodename,
        "cpus": os.cpu_count(), "work_dir": str(work), "wall_s": round(wall_s, 1),
        "replayed_s": round(flow["frames_published"] * 0.0135, 1), "speed": arguments.speed,
        "frames": flow, "recorder": recorder, "resources": usage, "events_vs_truth": score_events(truths, events),
        "exits": exits, "crashed": crashed, "checks": checks, "ok": all(checks.values()),
    }


def human_summary(result: dict) -> str:
    flow, recorder = result["frames"], result["recorder"]
    lines = [f"soak: {result['wall_s']} s wall, {result['replayed_s']} s of signal at {result['speed']}x -> "
             f"{'OK' if result['ok'] else 'FAILED'}",
             f"  frames: {flow['frames_published']} published, {flow['frames_received_by_infer']} at infer "
             f"({flow['frames_missed_by_infer']} missed), predictions {flow['predictions_published']} -> "
             f"{flow['predictions_received_by_sink']} at sink, events {flow['events_published']} -> "
             f"{flow['events_received_by_subscriber']} at subscriber",
             f"  recorder: {recorder.get('frames_in_file')} frames in {recorder.get('file')}, missing "
             f"{recorder.get('frames_missing')}, filled as gaps {recorder.get('frames_filled_as_reported_gaps')}, "
             f"differing from source {recorder.get('frames_differing_from_source')}"]
    for name, usage in result["resources"].items():
        lines.append(f"  {name:8s} RSS {usage['rss_mb_first']}->{usage['rss_mb_last']} MB "
                     f"({usage['rss_mb_per_hour']} MB/h), fds {usage['fds_first']}->{usage['fds_last']} "
                     f"({usage['fds_per_hour']}/h), CPU {usage['cpu_fraction_of_one_core']} of a core")
    truth = result["events_vs_truth"]
    lines.append(f"  events vs truth: {truth['true_signs']} signs, {truth['events_judged']} events judged, "
                 f"{truth['events_right_label']} right label, {truth['events_in_rest']} in rest, recall {truth['recall']}")
    lines += [f"  check {name}: {'ok' if passed else 'FAILED'}" for name, passed in result["checks"].items()]
    return "\n".join(lines)


def _exit_on_signal(signal_number, _frame) -> None:
    raise SystemExit(128 + signal_number)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, required=True, help="how long to run (wall clock)")
    parser.add_argument("--speed", type=float, default=10.0, help="replay speed-up (x real time)")
    parser.add_argument("--card", default=None, help="model card (default: the config's, models/student)")
    parser.add_argument("--recording", default=None, help="recording to replay (default: a generated session)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated session")
    parser.add_argument("--sink-threshold", type=float, default=None, help="override [sink] confidence_threshold")
    parser.add_argument("--sample-interval-s", type=float, default=2.0, help="resource sampling period")
    parser.add_argument("--work-dir", default=None, help="where logs and the recording go (default: a temp dir)")
    arguments = parser.parse_args(argv)
    if arguments.minutes <= 0 or arguments.speed <= 0:
        parser.error("--minutes and --speed must be > 0")
    # SIGTERM unwinds like Ctrl-C, so run()'s finally stops the daemons (they have their own sessions).
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        result = run(arguments)
    except (RuntimeError, OSError, ValueError) as error:
        print(f"stream.soak: {error}", file=sys.stderr)
        return 1
    print(human_summary(result), file=sys.stderr)
    print(json.dumps(result, indent=1))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

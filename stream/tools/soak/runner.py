"""The soak run itself: the daemons started in order on a replayed session, sampled and listened to for
N minutes, stopped, and the figures and checks summarised (``main`` is ``python -m stream.tools.soak``)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq

from stream.config import DEFAULT_CONFIG_PATH, load_config
from stream.tools.soak.processes import start_daemon, stop_all, wait_for, write_config, write_session
from stream.tools.soak.resources import resources, sample_process
from stream.tools.soak.scoring import check_recording, score_events
from stream.wire.protocol import SequenceTracker, decode_event, decode_status, decode_truth

DAEMONS = ("sink", "infer", "record", "acquire")  # start order: consumers first, the source last
JOIN_ALLOWANCE_S = 2.0  # frames a subscriber may miss before its connection is up (signal seconds / speed)
RSS_GROWTH_LIMIT_MB = 10.0  # after the warm-up; allocator noise is about 1-2 MB


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
        "command": f"python -m stream.tools.soak --minutes {arguments.minutes} --speed {arguments.speed}",
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
    description = sys.modules[__package__].__doc__.split("\n\n")[0]  # the package's docstring, as --help's text
    parser = argparse.ArgumentParser(prog="python -m stream.tools.soak", description=description)
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
        print(f"stream.tools.soak: {error}", file=sys.stderr)
        return 1
    print(human_summary(result), file=sys.stderr)
    print(json.dumps(result, indent=1))
    return 0 if result["ok"] else 1


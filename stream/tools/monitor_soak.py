"""``python -m stream.tools.monitor_soak --minutes 60``: the monitor page in headless Chromium against
the live pipeline (the simulated signer at 1x real time, the shipped model) for a long while, sampled
every ``--sample-s`` seconds: is it still responsive, and does anything grow?

Each sample (one JSON line): the page's JavaScript heap in use and its DOM node count (DevTools
``Performance.getMetrics``), the main thread's responsiveness (how late a ``setTimeout(0)`` runs), the
frames and events the page has received, and stream-monitor's RSS and CPU. The last line is the
summary: first and last heap and nodes, their growth per hour (a least-squares slope over the
samples after the first), the worst lag, the page's frame rate against the stream's, and the
monitor's updates dropped. Needs Debian's chromium and the ``monitor`` extra (aiohttp).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LAG = ("new Promise(resolve => { const started = performance.now(); "
       "setTimeout(() => resolve(performance.now() - started), 0); })")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _slope_per_hour(times_s: list[float], values: list[float]) -> float | None:
    if len(values) < 3:
        return None
    return float(np.polyfit(np.asarray(times_s[1:]) / 3600, np.asarray(values[1:]), 1)[0])


async def _soak(url: str, monitor_pid: int, minutes: float, sample_s: float, out) -> dict:
    from stream.tools.browser import Chromium, chromium_path

    executable = chromium_path()
    if executable is None:
        raise SystemExit("monitor_soak: chromium is not installed (apt-get install -y chromium)")
    samples = []
    async with Chromium(executable) as browser:
        await browser.navigate(url)
        await browser.wait_for("window.monitorStats && monitorStats.framesReceived > 100", 60, "traces on the page")
        await browser.call("Performance.enable")
        started, cpu_started = time.monotonic(), _cpu_seconds(monitor_pid)
        frames_started = await browser.evaluate("monitorStats.framesReceived")
        while time.monotonic() - started < minutes * 60:
            await asyncio.sleep(sample_s)
            metrics = {item["name"]: item["value"] for item in (await browser.call("Performance.getMetrics"))["metrics"]}
            lags = [await browser.evaluate(LAG) for _ in range(5)]
            sample = {"t_s": round(time.monotonic() - started, 1),
                      "heap_mb": round(metrics["JSHeapUsedSize"] / 2**20, 2), "nodes": int(metrics["Nodes"]),
                      "lag_ms_max": round(max(lags), 2), "frames": await browser.evaluate("monitorStats.framesReceived"),
                      "events": await browser.evaluate("monitorStats.events"),
                      "connection": await browser.evaluate("document.getElementById('connection').textContent"),
                      "monitor_rss_mb": round(_rss_mb(monitor_pid), 1),
                      "monitor_cpu_fraction": round((_cpu_seconds(monitor_pid) - cpu_started)
                                                    / (time.monotonic() - started), 4)}
            samples.append(sample)
            print(json.dumps(sample), file=out, flush=True)
        elapsed = time.monotonic() - started
        frames = samples[-1]["frames"] - frames_started if samples else 0
    times = [sample["t_s"] for sample in samples]
    return {
        "minutes": round(elapsed / 60, 1), "samples": len(samples),
        "heap_mb_first": samples[0]["heap_mb"], "heap_mb_last": samples[-1]["heap_mb"],
        "heap_mb_max": max(sample["heap_mb"] for sample in samples),
        "heap_mb_per_hour": _slope_per_hour(times, [sample["heap_mb"] for sample in samples]),
        "nodes_first": samples[0]["nodes"], "nodes_last": samples[-1]["nodes"],
        "nodes_per_hour": _slope_per_hour(times, [sample["nodes"] for sample in samples]),
        "lag_ms_max": max(sample["lag_ms_max"] for sample in samples),
        "page_frames_per_s": round(frames / elapsed, 2), "stream_frames_per_s": round(2000 / 27, 2),
        "events": samples[-1]["events"], "always_live": all(sample["connection"] == "live" for sample in samples),
        "monitor_rss_mb_first": samples[0]["monitor_rss_mb"], "monitor_rss_mb_last": samples[-1]["monitor_rss_mb"],
        "monitor_cpu_fraction": samples[-1]["monitor_cpu_fraction"],
        "host_load_average_1min": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    from stream.config import load_config
    from stream.tools.demo import start_monitor, write_demo_config

    parser = argparse.ArgumentParser(prog="python -m stream.tools.monitor_soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--sample-s", type=float, default=60.0)
    parser.add_argument("--config", default=None, help="the config to start from (default: the shipped one)")
    arguments = parser.parse_args(argv)
    base = load_config(arguments.config)
    processes: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="signstream-soak-") as scratch:
        directory = Path(scratch)
        config_file = write_demo_config(base, directory, {"monitor": {"port": 0}})
        environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            for name in ("sink", "infer"):
                processes.append(subprocess.Popen([sys.executable, "-m", f"stream.daemons.{name}", "--config",
                                                   str(config_file)], stdout=subprocess.DEVNULL,
                                                  stderr=subprocess.DEVNULL, env=environment, start_new_session=True))
            monitor, url = start_monitor(config_file, directory, environment)
            processes.append(monitor)
            if url is None:
                print("monitor_soak: stream-monitor did not start", file=sys.stderr)
                return 1
            time.sleep(5.0)  # the model loaded before the first frame
            processes.append(subprocess.Popen([sys.executable, "-m", "stream.daemons.acquire", "--config", str(config_file)],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment,
                                              start_new_session=True))
            summary = asyncio.run(_soak(url, monitor.pid, arguments.minutes, arguments.sample_s, sys.stdout))
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
    print(json.dumps({"summary": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Resource use of the soak's daemons from /proc: RSS, open descriptors and CPU time, sampled through
the run, and their growth after a warm-up (least-squares slopes per hour)."""

from __future__ import annotations

import os

import numpy as np

WARM_UP_FRACTION = 0.2  # resource slopes are fitted after this share of the run (imports, caches, JIT)
PAGE_TICKS = os.sysconf("SC_CLK_TCK")


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

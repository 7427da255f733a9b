"""How real is the synthetic signer? The same statistics on synthetic and on real recordings, side by side.

    python -m train.synth.realism --real ../shared/data/plux-emg --real ../shared/data/lis-myo/Dataset.tar.xz \\
        --synthetic-version 4,5 [--synthetic DIR] [--sessions 6] [--json OUT] [--plot PNG]

One method for every source (``channel_statistics``, ``imu_statistics``), so a difference in the table is
a difference in the signals:

sEMG, per channel, on the valid samples (saturated ADC samples and detected artefact spikes left out),
only where the 20-450 Hz band exists (>= 900 Hz):
- ``rest_uv``: rest level, the 5th percentile of the 0.5 s moving RMS of the band-passed signal (uV);
- ``contrast``: activity against rest, the 95th over the 5th percentile of the envelope (rectified
  band-passed signal, 0.25 s moving mean: first null at 4 Hz);
- ``median_hz``: median frequency of the raw signal's spectrum (Welch, above 10 Hz) where the
  envelope is in its top quarter (activity);
- ``band_share``: share of the raw signal's power (DC removed) inside 20-450 Hz;
- ``mains_share``: share of the raw signal's power within 2 Hz of the mains frequency and its third
  harmonic where the envelope is in its bottom quarter (rest, where mains shows);
- ``burst_s``: durations of the contractions the offline reference detector finds
  (``train.datasets.contractions``), the median per channel.
IMU, per sensor, where the layout has one (any rate):
- ``gyro_rest_dps`` / ``acc_rest_mg``: noise at rest, the 5th percentile over 0.5 s windows of the
  per-axis standard deviation (mean over axes);
- ``gyro_peak_dps`` / ``acc_peak_g``: ranges during movement, the 99th percentile of the gyroscope
  magnitude and of |acc - its median|.

Real sources read here (``load_real``): a folder of PLUX OpenSignals files (1000 Hz sEMG; no IMU),
the lis-myo archive or folder (Myo: its 200 Hz, on-board filtered sEMG in counts has no 20-450 Hz
band and no rest between letters, so only its IMU is used), and any data set in our format (its
recordings, ``kind`` continuous or session). The real range of a statistic is the smallest and
largest value over the real channels of the sources that measure the same situation (lis-myo's IMU does
not: its letters are held up without rest), widened by ``DOCUMENTED``: figures read from real recordings
we may not redistribute (their source named). A synthetic statistic is *inside* when its 10th and
90th percentiles over channels both are.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import signal as sps

from train.datasets.contractions import DetectorSettings, detect_contractions, find_spikes, moving_rms

MAINS_HZ = 50.0
SEMG_BAND_HZ = (20.0, 450.0)
MIN_SEMG_RATE_HZ = 900.0
EMG_STATISTICS = ("rest_uv", "contrast", "median_hz", "band_share", "mains_share", "burst_s")
IMU_STATISTICS = ("gyro_rest_dps", "acc_rest_mg", "gyro_peak_dps", "acc_peak_g")
STATISTICS = EMG_STATISTICS + IMU_STATISTICS
UNITS = {"rest_uv": "uV RMS", "contrast": "x", "median_hz": "Hz", "band_share": "", "mains_share": "",
         "burst_s": "s", "gyro_rest_dps": "deg/s", "acc_rest_mg": "mg", "gyro_peak_dps": "deg/s", "acc_peak_g": "g"}
# Real figures from recordings not in ../shared/data (not ours to redistribute), with where they come from.
DOCUMENTED = {
    "rest_uv": ((1.5, 5.0), "quiet-muscle sEMG in real Trigno Discover exports (../shared/NOTES.md)"),
    "contrast": ((9.6, 40.0), "two real 2 kHz arm recordings (9.6x, 12.4x) and a deltoid (40x), issue #22"),
}


@dataclass
class SourceStatistics:
    """Per-channel values of every statistic for one source (a real set or a synthetic version)."""

    name: str
    real: bool
    values: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in STATISTICS})
    recordings: int = 0
    notes: list[str] = field(default_factory=list)
    # Statistics measured here but not comparable with the synthetic signer's (another task): shown,
    # kept out of the real range.
    not_comparable: tuple[str, ...] = ()

    def add(self, statistics: dict[str, float]) -> None:
        for name, value in statistics.items():
            if value is not None and math.isfinite(value):
                self.values[name].append(float(value))


def _moving_mean(x: np.ndarray, length: int) -> np.ndarray:
    sums = np.concatenate(([0.0], np.cumsum(x)))
    return (sums[length:] - sums[:-length]) / length


def _welch(x: np.ndarray, rate_hz: float) -> tuple[np.ndarray, np.ndarray]:
    return sps.welch(x, fs=rate_hz, nperseg=min(len(x), int(2 ** round(math.log2(rate_hz)))))


def _share(frequencies: np.ndarray, power: np.ndarray, bands) -> float:
    total = power[frequencies > 0].sum()
    inside = sum(power[(frequencies >= low) & (frequencies <= high)].sum() for low, high in bands)
    return float(inside / total) if total > 0 else math.nan


def channel_statistics(x: np.ndarray, rate_hz: float, unit_to_mv: float = 1.0,
                       full_scale: float | None = None) -> dict[str, float]:
    """The sEMG statistics of one channel (1-D, NaN where invalid); ``unit_to_mv`` converts its unit."""
    x = np.asarray(x, dtype=np.float64) * unit_to_mv
    x = x[np.isfinite(x)]
    if rate_hz < MIN_SEMG_RATE_HZ or len(x) < 4 * rate_hz:
        return {}
    x = x - np.mean(x)
    sos = sps.butter(4, [SEMG_BAND_HZ[0], min(SEMG_BAND_HZ[1], 0.45 * rate_hz)], btype="bandpass", fs=rate_hz,
                     output="sos")
    band = sps.sosfiltfilt(sos, x)
    keep = np.ones(len(x), dtype=bool)
    settings = DetectorSettings()
    if full_scale:
        for start, end, _ in find_spikes(band, rate_hz, full_scale * unit_to_mv, settings):
            keep[start:end] = False
    envelope_length = int(round(0.25 * rate_hz))
    envelope = _moving_mean(np.abs(band), envelope_length)
    valid = _moving_mean(keep.astype(np.float64), envelope_length) == 1.0
    rms = np.sqrt(np.maximum(_moving_mean(band ** 2, int(round(0.5 * rate_hz))), 0.0))
    rms_valid = _moving_mean(keep.astype(np.float64), int(round(0.5 * rate_hz))) == 1.0
    levels = envelope[valid]
    low, high = np.percentile(levels, [5, 95])
    # Centre of each envelope window, to pick raw samples in activity / at rest.
    centre = envelope_length // 2
    active = np.zeros(len(x), dtype=bool)
    quiet = np.zeros(len(x), dtype=bool)
    active[centre:centre + len(envelope)] = valid & (envelope >= np.percentile(levels, 75))
    quiet[centre:centre + len(envelope)] = valid & (envelope <= np.percentile(levels, 25))
    frequencies, power = _welch(np.where(active, x, 0.0), rate_hz)
    above = frequencies >= 10.0
    cumulative = np.cumsum(power[above])
    median_hz = float(frequencies[above][np.searchsorted(cumulative, cumulative[-1] / 2)]) if cumulative[-1] > 0 else math.nan
    all_frequencies, all_power = _welch(np.where(keep, x, 0.0), rate_hz)
    rest_frequencies, rest_power = _welch(np.where(quiet, x, 0.0), rate_hz)
    mains = [(harmonic * MAINS_HZ - 2, harmonic * MAINS_HZ + 2) for harmonic in (1, 3) if harmonic * MAINS_HZ + 2 < rate_hz / 2]
    detection = detect_contractions(x, rate_hz, settings, full_scale=full_scale * unit_to_mv if full_scale else None)
    bursts = [(end - start) / rate_hz for start, end in detection.contractions]
    return {
        "rest_uv": float(np.percentile(rms[rms_valid], 5)) * 1000.0,
        "contrast": float(high / low) if low > 0 else math.inf,
        "median_hz": median_hz,
        "band_share": _share(all_frequencies, all_power, [SEMG_BAND_HZ]),
        "mains_share": _share(rest_frequencies, rest_power, mains),
        "burst_s": float(np.median(bursts)) if bursts else math.nan,
    }


def imu_statistics(acc: np.ndarray, gyro: np.ndarray, rate_hz: float) -> list[dict[str, float]]:
    """The IMU statistics of each sensor (acc and gyro (N, 3 x sensors), NaN where invalid)."""
    results = []
    window = max(4, int(round(0.5 * rate_hz)))
    for sensor in range(gyro.shape[1] // 3):
        columns = slice(3 * sensor, 3 * sensor + 3)
        statistics = {}
        for name, data, scale in (("gyro", gyro, 1.0), ("acc", acc, 1000.0)):
            if data.shape[1] < 3 * (sensor + 1):
                continue
            values = np.asarray(data[:, columns], dtype=np.float64)
            values = values[np.all(np.isfinite(values), axis=1)]
            if len(values) < 2 * window:
                continue
            windows = len(values) // window
            blocks = values[:windows * window].reshape(windows, window, 3)
            noise = blocks.std(axis=1).mean(axis=1)
            statistics[f"{name}_rest_{'dps' if name == 'gyro' else 'mg'}"] = float(np.percentile(noise, 5)) * scale
            if name == "gyro":
                statistics["gyro_peak_dps"] = float(np.percentile(np.linalg.norm(values, axis=1), 99))
            else:
                statistics["acc_peak_g"] = float(np.percentile(np.linalg.norm(values - np.median(values, axis=0), axis=1), 99))
        results.append(statistics)
    return results


def _unit_to_mv(unit: str) -> float | None:
    return {"mV": 1.0, "V": 1000.0, "uV": 0.001}.get(unit)


def add_recording(target: SourceStatistics, recording, full_scale: float | None = None) -> None:
    """Every statistic of one ``Recording`` into ``target`` (sEMG only in a known voltage unit)."""
    scale = _unit_to_mv(recording.emg_unit)
    if scale is not None:
        for channel in range(recording.emg.shape[1]):
            target.add(channel_statistics(recording.emg[:, channel], float(recording.emg_rate_hz), scale, full_scale))
    if recording.gyro.shape[1]:
        for statistics in imu_statistics(recording.acc, recording.gyro, float(recording.imu_rate_hz)):
            target.add(statistics)
    target.recordings += 1


def load_real(path: Path) -> SourceStatistics:
    """Statistics of a real source: a PLUX folder, the lis-myo archive/folder, or a data set of ours."""
    path = Path(path)
    if path.is_dir() and (path / "dataset.json").exists():
        from stream.recording.dataset import open_dataset

        dataset = open_dataset(path)
        source = SourceStatistics(f"{path.name} (data set)", real=True)
        for entry in dataset.entries:
            add_recording(source, dataset.load(entry))
        return source
    if path.is_dir() and any(path.glob("*.h5")):
        from train.datasets.plux import PLUX_EMG_GAIN, PLUX_VCC_V, read_plux, to_recording

        source = SourceStatistics("plux-emg (PLUX, 1000 Hz sEMG)", real=True)
        full_scale = PLUX_VCC_V / PLUX_EMG_GAIN * 1000.0 / 2
        for file in sorted(path.glob("*.h5")):
            add_recording(source, to_recording(read_plux(file)), full_scale=full_scale)
        source.notes.append("saturated samples and artefact spikes are left out of every statistic")
        return source
    from train.datasets.lis_myo import read_lis_myo, to_recording as myo_recording

    samples = read_lis_myo(path)
    source = SourceStatistics("lis-myo (Myo armband IMU, 50 Hz)", real=True)
    # Its letters are held handshapes back to back, 2 s each: the IMU of all samples of a letter joined
    # would make jumps, so each 2 s sample is measured on its own (4 windows of 0.5 s each).
    for repetition, sample in enumerate(samples):
        add_recording(source, myo_recording(sample, repetition))
    source.notes.append("sEMG not used: 200 Hz, filtered on board, in counts, no rest between letters")
    source.notes.append("IMU shown, not judged: letters of the alphabet held up one after another (no rest, "
                        "hardly any arm movement), not word signs made from rest with the arm on the lap")
    source.not_comparable = IMU_STATISTICS
    return source


def synthetic_sessions(version: int, sessions: int, seed: int = 0) -> SourceStatistics:
    """Continuous sessions of the synthetic signer at generator ``version``, rendered in memory."""
    from stream.synth.session import session_recording
    from stream.synth.signer import make_signer

    source = SourceStatistics(f"synthetic, generator version {version}", real=False)
    for index in range(sessions):
        signer = make_signer(seed, index % 5, version=version)
        add_recording(source, session_recording(seed, signer, index // 5))
    return source


def synthetic_dataset(path: Path) -> SourceStatistics:
    """The continuous sessions of a synthetic data set on disk."""
    from stream.recording.dataset import open_dataset

    dataset = open_dataset(path)
    source = SourceStatistics(f"{Path(path).name} (sessions)", real=False)
    for entry in dataset.entries:
        if entry.kind == "session":
            add_recording(source, dataset.load(entry))
    return source


def real_ranges(real: list[SourceStatistics]) -> dict[str, tuple[float, float] | None]:
    ranges = {}
    for name in STATISTICS:
        values = [value for source in real if name not in source.not_comparable for value in source.values[name]]
        documented = DOCUMENTED.get(name, ((math.inf, -math.inf), ""))[0]
        low = min(values + [documented[0]]) if values or name in DOCUMENTED else None
        high = max(values + [documented[1]]) if values or name in DOCUMENTED else None
        ranges[name] = (low, high) if low is not None else None
    return ranges


def summarise(values: list[float]) -> dict | None:
    if not values:
        return None
    p10, median, p90 = np.percentile(values, [10, 50, 90])
    return {"count": len(values), "min": float(min(values)), "p10": float(p10), "median": float(median),
            "p90": float(p90), "max": float(max(values))}


def report(real: list[SourceStatistics], synthetic: list[SourceStatistics]) -> dict:
    """One JSON-able object: the real range and each source's summary per statistic, and for each
    synthetic source whether it is inside the real range."""
    ranges = real_ranges(real)
    result = {"statistics": {}, "documented": {name: {"range": list(value[0]), "source": value[1]}
                                                for name, value in DOCUMENTED.items()},
              "sources": [{"name": source.name, "real": source.real, "recordings": source.recordings,
                           "notes": source.notes} for source in real + synthetic]}
    for name in STATISTICS:
        entry = {"unit": UNITS[name], "real_range": list(ranges[name]) if ranges[name] else None, "sources": {}}
        for source in real + synthetic:
            summary = summarise(source.values[name])
            if summary and not source.real and ranges[name]:
                low, high = ranges[name]
                summary["inside"] = bool(low <= summary["p10"] and summary["p90"] <= high)
            entry["sources"][source.name] = summary
        result["statistics"][name] = entry
    return result


def _number(value: float) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    magnitude = abs(value)
    return f"{value:.3f}" if magnitude < 1 else f"{value:.2f}" if magnitude < 10 else f"{value:.1f}" if magnitude < 100 else f"{value:.0f}"


def format_table(result: dict) -> str:
    """Markdown: a row per statistic, the real range, then median [p10-p90] per source."""
    names = [source["name"] for source in result["sources"]]
    lines = ["| statistic | real range | " + " | ".join(names) + " |", "| --- | --- |" + " --- |" * len(names)]
    for statistic, entry in result["statistics"].items():
        real_range = entry["real_range"]
        cells = [f"{statistic} ({entry['unit']})" if entry["unit"] else statistic,
                 f"{_number(real_range[0])} - {_number(real_range[1])}" if real_range else "-"]
        for name in names:
            summary = entry["sources"][name]
            if summary is None:
                cells.append("-")
                continue
            text = f"{_number(summary['median'])} [{_number(summary['p10'])} - {_number(summary['p90'])}]"
            if "inside" in summary:
                text += " inside" if summary["inside"] else " **outside**"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(result: dict, sources: list[SourceStatistics], path: Path) -> None:
    """One panel per statistic: every source's channel values as dots, the real range shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    figure, axes = plt.subplots(2, 5, figsize=(17, 6.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, statistic in zip(axes.flat, STATISTICS):
        entry = result["statistics"][statistic]
        if entry["real_range"]:
            axis.axhspan(*entry["real_range"], color="0.88", zorder=0, label="real range")
        rng = np.random.default_rng(0)
        for position, source in enumerate(sources):
            values = source.values[statistic]
            if values:
                axis.scatter(position + rng.uniform(-0.18, 0.18, len(values)), values, s=9,
                             color=colours[position % len(colours)], alpha=0.7, zorder=2)
        axis.set_xticks(range(len(sources)), [str(index + 1) for index in range(len(sources))])
        axis.set_title(f"{statistic}" + (f" ({entry['unit']})" if entry["unit"] else ""), fontsize=10)
        if statistic in ("contrast", "gyro_peak_dps", "rest_uv", "mains_share"):
            axis.set_yscale("log")
            # Plain numbers at 1-2-5 steps: a span of less than a decade has no 10^k tick to label.
            axis.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
            axis.yaxis.set_minor_formatter(ticker.NullFormatter())
    legend = "   ".join(f"{index + 1}: {source.name}" for index, source in enumerate(sources))
    figure.suptitle("Synthetic signer against real recordings (grey: real range)\n" + legend, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train.synth.realism", description=__doc__.split("\n")[0])
    parser.add_argument("--real", type=Path, action="append", default=[], required=True,
                        help="a real source: PLUX folder, lis-myo archive/folder or a data set of ours (repeatable)")
    parser.add_argument("--synthetic", type=Path, action="append", default=[],
                        help="a synthetic data set on disk: its sessions are measured (repeatable)")
    parser.add_argument("--synthetic-version", default="",
                        help="generator versions to render in memory, comma-separated (e.g. 4,5)")
    parser.add_argument("--sessions", type=int, default=6, help="sessions rendered per version (default 6)")
    parser.add_argument("--seed", type=int, default=0, help="population seed of the rendered sessions")
    parser.add_argument("--json", type=Path, default=None, help="write the whole report here")
    parser.add_argument("--plot", type=Path, default=None, help="write a PNG of every statistic here")
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        versions = [int(part) for part in arguments.synthetic_version.split(",") if part.strip()]
    except ValueError:
        print(f"--synthetic-version {arguments.synthetic_version!r}: expected comma-separated integers, e.g. 4,5",
              file=sys.stderr)
        return 2
    if not arguments.synthetic and not versions:
        print("nothing synthetic to compare: give --synthetic DIR or --synthetic-version V", file=sys.stderr)
        return 2
    real = [load_real(path) for path in arguments.real]
    synthetic = [synthetic_dataset(path) for path in arguments.synthetic]
    synthetic += [synthetic_sessions(version, arguments.sessions, arguments.seed) for version in versions]
    result = report(real, synthetic)
    print(format_table(result))
    for source in real + synthetic:
        for note in source.notes:
            print(f"- {source.name}: {note}")
    if arguments.json:
        arguments.json.write_text(json.dumps(result, indent=1))
    if arguments.plot:
        plot(result, real + synthetic, arguments.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One PNG per PLUX recording, for a person to check the reference contraction count by eye.

    python -m train.datasets.plot_contractions /path/to/plux-emg --out /tmp/plux-plots

Each figure: the raw signal in mV with saturated samples marked, the envelope and the threshold on a
log axis, detected contractions shaded green and artefacts red; the title gives the counts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from train.datasets.contractions import detect_plux_contractions
from train.datasets.plux import read_plux


def plot_recording(path: Path, out_dir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recording = read_plux(path)
    detection = detect_plux_contractions(recording)
    rate = float(recording.rate_hz)
    time = np.arange(len(recording.counts)) / rate
    signal = recording.signal_mv[:, 0]
    saturated = recording.saturated[:, 0]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(18, 8), sharex=True)
    top.plot(time, signal, lw=0.3, color="0.2")
    top.plot(time[saturated], signal[saturated], "x", color="magenta", ms=5,
             label=f"saturated: {int(saturated.sum())} samples")
    bottom.semilogy(time, np.maximum(detection.envelope, 1e-6), lw=0.8, color="tab:blue", label="envelope")
    bottom.axhline(detection.threshold, color="tab:orange", lw=1, label=f"off threshold {detection.threshold * 1000:.1f} uV")
    bottom.axhline(detection.on_threshold, color="tab:red", lw=1, ls="--", label=f"on threshold {detection.on_threshold * 1000:.1f} uV")
    start, end = detection.baseline
    bottom.axvspan(start / rate, end / rate, color="0.8", label="baseline (quietest second)")
    for axis in (top, bottom):
        for number, (start, end) in enumerate(detection.contractions):
            axis.axvspan(start / rate, end / rate, color="tab:green", alpha=0.2,
                         label="contraction" if number == 0 and axis is top else None)
        for number, (start, end) in enumerate(detection.artefacts):
            axis.axvspan(start / rate, end / rate, color="tab:red", alpha=0.35,
                         label="artefact" if number == 0 and axis is top else None)
    for number, (start, end) in enumerate(detection.contractions):
        top.text((start + end) / 2 / rate, 1.42, str(number + 1), ha="center", va="top", fontsize=8)
    top.set_ylim(-1.55, 1.55)
    top.set_ylabel("mV")
    bottom.set_ylabel("envelope, mV")
    bottom.set_xlabel("s")
    top.legend(loc="lower right", fontsize=8)
    bottom.legend(loc="upper right", fontsize=8)
    top.set_title(f"{path.name}: {recording.muscle or ''}, {recording.device} {recording.resolution_bits} bit, "
                  f"{recording.duration_s:.1f} s - {len(detection.contractions)} contractions, "
                  f"{len(detection.artefacts)} artefacts")
    figure.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{path.stem}.png"
    figure.savefig(target, dpi=80)
    plt.close(figure)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder with OpenSignals .h5 files")
    parser.add_argument("--out", type=Path, default=Path("/tmp/plux-plots"))
    arguments = parser.parse_args(argv)
    files = sorted(arguments.folder.glob("*.h5"))
    if not files:
        print(f"{arguments.folder}: no .h5 files", file=sys.stderr)
        return 1
    for path in files:
        print(plot_recording(path, arguments.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

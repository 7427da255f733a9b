"""Real sEMG through our filters and segmenter: the three PLUX recordings with the ``plux`` profile.

    python -m train.datasets.plux_pipeline /path/to/plux-emg [--plots DIR]

Each file becomes a ``Recording`` (``train.datasets.plux.to_recording``: saturated samples NaN and
listed as gaps), is cut into 20 ms frames and fed to ``stream.dsp.preprocess.Preprocessor.process_frame``
exactly as stream-infer would, and every block it emits goes to ``stream.stages.segmenter.Segmenter``.
Its segments are compared with the independent offline reference (``detect_plux_contractions``): a
segment matches a contraction when they overlap. Per file and configuration it reports hits, misses,
segments in rest (overlapping no contraction), extra pieces of one contraction (``split``), the
segmenter's counters (``segments_dropped_invalid``: a flagged run reached the sign under way;
``segments_forced``: cut at ``max_sign_s``; ``segments_too_short``), and what the reference's artefact
spikes did (did one start a sign, did one become a segment). It also checks that the streamed
Preprocessor output equals ``process_recording`` on the same samples, bit for bit.

Configurations (``CONFIGURATIONS``): the profile's defaults (``[segmentation]``: signs of 0.3-1.9 s,
thresholds that follow the signer's contrast), the same with the fixed thresholds tuned on our first
synthetic signer (on 40x, off 10x rest), and ``CONTRACTION_OVERRIDES``. The overrides are not fitted to these files: each one
takes the reference detector's own criterion (a criterion from the onset-detection literature the
reference cites) or the protocol's known contraction length, see ``OVERRIDE_REASONS``.

The segmenter's per-sample energy ratio (smoothed sEMG level / rest baseline, what it compares with
``emg_on_threshold`` / ``emg_off_threshold``) is read from its state: with 20 ms frames at a 50 Hz model
rate each frame gives one model sample, and each block is fed one sample at a time (the segmenter
works sample by sample, so this changes nothing).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from train.datasets.contractions import detect_plux_contractions
from train.datasets.plux import read_plux, to_recording

PLUX_FILES = ("emg_bursts.h5", "emg_fatigue.h5", "emg_1000_hz_16_bits_solo.h5")

# Overrides of [segmentation] for voluntary contractions of 1-4 s (see OVERRIDE_REASONS).
CONTRACTION_OVERRIDES = {
    "adaptive_thresholds": False,
    "max_sign_s": 4.0,
    "emg_on_threshold": 10.0,
    "emg_off_threshold": 4.0,
    "smoothing_s": 0.1,
    "hold_off_s": 0.25,
}
OVERRIDE_REASONS = {
    "adaptive_thresholds": "the reference's fixed ratios to rest below, not thresholds learned from the signer",
    "max_sign_s": "the protocols' contractions last 1-3.7 s (reference detector); at 1.9 s each longer one is cut "
                  "(forced) and the rest of it is lost in the refractory wait",
    "emg_on_threshold": "the reference's on criterion, +20 dB over rest (on_ratio 10); the default 40 (+32 dB) is "
                        "for the synthetic signer, above what a real biceps reaches over its rest (ratio 10-30)",
    "emg_off_threshold": "the reference's off criterion, +12 dB over rest (off_ratio 4); the default 10 ends a "
                         "contraction whenever its envelope dips to the middle of its range",
    "smoothing_s": "a one-pole of 0.1 s has the noise bandwidth (1/(4 tau)) of the reference's 0.2 s moving RMS "
                   "(1/(2 T)); 0.03 s is under two model samples at 50 Hz, so the ratio follows every "
                   "fluctuation of a real envelope",
    "hold_off_s": "the reference merges bursts closer than 0.25 s (min_off_s, Bonato et al.'s time threshold); "
                  "0.1 s splits a contraction at every brief dip",
}

# What the report runs: the defaults (thresholds that follow the signer), the defaults with fixed
# thresholds (the segmenter before it learned the signer's contrast: on 40x, off 10x), the overrides,
# and the overrides with the default max_sign_s (what cutting a 3 s contraction at 1.9 s does, alone).
CONFIGURATIONS = {
    "defaults": {},
    "fixed_thresholds": {"adaptive_thresholds": False},
    "overrides": CONTRACTION_OVERRIDES,
    "overrides_but_max_sign_s_1.9": {**CONTRACTION_OVERRIDES, "max_sign_s": 1.9},
}


def plux_config(segmentation: dict | None = None):
    """The ``plux`` profile's config, with ``segmentation`` overrides (a [segmentation] table)."""
    from stream.config import config_from_dict

    table = {"sensors": {"profile": "plux"}}
    if segmentation:
        table["segmentation"] = dict(segmentation)
    return config_from_dict(table)


@dataclass
class Streamed:
    """The Preprocessor's output over a recording's whole frames, as emitted frame by frame."""

    blocks: list = field(repr=False)
    first_index: int
    envelope: np.ndarray = field(repr=False)  # (n,) model-rate sEMG, the model's units
    valid: np.ndarray = field(repr=False)  # (n,) bool
    frames: int


def stream_preprocess(recording, config) -> Streamed:
    """Cut ``recording`` into its layout's frames and run ``Preprocessor.process_frame`` on each."""
    from stream.dsp.preprocess import Preprocessor
    from stream.tools.evaluate import recording_frames

    preprocessor = Preprocessor(config)
    blocks = [block for block in map(preprocessor.process_frame, recording_frames(recording)) if block is not None]
    for before, after in zip(blocks, blocks[1:]):
        if after.first_index != before.end_index:
            raise RuntimeError(f"the Preprocessor's blocks jump from {before.end_index} to {after.first_index}")
    first = blocks[0].first_index if blocks else 0
    envelope = np.concatenate([block.emg[:, 0] for block in blocks]) if blocks else np.zeros(0, np.float32)
    valid = np.concatenate([block.valid for block in blocks]) if blocks else np.zeros(0, bool)
    return Streamed(blocks, first, envelope, valid, recording.whole_frames)


def streaming_equals_batch(recording, config, streamed: Streamed | None = None) -> dict:
    """Frame-by-frame output against ``process_recording`` on the same (whole-frame) samples."""
    from stream.dsp.preprocess import Preprocessor

    streamed = streamed or stream_preprocess(recording, config)
    samples = streamed.frames * recording.layout.emg_samples_per_frame
    batch = Preprocessor(config).process_recording(recording.emg[:samples], recording.acc, recording.gyro,
                                                   recording.emg_first_index, recording.imu_first_index)
    streamed_emg = np.concatenate([block.emg for block in streamed.blocks]) if streamed.blocks else batch.emg[:0]
    same_shape = streamed_emg.shape == batch.emg.shape and streamed.first_index == batch.first_index
    bitwise = same_shape and streamed_emg.tobytes() == np.ascontiguousarray(batch.emg).tobytes()
    return {"equal": bool(bitwise and np.array_equal(streamed.valid, batch.valid)),
            "bitwise_values": bool(bitwise), "valid_equal": bool(same_shape and np.array_equal(streamed.valid, batch.valid)),
            "model_samples": int(len(batch.valid)), "streamed_samples": int(len(streamed.valid)),
            "first_index": int(batch.first_index), "frames": streamed.frames}


@dataclass
class Segmentation:
    """The segmenter over one stream: its segments, counters and per-sample trace."""

    segments: list
    counters: dict
    ratio: np.ndarray = field(repr=False)  # (n,) level / max(baseline, floor) as compared; NaN where invalid
    active: np.ndarray = field(repr=False)  # (n,) bool: a sign under way after this sample
    on_threshold: float = 0.0
    off_threshold: float = 0.0


def run_segmenter(streamed: Streamed, config) -> Segmentation:
    """Every block of ``streamed`` through a fresh Segmenter, one model sample at a time."""
    from stream.dsp.preprocess import AlignedBlock
    from stream.stages.segmenter import _ACTIVE, Segmenter

    segmenter = Segmenter(config)
    floor = config.segmentation.emg_floor
    ratio = np.full(len(streamed.valid), np.nan)
    active = np.zeros(len(streamed.valid), dtype=bool)
    segments = []
    position = 0
    for block in streamed.blocks:
        for offset in range(len(block)):
            part = AlignedBlock(block.first_index + offset, block.emg[offset:offset + 1], block.acc[offset:offset + 1],
                                block.gyro[offset:offset + 1], block.valid[offset:offset + 1])
            baseline_before = segmenter.state.emg_baseline
            segments.extend(segmenter.process(part))
            state = segmenter.state
            if part.valid[0]:
                # The segmenter divides by the baseline it had before this sample's rest update.
                baseline = state.emg_baseline if np.isnan(baseline_before) else baseline_before
                ratio[position] = state.emg_level / max(baseline, floor)
            active[position] = state.mode == _ACTIVE
            position += 1
    return Segmentation(segments, dict(segmenter.counters), ratio, active,
                        config.segmentation.emg_on_threshold, config.segmentation.emg_off_threshold)


def _overlaps(a, b) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate(([0], np.asarray(mask, dtype=np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def match(segments_s: list, contractions_s: list, flagged: list | None = None) -> dict:
    """Segments against reference contractions, both ``(start_s, end_s)``; overlap is a match.
    ``flagged``: per contraction, whether it holds flagged (saturated) samples."""
    covered = [False] * len(contractions_s)
    flagged = [False] * len(contractions_s) if flagged is None else list(flagged)
    in_rest = split = merged = 0
    onsets, coverage = [], []
    for segment in segments_s:
        touched = [number for number, contraction in enumerate(contractions_s) if _overlaps(segment, contraction)]
        if not touched:
            in_rest += 1
            continue
        merged += len(touched) > 1
        if all(covered[number] for number in touched):
            split += 1  # another piece of contraction(s) already found
        for number in touched:
            if not covered[number]:
                onsets.append(segment[0] - contractions_s[number][0])
            covered[number] = True
    for contraction in contractions_s:
        inside = sum(max(0.0, min(segment[1], contraction[1]) - max(segment[0], contraction[0])) for segment in segments_s)
        coverage.append(inside / (contraction[1] - contraction[0]))
    hits = sum(covered)
    return {"reference": len(contractions_s), "segments": len(segments_s), "hits": hits,
            "misses": len(contractions_s) - hits, "segments_in_rest": in_rest, "split": split,
            "extra_segments": in_rest + split, "segments_over_two_contractions": merged,
            "onset_delay_s_median": round(float(np.median(onsets)), 3) if onsets else None,
            "coverage_median": round(float(np.median(coverage)), 3) if coverage else None,
            "hits_without_flagged_samples": sum(hit and not mark for hit, mark in zip(covered, flagged)),
            "hits_with_flagged_samples": sum(hit and mark for hit, mark in zip(covered, flagged))}


def artefact_effect(artefacts_s: list, segments_s: list, active_s: list, segments_too_short: int) -> dict:
    """Did each reference artefact spike start a sign (the segmenter went active over it), and did
    one become a reported segment?"""
    started = sum(any(_overlaps(artefact, run) for run in active_s) for artefact in artefacts_s)
    reported = sum(any(_overlaps(artefact, segment) for segment in segments_s) for artefact in artefacts_s)
    return {"artefacts": len(artefacts_s), "started_a_sign": started, "in_reported_segments": reported,
            "segments_too_short": segments_too_short}


def _seconds(pairs, rate) -> list[list[float]]:
    return [[round(start / rate, 3), round(end / rate, 3)] for start, end in pairs]


def analyse_file(path, configurations: dict[str, dict] | None = None) -> tuple[dict, dict]:
    """Figures for one PLUX file (``configurations``: name -> [segmentation] overrides, by default
    ``CONFIGURATIONS``), and the arrays the plot needs."""
    path = Path(path)
    configurations = configurations or CONFIGURATIONS
    plux = read_plux(path)
    recording = to_recording(plux)
    detection = detect_plux_contractions(plux)
    emg_rate = float(recording.emg_rate_hz)
    base = plux_config()
    model_rate = float(base.preprocess.model_rate_hz)
    streamed = stream_preprocess(recording, base)
    contractions_s = [tuple(pair) for pair in _seconds(detection.contractions, emg_rate)]
    artefacts_s = [tuple(pair) for pair in _seconds(detection.artefacts, emg_rate)]
    flagged = recording.metadata["flagged"]
    figures = {
        "file": path.name, "muscle": plux.muscle, "device": plux.device, "resolution_bits": plux.resolution_bits,
        "duration_s": round(recording.duration_s, 3),
        "flagged": {"saturated_samples": flagged["saturated_samples"], "saturated_runs": flagged["saturated_runs"],
                    "gaps": len(recording.gaps), "invalid_model_samples": int((~streamed.valid).sum()),
                    "invalid_fraction": round(float((~streamed.valid).mean()), 4) if len(streamed.valid) else 0.0},
        "streaming_equals_batch": streaming_equals_batch(recording, base, streamed),
        "reference": {"contractions": [list(pair) for pair in contractions_s],
                      "artefacts": [list(pair) for pair in artefacts_s],
                      "durations_s": [round(end - start, 2) for start, end in contractions_s],
                      "with_flagged_samples": sum(count > 0 for count in detection.saturated_in)},
    }
    arrays = {"streamed": streamed, "model_rate": model_rate, "contractions_s": contractions_s,
              "artefacts_s": artefacts_s, "emg_rate": emg_rate,
              "flagged_s": [gap.emg_start / emg_rate for gap in recording.gaps], "runs": {}}
    for name, overrides in configurations.items():
        config = plux_config(overrides)
        result = run_segmenter(streamed, config)
        offset = streamed.first_index
        segments_s = [(round(s.start_index / model_rate, 3), round(s.end_index / model_rate, 3)) for s in result.segments]
        active_s = [((start + offset) / model_rate, (end + offset) / model_rate) for start, end in runs(result.active)]
        figures[name] = {
            "segments": [[start, end, segment.forced] for (start, end), segment in zip(segments_s, result.segments)],
            "counters": result.counters,
            "match": match(segments_s, contractions_s, [count > 0 for count in detection.saturated_in]),
            "artefact_spikes": artefact_effect(artefacts_s, segments_s, active_s, result.counters["segments_too_short"]),
            "contractions_longer_than_max_sign_s": sum(end - start > config.segmentation.max_sign_s
                                                       for start, end in contractions_s),
        }
        arrays["runs"][name] = (result, segments_s)
    return figures, arrays


def analyse_folder(folder, plots: Path | None = None) -> dict:
    """The figures of every PLUX file of ``folder`` (``PLUX_FILES``; PNGs into ``plots`` if given)."""
    folder = Path(folder)
    missing = [name for name in PLUX_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: missing {', '.join(missing)} (the plux-emg folder of the shared data)")
    base = plux_config()
    summary = {"folder": str(folder), "profile": "plux",
               "frame_ms": float(base.layout.frame_period_s * 1000), "model_rate_hz": float(base.preprocess.model_rate_hz),
               "configurations": {"defaults": {key: getattr(base.segmentation, key) for key in CONTRACTION_OVERRIDES},
                                  "overrides": dict(CONTRACTION_OVERRIDES), "why": dict(OVERRIDE_REASONS)},
               "files": {}}
    for name in PLUX_FILES:
        figures, arrays = analyse_file(folder / name)
        summary["files"][Path(name).stem] = figures
        if plots is not None:
            summary["files"][Path(name).stem]["plot"] = str(plot_file(figures, arrays, Path(plots)))
    return summary


def plot_file(figures: dict, arrays: dict, out_dir: Path) -> Path:
    """One PNG: our DSP's envelope with flagged and invalid samples; per configuration the segmenter's
    energy ratio against its on/off thresholds, with our segments (lower half, blue; forced: orange)
    and the reference contractions (upper half, green) shaded; artefact spikes red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    streamed, rate = arrays["streamed"], arrays["model_rate"]
    time = (streamed.first_index + np.arange(len(streamed.envelope))) / rate
    names = list(arrays["runs"])
    figure, axes = plt.subplots(1 + len(names), 1, figsize=(18, 3.2 * (1 + len(names))), sharex=True)
    top = axes[0]
    top.semilogy(time, np.maximum(streamed.envelope, 1e-4), lw=0.6, color="0.2", label="envelope (our DSP, 50 Hz)")
    invalid = ~streamed.valid
    low = max(1e-3, float(np.percentile(np.maximum(streamed.envelope, 1e-4), 0.5)) / 2)
    top.plot(time[invalid], np.full(int(invalid.sum()), low), "|", color="tab:red", ms=8,
             label=f"invalid model samples: {int(invalid.sum())}")
    flagged = np.asarray(arrays["flagged_s"])
    high = float(np.max(streamed.envelope)) * 1.5 if len(streamed.envelope) else 1.0
    top.plot(flagged, np.full(len(flagged), high), "v", color="magenta", ms=5,
             label=f"flagged runs (gaps): {len(flagged)}")
    top.set_ylabel("rectified sEMG\n(model units)")
    panels = [(axis, name) for axis, name in zip(axes[1:], names)]
    for axis in axes:
        for number, (start, end) in enumerate(arrays["contractions_s"]):
            axis.axvspan(start, end, ymin=0.5, ymax=1.0, color="tab:green", alpha=0.25, lw=0,
                         label="reference contraction" if number == 0 else None)
        for number, (start, end) in enumerate(arrays["artefacts_s"]):
            axis.axvspan(start, end, color="tab:red", alpha=0.3, lw=0, label="reference artefact" if number == 0 else None)
    for axis, name in panels:
        result, segments_s = arrays["runs"][name]
        axis.semilogy(time, np.maximum(result.ratio, 0.1), lw=0.6, color="tab:blue", label="energy ratio")
        axis.axhline(result.on_threshold, color="tab:red", ls="--", lw=1, label=f"on {result.on_threshold:g}")
        axis.axhline(result.off_threshold, color="tab:orange", lw=1, label=f"off {result.off_threshold:g}")
        forced_seen = plain_seen = False
        for (start, end), segment in zip(segments_s, result.segments):
            label = None
            if segment.forced and not forced_seen:
                label, forced_seen = "our segment (forced at max_sign_s)", True
            elif not segment.forced and not plain_seen:
                label, plain_seen = "our segment", True
            axis.axvspan(start, end, ymin=0.0, ymax=0.5, color="tab:orange" if segment.forced else "tab:blue",
                         alpha=0.35, lw=0, label=label)
        found = figures[name]["match"]
        counters = figures[name]["counters"]
        axis.set_title(f"{name}: {found['segments']} segments, {found['hits']}/{found['reference']} contractions hit, "
                       f"{found['segments_in_rest']} in rest, {found['split']} split; dropped invalid "
                       f"{counters['segments_dropped_invalid']}, forced {counters['segments_forced']}, too short "
                       f"{counters['segments_too_short']}", fontsize=10, loc="left")
        axis.set_ylabel("level / rest")
        axis.legend(loc="upper right", fontsize=7, ncol=3)
    top.legend(loc="upper right", fontsize=7, ncol=3)
    top.set_title(f"{figures['file']}: {figures['muscle']}, {figures['device']} {figures['resolution_bits']} bit - "
                  f"{len(arrays['contractions_s'])} reference contractions, {len(arrays['artefacts_s'])} artefacts, "
                  f"{figures['flagged']['saturated_samples']} saturated samples", fontsize=11, loc="left")
    axes[-1].set_xlabel("s")
    figure.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{Path(figures['file']).stem}.png"
    figure.savefig(target, dpi=70)
    plt.close(figure)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the plux-emg folder (emg_bursts.h5, emg_fatigue.h5, ...)")
    parser.add_argument("--plots", type=Path, default=None, help="write one PNG per file into this folder")
    arguments = parser.parse_args(argv)
    try:
        summary = analyse_folder(arguments.folder, arguments.plots)
    except (FileNotFoundError, ValueError) as error:
        print(f"plux_pipeline: {error}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

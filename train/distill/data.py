"""Training windows from a dataset's isolated signs (whole recordings, or the signs of a guided
recording cut out with their context), through the DSP Preprocessor only.

Which window? stream-infer classifies the window that ends when its segmenter has seen the sign end
plus ``[segmentation] hold_off_s`` of rest (``Segment.decided_index``). So each recording gives the
window whose end is the annotated sign end plus ``end_offset_s`` (default: hold_off_s). For training,
the end is jittered uniformly in ``jitter_s`` (default -0.15 .. +0.30 s) afresh every epoch, so the
model tolerates the segmenter's detection error; validation and test use the un-jittered end.

Every sample comes from ``stream.dsp.preprocess.Preprocessor.process_recording`` (the same filters,
resampler and scaling as live) and is cut like ``stream.dsp.windows.extract_window``. One thing is
added here for recordings with less rest before the sign than a window needs (synth-v3 and older,
a user's own short recordings; synth-v4 has 1.9-2.4 s and needs none): the missing start of a window
is filled with the recording's own rest before the sign, mirrored (``np.pad`` "symmetric") -
rest-like data where the live stream would have rest. The count of padded windows is reported.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stream.wire.rates import sample_index_at

log = logging.getLogger(__name__)

MODALITIES = ("emg", "acc", "gyro")
# A sign inside a longer recording (a guided session) is cut out with this much before its start and
# this much beyond its latest window end: as much rest as the synthetic isolated recordings have
# before the sign (1.9-2.4 s), the filters settled by the time a window starts.
SIGN_CONTEXT_S = (2.5, 1.0)
PADDING_VERSION = 1


class TrainingDataError(ValueError):
    """A dataset or split that cannot be trained on; the message says what and how to fix it."""


@dataclass(frozen=True)
class WindowPlan:
    window_samples: int
    end_offset: int  # model samples after the annotated end
    jitter: tuple[int, int]  # model samples, (earliest, latest) relative to the anchor


def plan_from_config(config, end_offset_s: float | None = None, jitter_s: tuple[float, float] = (-0.15, 0.30)) -> WindowPlan:
    from stream.dsp.windows import window_length_samples

    rate = float(config.preprocess.model_rate_hz)
    offset_s = config.segmentation.hold_off_s if end_offset_s is None else end_offset_s
    low, high = (round(value * rate) for value in jitter_s)
    if low > 0 or high < 0:
        raise ValueError(f"jitter_s = {jitter_s}: must contain 0 (val/test use the un-jittered end)")
    return WindowPlan(window_length_samples(config), round(offset_s * rate), (low, high))


@dataclass
class WindowSet:
    """Per recording, the preprocessed span holding every window it can give.

    ``spans[i, :, :]`` is (span, channels) with the modalities side by side; the window ending at
    span position ``e`` (exclusive) is ``spans[i, e - window : e]``. ``anchor[i]`` is the un-jittered end,
    ``lowest_end[i] .. highest_end[i]`` the ends allowed for jittering.
    """

    spans: np.ndarray
    anchor: np.ndarray
    lowest_end: np.ndarray
    highest_end: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    padded: np.ndarray  # samples of mirrored rest at the start of the un-jittered window
    channels: dict
    window_samples: int

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, rows: np.ndarray) -> WindowSet:
        rows = np.asarray(rows)
        return WindowSet(self.spans[rows], self.anchor[rows], self.lowest_end[rows], self.highest_end[rows],
                         self.labels[rows], self.ids[rows], self.padded[rows], self.channels, self.window_samples)

    def windows(self, rows: np.ndarray | None = None, ends: np.ndarray | None = None) -> dict:
        """Model inputs (modality -> (n, window, channels)) for ``rows`` ending at ``ends`` (default: anchors)."""
        rows = np.arange(len(self)) if rows is None else np.asarray(rows)
        ends = self.anchor[rows] if ends is None else np.asarray(ends)
        positions = ends[:, None] - self.window_samples + np.arange(self.window_samples)[None, :]
        stacked = self.spans[rows[:, None], positions]
        inputs, first = {}, 0
        for name, count in self.channels.items():
            inputs[name] = np.ascontiguousarray(stacked[:, :, first:first + count])
            first += count
        return inputs

    def jittered_ends(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(self.lowest_end[rows], self.highest_end[rows] + 1)


def _recording_span(block, annotation, emg_rate_hz, model_rate_hz, plan: WindowPlan):
    """(span array, anchor, lowest, highest, padded) for one recording, or None with a reason."""
    sign_start = sample_index_at(annotation.start_index / emg_rate_hz, model_rate_hz)
    sign_end = sample_index_at(annotation.end_index / emg_rate_hz, model_rate_hz)
    anchor = sign_end + plan.end_offset
    block_end = block.end_index
    if anchor > block_end:
        # The recording stops too soon after the sign: use its last complete window instead.
        anchor = block_end
    lowest = min(anchor, max(anchor + plan.jitter[0], sign_start + 1))
    highest = min(anchor + plan.jitter[1], block_end)
    first = lowest - plan.window_samples
    arrays = np.concatenate([block.emg, block.acc, block.gyro], axis=1)
    valid = block.valid
    start = first - block.first_index
    padding = max(0, -start)
    if padding:
        rest = arrays[:max(1, sign_start - block.first_index)]
        arrays = np.concatenate([np.pad(rest, ((padding, 0), (0, 0)), mode="symmetric")[:padding], arrays])
        valid = np.concatenate([np.ones(padding, dtype=bool), valid])
        start = 0
    stop = start + (highest - first)
    if not valid[start:stop].all():
        return None, "overlaps invalid samples"
    offset = first
    return (arrays[start:stop], anchor - offset, lowest - offset, highest - offset,
            max(0, block.first_index - (anchor - plan.window_samples))), None


def build_window_set(dataset, entries, config, plan: WindowPlan, progress_every: int = 500) -> WindowSet:
    """Preprocess ``entries`` (isolated recordings) and cut their spans."""
    from stream.dsp.preprocess import Preprocessor

    if not entries:
        raise TrainingDataError("no isolated recordings to build windows from: the dataset or split is empty")
    preprocessor = Preprocessor(config)
    model_rate_hz = config.preprocess.model_rate_hz
    width = plan.window_samples + plan.jitter[1] - plan.jitter[0]
    # After the sign: the latest window end, the preprocessor's emission delay and a margin.
    tail_s = (plan.end_offset + plan.jitter[1]) / float(model_rate_hz) + SIGN_CONTEXT_S[1]
    spans, anchors, lowest, highest, labels, ids, padded = [], [], [], [], [], [], []
    skipped: dict[str, int] = {}
    started = time.monotonic()
    loaded = (None, None)  # the signs of a guided recording are consecutive entries: read it once
    for position, entry in enumerate(entries, start=1):
        if loaded[0] != (entry.file, entry.key):
            loaded = ((entry.file, entry.key), dataset.load(entry))
        recording = loaded[1]
        if entry.annotation is None and len(recording.annotations) != 1:
            skipped["not exactly one annotation"] = skipped.get("not exactly one annotation", 0) + 1
            continue
        annotation = dataset.sign(entry, recording)
        if entry.annotation is not None:
            # One sign of a longer recording: what an isolated recording would hold around it.
            recording = recording.cut(annotation.start_index - round(SIGN_CONTEXT_S[0] * recording.emg_rate_hz),
                                      annotation.end_index + round(tail_s * recording.emg_rate_hz))
        block = preprocessor.process_recording(recording.emg, recording.acc, recording.gyro, recording.emg_first_index,
                                               recording.imu_first_index, emg_rate_hz=recording.emg_rate_hz,
                                               imu_rate_hz=recording.imu_rate_hz)
        result, reason = _recording_span(block, annotation, recording.emg_rate_hz, model_rate_hz, plan)
        if result is None:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        span, anchor, low, high, pad = result
        fixed = np.zeros((width, span.shape[1]), dtype=np.float32)
        fixed[:len(span)] = span
        spans.append(fixed)
        anchors.append(anchor)
        lowest.append(low)
        highest.append(high)
        labels.append(dataset.label_index(annotation.label))
        ids.append(entry.id)
        padded.append(pad)
        if progress_every and position % progress_every == 0:
            log.info("preprocessed %d/%d recordings (%.0f s)", position, len(entries), time.monotonic() - started)
    if skipped:
        log.warning("skipped recordings: %s", skipped)
    if not spans:
        raise TrainingDataError(f"no usable recordings among {len(entries)} (skipped: {skipped})")
    # One model input (and one teacher) per modality the layout has: absent ones have no columns.
    channels = {name: getattr(block, name).shape[1] for name in MODALITIES if getattr(block, name).shape[1]}
    return WindowSet(np.stack(spans), np.array(anchors), np.array(lowest), np.array(highest), np.array(labels),
                     np.array(ids), np.array(padded), channels, plan.window_samples)


def _cache_key(dataset, entries, config, plan: WindowPlan) -> str:
    from stream.dsp.preprocess import preprocessing_hash

    index_digest = hashlib.sha256((Path(dataset.directory) / "index.json").read_bytes()).hexdigest()
    identity = {"index": index_digest, "preprocessing": preprocessing_hash(config), "plan": plan.__dict__,
                "padding": PADDING_VERSION, "entries": hashlib.sha256("\n".join(e.id for e in entries).encode()).hexdigest()}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def load_window_set(dataset, entries, config, plan: WindowPlan, cache_dir: Path | None) -> WindowSet:
    """``build_window_set`` with an on-disk cache (npz, no pickle) keyed by data, preprocessing and plan."""
    if cache_dir is None:
        return build_window_set(dataset, entries, config, plan)
    path = Path(cache_dir) / f"windows-{_cache_key(dataset, entries, config, plan)}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as archive:
            log.info("windows from cache %s", path)
            channels = {name: int(count) for name, count in zip(MODALITIES, archive["channels"]) if count}
            return WindowSet(archive["spans"], archive["anchor"], archive["lowest_end"], archive["highest_end"],
                             archive["labels"], archive["ids"], archive["padded"], channels, plan.window_samples)
    windows = build_window_set(dataset, entries, config, plan)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One temporary name per process: two runs of a study may build the same windows at once.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial.npz")
    np.savez(temporary, spans=windows.spans, anchor=windows.anchor, lowest_end=windows.lowest_end,
             highest_end=windows.highest_end, labels=windows.labels, ids=windows.ids, padded=windows.padded,
             channels=np.array([windows.channels.get(name, 0) for name in MODALITIES]))
    temporary.replace(path)
    return windows


def check_balance(labels: np.ndarray, label_names, part: str, max_ratio: float = 3.0) -> None:
    """Every class present, and no class more than ``max_ratio`` times as frequent as another."""
    counts = np.bincount(labels, minlength=len(label_names))
    missing = [label_names[index] for index in np.flatnonzero(counts == 0)]
    if missing:
        raise TrainingDataError(f"{part} split has no recordings of {len(missing)} label(s): {', '.join(missing[:5])}"
                                f"{' ...' if len(missing) > 5 else ''}; every label needs examples (check the splits)")
    if counts.max() > max_ratio * counts.min():
        raise TrainingDataError(
            f"{part} split is unbalanced: {label_names[int(counts.argmax())]!r} has {counts.max()} recordings, "
            f"{label_names[int(counts.argmin())]!r} {counts.min()} (more than {max_ratio:g}x); record more of the "
            "rare labels or pass --allow-unbalanced")

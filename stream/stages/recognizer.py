"""The infer stage: frames in, recognitions out (no sockets; stream-infer and evaluation share it).

Preprocessor (filters, resampling, alignment) -> WindowAssembler (ring of recent model-rate samples)
-> Segmenter (where a sign starts and ends) -> Classifier (LiteRT student) on the window that ends
when the segmenter decided the sign was over: the whole sign and the hold-off after it, so the
window is ready the moment the sign is found and no later (latency is the hold-off plus the
filters' delay).

A window that overlaps a gap or invalid samples is never classified (counted instead); indices that
go backwards (a restarted source) reset every stage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from stream.dsp.preprocess import Preprocessor
from stream.dsp.windows import WindowAssembler
from stream.stages.segmenter import Segment, Segmenter
from stream.wire.rates import rate_to_string


@dataclass(frozen=True)
class Recognition:
    segment: Segment
    probabilities: np.ndarray
    class_index: int
    confidence: float
    inference_s: float


class Recognizer:
    def __init__(self, config, classifier):
        self.config = config
        self.classifier = classifier
        self.preprocessor = Preprocessor(config)
        self.windows = WindowAssembler(config)
        self.segmenter = Segmenter(config)
        self.model_rate_hz = config.preprocess.model_rate_hz
        self.counters = {"stream_restarts": 0, "windows_unavailable": 0, "windows_padded": 0,
                         "windows_dropped_gap": 0, "classifications": 0}
        self._early: list = []
        self._early_samples = 0
        rate = float(config.preprocess.model_rate_hz)
        self.earlier_offsets = sorted({round(seconds * rate) for seconds in config.segmentation.average_earlier_s} - {0})
        self.last_inference_s = 0.0
        self._next_emg_index: int | None = None

    def reset(self) -> None:
        """A new stream (the source restarted): forget all state."""
        self.preprocessor.reset()
        self.windows.reset()
        self.segmenter.reset()
        self._next_emg_index = None
        self._early = []
        self._early_samples = 0

    def all_counters(self) -> dict:
        return {**self.counters, **self.segmenter.counters, "dsp_gaps": self.preprocessor.gap_count}

    def process_frame(self, frame) -> list[Recognition]:
        if self._next_emg_index is not None and frame.emg_first_index < self._next_emg_index:
            # Indices went backwards: the source restarted. Start over from this frame.
            self.counters["stream_restarts"] += 1
            self.reset()
        block = self.preprocessor.process_frame(frame)
        self._next_emg_index = frame.emg_first_index + frame.emg.shape[0]
        if block is None:
            return []
        return self.process_block(block)

    def process_block(self, block) -> list[Recognition]:
        """Everything after the Preprocessor, for an AlignedBlock of any length (offline evaluation
        runs the Preprocessor on a whole recording, bitwise equal to frame by frame, then this)."""
        if len(block) == 0:
            return []
        if self._early_samples < self.windows.length:
            # The stream's first window length: kept so a sign before a full window of history can
            # still be classified, padded like the training windows of short recordings.
            if self._early and block.first_index != self._early[-1].end_index:
                self._early_samples = self.windows.length  # a jump: stop collecting, never bridge it
            else:
                self._early.append(block)
                self._early_samples += len(block)
        self.windows.hold(block)
        return self.classify(self.segmenter.process(block))

    def _padded_early_window(self, segment: Segment):
        """The window ending at ``segment.decided_index`` when the stream began less than a window
        before it: the missing start is the rest before the sign, mirrored (``np.pad`` "symmetric",
        as train.distill.data pads short isolated recordings). None if that is not possible."""
        from stream.dsp.windows import Window

        if not self._early:
            return None
        first = self._early[0].first_index
        end = segment.decided_index
        if end - first >= self.windows.length:
            return None  # a full window existed: it was refused for a reason (a gap), not padded
        held = {name: np.concatenate([getattr(block, name) for block in self._early]) for name in ("emg", "acc", "gyro")}
        valid = np.concatenate([block.valid for block in self._early])
        if end - first > len(valid) or end <= first or not valid[: end - first].all():
            return None
        padding = self.windows.length - (end - first)
        rest_samples = max(1, segment.start_index - first)
        arrays = {}
        for name, values in held.items():
            rest = values[:rest_samples]
            arrays[name] = np.ascontiguousarray(np.concatenate(
                [np.pad(rest, ((padding, 0), (0, 0)), mode="symmetric")[:padding], values[: end - first]]))
        return Window(int(end), arrays["emg"], arrays["acc"], arrays["gyro"], False)

    def classify(self, segments: list[Segment]) -> list[Recognition]:
        recognitions = []
        for segment in segments:
            window = self.windows.window_ending_at(segment.decided_index)
            if window is None:
                window = self._padded_early_window(segment)
                if window is not None:
                    self.counters["windows_padded"] += 1
            if window is None:
                self.counters["windows_unavailable"] += 1
                continue
            if window.flagged:
                self.counters["windows_dropped_gap"] += 1
                continue
            started = time.perf_counter()
            probabilities = np.asarray(self.classifier.predict(window), dtype=np.float32)
            # Optional: average over windows ending a little earlier (all already held: no added
            # latency), as the model was trained on jittered window ends.
            averaged = 1
            for offset in self.earlier_offsets:
                earlier = self.windows.window_ending_at(segment.decided_index - offset)
                if earlier is not None and not earlier.flagged:
                    probabilities = probabilities + np.asarray(self.classifier.predict(earlier), dtype=np.float32)
                    averaged += 1
            probabilities = probabilities / averaged
            inference_s = time.perf_counter() - started
            self.last_inference_s = inference_s
            self.counters["classifications"] += 1
            class_index = int(np.argmax(probabilities))
            recognitions.append(Recognition(segment, probabilities, class_index, float(probabilities[class_index]),
                                            inference_s))
        return recognitions

    def prediction_fields(self, recognition: Recognition, wall_offset_s: float) -> dict:
        """The protocol's prediction fields (without seq/session/t_wall): shared by stream-infer and
        stream.tools.evaluate so both feed the event stage identical maps."""
        rate = float(self.model_rate_hz)
        start_s = recognition.segment.start_index / rate
        end_s = recognition.segment.end_index / rate
        probabilities = np.clip(recognition.probabilities, 0.0, 1.0)
        return {
            "model_id": self.classifier.model_id,
            "class_index": recognition.class_index,
            "label": self.classifier.labels[recognition.class_index],
            "confidence": float(min(max(recognition.confidence, 0.0), 1.0)),
            "probabilities": [float(value) for value in probabilities],
            "start_index": recognition.segment.start_index,
            "end_index": recognition.segment.end_index,
            "decided_index": recognition.segment.decided_index,
            "forced": recognition.segment.forced,
            "rate": rate_to_string(self.model_rate_hz),
            "start_time_s": start_s,
            "end_time_s": end_s,
            "start_wall": start_s + wall_offset_s,
            "end_wall": end_s + wall_offset_s,
        }

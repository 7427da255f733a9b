"""stream-infer without its sockets: frame messages in, the predictions they complete out.

One object per stream-infer: the frame decoder (the configured layout's stream description),
the sequence tracker, the sample-clock-to-wall-clock map and the Recognizer. stream-infer calls
``process_frame_message`` for every frame it receives and publishes what it returns; the benchmark
(``infer_frame_us``) and the single-process pipeline call the same method, so the figure measured
is the daemon's own per-frame path.

Counters go into the ``counters`` map given at construction (stream-infer passes its status
counters), every name present from the start.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from stream.stages.recognizer import Recognizer
from stream.wire.clock import SampleClockMap
from stream.wire.protocol import FrameDecoder, FrameSpec, ProtocolError, SequenceTracker, decode_description

TIMING_SAMPLES = 4096
# Every counter of this stage, besides the Recognizer's own (docs/protocol.md lists them all).
STAGE_COUNTERS = (
    "frames", "frame_gaps", "frames_missed", "frames_out_of_order", "acquire_restarts", "frames_with_dropout",
    "inference_ms_total", "inference_ms_mean",
    "frame_processing_ms_p50", "frame_processing_ms_p99", "frame_delay_ms_p50", "frame_delay_ms_p99",
)


class InferenceStage:
    def __init__(self, config, classifier, session: str, counters: dict | None = None):
        self.recognizer = Recognizer(config, classifier)
        self.decoder = FrameDecoder(FrameSpec.from_config(config))
        self.tracker = SequenceTracker()
        self.clock = SampleClockMap()  # sample time -> this host's wall time
        self.session = session
        self.emg_rate = float(config.sensors.emg_rate_hz)
        self.counters = {} if counters is None else counters
        for name in (*STAGE_COUNTERS, *self.recognizer.all_counters()):
            self.counters.setdefault(name, 0)
        self.frame_processing_ms: deque[float] = deque(maxlen=TIMING_SAMPLES)
        self.frame_delay_ms: deque[float] = deque(maxlen=TIMING_SAMPLES)
        self.sequence = 0  # of the predictions

    @property
    def classifier(self):
        return self.recognizer.classifier

    def process_description(self, parts: list) -> None:
        """A publisher's stream description: kept, to say how its frames differ if they are refused;
        ProtocolError (now, once per heartbeat) if they will be."""
        description = decode_description(parts)
        self.decoder.observe_description(description)
        problem = self.decoder.mismatch(description)
        if problem is not None:
            raise ProtocolError(f"the frames publisher's stream description: {problem}")

    def process_frame_message(self, parts: list, received_wall: float | None = None) -> list[dict]:
        """One frame message; the predictions (protocol maps, ready to publish) of the signs it ended.
        ProtocolError for a message that does not follow docs/protocol.md (nothing is changed)."""
        received_wall = time.time() if received_wall is None else received_wall
        started = time.perf_counter()
        header, frame = self.decoder.decode(parts)
        counters = self.counters
        kind = self.tracker.observe(header.session, header.sequence)
        if kind == "restart":
            counters["acquire_restarts"] += 1
            self.recognizer.reset()
            self.clock.reset()
        elif kind == "gap":
            counters["frame_gaps"] += 1
            counters["frames_missed"] = self.tracker.missed
        elif kind == "old":
            counters["frames_out_of_order"] += 1
            return []
        counters["frames"] += 1
        if header.dropout:
            counters["frames_with_dropout"] += 1
        self.clock.observe((frame.emg_first_index + frame.emg.shape[0]) / self.emg_rate, header.published_wall)
        recognitions = self.recognizer.process_frame(frame)
        finished = time.perf_counter()
        inference_s = sum(recognition.inference_s for recognition in recognitions) if recognitions else 0.0
        processing_ms = (finished - started - inference_s) * 1000
        self.frame_processing_ms.append(processing_ms)
        self.frame_delay_ms.append((received_wall - header.published_wall) * 1000)
        predictions = []
        for recognition in recognitions:
            prediction = self.recognizer.prediction_fields(recognition, self.clock.offset_s or 0.0)
            prediction.update(
                seq=self.sequence, session=self.session, t_wall=time.time(), source_session=header.session,
                timing={"frame_published_wall": header.published_wall, "frame_received_wall": received_wall,
                        "dsp_ms": processing_ms, "inference_ms": recognition.inference_s * 1000},
            )
            self.sequence += 1
            counters["inference_ms_total"] += recognition.inference_s * 1000
            predictions.append(prediction)
        return predictions

    def update_counters(self) -> dict:
        """The Recognizer's counters and the timing percentiles, into ``counters`` (for a status)."""
        counters = self.counters
        counters.update(self.recognizer.all_counters())
        for name, samples in (("frame_processing_ms", self.frame_processing_ms), ("frame_delay_ms", self.frame_delay_ms)):
            if samples:
                values = np.fromiter(samples, dtype=np.float64)
                counters[f"{name}_p50"] = float(np.percentile(values, 50))
                counters[f"{name}_p99"] = float(np.percentile(values, 99))
        if counters.get("classifications"):
            counters["inference_ms_mean"] = counters["inference_ms_total"] / counters["classifications"]
        return counters

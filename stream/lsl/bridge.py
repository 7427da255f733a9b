"""The stage behind stream-lsl: decoded frames and sign events in, LSL samples out (no sockets).

One outlet per modality of the layout (``stream.lsl.streams.outlet_info``) and one marker outlet.
A frame's samples get LSL timestamps from the sample clock of its acquisition run
(``stream.wire.clock.SampleClockMap``): frames lost on the way leave a hole in the LSL timestamps
exactly as long as what was lost, a sensor dropout stays NaN, and a restarted stream-acquire (a new
frames session, its sample clock at zero again) starts a new map. Timestamps never go back: when
the offset estimate falls (a frame arrived faster than any before), the offset applied follows it
by at most half the shortest sample period per frame (0.45 ms per 13.5 ms frame for Trigno).

A sign event becomes one marker sample at its end time: a JSON string with ``label``, ``confidence``,
``class_index``, ``model_id``, ``start`` and ``end`` (LSL clock seconds), ``start_time_s`` and
``end_time_s`` (the sensor clock of ``source_session``), ``source_session`` and ``clock``: ``frames``
when the times come from that run's sample clock map, ``wall`` when no frame of that run was seen
here and the event's wall-clock times were moved to the LSL clock instead.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from fractions import Fraction

from stream.wire.clock import SampleClockMap
from stream.lsl.streams import marker_info, outlet_info

KEPT_RUNS = 8  # acquisition runs whose clock maps are kept for late events


class LslBridge:
    """Outlets for ``layout``; ``push_frame`` and ``push_event`` turn messages into LSL samples."""

    def __init__(self, pylsl, layout, prefix: str, source_id: str, clock=None, wall_clock=time.time) -> None:
        self.pylsl = pylsl
        self.layout = layout
        self.clock = clock or pylsl.local_clock
        self.wall_clock = wall_clock
        self.infos = {stream.modality: outlet_info(pylsl, layout, stream.modality, prefix, source_id)
                      for stream in layout.streams}
        self.outlets = {modality: pylsl.StreamOutlet(info, 0, 10) for modality, info in self.infos.items()}
        self.marker_outlet = pylsl.StreamOutlet(marker_info(pylsl, prefix, source_id))
        self.rates = {stream.modality: Fraction(stream.rate_hz) for stream in layout.streams}
        self.emg_end_offset = layout.emg_samples_per_frame
        self.maps: OrderedDict[str, SampleClockMap] = OrderedDict()
        self.applied: dict[str, float] = {}
        self.max_slew_s = 0.5 / float(max(self.rates.values()))
        self.samples_pushed = 0
        self.markers_wall_clock = 0

    def clock_map(self, session: str) -> SampleClockMap:
        clock_map = self.maps.get(session)
        if clock_map is None:
            clock_map = self.maps[session] = SampleClockMap()
            while len(self.maps) > KEPT_RUNS:
                self.applied.pop(self.maps.popitem(last=False)[0], None)
        return clock_map

    def applied_offset(self, session: str, estimate: float) -> float:
        """The offset the samples get: the map's, except that a fall (a faster frame came) is slewed
        by at most half the shortest sample period per frame, so the timestamps never go back."""
        applied = self.applied.get(session)
        if applied is None or estimate >= applied:
            applied = estimate
        else:
            applied = max(estimate, applied - self.max_slew_s)
        self.applied[session] = applied
        return applied

    def push_frame(self, session: str, frame, received_lsl: float | None = None) -> None:
        """Push one decoded frame of acquisition run ``session`` (``received_lsl``: when it arrived,
        on the LSL clock; default now)."""
        received_lsl = self.clock() if received_lsl is None else received_lsl
        clock_map = self.clock_map(session)
        emg_rate = self.rates["emg"]
        clock_map.observe(float((frame.emg_first_index + self.emg_end_offset) / emg_rate), received_lsl)
        offset = self.applied_offset(session, clock_map.offset_s)
        for modality, outlet in self.outlets.items():
            samples = getattr(frame, modality)
            first = frame.emg_first_index if modality == "emg" else frame.imu_first_index
            last_time = offset + float((first + samples.shape[0] - 1) / self.rates[modality])
            outlet.push_chunk(samples, last_time, True)
            self.samples_pushed += samples.shape[0]

    def marker(self, event: dict) -> tuple[dict, float]:
        """The marker (its JSON fields) for a sign event, and its timestamp (the event's end)."""
        clock_map = self.maps.get(str(event.get("source_session", "")))
        offset = self.applied.get(str(event.get("source_session", "")))
        if clock_map is not None and offset is not None:  # the offset its samples were pushed with
            start, end, clock = offset + float(event["start_time_s"]), offset + float(event["end_time_s"]), "frames"
        else:  # no frame of that run seen here: its wall-clock times, moved to the LSL clock
            wall_to_lsl = self.clock() - self.wall_clock()
            start, end, clock = (float(event["start_wall"]) + wall_to_lsl, float(event["end_wall"]) + wall_to_lsl, "wall")
        marker = {"label": str(event["label"]), "confidence": float(event["confidence"]),
                  "class_index": int(event["class_index"]), "model_id": str(event["model_id"]),
                  "start": start, "end": end, "start_time_s": float(event["start_time_s"]),
                  "end_time_s": float(event["end_time_s"]), "source_session": str(event.get("source_session", "")),
                  "clock": clock}
        return marker, end

    def push_event(self, event: dict) -> dict:
        marker, timestamp = self.marker(event)
        if marker["clock"] == "wall":
            self.markers_wall_clock += 1
        self.marker_outlet.push_sample([json.dumps(marker, sort_keys=True)], timestamp, True)
        return marker

    def consumers(self) -> int:
        """Outlets with at least one inlet connected now."""
        return sum(bool(outlet.have_consumers()) for outlet in (*self.outlets.values(), self.marker_outlet))

    def close(self) -> None:
        self.outlets.clear()
        self.marker_outlet = None

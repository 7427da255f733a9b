"""LslSource: frames of the configured layout from Lab Streaming Layer streams (docs/LSL.md).

Each modality of the layout comes from one LSL stream, chosen by name and type in ``[acquire.lsl]``
(``<modality>_name``, ``<modality>_type``; an empty one matches any). At start every stream must be
found within ``resolve_timeout_s`` and fit the layout (channel count, nominal rate equal to the
layout's exact rate within float precision, numeric samples); anything else is a ValueError naming
the stream and what the layout needs, which stream-acquire prints in one line.

**Time is sample counting.** The streams start together at the latest first timestamp (earlier
samples of the others are dropped so that sample 0 of every stream is the same instant), and from
then on each sample received is the next index of its stream. LSL's timestamps (clock-corrected to
this host) only check the counting. A sample off its counted position by more than one frame period
is judged on the next two frames of samples: when even the least delayed of them is more than a
frame late, samples were lost (a radio drop, a stalled app) and the missing ones become NaN rows with
an ``LslGap`` in ``gaps`` and a warning; more than a frame early, the sender's clock jumped back
(``clock_jumps``, a warning; counting goes on); otherwise one chunk came late (apps stamp chunks when
they push them) and nothing is reported. Smaller deviations are jitter and drift, which the expected
position follows slowly. When every stream lost the same whole frames they are not
sent at all: the frame indices jump, as after a Trigno reconnect. No gap is ever closed silently.
A stream silent for ``stall_timeout_s`` is logged as a stall (the samples it lost become a gap when
it resumes: LSL reconnects an inlet by itself when the outlet comes back); after ``max_stall_s``
(0: never) the source gives up with an OSError.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from stream.lsl.counting import LslClockJump, LslGap, SampleCounter
from stream.lsl.library import LslUnavailable, load_pylsl
from stream.lsl.streams import LslStreamError, check_stream, exact_rate_of
from stream.wire.frames import Frame, absent

log = logging.getLogger("stream.sources.lsl")
PULL_TIMEOUT_S = 0.05


class LslSourceError(ValueError):
    """An [acquire.lsl] stream that cannot be used; the message names it and the fix."""


class LslStallError(OSError):
    """A stream stayed silent longer than [acquire.lsl] max_stall_s."""


class _Stream:
    """One inlet and the counting of its samples (``stream.lsl.counting.SampleCounter``)."""

    def __init__(self, pylsl, modality: str, inlet, info, counter: SampleCounter) -> None:
        self.modality, self.inlet, self.info, self.counter = modality, inlet, info, counter
        self.rate = counter.rate
        self.rows_per_frame = counter.rows_per_frame
        formats = {pylsl.cf_float32: np.float32, pylsl.cf_double64: np.float64, pylsl.cf_int8: np.int8,
                   pylsl.cf_int16: np.int16, pylsl.cf_int32: np.int32, pylsl.cf_int64: np.int64}
        self.max_samples = 1024
        self.scratch = np.empty((self.max_samples, info.channel_count()), formats[info.channel_format()])
        self.buffer = counter.buffer
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []  # before the common start
        self.last_arrival = time.monotonic()
        self.stalled = False

    def pull(self, timeout: float) -> tuple[np.ndarray, np.ndarray]:
        _, stamps = self.inlet.pull_chunk(timeout=timeout, max_samples=self.max_samples, dest_obj=self.scratch)
        count = len(stamps)
        if count:
            self.last_arrival = time.monotonic()
        return self.scratch[:count].astype(np.float32), np.asarray(stamps, np.float64)


class LslSource:
    """Iterator of Frames from the configured LSL streams; ``close()`` / ``request_stop()`` end it."""

    def __init__(self, config, pylsl=None) -> None:
        try:
            self.pylsl = pylsl or load_pylsl()
        except LslUnavailable as error:
            raise LslSourceError(str(error)) from None
        self.settings = config.acquire.lsl
        self.layout = layout = config.layout
        self.emg_per_frame, self.imu_per_frame = layout.emg_samples_per_frame, layout.imu_samples_per_frame
        self.frame_s = float(layout.frame_period_s)
        self.gaps: list[LslGap] = []
        self.clock_jumps: list[LslClockJump] = []
        self.stalls = 0
        self.next_frame = 0
        self.started = False
        self._stop = threading.Event()
        self.streams: dict[str, _Stream] = {}
        try:
            for stream in layout.streams:
                self.streams[stream.modality] = self._open(stream.modality, stream.rate_hz, stream.samples_per_frame)
            self._first_clock_offsets()
        except Exception:
            self.close()
            raise

    def _open(self, modality: str, rate, rows_per_frame: int) -> _Stream:
        pylsl, settings = self.pylsl, self.settings
        name, kind = getattr(settings, f"{modality}_name"), getattr(settings, f"{modality}_type")
        predicate = " and ".join(f"{key}='{value}'" for key, value in (("name", name), ("type", kind)) if value)
        key = f"[acquire.lsl] {modality}_name = {name!r}, {modality}_type = {kind!r}"
        found = pylsl.resolve_bypred(predicate, 1, settings.resolve_timeout_s)
        if not found:
            seen = pylsl.resolve_streams(min(1.0, settings.resolve_timeout_s))
            listed = ", ".join(f"{info.name()!r} (type {info.type()!r})" for info in seen[:10]) or "none"
            raise LslSourceError(f"{key}: no LSL stream matching {predicate} within {settings.resolve_timeout_s:g} s "
                                 f"(streams seen: {listed}); start the device's LSL app, or set the name/type")
        if len(found) > 1:
            log.warning("%s: %d streams match (%s); using the first (source_id %r)", key, len(found),
                        ", ".join(info.source_id() for info in found), found[0].source_id())
        inlet = pylsl.StreamInlet(found[0], max_buflen=60, recover=True, processing_flags=pylsl.proc_clocksync)
        try:
            info = inlet.info(settings.resolve_timeout_s)
        except Exception as error:  # pylsl.TimeoutError and a lost outlet
            raise LslSourceError(f"{key}: stream {found[0].name()!r} found but its full description did not come "
                                 f"within {settings.resolve_timeout_s:g} s ({error})") from None
        where = f"{key}: stream {info.name()!r} (source_id {info.source_id()!r})"
        if info.channel_format() in (pylsl.cf_string, getattr(pylsl, "cf_undefined", -1)):
            raise LslSourceError(f"{where}: carries strings, not samples (a marker stream?); choose the {modality} stream")
        try:
            check_stream(where, modality, info.channel_count(), info.nominal_srate(), self.layout, exact_rate_of(info))
        except LslStreamError as error:
            raise LslSourceError(str(error)) from None
        inlet.open_stream(settings.resolve_timeout_s)
        try:  # starts the clock-offset exchange in the background (see _first_clock_offsets)
            inlet.time_correction(0.0)
        except Exception:  # pylsl.TimeoutError: not measured yet, as expected
            pass
        log.info("%s: %s, %d channels at %r Hz", modality, info.name(), info.channel_count(), info.nominal_srate())
        counter = SampleCounter(modality, rate, rows_per_frame, self.frame_s, info.channel_count(),
                                self.report_gap, self.report_clock_jump)
        return _Stream(pylsl, modality, inlet, info, counter)

    def _first_clock_offsets(self) -> None:
        """Wait for every inlet's first clock offset (about 0.65 s here, all streams at once) at start,
        rather than in the first pull of samples."""
        for stream in self.streams.values():
            try:
                stream.inlet.time_correction(self.settings.resolve_timeout_s)
            except Exception as error:  # pylsl.TimeoutError, or the outlet went away
                raise LslSourceError(f"[acquire.lsl] {stream.modality} stream {stream.info.name()!r} gave no clock "
                                     f"offset within {self.settings.resolve_timeout_s:g} s ({error})") from None

    # ------------------------------------------------------------------------------- gaps

    def report_gap(self, gap: LslGap, seconds: float) -> None:
        self.gaps.append(gap)
        log.warning("LSL %s gap: %d samples lost (%s samples %d-%d): %s", gap.modality, gap.end_index - gap.start_index,
                    gap.modality, gap.start_index, gap.end_index, gap.reason)

    def report_clock_jump(self, jump: LslClockJump) -> None:
        self.clock_jumps.append(jump)
        log.warning("LSL %s clock jump: timestamps went back %.1f ms at sample %d (counting goes on)",
                    jump.modality, jump.seconds * 1000, jump.index)

    # ------------------------------------------------------------------------------- frames

    def __iter__(self) -> LslSource:
        return self

    def _start(self) -> None:
        """All streams have samples: drop those before the latest first timestamp (a common sample 0)."""
        start = max(stream.pending[0][1][0] for stream in self.streams.values())
        for stream in self.streams.values():
            samples = np.concatenate([chunk for chunk, _ in stream.pending])
            stamps = np.concatenate([chunk for _, chunk in stream.pending])
            stream.pending.clear()
            # The leading samples before the common start (not a sort: the stamps may jump back later).
            at_start = np.flatnonzero(stamps >= start - 0.5 / stream.rate)
            skip = int(at_start[0]) if len(at_start) else len(stamps)
            stream.counter.place(samples[skip:], stamps[skip:])
        self.started = True

    def _ready(self) -> bool:
        return self.started and all(stream.buffer.available >= stream.rows_per_frame for stream in self.streams.values())

    def _pull(self) -> None:
        lacking = next((stream for stream in self.streams.values()
                        if (not stream.pending if not self.started else stream.buffer.available < stream.rows_per_frame)),
                       None)
        for stream in self.streams.values():
            samples, stamps = stream.pull(PULL_TIMEOUT_S if stream is lacking else 0.0)
            if len(stamps):
                if stream.stalled:
                    log.info("LSL %s stream resumed", stream.modality)
                    stream.stalled = False
                if self.started:
                    stream.counter.place(samples, stamps)
                else:
                    stream.pending.append((samples, stamps))
            else:
                self._check_stall(stream)
        if not self.started and all(stream.pending for stream in self.streams.values()):
            self._start()

    def _check_stall(self, stream: _Stream) -> None:
        silent = time.monotonic() - stream.last_arrival
        if silent >= self.settings.stall_timeout_s and not stream.stalled:
            stream.stalled = True
            self.stalls += 1
            log.warning("LSL %s stream %r silent for %.1f s (stall %d); waiting for it", stream.modality,
                        stream.info.name(), silent, self.stalls)
        if self.settings.max_stall_s and silent >= self.settings.max_stall_s:
            raise LslStallError(f"LSL {stream.modality} stream {stream.info.name()!r} silent for {silent:.1f} s "
                                f"([acquire.lsl] max_stall_s = {self.settings.max_stall_s:g})")

    def __next__(self) -> Frame:
        while not self._ready():
            if self._stop.is_set():
                raise StopIteration
            self._pull()
        if self._stop.is_set():
            raise StopIteration
        # Frames lost on every stream alike are not sent: the indices jump (never a silent join).
        skippable = min(stream.buffer.head_fill() // stream.rows_per_frame for stream in self.streams.values())
        if skippable:
            for stream in self.streams.values():
                stream.buffer.take(skippable * stream.rows_per_frame)
            log.warning("LSL: %d frames lost on every stream; frame indices jump from %d to %d", skippable,
                        self.next_frame, self.next_frame + skippable)
            self.next_frame += skippable
            return next(self)
        arrays = {modality: stream.buffer.take(stream.rows_per_frame) for modality, stream in self.streams.items()}
        number = self.next_frame
        self.next_frame += 1
        imu = absent(self.imu_per_frame)
        return Frame(number, number * self.emg_per_frame, number * self.imu_per_frame, arrays["emg"],
                     arrays.get("acc", imu), arrays.get("gyro", imu))

    def request_stop(self) -> None:
        """End the iteration within one pull timeout (safe from a signal handler: sets a flag)."""
        self._stop.set()

    def close(self) -> None:
        """Close every inlet. Destroying one takes liblsl about 0.5 s (measured here), so they are
        destroyed side by side, each on its own thread (waited for up to 1 s in all)."""
        self._stop.set()
        streams = list(self.streams.values())
        self.streams.clear()
        for stream in streams:
            try:
                stream.inlet.close_stream()
            except Exception:  # closing a lost inlet
                pass

        def destroy(stream: _Stream) -> None:
            stream.inlet = None  # the last reference: pylsl destroys the inlet here, off the caller's thread

        threads = [threading.Thread(target=destroy, args=(stream,), daemon=True) for stream in streams]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 1.0
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

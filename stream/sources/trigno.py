"""TrignoSource: frames from a Delsys Trigno base station (or stream-trigno-emulator).

An iterator of ``stream.wire.frames.Frame`` paced by the base station: ``next()`` blocks on the data
ports. The first ``next()`` connects. When the link dies (no complete frame within
``[acquire.trigno] timeout_s``, a closed socket, a refused connection) the source reconnects with
doubling back-off (``reconnect_backoff_s``) and carries on; after ``max_reconnect_attempts``
consecutive failures (a lost link, a failed connect, a connect that delivers no frame; 0 = never
give up) it raises ``TrignoConnectionError`` (an OSError). A base that answers but is set up unlike
the config raises ``TrignoSetupError`` at once: no retry can fix it.

The frames are the configured layout's (``[sensors] profile``): the client checks that the base's
sensor mode sends its rates and modalities before START, and refuses a mismatch in one line naming
what the base sends, what the config needs and the profile that fits the base. A modality the layout
leaves out is an array with no columns, whatever the base sends.

Time is sample counting: frame k holds sEMG samples E*k.. and IMU samples A*k.. (E, A: the layout's
samples per frame; 15 and 2 for the default profile), as exact integers. The protocol has
no timestamps, so the frames lost while the link was down are estimated from the monotonic clock
(rounded to whole frames) and skipped in the sample indices: downstream sees the jump in
``emg_first_index``/``imu_first_index`` and ``gaps`` lists each one, never a silently closed gap.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from stream.trigno.client import ClientSettings, TrignoClient, TrignoConnectionError
from stream.trigno.convert import RowDecoder
from stream.trigno.protocol import layout_for
from stream.wire.frames import Frame, absent

log = logging.getLogger("stream.sources.trigno")


@dataclass(frozen=True)
class TrignoGap:
    """Frames lost while the link was down, in sample indices (end exclusive)."""

    emg_start: int
    emg_end: int
    imu_start: int
    imu_end: int
    frames: int
    reason: str


def settings_from_config(config) -> ClientSettings:
    trigno = config.acquire.trigno
    return ClientSettings(
        host=trigno.host, command_port=trigno.command_port, emg_port=trigno.emg_port, aux_port=trigno.aux_port,
        layout=layout_for(trigno.legacy_aux), slots=tuple(trigno.slots), emg_rate_hz=config.sensors.emg_rate_hz,
        imu_rate_hz=config.sensors.imu_rate_hz, timeout_s=trigno.timeout_s,
        backwards_compatibility=trigno.backwards_compatibility, upsample=trigno.upsample,
        modalities=tuple(config.layout.modalities), profile=config.sensors.profile,
    )


class TrignoSource:
    """Frames of the configured slots, in ``[sensors] names`` order, with reconnects and gaps."""

    def __init__(self, config) -> None:
        trigno = config.acquire.trigno
        if len(trigno.slots) != len(config.sensors.names):
            raise ValueError(
                f"[acquire.trigno] slots has {len(trigno.slots)} entries but [sensors] names has "
                f"{len(config.sensors.names)}: give one base-station slot per sensor, in the same order"
            )
        if trigno.legacy_aux and "gyro" in config.sensors.modalities:
            raise ValueError(
                "[acquire.trigno] legacy_aux = true carries no gyroscope, but [sensors] modalities includes 'gyro': "
                "use the 144-value AUX layout (legacy_aux = false, ports 50043/50044) or drop 'gyro' from modalities"
            )
        self.settings = settings_from_config(config)
        self.layout = config.layout
        self.emg_per_frame = self.layout.emg_samples_per_frame
        self.imu_per_frame = self.layout.imu_samples_per_frame
        self.backoff_s = tuple(trigno.reconnect_backoff_s)
        self.max_attempts = trigno.max_reconnect_attempts
        self.gaps: list[TrignoGap] = []
        self.frames = 0
        self.reconnects = 0
        self.next_frame_index = 0
        self._client: TrignoClient | None = None
        self._decoder: RowDecoder | None = None
        self._last_frame_time: float | None = None
        self._lost_reason = ""
        self._dropped_earlier = 0
        self._failures = 0
        self._closed = threading.Event()

    def __iter__(self) -> TrignoSource:
        return self

    def __next__(self) -> Frame:
        while True:
            if self._closed.is_set():
                raise StopIteration
            if self._client is None:
                self._connect()
                continue
            try:
                emg_rows, aux_rows = self._client.read_frame()
            except TrignoConnectionError as error:
                if self._closed.is_set():  # request_stop() shut the data ports under the read
                    raise StopIteration from None
                log.warning("Trigno link lost after %d frames: %s", self.frames, error)
                self._lost_reason = str(error)
                self._disconnect()
                self._count_failure(error)
                continue
            self._failures = 0
            return self._frame(emg_rows, aux_rows)

    def _frame(self, emg_rows: np.ndarray, aux_rows: np.ndarray) -> Frame:
        now = time.monotonic()
        if self._lost_reason and self._last_frame_time is not None:
            self._record_gap(now)
        self._lost_reason = ""
        self._last_frame_time = now
        emg, acc, gyro = self._decoder.decode(emg_rows, aux_rows)
        # The base sends every AUX channel; a modality the layout leaves out is not passed on.
        acc, gyro = (array if name in self.layout.modalities else absent(self.imu_per_frame)
                     for name, array in (("acc", acc), ("gyro", gyro)))
        index = self.next_frame_index
        self.next_frame_index += 1
        self.frames += 1
        return Frame(index, index * self.emg_per_frame, index * self.imu_per_frame, emg, acc, gyro)

    def _record_gap(self, now: float) -> None:
        # The first frame of the new stream was sampled about one frame period before it arrived, as
        # the last one before the loss was: the frames in between are the elapsed periods less one.
        missing = max(0, round((now - self._last_frame_time) / float(self.layout.frame_period_s)) - 1)
        start = self.next_frame_index
        self.next_frame_index += missing
        gap = TrignoGap(start * self.emg_per_frame, self.next_frame_index * self.emg_per_frame,
                        start * self.imu_per_frame, self.next_frame_index * self.imu_per_frame, missing,
                        self._lost_reason)
        self.gaps.append(gap)
        log.warning("Trigno gap: %d frames lost (sEMG samples %d-%d): %s", missing, gap.emg_start, gap.emg_end,
                    gap.reason)

    def _count_failure(self, error: Exception) -> None:
        """A failed connect, or a link lost before or after data: give up after too many in a row."""
        self._failures += 1
        if self.max_attempts and self._failures >= self.max_attempts:
            raise TrignoConnectionError(f"Trigno base unreachable after {self._failures} attempts: {error}") from None

    def _connect(self) -> None:
        if self._failures:
            first_s, max_s = self.backoff_s
            wait_s = min(first_s * 2 ** (self._failures - 1), max_s)
            log.info("reconnecting to the Trigno base in %.2f s", wait_s)
            if self._closed.wait(wait_s):
                return
        client = TrignoClient(self.settings)
        try:
            client.connect()
        except TrignoConnectionError as error:
            log.warning("Trigno connect failed: %s", error)
            self._count_failure(error)
            return
        if self._last_frame_time is not None:
            self.reconnects += 1
        self._client = client
        self._decoder = RowDecoder(client.mapping)

    def _disconnect(self) -> None:
        if self._decoder is not None:
            self._dropped_earlier += self._decoder.dropped_sensor_frames
            self._decoder = None
        if self._client is not None:
            self._client.close(send_stop=False)
            self._client = None

    @property
    def dropped_sensor_frames(self) -> int:
        """Sensor-frames that arrived as all zeros (a sensor out of range) and were made NaN."""
        return self._dropped_earlier + (0 if self._decoder is None else self._decoder.dropped_sensor_frames)

    def request_stop(self) -> None:
        """End the iteration soon: safe from a signal handler (sets an event, shuts the data ports so
        a read waiting up to ``timeout_s`` on a silent base returns at once; sends nothing). close()
        still sends STOP and QUIT afterwards."""
        self._closed.set()
        client = self._client
        if client is not None:
            client.shut_data_ports()

    def close(self) -> None:
        """Send STOP and QUIT if connected and close every socket. Safe to call twice, from any thread."""
        self._closed.set()
        if self._client is not None:
            self._client.close(send_stop=True)
            self._client = None

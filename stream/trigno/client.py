"""A client for the Trigno SDK TCP protocol: the command session and the two data ports.

``TrignoClient.connect()`` reads the banner, configures the base (backwards compatibility,
upsampling, little-endian), queries the system and every configured slot, checks that what the base
reports is what the config expects (paired sensors, channel counts, rates, units), connects the EMG
and AUX data ports and sends START. ``read_frame()`` then returns the raw float32 rows of one 13.5 ms
frame from each port, assembled exactly whatever sizes the kernel hands ``recv`` (several public
clients lose alignment there). Every wait has a deadline: a silent or closed peer raises
``TrignoConnectionError``; ``TrignoSource`` reconnects on it. A base that is reachable but set up
differently from the config raises ``TrignoSetupError``, which no reconnect can fix.
"""

from __future__ import annotations

import logging
import select
import socket
import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from stream.trigno.convert import AXES, SlotMapping
from stream.trigno.protocol import (
    DataLayout,
    MessageSplitter,
    TrignoProtocolError,
    check_reply,
    encode_command,
    exact_rate,
    parse_banner,
    parse_float,
    parse_int,
    parse_yes_no,
    unit_factor,
)
from stream.wire.rates import FRAME_PERIOD_S, samples_per_frame

log = logging.getLogger("stream.trigno.client")


class TrignoConnectionError(ConnectionError):
    """The base went silent, closed a socket, or could not be reached: reconnecting may help."""


class TrignoSetupError(ConnectionError):
    """The base answers but is not set up as the config expects: fix the base or the config.
    Never retried; an OSError so that stream-acquire reports it as its source failing."""


@dataclass(frozen=True)
class ChannelInfo:
    rate_hz: Fraction
    samples_per_frame: int
    gain: float
    unit: str


@dataclass(frozen=True)
class SlotInfo:
    slot: int
    paired: bool
    type_code: str = ""
    mode: int = -1
    channel_count: int = 0
    emg_channel_count: int = 0
    aux_channel_count: int = 0
    start_index: int = 0
    channels: tuple[ChannelInfo, ...] = ()


@dataclass(frozen=True)
class BaseInfo:
    protocol_version: str
    backwards_compatibility: bool
    upsampling: bool
    frame_interval_s: float
    max_samples_emg: int
    max_samples_aux: int
    slots: tuple[SlotInfo, ...]


@dataclass(frozen=True)
class ClientSettings:
    host: str
    command_port: int
    emg_port: int
    aux_port: int
    layout: DataLayout
    slots: tuple[int, ...]
    emg_rate_hz: Fraction
    imu_rate_hz: Fraction
    timeout_s: float
    backwards_compatibility: bool = True
    upsample: bool = False


class CommandSession:
    """One connection to the command port: banner first, then one reply per command."""

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._splitter = MessageSplitter()
        self._pending: list[str] = []
        try:
            self._socket = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as error:
            raise TrignoConnectionError(f"cannot connect to the Trigno command port {host}:{port}: {error}") from None
        try:
            self.protocol_version = parse_banner(self._receive("the banner"))
        except BaseException:
            self.close()
            raise

    def query(self, command: str) -> str:
        try:
            self._socket.sendall(encode_command(command))
        except OSError as error:
            raise TrignoConnectionError(f"command port closed while sending {command!r}: {error}") from None
        return self._receive(repr(command))

    def _receive(self, waiting_for: str) -> str:
        deadline = time.monotonic() + self.timeout_s
        while not self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TrignoConnectionError(f"no reply to {waiting_for} within {self.timeout_s} s")
            self._socket.settimeout(remaining)
            try:
                data = self._socket.recv(4096)
            except socket.timeout:
                continue
            except OSError as error:
                raise TrignoConnectionError(f"command port failed waiting for {waiting_for}: {error}") from None
            if not data:
                raise TrignoConnectionError(f"command port closed by the server waiting for {waiting_for}")
            self._pending.extend(self._splitter.feed(data))
        return self._pending.pop(0)

    def close(self) -> None:
        _shut(self._socket)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not connected any more


def _shut(sock: socket.socket) -> None:
    _shutdown(sock)
    try:
        sock.close()
    except OSError:
        pass


def read_slot(session: CommandSession, slot: int) -> SlotInfo:
    prefix = f"SENSOR {slot}"
    paired_query = f"{prefix} PAIRED?"
    if not parse_yes_no(paired_query, session.query(paired_query)):
        return SlotInfo(slot, paired=False)

    def ask(what: str) -> tuple[str, str]:
        command = f"{prefix} {what}"
        return command, session.query(command)

    type_code = check_reply(*ask("TYPE?"))
    mode = parse_int(*ask("MODE?"))
    channel_count = parse_int(*ask("CHANNELCOUNT?"))
    emg_count = parse_int(*ask("EMGCHANNELCOUNT?"))
    aux_count = parse_int(*ask("AUXCHANNELCOUNT?"))
    start_index = parse_int(*ask("STARTINDEX?"))
    channels = []
    for channel in range(1, channel_count + 1):
        rate = exact_rate(parse_float(*ask(f"CHANNEL {channel} RATE?")))
        samples = parse_int(*ask(f"CHANNEL {channel} SAMPLES?"))
        gain = parse_float(*ask(f"CHANNEL {channel} GAIN?"))
        unit = check_reply(*ask(f"CHANNEL {channel} UNITS?"))
        channels.append(ChannelInfo(rate, samples, gain, unit))
    return SlotInfo(slot, True, type_code, mode, channel_count, emg_count, aux_count, start_index, tuple(channels))


def configure(session: CommandSession, settings: ClientSettings) -> None:
    # STOP first: a client that died (or a link that dropped) may have left the base streaming, and
    # a streaming base refuses setting changes.
    for command in (
        "STOP",
        "BACKWARDS COMPATIBILITY " + ("ON" if settings.backwards_compatibility else "OFF"),
        "UPSAMPLE " + ("ON" if settings.upsample else "OFF"),
        "ENDIAN LITTLE",
    ):
        check_reply(command, session.query(command))


def describe_base(session: CommandSession, slots: tuple[int, ...]) -> BaseInfo:
    def ask(command: str) -> tuple[str, str]:
        return command, session.query(command)

    return BaseInfo(
        protocol_version=session.protocol_version,
        backwards_compatibility=parse_yes_no(*ask("BACKWARDS COMPATIBILITY?")),
        upsampling=parse_yes_no(*ask("UPSAMPLING?")),
        frame_interval_s=parse_float(*ask("FRAME INTERVAL?")),
        max_samples_emg=parse_int(*ask("MAX SAMPLES EMG?")),
        max_samples_aux=parse_int(*ask("MAX SAMPLES AUX?")),
        slots=tuple(read_slot(session, slot) for slot in slots),
    )


def check_setup(info: BaseInfo, settings: ClientSettings) -> SlotMapping:
    """The slot mapping with unit factors, or TrignoSetupError saying what differs and how to fix it."""
    if abs(info.frame_interval_s - float(FRAME_PERIOD_S)) > 1e-6:
        raise TrignoSetupError(f"base reports a frame interval of {info.frame_interval_s} s; this client needs 0.0135 s")
    emg_per_frame, imu_per_frame = samples_per_frame(settings.emg_rate_hz), samples_per_frame(settings.imu_rate_hz)
    if info.max_samples_emg != emg_per_frame or info.max_samples_aux != imu_per_frame:
        raise TrignoSetupError(
            f"base sends {info.max_samples_emg} EMG and {info.max_samples_aux} AUX samples per frame; [sensors] rates "
            f"need {emg_per_frame} and {imu_per_frame} (check [acquire.trigno] backwards_compatibility / upsample "
            "and the sensors' modes)"
        )
    emg_factors, acc_factors, gyro_factors = [], [], []
    for slot_info in info.slots:
        slot = slot_info.slot
        if not slot_info.paired:
            raise TrignoSetupError(f"slot {slot} has no paired sensor; pair it, or fix [acquire.trigno] slots")
        if slot_info.emg_channel_count < 1 or slot_info.aux_channel_count < AXES:
            raise TrignoSetupError(
                f"slot {slot}: {slot_info.emg_channel_count} EMG and {slot_info.aux_channel_count} AUX channels; this "
                "client needs 1 EMG channel and an accelerometer (choose a sensor mode with EMG + IMU)"
            )
        if slot_info.start_index != slot:
            # STARTINDEX is the 1-based column of the sensor's first value in a data row: the slot
            # itself for one-EMG-channel sensors; multi-channel sensors (Quattro) shift the columns.
            raise TrignoSetupError(
                f"slot {slot} reports STARTINDEX {slot_info.start_index}: this client reads one EMG channel per "
                "slot at column = slot (multi-channel sensors such as Quattro are not supported)"
            )
        needed = 1 + (2 * AXES if slot_info.aux_channel_count >= 2 * AXES and settings.layout.has_gyroscope else AXES)
        if len(slot_info.channels) < needed:  # CHANNELCOUNT? disagrees with EMG/AUXCHANNELCOUNT?
            raise TrignoSetupError(
                f"slot {slot} reports {slot_info.channel_count} channels but {slot_info.emg_channel_count} EMG + "
                f"{slot_info.aux_channel_count} AUX; this client needs {needed} (EMG, accelerometer"
                f"{', gyroscope' if needed > 1 + AXES else ''}): the base's replies disagree"
            )
        expected = [settings.emg_rate_hz] + [settings.imu_rate_hz] * (slot_info.channel_count - 1)
        for number, (channel, rate) in enumerate(zip(slot_info.channels, expected), start=1):
            if channel.rate_hz != rate:
                raise TrignoSetupError(
                    f"slot {slot} channel {number} runs at {float(channel.rate_hz):.3f} Hz; [sensors] expects "
                    f"{float(rate):.3f} Hz ({rate}): set the sensor mode or [acquire.trigno] backwards_compatibility/"
                    "upsample so they agree"
                )
        units = [channel.unit for channel in slot_info.channels]
        factor = _factor(slot, units[0], "emg")
        emg_factors.append(factor)
        acc_factors += [_factor(slot, unit, "acc") for unit in units[1:1 + AXES]]
        if slot_info.aux_channel_count >= 2 * AXES and settings.layout.has_gyroscope:
            gyro_factors += [_factor(slot, unit, "gyro") for unit in units[1 + AXES:1 + 2 * AXES]]
        else:
            gyro_factors += [float("nan")] * AXES
    return SlotMapping.build(settings.slots, settings.layout, emg_factors, acc_factors, gyro_factors)


def _factor(slot: int, unit: str, modality: str) -> float:
    try:
        unit_modality, factor = unit_factor(unit)
    except TrignoProtocolError as error:
        raise TrignoSetupError(f"slot {slot}: {error}") from None
    if unit_modality != modality:
        raise TrignoSetupError(f"slot {slot}: a {modality} channel reports unit {unit!r}; the sensor mode is not EMG + IMU")
    return factor


class FrameReader:
    """Exactly one frame of rows from each data port per call, across any split of the bytes."""

    def __init__(self, emg_socket: socket.socket, aux_socket: socket.socket, layout: DataLayout,
                 emg_per_frame: int, aux_per_frame: int, timeout_s: float) -> None:
        self._sockets = (emg_socket, aux_socket)
        self._shapes = ((emg_per_frame, layout.emg_row_values), (aux_per_frame, layout.aux_row_values))
        self._buffers = [bytearray(emg_per_frame * layout.emg_row_bytes), bytearray(aux_per_frame * layout.aux_row_bytes)]
        self._views = [memoryview(buffer) for buffer in self._buffers]
        self._filled = [0, 0]
        self._timeout_s = timeout_s
        self._ports = tuple(sock.getpeername()[1] for sock in self._sockets)
        self.bytes_received = 0
        for sock in self._sockets:
            sock.setblocking(False)

    def read_frame(self) -> tuple[np.ndarray, np.ndarray]:
        deadline = time.monotonic() + self._timeout_s
        while True:
            for index in self._incomplete():
                self._fill(index)
            waiting = self._incomplete()
            if not waiting:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                ports = ", ".join(str(self._ports[index]) for index in waiting)
                raise TrignoConnectionError(f"no complete frame within {self._timeout_s} s on data port(s) {ports}")
            try:
                select.select([self._sockets[index] for index in waiting], [], [], remaining)
            except (OSError, ValueError) as error:  # closed under us (close() from another thread)
                raise TrignoConnectionError(f"data port closed while waiting: {error}") from None
        rows = tuple(np.frombuffer(buffer, dtype="<f4").reshape(shape).copy() for buffer, shape in zip(self._buffers, self._shapes))
        self._filled = [0, 0]
        return rows

    def _incomplete(self) -> list[int]:
        return [index for index in (0, 1) if self._filled[index] < len(self._buffers[index])]

    def _fill(self, index: int) -> None:
        """Take what the kernel has for port ``index``, up to the end of this frame (the rest stays queued)."""
        sock = self._sockets[index]
        while self._filled[index] < len(self._buffers[index]):
            try:
                count = sock.recv_into(self._views[index][self._filled[index]:])
            except BlockingIOError:
                return
            except OSError as error:
                raise TrignoConnectionError(f"data port {self._ports[index]} failed: {error}") from None
            if count == 0:
                raise TrignoConnectionError("a data port was closed by the server")
            self._filled[index] += count
            self.bytes_received += count


class TrignoClient:
    """Command session + data ports, set up and started by ``connect()``."""

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self.session: CommandSession | None = None
        self.info: BaseInfo | None = None
        self.mapping: SlotMapping | None = None
        self._data_sockets: list[socket.socket] = []
        self.reader: FrameReader | None = None

    def connect(self) -> None:
        settings = self.settings
        try:
            self.session = CommandSession(settings.host, settings.command_port, settings.timeout_s)
            configure(self.session, settings)
            self.info = describe_base(self.session, settings.slots)
            self.mapping = check_setup(self.info, settings)
            for port in (settings.emg_port, settings.aux_port):
                try:
                    self._data_sockets.append(socket.create_connection((settings.host, port), timeout=settings.timeout_s))
                except OSError as error:
                    raise TrignoConnectionError(f"cannot connect to data port {settings.host}:{port}: {error}") from None
            self.reader = FrameReader(*self._data_sockets, settings.layout, samples_per_frame(settings.emg_rate_hz),
                                      samples_per_frame(settings.imu_rate_hz), settings.timeout_s)
            check_reply("START", self.session.query("START"))
        except BaseException:
            self.close(send_stop=False)
            raise
        log.info("Trigno protocol %s: streaming slots %s (%s layout)", self.info.protocol_version,
                 list(settings.slots), settings.layout.name)

    def read_frame(self) -> tuple[np.ndarray, np.ndarray]:
        if self.reader is None:
            raise TrignoConnectionError("not connected")
        return self.reader.read_frame()

    def shut_data_ports(self) -> None:
        """Shut the data sockets (a blocked read_frame then fails at once); no command is sent."""
        for sock in self._data_sockets:
            _shutdown(sock)

    def close(self, send_stop: bool = True) -> None:
        if self.session is not None and send_stop:
            # A dead link must not hold up shutdown for a whole timeout_s per command.
            self.session.timeout_s = min(self.session.timeout_s, 1.0)
            for command in ("STOP", "QUIT"):
                try:
                    self.session.query(command)
                except (TrignoConnectionError, TrignoProtocolError, ValueError):
                    break
        for sock in self._data_sockets:
            _shut(sock)  # wakes a read blocked in select() in another thread; close() alone does not
        self._data_sockets = []
        self.reader = None
        if self.session is not None:
            self.session.close()
            self.session = None

"""A client for the Trigno SDK TCP protocol: the command session and the two data ports.

``TrignoClient.connect()`` reads the banner, configures the base (backwards compatibility,
upsampling, little-endian), queries the system and every configured slot, checks that what the base
reports is what the config's layout expects (paired sensors, samples per frame, the modalities the
sensors' mode sends, channel counts, rates, units), connects the EMG data port and, when the layout
has an IMU modality, the AUX port, and sends START. ``read_frame()`` then returns the raw float32
rows of one frame from each port (AUX: no rows when it is not read), assembled exactly whatever sizes the kernel hands ``recv`` (several public
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
    FLOAT_BYTES,
    LEGACY_AUX_SAMPLES,
    LEGACY_EMG_SAMPLES,
    UPSAMPLED_EMG_SAMPLES,
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
from stream.wire.layout import IMU_MODALITIES, MODALITIES, PROFILES, frame_period
from stream.wire.rates import FRAME_PERIOD_S, parse_rate, samples_per_frame

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
    modalities: tuple[str, ...] = MODALITIES  # the layout's: which AUX channels the sensors must send
    profile: str = ""  # the [sensors] profile, for messages

    @property
    def reads_aux(self) -> bool:
        """An sEMG-only layout needs nothing from the AUX port, so the client does not connect it."""
        return any(name in IMU_MODALITIES for name in self.modalities)


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
    _check_frame_interval(info, settings)
    for slot_info in info.slots:
        if not slot_info.paired:
            raise TrignoSetupError(f"slot {slot_info.slot} has no paired sensor; pair it, or fix [acquire.trigno] slots")
    _check_stream(info, settings)
    emg_factors, acc_factors, gyro_factors = [], [], []
    for slot_info in info.slots:
        emg, acc, gyro = _check_slot(slot_info, settings)
        emg_factors.append(emg)
        acc_factors += acc
        gyro_factors += gyro
    return SlotMapping.build(settings.slots, settings.layout, emg_factors, acc_factors, gyro_factors)


def _check_frame_interval(info: BaseInfo, settings: ClientSettings) -> None:
    if abs(info.frame_interval_s - float(FRAME_PERIOD_S)) > 1e-6:
        raise TrignoSetupError(f"base reports a frame interval of {info.frame_interval_s} s; this client needs 0.0135 s")
    # Our frames are the base's frames: the layout's frame period must be the same 13.5 ms.
    layout_period = frame_period([settings.emg_rate_hz, settings.imu_rate_hz])
    if layout_period != FRAME_PERIOD_S:
        raise TrignoSetupError(
            f"[sensors] rates {settings.emg_rate_hz} and {settings.imu_rate_hz} Hz give {float(layout_period) * 1000:g} "
            "ms frames; a Trigno base frames every 13.5 ms (use a Trigno [sensors] profile)"
        )


@dataclass(frozen=True)
class StreamShape:
    """Samples per frame on each port and the modalities sent: what a base sends or a layout needs."""

    emg_samples: int
    aux_samples: int
    modalities: tuple[str, ...]

    def describe(self, aux_read: bool = True) -> str:
        rates = f"sEMG {float(self.emg_samples / FRAME_PERIOD_S):.3f} Hz"
        if not aux_read:
            return f"{self.emg_samples} EMG samples per frame ({rates}; emg only)"
        rates += f", IMU {float(self.aux_samples / FRAME_PERIOD_S):.3f} Hz"
        return (f"{self.emg_samples} EMG and {self.aux_samples} AUX samples per frame ({rates}; "
                f"{', '.join(self.modalities)})")


def base_stream(info: BaseInfo, settings: ClientSettings) -> StreamShape:
    """What the base sends for the configured slots: a modality counts when every slot has it."""
    aux_counts = [slot_info.aux_channel_count for slot_info in info.slots if slot_info.paired] or [0]
    modalities = ["emg"]
    if min(aux_counts) >= AXES:
        modalities.append("acc")
        if min(aux_counts) >= 2 * AXES and settings.layout.has_gyroscope:
            modalities.append("gyro")
    return StreamShape(info.max_samples_emg, info.max_samples_aux, tuple(modalities))


def layout_stream(settings: ClientSettings) -> StreamShape:
    return StreamShape(samples_per_frame(settings.emg_rate_hz), samples_per_frame(settings.imu_rate_hz),
                       tuple(settings.modalities))


def fitting_profiles(sent: StreamShape) -> list[str]:
    """Built-in [sensors] profiles whose layout is what the base sends (sEMG and AUX rates, modalities)."""
    fitting = []
    for name, profile in PROFILES.items():
        sensors = profile["sensors"]
        rates = (parse_rate(sensors["emg_rate_hz"]) * FRAME_PERIOD_S, parse_rate(sensors["imu_rate_hz"]) * FRAME_PERIOD_S)
        modalities = tuple(modality for modality in MODALITIES if modality in sensors["modalities"])
        aux_matters = any(modality in IMU_MODALITIES for modality in modalities)
        if rates[0] == sent.emg_samples and (rates[1] == sent.aux_samples or not aux_matters) and modalities == sent.modalities:
            fitting.append(name)
    return fitting


def _check_stream(info: BaseInfo, settings: ClientSettings) -> None:
    """Samples per frame and modalities against the layout: refused in one line naming both, the
    profile that would fit the base, and the setting that made the base send what it sends."""
    sent, needed = base_stream(info, settings), layout_stream(settings)
    rates_differ = sent.emg_samples != needed.emg_samples or (settings.reads_aux and sent.aux_samples != needed.aux_samples)
    aux_counts = [slot_info.aux_channel_count for slot_info in info.slots]
    missing = [name for name, channels in (("acc", AXES), ("gyro", 2 * AXES)) if name in settings.modalities
               and not any(count >= channels for count in aux_counts)]
    if missing == ["gyro"] and not settings.layout.has_gyroscope:
        missing = []  # the legacy 48-value AUX port: TrignoSource refuses gyro with it; the client gives NaN
    if not rates_differ and not missing:
        return
    wanted = f"[sensors] profile {settings.profile}" if settings.profile else "[sensors]"
    fitting = fitting_profiles(sent)
    quoted = " or ".join(f'"{name}"' for name in fitting)  # as the TOML line would read
    fit = (f"[sensors] profile = {quoted} fits the base" if fitting
           else "no built-in [sensors] profile fits the base")
    raise TrignoSetupError(f"the base sends {sent.describe()}, but {wanted} needs "
                           f"{needed.describe(settings.reads_aux)}: {fit}{_setting_hint(sent, needed, settings, missing)}")


def _setting_hint(sent: StreamShape, needed: StreamShape, settings: ClientSettings, missing: list[str]) -> str:
    """Why the base may send what it sends, when a client setting is the likely cause."""
    if missing:
        modes = "an EMG + IMU mode" if "gyro" in missing else "a mode with the accelerometer"
        legacy = "; the 48-value legacy AUX port carries no gyroscope" if not settings.layout.has_gyroscope else ""
        return f" (the sensors' mode sends no {' or '.join(missing)}: choose {modes} in the Trigno software{legacy})"
    legacy_rates = (needed.emg_samples, needed.aux_samples) == (LEGACY_EMG_SAMPLES, LEGACY_AUX_SAMPLES)
    if settings.upsample and sent.emg_samples == UPSAMPLED_EMG_SAMPLES:
        return " ([acquire.trigno] upsample = true makes the base send 2000 Hz sEMG)"
    if settings.backwards_compatibility and not legacy_rates:
        return (" ([acquire.trigno] backwards_compatibility = true resamples every sensor to 1111.111 Hz sEMG and "
                "148.148 Hz IMU; set it to false for the sensors' own rates)")
    if not settings.backwards_compatibility and legacy_rates:
        return (" ([acquire.trigno] backwards_compatibility = false gives the sensors' own rates; true resamples them to "
                "1111.111 Hz sEMG and 148.148 Hz IMU)")
    return ""  # the sensors' mode itself differs: change it, or the profile


def _check_slot(slot_info: SlotInfo, settings: ClientSettings) -> tuple[float, list[float], list[float]]:
    """One slot's channels against the layout; its unit factors (emg, acc x3, gyro x3), NaN where the
    layout or the sensor has no such channel."""
    slot = slot_info.slot
    wants_acc = "acc" in settings.modalities
    has_acc = slot_info.aux_channel_count >= AXES
    has_gyro = slot_info.aux_channel_count >= 2 * AXES and settings.layout.has_gyroscope
    uses_gyro = has_gyro and "gyro" in settings.modalities
    if slot_info.emg_channel_count < 1 or (wants_acc and not has_acc):
        raise TrignoSetupError(
            f"slot {slot}: {slot_info.emg_channel_count} EMG and {slot_info.aux_channel_count} AUX channels; this "
            f"client needs 1 EMG channel{' and an accelerometer' if wants_acc else ''} ([sensors] modalities "
            f"{', '.join(settings.modalities)}): choose a sensor mode that sends them"
        )
    if slot_info.start_index != slot:
        # STARTINDEX is the 1-based column of the sensor's first value in a data row: the slot
        # itself for one-EMG-channel sensors; multi-channel sensors (Quattro) shift the columns.
        raise TrignoSetupError(
            f"slot {slot} reports STARTINDEX {slot_info.start_index}: this client reads one EMG channel per "
            "slot at column = slot (multi-channel sensors such as Quattro are not supported)"
        )
    needed = 1 + (2 * AXES if uses_gyro else AXES if wants_acc else 0)
    if len(slot_info.channels) < needed:  # CHANNELCOUNT? disagrees with EMG/AUXCHANNELCOUNT?
        raise TrignoSetupError(
            f"slot {slot} reports {slot_info.channel_count} channels but {slot_info.emg_channel_count} EMG + "
            f"{slot_info.aux_channel_count} AUX; this client needs {needed} (EMG"
            f"{', accelerometer' if wants_acc else ''}{', gyroscope' if uses_gyro else ''}): the base's replies disagree"
        )
    expected = [settings.emg_rate_hz] + [settings.imu_rate_hz] * (needed - 1)
    for number, (channel, rate) in enumerate(zip(slot_info.channels, expected), start=1):
        if channel.rate_hz != rate:
            raise TrignoSetupError(
                f"slot {slot} channel {number} runs at {float(channel.rate_hz):.3f} Hz; [sensors] expects "
                f"{float(rate):.3f} Hz ({rate}): set the sensor mode or [acquire.trigno] backwards_compatibility/"
                "upsample so they agree"
            )
    units = [channel.unit for channel in slot_info.channels]
    nan = [float("nan")] * AXES
    acc = [_factor(slot, unit, "acc") for unit in units[1:1 + AXES]] if wants_acc else nan
    gyro = [_factor(slot, unit, "gyro") for unit in units[1 + AXES:1 + 2 * AXES]] if uses_gyro else nan
    return _factor(slot, units[0], "emg"), acc, gyro


def _factor(slot: int, unit: str, modality: str) -> float:
    try:
        unit_modality, factor = unit_factor(unit)
    except TrignoProtocolError as error:
        raise TrignoSetupError(f"slot {slot}: {error}") from None
    if unit_modality != modality:
        raise TrignoSetupError(f"slot {slot}: a {modality} channel reports unit {unit!r}; the sensor mode is not EMG + IMU")
    return factor


class FrameReader:
    """Exactly one frame of rows from each data port per call, across any split of the bytes.

    ``aux_socket`` None: the AUX port is not read (an sEMG-only layout); its rows are then (0, values)."""

    def __init__(self, emg_socket: socket.socket, aux_socket: socket.socket | None, layout: DataLayout,
                 emg_per_frame: int, aux_per_frame: int, timeout_s: float) -> None:
        ports = [(emg_socket, emg_per_frame, layout.emg_row_values)]
        if aux_socket is not None:
            ports.append((aux_socket, aux_per_frame, layout.aux_row_values))
        self._sockets = tuple(sock for sock, _, _ in ports)
        self._shapes = tuple((rows, values) for _, rows, values in ports)
        self._buffers = [bytearray(rows * values * FLOAT_BYTES) for rows, values in self._shapes]
        self._views = [memoryview(buffer) for buffer in self._buffers]
        self._filled = [0] * len(ports)
        self._unread_aux = () if aux_socket is not None else (np.zeros((0, layout.aux_row_values), np.float32),)
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
        self._filled = [0] * len(self._buffers)
        return rows + self._unread_aux

    def _incomplete(self) -> list[int]:
        return [index for index in range(len(self._buffers)) if self._filled[index] < len(self._buffers[index])]

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
            for port in (settings.emg_port, settings.aux_port) if settings.reads_aux else (settings.emg_port,):
                try:
                    self._data_sockets.append(socket.create_connection((settings.host, port), timeout=settings.timeout_s))
                except OSError as error:
                    raise TrignoConnectionError(f"cannot connect to data port {settings.host}:{port}: {error}") from None
            emg_socket, aux_socket = self._data_sockets[0], (self._data_sockets[1:] or [None])[0]
            self.reader = FrameReader(emg_socket, aux_socket, settings.layout, samples_per_frame(settings.emg_rate_hz),
                                      samples_per_frame(settings.imu_rate_hz), settings.timeout_s)
            check_reply("START", self.session.query("START"))
        except BaseException:
            self.close(send_stop=False)
            raise
        log.info("Trigno protocol %s: streaming slots %s (%s AUX layout): %s", self.info.protocol_version,
                 list(settings.slots), settings.layout.name, base_stream(self.info, settings).describe(settings.reads_aux))

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

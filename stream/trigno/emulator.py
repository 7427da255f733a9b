"""stream-trigno-emulator: a loopback TCP server speaking the Trigno SDK protocol.

Command port: a banner on connect, then one reply per CR LF CR LF terminated command
(``EmulatedBase.reply``). Data ports: while started, every 13.5 ms tick one frame of float32 rows
(16 EMG values per sample on the EMG ports; 48 or 144 AUX values on the legacy and IMU AUX ports),
as many rows as the base's settings and sensor mode give (``EmulatedBase``), empty slots and the
channels a sensor's mode does not have as zeros. The frame source advances on every tick whether or not anyone is streaming,
as a base station's clock does, so a client that reconnects has really lost the frames in between.

For tests: ``fragment=True`` splits every write into random pieces (down to one byte), and
``drop_connections()`` (SIGUSR1 to the process) closes every client connection at once, as a
crashed link would.
One thread serves everything (selectors), so the emulator never races with itself.
"""

from __future__ import annotations

import json
import logging
import selectors
import signal
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from stream.trigno.convert import encode_rows
from stream.trigno.emulated_base import DEFAULT_MODE, SENSOR_MODES, EmulatedBase
from stream.trigno.protocol import (
    AUX_PORT,
    BANNER_PREFIX,
    COMMAND_PORT,
    EMG_PORT,
    IMU_LAYOUT,
    INVALID_COMMAND,
    LEGACY_AUX_PORT,
    LEGACY_EMG_PORT,
    LEGACY_LAYOUT,
    MAX_REPLY_BYTES,
    PROTOCOL_VERSION,
    TERMINATOR,
    DataLayout,
)
from stream.wire.frames import Frame
from stream.wire.rates import FRAME_PERIOD_S

log = logging.getLogger("stream.trigno.emulator")
DATA_PORT_KINDS = ("legacy_emg", "legacy_aux", "emg", "aux")
MAX_CATCH_UP_S = 1.0
SEND_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class EmulatorPorts:
    """0 asks the OS for a free port."""

    command: int = COMMAND_PORT
    legacy_emg: int = LEGACY_EMG_PORT
    legacy_aux: int = LEGACY_AUX_PORT
    emg: int = EMG_PORT
    aux: int = AUX_PORT

    @classmethod
    def random(cls) -> EmulatorPorts:
        return cls(0, 0, 0, 0, 0)

    @classmethod
    def parse(cls, text: str) -> EmulatorPorts:
        values = [int(part) for part in text.split(",")]
        if len(values) != 5 or any(not 0 <= value <= 65535 for value in values):
            raise ValueError(f"--ports {text!r}: give five ports COMMAND,LEGACY_EMG,LEGACY_AUX,EMG,AUX (0 = any free)")
        return cls(*values)


class TrignoEmulator:
    """Serve ``frames`` on loopback as a Trigno base station would. Use as a context manager."""

    def __init__(self, frames: Iterable[Frame], *, slots=(1, 2, 3, 4, 5, 6), acc_only_slots=(),
                 host: str = "127.0.0.1", ports: EmulatorPorts = EmulatorPorts(), fragment: bool = False,
                 seed: int = 0, speed: float = 1.0, mode: str = DEFAULT_MODE) -> None:
        if speed <= 0:
            raise ValueError(f"speed {speed} must be > 0")
        self.base = EmulatedBase.with_slots(slots, acc_only_slots, mode)
        self.slots = tuple(slots)
        self.host = host
        self.fragment = fragment
        self._frames: Iterator[Frame] = iter(frames)
        self._requested_ports = ports
        self._random = np.random.default_rng(seed)
        self._period_s = float(FRAME_PERIOD_S) / speed
        self._selector = selectors.DefaultSelector()
        self._listeners: dict[str, socket.socket] = {}
        self._command_clients: dict[socket.socket, bytearray] = {}
        self._data_clients: dict[str, list[socket.socket]] = {kind: [] for kind in DATA_PORT_KINDS}
        self._stop = threading.Event()
        self._drop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ports: EmulatorPorts | None = None
        self.frames_generated = 0
        self.frames_skipped = 0  # frame periods skipped after the loop fell behind (never generated)
        self.frames_sent = 0
        self.frames_sent_at_drop: list[tuple[int, int]] = []  # (frames generated, frames sent) per drop
        self.source_exhausted = False
        self.connections_accepted = 0
        self._blank_columns = {layout.name: _missing_channel_columns(self.base, layout)
                               for layout in (LEGACY_LAYOUT, IMU_LAYOUT)}

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> TrignoEmulator:
        requested = self._requested_ports
        for kind in ("command", *DATA_PORT_KINDS):
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, getattr(requested, kind)))
            listener.listen(8)
            listener.setblocking(False)
            self._listeners[kind] = listener
            self._selector.register(listener, selectors.EVENT_READ, ("listener", kind))
        self.ports = EmulatorPorts(**{kind: sock.getsockname()[1] for kind, sock in self._listeners.items()})
        self._thread = threading.Thread(target=self._serve, name="trigno-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for sock in [*self._command_clients, *(s for clients in self._data_clients.values() for s in clients),
                     *self._listeners.values()]:
            _close(sock)
        self._command_clients.clear()
        self._selector.close()

    def __enter__(self) -> TrignoEmulator:
        return self.start()

    def __exit__(self, *exception) -> None:
        self.stop()

    def drop_connections(self) -> None:
        """Close every client connection (command and data) at the next turn of the loop."""
        self._drop.set()

    @property
    def data_client_count(self) -> int:
        return sum(len(clients) for clients in self._data_clients.values())

    # -- the loop ---------------------------------------------------------------------------------
    def _serve(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            for key, _ in self._selector.select(max(0.0, min(next_tick - now, 0.05))):
                role, kind = key.data
                if role == "listener":
                    self._accept(kind)
                elif role == "command":
                    self._serve_command(key.fileobj)
                else:
                    self._receive(key.fileobj)  # data ports are one-way: only notice a close
            if self._drop.is_set():
                self._drop.clear()
                self._drop_all()
            now = time.monotonic()
            if now - next_tick > MAX_CATCH_UP_S:
                log.warning("emulator fell %.2f s behind; skipping ahead", now - next_tick)
                self.frames_skipped += int((now - next_tick) / self._period_s)
                next_tick = now
            while now >= next_tick:
                self._tick()
                next_tick += self._period_s

    def _accept(self, kind: str) -> None:
        try:
            client, _ = self._listeners[kind].accept()
        except BlockingIOError:
            return
        self.connections_accepted += 1
        client.setblocking(True)
        client.settimeout(SEND_TIMEOUT_S)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if kind == "command":
            self._command_clients[client] = bytearray()
            self._selector.register(client, selectors.EVENT_READ, ("command", kind))
            self._send(client, f"{BANNER_PREFIX} {PROTOCOL_VERSION} ".encode("ascii") + TERMINATOR)
        else:
            self._data_clients[kind].append(client)
            self._selector.register(client, selectors.EVENT_READ, ("data", kind))

    def _receive(self, client: socket.socket) -> bytes:
        """What the client sent; b"" (and the client forgotten) when it has gone."""
        try:
            data = client.recv(4096)
        except OSError:
            data = b""
        if not data:
            self._forget(client)
        return data

    def _serve_command(self, client: socket.socket) -> None:
        data = self._receive(client)
        if not data:
            return
        buffer = self._command_clients[client]
        buffer += data
        while (end := buffer.find(TERMINATOR)) >= 0:
            command = bytes(buffer[:end]).decode("ascii", errors="replace").strip()
            del buffer[: end + len(TERMINATOR)]
            reply = self.base.reply(command)
            if not self._send(client, reply.encode("ascii") + TERMINATOR):
                return
            if reply == "BYE":
                self._forget(client)
                return
        if len(buffer) > MAX_REPLY_BYTES:
            buffer.clear()
            self._send(client, INVALID_COMMAND.encode("ascii") + TERMINATOR)


    def _tick(self) -> None:
        try:
            frame = next(self._frames)
        except StopIteration:
            if not self.source_exhausted:
                log.info("frame source exhausted after %d frames; no more data", self.frames_generated)
            self.source_exhausted = True
            return
        self.frames_generated += 1
        if not self.base.running or self.data_client_count == 0:
            return
        self.frames_sent += 1
        dtype = ">f4" if self.base.big_endian else "<f4"
        payloads = {}
        for prefix, layout in (("legacy_", LEGACY_LAYOUT), ("", IMU_LAYOUT)):
            if not (self._data_clients[prefix + "emg"] or self._data_clients[prefix + "aux"]):
                continue
            emg_rows, aux_rows = encode_rows(frame.emg, frame.acc, frame.gyro, self.slots, layout)
            emg_rows = _hold(emg_rows, self.base.emg_samples_per_frame)
            aux_rows = _hold(aux_rows, self.base.aux_samples_per_frame)
            aux_rows[:, self._blank_columns[layout.name]] = 0.0  # channels the sensors' mode does not send
            payloads[prefix + "emg"] = emg_rows.astype(dtype).tobytes()
            payloads[prefix + "aux"] = aux_rows.astype(dtype).tobytes()
        for kind, payload in payloads.items():
            for client in list(self._data_clients[kind]):
                self._send(client, payload)

    # -- sending and closing ----------------------------------------------------------------------
    def _send(self, client: socket.socket, payload: bytes) -> bool:
        try:
            if not self.fragment:
                client.sendall(payload)
                return True
            position = 0
            while position < len(payload):
                size = int(self._random.integers(1, 97))
                client.sendall(payload[position:position + size])
                position += size
                if self._random.random() < 0.3:
                    time.sleep(0.0002)
            return True
        except OSError as error:
            log.info("dropping a client that does not take data (%s)", error)
            self._forget(client)
            return False

    def _forget(self, client: socket.socket) -> None:
        try:
            self._selector.unregister(client)
        except (KeyError, ValueError):
            pass
        self._command_clients.pop(client, None)
        for clients in self._data_clients.values():
            if client in clients:
                clients.remove(client)
        _close(client)

    def _drop_all(self) -> None:
        self.frames_sent_at_drop.append((self.frames_generated, self.frames_sent))
        self.base.running = False
        for client in [*self._command_clients, *(s for clients in self._data_clients.values() for s in clients)]:
            self._forget(client)
        log.info("dropped every client connection (on request)")


def _hold(rows: np.ndarray, samples: int) -> np.ndarray:
    """Sample-and-hold to ``samples`` rows per frame (the base's rates when the source's differ);
    zeros when the source has no such rows at all (an sEMG-only source on a base that frames AUX)."""
    if rows.shape[0] == samples:
        return rows
    if rows.shape[0] == 0:
        return np.zeros((samples, rows.shape[1]), rows.dtype)
    return rows[(np.arange(samples) * rows.shape[0]) // samples]


def _missing_channel_columns(base: EmulatedBase, layout: DataLayout) -> np.ndarray:
    """AUX columns of paired slots whose sensor has no such channel (no gyroscope, no AUX at all)."""
    stride = layout.aux_values_per_slot
    columns = [stride * (slot - 1) + value for slot, sensor in base.sensors.items()
               for value in range(min(sensor.aux_channel_count, stride), stride)]
    return np.array(columns, dtype=np.intp)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


def main(argv=None) -> int:
    from stream.config.cli import build_parser, load_config_or_exit
    from stream.trigno.frame_sources import SOURCE_NAMES, open_frame_source

    parser = build_parser("stream-trigno-emulator", "A Delsys Trigno base station on loopback, for tests and demos")
    parser.add_argument("--source", choices=SOURCE_NAMES, default="synthetic",
                        help="what to stream: the synthetic signer, [acquire.replay] path, or a test signal")
    parser.add_argument("--ports", default=None,
                        help="COMMAND,LEGACY_EMG,LEGACY_AUX,EMG,AUX (0 = any free port; default 50040-50044)")
    parser.add_argument("--fragment", action="store_true", help="split every write into random small pieces")
    parser.add_argument("--acc-only-slots", default="", help="comma-separated slots whose sensors have no gyroscope")
    parser.add_argument("--speed", type=float, default=1.0, help="frames per 13.5 ms (1.0 = real time)")
    parser.add_argument("--mode", choices=tuple(SENSOR_MODES), default=None,
                        help="the sensors' mode (default: the config's [sensors] profile when it is a Trigno mode, "
                             f"else {DEFAULT_MODE})")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args(argv)
    config = load_config_or_exit(arguments)
    try:
        ports = EmulatorPorts.parse(arguments.ports) if arguments.ports else EmulatorPorts()
        acc_only = tuple(int(slot) for slot in arguments.acc_only_slots.split(",") if slot.strip())
        mode = arguments.mode or (config.sensors.profile if config.sensors.profile in SENSOR_MODES else DEFAULT_MODE)
        frames = open_frame_source(arguments.source, config, arguments.seed)
        emulator = TrignoEmulator(frames, slots=config.acquire.trigno.slots, acc_only_slots=acc_only,
                                  host=config.acquire.trigno.host, ports=ports, fragment=arguments.fragment,
                                  seed=arguments.seed, speed=arguments.speed, mode=mode)
        emulator.start()
    except (ValueError, OSError, ImportError) as error:
        print(f"stream-trigno-emulator: {error}", flush=True)
        return 2
    stop = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stop.set())
    # SIGUSR1 drops every client connection, as a lost link would (the handler only sets a flag).
    signal.signal(signal.SIGUSR1, lambda *_: emulator.drop_connections())
    print(json.dumps({"listening": emulator.ports.__dict__, "host": emulator.host, "source": arguments.source,
                      "mode": mode}), flush=True)
    try:
        while not stop.wait(0.2):
            pass
    finally:
        emulator.stop()
        log.info("stopped after %d frames (%d sent)", emulator.frames_generated, emulator.frames_sent)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

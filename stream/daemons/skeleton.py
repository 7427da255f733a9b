"""The one skeleton every daemon runs on (zguide ``interrupt.py`` and pyzmq's examples are the model).

- one ZeroMQ context with LINGER 0, so closing never blocks on unsent messages;
- a poller with a timeout, so the stop flag is seen within ``POLL_INTERVAL_MS``;
- SIGTERM/SIGINT handlers that only set that flag; SIGHUP sets a reload flag that the loop acts on
  (stream-infer reloads its model; a daemon with nothing to reload logs that and goes on);
- a periodic status message (heartbeat) with the daemon's counters, on each of its publishers;
- bad messages are counted, logged (rate-limited) and dropped: never swallowed silently;
- ``close()`` in ``finally:``: sockets, the CURVE authenticator, the context.

CURVE (``[security] curve = true``): publishers are CURVE servers with the server key pair;
subscribers are clients that know the server's public key. With ``authorized_clients_dir`` set, a ZAP
authenticator admits only clients whose public key is in that directory, so a client without an
authorised key gets nothing.
"""

from __future__ import annotations

import logging
import os
import signal
import socket as host_socket
import sys
import time
from collections.abc import Callable

import zmq

from stream.config import Config
from stream.wire.protocol import ProtocolError, encode_status, new_session_id

POLL_INTERVAL_MS = 100
MAX_MESSAGES_PER_WAKE = 256  # drain bursts, but still look at the stop flag and the clock
BAD_MESSAGE_LOG_INTERVAL_S = 5.0


class CurveKeyError(RuntimeError):
    """A key file named in [security] is missing or unreadable."""


def _load_key_pair(path: str, key: str) -> tuple[bytes, bytes | None]:
    import zmq.auth

    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as error:
        raise CurveKeyError(f"[security] {key} = {path!r}: cannot read a CURVE key ({error}); "
                            "create keys with zmq.auth.create_certificates") from None
    return public, secret


# Every daemon's counters (docs/protocol.md): malformed messages dropped, handler bugs (logged with
# their traceback), status heartbeats dropped at a full socket.
DAEMON_COUNTERS = ("bad_messages", "handler_errors", "status_dropped")


# One ZAP authenticator per context: the daemons of stream-pipeline share one context (inproc://
# needs that), and a context has a single ZAP handler.
_AUTHENTICATORS: dict[int, object] = {}


class Daemon:
    """Sockets, signals, counters and status for one daemon (a process, or a thread of
    stream-pipeline, which passes the ``context`` its daemons share and closes it itself)."""

    def __init__(self, name: str, config: Config, context: zmq.Context | None = None):
        self.name = name
        self.config = config
        self.log = logging.getLogger(name)
        self._owns_context = context is None
        self.context = zmq.Context() if context is None else context
        self.context.setsockopt(zmq.LINGER, 0)
        self.poller = zmq.Poller()
        self.stop_requested = False
        self.state = "starting"
        self.session = new_session_id()
        self.counters: dict[str, float] = {name: 0 for name in DAEMON_COUNTERS}
        self.info: dict[str, object] = {}
        self.started_monotonic = time.monotonic()
        self._sockets: list[zmq.Socket] = []
        self._handlers: dict[zmq.Socket, Callable[[list[bytes]], None]] = {}
        self._publishers: list[zmq.Socket] = []
        self._status_sequence = 0
        self._next_status = 0.0
        self._last_bad_log = -BAD_MESSAGE_LOG_INTERVAL_S
        self._authenticator = None
        self._closers: list[Callable[[], None]] = []
        self._stop_hooks: list[Callable[[], None]] = []
        self._reload_hooks: list[Callable[[], None]] = []
        self._heartbeat_hooks: list[Callable[[], None]] = []
        self.reload_requested = False

    def on_close(self, closer: Callable[[], None]) -> None:
        """Run ``closer`` (e.g. a file's close) when the daemon closes, before the sockets."""
        self._closers.append(closer)

    def on_stop_request(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` from the SIGTERM/SIGINT handler, after the stop flag is set: for a loop that
        blocks outside the poller (stream-acquire's source). It must only set flags or shut sockets."""
        self._stop_hooks.append(hook)

    def on_reload(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` in the loop (not in the signal handler) after each SIGHUP."""
        self._reload_hooks.append(hook)

    def on_heartbeat(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` after each status message (stream-acquire repeats its stream description)."""
        self._heartbeat_hooks.append(hook)

    def reload(self) -> None:
        self.reload_requested = False
        if not self._reload_hooks:
            self.log.info("SIGHUP: %s has nothing to reload", self.name)
        for hook in self._reload_hooks:
            try:
                hook()
            except Exception:  # a bug in a reload: logged with its traceback, the daemon goes on as it was
                self.count("handler_errors")
                self.log.exception("error while reloading")

    # ------------------------------------------------------------------------------- sockets

    def _apply_curve_server(self, socket: zmq.Socket) -> None:
        security = self.config.security
        if not security.server_secret_key_file:
            raise CurveKeyError(f"{self.name} publishes, so with [security] curve = true it needs "
                                "server_secret_key_file (the server's .key_secret file); only hosts that just "
                                "subscribe can go without it")
        public, secret = _load_key_pair(str(self.config.resolve_path(security.server_secret_key_file)),
                                        "server_secret_key_file")
        if secret is None:
            raise CurveKeyError("[security] server_secret_key_file holds no secret key (use the .key_secret file)")
        if security.authorized_clients_dir and id(self.context) not in _AUTHENTICATORS:
            from zmq.auth.thread import ThreadAuthenticator

            self._authenticator = ThreadAuthenticator(self.context)
            self._authenticator.start()
            self._authenticator.configure_curve(
                domain="*", location=str(self.config.resolve_path(security.authorized_clients_dir)))
            _AUTHENTICATORS[id(self.context)] = self._authenticator
        socket.curve_secretkey = secret
        socket.curve_publickey = public
        socket.curve_server = True

    def _apply_curve_client(self, socket: zmq.Socket) -> None:
        security = self.config.security
        if not security.server_public_key_file:
            raise CurveKeyError(f"{self.name} subscribes, so with [security] curve = true it needs "
                                "server_public_key_file (the publishing server's .key file)")
        server_public, _ = _load_key_pair(str(self.config.resolve_path(security.server_public_key_file)),
                                          "server_public_key_file")
        if security.client_secret_key_file:
            public, secret = _load_key_pair(str(self.config.resolve_path(security.client_secret_key_file)),
                                            "client_secret_key_file")
            if secret is None:
                raise CurveKeyError("[security] client_secret_key_file holds no secret key")
        else:
            # Encryption without client authentication: an ephemeral key pair.
            public, secret = zmq.curve_keypair()
        socket.curve_serverkey = server_public
        socket.curve_publickey = public
        socket.curve_secretkey = secret

    def bind_publisher(self, endpoint: str) -> zmq.Socket:
        socket = self.context.socket(zmq.PUB)
        socket.setsockopt(zmq.SNDHWM, self.config.endpoints.send_high_water_mark)
        if self.config.security.curve:
            self._apply_curve_server(socket)
        self._sockets.append(socket)
        socket.bind(endpoint)
        self._publishers.append(socket)
        return socket

    def connect_subscriber(self, endpoint: str, topics: tuple[bytes, ...],
                           handler: Callable[[list[bytes]], None]) -> zmq.Socket:
        socket = self.context.socket(zmq.SUB)
        socket.setsockopt(zmq.RCVHWM, self.config.endpoints.receive_high_water_mark)
        # libzmq refuses larger messages before they reach us (and drops the peer that sent them).
        socket.setsockopt(zmq.MAXMSGSIZE, self.config.endpoints.max_message_bytes)
        # Reconnect quickly after a publisher restarts (the default backs off to 100 ms anyway).
        socket.setsockopt(zmq.RECONNECT_IVL, 100)
        socket.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        if self.config.security.curve:
            self._apply_curve_client(socket)
        for topic in topics:
            socket.setsockopt(zmq.SUBSCRIBE, topic)
        self._sockets.append(socket)
        socket.connect(endpoint)
        self.poller.register(socket, zmq.POLLIN)
        self._handlers[socket] = handler
        return socket

    # ------------------------------------------------------------------------------- signals

    def install_signal_handlers(self) -> None:
        def request_stop(signal_number, _frame):
            # Only set the flag: the loop sees it within one poll interval and closes cleanly.
            self.stop_requested = True
            for hook in self._stop_hooks:
                hook()

        def request_reload(signal_number, _frame):
            self.reload_requested = True

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGHUP, request_reload)

    # ------------------------------------------------------------------------------- counters

    def declare_counters(self, *names: str) -> None:
        """Counters sent as 0 from the first status on, so a reader sees every name before it first
        happens (and can tell "never happened" from "not reported")."""
        for name in names:
            self.counters.setdefault(name, 0)

    def count(self, name: str, amount: float = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + amount

    def bad_message(self, error: Exception, what: str = "message") -> None:
        """Count, log (at most every few seconds, with the running count) and drop."""
        self.count("bad_messages")
        now = time.monotonic()
        if now - self._last_bad_log >= BAD_MESSAGE_LOG_INTERVAL_S:
            self._last_bad_log = now
            self.log.warning("dropped bad %s (%d so far): %s", what, self.counters["bad_messages"], error)

    def status(self) -> dict:
        return {
            "seq": self._status_sequence,
            "session": self.session,
            "t_wall": time.time(),
            "daemon": self.name,
            "state": self.state,
            "pid": os.getpid(),
            "host": host_socket.gethostname(),
            "uptime_s": time.monotonic() - self.started_monotonic,
            "counters": dict(self.counters),
            "info": dict(self.info),
        }

    def publish_status(self) -> None:
        status = self.status()
        self._status_sequence += 1
        message = encode_status(status)
        for socket in self._publishers:
            try:
                socket.send_multipart(message, flags=zmq.NOBLOCK)
            except zmq.Again:
                self.count("status_dropped")
        self._next_status = time.monotonic() + self.config.endpoints.heartbeat_interval_s
        for hook in self._heartbeat_hooks:
            hook()
        self._log_status_now(status)

    def _log_status_now(self, status: dict) -> None:
        interval = self.config.logging.status_interval_s
        now = time.monotonic()
        if now >= getattr(self, "_next_status_log", 0.0):
            self._next_status_log = now + interval
            counters = " ".join(f"{key}={_short(value)}" for key, value in sorted(status["counters"].items()))
            self.log.info("%s %s", status["state"], counters)

    def maybe_publish_status(self) -> None:
        if time.monotonic() >= self._next_status:
            self.publish_status()

    # ------------------------------------------------------------------------------- loop

    def dispatch(self, socket: zmq.Socket, handler: Callable[[list[bytes]], None]) -> None:
        for _ in range(MAX_MESSAGES_PER_WAKE):
            try:
                parts = socket.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                handler(parts)
            except ProtocolError as error:
                self.bad_message(error)
            except Exception:  # a bug in a handler: counted and logged with its traceback, loop survives
                self.count("handler_errors")
                self.log.exception("error handling a message (%d so far)", self.counters["handler_errors"])

    def run(self, tick: Callable[[], None] | None = None, poll_ms: int = POLL_INTERVAL_MS) -> None:
        """Poll the subscribers until a stop is requested; ``tick`` runs after every wake-up."""
        if self.stop_requested:  # the work was done in set-up (stream-acquire's own loop), or a signal came
            return
        self.state = "running"
        self.publish_status()
        while not self.stop_requested:
            ready = dict(self.poller.poll(poll_ms)) if self._handlers else (time.sleep(poll_ms / 1000) or {})
            for socket, handler in self._handlers.items():
                if socket in ready:
                    self.dispatch(socket, handler)
            if tick is not None:
                tick()
            if self.reload_requested:
                self.reload()
            self.maybe_publish_status()

    def close(self) -> None:
        self.state = "stopping"
        try:
            if self._publishers:
                self.publish_status()
        except zmq.ZMQError:
            pass
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception:
                self.log.exception("error while closing")
        for socket in self._sockets:
            socket.close(linger=0)
        if self._authenticator is not None:
            self._authenticator.stop()
            _AUTHENTICATORS.pop(id(self.context), None)
        if self._owns_context:
            self.context.term()

    def __enter__(self) -> "Daemon":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _short(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4g}"


class DaemonError(RuntimeError):
    """A daemon cannot start or go on (model card, source, endpoint): the message says what to fix."""


def run_daemon(name: str, config: Config, setup: Callable[[Daemon], Callable[[], None] | None],
               exit_process: bool = False) -> int:
    """Run a daemon: ``setup`` binds/connects and returns an optional tick; exit status 0 on a
    requested stop, 1 when start-up fails (one line naming the problem on stderr).

    ``exit_process`` (the console scripts, called with no argv): once everything is closed and
    flushed, end the process at once with ``os._exit``. Python's own finalisation of numba, llvmlite,
    LiteRT and scipy takes 1-2 s on a busy machine, which would break the 2 s shutdown promise
    although nothing is left to do.
    """
    daemon = Daemon(name, config)
    daemon.install_signal_handlers()
    status = 0
    try:
        tick = setup(daemon)
        daemon.run(tick)
    except (zmq.ZMQError, CurveKeyError, DaemonError) as error:
        daemon.log.error("cannot run: %s", error)
        status = 1
    finally:
        daemon.close()
        if exit_process:
            exit_now(status)
    return status


def exit_now(status: int) -> None:
    """Flush logs and standard streams, then end the process without interpreter finalisation."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)

"""Safe by default: loopback endpoints, CURVE encryption + authentication through real processes,
model files checked against their card's sha256 before loading, size limits before unpacking."""

from __future__ import annotations

import shutil
import time

import pytest
import zmq
import zmq.auth

from stream.config import Config
from stream.wire.protocol import decode_event, encode_event, encode_prediction

from daemon_helpers import receive_until, status_of, stop_and_time, write_config


def test_every_default_endpoint_is_loopback():
    endpoints = Config().endpoints
    for name in ("frames", "predictions", "events"):
        assert getattr(endpoints, name).startswith("tcp://127.0.0.1:")


@pytest.fixture
def keys(tmp_path):
    server_dir, client_dir, stranger_dir, authorized = (tmp_path / name for name in
                                                        ("server", "client", "stranger", "authorized"))
    for directory in (server_dir, client_dir, stranger_dir, authorized):
        directory.mkdir()
    server_public, server_secret = zmq.auth.create_certificates(server_dir, "server")
    client_public, client_secret = zmq.auth.create_certificates(client_dir, "client")
    _, stranger_secret = zmq.auth.create_certificates(stranger_dir, "stranger")
    shutil.copy(client_public, authorized)
    return {"server_public": server_public, "server_secret": server_secret, "client_secret": client_secret,
            "stranger_secret": stranger_secret, "authorized": authorized}


def curve_subscriber(context, endpoint, server_public=None, client_secret=None):
    socket = context.socket(zmq.SUB)
    socket.setsockopt(zmq.LINGER, 0)
    if server_public is not None:
        public, secret = zmq.auth.load_certificate(client_secret)
        socket.curve_serverkey = zmq.auth.load_certificate(server_public)[0]
        socket.curve_publickey, socket.curve_secretkey = public, secret
    socket.setsockopt(zmq.SUBSCRIBE, b"")
    socket.connect(endpoint)
    return socket


def test_curve_client_without_the_key_gets_nothing(processes, zmq_context, tmp_path, keys):
    security = (
        "[security]\ncurve = true\n"
        f'server_secret_key_file = "{keys["server_secret"]}"\nserver_public_key_file = "{keys["server_public"]}"\n'
        f'client_secret_key_file = "{keys["client_secret"]}"\nauthorized_clients_dir = "{keys["authorized"]}"\n'
    )
    config, endpoints = write_config(tmp_path, security)
    # The upstream publisher (standing in for stream-infer) is a CURVE server with the same keys.
    predictions = zmq_context.socket(zmq.PUB)
    public, secret = zmq.auth.load_certificate(keys["server_secret"])
    predictions.curve_secretkey, predictions.curve_publickey, predictions.curve_server = secret, public, True
    predictions.bind(endpoints["predictions"])
    sink = processes.start_python(["-m", "stream.daemons.sink", "--config", str(config)])

    authorized = curve_subscriber(zmq_context, endpoints["events"], keys["server_public"], keys["client_secret"])
    stranger = curve_subscriber(zmq_context, endpoints["events"], keys["server_public"], keys["stranger_secret"])
    plain = curve_subscriber(zmq_context, endpoints["events"])
    receive_until(authorized, lambda parts: status_of(parts) is not None, timeout_s=10)

    # The sink, a CURVE client of the predictions link, decrypts them and publishes an event.
    deadline = time.monotonic() + 10
    event = None
    while event is None and time.monotonic() < deadline:
        predictions.send_multipart(encode_prediction({
            "seq": 0, "session": "s", "t_wall": time.time(), "model_id": "m", "class_index": 0, "label": "hello",
            "confidence": 0.9, "probabilities": [0.9, 0.1], "start_index": 1, "end_index": 50, "rate": "2000/27",
            "start_time_s": 0.0135, "end_time_s": 0.675, "start_wall": 1.0, "end_wall": 2.0, "source_session": "run"}))
        if authorized.poll(200, zmq.POLLIN):
            parts = authorized.recv_multipart()
            if parts[0] == b"event":
                event = decode_event(parts)
    assert event is not None and event["label"] == "hello"

    # Neither a client with an unknown key nor one without CURVE received anything at all.
    assert not stranger.poll(500, zmq.POLLIN)
    assert not plain.poll(100, zmq.POLLIN)
    assert stop_and_time(sink) < 2.0 and sink.returncode == 0


def test_a_subscriber_only_host_needs_no_server_secret_key(processes, zmq_context, tmp_path, keys):
    # e.g. a laptop running stream-subscribe against a Pi: it holds the server's public key only.
    security = ("[security]\ncurve = true\n"
                f'server_public_key_file = "{keys["server_public"]}"\n'
                f'client_secret_key_file = "{keys["client_secret"]}"\n')
    config, endpoints = write_config(tmp_path, security)
    events = zmq_context.socket(zmq.PUB)  # standing in for stream-sink on the other host
    public, secret = zmq.auth.load_certificate(keys["server_secret"])
    events.curve_secretkey, events.curve_publickey, events.curve_server = secret, public, True
    events.bind(endpoints["events"])
    subscribe = processes.start_python(["-m", "stream.daemons.subscribe", "--config", str(config), "--count", "1",
                                        "--timeout", "20"])
    deadline = time.monotonic() + 20
    sequence = 0
    while subscribe.poll() is None and time.monotonic() < deadline:
        events.send_multipart(encode_event({
            "seq": sequence, "session": "s", "t_wall": time.time(), "model_id": "m", "class_index": 0,
            "label": "hello", "confidence": 0.9, "start_index": 1, "end_index": 50, "rate": "2000/27",
            "start_time_s": 0.0135, "end_time_s": 0.675, "start_wall": 1.0, "end_wall": 2.0, "source_session": "run"}))
        sequence += 1
        time.sleep(0.05)
    out, err = subscribe.communicate(timeout=10)
    assert subscribe.returncode == 0, err.decode()
    assert '"label": "hello"' in out.decode()

    # The same config on a host that publishes is refused at start, naming the missing key.
    sink = processes.start_python(["-m", "stream.daemons.sink", "--config", str(config)])
    _, err = sink.communicate(timeout=15)
    assert sink.returncode == 1 and "server_secret_key_file" in err.decode() and "publishes" in err.decode()


def test_missing_key_file_is_one_clear_line_and_exit_1(processes, tmp_path):
    config, _ = write_config(tmp_path, "[security]\ncurve = true\nserver_secret_key_file = \"nope.key_secret\"\n"
                                       "server_public_key_file = \"nope.key\"\n")
    sink = processes.start_python(["-m", "stream.daemons.sink", "--config", str(config)])
    _, err = sink.communicate(timeout=10)
    assert sink.returncode == 1 and "server_secret_key_file" in err.decode() and "cannot read" in err.decode()


def test_infer_refuses_a_model_file_that_does_not_match_its_card(processes, tmp_path):
    from daemon_helpers import tiny_model_card

    original = tiny_model_card(tmp_path / "built")
    model_dir = tmp_path / "tampered"
    shutil.copytree(original.parent, model_dir)
    model_file = model_dir / "tiny.tflite"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    config, _ = write_config(tmp_path, card=model_dir / "model_card.json")
    infer = processes.start_python(["-m", "stream.daemons.infer", "--config", str(config)])
    _, err = infer.communicate(timeout=30)
    assert infer.returncode == 1
    assert "does not match its card" in err.decode()

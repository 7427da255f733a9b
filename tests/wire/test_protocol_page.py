"""docs/protocol.md against the wire: a reader that knows only the page decodes every message kind
the real daemons send, and every key, type and counter the page lists is exactly what is sent.

The field lists are read from the page's own tables (not copied here), so the page cannot drift from
the daemons without this test failing: an independent subscriber written from the page alone (a
Node.js one found four counters listed that were never sent) sees what the page says.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import uuid

import msgpack
import numpy as np
import pytest
import zmq

from stream.config import Config
from stream.wire.protocol import FrameSpec, decode_frame

from conftest import REPO_ROOT, free_endpoint
from daemon_helpers import subscriber, tiny_model_card, write_config
from lsl_helpers import LSL_CONFIG, lsl_skip_reason

PAGE = REPO_ROOT / "docs" / "protocol.md"
PYTHON_MODULE = "-m"


def section(heading: str) -> str:
    """The text under the heading that starts with ``heading``, up to the next heading of its level."""
    text = PAGE.read_text()
    match = re.search(rf"^(#+) {re.escape(heading)}.*?$", text, re.M)
    assert match, f"docs/protocol.md has no heading {heading!r}"
    level = len(match.group(1))
    rest = text[match.end():]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: end.start() if end else len(rest)]


def tables(text: str) -> list[list[list[str]]]:
    """Every markdown table in ``text``: rows of cells, header and rule rows left out."""
    found, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif current:
            found.append(current)
            current = []
    if current:
        found.append(current)
    return [table[2:] for table in found]


def names(cell: str) -> list[str]:
    """The backticked names of a cell, not counting those inside parentheses (explanations)."""
    without_explanations = re.sub(r"\([^()]*\)", "", cell)
    return re.findall(r"`([a-z][a-z0-9_]*)`", without_explanations)


def key_types(table: list[list[str]]) -> dict[str, str]:
    """Key -> its type column, for a table whose first column names keys and second gives the type."""
    return {name: row[1] for row in table for name in names(row[0])}


def check_type(value, declared: str, where: str) -> None:
    declared = declared.split()[0]
    expected = {"str": str, "int": int, "float": (float, int), "map": dict, "bool": bool, "list": list}.get(declared)
    if declared.startswith("["):
        expected = list
    assert expected is not None, f"{where}: the page's type {declared!r} is not one this reader knows"
    assert isinstance(value, expected) and not (expected in (int, (float, int)) and isinstance(value, bool)), \
        f"{where}: the page says {declared}, the wire has {value!r}"


def check_map(mapping: dict, declared: dict[str, str], what: str) -> None:
    assert set(mapping) == set(declared), (
        f"{what}: sent but not on the page: {sorted(set(mapping) - set(declared))}; "
        f"on the page but not sent: {sorted(set(declared) - set(mapping))}")
    for key, type_text in declared.items():
        check_type(mapping[key], type_text, f"{what}.{key}")


def rows_by_daemon(table: list[list[str]]) -> dict[str, set[str]]:
    return {row[0]: set(names(row[1])) for row in table}


@pytest.fixture(scope="module")
def live_messages(tmp_path_factory):
    """One of each message kind from the real daemons (acquire on the simulated signer, infer with a
    tiny model, sink with threshold 0), plus every status heard."""
    import importlib.util
    import subprocess
    import sys
    import time

    tmp_path = tmp_path_factory.mktemp("page")
    # stream-speak (WAV files: no audio device needed) runs where espeak-ng is installed.
    speak = [["speak", "--wav-dir", str(tmp_path / "speech")]] if shutil.which("espeak-ng") else []
    speak_status = free_endpoint()
    # stream-monitor (any free web port) runs where its optional extra, aiohttp, is installed.
    monitor = [["monitor"]] if importlib.util.find_spec("aiohttp") else []
    monitor_status = free_endpoint()
    # stream-lsl runs where its optional extra, pylsl with its liblsl, loads (streams of its own name).
    lsl = [["lsl"]] if lsl_skip_reason() is None else []
    lsl_status = free_endpoint()
    config, endpoints = write_config(tmp_path, "[sink]\nconfidence_threshold = 0.0\n"
                                     f'[speak]\nstatus_endpoint = "{speak_status}"\n'
                                     f'[monitor]\nport = 0\nstatus_endpoint = "{monitor_status}"\n'
                                     f'[lsl]\nstream_prefix = "page-{uuid.uuid4().hex[:10]}"\n'
                                     f'status_endpoint = "{lsl_status}"\n',
                                     card=tiny_model_card(tmp_path / "model"))
    context = zmq.Context()
    context.setsockopt(zmq.LINGER, 0)
    sockets = {name: subscriber(context, endpoints[name], b"") for name in ("frames", "predictions", "events")}
    sockets["speak"] = subscriber(context, speak_status, b"status")
    sockets["monitor"] = subscriber(context, monitor_status, b"status")
    sockets["lsl"] = subscriber(context, lsl_status, b"status")
    started = [subprocess.Popen([sys.executable, PYTHON_MODULE, f"stream.daemons.{name}", "--config", str(config), *extra],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, "LSLAPICFG": str(LSL_CONFIG)})
               for name, *extra in [*speak, *monitor, *lsl, ["sink"], ["infer"], ["acquire"]]]
    seen: dict[str, list] = {"description": [], "frame": [], "truth": [], "prediction": [], "event": [], "status": []}
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (seen["event"] and seen["truth"] and seen["description"] and len(
                {msgpack.unpackb(parts[1])["daemon"] for parts in seen["status"]}) == 3 + len(speak) + len(monitor) + len(lsl)):
            for socket in zmq.select(list(sockets.values()), [], [], 0.1)[0]:
                parts = socket.recv_multipart()
                seen[parts[0].decode()].append(parts)
        assert seen["event"], "no event from the pipeline within 90 s"
    finally:
        for process in started:
            process.kill()
            process.wait(timeout=10)
        context.destroy(linger=0)
    return seen


def test_every_message_carries_exactly_the_keys_and_types_the_page_lists(live_messages):
    common = key_types(tables(section("Keys in every map"))[0])
    prediction = key_types(tables(section("`prediction`"))[0])
    event = key_types(tables(section("`event`"))[0])
    truth = key_types(tables(section("`truth`"))[0])
    status = key_types(tables(section("`status`"))[0])
    description = key_types(tables(section("`description`"))[0])
    for kind, declared in (("prediction", prediction), ("event", event), ("truth", truth), ("status", status),
                           ("description", description)):
        for parts in live_messages[kind][:20]:
            assert len(parts) == 2, f"{kind}: the page says two parts"
            mapping = msgpack.unpackb(parts[1], raw=False)
            check_map(mapping, {**common, **declared}, kind)
            assert mapping["v"] == 2


def test_a_frame_decoded_from_the_page_alone_equals_the_reference_decoder(live_messages):
    import hashlib
    import json

    common = key_types(tables(section("Keys in every map"))[0])
    stream_keys = key_types(tables(section("`description`"))[1])
    header_keys = key_types(tables(section("`frame`"))[0])
    spec = FrameSpec.from_config(Config())
    descriptions = {}
    for parts in live_messages["description"]:
        description = msgpack.unpackb(parts[1], raw=False)
        # "the first 16 hex digits of the sha256 of streams as canonical JSON (keys sorted, no spaces, ASCII)"
        canonical = json.dumps(description["streams"], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        assert description["id"] == hashlib.sha256(canonical.encode("ascii")).hexdigest()[:16]
        descriptions[description["id"]] = description
    assert len(descriptions) == 1
    for parts in live_messages["frame"][:50]:
        assert len(parts) == 3, "frame: the page says three parts"
        header = msgpack.unpackb(parts[1], raw=False)
        check_map(header, {**common, **header_keys}, "frame header")
        _, reference = decode_frame(parts, spec)
        description = descriptions[header["description"]]
        assert len(parts[2]) == description["payload_bytes"]
        for stream in description["streams"]:
            check_map(stream, stream_keys, f"description stream {stream.get('modality')}")
            assert isinstance(stream["rate"], str) and re.fullmatch(r"\d+(/\d+)?", stream["rate"])
            rows, columns = stream["shape"]
            # The page's portable recipe: little-endian float32 read value by value from the offset.
            values = struct.unpack_from(f"<{rows * columns}f", parts[2], stream["offset"])
            assert np.array_equal(np.array(values, np.float32).reshape(rows, columns),
                                  getattr(reference, stream["modality"]), equal_nan=True)
            assert len(stream["channels"]) == columns
        # "The frame whose seq is k normally has emg_first_index = 15k and imu_first_index = 2k".
        assert header["emg_first_index"] == 15 * header["seq"] and header["imu_first_index"] == 2 * header["seq"]


def test_every_status_sends_exactly_the_counters_and_info_the_page_lists_from_the_start(live_messages):
    info_table, counter_table = tables(section("`status`"))[1:3]
    info = {daemon: keys for daemon, keys in rows_by_daemon(info_table).items()}
    counters = rows_by_daemon(counter_table)
    every = counters.pop("every daemon")
    heard = set()
    for parts in live_messages["status"]:
        status = msgpack.unpackb(parts[1], raw=False)
        daemon = status["daemon"]
        heard.add(daemon)
        expected = every | counters[daemon]
        assert set(status["counters"]) == expected, (
            f"{daemon} status: sent but not on the page: {sorted(set(status['counters']) - expected)}; "
            f"on the page but not sent: {sorted(expected - set(status['counters']))}")
        assert all(isinstance(value, (int, float)) for value in status["counters"].values())
        assert set(status["info"]) == info[daemon], (daemon, sorted(status["info"]))
    assert set(counters) == set(info)
    import importlib.util

    not_run = {name: why for name, why, present in (
        ("stream-speak", "espeak-ng not installed (apt-get install espeak-ng)", shutil.which("espeak-ng")),
        ("stream-monitor", "aiohttp not installed (pip install -e '.[monitor]')", importlib.util.find_spec("aiohttp")),
        ("stream-lsl", lsl_skip_reason(), True if lsl_skip_reason() is None else None),
    ) if name not in heard and present is None}
    if not_run:
        assert heard == set(counters) - set(not_run)
        pytest.skip("; ".join(f"{name}'s status not checked: {why}" for name, why in not_run.items()))
    assert heard == set(counters)


def test_the_event_example_has_every_key_of_the_event_table():
    common = key_types(tables(section("Keys in every map"))[0])
    event = key_types(tables(section("`event`"))[0])
    example = re.search(r"```\n(\{.*?\})\n```", section("`event`"), re.S).group(1)
    keys = set(re.findall(r'"([a-z_]+)":', example))
    assert keys == set(common) | set(event), sorted(keys ^ (set(common) | set(event)))

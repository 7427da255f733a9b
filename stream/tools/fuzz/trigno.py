"""Trigno fuzz targets: the client's command-port framing and reply parsers, its base dialogue
(describe_base + check_setup) with fuzzed replies, the data-port row decoder and the emulated base's
command handling. A check refuses with the client's own errors or returns what its callers rely on."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from stream.config import Config
from stream.sources.trigno import settings_from_config
from stream.tools.fuzz.mutations import mutated_bytes
from stream.tools.fuzz.outcomes import ACCEPTED, REFUSED
from stream.trigno.client import TrignoConnectionError, TrignoSetupError, check_setup, describe_base
from stream.trigno.convert import RowDecoder, SlotMapping
from stream.trigno.emulated_base import EmulatedBase
from stream.trigno.protocol import (
    BANNER_PREFIX,
    IMU_LAYOUT,
    LEGACY_LAYOUT,
    MAX_REPLY_BYTES,
    TERMINATOR,
    MessageSplitter,
    TrignoProtocolError,
    check_reply,
    exact_rate,
    parse_banner,
    parse_float,
    parse_int,
    parse_yes_no,
    unit_factor,
)

TRIGNO_ERRORS = (TrignoProtocolError, TrignoSetupError, TrignoConnectionError)
VALID_REPLIES = ("OK", "YES", "NO", "UPSAMPLING OFF", "0.0135", "15", "2", "1111.111", "148.148", "1.000", "V", "g",
                 "deg/s", "INVALID COMMAND", "CANNOT COMPLETE", f"{BANNER_PREFIX} 3.6.0", "40", "O", "7")
command_text = st.one_of(
    st.text(max_size=80),
    st.sampled_from(VALID_REPLIES),
    st.sampled_from(VALID_REPLIES).flatmap(lambda reply: mutated_bytes(reply.encode()).map(
        lambda data: data.decode("latin-1"))),
    st.from_regex(r"\A[ -~]{0,40}\Z"),
    st.floats().map(repr), st.integers().map(str),
)


def check_command_stream(chunks: list[bytes]) -> str:
    splitter = MessageSplitter()
    try:
        for chunk in chunks:
            for message in splitter.feed(chunk):
                assert isinstance(message, str) and "\r\n\r\n" not in message
    except TrignoProtocolError:
        return REFUSED
    assert splitter.pending <= MAX_REPLY_BYTES
    return ACCEPTED


def command_streams() -> st.SearchStrategy[list[bytes]]:
    replies = b"".join(reply.encode() + TERMINATOR for reply in VALID_REPLIES)
    return st.one_of(
        st.lists(st.binary(max_size=300), max_size=20),
        mutated_bytes(replies).flatmap(lambda data: st.lists(st.integers(0, len(data)), max_size=10).map(
            lambda cuts: [data[a:b] for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), len(data)])])),
        st.integers(MAX_REPLY_BYTES - 8, MAX_REPLY_BYTES + 8).map(lambda size: [b"A" * size]),
    )


def check_reply_parsers(reply: str) -> str:
    results = []
    parsers = (
        lambda: parse_banner(reply), lambda: check_reply("X?", reply), lambda: parse_yes_no("X?", reply),
        lambda: parse_int("X?", reply), lambda: exact_rate(parse_float("X?", reply)), lambda: unit_factor(reply),
    )
    for parser in parsers:
        try:
            value = parser()
        except TrignoProtocolError:
            results.append(False)
            continue
        results.append(True)
        if isinstance(value, float):
            assert math.isfinite(value)
    return ACCEPTED if any(results) else REFUSED


class FuzzedSession:
    """A command session whose replies come from a hypothesis draw; silence after the draw runs out
    (as a real base going quiet: the client times out)."""

    protocol_version = "3.6.0"

    def __init__(self, base: EmulatedBase, replacements: dict[int, str], limit: int = 400) -> None:
        self.base, self.replacements, self.limit, self.count = base, replacements, limit, 0

    def query(self, command: str) -> str:
        self.count += 1
        if self.count > self.limit:
            raise TrignoConnectionError("no reply (fuzzed session exhausted)")
        honest = self.base.reply(command)
        return self.replacements.get(self.count, honest)


CLIENT_SETTINGS = settings_from_config(Config())


def check_base_dialogue(replacements: dict[int, str]) -> str:
    session = FuzzedSession(EmulatedBase.with_slots(CLIENT_SETTINGS.slots), replacements)
    try:
        info = describe_base(session, CLIENT_SETTINGS.slots)
        mapping = check_setup(info, CLIENT_SETTINGS)
    except TRIGNO_ERRORS:
        return REFUSED
    assert mapping.slots == CLIENT_SETTINGS.slots
    assert np.isfinite(mapping.emg_factors).all() and np.isfinite(mapping.acc_factors).all()
    return ACCEPTED


dialogues = st.dictionaries(st.integers(1, 120), command_text, max_size=6)


def check_data_rows(draw: tuple[bytes, bytes, bool]) -> str:
    with np.errstate(all="ignore"):  # any bit pattern: NaN and inf arithmetic is expected, not news
        return _check_data_rows(draw)


def _check_data_rows(draw: tuple[bytes, bytes, bool]) -> str:
    emg_bytes, aux_bytes, legacy = draw
    layout = LEGACY_LAYOUT if legacy else IMU_LAYOUT
    emg_rows = np.frombuffer(emg_bytes, dtype="<f4").reshape(15, layout.emg_row_values).copy()
    aux_rows = np.frombuffer(aux_bytes, dtype="<f4").reshape(2, layout.aux_row_values).copy()
    slots = (1, 2, 3, 4, 5, 6)
    decoder = RowDecoder(SlotMapping.build(slots, layout))
    emg, acc, gyro = decoder.decode(emg_rows, aux_rows)  # a float32 past 3.4e35 V is inf in mV: refused downstream
    expected_emg = emg_rows * np.float32(1000.0)
    assert emg.shape == (15, 6) and acc.shape == (2, 18) and gyro.shape == (2, 18)
    assert emg.dtype == acc.dtype == gyro.dtype == np.float32
    for sensor, slot in enumerate(slots):
        silent = not emg_rows[:, slot - 1].any() and not aux_rows[:, (slot - 1) * layout.aux_values_per_slot:
                                                                   slot * layout.aux_values_per_slot].any()
        # A slot of zeros on both ports is a dropout (NaN); anything else is passed on, scaled to mV.
        assert np.isnan(emg[:, sensor]).all() == silent
        if not silent:
            np.testing.assert_array_equal(emg[:, sensor], expected_emg[:, slot - 1])
    if legacy:
        assert np.isnan(gyro).all()
    return ACCEPTED


def data_rows() -> st.SearchStrategy[tuple[bytes, bytes, bool]]:
    def for_layout(legacy: bool):
        layout = LEGACY_LAYOUT if legacy else IMU_LAYOUT
        emg_size, aux_size = 15 * layout.emg_row_bytes, 2 * layout.aux_row_bytes
        sparse = st.lists(st.tuples(st.integers(0, emg_size - 1), st.integers(0, 255)), max_size=12).map(
            lambda writes: _poke(emg_size, writes))
        emg = st.binary(min_size=emg_size, max_size=emg_size) | sparse
        aux = st.binary(min_size=aux_size, max_size=aux_size) | st.just(bytes(aux_size))
        return st.tuples(emg, aux, st.just(legacy))

    return st.booleans().flatmap(for_layout)


def _poke(size: int, writes) -> bytes:
    buffer = bytearray(size)  # mostly zeros: empty slots, dropouts and the odd live value
    for position, value in writes:
        buffer[position] = value
    return bytes(buffer)


def check_emulator_command(command: str) -> str:
    base = EmulatedBase.with_slots((1, 2, 3, 4, 5, 6))
    reply = base.reply(command)
    assert isinstance(reply, str) and reply and "\r" not in reply and "\n" not in reply
    return REFUSED if reply in ("INVALID COMMAND", "CANNOT COMPLETE") else ACCEPTED


emulator_commands = st.one_of(
    command_text,
    st.builds(lambda slot, channel, what: f"SENSOR {slot} CHANNEL {channel} {what}",
              st.integers(-5, 10**30), st.integers(-5, 10**30), st.sampled_from(("RATE?", "GAIN?", "UNITS?", "SAMPLES?", "X"))),
    st.builds(lambda slot, what: f"SENSOR {slot} {what}", st.integers(-5, 10**30),
              st.sampled_from(("PAIRED?", "TYPE?", "MODE?", "CHANNELCOUNT?", "STARTINDEX?", "ACTIVE?", "BOGUS"))),
)

"""Fuzzing every message decoder (targets in stream.tools.fuzz): a few hundred examples each in the default
run; 10,000 each with ``--run-slow`` (or ``python -m stream.tools.fuzz --examples 10000``). Plus the inputs
fuzzing found to be dangerous, kept as fixed regression cases."""

from __future__ import annotations

import time

import msgpack
import pytest

from stream.tools.fuzz import (
    CLIENT_SETTINGS,
    SPEC,
    TARGETS,
    TARGETS_BY_NAME,
    FuzzedSession,
    check_base_dialogue,
    run_target,
)
from stream.trigno.client import TrignoSetupError, check_setup, describe_base
from stream.trigno.emulated_base import EmulatedBase
from stream.trigno.protocol import TrignoProtocolError, exact_rate, parse_float
from stream.wire.protocol import FrameEncoder, ProtocolError, decode_description

DEFAULT_EXAMPLES = 300
SLOW_EXAMPLES = 10_000


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", [target.name for target in TARGETS])
def test_decoder_refuses_or_returns_valid_output(name):
    result = run_target(TARGETS_BY_NAME[name], DEFAULT_EXAMPLES)
    assert result["examples"] >= DEFAULT_EXAMPLES


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("name", [target.name for target in TARGETS])
def test_decoder_survives_ten_thousand_examples(name):
    result = run_target(TARGETS_BY_NAME[name], SLOW_EXAMPLES)
    assert result["examples"] >= SLOW_EXAMPLES


def test_fuzzing_covers_both_outcomes():
    """A fuzzer that only ever produces refusals (or only valid input) tests nothing."""
    for name in ("frame", "description", "prediction", "status", "trigno_base_dialogue"):
        result = run_target(TARGETS_BY_NAME[name], 200, seed=1)
        assert result["accepted"] > 0 and result["refused"] > 0, (name, result)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("rate", ["1e100000000", "1E99999999", "9" * 65])
def test_a_rate_that_would_build_a_huge_number_is_refused_at_once(rate):
    """Found while fuzzing: Fraction('1e100000000') takes minutes, so one small header stalled infer."""
    topic, description = FrameEncoder(SPEC).encode_description()
    mapping = msgpack.unpackb(description)
    mapping["streams"][0]["rate"] = rate
    started = time.perf_counter()
    with pytest.raises(ProtocolError, match="rate"):
        decode_description([topic, msgpack.packb(mapping)])
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("reply", ["inf", "-inf", "nan", "1e999"])
def test_non_finite_number_replies_are_protocol_errors(reply):
    """Found while fuzzing: 'inf' as a RATE? reply raised OverflowError out of exact_rate."""
    with pytest.raises(TrignoProtocolError, match="finite"):
        exact_rate(parse_float("SENSOR 1 CHANNEL 1 RATE?", reply))


def test_a_channel_count_that_disagrees_with_the_aux_count_is_a_setup_error():
    """Found while fuzzing: CHANNELCOUNT? 0 raised IndexError, 2 a ValueError, out of check_setup."""
    # Query 9 is slot 1's CHANNELCOUNT? (after 5 base queries, then PAIRED?, TYPE?, MODE?).
    for count in ("0", "2", "4"):
        session = FuzzedSession(EmulatedBase.with_slots(CLIENT_SETTINGS.slots), {9: count})
        with pytest.raises(TrignoSetupError, match="channels"):
            check_setup(describe_base(session, CLIENT_SETTINGS.slots), CLIENT_SETTINGS)
        assert check_base_dialogue({9: count}) == "refused"
    assert check_base_dialogue({}) == "accepted"  # the honest base is accepted

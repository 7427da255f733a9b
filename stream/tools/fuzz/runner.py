"""The fuzz targets (one per decoder) and running them: ``run_target`` for the tests, ``main`` for
``python -m stream.tools.fuzz``."""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from stream.tools.fuzz.messages import (
    any_map_invariant,
    check_classified,
    check_frame,
    description_invariant,
    frame_messages,
    map_check,
    map_messages,
    prediction_invariant,
    status_invariant,
    truth_invariant,
    valid_description,
    valid_event,
    valid_prediction,
    valid_status,
    valid_truth,
)
from stream.tools.fuzz.outcomes import ACCEPTED, REFUSED
from stream.tools.fuzz.trigno import (
    check_base_dialogue,
    check_command_stream,
    check_data_rows,
    check_emulator_command,
    check_reply_parsers,
    command_streams,
    command_text,
    data_rows,
    dialogues,
    emulator_commands,
)
from stream.wire.protocol import (decode_description, decode_event, decode_map_message, decode_prediction, decode_status,
                                  decode_truth)


@dataclass(frozen=True)
class Target:
    name: str
    strategy: Callable[[], st.SearchStrategy]
    check: Callable[[object], str]
    what: str


TARGETS = (
    Target("frame", frame_messages, check_frame, "stream.wire.protocol.decode_frame"),
    Target("description", lambda: map_messages(b"description", valid_description()),
           map_check(decode_description, description_invariant), "stream.wire.protocol.decode_description"),
    Target("prediction", lambda: map_messages(b"prediction", valid_prediction()),
           map_check(decode_prediction, prediction_invariant), "stream.wire.protocol.decode_prediction"),
    Target("event", lambda: map_messages(b"event", valid_event()),
           map_check(decode_event, check_classified), "stream.wire.protocol.decode_event"),
    Target("status", lambda: map_messages(b"status", valid_status()),
           map_check(decode_status, status_invariant), "stream.wire.protocol.decode_status"),
    Target("truth", lambda: map_messages(b"truth", valid_truth()),
           map_check(decode_truth, truth_invariant), "stream.wire.protocol.decode_truth"),
    Target("any_map", lambda: st.one_of(map_messages(b"event", valid_event()), map_messages(b"status", valid_status()),
                                        map_messages(b"truth", valid_truth()),
                                        map_messages(b"description", valid_description())),
           map_check(decode_map_message, any_map_invariant), "stream.wire.protocol.decode_map_message (by topic)"),
    Target("trigno_command_stream", command_streams, check_command_stream,
           "stream.trigno.protocol.MessageSplitter.feed (command-port framing)"),
    Target("trigno_replies", lambda: command_text, check_reply_parsers,
           "stream.trigno.protocol parse_banner/check_reply/parse_yes_no/parse_int/parse_float+exact_rate/unit_factor"),
    Target("trigno_base_dialogue", lambda: dialogues, check_base_dialogue,
           "stream.trigno.client describe_base + check_setup with fuzzed replies"),
    Target("trigno_data_rows", data_rows, check_data_rows, "stream.trigno.convert.RowDecoder.decode (data ports)"),
    Target("trigno_emulator_commands", lambda: emulator_commands, check_emulator_command,
           "stream.trigno.emulated_base.EmulatedBase.reply"),
)
TARGETS_BY_NAME = {target.name: target for target in TARGETS}


def run_target(target: Target, examples: int, seed: int | None = None) -> dict:
    """Run ``examples`` hypothesis examples of one target; raises (after shrinking) on a failure."""
    outcomes: Counter[str] = Counter()

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              print_blob=True)
    @given(target.strategy())
    def fuzz(message) -> None:
        outcomes[target.check(message)] += 1

    if seed is not None:
        fuzz = hypothesis_seed(seed)(fuzz)
    started = time.perf_counter()
    fuzz()
    return {"decoder": target.what, "examples": sum(outcomes.values()), "accepted": outcomes[ACCEPTED],
            "refused": outcomes[REFUSED], "seconds": round(time.perf_counter() - started, 2)}


def main(argv=None) -> int:
    description = sys.modules[__package__].__doc__.split("\n\n")[0]  # the package's docstring, as --help's text
    parser = argparse.ArgumentParser(prog="python -m stream.tools.fuzz", description=description)
    parser.add_argument("--examples", type=int, default=10000, help="hypothesis examples per target")
    parser.add_argument("--only", action="append", choices=sorted(TARGETS_BY_NAME), help="run only this target")
    parser.add_argument("--seed", type=int, default=None, help="fix hypothesis' seed (reproducible run)")
    arguments = parser.parse_args(argv)
    chosen = [TARGETS_BY_NAME[name] for name in arguments.only] if arguments.only else list(TARGETS)
    results, failed = {}, []
    for target in chosen:
        try:
            results[target.name] = run_target(target, arguments.examples, arguments.seed)
        except Exception as error:  # report the shrunk example (hypothesis raised it) and go on
            traceback.print_exc()
            failed.append(target.name)
            results[target.name] = {"decoder": target.what, "error": f"{type(error).__name__}: {error}"[:500]}
        print(f"{target.name}: {results[target.name]}", file=sys.stderr, flush=True)
    print(json.dumps({"examples_per_target": arguments.examples, "targets": results, "failed": failed}, indent=1))
    return 1 if failed else 0

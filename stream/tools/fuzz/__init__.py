"""Fuzzing every message decoder: the wire protocol (stream.wire.protocol) and the Trigno client's parsers.

``python -m stream.tools.fuzz --examples 10000`` runs each target with that many hypothesis examples and
prints one JSON object (examples, accepted, refused and seconds per target); it exits 1, printing the
shrunk failing example, when a decoder raises anything but its own refusal. ``tests/tools/test_fuzz.py``
runs the same targets with a few hundred examples in the default test run.

Each target draws a mix of inputs: random bytes, valid messages with random byte-level mutations
(flip, insert, delete, overwrite, truncate), valid messages with one structured change (a field
deleted or replaced by a random msgpack value, anywhere in the nesting), and random text for the
Trigno command port. The rule checked: a decoder either refuses with its documented error
(``ProtocolError``; ``TrignoProtocolError`` / ``TrignoSetupError`` / ``TrignoConnectionError``) or
returns something that satisfies the invariants its callers rely on (shapes, dtypes, finite values,
indices in range). Anything else (a TypeError, an OverflowError, a hang) is a bug.

Needs hypothesis (a test dependency): this package is a tool, never imported by the daemons.
"""

from stream.tools.fuzz.messages import SPEC, valid_frame_message
from stream.tools.fuzz.runner import TARGETS, TARGETS_BY_NAME, run_target
from stream.tools.fuzz.trigno import CLIENT_SETTINGS, FuzzedSession, check_base_dialogue

__all__ = ["CLIENT_SETTINGS", "SPEC", "TARGETS", "TARGETS_BY_NAME", "FuzzedSession", "check_base_dialogue", "run_target",
           "valid_frame_message"]

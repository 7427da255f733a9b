"""``python -m stream.trigno.probe --config FILE``: what the base station reports, before streaming.

Connects to ``[acquire.trigno]``, applies the configured settings, queries the base and the
configured slots and prints them as one JSON object, then says whether the pipeline can stream from
it (the same checks as ``TrignoSource``). Exit status 0 when it can, 1 when the base is unreachable
or set up differently from the config (the reason is printed), 2 for a bad config. Sends no START.
"""

from __future__ import annotations

import dataclasses
import json
import sys

from stream.config.cli import build_parser, load_config_or_exit
from stream.sources.trigno import settings_from_config
from stream.trigno.client import (
    CommandSession,
    TrignoConnectionError,
    TrignoSetupError,
    check_setup,
    configure,
    describe_base,
)
from stream.trigno.protocol import TrignoProtocolError


def _plain(value):
    if dataclasses.is_dataclass(value):
        return {field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)  # Fraction rates as "10000/9"


def main(argv=None) -> int:
    arguments = build_parser("python -m stream.trigno.probe", __doc__.splitlines()[0]).parse_args(argv)
    config = load_config_or_exit(arguments)
    settings = settings_from_config(config)
    report: dict = {"host": settings.host, "command_port": settings.command_port}
    status = 0
    try:
        session = CommandSession(settings.host, settings.command_port, settings.timeout_s)
        try:
            configure(session, settings)
            info = describe_base(session, settings.slots)
        finally:
            session.close()
        report["base"] = _plain(info)
        check_setup(info, settings)
        report["ready"] = True
    except (TrignoConnectionError, TrignoSetupError, TrignoProtocolError) as error:
        report.update(ready=False, problem=str(error))
        status = 1
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return status


if __name__ == "__main__":
    raise SystemExit(main())

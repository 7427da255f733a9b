"""Without pylsl, or with a pylsl that cannot load its liblsl (the aarch64 wheel on a Pi), the LSL
parts stop at start-up with one line naming the fix, and ``stream`` itself still imports; the
[acquire.lsl] and [lsl] tables refuse what LSL queries cannot carry. No liblsl needed here."""

from __future__ import annotations

import subprocess
import sys

import pytest

from stream.config import ConfigError, config_from_dict

from daemon_helpers import write_config

NO_PYLSL = "raise ModuleNotFoundError(\"No module named 'pylsl'\", name='pylsl')\n"
# What pylsl 1.18 raises on aarch64 where no liblsl is installed.
NO_LIBLSL = ("raise RuntimeError('LSL binary library file was not found. Please make sure that the binary file "
             "can be found in the package lib folder or the system search path.')\n")


@pytest.mark.parametrize("fake, expected", [
    (NO_PYLSL, "needs pylsl, which is not installed: pip install 'signstream[lsl]'"),
    (NO_LIBLSL, "pylsl cannot load liblsl (LSL binary library file was not found."),
], ids=["no-pylsl", "no-liblsl"])
@pytest.mark.parametrize("daemon, extra", [("lsl", ""), ("acquire", '[acquire]\nsource = "lsl"\n')],
                         ids=["stream-lsl", "stream-acquire"])
def test_the_daemons_exit_1_naming_the_install(tmp_path, fake, expected, daemon, extra):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "pylsl.py").write_text(fake)
    config, _ = write_config(tmp_path, extra)
    result = subprocess.run([sys.executable, "-m", f"stream.daemons.{daemon}", "--config", str(config)],
                            env={**__import__("os").environ, "PYTHONPATH": str(shadow)}, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert expected in result.stderr and "docs/LSL.md" in result.stderr


def test_stream_imports_without_pylsl(tmp_path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "pylsl.py").write_text(NO_PYLSL)
    code = ("import stream.daemons.lsl, stream.sources.lsl, stream.lsl.bridge, stream.daemons.acquire, "
            "stream.tools.lsl_bench; "
            "print(stream.tools.lsl_bench.run())")
    result = subprocess.run([sys.executable, "-c", code], env={**__import__("os").environ, "PYTHONPATH": str(shadow)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "'lsl_skipped': \"Lab Streaming Layer support needs pylsl" in result.stdout


@pytest.mark.parametrize("table, message", [
    ({"acquire": {"lsl": {"emg_name": "", "emg_type": ""}}}, "emg_name = '': must be a stream name, or emg_type set"),
    ({"acquire": {"lsl": {"acc_name": "it's"}}},
     "acc_name = \"it's\": must be at most 200 characters without a single quote"),
    ({"acquire": {"lsl": {"max_stall_s": 1.0}}}, "max_stall_s = 1.0: must be 0 (keep waiting) or >= stall_timeout_s"),
    ({"lsl": {"status_endpoint": "127.0.0.1:5560"}}, "status_endpoint = '127.0.0.1:5560': must be a ZeroMQ endpoint"),
    ({"lsl": {"stream_prefix": ""}}, "stream_prefix = '': must be 1-100 characters"),
])
def test_the_lsl_tables_refuse_what_a_query_cannot_carry(table, message):
    with pytest.raises(ConfigError) as raised:
        config_from_dict(table)
    assert message in str(raised.value)

"""`python -m stream.demo --monitor`: without the optional extra it says what to install and starts
nothing (the demo with the page itself runs in tests/daemons/test_monitor_browser.py's pipeline)."""

from __future__ import annotations

import subprocess
import sys


def test_demo_monitor_without_aiohttp_says_what_to_install():
    code = ("import sys; sys.modules['aiohttp'] = None; from stream.demo import main; "
            "raise SystemExit(main(['--monitor', '--duration', '1']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "demo --monitor: stream-monitor needs aiohttp" in result.stderr
    assert "pip install -e '.[monitor]'" in result.stderr
    assert "signstream demo:" not in result.stdout  # nothing was started

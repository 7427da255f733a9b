"""trigno_client_cpu_fraction: CPU time of the Trigno client per second of streaming, at the full
16-slot data rate, with the emulator in another process (so only the client's work is counted).

The client side is the whole TrignoSource path: select, recv into the frame buffers, slot mapping,
unit conversion and Frame objects. ``python -m stream.trigno.bench`` prints the figures as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SLOTS = tuple(range(1, 17))
MEASURE_S = 4.0
WARM_UP_FRAMES = 20


def _start_emulator(config_path: Path) -> tuple[subprocess.Popen, dict]:
    process = subprocess.Popen(
        [sys.executable, "-m", "stream.trigno.emulator", "--config", str(config_path), "--source", "test",
         "--ports", "0,0,0,0,0", "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True, text=True,
    )
    ready, _, _ = select.select([process.stdout], [], [], 30)
    if not ready:
        process.kill()
        raise RuntimeError("the emulator did not report its ports within 30 s")
    line = process.stdout.readline()
    try:
        return process, json.loads(line)["listening"]
    except (ValueError, KeyError):
        process.kill()
        raise RuntimeError(f"the emulator printed {line!r} instead of its ports") from None


def run(measure_s: float = MEASURE_S) -> dict:
    from stream.config import load_config
    from stream.sources.trigno import TrignoSource

    names = ", ".join(f'"slot_{slot}"' for slot in SLOTS)
    with tempfile.TemporaryDirectory() as directory:
        config_path = Path(directory) / "bench.toml"
        config_path.write_text(f"[sensors]\nnames = [{names}]\n[acquire.trigno]\nslots = {list(SLOTS)}\n")
        config = load_config(config_path)
        process, ports = _start_emulator(config_path)
        try:
            trigno = dataclasses.replace(config.acquire.trigno, command_port=ports["command"], emg_port=ports["emg"],
                                         aux_port=ports["aux"], timeout_s=2.0, max_reconnect_attempts=3)
            config = dataclasses.replace(config, acquire=dataclasses.replace(config.acquire, trigno=trigno))
            source = TrignoSource(config)
            try:
                for _ in range(WARM_UP_FRAMES):
                    next(source)
                frames = 0
                wall_start, cpu_start = time.monotonic(), time.process_time()
                while time.monotonic() - wall_start < measure_s:
                    next(source)
                    frames += 1
                wall_s, cpu_s = time.monotonic() - wall_start, time.process_time() - cpu_start
                bytes_per_frame = (15 * 16 + 2 * 144) * 4
            finally:
                source.close()
        finally:
            os.killpg(process.pid, 15)
            process.wait(timeout=10)
    return {
        "trigno_client_cpu_fraction": round(cpu_s / wall_s, 5),
        "trigno_client_us_per_frame": round(1e6 * cpu_s / max(frames, 1), 1),
        "trigno_client_frames_per_s": round(frames / wall_s, 2),
        "trigno_client_slots": len(SLOTS),
        "trigno_client_bytes_per_s": round(frames * bytes_per_frame / wall_s),
    }


if __name__ == "__main__":
    print(json.dumps(run()))

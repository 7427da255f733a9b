"""Generate a whole dataset directory: isolated recordings + sessions, index, splits.

Work is split into one task per (signer, sign) and per session, run in a process pool; the parent
writes one HDF5 file per signer for its isolated recordings and one for its sessions, each written
whole to a temporary name and renamed into place, then the index and splits (atomically, last).
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from stream.common.atomic import atomic_write_json
from stream.recording import Recording, write_recordings
from stream.recording.dataset import INDEX_NAME, SPLITS_NAME, Entry
from stream.synth.session import SENSOR_NAMES, signer_name
from stream.synth.signer import GENERATOR_VERSION, GENERATOR_VERSIONS
from stream.synth.vocabulary import LABELS, VOCABULARY
from stream.wire.rates import EMG_RATE_HZ, IMU_RATE_HZ
from train.dataset import write_index
from train.splits import make_splits
from train.synth.generate import isolated_batch, session_batch


class Progress:
    """A one-line progress bar on stderr (a line per 10% when stderr is not a terminal)."""

    def __init__(self, total: int, what: str, stream=None, enabled: bool = True) -> None:
        self.total, self.what, self.enabled = total, what, enabled
        self.stream = sys.stderr if stream is None else stream  # looked up now: tests and tools swap it
        self.done = 0
        self.started = time.monotonic()
        self.last_shown = -1.0
        self.interactive = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.last_decile = -1

    def update(self, count: int) -> None:
        self.done += count
        if not self.enabled:
            return
        now = time.monotonic()
        elapsed = now - self.started
        if self.interactive and (now - self.last_shown > 0.1 or self.done >= self.total):
            filled = int(30 * self.done / max(self.total, 1))
            rate = self.done / elapsed if elapsed > 0 else 0.0
            remaining = (self.total - self.done) / rate if rate > 0 else 0.0
            self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} {self.what} "
                              f"{elapsed:5.1f} s, ~{remaining:4.0f} s left ")
            self.stream.flush()
            self.last_shown = now
        elif not self.interactive and (10 * self.done // max(self.total, 1)) > self.last_decile:
            self.last_decile = 10 * self.done // max(self.total, 1)
            self.stream.write(f"{self.done}/{self.total} {self.what} ({elapsed:.1f} s)\n")
            self.stream.flush()

    def finish(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()


def _entry(relative: str, key: str, recording: Recording) -> Entry:
    metadata = recording.metadata
    return Entry(
        id=f"{metadata['signer']}.{key}", file=relative, key=key, kind=metadata["kind"], signer=metadata["signer"],
        label=metadata.get("label"), repetition=metadata.get("repetition"), session=metadata.get("session"),
        duration_s=round(recording.duration_s, 4), annotations=len(recording.annotations),
    )


def _ignore_interrupts() -> None:
    """In each worker: Ctrl-C (SIGINT to the whole process group) is the parent's to handle, which
    lets the batches in flight finish and starts no more."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def generate_dataset(out: str | Path, signers: int = 5, repetitions: int = 20, seed: int = 0, sessions: int = 3,
                     workers: int | None = None, variability: float = 1.0, progress: bool = True,
                     version: int = GENERATOR_VERSION) -> dict:
    """Write the dataset to ``out`` (new or empty directory) from generator ``version`` (4: synth-v6,
    5: synth-v7). Returns a summary with the timing."""
    out = Path(out)
    if (out / INDEX_NAME).exists():
        raise FileExistsError(f"{out}: already holds a dataset ({INDEX_NAME}); datasets are never overwritten, "
                              "choose a new --out (e.g. a new version suffix)")
    if version not in GENERATOR_VERSIONS:
        raise ValueError(f"--generator-version {version}: known versions are {', '.join(map(str, GENERATOR_VERSIONS))}")
    if signers < 1 or repetitions < 1 or sessions < 0:
        raise ValueError("--signers and --repetitions must be >= 1 and --sessions >= 0")
    (out / "recordings").mkdir(parents=True, exist_ok=True)
    workers = workers or min(2, os.cpu_count() or 1)
    started = time.monotonic()
    isolated_tasks = [(seed, signer, sign, repetitions, variability, version)
                      for signer in range(signers) for sign in range(len(VOCABULARY))]
    session_tasks = [(seed, signer, session, version) for signer in range(signers) for session in range(sessions)]
    bar = Progress(len(isolated_tasks) * repetitions + len(session_tasks), "recordings", enabled=progress)
    entries: list[Entry] = []
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    # Not multiprocessing.Pool: on Ctrl-C its terminate() kills workers mid-way through sending a
    # result (a recording batch is megabytes), and the truncated message left the result thread, and
    # so the build, waiting for ever (2 of 253 interrupted builds, 2 of 20 more where the workers got
    # SIGINT too; py-spy: joining the result handler). The executor's shutdown lets
    # the batches in flight finish (at most workers + 1, about a second) and cancels the rest.
    executor = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_ignore_interrupts)

    def write_per_signer(results: Iterator, tasks_per_signer: int, suffix: str) -> None:
        for signer in range(signers):
            relative = f"recordings/{signer_name(signer)}{suffix}.h5"

            def items() -> Iterator[tuple[str, Recording]]:
                for _ in range(tasks_per_signer):
                    batch = next(results)
                    bar.update(len(batch))
                    for key, recording in batch:
                        entries.append(_entry(relative, key, recording))
                        yield key, recording

            if tasks_per_signer:
                write_recordings(out / relative, items())

    try:
        write_per_signer(executor.map(isolated_batch, isolated_tasks), len(VOCABULARY), "")
        write_per_signer(executor.map(session_batch, session_tasks), sessions, "-sessions")
    except BaseException:
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    executor.shutdown(wait=True)
    bar.finish()
    entry_dicts = [asdict(entry) for entry in entries]
    atomic_write_json(out / SPLITS_NAME, make_splits(entry_dicts, seed=seed))
    provenance = {
        "generator": "train.synth", "generator_version": version, "seed": seed, "signers": signers,
        "repetitions": repetitions, "sessions_per_signer": sessions, "variability": variability,
        "command": (f"python -m train.synth --out {out} --signers {signers} --repetitions {repetitions} "
                    f"--seed {seed} --sessions {sessions} --generator-version {version}"
                    + (f" --variability {variability}" if variability != 1.0 else "")),
        "vocabulary": [{"name": sign.name, "kind": sign.kind, "handshape": sign.handshape, "location": sign.location,
                        "movement": sign.movement.kind} for sign in VOCABULARY],
    }
    write_index(out, list(LABELS), list(SENSOR_NAMES), EMG_RATE_HZ, IMU_RATE_HZ, entries, provenance)
    elapsed = time.monotonic() - started
    return {"out": str(out), "recordings": len(entries), "seconds": round(elapsed, 2), "workers": workers}

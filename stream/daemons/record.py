"""stream-record: write the live frames to the dataset format, optionally guiding the signer.

Subscribes to ``[endpoints] frames`` and appends every frame to an HDF5 recording
(``stream.recording.RecordingWriter``: crash-safe, a ``.partial`` file until closed). Missed frames
are filled with NaN and recorded as gaps. A restarted stream-acquire (its sample indices start again)
or an outage longer than the writer fills closes the current file and starts the next part, so
samples are never placed at the wrong time.

Guided mode (``--signs hello,thank_you,...``) builds a data set of your own: it prompts "perform
sign X" and labels what follows, timed by the sensors' sample clock (not the wall clock), for
``--repetitions`` rounds: ``--rest-s`` of rest with "get ready", then ``--sign-s`` with "perform".
Ground truth published by a simulated or replayed source (``truth`` messages) is stored as
annotations too.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from stream.config.cli import build_parser, load_config_or_exit
from stream.daemons.skeleton import Daemon, DaemonError, run_daemon
from stream.recording.writer import DiskFullError
from stream.wire.protocol import TOPIC_FRAME, TOPIC_TRUTH, FrameSpec, SequenceTracker, decode_frame, decode_truth
from stream.wire.rates import sample_index_at


@dataclass(frozen=True)
class Prompt:
    label: str
    start_index: int  # sEMG samples since the first recorded frame
    end_index: int


def guided_plan(signs: list[str], repetitions: int, rest_s: float, sign_s: float, emg_rate_hz, seed: int) -> list[Prompt]:
    """The prompts of a guided session, in sEMG samples from the start: rest, sign, rest, sign, ..."""
    order = []
    generator = random.Random(seed)
    for _ in range(repetitions):
        round_signs = list(signs)
        generator.shuffle(round_signs)  # a fixed order would let the signer anticipate
        order += round_signs
    prompts, time_s = [], 0.0
    for label in order:
        time_s += rest_s
        start = sample_index_at(_fraction(time_s), emg_rate_hz)
        time_s += sign_s
        prompts.append(Prompt(label, start, sample_index_at(_fraction(time_s), emg_rate_hz)))
    return prompts


def _fraction(seconds: float):
    from fractions import Fraction

    return Fraction(repr(float(seconds)))


class Recorder:
    """Owns the current file; starts the next part when the stream cannot continue in it."""

    def __init__(self, config, path: Path, metadata: dict, announce):
        self.config = config
        self.base_path = path
        self.metadata = metadata
        self.announce = announce
        self.part = 0
        self.writer = None
        self.paths: list[Path] = []

    def _open(self):
        from stream.recording import PARTIAL_SUFFIX, RecordingWriter

        while True:
            self.part += 1
            path = self.base_path if self.part == 1 else self.base_path.with_name(
                f"{self.base_path.stem}-part{self.part}{self.base_path.suffix}")
            # A recorder restarted after a crash finds its predecessor's file (complete or .partial):
            # go on in the next part instead of failing on every frame.
            if not path.exists() and not path.with_name(path.name + PARTIAL_SUFFIX).exists():
                break
        sensors = self.config.sensors
        self.writer = RecordingWriter(path, sensors.names, sensors.emg_rate_hz, sensors.imu_rate_hz,
                                      metadata={**self.metadata, "part": self.part},
                                      flush_interval_frames=self.config.record.flush_interval_frames,
                                      max_fill_s=self.config.record.max_fill_s, layout=self.config.layout)
        self.announce(f"recording to {path}")

    def append(self, frame) -> None:
        from stream.recording import RecordingError

        if self.writer is None:
            self._open()
        try:
            self.writer.append_frame(frame)
        except DiskFullError:
            self.writer = None  # the writer abandoned its file as last flushed (readable); nothing to close
            raise
        except RecordingError as error:
            # Indices went back (acquire restarted) or the outage is too long to fill: new part.
            self.announce(f"starting a new part: {error}")
            self.close_current()
            self._open()
            self.writer.append_frame(frame)

    def annotate(self, label: str, start_index: int, end_index: int) -> bool:
        """False (nothing written) for a span that began before this part's first sample: after a
        restart the sign is only partly here, and such an annotation made the file unreadable."""
        writer = self.writer
        if writer is None or writer.emg_first_index is None or start_index < writer.emg_first_index:
            return False
        writer.add_annotation(label, start_index, end_index)
        return True

    def close_current(self) -> None:
        if self.writer is not None:
            self.paths.append(self.writer.close())
            self.announce(f"wrote {self.paths[-1]} ({self.writer.frames_written} frames)")
            self.writer = None


def main(argv=None) -> int:
    parser = build_parser("stream-record", "record live frames to the dataset format")
    parser.add_argument("--out", default=None, help="output .h5 file (default: [record] out_dir/recording-<time>.h5)")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds of samples (0: never)")
    parser.add_argument("--signs", default="", help="guided mode: comma-separated sign labels to prompt")
    parser.add_argument("--repetitions", type=int, default=1, help="guided mode: rounds through the signs")
    parser.add_argument("--rest-s", type=float, default=2.0, help="guided mode: rest before each sign")
    parser.add_argument("--sign-s", type=float, default=2.0, help="guided mode: time given for each sign")
    parser.add_argument("--signer", default="", help="stored in the recording's metadata")
    parser.add_argument("--seed", type=int, default=0, help="guided mode: seed of the prompt order")
    arguments = parser.parse_args(argv)
    config = load_config_or_exit(arguments)
    if arguments.out:
        path = Path(arguments.out)
    else:
        path = config.resolve_path(config.record.out_dir) / time.strftime("recording-%Y%m%d-%H%M%S.h5")
    signs = [label.strip() for label in arguments.signs.split(",") if label.strip()]
    if arguments.repetitions < 1 or arguments.rest_s <= 0 or arguments.sign_s <= 0:
        parser.error("--repetitions must be >= 1 and --rest-s, --sign-s > 0")
    emg_rate = config.sensors.emg_rate_hz
    prompts = guided_plan(signs, arguments.repetitions, arguments.rest_s, arguments.sign_s, emg_rate, arguments.seed)
    duration_samples = sample_index_at(_fraction(arguments.duration), emg_rate) if arguments.duration > 0 else 0

    def announce(text: str) -> None:
        print(text, flush=True)

    def setup(daemon: Daemon):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DaemonError(f"cannot create {path.parent}: {error}") from None
        metadata = {"kind": "guided" if signs else "live", "signer": arguments.signer, "source": "stream-record"}
        recorder = Recorder(config, path, metadata, announce)
        daemon.on_close(recorder.close_current)
        spec = FrameSpec.from_config(config)
        tracker = SequenceTracker()
        # origin: first sEMG index of the stream; shift: prompts moved later after a restarted stream.
        state = {"origin": None, "shift": 0, "prompt": 0, "phase": "pending"}
        rest_samples = sample_index_at(_fraction(arguments.rest_s), emg_rate)

        def on_message(parts: list[bytes]) -> None:
            if bytes(parts[0]) == TOPIC_TRUTH:
                truth = decode_truth(parts)
                if recorder.annotate(truth["label"], truth["start_index"], truth["end_index"]):
                    daemon.count("truth_annotations")
                else:
                    daemon.count("truth_annotations_outside_recording")
                return
            if failures:  # stopping after a full disk: frames already queued are not written anywhere else
                return
            header, frame = decode_frame(parts, spec)
            kind = tracker.observe(header.session, header.sequence)
            if kind in ("gap", "restart"):
                daemon.count(f"frame_{kind}s")
            try:
                recorder.append(frame)
            except DiskFullError as error:  # going on would only lose frames silently: stop, exit 1
                daemon.log.error("cannot go on recording: %s", error)
                failures.append(str(error))
                daemon.stop_requested = True
                return
            daemon.count("frames")
            if state["origin"] is None:
                state["origin"] = frame.emg_first_index
            if kind == "restart":
                # The sample clock started again: prompt the current sign again, from a fresh rest.
                state["origin"] = frame.emg_first_index
                if state["prompt"] < len(prompts):
                    state["shift"] = -prompts[state["prompt"]].start_index + rest_samples
                    state["phase"] = "pending"
            elapsed = frame.emg_first_index + frame.emg.shape[0] - state["origin"]
            guide(elapsed)
            if duration_samples and elapsed >= duration_samples:
                daemon.stop_requested = True

        def guide(elapsed: int) -> None:
            while state["prompt"] < len(prompts):
                prompt = prompts[state["prompt"]]
                if state["phase"] == "pending":
                    announce(f"get ready: {prompt.label} ({state['prompt'] + 1}/{len(prompts)})")
                    state["phase"] = "ready"
                if state["phase"] == "ready":
                    if elapsed < state["shift"] + prompt.start_index:
                        return
                    announce(f"perform sign {prompt.label} now")
                    state["phase"] = "performing"
                if elapsed < state["shift"] + prompt.end_index:
                    return
                origin = state["origin"] + state["shift"]
                recorder.annotate(prompt.label, origin + prompt.start_index, origin + prompt.end_index)
                announce(f"done: {prompt.label}")
                state["prompt"] += 1
                state["phase"] = "pending"
            # A last rest after the last sign, then stop.
            if prompts and elapsed >= state["shift"] + prompts[-1].end_index + rest_samples:
                announce("guided session complete")
                daemon.stop_requested = True

        daemon.connect_subscriber(config.endpoints.frames, (TOPIC_FRAME, TOPIC_TRUTH), on_message)
        announce(f"listening on {config.endpoints.frames}")
        return None

    failures: list[str] = []
    status = run_daemon("stream-record", config, setup)
    return 1 if failures else status


if __name__ == "__main__":
    sys.exit(main())

"""stream-speak: say each recognised sign aloud, offline (espeak-ng), or write it as a WAV file.

Subscribes to ``[endpoints] events``; ``stream.stages.speech.SpeechQueue`` decides what each event
says (lexicon, ``min_confidence``, labels made safe) and queues it; ``stream.speak.worker`` says the
queued signs as one phrase on its own thread, so this loop never waits for audio and the pipeline
is never slowed (stream-sink's PUB socket never waits for a subscriber either). ``--wav-dir DIR``
(or ``[speak] wav_dir``) writes WAV files and ``utterances.jsonl`` instead of playing them.

A missing espeak-ng, an unknown voice or a missing player is a one-line error at start (exit 1).
Status heartbeats with the counters (docs/protocol.md) go out on ``[speak] status_endpoint``.
"""

from __future__ import annotations

import time
from pathlib import Path

from stream.config.cli import build_parser, load_config_or_exit
from stream.daemons.skeleton import Daemon, DaemonError, run_daemon
from stream.speak.espeak import Espeak, SynthesizerMissing, VoiceError
from stream.speak.output import AudioDevice, PlayerMissing, WavDirectory
from stream.speak.worker import WORKER_COUNTERS, SpeechWorker
from stream.stages.speech import SPEECH_QUEUE_COUNTERS, SpeechQueue
from stream.wire.protocol import TOPIC_EVENT, SequenceTracker, decode_event

# Every counter stream-speak sends, from its first status message on (docs/protocol.md lists them).
SPEAK_COUNTERS = ("events", "event_gaps", "events_missed", "sink_restarts", *SPEECH_QUEUE_COUNTERS, *WORKER_COUNTERS)


def setup_speak(daemon: Daemon, wav_dir: str | None = None):
    config = daemon.config
    speak = config.speak
    try:
        synthesizer = Espeak(speak)
    except (SynthesizerMissing, VoiceError) as error:
        raise DaemonError(str(error)) from None
    # --wav-dir is relative to the working directory, [speak] wav_dir to the config file.
    directory = Path(wav_dir).resolve() if wav_dir else (config.resolve_path(speak.wav_dir) if speak.wav_dir else None)
    wav_dir = wav_dir or speak.wav_dir
    try:
        output = WavDirectory(directory) if directory else AudioDevice(speak.player, speak.device_timeout_s)
    except PlayerMissing as error:
        raise DaemonError(str(error)) from None
    except OSError as error:
        raise DaemonError(f"--wav-dir / [speak] wav_dir = {wav_dir!r}: cannot create the directory ({error})") from None
    worker = SpeechWorker(SpeechQueue(speak), synthesizer, output, daemon.log)
    tracker = SequenceTracker()
    daemon.declare_counters(*SPEAK_COUNTERS)
    daemon.info.update(synthesizer=synthesizer.version, voice=synthesizer.voice, output=output.description)
    daemon.bind_publisher(speak.status_endpoint)
    worker.start()
    daemon.on_close(worker.stop)

    def on_event(parts: list[bytes]) -> None:
        received_wall = time.time()
        event = decode_event(parts)
        daemon.count("events")
        kind = tracker.observe(event["session"], event["seq"])
        if kind == "gap":
            daemon.count("event_gaps")
        elif kind == "restart":
            daemon.count("sink_restarts")
        daemon.counters["events_missed"] = tracker.missed
        worker.push(event, received_wall)

    def tick() -> None:
        daemon.counters.update(worker.snapshot())

    daemon.connect_subscriber(config.endpoints.events, (TOPIC_EVENT,), on_event)
    daemon.log.info("speaking with %s, voice %s, to %s", synthesizer.version, synthesizer.voice, output.description)
    return tick


def main(argv=None) -> int:
    parser = build_parser("stream-speak", "say each recognised sign aloud (espeak-ng, offline)")
    parser.add_argument("--wav-dir", metavar="DIR", default=None,
                        help="write each phrase as a WAV file here instead of playing it (default: [speak] wav_dir)")
    arguments = parser.parse_args(argv)
    config = load_config_or_exit(arguments)
    return run_daemon("stream-speak", config, lambda daemon: setup_speak(daemon, arguments.wav_dir),
                      exit_process=argv is None)


if __name__ == "__main__":
    raise SystemExit(main())

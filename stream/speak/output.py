"""Where stream-speak's audio goes: the default audio device through a player program, or WAV files.

``play(number, phrase, audio)`` returns the wall time the audio started (what stream-speak's
``audio_start_ms_*`` counters and the bench measure from each event's publication):

- ``WavDirectory``: the moment the synthesiser's first samples came out (``Audio.first_audio_wall``);
  the file ``NNNNNN-label+label.wav`` is then written atomically, and one JSON line per phrase is
  appended to ``utterances.jsonl`` beside it (text, labels, event seqs, times): headless tests and logs.
- ``AudioDevice``: the moment the whole phrase was handed to the player (``[speak] player``, default
  ``aplay -q``: the WAV on its standard input). A player that fails (no sound card, device busy) is
  an ``AudioError``; one still running ``[speak] device_timeout_s`` after the audio's own length (a
  stalled device) is killed: ``AudioTimeout``. Either way the next phrase goes on.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from pathlib import Path

from stream.common.atomic import atomic_write_bytes
from stream.speak.espeak import Audio, find_program
from stream.stages.speech import Phrase

PLAYER_HINT = "install it with: sudo apt-get install alsa-utils (aplay), or set [speak] player, or use --wav-dir"


class AudioError(RuntimeError):
    """The audio could not be played or written (the message says why)."""


class AudioTimeout(AudioError):
    """The player was still busy long after its audio should have ended: a slow or stalled device."""


class PlayerMissing(RuntimeError):
    """``[speak] player`` names no program."""


def _slug(labels: tuple[str, ...]) -> str:
    words = [re.sub(r"[^a-z0-9_]+", "", label.lower())[:24] or "x" for label in labels[:4]]
    return "+".join(words) + ("+more" if len(labels) > 4 else "")


class WavDirectory:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)  # OSError: the daemon says which directory
        self.index = self.directory / "utterances.jsonl"
        self.description = f"wav: {self.directory}"

    def play(self, number: int, phrase: Phrase, audio: Audio) -> float:
        path = self.directory / f"{number:06d}-{_slug(phrase.labels)}.wav"
        try:
            atomic_write_bytes(path, audio.wav_bytes())
            with open(self.index, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({
                    "file": path.name, "text": phrase.text, "labels": list(phrase.labels),
                    "event_seqs": [sign.event_seq for sign in phrase.signs],
                    "published_wall": [sign.published_wall for sign in phrase.signs],
                    "synthesis_started_wall": audio.started_wall, "audio_start_wall": audio.first_audio_wall,
                    "duration_s": round(audio.duration_s, 4)}, ensure_ascii=False) + "\n")
        except OSError as error:
            raise AudioError(f"cannot write {path}: {error}") from None
        return audio.first_audio_wall

    def stop(self) -> None:
        pass


class AudioDevice:
    def __init__(self, player: tuple[str, ...], timeout_margin_s: float):
        program = find_program(player[0])
        if program is None:
            raise PlayerMissing(f"[speak] player = {list(player)!r}: no program {player[0]!r}; {PLAYER_HINT}")
        self.command = [program, *player[1:]]
        self.timeout_margin_s = timeout_margin_s
        self.description = "device: " + " ".join(player)
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None

    def play(self, number: int, phrase: Phrase, audio: Audio) -> float:
        limit_s = audio.duration_s + self.timeout_margin_s
        started = time.time()
        try:
            process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE)
        except OSError as error:
            raise AudioError(f"cannot start {self.command[0]}: {error}") from None
        with self._lock:
            self._process = process
        try:
            _, errors = process.communicate(audio.wav_bytes(), timeout=limit_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise AudioTimeout(f"{self.command[0]} was still playing {limit_s:.1f} s after it started "
                               f"({audio.duration_s:.1f} s of audio + [speak] device_timeout_s = "
                               f"{self.timeout_margin_s:g} s): a slow or stalled audio device; stopped it") from None
        except BrokenPipeError:
            errors = process.stderr.read() if process.stderr else b""
            process.wait()
        finally:
            with self._lock:
                self._process = None
        if process.returncode != 0:
            lines = errors.decode("utf-8", "replace").strip().splitlines()
            raise AudioError(f"{self.command[0]} exited with status {process.returncode}: "
                             f"{lines[-1] if lines else 'no message'} (is there an audio device?)")
        return started

    def stop(self) -> None:
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                self._process.kill()

"""espeak-ng as a subprocess: text in, 16-bit PCM out, offline (Debian and Raspberry Pi OS package
``espeak-ng``).

Why espeak-ng: it is a Debian package on every Raspberry Pi OS, needs no network and no model
download, starts and speaks a short phrase in about 10 ms here, and has both English and Hindi
(``hi``) voices. It sounds robotic; docs/SPEECH.md says what a better voice would cost on a Pi.

Text can never be read as options, commands or markup: it goes to the program's standard input
(``--stdin``, never the argument list, so a label "-w /etc/x" is only words), the program is started
from an argument list (no shell), SSML (``-m``) is never turned on, and ``synthesize`` refuses any
character outside ``stream.config.sections.unspeakable_characters``'s rule: "[[...]]" (phoneme
input) and control characters (espeak-ng's embedded commands such as "\\x015S") are both
interpreted by espeak-ng even without ``-m`` (checked with espeak-ng 1.51's ``-x``).
"""

from __future__ import annotations

import io
import os
import selectors
import shutil
import struct
import subprocess
import threading
import time
import wave
from dataclasses import dataclass

from stream.config.sections import unspeakable_characters

INSTALL_HINT = "install it with: sudo apt-get install espeak-ng"
WAV_HEADER_BYTES = 44  # espeak-ng --stdout writes a plain 44-byte RIFF header, sizes unknown (0x7fff....)
READ_BYTES = 65536


class SynthesizerMissing(RuntimeError):
    """The synthesiser program is not installed (the message names the package)."""


class VoiceError(ValueError):
    """``[speak] language`` or ``voice`` names something the installed espeak-ng does not have."""


class SynthesisError(RuntimeError):
    """espeak-ng failed, produced no audio or ran past its timeout."""


def find_program(name: str) -> str | None:
    """The executable ``name`` (a name on PATH or a path), or None."""
    if os.sep in name:
        return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    return shutil.which(name)


@dataclass(frozen=True)
class Audio:
    """Synthesised speech: 16-bit little-endian PCM and when its first samples came out."""

    sample_rate: int
    channels: int
    pcm: bytes
    started_wall: float  # the synthesiser was started
    first_audio_wall: float  # its first samples arrived

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / (2 * self.channels * self.sample_rate)

    def wav_bytes(self) -> bytes:
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as writer:
            writer.setnchannels(self.channels)
            writer.setsampwidth(2)
            writer.setframerate(self.sample_rate)
            writer.writeframes(self.pcm)
        return buffer.getvalue()


def parse_wav_header(header: bytes) -> tuple[int, int]:
    """(sample_rate, channels) of espeak-ng's streamed WAV header; SynthesisError if it is not 16-bit PCM."""
    if len(header) < WAV_HEADER_BYTES or header[:4] != b"RIFF" or header[8:12] != b"WAVE" or header[12:16] != b"fmt ":
        raise SynthesisError(f"espeak-ng wrote no WAV header (got {header[:16]!r})")
    audio_format, channels, sample_rate, _, _, bits = struct.unpack_from("<HHIIHH", header, 20)
    if audio_format != 1 or bits != 16 or header[36:40] != b"data" or channels < 1:
        raise SynthesisError(f"espeak-ng wrote format {audio_format}, {bits} bits, {channels} channels; expected 16-bit PCM")
    return sample_rate, channels


class Espeak:
    """One configured espeak-ng voice. Raises SynthesizerMissing or VoiceError at construction, so a
    daemon fails at start, never on its first sign."""

    def __init__(self, speak_config):
        program = find_program(speak_config.synthesizer)
        if program is None:
            raise SynthesizerMissing(f"[speak] synthesizer = {speak_config.synthesizer!r}: no such program; "
                                     f"stream-speak needs espeak-ng ({INSTALL_HINT})")
        self.program = program
        self.version = self._version()
        self.voice = speak_config.language + (f"+{speak_config.voice}" if speak_config.voice else "")
        self._check_voice(speak_config.language, speak_config.voice)
        self.command = [program, "--stdout", "--stdin", "-b", "1", "-v", self.voice,
                        "-s", str(speak_config.rate_wpm), "-p", str(speak_config.pitch)]
        self.timeout_s = speak_config.synthesis_timeout_s
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None

    def _run(self, *arguments: str) -> str:
        try:
            result = subprocess.run([self.program, *arguments], capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise SynthesizerMissing(f"{self.program} {' '.join(arguments)} failed ({error}); {INSTALL_HINT}") from None
        return result.stdout.decode("utf-8", "replace")

    def _version(self) -> str:
        text = self._run("--version")
        if "speak" not in text.lower():
            raise SynthesizerMissing(f"{self.program} --version did not answer as espeak-ng ({text.strip()[:80]!r}); "
                                     f"{INSTALL_HINT}")
        words = text.split()
        number = next((word for word in words if word[:1].isdigit()), "")
        return f"espeak-ng {number}".strip()

    def voices(self, which: str = "") -> list[tuple[str, str]]:
        """(language, voice file) of every voice espeak-ng lists (``which``: ``--voices=which``)."""
        found = []
        for line in self._run(f"--voices={which}" if which else "--voices").splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 5:
                found.append((fields[1], fields[4]))
                # "Other Languages": (en 2)(en-gb 3): the language names the voice also answers to.
                found.extend((other.strip("()").split()[0], fields[4]) for other in " ".join(fields[5:]).split(")(") if other.strip("() "))
        return found

    def _check_voice(self, language: str, variant: str) -> None:
        # MBROLA voices (mb/...) need the separate mbrola program and its voice data: not counted.
        languages = sorted({name for name, file in self.voices() if not file.startswith("mb/")})
        if language not in languages:
            english = [name for name in languages if name.startswith("en")]
            hindi = [name for name in languages if name.startswith("hi")]
            raise VoiceError(f"[speak] language = {language!r}: {self.version} has no such language; English: "
                             f"{', '.join(english) or 'none'}; Hindi: {', '.join(hindi) or 'none'} "
                             f"({len(languages)} in all: espeak-ng --voices)")
        if variant:
            variants = sorted({file.rsplit("/", 1)[-1] for _, file in self.voices("variant")})
            if variant not in variants:
                raise VoiceError(f"[speak] voice = {variant!r}: {self.version} has no such variant; some are "
                                 f"{', '.join(name for name in variants if len(name) <= 2)} "
                                 "(espeak-ng --voices=variant), or leave it empty")

    def synthesize(self, text: str) -> Audio:
        """Speech for ``text`` (speakable characters only: ValueError otherwise)."""
        bad = unspeakable_characters(text)
        if bad or not text.strip():
            raise ValueError(f"refusing to synthesise {text!r}: {'characters ' + repr(bad) if bad else 'no words'} "
                             "(stream.stages.speech.speakable_text makes text safe)")
        started = time.time()
        deadline = time.monotonic() + self.timeout_s
        try:
            process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE)
        except OSError as error:
            raise SynthesisError(f"cannot start {self.program}: {error}") from None
        with self._lock:
            self._process = process
        output, errors, first_audio = bytearray(), bytearray(), None
        try:
            try:
                process.stdin.write(text.encode("utf-8"))
                process.stdin.close()
            except BrokenPipeError:
                pass
            with selectors.DefaultSelector() as selector:
                selector.register(process.stdout, selectors.EVENT_READ, output)
                selector.register(process.stderr, selectors.EVENT_READ, errors)
                while selector.get_map():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise SynthesisError(f"espeak-ng took more than [speak] synthesis_timeout_s = {self.timeout_s} s")
                    for key, _ in selector.select(remaining):
                        chunk = os.read(key.fd, READ_BYTES)
                        if not chunk:
                            selector.unregister(key.fileobj)
                            continue
                        key.data.extend(chunk)
                        if first_audio is None and key.data is output and len(output) > WAV_HEADER_BYTES:
                            first_audio = time.time()
            status = process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise SynthesisError(f"espeak-ng did not exit within [speak] synthesis_timeout_s = {self.timeout_s} s") from None
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            for stream in (process.stdout, process.stderr):
                stream.close()
            with self._lock:
                self._process = None
        message = errors.decode("utf-8", "replace").strip().splitlines()
        if status != 0 or first_audio is None:
            raise SynthesisError(f"espeak-ng -v {self.voice} exited with status {status} and "
                                 f"{len(output)} bytes of output: {message[-1] if message else 'no message'}")
        sample_rate, channels = parse_wav_header(bytes(output[:WAV_HEADER_BYTES]))
        pcm = bytes(output[WAV_HEADER_BYTES:])
        pcm = pcm[: len(pcm) - len(pcm) % (2 * channels)]
        return Audio(sample_rate, channels, pcm, started, first_audio)

    def stop(self) -> None:
        """Kill a synthesis in progress (from another thread: the daemon is stopping)."""
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                self._process.kill()

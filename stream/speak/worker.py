"""The one thread that synthesises and plays, so stream-speak's ZeroMQ loop never waits for audio.

The loop thread only calls ``push`` (a lock, a deque append: microseconds); this thread waits for
queued signs, takes everything queued as one phrase (``SpeechQueue.pop_phrase``), synthesises it and
plays or writes it. While it is busy, new signs queue (bounded, oldest dropped) and become the next
phrase. Failures are counted and logged at most every ``ERROR_LOG_INTERVAL_S`` with the running
count; they never stop the thread. ``snapshot()`` gives every counter for the status message.

``audio_start_ms_p50`` / ``_p95``: over the last ``LATENCY_WINDOW`` signs said, milliseconds from the
event's publication (its ``t_wall``, stream-sink's clock: the same host on loopback) to the start of
its phrase's audio as the output defines it (``stream.speak.output``); a sign joined to earlier ones
starts with them. 0 until measured.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

import numpy as np

from stream.speak.espeak import SynthesisError
from stream.speak.output import AudioError, AudioTimeout
from stream.stages.speech import SpeechQueue

LATENCY_WINDOW = 256
ERROR_LOG_INTERVAL_S = 5.0
WORKER_COUNTERS = ("utterances", "signs_spoken", "synthesis_errors", "audio_errors", "audio_timeouts",
                   "queue_length", "audio_start_ms_p50", "audio_start_ms_p95")


class SpeechWorker:
    def __init__(self, queue: SpeechQueue, synthesizer, output, log: logging.Logger | None = None):
        self.queue = queue
        self.synthesizer = synthesizer
        self.output = output
        self.log = log or logging.getLogger("stream-speak")
        self.counters = {name: 0 for name in WORKER_COUNTERS}
        self._latencies_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._condition = threading.Condition()
        self._stopping = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name="speech", daemon=True)
        self._last_error_log = -ERROR_LOG_INTERVAL_S
        self._number = 0

    def start(self) -> None:
        self._thread.start()

    def push(self, event: dict, received_wall: float) -> None:
        with self._condition:
            if self.queue.push(event, received_wall) is not None:
                self._condition.notify()

    def snapshot(self) -> dict:
        with self._condition:
            counters = {**self.queue.counters, **self.counters, "queue_length": len(self.queue)}
            if self._latencies_ms:
                p50, p95 = np.percentile(np.asarray(self._latencies_ms), [50, 95])
                counters.update(audio_start_ms_p50=round(float(p50), 2), audio_start_ms_p95=round(float(p95), 2))
            return counters

    def idle(self) -> bool:
        """Nothing queued and nothing being said (tests and the bench wait for this)."""
        with self._condition:
            return not self._busy and len(self.queue) == 0

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop at once: what is queued is not said, a synthesis or playback in progress is killed."""
        with self._condition:
            self._stopping = True
            self.queue.clear()
            self._condition.notify()
        self.synthesizer.stop()
        self.output.stop()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._stopping and len(self.queue) == 0:
                    self._condition.wait()
                if self._stopping:
                    return
                phrase = self.queue.pop_phrase()
                self._busy = True
            try:
                self._say(phrase)
            except Exception:  # a bug: counted with the audio errors, logged with its traceback, thread goes on
                with self._condition:
                    self.counters["audio_errors"] += 1
                self.log.exception("error while saying %r", phrase.text)
            finally:
                with self._condition:
                    self._busy = False

    def _say(self, phrase) -> None:
        try:
            audio = self.synthesizer.synthesize(phrase.text)
        except (SynthesisError, ValueError) as error:
            self._failed("synthesis_errors", error)
            return
        if self._stopping:
            return
        self._number += 1
        try:
            started_wall = self.output.play(self._number, phrase, audio)
        except AudioTimeout as error:
            self._failed("audio_timeouts", error)
            return
        except AudioError as error:
            if not self._stopping:
                self._failed("audio_errors", error)
            return
        with self._condition:
            self.counters["utterances"] += 1
            self.counters["signs_spoken"] += len(phrase.signs)
            self._latencies_ms.extend((started_wall - sign.published_wall) * 1000 for sign in phrase.signs)
        self.log.info("said %r (%d sign%s, %.2f s of audio)", phrase.text, len(phrase.signs),
                      "" if len(phrase.signs) == 1 else "s", audio.duration_s)

    def _failed(self, counter: str, error: Exception) -> None:
        with self._condition:
            self.counters[counter] += 1
            count = self.counters[counter]
        now = time.monotonic()
        if now - self._last_error_log >= ERROR_LOG_INTERVAL_S:
            self._last_error_log = now
            self.log.warning("%s (%s: %d so far)", error, counter, count)

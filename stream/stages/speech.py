"""Sign events -> phrases to say: the stage stream-speak wraps (no sockets, no threads, no audio).

``SpeechQueue.push(event)`` decides what one sign event says and queues it; ``pop_phrase()`` takes
everything queued as ONE phrase. stream-speak's worker pops a phrase whenever it is free, so a sign
that arrives while another is being said waits and is joined with the signs after it ("hello,
water") instead of cutting the speech off. For each event:

- ``[speak] min_confidence``: below it, ``low_confidence = "skip"`` says nothing and ``"cue"`` says
  ``low_confidence_cue`` first ("maybe water");
- the words: the ``[speak] lexicon`` entry of the label, else (``unknown_labels = "speak"``) the label
  itself made speakable (``speakable_text``: underscores become spaces, anything the synthesiser could
  read as a command or markup is removed), or nothing (``unknown_labels = "skip"``). A label with
  nothing speakable left ("[[]]") is never said;
- the queue holds at most ``[speak] max_queue`` signs: a new sign beyond that drops the oldest
  (the conversation has moved on), counted in ``queue_dropped``.

Counters (``counters``) say why a sign was not said. Times are the caller's: ``push`` records the
event's publication wall time (``t_wall``) and the caller's receipt time so latency can be measured.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

from stream.config.sections import unspeakable_characters

MAX_LABEL_TEXT = 80  # characters of a label spoken from its text: a 4 kB label is not read out
PHRASE_SEPARATOR = ", "  # a comma: the synthesiser makes a short pause between joined signs

SPEECH_QUEUE_COUNTERS = (
    "signs_queued", "low_confidence_skipped", "low_confidence_cued", "labels_not_in_lexicon", "labels_skipped",
    "queue_dropped", "phrases", "signs_joined",
)


def speakable_text(text: str) -> str:
    """``text`` with underscores as spaces and every character the synthesiser must not interpret
    (``stream.config.sections.unspeakable_characters``) removed; whitespace collapsed."""
    text = text.replace("_", " ")
    bad = set(unspeakable_characters(text))
    cleaned = "".join(" " if character in bad else character for character in text)
    return re.sub(r"\s+", " ", cleaned).strip()


@dataclass(frozen=True)
class QueuedSign:
    label: str
    words: str  # what is said for it, cue included
    confidence: float
    event_seq: int
    published_wall: float  # the event's t_wall: when stream-sink published it
    received_wall: float


@dataclass(frozen=True)
class Phrase:
    text: str
    signs: tuple[QueuedSign, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(sign.label for sign in self.signs)


class SpeechQueue:
    def __init__(self, speak_config):
        self.min_confidence = speak_config.min_confidence
        self.cue = speak_config.low_confidence_cue if speak_config.low_confidence == "cue" else None
        self.speak_unknown = speak_config.unknown_labels == "speak"
        self.lexicon = dict(speak_config.lexicon)
        self.max_queue = speak_config.max_queue
        self.counters = {name: 0 for name in SPEECH_QUEUE_COUNTERS}
        self._queue: deque[QueuedSign] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def words_for(self, label: str) -> str | None:
        """What is said for ``label``, or None (not in the lexicon and skipped, or nothing speakable)."""
        if label in self.lexicon:
            return self.lexicon[label]
        self.counters["labels_not_in_lexicon"] += 1
        if not self.speak_unknown:
            return None
        return speakable_text(label[:MAX_LABEL_TEXT]) or None

    def push(self, event: dict, received_wall: float) -> QueuedSign | None:
        """Queue what ``event`` (a decoded sign event) says; None when it says nothing (counted)."""
        confidence = float(event["confidence"])
        low = confidence < self.min_confidence
        if low and self.cue is None:
            self.counters["low_confidence_skipped"] += 1
            return None
        words = self.words_for(event["label"])
        if words is None:
            self.counters["labels_skipped"] += 1
            return None
        if low:
            self.counters["low_confidence_cued"] += 1
            words = f"{self.cue} {words}"
        sign = QueuedSign(event["label"], words, confidence, int(event["seq"]), float(event["t_wall"]), received_wall)
        if len(self._queue) >= self.max_queue:
            self._queue.popleft()
            self.counters["queue_dropped"] += 1
        self._queue.append(sign)
        self.counters["signs_queued"] += 1
        return sign

    def pop_phrase(self) -> Phrase | None:
        """Everything queued, in arrival order, as one phrase (None when nothing waits)."""
        if not self._queue:
            return None
        signs = tuple(self._queue)
        self._queue.clear()
        self.counters["phrases"] += 1
        self.counters["signs_joined"] += len(signs) - 1
        return Phrase(PHRASE_SEPARATOR.join(sign.words for sign in signs), signs)

    def clear(self) -> int:
        """Forget what waits (the daemon is stopping); returns how many signs."""
        dropped = len(self._queue)
        self._queue.clear()
        return dropped

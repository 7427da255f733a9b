"""Sign events -> phrases (stream.stages.speech) and the [speak] config: lexicon, confidence, labels
made safe, joining and the bounded queue. No synthesiser needed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.config import ConfigError, config_from_dict
from stream.config.sections import unspeakable_characters
from stream.stages.speech import MAX_LABEL_TEXT, SpeechQueue, speakable_text


def event(label="hello", confidence=0.9, seq=0, t_wall=100.0):
    return {"seq": seq, "session": "sink-a", "t_wall": t_wall, "label": label, "confidence": confidence}


def queue(**speak) -> SpeechQueue:
    return SpeechQueue(config_from_dict({"speak": speak}).speak)


def test_one_sign_is_one_phrase_with_the_lexicon_words_and_its_times():
    speech = queue(lexicon=[["thank_you", "thank you very much"]])
    sign = speech.push(event("thank_you", seq=7, t_wall=123.5), received_wall=123.6)
    assert sign.words == "thank you very much" and sign.event_seq == 7 and sign.published_wall == 123.5
    phrase = speech.pop_phrase()
    assert phrase.text == "thank you very much" and phrase.labels == ("thank_you",)
    assert speech.pop_phrase() is None
    assert speech.counters["labels_not_in_lexicon"] == 0 and speech.counters["phrases"] == 1


def test_signs_queued_while_speaking_are_joined_into_one_phrase_in_order():
    speech = queue()
    for seq, label in enumerate(["hello", "water", "thank_you"]):
        speech.push(event(label, seq=seq), received_wall=0.0)
    phrase = speech.pop_phrase()
    assert phrase.text == "hello, water, thank you"
    assert [sign.event_seq for sign in phrase.signs] == [0, 1, 2]
    assert speech.counters["signs_joined"] == 2 and speech.counters["phrases"] == 1 and len(speech) == 0


def test_a_full_queue_drops_the_oldest_sign_and_counts_it():
    speech = queue(max_queue=3)
    for seq in range(5):
        speech.push(event(f"sign{seq}", seq=seq), received_wall=0.0)
    assert len(speech) == 3 and speech.counters["queue_dropped"] == 2
    assert speech.pop_phrase().labels == ("sign2", "sign3", "sign4")


def test_low_confidence_is_skipped_or_said_after_the_cue():
    skipping = queue(min_confidence=0.7, low_confidence="skip")
    assert skipping.push(event(confidence=0.69), 0.0) is None
    assert skipping.push(event(confidence=0.7), 0.0).words == "hello"
    assert skipping.counters["low_confidence_skipped"] == 1
    cueing = queue(min_confidence=0.7, low_confidence="cue", low_confidence_cue="perhaps")
    assert cueing.push(event(confidence=0.5), 0.0).words == "perhaps hello"
    assert cueing.counters["low_confidence_cued"] == 1 and cueing.counters["low_confidence_skipped"] == 0


def test_labels_not_in_the_lexicon_are_said_from_their_text_made_safe_or_skipped():
    speech = queue()
    assert speech.push(event("good_morning"), 0.0).words == "good morning"
    assert speech.push(event("[[h@loU]]"), 0.0).words == "h loU"      # phoneme input is not passed on
    assert speech.push(event("\x015S stop"), 0.0).words == "5S stop"  # nor espeak-ng's embedded commands
    assert speech.push(event("[[]]<>&\x01"), 0.0) is None               # nothing speakable left
    assert len(speech.push(event("a" * 4000), 0.0).words) == MAX_LABEL_TEXT
    assert speech.counters["labels_not_in_lexicon"] == 5 and speech.counters["labels_skipped"] == 1
    strict = queue(unknown_labels="skip")
    assert strict.push(event("good_morning"), 0.0) is None and strict.push(event("thank_you"), 0.0).words == "thank you"
    assert strict.counters["labels_skipped"] == 1


def test_hindi_words_keep_their_marks_and_joiners():
    text = "धन्यवाद, क्\u200dष"
    assert unspeakable_characters(text) == "" and speakable_text(text) == text
    assert queue(lexicon=[["thank_you", "धन्यवाद"]]).push(event("thank_you"), 0.0).words == "धन्यवाद"


@given(st.text(max_size=60))
def test_speakable_text_never_leaves_a_character_the_synthesiser_could_interpret(text):
    cleaned = speakable_text(text)
    assert unspeakable_characters(cleaned) == ""
    assert "[[" not in cleaned and "<" not in cleaned and not any(ord(character) < 32 for character in cleaned)
    assert speakable_text(cleaned) == cleaned


@pytest.mark.parametrize(
    "speak, fragment",
    [
        ({"lexicon": [["hello", "hi <break/>"]]}, "not '/<>': the synthesiser would read them as commands or markup"),
        ({"lexicon": [["hello", "[[h@loU]]"]]}, "[speak.lexicon[0]]"),
        ({"lexicon": [["hello", "hi"], ["hello", "hey"]]}, "unique labels"),
        ({"lexicon": [["hello"]]}, "expected a list of 2 items (a string, a string)"),
        ({"lexicon": {"hello": "hi"}}, "expected a list of a list of 2 items"),
        ({"lexicon": [["", "hi"]]}, "non-empty labels"),
        ({"low_confidence_cue": "maybe\x01"}, "speak.low_confidence_cue"),
        ({"language": "-w/tmp/x"}, "espeak-ng language such as 'en', 'en-gb', 'en-us' or 'hi'"),
        ({"voice": "f3 -m"}, "espeak-ng variant such as 'f3'"),
        ({"rate_wpm": 20}, "80 to 450 words per minute"),
        ({"min_confidence": 1.5}, "0 to 1"),
        ({"low_confidence": "whisper"}, "one of 'skip', 'cue'"),
        ({"max_queue": 0}, "1 to 256 signs"),
        ({"player": []}, "a command as a list"),
        ({"status_endpoint": "localhost:5558"}, "ZeroMQ endpoint"),
    ],
)
def test_bad_speak_config_names_the_key_the_value_and_what_is_allowed(speak, fragment):
    with pytest.raises(ConfigError) as raised:
        config_from_dict({"speak": speak}, source="site.toml")
    message = str(raised.value)
    assert fragment in message and message.startswith("config error: site.toml:") and "\n" not in message


@pytest.mark.parametrize("words", ["thank you", "धन्यवाद", "what's up?", "hi <x>", "a\tb", "[[x]]", "x_y", "ok!", "a&b"])
def test_the_config_accepts_exactly_the_words_that_pass_unchanged(words):
    accepted = True
    try:
        config_from_dict({"speak": {"lexicon": [["sign", words]]}})
    except ConfigError:
        accepted = False
    assert accepted == (speakable_text(words) == words)

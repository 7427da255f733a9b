"""Each calibration sign seen through several windows: ending where stream-infer's window ends and a
little before and after it.

The student was trained on windows whose end was jittered around the sign's end (-0.15 .. +0.30 s,
train.distill.data), because the segmenter's decision moves from one repetition to the next. Two
repetitions of a sign give the head two windows; the same two signs cut at four ends give it the
variation it will meet, for the price of running the model on four times as many windows, and no
extra effort of the user. Shifted copies of one repetition stay in that repetition's round, so
cross-validation never tests on a copy of what it fitted. Measured: docs/RESULTS.md "A new user".
"""

from __future__ import annotations

CALIBRATION_SHIFTS_S = (-0.1, 0.0, 0.1, 0.2)


def shift_samples(model_rate_hz, shifts_s=CALIBRATION_SHIFTS_S) -> list[int]:
    """The shifts in model samples, 0 (the window stream-infer classifies) first, each once."""
    rate = float(model_rate_hz)
    samples = [0] + [round(seconds * rate) for seconds in shifts_s]
    return list(dict.fromkeys(samples))

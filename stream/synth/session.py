"""The simulated signer's continuous sessions, and what every synthetic recording shares.

The live source (``stream.sources.synthetic``), the soak and the data set generator
(``train.synth``) all perform signs through these functions, so a session streamed live and one
written to a data set are the same person doing the same things. Every recording is a pure function
of (seed, kind, signer, item, repetition): its random stream is ``recording_rng(...)``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from stream.recording import Annotation, Recording
from stream.synth.performance import PostureEvent, SignEvent, plan_fidget, plan_sign
from stream.synth.render import StreamState, render, sample_index
from stream.synth.signer import GENERATOR_VERSION, REPETITIONS_PER_DONNING, SignerProfile, donning_gain
from stream.synth.vocabulary import LABELS, MUSCLES, VOCABULARY
from stream.wire.rates import EMG_RATE_HZ, FRAME_PERIOD_S, IMU_RATE_HZ

__all__ = ["GENERATOR_VERSION"]  # re-exported: where data sets read the version from
SENSOR_NAMES = MUSCLES  # the sensor over each muscle is named after it (as [sensors] names)
FRAME_S = float(FRAME_PERIOD_S)
SESSION_REST_S = (1.0, 2.5)
# In a session the hand stays up between two signs this often (a held transition). Signs made after
# one were recognised far worse (72 % vs 96 % after rest, synth-v5) while every training recording
# started from rest, so the same share of isolated recordings is made in flow: another sign first,
# then this one without lowering the arm (version 4).
HELD_TRANSITION_PROBABILITY = 0.25
KIND_ISOLATED, KIND_SESSION, KIND_ISOLATED_CONTEXT = 1, 2, 3


def session_donning(session: int) -> int:
    """The sitting of continuous session ``session``: after those of the isolated recordings (20
    repetitions in sittings of REPETITIONS_PER_DONNING), one sitting per session."""
    return 100 + session


def isolated_donning(repetition: int) -> int:
    return repetition // REPETITIONS_PER_DONNING


def signer_name(index: int) -> str:
    return f"signer-{index + 1:02d}"


def recording_rng(seed: int, kind: int, signer_index: int, item: int, repetition: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, kind, signer_index, item, repetition]))


def synthetic_recording(emg, acc, gyro, gaps, annotations, metadata) -> Recording:
    return Recording(emg=emg, acc=acc, gyro=gyro, emg_rate_hz=EMG_RATE_HZ, imu_rate_hz=IMU_RATE_HZ,
                     sensor_names=SENSOR_NAMES, annotations=annotations, metadata=metadata, gaps=gaps)


def plan_held_transition(previous: SignEvent, sign: SignEvent, signer: SignerProfile,
                         rng: np.random.Generator) -> PostureEvent:
    """The hand not lowered all the way between ``previous`` and ``sign``: it leaves the first sign for
    a posture part way between the two (30-60 % of the way from rest) and holds it until the next."""
    ramp = min(previous.ramp_out_s, sign.ramp_in_s)
    target = 0.5 * (previous.posture_deg + sign.posture_deg) - signer.rest_posture_deg
    onset = previous.end_s - previous.ramp_out_s
    return PostureEvent(onset, sign.onset_s + sign.ramp_in_s - onset, ramp,
                        rng.uniform(0.3, 0.6) * target, rng.uniform(0.0, 0.03, 6))


def plan_session(signer: SignerProfile, rng: np.random.Generator, duration_s: float,
                 start_s: float = 0.0, labels: tuple[int, ...] | None = None) -> list:
    """Signs with rest 1.0-2.5 s between them; fidgets in some rests; in others the hand does not go
    all the way down (a held transition). Signs cycle through shuffled passes of the vocabulary."""
    choices = tuple(range(len(VOCABULARY))) if labels is None else labels
    events: list = []
    order: list[int] = []
    time_s = start_s + float(rng.uniform(*SESSION_REST_S))
    previous: SignEvent | None = None
    while True:
        if not order:
            order = list(rng.permutation(choices))
        sign = plan_sign(int(order.pop()), time_s, signer, rng)
        if sign.end_s > start_s + duration_s - 0.5:
            break
        if previous is not None:
            rest_start, rest_end = previous.end_s, sign.onset_s
            if rng.random() < HELD_TRANSITION_PROBABILITY:
                events.append(plan_held_transition(previous, sign, signer, rng))
            elif rng.random() < 0.5 and rest_end - rest_start > 1.0:
                fidget = plan_fidget(rest_start + 0.2, rng)
                if fidget.end_s < rest_end - 0.2:
                    shift = rng.uniform(0.0, rest_end - 0.2 - fidget.end_s)
                    events.append(PostureEvent(fidget.onset_s + shift, fidget.duration_s, fidget.ramp_s,
                                               fidget.offset_deg, fidget.activation))
        events.append(sign)
        previous = sign
        time_s = sign.end_s + float(rng.uniform(*SESSION_REST_S))
    return events


def session_annotations(events: list) -> list[Annotation]:
    return [Annotation(LABELS[event.sign_index], sample_index(event.onset_s), sample_index(event.end_s))
            for event in events if isinstance(event, SignEvent)]


def session_lead_ins(events: list) -> list[str]:
    """Per annotated sign, what came just before it: ``rest``, ``held`` (a held transition from the
    previous sign) or ``fidget`` (a restless movement in the rest), so an evaluation can say where
    its errors are (``stream.tools.evaluate`` reports recall per lead-in)."""
    lead_ins, pending, previous_end = [], "rest", -math.inf
    for event in events:
        if isinstance(event, SignEvent):
            lead_ins.append(pending)
            pending, previous_end = "rest", event.end_s
        else:
            # A held transition leaves while the previous sign is still ramping out; a fidget starts
            # in the rest after it.
            pending = "held" if event.onset_s < previous_end else "fidget"
    return lead_ins


def session_recording(seed: int, signer: SignerProfile, session: int) -> Recording:
    """A continuous session of 60-120 s, annotated (label, start, end in sEMG samples)."""
    rng = recording_rng(seed, KIND_SESSION, signer.index, session, 0)
    duration_s = float(rng.uniform(60.0, 120.0))
    events = plan_session(signer, rng, duration_s)
    frames = math.ceil(duration_s / FRAME_S)
    state = StreamState.draw(rng, signer.version, donning_gain(signer, session_donning(session)))
    emg, acc, gyro, gaps = render(events, signer, state, rng, 0, frames)
    metadata = {
        "kind": "session", "signer": signer_name(signer.index), "session": session, "seed": seed,
        "generator": "train.synth", "generator_version": signer.version, "lead_ins": session_lead_ins(events),
    }
    return synthetic_recording(emg, acc, gyro, gaps, session_annotations(events), metadata)


KIND_GUIDED = 4


def guided_recording(seed: int, signer: SignerProfile, prompts, session: int = 0) -> Recording:
    """The signer following a guided session (stream-record's prompts: ``label``, ``start_index``,
    ``end_index`` in sEMG samples): each sign made 0.3-0.7 s after its prompt appears (reaction
    time) and ending inside it; rest in between, and 1 s of rest after the last. Annotated with the
    prompts' clock-based spans, exactly as stream-record labels a live guided session; the signs'
    true spans are in ``metadata["performed"]``. A sitting of its own (``session_donning``)."""
    rng = recording_rng(seed, KIND_GUIDED, signer.index, session, 0)
    rate = float(EMG_RATE_HZ)
    events, performed = [], []
    for prompt in prompts:
        start_s, end_s = prompt.start_index / rate, prompt.end_index / rate
        sign = plan_sign(LABELS.index(prompt.label), start_s + float(rng.uniform(0.3, 0.7)), signer, rng)
        latest_onset = end_s - sign.duration_s - 0.05
        if sign.onset_s > latest_onset:
            sign = dataclasses.replace(sign, onset_s=max(start_s, latest_onset))
        events.append(sign)
        performed.append([prompt.label, sample_index(sign.onset_s), sample_index(sign.end_s)])
    duration_s = (prompts[-1].end_index / rate if prompts else 0.0) + 1.0
    frames = math.ceil(duration_s / FRAME_S)
    state = StreamState.draw(rng, signer.version, donning_gain(signer, session_donning(200 + session)))
    emg, acc, gyro, gaps = render(events, signer, state, rng, 0, frames)
    annotations = [Annotation(prompt.label, prompt.start_index, prompt.end_index) for prompt in prompts]
    metadata = {"kind": "guided", "signer": signer_name(signer.index), "session": session, "seed": seed,
                "generator": "train.synth", "generator_version": signer.version, "performed": performed}
    return synthetic_recording(emg, acc, gyro, gaps, annotations, metadata)

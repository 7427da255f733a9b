"""Isolated recordings of the simulated signers, and the units of parallel work that build a data set.

The person (``stream.synth``) and their continuous sessions (``stream.synth.session``) live on the
runtime side, where the live source uses them; this module adds the isolated signs a training set is
made of. Every recording is a pure function of (dataset seed, signer, sign or session, repetition):
its random stream is ``SeedSequence([seed, kind, signer, item, repetition])``, so the output does not
depend on the number of worker processes or the order of generation.
"""

from __future__ import annotations

import dataclasses
import math

from stream.recording import Annotation, Recording
from stream.synth.performance import plan_sign
from stream.synth.render import StreamState, render, sample_index
from stream.synth.session import (
    FRAME_S,
    HELD_TRANSITION_PROBABILITY,
    KIND_ISOLATED,
    KIND_ISOLATED_CONTEXT,
    isolated_donning,
    SESSION_REST_S,
    plan_held_transition,
    recording_rng,
    session_recording,
    signer_name,
    synthetic_recording,
)
from stream.synth.signer import SignerProfile, donning_gain, make_signer
from stream.synth.vocabulary import LABELS, VOCABULARY

# Enough rest before an isolated sign that the model's whole 2 s window (ending hold_off_s after the sign,
# jittered) lies inside the recording, after the filters' start-up transient: version 1 had 0.4-0.9 s and
# 65 % of the training windows had to be padded with mirrored rest.
ISOLATED_LEAD_REST_S = (1.9, 2.4)
ISOLATED_TAIL_REST_S = (0.4, 0.9)
CONTEXT_LEAD_REST_S = (0.5, 1.0)  # before the unannotated context sign


def isolated_recording(seed: int, signer: SignerProfile, sign_index: int, repetition: int,
                       variability: float = 1.0) -> Recording:
    """Rest (1.9-2.4 s), one sign (0.5-1.5 s), rest (0.4-0.9 s); one annotation.

    One recording in four (``HELD_TRANSITION_PROBABILITY``) is made in flow instead: rest
    (0.5-1.0 s), another sign (not annotated), a held transition of 1.0-2.5 s as in the sessions, then
    the annotated sign and rest. Whether, and the context sign, come from a random stream of their
    own, so the other recordings are the same samples as version 3's.
    """
    context_rng = recording_rng(seed, KIND_ISOLATED_CONTEXT, signer.index, sign_index, repetition)
    rng = recording_rng(seed, KIND_ISOLATED, signer.index, sign_index, repetition)
    onset = float(rng.uniform(*ISOLATED_LEAD_REST_S))
    event = plan_sign(sign_index, onset, signer, rng, variability)
    events: list = [event]
    context_label = None
    if context_rng.random() < HELD_TRANSITION_PROBABILITY:
        other = int(context_rng.integers(len(VOCABULARY) - 1))
        other += other >= sign_index  # any sign but this one
        previous = plan_sign(other, float(context_rng.uniform(*CONTEXT_LEAD_REST_S)), signer, context_rng, variability)
        event = dataclasses.replace(event, onset_s=previous.end_s + float(context_rng.uniform(*SESSION_REST_S)))
        events = [previous, plan_held_transition(previous, event, signer, context_rng), event]
        context_label = LABELS[other]
    total_s = event.end_s + float(rng.uniform(*ISOLATED_TAIL_REST_S))
    frames = math.ceil(total_s / FRAME_S)
    state = StreamState.draw(rng, signer.version, donning_gain(signer, isolated_donning(repetition)))
    emg, acc, gyro, gaps = render(events, signer, state, rng, 0, frames)
    label = LABELS[sign_index]
    annotation = Annotation(label, sample_index(event.onset_s), sample_index(event.end_s))
    metadata = {
        "kind": "isolated", "label": label, "sign_kind": VOCABULARY[sign_index].kind,
        "signer": signer_name(signer.index), "repetition": repetition, "seed": seed,
        "generator": "train.synth", "generator_version": signer.version, "variability": variability,
        "lead_in": "rest" if context_label is None else "held_after_sign",
    }
    if context_label is not None:
        metadata["context_sign"] = context_label  # performed before the annotated sign, not annotated
    return synthetic_recording(emg, acc, gyro, gaps, [annotation], metadata)






def isolated_batch(task: tuple[int, int, int, int, float, int]) -> list[tuple[str, Recording]]:
    """All repetitions of one sign by one signer (one unit of parallel work)."""
    seed, signer_index, sign_index, repetitions, variability, version = task
    signer = make_signer(seed, signer_index, version)
    return [(f"{LABELS[sign_index]}-r{repetition:02d}",
             isolated_recording(seed, signer, sign_index, repetition, variability))
            for repetition in range(repetitions)]


def session_batch(task: tuple[int, int, int, int]) -> list[tuple[str, Recording]]:
    seed, signer_index, session, version = task
    return [(f"session-{session:02d}", session_recording(seed, make_signer(seed, signer_index, version), session))]

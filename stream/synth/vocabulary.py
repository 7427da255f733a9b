"""The 50-sign vocabulary: real, common Indian Sign Language words, each given a parametric form.

A sign here is what ISL linguistics describes with four parameters: handshape, palm orientation,
location and movement. We model them as
- ``handshape``: steady activation (fraction of maximum voluntary contraction, MVC) of the four forearm
  muscles under our sensors (wrist/finger flexors and extensors) plus a little upper-arm co-contraction;
- ``location``: the arm posture (joint angles) the hand is carried to;
- ``pronation``: palm orientation, as forearm rotation;
- ``movement``: a parametric path of the joints (none for static signs).

The names are real words; the parameters are NOT the dictionary forms of those ISL signs (the
reference recordings are not public and we do not pretend to have them). They are chosen so that the
vocabulary has the structure that matters for recognition: static signs (held handshape at one of a
few locations: the sEMG separates them, the IMU barely does), dynamic signs (a movement with one of a
few common handshapes: the IMU separates them, the sEMG barely does), and deliberately confusable
pairs (a handshape or movement that differs from another sign's only slightly).

The vocabulary is fixed (its own constant seed), independent of any dataset seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VOCABULARY_SEED = 20260101
MUSCLES = ("flexor_carpi_radialis", "flexor_digitorum_superficialis", "extensor_digitorum",
           "extensor_carpi_ulnaris", "biceps_brachii", "triceps_brachii")
JOINTS = ("shoulder_flexion", "shoulder_abduction", "shoulder_rotation", "elbow_flexion", "pronation")

# Arm postures in degrees (JOINTS order). Rest: hands resting on the lap.
REST_POSTURE = (15.0, 8.0, 25.0, 85.0, 40.0)
LOCATIONS = {
    "neutral": (28.0, 12.0, 20.0, 98.0, 30.0),   # in front of the body, waist/chest height
    "chest": (30.0, 16.0, 50.0, 115.0, 10.0),    # hand on/near the chest
    "chin": (38.0, 20.0, 38.0, 128.0, 60.0),     # hand near mouth/chin
    "forehead": (52.0, 26.0, 30.0, 122.0, 60.0),
    "side": (40.0, 35.0, 5.0, 80.0, -5.0),       # out to the side
    "forward": (40.0, 8.0, 12.0, 60.0, 20.0),    # arm reaching forward
}

# Forearm activation patterns (FCR, FDS, ED, ECU) in fraction of MVC: distinct hand configurations.
HANDSHAPES = {
    "fist": (0.30, 0.50, 0.14, 0.20),
    "flat": (0.08, 0.08, 0.42, 0.22),
    "point": (0.12, 0.34, 0.30, 0.10),
    "thumb_up": (0.22, 0.40, 0.10, 0.32),
    "spread": (0.06, 0.14, 0.55, 0.30),
    "claw": (0.14, 0.40, 0.40, 0.12),
    "pinch_o": (0.36, 0.28, 0.08, 0.10),
    "v_shape": (0.10, 0.30, 0.36, 0.26),
    "y_shape": (0.26, 0.26, 0.22, 0.40),
    "l_shape": (0.18, 0.22, 0.30, 0.12),
    "bent_flat": (0.24, 0.16, 0.30, 0.34),
    "cupped": (0.30, 0.20, 0.22, 0.06),
}
# Dynamic signs use only these: the handshape alone cannot tell them apart.
DYNAMIC_HANDSHAPES = ("flat", "fist", "point", "spread")


@dataclass(frozen=True)
class Movement:
    """A joint-space movement during the sign's core phase: ``kind`` picks the path; ``amplitude_deg``
    its size; ``cycles`` how many repetitions; ``direction`` +1/-1 (clockwise/anticlockwise, left/right...)."""

    kind: str  # "hold", "circle", "tap", "twist", "wave", "push", "arc", "nod", "zigzag"
    amplitude_deg: float = 0.0
    cycles: float = 1.0
    direction: int = 1


@dataclass(frozen=True)
class Sign:
    name: str
    kind: str  # "static" | "dynamic"
    handshape: str
    activation: tuple[float, ...]  # 4 forearm muscles, fraction of MVC
    location: str
    posture_deg: tuple[float, ...]  # JOINTS, the hand's target posture
    movement: Movement
    duration_s: float  # typical duration from leaving rest to being back at rest


# (name, location, handshape, pronation offset) for static signs; pairs sharing location and a
# near-identical handshape are the confusable ones (marked "~": activation nudged from the base shape).
_STATIC = [
    ("good", "neutral", "thumb_up", 0), ("bad", "neutral", "thumb_up~", 0),
    ("water", "chin", "y_shape", 0), ("drink", "chin", "y_shape~", 0),
    ("name", "neutral", "v_shape", 0), ("who", "chin", "point", 0),
    ("home", "chest", "bent_flat", 0), ("house", "chest", "bent_flat~", 0),
    ("love", "chest", "fist", 0), ("sorry", "chest", "fist~", 0),
    ("please", "chest", "flat", 0), ("friend", "neutral", "claw", 0),
    ("mother", "chin", "l_shape", 0), ("father", "forehead", "l_shape", 0),
    ("man", "forehead", "fist", 0), ("woman", "chin", "pinch_o", 0),
    ("book", "neutral", "cupped", 0), ("money", "neutral", "pinch_o", 0),
    ("teacher", "forehead", "pinch_o", 0), ("doctor", "neutral", "spread", 0),
    ("child", "neutral", "flat", -40), ("stop", "forward", "flat", 50),
]
# (name, location, handshape, movement kind, amplitude, cycles, direction) for dynamic signs.
_DYNAMIC = [
    ("hello", "forehead", "flat", "wave", 10.8, 1.5, 1), ("thank_you", "chin", "flat", "push", 16.8, 1.0, 1),
    ("yes", "neutral", "fist", "nod", 8.4, 2.0, 1), ("no", "neutral", "point", "wave", 8.4, 2.0, 1),
    ("help", "neutral", "flat", "push", 14.4, 1.0, -1), ("come", "forward", "point", "tap", 13.2, 2.0, -1),
    ("go", "neutral", "point", "push", 18.0, 1.0, 1), ("what", "neutral", "spread", "twist", 15.8, 1.5, 1),
    ("where", "neutral", "point", "arc", 15.0, 1.0, 1), ("when", "neutral", "point", "circle", 6.3, 1.0, 1),
    ("why", "forehead", "spread", "twist", 13.5, 1.0, -1), ("how", "neutral", "fist", "twist", 18.0, 1.0, 1),
    ("today", "neutral", "flat", "tap", 8.4, 2.0, 1), ("tomorrow", "chin", "point", "arc", 18.0, 1.0, 1),
    ("yesterday", "chin", "point", "arc", 18.0, 1.0, -1), ("morning", "neutral", "flat", "arc", 21.0, 1.0, 1),
    ("night", "neutral", "flat", "arc", 21.0, 1.0, -1), ("time", "neutral", "point", "tap", 7.2, 2.0, 1),
    ("work", "neutral", "fist", "tap", 9.6, 3.0, 1), ("happy", "chest", "flat", "circle", 7.2, 1.5, 1),
    ("sad", "chin", "spread", "nod", 12.0, 1.0, -1), ("eat", "chin", "pinch_o", "tap", 7.2, 3.0, 1),
    ("food", "chin", "pinch_o", "tap", 7.2, 2.0, 1), ("school", "neutral", "flat", "tap", 8.4, 3.0, 1),
    ("family", "neutral", "spread", "circle", 9.9, 1.0, -1), ("brother", "forehead", "point", "push", 13.2, 1.0, 1),
    ("sister", "chin", "point", "push", 13.2, 1.0, 1), ("beautiful", "chin", "spread", "circle", 8.1, 1.0, 1),
]


def _nudge(activation: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A near-identical handshape: one muscle pair shifted by a few % MVC (confusable pairs)."""
    first, second = rng.choice(4, size=2, replace=False)
    nudged = activation.copy()
    nudged[first] += 0.07
    nudged[second] = max(0.03, nudged[second] - 0.05)
    return nudged


def build_vocabulary() -> tuple[Sign, ...]:
    """The fixed 50 signs, in label order (static first, then dynamic)."""
    rng = np.random.default_rng(VOCABULARY_SEED)
    signs = []
    for name, location, handshape, pronation in _STATIC:
        base = handshape.rstrip("~")
        activation = np.array(HANDSHAPES[base])
        if handshape.endswith("~"):
            activation = _nudge(activation, rng)
        posture = np.array(LOCATIONS[location]) + np.array([0, 0, 0, 0, pronation]) + rng.normal(0, 2.0, 5)
        duration = float(rng.uniform(1.0, 1.3))
        signs.append(Sign(name, "static", base, tuple(np.round(activation, 3)), location,
                          tuple(np.round(posture, 1)), Movement("hold"), duration))
    for name, location, handshape, kind, amplitude, cycles, direction in _DYNAMIC:
        activation = np.array(HANDSHAPES[handshape]) * rng.uniform(0.85, 1.1, 4)
        posture = np.array(LOCATIONS[location]) + rng.normal(0, 2.0, 5)
        duration = float(np.clip(0.75 + 0.3 * cycles + rng.uniform(-0.05, 0.1), 1.0, 1.42))
        signs.append(Sign(name, "dynamic", handshape, tuple(np.round(activation, 3)), location,
                          tuple(np.round(posture, 1)), Movement(kind, amplitude, cycles, direction), duration))
    names = [sign.name for sign in signs]
    assert len(names) == 50 and len(set(names)) == 50, "the vocabulary must have 50 unique signs"
    return tuple(signs)


VOCABULARY = build_vocabulary()
LABELS = tuple(sign.name for sign in VOCABULARY)
SIGNS_BY_NAME = {sign.name: sign for sign in VOCABULARY}

"""What the signer does over time: events (signs, fidgets, held transitions) -> joint angles and
muscle activations on a time grid.

Every event adds a contribution with compact support to the signer's rest posture and to the
activations, so events compose (a transition hold overlapping a sign's return gives a hand that does
not go all the way down), and a timeline can be rendered in independent pieces that join seamlessly
as long as no event crosses a piece boundary.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from stream.synth.signer import SignerProfile
from stream.synth.vocabulary import JOINTS, VOCABULARY

JOINT_COUNT = len(JOINTS)
MIN_SIGN_S, MAX_SIGN_S = 0.5, 1.5
# Scales every per-repetition spread written in plan_sign (those are synth-v3's). The calibration
# (docs/DATA.md): 1.0 (synth-v3) gave a teacher ensemble of 88.3 % within-signer, 0.85 (synth-v4)
# 90.9 %, 0.646 (synth-v5) 95.7 % (aimed at the reference's 93.6 %; the fast proxy said 94.3 %).
REPETITION_SPREAD = 0.646


def minimum_jerk(fraction: np.ndarray) -> np.ndarray:
    """The minimum-jerk profile 0 -> 1 (zero velocity and acceleration at both ends)."""
    x = np.clip(fraction, 0.0, 1.0)
    return x * x * x * (10.0 - 15.0 * x + 6.0 * x * x)


@dataclass(frozen=True)
class SignEvent:
    """One performance of a sign; all the per-repetition variation is drawn into these fields."""

    sign_index: int
    onset_s: float
    duration_s: float
    ramp_in_s: float
    ramp_out_s: float
    posture_deg: np.ndarray  # (5,) where this repetition goes (sign + signer habit + jitter)
    activation: np.ndarray  # (4,) forearm handshape activation for this repetition
    movement_scale: float
    warp: float  # time warping of the movement, |warp| < 1 keeps it monotonic
    handshape_lead: float  # fraction of ramp_in over which the handshape forms

    @property
    def end_s(self) -> float:
        return self.onset_s + self.duration_s


@dataclass(frozen=True)
class PostureEvent:
    """A fidget (small excursion and back, weak activation) or a held transition between signs."""

    onset_s: float
    duration_s: float
    ramp_s: float
    offset_deg: np.ndarray  # (5,)
    activation: np.ndarray  # (6,) weak, all muscles

    @property
    def end_s(self) -> float:
        return self.onset_s + self.duration_s


def plan_sign(sign_index: int, onset_s: float, signer: SignerProfile, rng: np.random.Generator,
              variability: float = 1.0) -> SignEvent:
    """Draw one repetition of ``sign_index`` by ``signer`` starting at ``onset_s``.
    ``variability`` scales every per-repetition spread (1 = the documented model)."""
    sign = VOCABULARY[sign_index]
    spread = REPETITION_SPREAD * variability
    duration = sign.duration_s * signer.tempo * rng.lognormal(0.0, 0.11 * spread)
    duration = float(np.clip(duration, MIN_SIGN_S + 0.05, MAX_SIGN_S - 0.05))
    ramp_in = min(float(rng.uniform(0.26, 0.36)) * signer.tempo, 0.32 * duration)
    ramp_out = min(float(rng.uniform(0.26, 0.36)) * signer.tempo, 0.32 * duration)
    posture = (np.array(sign.posture_deg) + signer.location_offset_deg[sign_index]
               + rng.normal(0.0, 4.8 * spread, JOINT_COUNT))
    activation = (np.array(sign.activation) * signer.style_activation[sign_index]
                  * rng.lognormal(0.0, 0.19 * spread) * rng.lognormal(0.0, 0.22 * spread, 4))
    event = SignEvent(
        sign_index=sign_index, onset_s=float(onset_s), duration_s=duration, ramp_in_s=ramp_in, ramp_out_s=ramp_out,
        posture_deg=posture, activation=activation,
        movement_scale=float(signer.movement_scale * signer.style_movement[sign_index]
                             * rng.lognormal(0.0, 0.16 * spread)),
        warp=float(np.clip(rng.uniform(-0.4, 0.4) * spread, -0.9, 0.9)), handshape_lead=float(rng.uniform(0.5, 1.0)),
    )
    # Version 5 on: now and then a sign made with a slack hand (tired, hurried): its handshape's
    # activation at a third to a half. Drawn last, so version 4's random stream is unchanged.
    electrodes = signer.electrodes
    if electrodes is not None and rng.random() < electrodes.weak_sign_probability:
        event = dataclasses.replace(event, activation=event.activation * rng.uniform(0.3, 0.55))
    return event


def plan_fidget(onset_s: float, rng: np.random.Generator) -> PostureEvent:
    """A small restless movement: a few degrees on one or two joints, weak activation."""
    offset = np.zeros(JOINT_COUNT)
    joints = rng.choice(JOINT_COUNT, size=int(rng.integers(1, 3)), replace=False)
    offset[joints] = rng.uniform(2.0, 6.0, joints.size) * rng.choice([-1, 1], joints.size)
    duration = float(rng.uniform(0.8, 1.8))
    return PostureEvent(onset_s, duration, duration * 0.45, offset, rng.uniform(0.0, 0.04, 6))


def _movement(sign_index: int, progress: np.ndarray, event: SignEvent) -> tuple[np.ndarray, np.ndarray]:
    """Joint offsets (T, 5) and extra forearm activation (T, 4) of the movement at ``progress`` in [0, 1]."""
    movement = VOCABULARY[sign_index].movement
    steps = progress.size
    offset = np.zeros((steps, JOINT_COUNT))
    extra = np.zeros((steps, 4))
    if movement.kind == "hold":
        return offset, extra
    warped = progress + event.warp * np.sin(np.pi * progress) / np.pi
    eased = minimum_jerk(warped)  # for one-way paths: smooth start and stop
    # Periodic paths run at a steady rate and fade in/out over the first and last quarter of the core.
    taper = minimum_jerk(warped / 0.25) * minimum_jerk((1.0 - warped) / 0.25)
    phase = 2 * np.pi * movement.cycles * warped
    amplitude = movement.amplitude_deg * event.movement_scale
    direction = movement.direction
    if movement.kind == "circle":
        offset[:, 0] = taper * amplitude * np.sin(phase)
        offset[:, 1] = taper * direction * amplitude * np.cos(phase)
    elif movement.kind == "tap":
        offset[:, 3] = taper * direction * amplitude * (1 - np.cos(phase)) / 2
    elif movement.kind == "nod":
        offset[:, 3] = taper * direction * amplitude * np.sin(phase)
        offset[:, 4] = taper * 0.3 * amplitude * np.sin(phase)
    elif movement.kind == "twist":
        offset[:, 4] = taper * direction * amplitude * np.sin(phase)
    elif movement.kind == "wave":
        offset[:, 2] = taper * direction * amplitude * np.sin(phase)
        offset[:, 4] = taper * 0.25 * amplitude * np.sin(phase)
    elif movement.kind == "push":
        offset[:, 0] = direction * 0.6 * amplitude * eased
        offset[:, 3] = -direction * 1.3 * amplitude * eased
    elif movement.kind == "arc":
        offset[:, 2] = direction * amplitude * eased
        offset[:, 0] = 0.4 * amplitude * np.sin(np.pi * eased)
    else:
        raise ValueError(f"unknown movement kind {movement.kind!r}")
    # Wrist stabilisers work with the movement: flexors and extensors alternate with its phase.
    swing = np.sin(phase) * min(1.0, amplitude / 20.0) * (taper if movement.kind not in ('push', 'arc') else 1.0)
    extra[:, 0] = 0.07 * np.maximum(swing, 0)
    extra[:, 3] = 0.07 * np.maximum(-swing, 0)
    extra[:, 2] = 0.04 * np.abs(swing)
    return offset, extra


def sign_contribution(event: SignEvent, times_s: np.ndarray, rest_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posture offset (T, 5) and forearm activation (T, 4) of a sign at ``times_s`` (inside its span)."""
    local = times_s - event.onset_s
    core_start = event.ramp_in_s
    core_end = event.duration_s - event.ramp_out_s
    carried = np.where(local < core_end, minimum_jerk(local / event.ramp_in_s),
                       1.0 - minimum_jerk((local - core_end) / event.ramp_out_s))
    progress = np.clip((local - core_start) / max(core_end - core_start, 1e-3), 0.0, 1.0)
    movement, extra = _movement(event.sign_index, progress, event)
    posture = carried[:, None] * ((event.posture_deg - rest_deg)[None, :] + movement)
    formed = np.where(local < core_end, minimum_jerk(local / (event.ramp_in_s * event.handshape_lead)),
                      1.0 - minimum_jerk((local - core_end) / (0.8 * event.ramp_out_s)))
    activation = formed[:, None] * event.activation[None, :] + carried[:, None] * extra
    return posture, activation


def posture_contribution(event: PostureEvent, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    local = times_s - event.onset_s
    up = minimum_jerk(local / event.ramp_s)
    down = 1.0 - minimum_jerk((local - (event.duration_s - event.ramp_s)) / event.ramp_s)
    shape = np.minimum(up, down)
    return shape[:, None] * event.offset_deg[None, :], shape[:, None] * event.activation[None, :]


def perform(events: list, times_s: np.ndarray, signer: SignerProfile) -> tuple[np.ndarray, np.ndarray]:
    """Joint angles (T, 5) in degrees and activations (T, 6) without the upper-arm load terms."""
    posture = np.tile(signer.rest_posture_deg, (times_s.size, 1))
    activation = np.zeros((times_s.size, 6))
    for event in events:
        first, last = np.searchsorted(times_s, [event.onset_s, event.end_s])
        if last <= first:
            continue
        window = times_s[first:last]
        if isinstance(event, SignEvent):
            offset, forearm = sign_contribution(event, window, signer.rest_posture_deg)
            posture[first:last] += offset
            activation[first:last, :4] += forearm
        else:
            offset, weak = posture_contribution(event, window)
            posture[first:last] += offset
            activation[first:last] += weak
    return posture, activation


def upper_arm_activation(posture_deg: np.ndarray, horizontal: np.ndarray, rest_deg: np.ndarray,
                         rate_hz: float) -> np.ndarray:
    """Biceps and triceps activation (T, 2): holding the raised forearm against gravity, accelerating
    the elbow, and co-contraction. At rest the forearm is supported (on the lap): no load."""
    # Excursions of a few degrees (fidgets) hardly load the arm; carrying the hand to a sign does.
    raised = np.clip((np.max(np.abs(posture_deg - rest_deg), axis=1) - 5.0) / 15.0, 0.0, 1.0)
    elbow_acceleration = np.gradient(np.gradient(posture_deg[:, 3], 1.0 / rate_hz), 1.0 / rate_hz)
    biceps = raised * (0.03 + 0.14 * horizontal) + 0.08 * np.maximum(elbow_acceleration, 0) / 2000.0
    triceps = raised * 0.03 + 0.10 * np.maximum(-elbow_acceleration, 0) / 2000.0 + 0.25 * biceps
    return np.stack([biceps, triceps], axis=1)

"""A simulated signer: body, sensor placement and personal style, drawn once from a seed.

What differs between people and between sessions of sensor placement (see docs/DATA.md):
- electrode shift: each sensor picks up its neighbours (crosstalk mixing matrix) and a different gain
  (skin, fat, exact spot); its noise floor and mains pick-up differ;
- IMU placement: each sensor sits at a slightly different angle around the limb;
- tempo and size of movements, rest posture, how high/far each sign is made;
- style: each signer forms every handshape a little differently (per sign and muscle) and makes each
  movement a little bigger/smaller. This is what makes a new signer harder than a new repetition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream.synth.vocabulary import JOINTS, MUSCLES, REST_POSTURE, VOCABULARY

SENSOR_COUNT = len(MUSCLES)
# Where each sensor sits: segment (0 upper arm, 1 forearm), distance from the proximal joint (m),
# nominal angle around the limb (deg, 0 = front/anterior).
SENSOR_SEGMENT = np.array([1, 1, 1, 1, 0, 0])
SENSOR_DISTANCE_M = np.array([0.07, 0.09, 0.08, 0.09, 0.16, 0.14])
SENSOR_ANGLE_DEG = np.array([20.0, 60.0, 200.0, 240.0, 0.0, 180.0])
# Forearm sensors sit on a ring: crosstalk goes to the ring neighbours. Upper-arm pair only to each other.
NEIGHBOURS = {0: (1, 3), 1: (0, 2), 2: (1, 3), 3: (2, 0), 4: (5,), 5: (4,)}


@dataclass(frozen=True)
class SignerProfile:
    index: int
    mixing: np.ndarray  # (6 sensors, 6 muscles) crosstalk matrix
    emg_gain: np.ndarray  # (6,) multiplies the mV level per sensor
    mvc_mv: np.ndarray  # (6,) RMS in mV at full activation per muscle
    noise_floor_mv: np.ndarray  # (6,) electrode + amplifier noise RMS
    mains_mv: float  # 50 Hz pick-up amplitude
    mains_phase: np.ndarray  # (6,)
    sensor_angle_deg: np.ndarray  # (6,) placement around the limb
    sensor_tilt_deg: np.ndarray  # (6, 2) small tilt of the sensor on the skin
    gyro_bias_dps: np.ndarray  # (6, 3)
    rest_posture_deg: np.ndarray  # (5,)
    tempo: float  # duration multiplier (>1 slower)
    movement_scale: float
    location_offset_deg: np.ndarray  # (50, 5) per-sign habit of where the sign is made
    style_activation: np.ndarray  # (50, 4) per-sign multiplicative habit on the forearm muscles
    style_movement: np.ndarray  # (50,) per-sign multiplicative habit on movement amplitude
    upper_arm_m: float
    forearm_m: float
    limb_radius_m: float
    artefact_rate: float  # motion-artefact proneness (loose electrodes)
    dropout_rate: float  # sensor dropouts per minute


def make_signer(seed: int, index: int) -> SignerProfile:
    """Signer ``index`` of the population drawn with dataset ``seed`` (deterministic)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7919, index]))
    shift = rng.uniform(0.04, 0.22)  # electrode shift: how much each sensor hears its neighbours
    mixing = np.eye(SENSOR_COUNT)
    for sensor, neighbours in NEIGHBOURS.items():
        for neighbour in neighbours:
            mixing[sensor, neighbour] = shift * rng.uniform(0.5, 1.5)
    signs = len(VOCABULARY)
    return SignerProfile(
        index=index,
        mixing=mixing,
        emg_gain=rng.lognormal(0.0, 0.18, SENSOR_COUNT),
        mvc_mv=np.array([0.55, 0.6, 0.55, 0.5, 0.7, 0.55]) * rng.lognormal(0.0, 0.1, SENSOR_COUNT),
        noise_floor_mv=rng.uniform(0.0012, 0.003, SENSOR_COUNT),
        mains_mv=float(rng.uniform(0.0005, 0.002)),
        mains_phase=rng.uniform(0, 2 * np.pi, SENSOR_COUNT),
        sensor_angle_deg=SENSOR_ANGLE_DEG + rng.normal(0, 10.0, SENSOR_COUNT),
        sensor_tilt_deg=rng.normal(0, 5.0, (SENSOR_COUNT, 2)),
        gyro_bias_dps=rng.normal(0, 0.8, (SENSOR_COUNT, 3)),
        rest_posture_deg=np.array(REST_POSTURE) + rng.normal(0, 4.0, len(JOINTS)),
        tempo=float(rng.uniform(0.88, 1.15)),
        movement_scale=float(rng.uniform(0.85, 1.15)),
        location_offset_deg=rng.normal(0, 5.0, (signs, len(JOINTS))),
        style_activation=rng.lognormal(0.0, 0.22, (signs, 4)),
        style_movement=rng.lognormal(0.0, 0.12, signs),
        upper_arm_m=float(rng.uniform(0.27, 0.34)),
        forearm_m=float(rng.uniform(0.24, 0.29)),
        limb_radius_m=float(rng.uniform(0.035, 0.045)),
        artefact_rate=float(rng.uniform(0.1, 0.5)),
        dropout_rate=float(rng.uniform(0.3, 1.0)),
    )

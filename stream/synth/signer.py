"""A simulated signer: body, sensor placement and personal style, drawn once from a seed.

What differs between people and between sessions of sensor placement (see docs/DATA.md):
- electrode shift: each sensor picks up its neighbours (crosstalk mixing matrix) and a different gain
  (skin, fat, exact spot); its noise floor and mains pick-up differ;
- IMU placement: each sensor sits at a slightly different angle around the limb;
- tempo and size of movements, rest posture, how high/far each sign is made;
- style: each signer forms every handshape a little differently (per sign and muscle) and makes each
  movement a little bigger/smaller. This is what makes a new signer harder than a new repetition.

Generator versions: 4 is the signer of synth-v6 (kept reproducible: ``make_signer(seed, index, 4)``
draws exactly what it always did); 5 (the default, synth-v7) is the same person with the electrode
and skin measured against real recordings (``Electrodes``, docs/DATA.md "Realism"): a louder rest
(electrode noise of 1.2-3.5 uV and a faint tonic activity of the muscles holding the arm), less mains,
a spectrum that differs between muscles and signers, and weak signs now and then.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from stream.synth.vocabulary import JOINTS, MUSCLES, REST_POSTURE, VOCABULARY

SENSOR_COUNT = len(MUSCLES)
GENERATOR_VERSIONS = (4, 5)
GENERATOR_VERSION = GENERATOR_VERSIONS[-1]
# Where each sensor sits: segment (0 upper arm, 1 forearm), distance from the proximal joint (m),
# nominal angle around the limb (deg, 0 = front/anterior).
SENSOR_SEGMENT = np.array([1, 1, 1, 1, 0, 0])
SENSOR_DISTANCE_M = np.array([0.07, 0.09, 0.08, 0.09, 0.16, 0.14])
SENSOR_ANGLE_DEG = np.array([20.0, 60.0, 200.0, 240.0, 0.0, 180.0])
# Forearm sensors sit on a ring: crosstalk goes to the ring neighbours. Upper-arm pair only to each other.
NEIGHBOURS = {0: (1, 3), 1: (0, 2), 2: (1, 3), 3: (2, 0), 4: (5,), 5: (4,)}


@dataclass(frozen=True)
class Electrodes:
    """Generator version 5 on: what the skin and electrodes add, drawn per signer (per stream in
    ``render.StreamState``). Each value was set against the real recordings (train.synth.realism)."""

    spectrum_low_hz: np.ndarray  # (6,) per muscle: the sEMG spectrum's low corner (v4: 60 for all)
    spectrum_high_hz: np.ndarray  # (6,) and its high corner (v4: 120); lower = more tissue filtering
    tonic_activation: np.ndarray  # (6,) fraction of MVC a muscle keeps at rest (holding the arm)
    weak_sign_probability: float  # chance that a repetition is made with a much weaker handshape


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
    version: int = 4  # the generator version this signer was drawn for
    electrodes: Electrodes | None = None  # version 5 on
    seed: int = 0  # the population seed it was drawn with


# Version 5: the sensors are put on again between recording sittings (a "donning"), and each time they
# sit a little differently: a gain per sensor (sd 15 %). Isolated recordings are made in sittings of
# this many repetitions; each continuous session is a sitting of its own.
REPETITIONS_PER_DONNING = 5
DONNING_GAIN_SD = 0.15


def donning_gain(signer: SignerProfile, donning: int) -> np.ndarray:
    """The per-sensor sEMG gain of ``signer``'s sitting ``donning`` (ones before version 5)."""
    if signer.electrodes is None:
        return np.ones(SENSOR_COUNT)
    rng = np.random.default_rng(np.random.SeedSequence([signer.seed, 7919, signer.index, signer.version, 1000 + donning]))
    return rng.lognormal(0.0, DONNING_GAIN_SD, SENSOR_COUNT)


def make_signer(seed: int, index: int, version: int = GENERATOR_VERSION) -> SignerProfile:
    """Signer ``index`` of the population drawn with dataset ``seed`` (deterministic) for generator
    ``version``. Version 5 draws version 4's person first, unchanged, then what is new from a
    random stream of its own, so the same seed is the same person in both."""
    if version not in GENERATOR_VERSIONS:
        raise ValueError(f"generator version {version} does not exist; known: {', '.join(map(str, GENERATOR_VERSIONS))}")
    signer = dataclasses.replace(_make_signer_v4(seed, index), seed=seed)
    if version == 4:
        return signer
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7919, index, version]))
    electrodes = Electrodes(
        # Median frequencies of real arm sEMG are 60-100 Hz (PLUX biceps 66-80 Hz, adductor 94 Hz).
        spectrum_low_hz=rng.uniform(38.0, 52.0, SENSOR_COUNT),
        spectrum_high_hz=rng.uniform(76.0, 100.0, SENSOR_COUNT),
        tonic_activation=rng.uniform(0.0015, 0.006, SENSOR_COUNT),
        weak_sign_probability=float(rng.uniform(0.03, 0.10)),
    )
    return dataclasses.replace(
        signer, version=version, electrodes=electrodes,
        noise_floor_mv=rng.uniform(0.0012, 0.003, SENSOR_COUNT),
        mains_mv=float(rng.uniform(0.0002, 0.0006)),
    )


def _make_signer_v4(seed: int, index: int) -> SignerProfile:
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

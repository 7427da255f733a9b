"""Arm kinematics: joint angles -> what each sensor's accelerometer and gyroscope measure.

Two rigid segments hang from a fixed shoulder (world frame: x forward, y left, z up):
    upper arm  R_u = Ry(-flexion) Rx(-abduction) Rz(rotation),   elbow = R_u (0, 0, -L_u)
    forearm    R_f = R_u Ry(-elbow flexion) Rz(pronation)
A sensor sits on the skin of its segment at a distance along the limb and an angle around it, with
its x axis along the limb (distal), z out of the skin. Its accelerometer measures specific force
(motion minus gravity) in g, so at rest |acc| = 1 g and the gravity direction rotates with the limb;
its gyroscope measures the body-frame angular velocity, here in deg/s.
"""

from __future__ import annotations

import numpy as np

from stream.synth.signer import SENSOR_COUNT, SENSOR_DISTANCE_M, SENSOR_SEGMENT, SignerProfile

STANDARD_GRAVITY = 9.80665


def _rotation(axis: int, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices (T, 3, 3) about coordinate ``axis`` by ``angle`` (T,) radians."""
    cosine, sine = np.cos(angle), np.sin(angle)
    matrices = np.zeros(angle.shape + (3, 3))
    first, second = [(1, 2), (2, 0), (0, 1)][axis]
    matrices[..., axis, axis] = 1.0
    matrices[..., first, first] = cosine
    matrices[..., second, second] = cosine
    matrices[..., first, second] = -sine
    matrices[..., second, first] = sine
    return matrices


def _mounting(signer: SignerProfile) -> tuple[np.ndarray, np.ndarray]:
    """Per sensor: the sensor-to-segment rotation (6, 3, 3) and its position in the segment frame (6, 3)."""
    angle = np.radians(signer.sensor_angle_deg)
    normal = np.stack([np.cos(angle), np.sin(angle), np.zeros(SENSOR_COUNT)], axis=1)
    along = np.tile([0.0, 0.0, -1.0], (SENSOR_COUNT, 1))
    side = np.cross(normal, along)
    mount = np.stack([along, side, normal], axis=2)  # columns: sensor x, y, z in segment coordinates
    tilt = np.radians(signer.sensor_tilt_deg)
    mount = mount @ _rotation(0, tilt[:, 0]) @ _rotation(1, tilt[:, 1])
    position = normal * signer.limb_radius_m + along * SENSOR_DISTANCE_M[:, None]
    return mount, position


def arm_rotations(posture_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upper-arm and forearm orientation (T, 3, 3) from joint angles (T, 5) in degrees."""
    flexion, abduction, rotation, elbow, pronation = np.radians(posture_deg).T
    upper = _rotation(1, -flexion) @ _rotation(0, -abduction) @ _rotation(2, rotation)
    forearm = upper @ _rotation(1, -elbow) @ _rotation(2, pronation)
    return upper, forearm


def imu_signals(posture_deg: np.ndarray, rate_hz: float, signer: SignerProfile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise-free accelerometer (T, 18) in g and gyroscope (T, 18) in deg/s, columns sensor-major xyz;
    and the forearm's horizontal extent (T,), 0 hanging or vertical, 1 horizontal (gravity load at the elbow)."""
    steps = posture_deg.shape[0]
    upper, forearm = arm_rotations(posture_deg)
    mount, position = _mounting(signer)
    elbow = upper @ np.array([0.0, 0.0, -signer.upper_arm_m])
    segment = np.where(SENSOR_SEGMENT[None, :, None, None] == 1, forearm[:, None], upper[:, None])  # (T, 6, 3, 3)
    origin = np.where(SENSOR_SEGMENT[None, :, None] == 1, elbow[:, None, :], 0.0)  # (T, 6, 3)
    sensor_position = origin + np.einsum("tsij,sj->tsi", segment, position)
    sensor_rotation = segment @ mount[None]  # (T, 6, 3, 3) sensor -> world
    period = 1.0 / rate_hz
    acceleration = np.gradient(np.gradient(sensor_position, period, axis=0), period, axis=0)
    specific_force = acceleration / STANDARD_GRAVITY + np.array([0.0, 0.0, 1.0])
    acc = np.einsum("tsji,tsj->tsi", sensor_rotation, specific_force)
    rotation_rate = np.gradient(sensor_rotation, period, axis=0)
    body_rate = np.einsum("tsji,tsjk->tsik", sensor_rotation, rotation_rate)  # R^T dR/dt, skew-symmetric
    omega = 0.5 * np.stack([
        body_rate[..., 2, 1] - body_rate[..., 1, 2],
        body_rate[..., 0, 2] - body_rate[..., 2, 0],
        body_rate[..., 1, 0] - body_rate[..., 0, 1],
    ], axis=-1)
    gyro = np.degrees(omega)
    forearm_axis = forearm @ np.array([0.0, 0.0, -1.0])
    horizontal = np.hypot(forearm_axis[:, 0], forearm_axis[:, 1])
    return acc.reshape(steps, 3 * SENSOR_COUNT), gyro.reshape(steps, 3 * SENSOR_COUNT), horizontal

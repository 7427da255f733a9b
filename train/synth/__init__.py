"""The synthetic signer: a physiological model of sEMG + IMU recordings of 50 ISL signs.

``python -m train.synth --out DIR`` writes a dataset directory (see docs/DATA.md). Modules:
vocabulary (the signs), signer (people and sensor placement), performance (events -> joint angles and
muscle activations), body (kinematics -> accelerometer, gyroscope), render (-> raw samples with
nuisances), generate (isolated recordings and sessions), build (the dataset directory).
"""

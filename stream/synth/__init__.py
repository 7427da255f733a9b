"""The simulated signer: a physiological model of a person making 50 ISL signs with six sEMG + IMU
sensors on the arm. Modules: vocabulary (the signs), signer (people and sensor placement),
performance (events -> joint angles and muscle activations), body (kinematics -> accelerometer,
gyroscope), render (-> raw samples with nuisances), session (continuous signing). The live source
(``stream.sources.synthetic``) streams it; ``train.synth`` builds data sets from it.
"""

"""Adapting the shipped student to a new user on the device, from a short calibration (numpy and
scipy only: never TensorFlow). ``alignment``: each input channel scaled and shifted to the training
statistics; ``head``: a regularised correction of the student's decision on its penultimate
features; ``card``: the adapted model's directory and card, written atomically beside (never over)
the base model. ``stream.stages.classifier`` applies an adapted card; ``stream-calibrate`` makes one.
"""

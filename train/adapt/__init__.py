"""Adapting a trained student to a new user: evaluation of the on-device methods (stream.adapt)
against the number of calibration rounds (``evaluate``)."""
